"""`/v1/suppressions` and validation layer 7: suppressed steps are skipped, a message with
nothing left to send is refused and leaves nothing behind."""

from __future__ import annotations

import asyncio
import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient

from hermes.bootstrap import Container
from hermes.domain.plan import Contact
from tests.integration.api.conftest import Tenant, add_key, count_messages

Client = AsyncTestClient[Litestar]
PHONE = "+4520123456"
TWO_STEPS = {"to": {"phone": PHONE, "email": "ada@example.com"}, "body": "Your order shipped",
             "cascade": ["sms", "email"], "timeout_per_step": "30s"}


async def suppress(client: Client, tenant: Tenant, kind: str, address: str) -> None:
    resp = await client.put(f"/v1/suppressions/{kind}/{address}", headers=tenant.auth)
    assert resp.status_code in (200, 201), resp.text


async def cascade_backlog(container: Container) -> int:
    info = await container.nats.jetstream().stream_info("HERMES_CASCADE")
    return int(info.state.messages)


async def test_suppressions_are_kept_normalised_and_removed(
    client: Client, tenant: Tenant,
) -> None:
    resp = await client.put("/v1/suppressions/phone/+45 20 12 34 56", headers=tenant.auth)
    assert resp.status_code == 201, resp.text
    entry = resp.json()
    assert (entry["object"], entry["kind"], entry["address"], entry["reason"]) == (
        "suppression", "phone", PHONE, "manual")
    assert entry["message_id"] is None and entry["created_at"]
    # Again, written another way: the same entry.
    resp = await client.put(f"/v1/suppressions/phone/{PHONE}", headers=tenant.auth)
    assert resp.status_code == 200 and resp.json()["created_at"] == entry["created_at"]
    resp = await client.put("/v1/suppressions/email/Ada@EXAMPLE.com", headers=tenant.auth)
    assert resp.status_code == 201 and resp.json()["address"] == "Ada@example.com"

    got = await client.get("/v1/suppressions/email/Ada@example.com", headers=tenant.auth)
    assert got.status_code == 200 and got.json()["kind"] == "email"
    listed = (await client.get("/v1/suppressions", headers=tenant.auth)).json()
    assert [(e["kind"], e["address"]) for e in listed["data"]] == [
        ("email", "Ada@example.com"), ("phone", PHONE)]
    assert listed["has_more"] is False and listed["next_cursor"] is None
    only = (await client.get("/v1/suppressions?kind=phone", headers=tenant.auth)).json()
    assert [e["address"] for e in only["data"]] == [PHONE]
    none = (await client.get("/v1/suppressions?reason=stop", headers=tenant.auth)).json()
    assert none["data"] == []

    assert (await client.delete(f"/v1/suppressions/phone/{PHONE}",
                                headers=tenant.auth)).status_code == 204
    missing = await client.get(f"/v1/suppressions/phone/{PHONE}", headers=tenant.auth)
    assert missing.status_code == 404 and missing.json()["code"] == "request.not_found"
    assert (await client.delete(f"/v1/suppressions/phone/{PHONE}",
                                headers=tenant.auth)).status_code == 404


