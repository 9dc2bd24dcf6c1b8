"""Shared by the delivery and callback tests: a tenant, messages and attempts in
PostgreSQL, the sandbox accounts, a delivery worker, and the events it publishes."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from hermes.bootstrap import Container
from hermes.delivery.sender import Sender
from hermes.delivery.worker import DeliveryMetrics, DeliveryWorker
from hermes.domain.jobs import EVENT_DECODER, AttemptResult, DeliveryJob, ReceiptNotice
from hermes.domain.messages import Address, Content, MessageSpec, StepSpec
from hermes.infra.nats.streams import ensure_streams
from hermes.providers.accounts import (
    AccountDirectory,
    ProviderAccount,
    ensure_sandbox_accounts,
    sandbox_account_id,
)
from hermes.sandbox import Sandbox
from hermes.sandbox.http import HttpServer, Request, Response, Router, start_server

TWILIO = sandbox_account_id("sandbox-twilio-sms")
MESSENTE = sandbox_account_id("sandbox-messente-sms")
SES = sandbox_account_id("sandbox-ses-email")
FCM = sandbox_account_id("sandbox-fcm-push")
WHATSAPP = sandbox_account_id("sandbox-whatsapp-cloud")


@dataclass
class Captured:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Stands in for the API's public address: keeps every callback the sandbox sends."""

    def __init__(self) -> None:
        self.received: list[Captured] = []
        self._changed = asyncio.Event()
        self._server: HttpServer | None = None
        self.url = ""

    async def start(self) -> Receiver:
        router = Router()
        router.add("POST", "/v1/callbacks/{account}", self._accept)
        self._server = await start_server(router, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.port}"
        return self

    async def stop(self) -> None:
        assert self._server is not None
        await self._server.close()

    def _accept(self, request: Request) -> Response:
        self.received.append(Captured(request.method, request.path, request.query,
                                      request.headers, request.body))
        self._changed.set()
        return Response(200, b"", "text/plain")

    async def wait_for(self, count: int, within: float = 5.0,
                       path: str | None = None) -> list[Captured]:
        def mine() -> list[Captured]:
            return [r for r in self.received if path is None or r.path == path]
        async with asyncio.timeout(within):
            while len(mine()) < count:
                self._changed.clear()
                await self._changed.wait()
        return mine()


