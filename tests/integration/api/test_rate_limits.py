"""Validation layer 8 through the API: 429 with Retry-After and the RateLimit headers,
batches all or nothing, replays free, daily quotas, per-tenant limits, Redis down."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from hermes.api.app import create_app
from hermes.bootstrap import Container
from hermes.domain.limits import day_of
from hermes.settings import Settings
from hermes.tenancy.admin import create_admin_token
from hermes.tenancy.secrets import digest, display_prefix, new_api_key
from tests.integration.api.conftest import Tenant, count_messages

Client = AsyncTestClient[Litestar]
MSG = {"to": {"phone": "+4520123456"}, "body": "Your order has shipped"}
BAD = {"to": {"phone": "+4512345678"}, "body": "no such number"}


async def _limit(container: Container, tenant: Tenant, **limits: Any) -> None:
    """Give the tenant its own limits (before its key is first used: keys are cached 5 s)."""
    assert await container.tenants.update_tenant(tenant.id, name=None, status=None,
                                                 limits=limits)


def _fields(value: str) -> dict[str, dict[str, int]]:
    """`"rate";r=1;t=2, "daily";r=3` -> {"rate": {"r": 1, "t": 2}, "daily": {"r": 3}}."""
    out = {}
    for item in value.split(","):
        name, *params = item.strip().split(";")
        out[name.strip('"')] = {k: int(v) for k, v in (p.split("=") for p in params)}
    return out


async def _live_key(container: Container, tenant: Tenant) -> dict[str, str]:
    key = new_api_key("live")
    await container.tenants.add_api_key(tenant.id, prefix=display_prefix(key),
                                        key_hash=digest(key), mode="live", scopes=["send"])
    return {"Authorization": f"Bearer {key}"}


async def test_over_the_rate_is_429_with_retry_after_and_ratelimit_headers(
        client: Client, container: Container, tenant: Tenant) -> None:
    await _limit(container, tenant, rate_per_s=0.01, burst=2)  # refills 1 token per 100 s
    first = await client.post("/v1/messages", json=MSG, headers=tenant.auth)
    assert first.status_code == 202, first.text
    assert first.headers["RateLimit-Policy"] == '"rate";q=2;w=200'
    state = _fields(first.headers["RateLimit"])["rate"]
    assert state["r"] == 1 and 99 <= state["t"] <= 100
    assert (await client.post("/v1/messages", json=MSG, headers=tenant.auth)).status_code == 202

    refused = await client.post("/v1/messages", json=MSG, headers=tenant.auth)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["code"] == "rate_limit.exceeded" and problem["status"] == 429
    assert problem["violated-policies"] == ["rate"]
    retry = int(refused.headers["Retry-After"])
    assert 95 <= retry <= 100 and problem["retry_after"] == retry
    assert _fields(refused.headers["RateLimit"])["rate"]["r"] == 0
    assert refused.headers["RateLimit-Policy"] == '"rate";q=2;w=200'
    assert await count_messages(container, tenant) == 2  # the refused one was not committed


async def test_test_and_live_keys_have_buckets_of_their_own(
        client: Client, container: Container, tenant: Tenant) -> None:
    await _limit(container, tenant, rate_per_s=0.01, burst=1)
    live = await _live_key(container, tenant)
    assert (await client.post("/v1/messages", json=MSG, headers=tenant.auth)).status_code == 202
    assert (await client.post("/v1/messages", json=MSG, headers=tenant.auth)).status_code == 429
    assert (await client.post("/v1/messages", json=MSG, headers=live)).status_code == 202
    assert (await client.post("/v1/messages", json=MSG, headers=live)).status_code == 429


async def test_a_batch_costs_its_valid_items_all_or_nothing(
        client: Client, container: Container, tenant: Tenant) -> None:
    await _limit(container, tenant, rate_per_s=0.01, burst=5)
    # Two valid items and one refused by validation: two tokens.
    first = await client.post("/v1/messages/batch", json={"messages": [MSG, BAD, MSG]},
                              headers=tenant.auth)
    assert first.status_code == 200 and first.json()["accepted"] == 2
    assert _fields(first.headers["RateLimit"])["rate"]["r"] == 3
    # Four do not fit in the three left: none is committed.
    refused = await client.post("/v1/messages/batch", json={"messages": [MSG] * 4},
                                headers=tenant.auth)
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "rate_limit.exceeded"
    assert "needs 4, 3 are available" in refused.json()["detail"]
    assert await count_messages(container, tenant) == 2
    # Three do.
    fits = await client.post("/v1/messages/batch", json={"messages": [MSG] * 3},
                             headers=tenant.auth)
    assert fits.status_code == 200 and fits.json()["accepted"] == 3
    assert _fields(fits.headers["RateLimit"])["rate"]["r"] == 0
    # More than the burst could never pass: not a 429 to retry, a request to split.
    too_big = await client.post("/v1/messages/batch", json={"messages": [MSG] * 6},
                                headers=tenant.auth)
    assert too_big.status_code == 413 and too_big.json()["code"] == "request.too_large"


async def test_a_replay_costs_nothing_and_is_answered_even_when_the_bucket_is_empty(
        client: Client, container: Container, tenant: Tenant) -> None:
    await _limit(container, tenant, rate_per_s=0.01, burst=2)
    keyed = {**tenant.auth, "Idempotency-Key": f"order-{uuid.uuid4()}"}
    first = await client.post("/v1/messages", json=MSG, headers=keyed)
    assert first.status_code == 202
    replay = await client.post("/v1/messages", json=MSG, headers=keyed)
    assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    assert _fields(replay.headers["RateLimit"])["rate"]["r"] == 1  # the token was given back

    assert (await client.post("/v1/messages", json=MSG, headers=tenant.auth)).status_code == 202
    # The bucket is empty now; the replay is still answered, a new message is not.
    again = await client.post("/v1/messages", json=MSG, headers=keyed)
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other_body = await client.post("/v1/messages", json={**MSG, "body": "other"}, headers=keyed)
    assert other_body.status_code == 422
    assert other_body.json()["code"] == "idempotency.conflict"
    assert (await client.post("/v1/messages", json=MSG, headers=tenant.auth)).status_code == 429
    assert await count_messages(container, tenant) == 2


async def test_a_batch_replay_costs_nothing(
        client: Client, container: Container, tenant: Tenant) -> None:
    await _limit(container, tenant, rate_per_s=0.01, burst=3)
    keyed = {**tenant.auth, "Idempotency-Key": f"batch-{uuid.uuid4()}"}
    body = {"messages": [MSG, MSG, MSG]}
    first = await client.post("/v1/messages/batch", json=body, headers=keyed)
    assert first.status_code == 200 and first.json()["accepted"] == 3
    # The bucket is empty; the retry commits nothing new and is answered in full.
    replay = await client.post("/v1/messages/batch", json=body, headers=keyed)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["results"] == first.json()["results"]
    assert _fields(replay.headers["RateLimit"])["rate"]["r"] == 0
    assert await count_messages(container, tenant) == 3


async def test_a_used_up_daily_quota_is_429_until_utc_midnight(
        client: Client, container: Container, tenant: Tenant) -> None:
    await _limit(container, tenant, rate_per_s=0, daily_quota=2)
    ok = await client.post("/v1/messages", json=MSG, headers=tenant.auth)
    assert ok.status_code == 202
    assert ok.headers["RateLimit-Policy"] == '"daily";q=2;w=86400'
    assert _fields(ok.headers["RateLimit"])["daily"]["r"] == 1
    batch = await client.post("/v1/messages/batch", json={"messages": [MSG, MSG]},
                              headers=tenant.auth)
    assert batch.status_code == 429 and batch.json()["code"] == "quota.exceeded"
    assert (await client.post("/v1/messages", json=MSG, headers=tenant.auth)).status_code == 202

    refused = await client.post("/v1/messages", json=MSG, headers=tenant.auth)
    assert refused.status_code == 429
    assert refused.json()["code"] == "quota.exceeded"
    assert refused.json()["violated-policies"] == ["daily"]
    to_midnight = day_of(time.time())[1] - time.time()
    assert abs(int(refused.headers["Retry-After"]) - to_midnight) <= 5
    assert _fields(refused.headers["RateLimit"])["daily"]["r"] == 0
    assert await count_messages(container, tenant) == 2


async def test_without_overrides_the_settings_apply(
        client: Client, container: Container, tenant: Tenant) -> None:
    ok = await client.post("/v1/messages", json=MSG, headers=tenant.auth)
    s = container.settings
    window = max(1, int(-(-s.rate_limit_burst // s.rate_limit_per_s)))
    assert ok.headers["RateLimit-Policy"] == f'"rate";q={s.rate_limit_burst};w={window}'
    account = (await client.get("/v1/account", headers=tenant.auth)).json()
    assert account["limits"] == {"rate_per_s": s.rate_limit_per_s,
                                 "burst": s.rate_limit_burst, "daily_quota": s.daily_quota}


async def test_an_operator_sets_a_tenants_limits_through_the_admin_api(
        client: Client, container: Container, settings: Settings, tenant: Tenant) -> None:
    assert settings.database_url
    admin = {"Authorization": f"Bearer {create_admin_token(settings.database_url)}"}
    r = await client.patch(f"/admin/v1/tenants/{tenant.id}", headers=admin,
                           json={"limits": {"rate_per_s": 0.01, "burst": 1,
                                            "daily_quota": 500}})
    assert r.status_code == 200, r.text
    assert r.json()["limits"] == {"rate_per_s": 0.01, "burst": 1, "daily_quota": 500}
    # A partial update leaves the rest; null goes back to the platform default.
    r = await client.patch(f"/admin/v1/tenants/{tenant.id}", headers=admin,
                           json={"limits": {"daily_quota": None}})
    assert r.json()["limits"] == {"rate_per_s": 0.01, "burst": 1, "daily_quota": None}
    got = (await client.get(f"/admin/v1/tenants/{tenant.id}", headers=admin)).json()
    assert got["limits"] == {"rate_per_s": 0.01, "burst": 1, "daily_quota": None}
    bad = await client.patch(f"/admin/v1/tenants/{tenant.id}", headers=admin,
                             json={"limits": {"burst": 0}})
    assert bad.status_code == 422

    account = (await client.get("/v1/account", headers=tenant.auth)).json()
    assert account["limits"] == {"rate_per_s": 0.01, "burst": 1,
                                 "daily_quota": settings.daily_quota}
    assert (await client.post("/v1/messages", json=MSG, headers=tenant.auth)).status_code == 202
    assert (await client.post("/v1/messages", json=MSG, headers=tenant.auth)).status_code == 429


async def test_with_redis_unreachable_requests_are_admitted_and_a_warning_logged(
        container: Container, clean_streams: None, tenant: Tenant,
        ) -> None:
    await _limit(container, tenant, rate_per_s=0.01, burst=1)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = container.settings.with_overrides(redis_url=f"redis://127.0.0.1:{port}/0")
    warnings: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = warnings.append  # type: ignore[method-assign]
    log = logging.getLogger("hermes.ratelimit")
    async with AsyncTestClient(create_app(settings)) as down:
        log.addHandler(handler)  # after start: the app configures logging as it starts
        try:
            answers = [await down.post("/v1/messages", json=MSG, headers=tenant.auth)
                       for _ in range(3)]
        finally:
            log.removeHandler(handler)
    assert [a.status_code for a in answers] == [202, 202, 202]  # fail open
    assert all("RateLimit" not in a.headers for a in answers)  # nothing was checked
    assert any("Redis did not answer" in r.getMessage() for r in warnings)
    assert await count_messages(container, tenant) == 3
