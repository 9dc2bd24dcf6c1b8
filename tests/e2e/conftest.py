"""Fixtures for end-to-end tests: Hermes as processes, a webhook receiver, a test tenant."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from hermes.bootstrap import Container
from hermes.devstack.procs import ChildProcess, wait_until
from hermes.devstack.services import free_port
from hermes.settings import Settings
from hermes.tenancy.secrets import digest, display_prefix, new_api_key
from tests.conftest import reset_streams


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def hermes_procs(settings: Settings, tmp_path_factory: pytest.TempPathFactory,
                 request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Hermes as processes; a test module's `proc_env(logs_dir)` adds to their environment."""
    logs = tmp_path_factory.mktemp("procs")
    api_port, sandbox_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_")}
    env.update(HERMES_DATABASE_URL=str(settings.database_url),
               HERMES_NATS_URL=str(settings.nats_url), HERMES_REDIS_URL=str(settings.redis_url),
               HERMES_SANDBOX_URL=sandbox_url, HERMES_API_PORT=str(api_port),
               HERMES_ALLOW_PRIVATE_TARGETS=settings.allow_private_targets)
    env.update({k: v for k, v in (("HERMES_MASTER_KEYS", settings.master_keys),
                                  ("HERMES_MASTER_KEY_FILE", settings.master_key_file)) if v})
    extra = getattr(request.module, "proc_env", None)
    if extra is not None:
        env.update(extra(logs))
    py = sys.executable
    procs = [
        ChildProcess("sandbox", [py, "-m", "hermes", "sandbox", "--port", str(sandbox_port),
                                 "--receipt-delay-ms", "50", "--timeout-hold-ms", "3000"],
                     log_path=logs / "sandbox.log", env=env),
        ChildProcess("api", [py, "-m", "hermes", "api"], log_path=logs / "api.log", env=env),
        ChildProcess("worker", [py, "-m", "hermes", "worker"], log_path=logs / "worker.log",
                     env=env),
    ]
    asyncio.run(reset_streams(str(settings.nats_url)))
    try:
        procs[0].start()
        wait_until(lambda: _ok(f"{sandbox_url}/_sandbox/health"), timeout=30, what="sandbox",
                   child=procs[0])
        for p in procs[1:]:
            p.start()
        api = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: _ok(f"{api}/readyz"), timeout=60, what="api", child=procs[1])
        yield {"api": api, "sandbox": sandbox_url, "logs": str(logs)}
    finally:
        for p in reversed(procs):
            p.stop(timeout=15)
        # The worker's durable consumers outlive it; leave the streams as found.
        asyncio.run(reset_streams(str(settings.nats_url)))


@pytest.fixture
def clean_streams() -> None:
    """End-to-end modules reset the streams when their processes start (`hermes_procs`):
    deleting consumers here would pull them from under the running worker."""


class Receiver:
    """A tenant's webhook endpoint."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.raw: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.raw.append((dict(request.headers), body))
        self.events.append(json.loads(body))
        return web.Response(status=204)

    async def wait_for(self, pred: Any, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if pred(e):
                    return e
            await asyncio.sleep(0.1)
        raise AssertionError(f"no such webhook; got {[e['type'] for e in self.events]}")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/hook", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield r, f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


@pytest.fixture
async def tenant(container: Container) -> dict[str, str]:
    t = await container.tenants.create_tenant(f"e2e-{uuid.uuid4().hex[:6]}")
    key = new_api_key("test")
    await container.tenants.add_api_key(t.id, prefix=display_prefix(key), key_hash=digest(key),
                                        mode="test", scopes=["send", "read", "manage"])
    return {"id": str(t.id), "auth": f"Bearer {key}"}


