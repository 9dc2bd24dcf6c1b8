"""`GET /v1/messages/{id}` and `GET /v1/messages`: what the engine recorded, tenant by tenant."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from hermes import _core
from hermes.bootstrap import Container
from hermes.domain.plan import Contact
from hermes.providers.secrets import seal
from tests.integration.api.conftest import Tenant, add_key

Client = AsyncTestClient[Litestar]
SEED = {"to": "cust-1", "body": "Your order has shipped", "cascade": ["sms", "email", "push"],
        "timeout_per_step": "30s", "metadata": {"order": "A-17"}}


async def _send(client: Client, tenant: Tenant, body: object = None) -> str:
    resp = await client.post("/v1/messages", headers=tenant.auth,
                             json=body or {"to": {"phone": "+4520123456"}, "body": "hi"})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


@pytest.fixture
async def provider_account(container: Container, tenant: Tenant) -> AsyncIterator[uuid.UUID]:
    """A disabled SMS account of the tenant's, removed afterwards: the database is shared
    with the engine and callback tests, which load provider accounts."""
    aid = uuid.uuid4()
    async with container.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO provider_accounts (id, tenant_id, name, channel, adapter, mode,"
            " credentials, status) VALUES (%s, %s, 'twilio-main', 'sms', 'twilio_sms', 'test',"
            " %s, 'disabled')", (aid, tenant.id, seal({}, aid, container.keyring)))
    yield aid
    async with container.pool.connection() as conn:
        await conn.execute("DELETE FROM attempts WHERE provider_account_id = %s", (aid,))
        await conn.execute("DELETE FROM provider_accounts WHERE id = %s", (aid,))


async def test_read_shows_steps_attempts_and_timeline(
    client: Client, container: Container, tenant: Tenant, provider_account: uuid.UUID,
) -> None:
    await container.contacts.put(tenant.id, Contact(
        external_id="cust-1", phone="+4520123456", email="ada@example.com",
        push_tokens=["a" * 64]))
    mid = uuid.UUID(await _send(client, tenant, SEED))
    account = provider_account
    t0 = datetime.now(UTC)
    # What the engine and delivery would have written: SMS sent, never confirmed; email delivered.
    async with container.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO attempts (id, message_id, tenant_id, step, attempt, channel,"
            " provider_account_id, adapter, adapter_version, status, provider_message_id,"
            " segments, cost, sent_at, answered_at) VALUES"
            " (%s, %s, %s, 0, 0, 'sms', %s, 'twilio_sms', '1.2.0', 'accepted', 'SM123', 1,"
            " %s, %s, %s)",
            (uuid.uuid4(), mid, tenant.id, account, Decimal("0.0075"), t0, t0))
        await conn.execute(
            "INSERT INTO attempts (id, message_id, tenant_id, step, attempt, channel, adapter,"
            " status, error_code, receipt_at) VALUES"
            " (%s, %s, %s, 1, 0, 'email', 'ses', 'delivered', NULL, %s)",
            (uuid.uuid4(), mid, tenant.id, t0 + timedelta(seconds=31)))
        for kind, data in [("step_started", '{"step": 0}'), ("step_timed_out", '{"step": 0}'),
                           ("fallback", '{"step": 1}'), ("finished", '{"outcome": "delivered"}')]:
            await conn.execute("INSERT INTO message_events (message_id, at, kind, data)"
                               " VALUES (%s, now(), %s, %s::jsonb)", (mid, kind, data))
        await conn.execute("UPDATE messages SET status = 'delivered', outcome = 'delivered',"
                           " finished_at = now(), updated_at = now() WHERE id = %s", (mid,))

    resp = await client.get(f"/v1/messages/{mid}", headers=tenant.auth)
    assert resp.status_code == 200, resp.text
    m = resp.json()
    assert m["id"] == str(mid) and m["object"] == "message"
    assert m["status"] == "delivered" and m["outcome"] == "delivered"
    assert m["finished_at"] is not None and m["created_at"] <= m["updated_at"]
    assert m["metadata"] == {"order": "A-17"} and m["contact"] == "cust-1"
    assert m["to"]["phone"] == "+4520123456" and m["country"] == "DK"
    assert [(s["index"], s["channel"], s["timeout_ms"], s["success"]) for s in m["steps"]] == [
        (0, "sms", 30_000, "delivered"), (1, "email", 30_000, "delivered"),
        (2, "push", 30_000, "accepted")]
    sms, email = m["attempts"]
    assert sms["provider_account_id"] == str(account) and sms["adapter"] == "twilio_sms"
    assert sms["adapter_version"] == "1.2.0" and sms["provider_message_id"] == "SM123"
    assert sms["cost"] == "0.0075" and sms["segments"] == 1 and sms["status"] == "accepted"
    assert sms["sent_at"] is not None and sms["receipt_at"] is None
    assert email["channel"] == "email" and email["status"] == "delivered"
    assert email["receipt_at"] is not None and email["cost"] is None
    kinds = [e["kind"] for e in m["events"]]
    assert kinds == ["accepted", "step_started", "step_timed_out", "fallback", "finished"]
    ids = [e["id"] for e in m["events"]]
    assert ids == sorted(ids)
    assert m["events"][0]["data"] == {"status": "queued"}
    assert m["events"][-1]["data"] == {"outcome": "delivered"}


async def test_another_tenant_and_unknown_ids_get_404(
    client: Client, container: Container, tenant: Tenant, other_tenant: Tenant,
) -> None:
    mid = await _send(client, tenant)
    for path in [f"/v1/messages/{mid}", f"/v1/messages/{uuid.uuid4()}", "/v1/messages/not-a-uuid"]:
        resp = await client.get(path, headers=other_tenant.auth if mid in path else tenant.auth)
        assert resp.status_code == 404, (path, resp.text)
        assert resp.json()["code"] == "request.not_found"
    resp = await client.post(f"/v1/messages/{mid}/cancel", headers=other_tenant.auth)
    assert resp.status_code == 404 and resp.json()["code"] == "request.not_found"
    listed = await client.get("/v1/messages", headers=other_tenant.auth)
    assert listed.status_code == 200 and listed.json()["data"] == []


async def test_reading_needs_the_read_scope(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    mid = await _send(client, tenant)
    key = await add_key(container, tenant.id, ("send",))
    for path in [f"/v1/messages/{mid}", "/v1/messages"]:
        resp = await client.get(path, headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == 403 and resp.json()["code"] == "auth.forbidden"


async def test_list_pages_are_stable_across_inserts(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    sent = [await _send(client, tenant) for _ in range(5)]
    newest_first = list(reversed(sent))
    first = await client.get("/v1/messages", params={"limit": 2}, headers=tenant.auth)
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [m["id"] for m in page["data"]] == newest_first[:2]
    assert page["data"][0]["links"]["self"] == f"/v1/messages/{newest_first[0]}"
    assert page["data"][0]["channels"] == ["sms"]
    # A message sent between pages does not shift the next one.
    late = await _send(client, tenant)
    seen = [m["id"] for m in page["data"]]
    cursor = page["next_cursor"]
    while cursor:
        resp = await client.get("/v1/messages", params={"limit": 2, "cursor": cursor},
                                headers=tenant.auth)
        assert resp.status_code == 200, resp.text
        seen += [m["id"] for m in resp.json()["data"]]
        cursor = resp.json()["next_cursor"]
        assert (cursor is None) == (not resp.json()["has_more"])
    assert seen == newest_first
    everything = await client.get("/v1/messages", headers=tenant.auth)
    assert [m["id"] for m in everything.json()["data"]] == [late, *newest_first]
    assert everything.json()["has_more"] is False and everything.json()["next_cursor"] is None


async def test_list_filters_by_status_and_time(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    old, mid, new = [await _send(client, tenant) for _ in range(3)]
    async with container.pool.connection() as conn:
        await conn.execute("UPDATE messages SET created_at = created_at - interval '2 hours'"
                           " WHERE id = %s", (old,))
        await conn.execute("UPDATE messages SET status = 'delivered' WHERE id = %s", (mid,))
    by_status = await client.get("/v1/messages", params={"status": "delivered"},
                                 headers=tenant.auth)
    assert [m["id"] for m in by_status.json()["data"]] == [mid]
    both = await client.get("/v1/messages", params=[("status", "delivered"), ("status", "queued")],
                            headers=tenant.auth)
    assert [m["id"] for m in both.json()["data"]] == [new, mid, old]
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    recent = await client.get("/v1/messages", params={"created_after": hour_ago},
                              headers=tenant.auth)
    assert [m["id"] for m in recent.json()["data"]] == [new, mid]
    older = await client.get("/v1/messages", params={"created_before": hour_ago},
                             headers=tenant.auth)
    assert [m["id"] for m in older.json()["data"]] == [old]


async def test_bad_list_parameters_are_problems(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    cases: list[tuple[dict[str, str | int], str]] = [
        ({"limit": 500}, "limit"), ({"limit": 0}, "limit"),
        ({"cursor": "bogus!"}, "cursor"), ({"created_after": "yesterday"}, "created_after")]
    for params, field in cases:
        resp = await client.get("/v1/messages", params=params, headers=tenant.auth)
        assert resp.status_code in (400, 422), resp.text
        problem = resp.json()
        assert problem["code"] == "request.invalid", problem
        assert field in [e.get("field") for e in problem["errors"]], problem


async def test_step_status_comes_from_the_engines_stored_state(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    mid = uuid.UUID(await _send(client, tenant, {
        "to": {"phone": "+4520123456", "email": "ada@example.com"}, "body": "hi",
        "cascade": ["sms", "email"], "timeout_per_step": "30s"}))
    # The engine's state after SMS was sent, timed out and email was tried.
    cascade = _core.Cascade()
    plan = {"steps": [{"channel": "sms", "timeout_ms": 30_000},
                      {"channel": "email", "timeout_ms": 30_000}]}
    actions = cascade.handle({"type": "start", "plan": plan}, 1_000)  # type: ignore[typeddict-item]
    cascade.handle({"type": "accepted", "step": 0, "attempt": 0}, 1_100)
    timer = next(a["deadline"] for a in actions if a["type"] == "set_timer")
    cascade.handle({"type": "timer_fired", "deadline": timer}, timer)
    async with container.pool.connection() as conn:
        await conn.execute("UPDATE messages SET engine_state = %s, status = 'sending'"
                           " WHERE id = %s", (cascade.to_bytes(), mid))
    m = (await client.get(f"/v1/messages/{mid}", headers=tenant.auth)).json()
    assert [s["status"] for s in m["steps"]] == cascade.step_statuses
    assert m["steps"][0]["status"] == "timed_out" and m["status"] == "sending"

    async with container.pool.connection() as conn:
        await conn.execute("UPDATE messages SET engine_state = '\\x0102' WHERE id = %s",
                           (mid,))
    # A state this build cannot read hides the step status; the read still works.
    m = (await client.get(f"/v1/messages/{mid}", headers=tenant.auth)).json()
    assert [s["status"] for s in m["steps"]] == [None, None]
