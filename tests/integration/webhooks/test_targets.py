"""SSRF rules for webhooks: refused at registration, and again at every delivery."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from hermes.bootstrap import Container
from hermes.infra.http.ssrf import TargetPolicy
from hermes.webhooks.dispatcher import WebhookDispatcher
from tests.integration.webhooks.conftest import (
    Receiver,
    Tenant,
    add_endpoint,
    event,
    queue,
)

Client = AsyncTestClient  # type: ignore[type-arg]


@pytest.mark.parametrize("url", [
    "https://10.0.0.1/hooks", "http://169.254.169.254/latest/meta-data/",
    "http://[fd00::1]/h", "http://[::ffff:10.0.0.1]/h", "http://100.64.1.1/h",
    "http://167772161/h",  # 10.0.0.1 spelled as one decimal number
])
async def test_private_targets_are_refused_at_registration(client: Client, tenant: Tenant,
                                                           url: str) -> None:
    r = await client.post("/v1/webhooks/endpoints", json={"url": url}, headers=tenant.auth)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "target.not_allowed" and body["errors"][0]["field"] == "url"
    listed = (await client.get("/v1/webhooks/endpoints", headers=tenant.auth)).json()["data"]
    assert listed == []


async def test_loopback_is_allowed_where_the_operator_allows_it(client: Client,
                                                                tenant: Tenant) -> None:
    # The test settings allow loopback, as `hermes dev` does.
    r = await client.post("/v1/webhooks/endpoints", json={"url": "http://localhost:9/h"},
                          headers=tenant.auth)
    assert r.status_code == 201, r.text


async def _last_error(container: Container, endpoint_id: Any) -> tuple[str, str | None]:
    async with container.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, last_error FROM webhook_deliveries WHERE endpoint_id = %s",
            (endpoint_id,))
        row = await cur.fetchone()
    assert row is not None
    return row[0], row[1]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_deliveries_check_the_target_again_when_they_are_sent(
    container: Container, tenant: Tenant, receiver: Receiver, host: str,
) -> None:
    """An endpoint stored when the rules allowed it, or whose name now resolves to a
    private address (DNS rebinding), gets nothing under rules that refuse it."""
    url = f"http://{host}:{receiver.port}/rebound"
    endpoint, _ = await add_endpoint(container, tenant, url)
    await queue(container, [event(tenant)])
    strict = WebhookDispatcher(container.pool, targets=TargetPolicy())
    try:
        while await strict.dispatch_once():
            pass
    finally:
        await strict.aclose()
    assert [r for r in receiver.requests if r.path == "/rebound"] == []
    status, error = await _last_error(container, endpoint.id)
    assert status == "pending" and error is not None and "target not allowed" in error

    # The same delivery goes out once the operator allows loopback.
    allowing = WebhookDispatcher(container.pool, targets=TargetPolicy.parse("127.0.0.0/8,::1"))
    async with container.pool.connection() as conn:
        await conn.execute("UPDATE webhook_deliveries SET next_attempt_at = now()"
                           " WHERE endpoint_id = %s", (endpoint.id,))
    try:
        while await allowing.dispatch_once():
            pass
    finally:
        await allowing.aclose()
    assert len([r for r in receiver.requests if r.path == "/rebound"]) == 1
    assert (await _last_error(container, endpoint.id))[0] == "delivered"
