"""docker-compose.yml cannot run here (no Docker engine); check that it matches the settings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from hermes.cli import build_parser
from hermes.settings import env_name, field_names

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_services_are_the_stack_and_hermes() -> None:
    services = _compose()["services"]
    assert {"postgres", "nats", "redis", "api", "worker", "sandbox"} <= set(services)
    assert services["sandbox"]["command"][0] == "sandbox"
    assert "--jetstream" in services["nats"]["command"]


def test_hermes_services_use_only_real_settings_and_reach_the_service_hosts() -> None:
    services = _compose()["services"]
    known = {env_name(f) for f in field_names()}
    subcommands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for name in ("api", "worker", "migrate"):
        svc = services[name]
        env = svc["environment"]
        unknown = sorted(set(env) - known)
        assert unknown == [], f"{name} sets variables Hermes does not read: {unknown}"
        assert svc["command"][0] in subcommands
        for key, host in (("HERMES_DATABASE_URL", "postgres"), ("HERMES_NATS_URL", "nats"),
                          ("HERMES_REDIS_URL", "redis")):
            assert urlparse(env[key]).hostname == host, (name, key)
            assert host in services
        assert urlparse(env["HERMES_SANDBOX_URL"]).hostname == "sandbox"
        assert urlparse(env["HERMES_PUBLIC_URL"]).hostname == "api"


def test_database_credentials_match_the_postgres_service() -> None:
    services = _compose()["services"]
    url = urlparse(services["api"]["environment"]["HERMES_DATABASE_URL"])
    pg = services["postgres"]["environment"]
    assert (url.username, url.password, url.path.lstrip("/")) == (
        pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])


def _target(job: dict[str, Any]) -> tuple[str, int]:
    ((target,),) = [c["targets"] for c in job["static_configs"]]
    host, _, port = target.partition(":")
    return host, int(port)


def test_prometheus_scrapes_the_api_and_worker_where_they_serve_metrics() -> None:
    services = _compose()["services"]
    prom = services["prometheus"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in \
        prom["volumes"]
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"hermes-api", "hermes-worker", "hermes-sandbox"}
    assert all(j.get("metrics_path", "/metrics") == "/metrics" for j in jobs.values())

    host, port = _target(jobs["hermes-api"])
    api = services[host]
    assert host == "api" and api["command"][0] == "api"
    assert int(api["environment"]["HERMES_API_PORT"]) == port
    assert api["environment"]["HERMES_API_HOST"] == "0.0.0.0"

    host, port = _target(jobs["hermes-worker"])
    worker = services[host]
    assert host == "worker" and worker["command"][0] == "worker"
    assert int(worker["environment"]["HERMES_WORKER_METRICS_PORT"]) == port
    assert worker["environment"]["HERMES_METRICS_HOST"] == "0.0.0.0"
    assert str(port) in worker["expose"]

    host, port = _target(jobs["hermes-sandbox"])
    command = services[host]["command"]
    assert host == "sandbox" and command[0] == "sandbox"
    assert int(command[command.index("--metrics-port") + 1]) == port
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert str(port) in services[host]["expose"]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    services = _compose()["services"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in services["grafana"]["volumes"]}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboards_dir = mounts["./deploy/grafana/hermes.json"].rsplit("/", 1)[0]
    prov = ROOT / "deploy/grafana/provisioning"
    (source,) = yaml.safe_load((prov / "datasources/prometheus.yml").read_text())["datasources"]
    assert urlparse(source["url"]).hostname == "prometheus" and "prometheus" in services
    (provider,) = yaml.safe_load((prov / "dashboards/hermes.yml").read_text())["providers"]
    assert provider["options"]["path"] == dashboards_dir


def test_the_dashboard_queries_only_metrics_hermes_exports() -> None:
    from hermes.observability.metrics import REGISTRY, SCRAPED_FAMILIES

    exported = set(SCRAPED_FAMILIES)
    for family in REGISTRY.collect():
        exported |= {s.name for s in family.samples} | {family.name}
    for family in REGISTRY.collect():  # every series of a histogram, even before any sample
        if family.type == "histogram":
            exported |= {family.name + s for s in ("_bucket", "_count", "_sum")}
        elif family.type == "counter":
            exported.add(family.name + "_total")
    dashboard = json.loads((ROOT / "deploy/grafana/hermes.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    used = {m for e in exprs for m in re.findall(r"\bhermes_[a-z_]+", e)}
    assert used - exported == set()
    sources = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert sources == {"prometheus"}


def test_dockerfile_runs_the_hermes_cli() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["hermes"]' in text
    assert "adapters_wasm/build.py" in text and "maturin build --release" in text
