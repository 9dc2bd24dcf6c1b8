"""Hot deploy with Hermes running as processes: a new twilio_sms version goes live on the
API and the worker while messages flow, a trapping one is quarantined and rolled back,
and every message is delivered."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hermes.bootstrap import Container
from hermes.infra.postgres.adapters import Module, PostgresAdapterStore
from hermes.providers.registry import AdapterRegistry
from hermes.settings import Settings
from hermes.tenancy.admin import create_admin_token
from tests.integration.adapters.deploy_support import GOLDEN, builtin_sha, twilio, unique_version

FINAL = {"delivered", "failed", "expired", "canceled", "undeliverable"}


async def live_everywhere(admin: httpx.AsyncClient, sha: str, roles: set[str],
                          within: float) -> float:
    """Seconds until a process of each role reports `sha` live for twilio_sms."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        body = (await admin.get("/admin/v1/adapters")).json()
        row = next(a for a in body["data"] if a["name"] == "twilio_sms")
        live = {p["role"] for p in row["live"] if p["sha256"] == sha}
        others = {p["role"] for p in row["live"] if p["sha256"] != sha}
        if roles <= live and not others & roles:
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    raise AssertionError(f"{sha} not live on {roles} within {within} s: {row['live']}")


@pytest.mark.timeout(240)
async def test_a_new_version_goes_live_while_messages_flow(
    clean_streams: None, hermes_procs: dict[str, str], tenant: dict[str, str],
    settings: Settings, container: Container,
) -> None:
    assert settings.database_url
    token = create_admin_token(settings.database_url)
    store = PostgresAdapterStore(container.pool)
    sent: list[tuple[float, str]] = []
    stop = asyncio.Event()

    async def send(api: httpx.AsyncClient) -> None:
        i = 0
        while not stop.is_set():
            r = await api.post("/v1/messages", json={
                "to": {"phone": "+4520120001"}, "body": f"hot deploy {i}",
                "cascade": ["sms"], "timeout_per_step": "30s"})
            assert r.status_code == 202, r.text
            sent.append((time.time(), r.json()["id"]))
            i += 1
            await asyncio.sleep(0.05)

    async with httpx.AsyncClient(base_url=hermes_procs["api"], timeout=30,
                                 headers={"Authorization": tenant["auth"]}) as api, \
            httpx.AsyncClient(base_url=hermes_procs["api"], timeout=30,
                              headers={"Authorization": f"Bearer {token}"}) as admin:
        sender = asyncio.create_task(send(api))
        try:
            await asyncio.sleep(1.0)
            # Upload through the gate (golden vectors and the sandbox smoke test), activate.
            version = unique_version("e2e")
            r = await admin.post("/admin/v1/adapters", files={
                "module": ("twilio.wasm", twilio(version), "application/wasm"),
                "golden": ("golden.json", GOLDEN.read_bytes(), "application/json")})
            assert r.status_code == 201, r.text
            assert r.json()["smoke"]["status"] == "passed"
            new = r.json()["sha256"]
            r = await admin.post("/admin/v1/adapters/twilio_sms/activate",
                                 json={"version": version})
            assert r.status_code == 200, r.text
            went_live = await live_everywhere(admin, new, {"api", "worker"}, within=5)
            swapped_at = time.time()
            await asyncio.sleep(1.5)

            # A release that traps in production (the gate would refuse this one, so it is
            # stored directly): quarantined, the previous version back, nothing lost.
            bad_version = unique_version("trap")
            wasm = twilio(bad_version, trap=True)
            bad = await asyncio.to_thread(AdapterRegistry(container.adapters.runtime).load, wasm)
            await store.upload(Module(bad.sha256, bad.name, bad.version, wasm, bad.manifest),
                               golden={}, smoke={})
            r = await admin.post("/admin/v1/adapters/twilio_sms/activate",
                                 json={"version": bad_version})
            assert r.status_code == 200, r.text
            started = time.monotonic()
            while (row := await store.get(bad.sha256)) is None or row.status != "quarantined":
                assert time.monotonic() - started < 15, "the trapping version stayed active"
                await asyncio.sleep(0.05)
            await live_everywhere(admin, new, {"api", "worker"}, within=5)
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            await sender
            # Leave twilio_sms as other modules expect it.
            restored_at = time.time()
            builtin = builtin_sha(container)
            await admin.post("/admin/v1/adapters/twilio_sms/activate",
                             json={"sha256": builtin, "force": True})

        # Every message reaches a final state, delivered.
        assert len(sent) > 40
        views: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 60
        for _, mid in sent:
            while True:
                view = (await api.get(f"/v1/messages/{mid}")).json()
                if view["status"] in FINAL or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            views[mid] = view
        assert {v["status"] for v in views.values()} == {"delivered"}
        # Attempts name the version they used: messages sent once the new version was live
        # (and before the test put the built-in back) used it, whether or not they ran into
        # the trapping version first; no attempt was answered by the trapping version.
        used = {mid: {a["adapter_version"] for a in v["attempts"]} for mid, v in views.items()}
        assert all(bad_version not in versions for versions in used.values())
        window = [mid for at, mid in sent if swapped_at + 0.2 < at < restored_at - 1.0]
        assert len(window) > 20 and all(used[mid] == {version} for mid in window)
        print(f"twilio_sms {version} live on the api and the worker {went_live:.3f} s after "
              "activation")


def hermes_adapter(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "hermes", "adapter", *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.timeout(240)
async def test_the_adapter_commands_build_push_activate_and_roll_back(
    hermes_procs: dict[str, str], settings: Settings, container: Container,
    tmp_path: Path,
) -> None:
    assert settings.database_url
    api = ["--url", hermes_procs["api"], "--token", create_admin_token(settings.database_url)]
    version = unique_version("cli")
    built = Path(hermes_adapter("build", "twilio_sms", "--version", version,
                                "--out", str(tmp_path)).strip())
    assert built == tmp_path / f"twilio_sms-{version}.wasm"
    pushed = json.loads(hermes_adapter("push", str(built), "--json", *api))
    assert pushed["version"] == version and pushed["golden"]["status"] == "passed"
    assert pushed["smoke"]["status"] == "passed"

    out = hermes_adapter("activate", "twilio_sms", version, *api)
    assert f"twilio_sms {version} ({pushed['sha256'][:12]}) is active" in out
    async with httpx.AsyncClient(base_url=hermes_procs["api"], timeout=30,
                                 headers={"Authorization": f"Bearer {api[-1]}"}) as admin:
        await live_everywhere(admin, pushed["sha256"], {"api", "worker"}, within=5)
        listed = hermes_adapter("list", *api)
        assert f"{version}" in listed and "live on 1 api, 1 worker" in listed
        out = hermes_adapter("rollback", "twilio_sms", *api)
        assert "rolled back" in out
        await live_everywhere(admin, builtin_sha(container), {"api", "worker"}, within=5)
