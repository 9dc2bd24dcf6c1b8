"""`/admin/v1/adapters`: the validation gate, storage by SHA-256, activation announced to
every process, rollback, and the per-process live view."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from hermes.api.app import create_app
from hermes.bootstrap import Container
from hermes.providers.deploy import AdapterSync
from hermes.sandbox import Sandbox
from hermes.settings import Settings
from hermes.tenancy.admin import create_admin_token
from hermes.tenancy.secrets import digest, display_prefix, new_api_key
from tests.integration.adapters.deploy_support import (
    GOLDEN,
    builtin_sha,
    deploys,
    other_process,
    twilio,
    unique_version,
    until,
)

__all__ = ["deploys", "other_process"]

WASM = {"Content-Type": "application/wasm"}


@pytest.fixture
def admin(settings: Settings) -> dict[str, str]:
    assert settings.database_url
    return {"Authorization": f"Bearer {create_admin_token(settings.database_url)}"}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async with AsyncTestClient(create_app(settings)) as c:
        yield c


def upload(module: bytes, golden: bytes | None = None) -> dict[str, Any]:
    files: dict[str, Any] = {"module": ("a.wasm", module, "application/wasm")}
    if golden is not None:
        files["golden"] = ("golden.json", golden, "application/json")
    return {"files": files}


async def test_upload_stores_by_sha256_runs_golden_vectors_and_is_idempotent(
        client: AsyncTestClient, admin: dict[str, str],  # type: ignore[type-arg]
        deploys: AdapterSync) -> None:
    version = unique_version()
    module = twilio(version)
    r = await client.post("/admin/v1/adapters", headers=admin,
                          **upload(module, GOLDEN.read_bytes()))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "twilio_sms" and body["version"] == version
    assert body["sha256"] == hashlib.sha256(module).hexdigest()
    assert body["status"] == "uploaded" and body["size"] == len(module)
    assert body["golden"] == {"status": "passed", "vectors": 13}
    assert body["smoke"]["status"] == "skipped"  # no sandbox configured here
    assert await deploys.store.wasm(body["sha256"]) == module

    # The same bytes again: the same answer, 200. Other bytes under that version: 409.
    r = await client.post(f"/admin/v1/adapters?version={version}", content=module,
                          headers={**admin, **WASM})
    assert r.status_code == 200 and r.json()["sha256"] == body["sha256"]
    r = await client.post("/admin/v1/adapters", content=twilio(version, trap=True),
                          headers={**admin, **WASM})
    assert r.status_code == 409 and r.json()["code"] == "adapter.version_exists"


@pytest.mark.parametrize("case", ["garbage", "empty", "name", "version", "golden", "media"])
async def test_each_gate_refuses_with_its_code(
        client: AsyncTestClient, admin: dict[str, str],  # type: ignore[type-arg]
        case: str) -> None:
    version = unique_version()
    trap = twilio(unique_version(), trap=True)
    post = {
        "garbage": dict(content=b"\0asm\x01\0\0\0junk", headers={**admin, **WASM}),
        "empty": dict(content=b"", headers={**admin, **WASM}),
        "name": dict(content=twilio(version), headers={**admin, **WASM},
                     params={"name": "messente_sms"}),
        "version": dict(content=twilio(version), headers={**admin, **WASM},
                        params={"version": "0.0.1"}),
        "golden": dict(headers=admin, **upload(trap, GOLDEN.read_bytes())),
        "media": dict(content=b"{}", headers={**admin, "Content-Type": "application/json"}),
    }[case]
    r = await client.post("/admin/v1/adapters", **post)  # type: ignore[arg-type]
    expected = {"garbage": "adapter.invalid_module", "empty": "adapter.invalid_module",
                "name": "adapter.invalid_module", "version": "adapter.invalid_module",
                "golden": "adapter.golden_vector_failed",
                "media": "request.unsupported_media_type"}[case]
    assert r.json()["code"] == expected, r.text
    if case == "golden":
        assert r.status_code == 422 and "adapter.trap" in r.json()["detail"]


async def test_a_golden_vector_that_does_not_match_names_the_vector(
        client: AsyncTestClient, admin: dict[str, str]) -> None:  # type: ignore[type-arg]
    golden = json.loads(GOLDEN.read_text())
    golden["vectors"][5]["output"]["segments"] = 2  # "201 created" says 1
    r = await client.post("/admin/v1/adapters", headers=admin,
                          **upload(twilio(unique_version()), json.dumps(golden).encode()))
    assert r.status_code == 422 and r.json()["code"] == "adapter.golden_vector_failed"
    assert "201 created" in r.json()["detail"]


@contextlib.contextmanager
def sandbox_in_a_thread() -> Iterator[Sandbox]:
    """The provider sandbox on an event loop of its own: the test client runs the app on
    another loop and blocks the test's while a request is handled."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sandbox = Sandbox(receipt_delay=0.05)
    asyncio.run_coroutine_threadsafe(sandbox.__aenter__(), loop).result(10)
    try:
        yield sandbox
    finally:
        asyncio.run_coroutine_threadsafe(sandbox.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def test_smoke_test_against_the_sandbox(settings: Settings, admin: dict[str, str]) -> None:
    with sandbox_in_a_thread() as sandbox:
        app = create_app(settings.with_overrides(sandbox_url=sandbox.url))
        async with AsyncTestClient(app) as client:
            r = await client.post("/admin/v1/adapters", content=twilio(unique_version()),
                                  headers={**admin, **WASM})
            assert r.status_code == 201, r.text
            smoke = r.json()["smoke"]
            assert smoke["status"] == "passed" and smoke["to"] == "+4520120001"
            sent = [q for q in sandbox.state.requests if q["provider"] == "twilio"]
            assert len(sent) == 1

            r = await client.post("/admin/v1/adapters",
                                  content=twilio(unique_version(), trap=True),
                                  headers={**admin, **WASM})
            assert r.status_code == 422 and r.json()["code"] == "adapter.smoke_test_failed"
            assert "adapter.trap" in r.json()["detail"]


async def test_tenant_keys_cannot_deploy(client: AsyncTestClient,  # type: ignore[type-arg]
                                         container: Container) -> None:
    t = await container.tenants.create_tenant("deployer")
    key = new_api_key("live")
    await container.tenants.add_api_key(t.id, prefix=display_prefix(key), key_hash=digest(key),
                                        mode="live", scopes=["send", "read", "manage"])
    tenant = {"Authorization": f"Bearer {key}"}
    for method, path in (("POST", "/admin/v1/adapters"), ("GET", "/admin/v1/adapters"),
                         ("POST", "/admin/v1/adapters/twilio_sms/rollback")):
        r = await client.request(method, path, headers={**tenant, **WASM}, content=b"x")
        assert r.status_code == 403 and r.json()["code"] == "auth.forbidden", (method, path)


async def test_activate_reaches_another_process_then_rollback_returns(
        client: AsyncTestClient, admin: dict[str, str],  # type: ignore[type-arg]
        container: Container, deploys: AdapterSync, other_process: AdapterSync) -> None:
    builtin = builtin_sha(container)
    # Both processes start on the built-in version, and say so.
    assert other_process.registry.get("twilio_sms").sha256 == builtin
    versions = [unique_version(), unique_version()]
    shas = []
    for v in versions:
        r = await client.post("/admin/v1/adapters", content=twilio(v), headers={**admin, **WASM})
        assert r.status_code == 201, r.text
        shas.append(r.json()["sha256"])

    for v, sha in zip(versions, shas, strict=True):
        r = await client.post("/admin/v1/adapters/twilio_sms/activate", json={"version": v},
                              headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["sha256"] == sha and r.json()["changed"] is True
        # Well inside the 5 s reconcile period: the announcement did it.
        await until(lambda s=sha: other_process.registry.get("twilio_sms").sha256 == s, 2.0,
                    f"the other process runs {v}")

    r = await client.get("/admin/v1/adapters", headers=admin)
    twilio_row = next(a for a in r.json()["data"] if a["name"] == "twilio_sms")
    assert twilio_row["active"]["sha256"] == shas[1]
    statuses = {v["sha256"]: v["status"] for v in twilio_row["versions"]}
    assert statuses[shas[0]] == "retired" and statuses[builtin] == "retired"
    live = {p["process"]: p["sha256"] for p in twilio_row["live"]}
    assert live[other_process.process_id] == shas[1]

    # Activating the active version changes nothing.
    r = await client.post("/admin/v1/adapters/twilio_sms/activate", json={"sha256": shas[1]},
                          headers=admin)
    assert r.json()["changed"] is False

    # Rollback pops the history: the second version, then the first, then the built-in.
    for expected in (shas[0], builtin):
        r = await client.post("/admin/v1/adapters/twilio_sms/rollback", headers=admin)
        assert r.status_code == 200 and r.json()["sha256"] == expected, r.text
        await until(lambda e=expected: other_process.registry.get("twilio_sms").sha256 == e,
                    2.0, "rolled back in the other process")


async def test_a_quarantined_version_needs_force(
        client: AsyncTestClient, admin: dict[str, str],  # type: ignore[type-arg]
        deploys: AdapterSync) -> None:
    version = unique_version()
    r = await client.post("/admin/v1/adapters", content=twilio(version),
                          headers={**admin, **WASM})
    sha = r.json()["sha256"]
    await deploys.store.activate("twilio_sms", sha)
    await deploys.store.rollback("twilio_sms", quarantine=sha, reason="test")
    r = await client.post("/admin/v1/adapters/twilio_sms/activate", json={"version": version},
                          headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "adapter.quarantined"
    r = await client.post("/admin/v1/adapters/twilio_sms/activate",
                          json={"version": version, "force": True}, headers=admin)
    assert r.status_code == 200 and r.json()["sha256"] == sha
