"""Deliveries handed from the engine to the dispatcher in its process, already claimed.

The engine inserts the deliveries it reports claimed for its own dispatcher and offers
them once its batch commits: they go out without a claim from the database, and what is
not sent (a rollback, a shutdown, a claim that waited too long) is never lost.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from standardwebhooks import Webhook

from hermes.bootstrap import Container
from hermes.cascade import notices
from hermes.cascade.store import Batch, PostgresCascadeStore
from hermes.webhooks import WebhookDispatcher
from hermes.webhooks.delivery import Claimed
from hermes.webhooks.enqueue import enqueue_claimed
from hermes.webhooks.events import WebhookEvent
from tests.integration.webhooks.conftest import (
    Receiver,
    Tenant,
    TenantFactory,
    add_endpoint,
    event,
)
from tests.integration.webhooks.test_dispatch import Clock


async def _rows(container: Container, tenant: Tenant) -> list[dict[str, Any]]:
    async with container.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, status, attempts, next_attempt_at FROM webhook_deliveries"
            " WHERE tenant_id = %s ORDER BY created_at", (tenant.id,))
        rows = await cur.fetchall()
    return [dict(zip(("id", "status", "attempts", "next_attempt_at"), r, strict=True))
            for r in rows]


async def _claim_due(container: Container, tenant: Tenant) -> int:
    """How many of the tenant's deliveries a dispatcher could claim now."""
    async with container.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM webhook_deliveries WHERE tenant_id = %s"
            " AND status = 'pending' AND next_attempt_at <= now()", (tenant.id,))
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def _claim_for(container: Container, d: WebhookDispatcher,
                     events: list[WebhookEvent]) -> list[Claimed]:
    """Insert the events' deliveries claimed for `d`, as the engine does, and commit."""
    until = d.lease_until()
    assert until is not None
    async with container.pool.connection() as conn, conn.transaction():
        return await enqueue_claimed(conn, events, until)


async def _running(d: WebhookDispatcher, stop: asyncio.Event) -> asyncio.Task[None]:
    task = asyncio.create_task(d.run(stop))
    await asyncio.sleep(0)  # run starts, and takes offers from then on
    assert d.lease_until() is not None
    return task


async def test_claimed_deliveries_are_leased_and_carry_what_a_claim_would(
    container: Container, make_tenant: TenantFactory, receiver: Receiver
) -> None:
    a, b = await make_tenant(), await make_tenant()
    a1, _ = await add_endpoint(container, a, receiver.url("/a1"))
    a2, _ = await add_endpoint(container, a, receiver.url("/a2"))
    until = datetime.now(UTC) + timedelta(seconds=70)
    async with container.pool.connection() as conn, conn.transaction():
        claims = await enqueue_claimed(conn, [event(a, "message.sent"), event(b)], until)
    assert sorted(c.endpoint_id for c in claims) == sorted([a1.id, a2.id])  # b has none
    rows = {r["id"]: r for r in await _rows(container, a)}
    assert set(rows) == {c.id for c in claims}
    for c in claims:
        assert c.attempt == 1 and c.enabled and c.url.startswith("http://127.0.0.1:")
        assert rows[c.id]["attempts"] == 1 and rows[c.id]["next_attempt_at"] == until
    # Nothing is claimable from the database while the lease runs.
    assert await _claim_due(container, a) == 0
    # The body is the stored payload's text, as a claim from the database reads it, so
    # a retry signs the very same bytes.
    mine = next(c for c in claims if c.endpoint_id == a1.id)
    async with container.pool.connection() as conn:
        cur = await conn.execute("SELECT payload::text FROM webhook_deliveries WHERE id = %s",
                                 (mine.id,))
        stored = await cur.fetchone()
    assert stored is not None and mine.body == stored[0].encode()
    assert json.loads(mine.body)["type"] == "message.sent"


async def test_offered_claims_go_out_without_a_claim_or_a_notification(
    container: Container, tenant: Tenant, receiver: Receiver
) -> None:
    _, secret = await add_endpoint(container, tenant, receiver.url("/handed"))
    stop = asyncio.Event()
    # No LISTEN and a poll interval beyond the test's patience: only the offer can start it.
    d = WebhookDispatcher(container.pool, listen=False, poll_interval_s=3600)
    task = await _running(d, stop)
    try:
        claims: list[Claimed] = []
        for i in range(2):  # two offers, as two engine turns make them
            claims += await _claim_for(container, d, [event(tenant, "message.delivered")])
            d.offer(claims[i:])
            await receiver.wait_until(
                lambda n=i + 1: [r.path for r in receiver.requests].count("/handed") == n)
        # Offers are sent without a claim query each: after the one at start, the
        # database is asked again only when a poll is due (an hour here) or when asked.
        assert d.db_claims == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    got = [r for r in receiver.requests if r.path == "/handed"]
    assert [g.headers["webhook-id"] for g in got] == [str(c.id) for c in claims]
    for g in got:
        Webhook(secret).verify(g.body, g.headers)
    rows = await _rows(container, tenant)
    assert [r["status"] for r in rows] == ["delivered"] * 2
    assert [r["attempts"] for r in rows] == [1, 1]
    assert d.handed_sent == 2 and d.handed_released == 0