async def test_bad_addresses_kinds_and_scopes_are_problems(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    resp = await client.put("/v1/suppressions/phone/+4512345678", headers=tenant.auth)
    assert resp.status_code == 422 and resp.json()["code"] == "recipient.invalid_phone"
    resp = await client.put(f"/v1/suppressions/fax/{PHONE}", headers=tenant.auth)
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "kind"
    resp = await client.get("/v1/suppressions?reason=whim", headers=tenant.auth)
    assert resp.status_code == 422

    reader = {"Authorization": f"Bearer {await add_key(container, tenant.id, ('read',))}"}
    sender = {"Authorization": f"Bearer {await add_key(container, tenant.id, ('send',))}"}
    resp = await client.put(f"/v1/suppressions/phone/{PHONE}", headers=reader)
    assert resp.status_code == 403 and resp.json()["code"] == "auth.forbidden"
    assert (await client.delete(f"/v1/suppressions/phone/{PHONE}",
                                headers=reader)).status_code == 403
    assert (await client.get("/v1/suppressions", headers=sender)).status_code == 403
    assert (await client.get("/v1/suppressions", headers=reader)).status_code == 200


async def test_another_tenant_neither_sees_nor_removes_an_entry(
    client: Client, tenant: Tenant, other_tenant: Tenant,
) -> None:
    await suppress(client, tenant, "email", "ada@example.com")
    path = "/v1/suppressions/email/ada@example.com"
    assert (await client.get(path, headers=other_tenant.auth)).status_code == 404
    assert (await client.delete(path, headers=other_tenant.auth)).status_code == 404
    assert (await client.get("/v1/suppressions", headers=other_tenant.auth)).json()["data"] == []
    assert (await client.get(path, headers=tenant.auth)).status_code == 200
    # Nor does its list apply to the other tenant's messages.
    resp = await client.post("/v1/messages", headers=other_tenant.auth,
                             json={"to": {"email": "ada@example.com"}, "body": "hi",
                                   "cascade": ["email"]})
    assert resp.status_code == 202, resp.text


async def test_the_list_is_cursor_paginated(client: Client, tenant: Tenant) -> None:
    for n in range(5):
        await suppress(client, tenant, "email", f"user{n}@example.com")
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        url = "/v1/suppressions?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=tenant.auth)).json()
        seen += [e["address"] for e in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == [f"user{n}@example.com" for n in reversed(range(5))]
    bad = await client.get("/v1/suppressions?cursor=nonsense", headers=tenant.auth)
    assert bad.status_code == 422


async def test_a_suppressed_sms_step_is_skipped_and_the_message_goes_by_email(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    await suppress(client, tenant, "phone", PHONE)
    resp = await client.post("/v1/messages", headers=tenant.auth, json=TWO_STEPS)
    assert resp.status_code == 202, resp.text
    mid = resp.json()["id"]
    async with container.pool.connection() as conn:
        cur = await conn.execute("SELECT spec FROM messages WHERE id = %s", (mid,))
        row = await cur.fetchone()
    assert row is not None
    assert [s["channel"] for s in row[0]["steps"]] == ["email"]
    assert row[0]["skipped"] == [{"step": 0, "channel": "sms", "reason": "suppressed"}]

    detail = (await client.get(f"/v1/messages/{mid}", headers=tenant.auth)).json()
    assert [s["channel"] for s in detail["steps"]] == ["email"]
    accepted = detail["events"][0]
    assert accepted["kind"] == "accepted"
    assert accepted["data"]["skipped"] == [{"step": 0, "channel": "sms", "reason": "suppressed"}]

    # Un-suppressed, the next message goes by SMS first again.
    await client.delete(f"/v1/suppressions/phone/{PHONE}", headers=tenant.auth)
    resp = await client.post("/v1/messages", headers=tenant.auth, json=TWO_STEPS)
    detail = (await client.get(f"/v1/messages/{resp.json()['id']}", headers=tenant.auth)).json()
    assert [s["channel"] for s in detail["steps"]] == ["sms", "email"]


async def test_a_message_whose_every_step_is_suppressed_is_refused_and_leaves_nothing(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    await container.contacts.put(tenant.id, Contact(
        external_id="cust-9", phone=PHONE, email="ada@example.com"))
    await suppress(client, tenant, "phone", PHONE)
    await suppress(client, tenant, "email", "ada@example.com")
    for body in (TWO_STEPS, {**TWO_STEPS, "to": "cust-9"}):
        resp = await client.post("/v1/messages", headers=tenant.auth, json=body)
        assert resp.status_code == 422, resp.text
        problem = resp.json()
        assert problem["code"] == "compliance.suppressed"
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert [(e["code"], e["field"]) for e in problem["errors"]] == [
            ("compliance.suppressed", "steps[0]"), ("compliance.suppressed", "steps[1]")]
    assert await count_messages(container, tenant) == 0
    await asyncio.sleep(0.3)
    assert await cascade_backlog(container) == 0


async def test_a_batch_refuses_only_the_items_with_nothing_left_to_send(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    await suppress(client, tenant, "phone", PHONE)
    items = [
        {"to": {"phone": PHONE}, "body": "only SMS", "cascade": ["sms"]},
        TWO_STEPS,
        {"to": {"phone": "+4520123457"}, "body": "someone else"},
    ]
    resp = await client.post("/v1/messages/batch", headers=tenant.auth,
                             json={"messages": items})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    refused = body["results"][0]["error"]
    assert refused["code"] == "compliance.suppressed" and refused["status"] == 422
    assert refused["errors"][0]["field"] == "steps[0]"
    mid = uuid.UUID(body["results"][1]["id"])
    async with container.pool.connection() as conn:
        cur = await conn.execute("SELECT spec FROM messages WHERE id = %s", (mid,))
        row = await cur.fetchone()
    assert row is not None and [s["channel"] for s in row[0]["steps"]] == ["email"]
    assert await count_messages(container, tenant) == 2
    for _ in range(50):
        if await cascade_backlog(container) >= 2:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    assert await cascade_backlog(container) == 2


async def test_the_openapi_document_describes_the_suppression_api(client: Client) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    paths = doc["paths"]
    assert {"put", "get", "delete"} <= set(paths["/v1/suppressions/{kind}/{address}"])
    params = {p["name"] for p in paths["/v1/suppressions"]["get"]["parameters"]}
    assert {"kind", "reason", "cursor", "limit"} <= params
    assert {"SuppressionView", "SuppressionList"} <= set(doc["components"]["schemas"])


async def test_a_retry_of_a_message_accepted_before_the_suppression_replays_its_answer(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    body = {"to": {"phone": PHONE}, "body": "Your order shipped", "cascade": ["sms"]}
    headers = {**tenant.auth, "Idempotency-Key": "order-1042"}
    first = await client.post("/v1/messages", headers=headers, json=body)
    assert first.status_code == 202, first.text
    await suppress(client, tenant, "phone", PHONE)
    again = await client.post("/v1/messages", headers=headers, json=body)
    assert again.status_code == 202, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    # A new request to the address is refused.
    fresh = await client.post("/v1/messages", headers={**tenant.auth, "Idempotency-Key": "x-2"},
                              json=body)
    assert fresh.status_code == 422 and fresh.json()["code"] == "compliance.suppressed"
    assert await count_messages(container, tenant) == 1
