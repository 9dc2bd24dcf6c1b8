"""Tenants with API keys, and a test client running the app with its own container."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from litestar.testing import AsyncTestClient

from hermes.api.app import create_app
from hermes.bootstrap import Container
from hermes.infra.nats.streams import ensure_streams
from hermes.tenancy.secrets import digest, display_prefix, new_api_key


@dataclass
class Tenant:
    id: uuid.UUID
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


MakeTenant = Callable[..., Awaitable[Tenant]]


@pytest.fixture
async def make_tenant(container: Container) -> AsyncIterator[MakeTenant]:
    made: list[uuid.UUID] = []

    async def make(scopes: tuple[str, ...] = ("send", "read", "manage")) -> Tenant:
        t = await container.tenants.create_tenant(f"t-{uuid.uuid4().hex[:8]}")
        made.append(t.id)
        return Tenant(t.id, await add_key(container, t.id, scopes))

    yield make
    await retire_messages(container, made)


async def retire_messages(container: Container, tenant_ids: list[uuid.UUID]) -> None:
    """Mark a test's messages started and finished, so the engine and the recovery sweep
    of later tests (sharing this database) never pick them up."""
    async with container.pool.connection() as conn:
        await conn.execute(
            "UPDATE messages SET started_at = coalesce(started_at, now()),"
            " finished_at = coalesce(finished_at, now()), next_deadline = NULL"
            " WHERE tenant_id = ANY(%s)", (tenant_ids,))


async def add_key(container: Container, tenant_id: uuid.UUID, scopes: tuple[str, ...]) -> str:
    key = new_api_key("test")
    await container.tenants.add_api_key(tenant_id, prefix=display_prefix(key),
                                        key_hash=digest(key), mode="test", scopes=list(scopes))
    return key


@pytest.fixture
async def tenant(make_tenant: MakeTenant) -> Tenant:
    return await make_tenant()


@pytest.fixture
async def other_tenant(make_tenant: MakeTenant) -> Tenant:
    return await make_tenant()


@pytest.fixture
async def client(container: Container,
                 clean_streams: None) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    # Streams start empty and without consumers: these tests read what the API publishes.
    await ensure_streams(container.nats.jetstream())
    # The test client runs the app on an event loop of its own, so the app opens
    # its own connections; the test reads PostgreSQL and NATS through `container`.
    async with AsyncTestClient(create_app(container.settings)) as c:
        yield c


async def count_messages(container: Container, tenant: Tenant) -> int:
    async with container.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM messages WHERE tenant_id = %s",
                                 (tenant.id,))
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])
