"""`/v1/contacts/{external_id}`: stored normalised, isolated per tenant, bad input a problem."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from hermes.bootstrap import Container
from tests.integration.api.conftest import Tenant, add_key

Client = AsyncTestClient[Litestar]
APNS = "A1" * 32
FCM = "fcm-" + "x" * 150


async def test_round_trip_stores_addresses_normalised(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    body = {"phone": "+45 20 12 34 56", "email": "Ada@BÜCHER.Example",
            "push_tokens": [APNS.lower()], "whatsapp": "+45 20-12-34-56",
            "locale": "da-DK", "timezone": "Europe/Copenhagen"}
    created = await client.put("/v1/contacts/cust-1", json=body, headers=tenant.auth)
    assert created.status_code == 201, created.text
    c = created.json()
    assert c["external_id"] == "cust-1" and c["object"] == "contact"
    assert c["phone"] == "+4520123456" and c["whatsapp"] == "+4520123456"
    assert c["email"] == "Ada@xn--bcher-kva.example"
    assert c["push_tokens"] == [APNS.lower()]
    assert c["locale"] == "da-DK" and c["timezone"] == "Europe/Copenhagen"

    got = await client.get("/v1/contacts/cust-1", headers=tenant.auth)
    assert got.status_code == 200 and got.json() == c

    replaced = await client.put("/v1/contacts/cust-1", json={"email": "ada@example.com"},
                                headers=tenant.auth)
    assert replaced.status_code == 200, replaced.text
    r = replaced.json()
    assert r["email"] == "ada@example.com" and r["phone"] is None and r["push_tokens"] == []
    assert r["created_at"] == c["created_at"] and r["updated_at"] >= c["updated_at"]

    # A message naming the contact goes to its stored address.
    sent = await client.post("/v1/messages", json={"to": "cust-1", "body": "hi",
                                                   "cascade": ["email"]}, headers=tenant.auth)
    assert sent.status_code == 202, sent.text
    msg = (await client.get(f"/v1/messages/{sent.json()['id']}", headers=tenant.auth)).json()
    assert msg["to"] == {"email": "ada@example.com"} and msg["contact"] == "cust-1"

    deleted = await client.delete("/v1/contacts/cust-1", headers=tenant.auth)
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await client.get("/v1/contacts/cust-1", headers=tenant.auth)).status_code == 404
    again = await client.delete("/v1/contacts/cust-1", headers=tenant.auth)
    assert again.status_code == 404 and again.json()["code"] == "request.not_found"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"phone": "+4512345678"}, "recipient.invalid_phone", "phone"),
        ({"email": "not an address"}, "recipient.invalid_email", "email"),
        ({"whatsapp": "12"}, "recipient.invalid_phone", "whatsapp"),
        ({"push_tokens": [APNS, "short"]}, "recipient.invalid_push_token", "push_tokens[1]"),
        ({"timezone": "Mars/Olympus"}, "request.invalid", "timezone"),
        ({"timezone": "../../etc/passwd"}, "request.invalid", "timezone"),
        ({"locale": "not a locale"}, "request.invalid", "locale"),
        ({"phone": 4520123456}, "request.invalid", "phone"),
        ({"fax": "+4520123456"}, "request.invalid", None),
    ],
)
async def test_bad_input_is_a_problem_naming_the_field(
    client: Client, container: Container, tenant: Tenant,
    body: dict[str, Any], code: str, field: str | None,
) -> None:
    resp = await client.put("/v1/contacts/cust-bad", json=body, headers=tenant.auth)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert code in [problem["code"]] + [e["code"] for e in problem["errors"]]
    if field is not None:
        assert field in [e.get("field") for e in problem["errors"]]
    assert (await client.get("/v1/contacts/cust-bad", headers=tenant.auth)).status_code == 404


async def test_every_violation_is_reported_at_once(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    resp = await client.put("/v1/contacts/c", headers=tenant.auth, json={
        "phone": "+4512345678", "email": "@", "timezone": "Nowhere/Land"})
    assert resp.status_code == 422
    assert {e["field"] for e in resp.json()["errors"]} == {"phone", "email", "timezone"}


async def test_another_tenant_cannot_see_or_delete_a_contact(
    client: Client, container: Container, tenant: Tenant, other_tenant: Tenant,
) -> None:
    put = await client.put("/v1/contacts/shared-id", json={"phone": "+4520123456"},
                           headers=tenant.auth)
    assert put.status_code == 201
    assert (await client.get("/v1/contacts/shared-id",
                             headers=other_tenant.auth)).status_code == 404
    assert (await client.delete("/v1/contacts/shared-id",
                                headers=other_tenant.auth)).status_code == 404
    # The same external id is the other tenant's own contact, not a replacement.
    mine = await client.put("/v1/contacts/shared-id", json={"email": "b@example.com"},
                            headers=other_tenant.auth)
    assert mine.status_code == 201
    a = (await client.get("/v1/contacts/shared-id", headers=tenant.auth)).json()
    assert a["phone"] == "+4520123456" and a["email"] is None


async def test_scopes(client: Client, container: Container, tenant: Tenant) -> None:
    read_only = {"Authorization": f"Bearer {await add_key(container, tenant.id, ('read',))}"}
    send_only = {"Authorization": f"Bearer {await add_key(container, tenant.id, ('send',))}"}
    assert (await client.put("/v1/contacts/x", json={}, headers=read_only)).status_code == 403
    assert (await client.put("/v1/contacts/x", json={}, headers=send_only)).status_code == 201
    assert (await client.get("/v1/contacts/x", headers=send_only)).status_code == 403
    assert (await client.get("/v1/contacts/x", headers=read_only)).status_code == 200
    assert (await client.delete("/v1/contacts/x", headers=read_only)).status_code == 403


async def test_a_message_finds_the_contact_by_its_phone_or_email(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    put = await client.put("/v1/contacts/cust-9", headers=tenant.auth, json={
        "phone": "+45 20 12 34 56", "email": "Ada@Example.COM", "push_tokens": [APNS]})
    assert put.status_code == 201 and put.json()["email"] == "Ada@example.com"
    for to in ["+4520123456", "Ada@EXAMPLE.com", "Ada@example.com"]:
        sent = await client.post("/v1/messages", headers=tenant.auth, json={
            "to": to, "body": "Your order has shipped", "cascade": ["sms", "email", "push"],
            "timeout_per_step": "30s"})
        assert sent.status_code == 202, (to, sent.text)
        m = (await client.get(f"/v1/messages/{sent.json()['id']}", headers=tenant.auth)).json()
        assert m["contact"] == "cust-9", to
        assert m["to"] == {"phone": "+4520123456", "email": "Ada@example.com",
                           "push_token": APNS.lower()}  # APNs tokens are stored lowercase


async def test_a_body_that_is_not_json_is_malformed(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    resp = await client.put("/v1/contacts/c", content=b"{not json",
                            headers={**tenant.auth, "Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "request.malformed"
