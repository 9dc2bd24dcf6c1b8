"""Enqueue and dispatch: signed per Standard Webhooks, retried on its schedule, 410 disables."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from hermes.bootstrap import Container
from hermes.webhooks import MAX_ATTEMPTS, RETRY_SCHEDULE_S, WebhookDispatcher, WebhookEvent
from hermes.webhooks.enqueue import enqueue
from tests.integration.webhooks.conftest import (
    Receiver,
    Tenant,
    TenantFactory,
    add_endpoint,
    event,
    queue,
)


class Clock:
    """Virtual time: a test moves it; the dispatcher reads it."""

    def __init__(self) -> None:
        self.t = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.t


async def _delivery(container: Container, delivery_id: uuid.UUID | str) -> dict[str, Any]:
    async with container.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, attempts, next_attempt_at, last_status, last_error, delivered_at,"
            " payload FROM webhook_deliveries WHERE id = %s", (delivery_id,))
        row = await cur.fetchone()
    assert row is not None
    keys = ("status", "attempts", "next_attempt_at", "last_status", "last_error",
            "delivered_at", "payload")
    return dict(zip(keys, row, strict=True))


async def _deliveries_of(container: Container, tenant: Tenant) -> list[dict[str, Any]]:
    async with container.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, endpoint_id, event_type, status, payload FROM webhook_deliveries"
            " WHERE tenant_id = %s ORDER BY created_at", (tenant.id,))
        rows = await cur.fetchall()
    return [dict(zip(("id", "endpoint_id", "event_type", "status", "payload"), r, strict=True))
            for r in rows]


async def _drain(d: WebhookDispatcher) -> int:
    """Dispatch until nothing is due. The dispatcher serves every tenant, so what other
    tests left due goes out too: assertions look at this test's rows and requests only."""
    total = 0
    while n := await d.dispatch_once():
        total += n
    return total