@dataclass
class Events:
    """Everything published on one shard's `hermes.events.<shard>` (a core NATS subscription,
    so no JetStream consumer is left behind)."""

    shard: int
    items: list[tuple[str | None, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_msg(self, msg: Msg) -> None:
        msg_id = msg.headers.get("Nats-Msg-Id") if msg.headers else None
        self.items.append((msg_id, EVENT_DECODER.decode(msg.data)))
        self.changed.set()

    async def wait_for(self, count: int, within: float = 5.0) -> list[tuple[str | None, Any]]:
        async with asyncio.timeout(within):
            while len(self.items) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.items

    def unique(self) -> list[Any]:
        """The events as JetStream keeps them: one per Nats-Msg-Id (core subscribers see
        every publish, including the repeats JetStream drops)."""
        seen: dict[str | None, Any] = {}
        for msg_id, event in self.items:
            seen.setdefault(msg_id, event)
        return list(seen.values())

    def results(self) -> list[AttemptResult]:
        return [e for e in self.unique() if isinstance(e, AttemptResult)]

    def receipts(self) -> list[ReceiptNotice]:
        return [e for e in self.unique() if isinstance(e, ReceiptNotice)]


@dataclass
class World:
    container: Container
    sandbox: Sandbox
    receiver: Receiver
    directory: AccountDirectory
    worker: DeliveryWorker
    metrics: DeliveryMetrics
    tenant_id: uuid.UUID
    events: Events

    async def message(self, mode: str = "test") -> uuid.UUID:
        """A message row for attempts to belong to: complete, started and already final, so
        no engine or recovery sweep running in the same database ever picks it up."""
        mid = uuid.uuid4()
        spec = MessageSpec(to=Address(phone="+447400000001"), content=Content(body="x"),
                           steps=[StepSpec(channel="sms", timeout_ms=30_000, success="delivered")])
        async with self.container.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO messages (id, tenant_id, mode, status, shard, spec, started_at,"
                " finished_at, outcome) VALUES (%s, %s, %s, 'delivered', %s, %s::jsonb, now(),"
                " now(), 'delivered')",
                (mid, self.tenant_id, mode, self.events.shard, msgspec.json.encode(spec).decode()))
        return mid

    async def job(self, channel: str, to: str, account_id: uuid.UUID, *, mode: str = "test",
                  content: Content | None = None, step: int = 0,
                  attempt: int = 0) -> DeliveryJob:
        """A pending attempt row and the job the engine would publish for it."""
        mid = await self.message(mode)
        attempt_id = uuid.uuid4()
        async with self.container.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO attempts (id, message_id, tenant_id, step, attempt, channel,"
                " provider_account_id) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (attempt_id, mid, self.tenant_id, step, attempt, channel, account_id))
        return DeliveryJob(
            attempt_id=attempt_id, message_id=mid, tenant_id=self.tenant_id, mode=mode,
            shard=self.events.shard, step=step, attempt=attempt, channel=channel,  # type: ignore[arg-type]
            account_id=account_id, to=to,
            content=content or Content(body="Your code is 123456", subject="Your code",
                                       title="Code"))

    async def deliver(self, job: DeliveryJob) -> AttemptResult:
        """What the worker does with one job taken off JetStream (claim, send, record, publish)."""
        result = await self.worker.process(job)
        assert result is not None
        await self.worker.publish(job.shard, result)
        return result

    async def attempt(self, attempt_id: uuid.UUID) -> dict[str, Any]:
        async with self.container.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT status, provider_message_id, error_code, provider_error_code, segments,"
                " cost, adapter, adapter_version, adapter_sha256, sent_at IS NOT NULL,"
                " answered_at IS NOT NULL, receipt_at IS NOT NULL FROM attempts WHERE id = %s",
                (attempt_id,))
            row = await cur.fetchone()
        assert row is not None
        keys = ("status", "provider_message_id", "error_code", "provider_error_code", "segments",
                "cost", "adapter", "adapter_version", "adapter_sha256", "sent", "answered",
                "receipt")
        return dict(zip(keys, row, strict=True))

    def sandbox_requests(self, provider: str) -> list[dict[str, Any]]:
        """The sends a provider received (FCM's OAuth token requests left out)."""
        return [r for r in self.sandbox.state.requests
                if r["provider"] == provider and r["path"] != "/token"]


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(receipt_delay=0.05, timeout_hold=2.0) as running:
        yield running


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    running = await Receiver().start()
    yield running
    await running.stop()


@pytest.fixture
async def world(container: Container, sandbox: Sandbox,
                receiver: Receiver) -> AsyncIterator[World]:
    sandbox.state.reset()
    sandbox.state.config.receipt_delay = 0.05
    sandbox.state.config.timeout_hold = 2.0
    receiver.received.clear()
    await ensure_streams(container.nats.jetstream())
    await ensure_sandbox_accounts(container.pool, sandbox.url, container.keyring)
    directory = AccountDirectory(container.pool, sandbox_url=sandbox.url,
                                 keyring=container.keyring)
    metrics = DeliveryMetrics()
    worker = DeliveryWorker(
        nats=container.nats, accounts=directory, attempts=container.attempts,
        sender=Sender(container.adapters, container.http, container.google_tokens,
                      public_url=receiver.url),
        metrics=metrics)
    tenant = await container.tenants.create_tenant(f"t-{uuid.uuid4().hex[:8]}")
    # A shard of its own (far above any real shard count), so only this test's events arrive.
    events = Events(shard=random.randint(20_000, 32_000))
    nc = await container.nats.wait_connected()
    sub: Subscription = await nc.subscribe(f"hermes.events.{events.shard}", cb=events.on_msg)
    try:
        yield World(container, sandbox, receiver, directory, worker, metrics, tenant.id, events)
        await sandbox.drain()
    finally:
        await sub.unsubscribe()
        # The events stream is a work queue nobody consumes in these tests: leave nothing behind.
        await container.nats.jetstream().purge_stream(
            "HERMES_EVENTS", subject=f"hermes.events.{events.shard}")


def decode(data: bytes) -> Any:
    return msgspec.json.decode(data)


def account_of(directory: AccountDirectory, account_id: uuid.UUID) -> ProviderAccount:
    found = directory._accounts.get(account_id)
    assert found is not None
    return found
