"""docker-compose.yml cannot run here (no Docker engine); check that it matches the settings."""

from __future__ import annotations

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


def test_dockerfile_runs_the_hermes_cli() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["hermes"]' in text
    assert "adapters_wasm/build.py" in text and "maturin build --release" in text
