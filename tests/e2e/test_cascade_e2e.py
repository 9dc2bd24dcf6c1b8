"""The whole of Hermes as separate processes: API, worker and provider sandbox over HTTP.

PostgreSQL, NATS and Redis are the test session's; the API, the worker and the
sandbox run as `hermes api`, `hermes worker` and `hermes sandbox` processes,
and a webhook receiver in the test collects what the tenant would hear.
"""

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
from standardwebhooks import Webhook

from hermes.bootstrap import Container
from hermes.devstack.procs import ChildProcess, wait_until
from hermes.devstack.services import free_port
from hermes.infra.nats.streams import STREAMS, ensure_streams
from hermes.settings import Settings
from hermes.tenancy.secrets import digest, display_prefix, new_api_key


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def hermes_procs(settings: Settings, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[dict[str, str]]:
    logs = tmp_path_factory.mktemp("procs")
    api_port, sandbox_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_")}
    env.update(HERMES_DATABASE_URL=str(settings.database_url),
               HERMES_NATS_URL=str(settings.nats_url), HERMES_REDIS_URL=str(settings.redis_url),
               HERMES_SANDBOX_URL=sandbox_url, HERMES_API_PORT=str(api_port))
    py = sys.executable
    procs = [
        ChildProcess("sandbox", [py, "-m", "hermes", "sandbox", "--port", str(sandbox_port),
                                 "--receipt-delay-ms", "50", "--timeout-hold-ms", "3000"],
                     log_path=logs / "sandbox.log", env=env),
        ChildProcess("api", [py, "-m", "hermes", "api"], log_path=logs / "api.log", env=env),
        ChildProcess("worker", [py, "-m", "hermes", "worker"], log_path=logs / "worker.log",
                     env=env),
    ]
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


@pytest.fixture(scope="module")
async def clean_streams(settings: Settings) -> None:
    """Work-queue streams allow one consumer per subject: clear what other tests left."""
    import nats

    nc = await nats.connect(str(settings.nats_url))
    js = nc.jetstream()
    await ensure_streams(js)
    for s in STREAMS:
        assert s.name is not None
        for info in await js.consumers_info(s.name):
            if not info.name.startswith(("engine-", "delivery")):
                await js.delete_consumer(s.name, info.name)
    await nc.close()


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


@pytest.mark.timeout(180)
async def test_seed_sms_unconfirmed_then_email_delivered_reported_by_webhook(
    clean_streams: None, hermes_procs: dict[str, str], tenant: dict[str, str],
    receiver: tuple[Receiver, str],
) -> None:
    hook, hook_url = receiver
    headers = {"Authorization": tenant["auth"]}
    async with httpx.AsyncClient(base_url=hermes_procs["api"], headers=headers,
                                 timeout=10) as api:
        r = await api.post("/v1/webhooks/endpoints", json={"url": hook_url})
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        # Phone ending 0003: the SMS is accepted and never confirmed.
        r = await api.put("/v1/contacts/cust-1", json={"phone": "+4520120003",
                                                       "email": "ada@example.com"})
        assert r.status_code in (200, 201), r.text
        # The SMS step waits one second; the email step long enough for its SNS receipt.
        r = await api.post("/v1/messages", json={
            "to": "cust-1", "body": "Your order has shipped",
            "steps": [{"channel": "sms", "timeout": "1s"}, {"channel": "email", "timeout": "20s"}]})
        assert r.status_code == 202, r.text
        mid = r.json()["id"]

        final = await hook.wait_for(lambda e: e["type"] == "message.finished"
                                    and e["data"]["message_id"] == mid)
        assert final["data"]["outcome"] == "delivered"
        attempts = final["data"]["attempts"]
        assert [a["channel"] for a in attempts] == ["sms", "email"]
        assert attempts[0]["provider_message_id"] and attempts[1]["receipt_at"]
        assert any(e["type"] == "message.fallback" and e["data"]["message_id"] == mid
                   for e in hook.events)

        # Every webhook verifies with the Standard Webhooks reference implementation.
        wh = Webhook(secret)
        for hdrs, body in hook.raw:
            lower = {k.lower(): v for k, v in hdrs.items()}
            wh.verify(body, {"webhook-id": lower["webhook-id"],
                             "webhook-timestamp": lower["webhook-timestamp"],
                             "webhook-signature": lower["webhook-signature"]})

        r = await api.get(f"/v1/messages/{mid}")
        assert r.status_code == 200, r.text
        msg = r.json()
        assert msg["status"] == "delivered"
        kinds = [e["kind"] for e in msg["events"]]
        for k in ("accepted", "step_timed_out", "fallback", "receipt", "finished"):
            assert k in kinds, kinds


@pytest.mark.timeout(120)
async def test_sms_delivered_stops_the_cascade_and_email_is_never_sent(
    clean_streams: None, hermes_procs: dict[str, str], tenant: dict[str, str],
    receiver: tuple[Receiver, str],
) -> None:
    hook, hook_url = receiver
    email = f"stop-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(base_url=hermes_procs["api"],
                                 headers={"Authorization": tenant["auth"]}, timeout=10) as api:
        await api.post("/v1/webhooks/endpoints", json={"url": hook_url})
        r = await api.post("/v1/messages", json={
            "to": {"phone": "+4520120001", "email": email}, "body": "Hi",
            "cascade": ["sms", "email"], "timeout_per_step": "5s"})
        assert r.status_code == 202, r.text
        mid = r.json()["id"]
        final = await hook.wait_for(lambda e: e["type"] == "message.finished"
                                    and e["data"]["message_id"] == mid)
        assert final["data"]["outcome"] == "delivered"
        assert [a["channel"] for a in final["data"]["attempts"]] == ["sms"]
    await asyncio.sleep(6)  # past the step timeout: still nothing for the email provider
    async with httpx.AsyncClient(timeout=10) as http:
        seen = (await http.get(f"{hermes_procs['sandbox']}/_sandbox/requests",
                               params={"provider": "ses"})).json()
    assert email not in json.dumps(seen)
