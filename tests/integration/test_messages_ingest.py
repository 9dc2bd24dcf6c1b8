"""`POST /v1/messages`: durable before 202, every bad input a problem with nothing written."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from litestar.testing import AsyncTestClient

from hermes.api.app import create_app
from hermes.bootstrap import Container
from hermes.domain.plan import Contact
from hermes.infra.nats.streams import ensure_streams
from hermes.tenancy.secrets import digest, display_prefix, new_api_key
from tests.integration.api.conftest import retire_messages
from tests.integration.api.nats_helpers import cascade_commands

SEED = {"to": "+4520123456", "body": "Your order has shipped",
        "cascade": ["sms", "email", "push"], "timeout_per_step": "30s"}


@dataclass
class Tenant:
    id: uuid.UUID
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
async def tenant(container: Container) -> AsyncIterator[Tenant]:
    t = await container.tenants.create_tenant(f"t-{uuid.uuid4().hex[:8]}")
    key = new_api_key("test")
    await container.tenants.add_api_key(t.id, prefix=display_prefix(key), key_hash=digest(key),
                                        mode="test", scopes=["send", "read", "manage"])
    yield Tenant(t.id, key)
    await retire_messages(container, [t.id])


@pytest.fixture
async def client(container: Container) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    await ensure_streams(container.nats.jetstream())
    # The test client runs the app on an event loop of its own, so the app opens
    # its own connections; the test reads PostgreSQL and NATS through `container`.
    async with AsyncTestClient(create_app(container.settings)) as c:
        yield c


async def _rows(container: Container, tenant: Tenant) -> int:
    async with container.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM messages WHERE tenant_id = %s",
                                 (tenant.id,))
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_seed_request_via_contact_is_committed_and_published(
    clean_streams: None, client: AsyncTestClient, container: Container,  # type: ignore[type-arg]
    tenant: Tenant,
) -> None:
    await container.contacts.put(tenant.id, Contact(
        external_id="cust-1", phone="+4520123456", email="ada@example.com",
        push_tokens=["a" * 64]))
    resp = await client.post("/v1/messages", json=SEED, headers=tenant.auth)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "queued" and body["links"]["self"] == f"/v1/messages/{body['id']}"
    mid = uuid.UUID(body["id"])

    async with container.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, spec, shard, next_deadline IS NOT NULL FROM messages WHERE id = %s",
            (mid,))
        status, spec, shard, has_deadline = await cur.fetchone()  # type: ignore[misc]
        cur = await conn.execute("SELECT kind FROM message_events WHERE message_id = %s", (mid,))
        kinds = [r[0] for r in await cur.fetchall()]
    assert status == "queued" and has_deadline and kinds == ["accepted"]
    assert [s["channel"] for s in spec["steps"]] == ["sms", "email", "push"]
    assert {s["timeout_ms"] for s in spec["steps"]} == {30_000}
    assert spec["to"] == {"phone": "+4520123456", "email": "ada@example.com",
                          "push_token": "a" * 64}
    assert spec["content"]["subject"] == "Your order has shipped"  # defaulted from the body
    assert spec["contact"] == "cust-1" and spec["country"] == "DK"

    commands = await cascade_commands(container, shard, f"{mid}:start")
    found = commands[0] if commands else None
    assert found is not None and found["tenant_id"] == str(tenant.id) and found["mode"] == "test"
    assert found["spec"]["steps"][0]["channel"] == "sms"


@pytest.mark.parametrize(
    ("payload", "status", "code", "field"),
    [
        (b"{not json", 400, "request.malformed", None),
        (b'{"to": 5, "body": "x"}', 422, "request.invalid", "to"),
        (b'{"to": "+4520123456", "body": "x", "bogus": 1}', 422, "request.invalid", None),
        (json.dumps({"to": {"phone": "+4512345678"}, "body": "hi"}).encode(), 422,
         "recipient.invalid_phone", "to.phone"),
        (json.dumps({"to": {"phone": "+4520123456"}, "body": "hi", "cascade": ["sms", "fax"]})
         .encode(), 422, "cascade.unknown_channel", None),
        (json.dumps({"to": {"phone": "+4520123456"}, "body": "hi", "cascade": ["sms", "email"]})
         .encode(), 422, "recipient.missing_address", "to.email"),
        (json.dumps({"to": {"phone": "+4520123456"}, "body": "hi", "timeout_per_step": "soon"})
         .encode(), 422, "cascade.timeout_out_of_range", "timeout_per_step"),
        (json.dumps({"to": "nobody-by-that-name", "body": "hi"}).encode(), 422,
         "recipient.unknown_contact", "to"),
    ],
)
async def test_bad_input_is_a_problem_and_writes_nothing(
    client: AsyncTestClient, container: Container, tenant: Tenant,  # type: ignore[type-arg]
    payload: bytes, status: int, code: str, field: str | None,
) -> None:
    before = await _rows(container, tenant)
    resp = await client.post("/v1/messages", content=payload,
                             headers={**tenant.auth, "Content-Type": "application/json"})
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    codes = [problem["code"]] + [e["code"] for e in problem.get("errors", [])]
    assert code in codes
    if field is not None:
        assert field in [e.get("field") for e in problem["errors"]]
    assert await _rows(container, tenant) == before


async def test_idempotency_key_replays_and_conflicts(
    client: AsyncTestClient, container: Container, tenant: Tenant  # type: ignore[type-arg]
) -> None:
    headers = {**tenant.auth, "Idempotency-Key": f"order-{uuid.uuid4()}"}
    msg = {"to": {"phone": "+4520123456"}, "body": "code 1234"}
    first = await client.post("/v1/messages", json=msg, headers=headers)
    again = await client.post("/v1/messages", json=msg, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post("/v1/messages", json={**msg, "body": "code 9999"}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency.conflict"
    assert await _rows(container, tenant) == 1


async def test_a_key_without_send_scope_is_refused(
    client: AsyncTestClient, container: Container, tenant: Tenant  # type: ignore[type-arg]
) -> None:
    key = new_api_key("test")
    await container.tenants.add_api_key(tenant.id, prefix=display_prefix(key),
                                        key_hash=digest(key), mode="test", scopes=["read"])
    resp = await client.post("/v1/messages", json=SEED, headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 403 and resp.json()["code"] == "auth.forbidden"