async def test_signature_verifies_with_the_standardwebhooks_library(
    container: Container, tenant: Tenant, receiver: Receiver
) -> None:
    endpoint, secret = await add_endpoint(container, tenant, receiver.url("/hooks"))
    ev = event(tenant, "message.delivered", channel="sms", step=0)
    assert await queue(container, [ev]) == 1
    d = WebhookDispatcher(container.pool)
    try:
        assert await _drain(d) >= 1
    finally:
        await d.aclose()

    [got] = [r for r in receiver.requests if r.path == "/hooks"]
    [row] = await _deliveries_of(container, tenant)
    assert got.path == "/hooks" and got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == str(row["id"])
    assert abs(int(got.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 60
    assert got.headers["webhook-signature"].startswith("v1,")

    payload = Webhook(secret).verify(got.body, got.headers)
    assert payload["type"] == "message.delivered"
    assert payload["data"] == {"message_id": str(ev.message_id), "channel": "sms", "step": 0}
    assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None

    tampered = got.body.replace(b'"sms"', b'"email"')
    assert tampered != got.body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, got.headers)
    other_secret = (await add_endpoint(container, tenant, receiver.url("/other")))[1]
    with pytest.raises(WebhookVerificationError):
        Webhook(other_secret).verify(got.body, got.headers)

    stored = await _delivery(container, row["id"])
    assert stored["status"] == "delivered" and stored["attempts"] == 1
    assert stored["last_status"] == 200 and stored["delivered_at"] is not None
    assert row["endpoint_id"] == endpoint.id


async def test_enqueue_fans_out_to_enabled_endpoints_inside_the_callers_transaction(
    container: Container, make_tenant: TenantFactory, receiver: Receiver
) -> None:
    a, b, c = await make_tenant(), await make_tenant(), await make_tenant()
    a1, _ = await add_endpoint(container, a, receiver.url("/a1"))
    a2, _ = await add_endpoint(container, a, receiver.url("/a2"))
    off, _ = await add_endpoint(container, a, receiver.url("/off"))
    b1, _ = await add_endpoint(container, b, receiver.url("/b1"))
    async with container.pool.connection() as conn:
        await conn.execute("UPDATE webhook_endpoints SET enabled = false WHERE id = %s",
                           (off.id,))
    events = [event(a, "message.sent"), event(b, "message.fallback"),
              event(a, "message.finished", outcome="delivered"), event(c, "message.sent")]

    async with container.pool.connection() as conn:
        async with conn.transaction(force_rollback=True):
            assert await enqueue(conn, events) == 5  # 2 for a's endpoints x 2 + 1 for b
            assert len(await _deliveries_of(container, a)) == 0  # not visible before commit
    assert await _deliveries_of(container, a) == []  # and gone with a rollback

    assert await queue(container, events) == 5
    rows_a = await _deliveries_of(container, a)
    assert sorted((r["event_type"], r["endpoint_id"]) for r in rows_a) == sorted(
        [("message.sent", a1.id), ("message.sent", a2.id),
         ("message.finished", a1.id), ("message.finished", a2.id)])
    [row_b] = await _deliveries_of(container, b)
    assert row_b["endpoint_id"] == b1.id and row_b["status"] == "pending"
    body = row_b["payload"]
    assert set(body) == {"type", "timestamp", "data"} and body["type"] == "message.fallback"
    assert body["data"] == {"message_id": str(events[1].message_id)}
    assert await _deliveries_of(container, c) == []
    assert await queue(container, []) == 0


async def test_failures_are_retried_on_the_standard_webhooks_schedule_then_failed(
    container: Container, tenant: Tenant, receiver: Receiver
) -> None:
    receiver.answer("/down", 500)
    await add_endpoint(container, tenant, receiver.url("/down"))
    await queue(container, [event(tenant)])
    [row] = await _deliveries_of(container, tenant)
    clock = Clock()
    d = WebhookDispatcher(container.pool, now=clock, rng=random.Random(7))
    offsets = []
    try:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            assert await _drain(d) >= 1
            state = await _delivery(container, row["id"])
            assert state["attempts"] == attempt and state["last_status"] == 500
            assert state["last_error"] and "500" in state["last_error"]
            if attempt == MAX_ATTEMPTS:
                assert state["status"] == "failed"
                break
            assert state["status"] == "pending"
            offset = (state["next_attempt_at"] - clock.t).total_seconds()
            offsets.append(offset)
            base = RETRY_SCHEDULE_S[attempt]
            assert base * 0.9 - 0.01 <= offset <= base * 1.1 + 0.01, (attempt, offset)
            # Not due a second early; due at its time.
            clock.t = state["next_attempt_at"] - timedelta(seconds=1)
            await _drain(d)
            assert (await _delivery(container, row["id"]))["attempts"] == attempt
            assert len([r for r in receiver.requests if r.path == "/down"]) == attempt
            clock.t = state["next_attempt_at"]
        clock.t += timedelta(days=30)
        await _drain(d)  # a failed delivery is never tried again
    finally:
        await d.aclose()

    assert len(offsets) == MAX_ATTEMPTS - 1
    # Jitter: the offsets are not the bare schedule.
    assert [round(o) for o in offsets] != list(RETRY_SCHEDULE_S[1:])
    mine = [r for r in receiver.requests if r.path == "/down"]
    assert len(mine) == MAX_ATTEMPTS
    assert {r.headers["webhook-id"] for r in mine} == {str(row["id"])}
    stamps = [int(r.headers["webhook-timestamp"]) for r in mine]
    # About 27.6 hours from the first attempt to the last.
    assert stamps == sorted(stamps)
    assert 0.9 * sum(RETRY_SCHEDULE_S) - 1 <= stamps[-1] - stamps[0] <= 1.1 * sum(RETRY_SCHEDULE_S)


async def test_a_failed_attempt_then_success_is_delivered(
    container: Container, tenant: Tenant, receiver: Receiver
) -> None:
    receiver.answer("/flaky", 503, 204)
    await add_endpoint(container, tenant, receiver.url("/flaky"))
    await queue(container, [event(tenant)])
    [row] = await _deliveries_of(container, tenant)
    clock = Clock()
    d = WebhookDispatcher(container.pool, now=clock)
    try:
        await _drain(d)
        first = await _delivery(container, row["id"])
        assert first["status"] == "pending" and first["last_status"] == 503
        clock.t = first["next_attempt_at"]
        await _drain(d)
    finally:
        await d.aclose()
    done = await _delivery(container, row["id"])
    assert done["status"] == "delivered" and done["attempts"] == 2 and done["last_status"] == 204


async def test_an_unreachable_endpoint_is_retried_with_the_error_recorded(
    container: Container, tenant: Tenant, receiver: Receiver
) -> None:
    closed = Receiver()
    await closed.start()
    url = closed.url("/gone-away")
    await closed.stop()  # nothing listens on this port any more
    await add_endpoint(container, tenant, url)
    await queue(container, [event(tenant)])
    [row] = await _deliveries_of(container, tenant)
    d = WebhookDispatcher(container.pool, timeout_s=2)
    try:
        await _drain(d)
    finally:
        await d.aclose()
    state = await _delivery(container, row["id"])
    assert state["status"] == "pending" and state["attempts"] == 1
    assert state["last_status"] is None and state["last_error"]


async def test_an_endpoint_that_does_not_answer_in_time_is_retried(
    container: Container, tenant: Tenant, receiver: Receiver
) -> None:
    receiver.delays["/stuck"] = 3.0
    await add_endpoint(container, tenant, receiver.url("/stuck"))
    await queue(container, [event(tenant)])
    [row] = await _deliveries_of(container, tenant)
    d = WebhookDispatcher(container.pool, timeout_s=0.5)
    try:
        await _drain(d)
    finally:
        await d.aclose()
    state = await _delivery(container, row["id"])
    assert state["status"] == "pending" and state["last_status"] is None
    assert state["last_error"] == "no answer within 0.5 s"


async def test_410_disables_the_endpoint_and_stops_its_deliveries(
    container: Container, tenant: Tenant, receiver: Receiver
) -> None:
    receiver.answer("/gone", 410)
    gone, _ = await add_endpoint(container, tenant, receiver.url("/gone"))
    live, _ = await add_endpoint(container, tenant, receiver.url("/live"))
    await queue(container, [event(tenant, "message.sent"), event(tenant, "message.finished")])
    d = WebhookDispatcher(container.pool, batch_size=1)
    try:
        await _drain(d)
    finally:
        await d.aclose()

    rows = await _deliveries_of(container, tenant)
    to_gone = [r["status"] for r in rows if r["endpoint_id"] == gone.id]
    to_live = [r["status"] for r in rows if r["endpoint_id"] == live.id]
    assert to_gone == ["abandoned", "abandoned"] and to_live == ["delivered", "delivered"]
    assert [r.path for r in receiver.requests].count("/gone") == 1  # the second never went out
    async with container.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT enabled, disabled_reason FROM webhook_endpoints WHERE id = %s", (gone.id,))
        enabled, reason = await cur.fetchone()  # type: ignore[misc]
    assert enabled is False and "410" in reason
    # New events no longer go to the disabled endpoint.
    assert await queue(container, [event(tenant)]) == 1


async def test_run_wakes_on_enqueue_and_sends_until_stopped(
    container: Container, tenant: Tenant, receiver: Receiver
) -> None:
    secret = (await add_endpoint(container, tenant, receiver.url("/run")))[1]
    stop = asyncio.Event()
    # A poll interval far beyond the test's patience: only the notification can wake it.
    d = WebhookDispatcher(container.pool, poll_interval_s=3600)
    task = asyncio.create_task(d.run(stop))
    try:
        await asyncio.sleep(0.5)  # listening by now
        ev = WebhookEvent(tenant_id=tenant.id, message_id=uuid.uuid4(), type="message.read",
                          payload={"step": 1})
        await queue(container, [ev])
        await receiver.wait_until(lambda: any(r.path == "/run" for r in receiver.requests))
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    [got] = [r for r in receiver.requests if r.path == "/run"]
    assert json.loads(got.body)["data"]["step"] == 1
    Webhook(secret).verify(got.body, got.headers)
    [row] = await _deliveries_of(container, tenant)
    assert row["status"] == "delivered"


async def test_a_slow_endpoint_does_not_hold_up_others_and_stop_waits_for_it(
    container: Container, make_tenant: TenantFactory, receiver: Receiver
) -> None:
    slow_tenant, fast_tenant = await make_tenant(), await make_tenant()
    receiver.delays["/slow"] = 2.0
    await add_endpoint(container, slow_tenant, receiver.url("/slow"))
    await add_endpoint(container, fast_tenant, receiver.url("/fast"))
    stop = asyncio.Event()
    d = WebhookDispatcher(container.pool, poll_interval_s=0.05, batch_size=1)
    task = asyncio.create_task(d.run(stop))
    try:
        await queue(container, [event(slow_tenant)])
        # The slow one is in flight.
        await receiver.wait_until(lambda: any(r.path == "/slow" for r in receiver.requests))
        start = asyncio.get_running_loop().time()
        await queue(container, [event(fast_tenant) for _ in range(5)])
        await receiver.wait_until(lambda: [r.path for r in receiver.requests].count("/fast") == 5)
        assert asyncio.get_running_loop().time() - start < 1.5
        fast = await _deliveries_of(container, fast_tenant)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    # Stopping let the slow request finish and recorded it.
    [slow] = await _deliveries_of(container, slow_tenant)
    assert slow["status"] == "delivered"
    assert len(fast) == 5
