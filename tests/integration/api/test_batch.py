"""`POST /v1/messages/batch`: a result per item; bad items leave nothing behind."""

from __future__ import annotations

import asyncio
import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient

from hermes.bootstrap import Container
from hermes.domain.plan import Contact
from tests.integration.api.conftest import Tenant, add_key, count_messages
from tests.integration.api.nats_helpers import cascade_commands

GOOD = {"to": {"phone": "+4520123456"}, "body": "Your order has shipped"}

Client = AsyncTestClient[Litestar]


async def test_mixed_batch_commits_the_good_items_and_reports_the_bad_ones(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    await container.contacts.put(tenant.id, Contact(
        external_id="cust-7", phone="+4520123456", email="ada@example.com"))
    items = [
        GOOD,
        {"to": {"phone": "+4512345678"}, "body": "no such number"},
        {"to": "cust-7", "body": "via a contact", "cascade": ["sms", "email"],
         "timeout_per_step": "30s"},
        {"to": {"phone": "+4520123456"}, "body": "x", "bogus": True},
        "not an object",
        {"to": "nobody", "body": "x"},
    ]
    resp = await client.post("/v1/messages/batch", json={"messages": items},
                             headers=tenant.auth)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["accepted"] == 2 and body["rejected"] == 4
    results = body["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    assert {r["index"] for r in results if "id" in r} == {0, 2}
    assert all(r["status"] == "queued" for r in results if "id" in r)
    errors = {r["index"]: r["error"] for r in results if "error" in r}
    assert errors[1]["code"] == "recipient.invalid_phone" and errors[1]["status"] == 422
    assert errors[1]["type"] == "urn:hermes:error:recipient.invalid_phone"
    assert "to.phone" in [e["field"] for e in errors[1]["errors"]]
    assert errors[3]["code"] == "request.invalid"
    assert errors[4]["code"] == "request.invalid"
    assert errors[5]["code"] == "recipient.unknown_contact"

    assert await count_messages(container, tenant) == 2
    ids = [uuid.UUID(r["id"]) for r in results if "id" in r]
    async with container.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, spec->'to', shard FROM messages WHERE id = ANY(%s) ORDER BY id", (ids,))
        rows = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
    assert rows[ids[1]][0] == {"phone": "+4520123456", "email": "ada@example.com"}
    # Both are started, as a single send would be, and nothing else is published
    # (the streams start empty for this module).
    js = container.nats.jetstream()
    for _ in range(50):
        if (await js.stream_info("HERMES_CASCADE")).state.messages >= 2:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    assert (await js.stream_info("HERMES_CASCADE")).state.messages == 2
    for mid in ids:
        found = await cascade_commands(container, rows[mid][1], f"{mid}:start")
        assert found and found[0]["type"] == "start" and found[0]["id"] == str(mid)


async def test_more_than_a_thousand_is_refused_whole(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    resp = await client.post("/v1/messages/batch", json={"messages": [GOOD] * 1001},
                             headers=tenant.auth)
    assert resp.status_code == 413, resp.text
    assert resp.json()["code"] == "request.too_large"
    assert resp.json()["errors"][0]["field"] == "messages"
    assert await count_messages(container, tenant) == 0


async def test_a_thousand_are_accepted_in_one_commit(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    resp = await client.post("/v1/messages/batch", json={"messages": [GOOD] * 1000},
                             headers=tenant.auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 1000
    assert await count_messages(container, tenant) == 1000


async def test_bad_envelopes_are_problems(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    for payload, status, code in [
        (b'{"messages": []}', 422, "request.invalid"),
        (b'{"messages": {}}', 422, "request.invalid"),
        (b'{"items": []}', 422, "request.invalid"),
        (b'{"messages": [', 400, "request.malformed"),
    ]:
        resp = await client.post("/v1/messages/batch", content=payload,
                                 headers={**tenant.auth, "Content-Type": "application/json"})
        assert resp.status_code == status, (payload, resp.text)
        assert resp.json()["code"] == code
        assert resp.headers["content-type"].startswith("application/problem+json")
    assert await count_messages(container, tenant) == 0


async def test_an_idempotency_key_replays_the_whole_first_answer(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    headers = {**tenant.auth, "Idempotency-Key": f"batch-{uuid.uuid4()}"}
    items = [GOOD, {"to": {"phone": "+4512345678"}, "body": "bad"}, {**GOOD, "body": "two"}]
    first = await client.post("/v1/messages/batch", json={"messages": items}, headers=headers)
    again = await client.post("/v1/messages/batch", json={"messages": items}, headers=headers)
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json() and first.json()["accepted"] == 2
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await count_messages(container, tenant) == 2

    other = await client.post("/v1/messages/batch", json={"messages": [GOOD]}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency.conflict"
    # The batch's keys never collide with a single message's key.
    single = await client.post("/v1/messages", json=GOOD, headers=headers)
    assert single.status_code == 202 and single.json()["id"] not in [
        r.get("id") for r in first.json()["results"]]
    assert await count_messages(container, tenant) == 3


async def test_a_retry_commits_what_the_first_attempt_did_not(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    key = f"batch-{uuid.uuid4()}"
    items = [GOOD, {**GOOD, "body": "two"}]
    first = await client.post("/v1/messages/batch", json={"messages": items},
                              headers={**tenant.auth, "Idempotency-Key": key})
    kept = first.json()["results"][0]["id"]
    # As if the first attempt had died after committing only item 0.
    async with container.pool.connection() as conn:
        lost = uuid.UUID(first.json()["results"][1]["id"])
        await conn.execute("DELETE FROM message_events WHERE message_id = %s", (lost,))
        await conn.execute("DELETE FROM messages WHERE id = %s", (lost,))
    again = await client.post("/v1/messages/batch", json={"messages": items},
                              headers={**tenant.auth, "Idempotency-Key": key})
    results = again.json()["results"]
    assert results[0]["id"] == kept and results[1]["id"] != str(lost)
    assert await count_messages(container, tenant) == 2


async def test_batch_needs_send_scope(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    key = await add_key(container, tenant.id, ("read",))
    resp = await client.post("/v1/messages/batch", json={"messages": [GOOD]},
                             headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 403 and resp.json()["code"] == "auth.forbidden"
    assert await count_messages(container, tenant) == 0
