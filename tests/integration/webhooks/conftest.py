"""Webhook fixtures: tenants with keys, an in-process HTTP receiver, the API test client."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from litestar.testing import AsyncTestClient

from hermes.api.app import create_app
from hermes.bootstrap import Container
from hermes.tenancy.secrets import digest, display_prefix, new_api_key
from hermes.webhooks import WebhookEvent, enqueue
from hermes.webhooks.store import Endpoint, PostgresWebhookStore


@dataclass
class Tenant:
    id: uuid.UUID
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


TenantFactory = Callable[..., Awaitable[Tenant]]


@pytest.fixture
async def make_tenant(container: Container) -> AsyncIterator[TenantFactory]:
    made: list[uuid.UUID] = []

    async def make(scopes: tuple[str, ...] = ("send", "read", "manage")) -> Tenant:
        t = await container.tenants.create_tenant(f"wh-{uuid.uuid4().hex[:8]}")
        key = new_api_key("test")
        await container.tenants.add_api_key(t.id, prefix=display_prefix(key),
                                            key_hash=digest(key), mode="test",
                                            scopes=list(scopes))
        made.append(t.id)
        return Tenant(t.id, key)

    yield make
    # Leave nothing due behind for another test's dispatcher (they share the database).
    async with container.pool.connection() as conn:
        await conn.execute("UPDATE webhook_deliveries SET status = 'abandoned'"
                           " WHERE tenant_id = ANY(%s) AND status = 'pending'", (made,))


@pytest.fixture
async def tenant(make_tenant: TenantFactory) -> Tenant:
    return await make_tenant()


@pytest.fixture
async def client(container: Container) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    # The test client runs the app on an event loop of its own, so the app opens
    # its own connections; the test reads PostgreSQL through `container`.
    async with AsyncTestClient(create_app(container.settings)) as c:
        yield c


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A tiny HTTP/1.1 server on 127.0.0.1 that records requests and answers by path."""

    statuses: dict[str, list[int]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, *statuses: int) -> None:
        """Answer `path` with these statuses in turn, then with the last one for ever."""
        self.statuses[path] = list(statuses)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while True:
                self.arrived.clear()
                if predicate():
                    return
                await self.arrived.wait()

    def _status(self, path: str) -> int:
        queue = self.statuses.get(path, [200])
        return queue.pop(0) if len(queue) > 1 else queue[0]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while line := await reader.readline():
                _, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = h.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Received(path, headers, body))
                self.arrived.set()
                if path in self.delays:
                    await asyncio.sleep(self.delays[path])
                status = self._status(path)
                writer.write(f"HTTP/1.1 {status} Answer\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def add_endpoint(container: Container, tenant: Tenant, url: str) -> tuple[Endpoint, str]:
    return await PostgresWebhookStore(container.pool).create_endpoint(tenant.id, url)


async def queue(container: Container, events: list[WebhookEvent]) -> int:
    async with container.pool.connection() as conn, conn.transaction():
        return await enqueue(conn, events)


def event(tenant: Tenant, type_: str = "message.finished", **data: object) -> WebhookEvent:
    return WebhookEvent(tenant_id=tenant.id, message_id=uuid.uuid4(), type=type_,  # type: ignore[arg-type]
                        payload=dict(data))