async def test_the_engine_offers_its_claims_only_after_its_batch_commits(
    container: Container, tenant: Tenant, receiver: Receiver
) -> None:
    await add_endpoint(container, tenant, receiver.url("/engine"))

    class Handoff:
        def __init__(self) -> None:
            self.offered: list[Claimed] = []

        def lease_until(self) -> datetime | None:
            return datetime.now(UTC) + timedelta(seconds=70)

        def offer(self, claims: Any) -> None:
            self.offered.extend(claims)

    handoff = Handoff()
    store = PostgresCascadeStore(container.pool, notice_writer=notices.writer(handoff))

    class Boom(Exception):
        pass

    # A batch whose transaction fails offers nothing, and leaves no delivery behind.
    failing = Batch(notices=[event(tenant, "message.sent")])
    failing.events.append((uuid.uuid4(), datetime.now(UTC), "sent", "{}"))  # no such message
    try:
        await store.persist(failing)
    except Exception as exc:
        assert not isinstance(exc, Boom)
    else:
        raise AssertionError("an event of an unknown message must fail the batch")
    assert handoff.offered == [] and await _rows(container, tenant) == []

    ok = Batch(notices=[event(tenant, "message.sent")])
    await store.persist(ok)
    [row] = await _rows(container, tenant)
    assert [c.id for c in handoff.offered] == [row["id"]] and row["attempts"] == 1

    # Without room, the deliveries are queued for any dispatcher (claimable now).
    handoff.lease_until = lambda: None  # type: ignore[method-assign]
    await store.persist(Batch(notices=[event(tenant, "message.sent")]))
    assert len(handoff.offered) == 1 and await _claim_due(container, tenant) == 1


async def test_a_busy_dispatcher_takes_no_claims_and_stop_releases_what_waits(
    container: Container, make_tenant: TenantFactory, receiver: Receiver
) -> None:
    slow, waiting = await make_tenant(), await make_tenant()
    receiver.delays["/slow"] = 1.0
    await add_endpoint(container, slow, receiver.url("/slow"))
    await add_endpoint(container, waiting, receiver.url("/waiting"))
    stop = asyncio.Event()
    d = WebhookDispatcher(container.pool, listen=False, poll_interval_s=3600, max_in_flight=1)
    task = await _running(d, stop)
    try:
        first = await _claim_for(container, d, [event(slow)])
        second = await _claim_for(container, d, [event(waiting)])  # asked while there was room
        d.offer(first)
        await receiver.wait_until(lambda: any(r.path == "/slow" for r in receiver.requests))
        assert d.lease_until() is None  # its one slot is taken
        d.offer(second)  # offered anyway (an engine that asked earlier): it waits
        await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert d.lease_until() is None  # not running
    assert not any(r.path == "/waiting" for r in receiver.requests)
    # The slow one finished and was recorded; the waiting one is free for any dispatcher,
    # its attempt not counted.
    [s] = await _rows(container, slow)
    assert s["status"] == "delivered"
    [w] = await _rows(container, waiting)
    assert w["status"] == "pending" and w["attempts"] == 0
    assert await _claim_due(container, waiting) == 1
    assert d.handed_released == 1


async def test_a_claim_that_waited_past_its_margin_is_released_and_claimed_afresh(
    container: Container, tenant: Tenant, receiver: Receiver
) -> None:
    await add_endpoint(container, tenant, receiver.url("/late"))

    clock = Clock()
    stop = asyncio.Event()
    d = WebhookDispatcher(container.pool, listen=False, poll_interval_s=3600, now=clock)
    task = await _running(d, stop)
    try:
        claims = await _claim_for(container, d, [event(tenant)])
        # Offered, and the clock passes its margin before the loop gets to look at it
        # (nothing awaits in between).
        d.offer(claims)
        clock.t += d.lease
        # Released, so it is due at once: the dispatcher claims it from the database
        # (with a fresh lease) and sends it.
        await receiver.wait_until(lambda: any(r.path == "/late" for r in receiver.requests))
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert d.handed_released == 1 and d.handed_sent == 0
    assert [r.path for r in receiver.requests].count("/late") == 1
    [row] = await _rows(container, tenant)
    assert row["status"] == "delivered" and row["attempts"] == 1  # the release uncounted
