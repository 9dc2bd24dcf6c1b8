"""`/v1/webhooks`: endpoints with a secret shown once, tenant isolation, the delivery log."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from hermes.bootstrap import Container
from tests.integration.webhooks.conftest import Tenant, TenantFactory, event, queue

Client = AsyncTestClient  # type: ignore[type-arg]


def _problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["code"] == code and body["status"] == status
    return body


async def test_secret_is_shown_once_and_never_listed(client: Client, tenant: Tenant) -> None:
    resp = await client.post("/v1/webhooks/endpoints", json={"url": "https://example.com/h"},
                             headers=tenant.auth)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
    assert created["url"] == "https://example.com/h" and created["enabled"] is True

    listed = (await client.get("/v1/webhooks/endpoints", headers=tenant.auth)).json()
    assert [e["id"] for e in listed["data"]] == [created["id"]]
    one = await client.get(f"/v1/webhooks/endpoints/{created['id']}", headers=tenant.auth)
    assert one.status_code == 200
    for shown in (listed["data"][0], one.json()):
        assert "secret" not in shown and secret not in str(shown)

    again = (await client.post("/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/x"},
                               headers=tenant.auth)).json()
    assert again["secret"] != secret  # every endpoint has its own


async def test_tenants_never_see_each_others_endpoints(
    client: Client, make_tenant: TenantFactory
) -> None:
    a, b = await make_tenant(), await make_tenant()
    created = (await client.post("/v1/webhooks/endpoints", json={"url": "https://a.example/h"},
                                 headers=a.auth)).json()
    path = f"/v1/webhooks/endpoints/{created['id']}"
    _problem(await client.get(path, headers=b.auth), 404, "request.not_found")
    _problem(await client.delete(path, headers=b.auth), 404, "request.not_found")
    assert (await client.get("/v1/webhooks/endpoints", headers=b.auth)).json()["data"] == []
    # B's attempt changed nothing; A deletes its own, once.
    assert (await client.get(path, headers=a.auth)).status_code == 200
    assert (await client.delete(path, headers=a.auth)).status_code == 204
    _problem(await client.get(path, headers=a.auth), 404, "request.not_found")
    _problem(await client.delete(path, headers=a.auth), 404, "request.not_found")
    assert (await client.get("/v1/webhooks/endpoints", headers=a.auth)).json()["data"] == []
    _problem(await client.get("/v1/webhooks/endpoints/not-an-id", headers=a.auth),
             404, "request.not_found")


@pytest.mark.parametrize("url", [
    "ftp://example.com/h", "example.com/h", "https://", "http:///path", "not a url",
    "https://user:pw@example.com/h", "https://example.com:99999/h", "javascript:alert(1)",
    "https://example.com/h#frag", "https://exa mple.com/", "", "https://" + "a" * 2100 + ".com",
])
async def test_bad_urls_are_problems_and_create_nothing(
    client: Client, tenant: Tenant, url: str
) -> None:
    resp = await client.post("/v1/webhooks/endpoints", json={"url": url}, headers=tenant.auth)
    body = _problem(resp, 422, "webhook.invalid_url")
    assert body["errors"][0]["field"] == "url" and body["detail"]
    assert (await client.get("/v1/webhooks/endpoints", headers=tenant.auth)).json()["data"] == []


async def test_schema_errors_and_scopes(client: Client, make_tenant: TenantFactory) -> None:
    tenant = await make_tenant()
    _problem(await client.post("/v1/webhooks/endpoints", json={}, headers=tenant.auth),
             422, "request.invalid")
    _problem(await client.post("/v1/webhooks/endpoints", json={"url": 5}, headers=tenant.auth),
             422, "request.invalid")
    _problem(await client.post("/v1/webhooks/endpoints", json={"url": "https://x.example"}),
             401, "auth.missing")
    reader = await make_tenant(scopes=("read",))
    _problem(await client.post("/v1/webhooks/endpoints", json={"url": "https://x.example"},
                               headers=reader.auth), 403, "auth.forbidden")
    _problem(await client.get("/v1/webhooks/endpoints", headers=reader.auth),
             403, "auth.forbidden")
    assert (await client.get("/v1/webhooks/deliveries", headers=reader.auth)).status_code == 200
    sender = await make_tenant(scopes=("send",))
    _problem(await client.get("/v1/webhooks/deliveries", headers=sender.auth),
             403, "auth.forbidden")


async def test_endpoints_are_limited_per_tenant(client: Client, tenant: Tenant) -> None:
    from hermes.webhooks.store import MAX_ENDPOINTS

    ids = []
    for i in range(MAX_ENDPOINTS):
        resp = await client.post("/v1/webhooks/endpoints", json={"url": f"https://e.example/{i}"},
                                 headers=tenant.auth)
        assert resp.status_code == 201
        ids.append(resp.json()["id"])
    _problem(await client.post("/v1/webhooks/endpoints", json={"url": "https://e.example/x"},
                               headers=tenant.auth), 422, "webhook.too_many_endpoints")
    await client.delete(f"/v1/webhooks/endpoints/{ids[0]}", headers=tenant.auth)
    resp = await client.post("/v1/webhooks/endpoints", json={"url": "https://e.example/x"},
                             headers=tenant.auth)
    assert resp.status_code == 201


async def test_deliveries_are_listed_newest_first_paginated_and_filtered(
    client: Client, container: Container, make_tenant: TenantFactory
) -> None:
    a, b = await make_tenant(), await make_tenant()
    for t in (a, b):
        resp = await client.post("/v1/webhooks/endpoints", json={"url": "https://h.example/"},
                                 headers=t.auth)
        assert resp.status_code == 201
    events = [event(a, "message.sent"), event(a, "message.fallback"), event(a, "message.sent"),
              event(a, "message.delivered"), event(a, "message.finished")]
    await queue(container, events[:3])
    await queue(container, events[3:])
    await queue(container, [event(b)])

    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/webhooks/deliveries", params=params,
                                 headers=a.auth)).json()
        pages += 1
        seen += page["data"]
        assert page["has_more"] == (page["next_cursor"] is not None)
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3
    assert [d["event_type"] for d in seen] == [e.type for e in reversed(events)]
    assert len({d["id"] for d in seen}) == 5
    first = seen[0]
    assert first["status"] == "pending" and first["attempts"] == 0
    assert first["next_attempt_at"] is not None and first["last_status"] is None
    assert first["message_id"] == str(events[-1].message_id)

    mid = str(events[1].message_id)
    only = (await client.get("/v1/webhooks/deliveries", params={"message_id": mid},
                             headers=a.auth)).json()["data"]
    assert [d["event_type"] for d in only] == ["message.fallback"]
    delivered = (await client.get("/v1/webhooks/deliveries", params={"status": "delivered"},
                                  headers=a.auth)).json()["data"]
    assert delivered == []
    # B sees only its own; A's message ids find nothing for B.
    b_rows = (await client.get("/v1/webhooks/deliveries", headers=b.auth)).json()["data"]
    assert len(b_rows) == 1 and b_rows[0]["id"] not in {d["id"] for d in seen}
    assert (await client.get("/v1/webhooks/deliveries", params={"message_id": mid},
                             headers=b.auth)).json()["data"] == []

    for params in ({"status": "bogus"}, {"message_id": "nope"}, {"cursor": "!!"},
                   {"limit": 0}, {"limit": 101}):
        resp = await client.get("/v1/webhooks/deliveries", params=params, headers=a.auth)
        assert resp.status_code in (400, 422), (params, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
    _problem(await client.get("/v1/webhooks/deliveries", params={"status": "bogus"},
                              headers=a.auth), 422, "request.invalid")


async def test_deleting_an_endpoint_abandons_its_pending_deliveries(
    client: Client, container: Container, tenant: Tenant
) -> None:
    created = (await client.post("/v1/webhooks/endpoints", json={"url": "https://h.example/"},
                                 headers=tenant.auth)).json()
    await queue(container, [event(tenant)])
    resp = await client.delete(f"/v1/webhooks/endpoints/{created['id']}", headers=tenant.auth)
    assert resp.status_code == 204
    rows = (await client.get("/v1/webhooks/deliveries", headers=tenant.auth)).json()["data"]
    assert [(d["status"], d["next_attempt_at"]) for d in rows] == [("abandoned", None)]
    assert await queue(container, [event(tenant)]) == 0
    assert uuid.UUID(rows[0]["endpoint_id"]) == uuid.UUID(created["id"])
