"""Shard leases: workers split the cascade space, and a shard changes hands cleanly.

Real PostgreSQL (advisory locks) and NATS JetStream; the delivery side is played by
the test, as in test_cascade_engine.py, and time is virtual so step timers fire
when the test says.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
import pytest

from hermes.bootstrap import Container
from hermes.cascade.leases import ShardLeases
from hermes.cascade.runner import CascadeRunner, subject_matches
from hermes.cascade.store import PostgresCascadeStore
from hermes.domain.jobs import ENCODER, JOB_DECODER, DeliveryJob, StartCommand, cascade_subject
from hermes.domain.messages import Address, Content, MessageSpec, StepSpec
from hermes.infra.nats.streams import STREAMS, ensure_streams
from hermes.infra.postgres.messages import NewMessage
from tests.integration.test_cascade_engine import (
    Account,
    Clock,
    FakeChooser,
    _now,
    close_open_cascades,
)

SHARDS = 16
STEPS = [StepSpec("sms", 30_000, "delivered"), StepSpec("email", 30_000, "delivered")]


def test_subject_matching() -> None:
    assert subject_matches("hermes.cascade.>", "hermes.cascade.3")
    assert subject_matches("hermes.cascade.*", "hermes.cascade.3")
    assert subject_matches("hermes.cascade.3", "hermes.cascade.3")
    assert not subject_matches("hermes.cascade.3", "hermes.cascade.13")
    assert not subject_matches("hermes.events.>", "hermes.cascade.3")
    assert not subject_matches("hermes.cascade.>", "hermes.cascade")


async def test_leases_are_exclusive_counted_and_freed_with_the_session(
    container: Container,
) -> None:
    url = container.settings.database_url
    assert url is not None
    a, b = ShardLeases(url, SHARDS), ShardLeases(url, SHARDS)
    await a.open()
    await b.open()
    try:
        assert await a.members() == await b.members() == 2
        assert a.fair_share(2) == 8 and a.fair_share(3) == 6
        assert await a.try_acquire(range(SHARDS), 16) == list(range(SHARDS))
        assert await b.try_acquire(range(SHARDS), 16) == []  # all taken
        await a.release(range(8, SHARDS))
        assert await a.held() == set(range(8))
        assert await b.try_acquire(range(SHARDS), 16) == list(range(8, SHARDS))
        # A worker's session ending (a crash) frees its shards for the others at once.
        await a.close()
        for _ in range(100):  # the server ends the closed session a moment later
            if await b.members() == 1:
                break
            await asyncio.sleep(0.05)
        assert await b.members() == 1
        assert await b.try_acquire(range(SHARDS), 16) == list(range(8))
        assert await b.held() == set(range(SHARDS))
    finally:
        await a.close()
        await b.close()


@pytest.fixture
async def env(container: Container) -> AsyncIterator[dict[str, Any]]:
    js = container.nats.jetstream()
    await ensure_streams(js)
    for s in STREAMS:
        assert s.name is not None
        await js.purge_stream(s.name)
        for info in await js.consumers_info(s.name):
            await js.delete_consumer(s.name, info.name)
    await close_open_cascades(container)  # the workers under test would rebuild them
    tenant = await container.tenants.create_tenant(f"lease-{uuid.uuid4().hex[:6]}")
    accounts: dict[str, list[Account]] = {}
    async with container.pool.connection() as conn:
        for channel, adapter in (("sms", "twilio_sms"), ("email", "ses_email")):
            aid = uuid.uuid4()
            await conn.execute(
                "INSERT INTO provider_accounts (id, tenant_id, name, channel, adapter,"
                " mode, credentials) VALUES (%s, %s, %s, %s, %s, 'test', %s)",
                (aid, tenant.id, adapter, channel, adapter, b"{}"))
            accounts[channel] = [Account(aid, adapter)]
    deliver = await js.pull_subscribe("hermes.deliver.>", durable="lease-deliver",
                                      stream="HERMES_DELIVER")
    yield {"tenant": tenant, "chooser": FakeChooser(accounts), "deliver": deliver}
    await deliver.unsubscribe()
    for s in STREAMS:
        assert s.name is not None
        for info in await js.consumers_info(s.name):
            await js.delete_consumer(s.name, info.name)
    async with container.pool.connection() as conn:
        await conn.execute(
            "UPDATE messages SET started_at = coalesce(started_at, now()),"
            " finished_at = coalesce(finished_at, now()), next_deadline = NULL"
            " WHERE tenant_id = %s", (tenant.id,))


async def _submit(container: Container, tenant_id: UUID, shard: int, clock: Clock) -> UUID:
    spec = MessageSpec(to=Address(phone="+4520120003", email="noreceipt@example.com"),
                       content=Content(body="Your order has shipped", subject="Shipped"),
                       steps=STEPS)
    mid = uuid.uuid4()
    now = datetime.fromtimestamp(clock.ms / 1000, tz=UTC)
    row = NewMessage(id=mid, tenant_id=tenant_id, mode="test", status="queued", shard=shard,
                     spec_json=msgspec.json.encode(spec).decode(), metadata_json="{}",
                     idempotency_key=None, idempotency_hash=None, send_at=None, expires_at=None,
                     next_deadline=now, event_json='{"status":"queued"}', created_at=now)
    assert (await container.writer.insert_many([row]))[0].existing is None
    cmd = StartCommand(id=mid, tenant_id=tenant_id, mode="test", shard=shard,
                       spec=msgspec.Raw(row.spec_json.encode()))
    await container.nats.jetstream().publish(cascade_subject(shard), ENCODER.encode(cmd),
                                             headers={"Nats-Msg-Id": f"{mid}:start"})
    return mid


async def _jobs(env: dict[str, Any], want: int, *, step: int,
                timeout: float = 20) -> list[DeliveryJob]:
    """Every job of `step` published until `want` distinct messages have one, and then for
    another second, so duplicates are seen too."""
    jobs: list[DeliveryJob] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    quiet_until: float | None = None
    while loop.time() < (quiet_until or deadline):
        try:
            msgs = await env["deliver"].fetch(50, timeout=0.3)
        except Exception:
            msgs = []
        for m in msgs:
            await m.ack()
            job = JOB_DECODER.decode(m.data)
            if job.step == step:
                jobs.append(job)
        if quiet_until is None and len({j.message_id for j in jobs}) >= want:
            quiet_until = loop.time() + 1.0
    return jobs


class Worker:
    """A lease-holding engine, as `hermes worker` runs it."""

    def __init__(self, container: Container, chooser: FakeChooser, clock: Clock) -> None:
        assert container.settings.database_url is not None
        self.leases = ShardLeases(container.settings.database_url, SHARDS)
        self.runner = CascadeRunner(container.nats,
                                    PostgresCascadeStore(container.pool), chooser, clock=clock)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ready = asyncio.Event()

        async def on_ready() -> None:
            ready.set()

        self.task = asyncio.create_task(self.runner.run(
            self.stop, ready=on_ready, leases=self.leases, lease_check_s=0.1))
        await asyncio.wait_for(ready.wait(), 10)

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 20)

    @property
    def owned(self) -> set[int]:
        return set(self.runner.owned or ())


async def _until(pred: Any, timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_two_workers_split_the_shards_and_each_timer_fires_once(
    container: Container, env: dict[str, Any],
) -> None:
    clock = Clock(_now())
    a = Worker(container, env["chooser"], clock)
    b = Worker(container, env["chooser"], clock)
    await a.start()
    try:
        await _until(lambda: a.owned == set(range(SHARDS)))
        mids = [await _submit(container, env["tenant"].id, s, clock) for s in range(SHARDS)]
        first = await _jobs(env, SHARDS, step=0)
        assert sorted(j.message_id for j in first) == sorted(mids)  # one SMS job each

        await b.start()
        await _until(lambda: len(a.owned) == len(b.owned) == SHARDS // 2)
        assert a.owned | b.owned == set(range(SHARDS)) and not a.owned & b.owned

        # Every SMS step times out: each message's timer fires once, in the engine that
        # owns its shard now, whichever engine started it.
        clock.ms += 30_001
        second = await _jobs(env, SHARDS, step=1)
        assert sorted(j.message_id for j in second) == sorted(mids), "lost or duplicated"
        async with container.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM message_events WHERE kind = 'step_timed_out'"
                " AND message_id = ANY(%s)", (mids,))
            row = await cur.fetchone()
        assert row is not None and row[0] == SHARDS

        # One worker leaves: the other takes every shard and the cascades still move.
        await a.close()
        await _until(lambda: b.owned == set(range(SHARDS)))
        clock.ms += 30_001
        async with container.pool.connection() as conn:
            for _ in range(200):
                cur = await conn.execute(
                    "SELECT count(*) FROM messages WHERE id = ANY(%s) AND finished_at IS NOT NULL",
                    (mids,))
                row = await cur.fetchone()
                if row is not None and row[0] == SHARDS:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the remaining worker did not finish the cascades")
    finally:
        await a.close()
        await b.close()


async def test_a_worker_that_loses_its_lease_session_drops_its_shards(
    container: Container, env: dict[str, Any],
) -> None:
    clock = Clock(_now())
    a = Worker(container, env["chooser"], clock)
    b = Worker(container, env["chooser"], clock)
    await a.start()
    await b.start()
    try:
        await _until(lambda: len(a.owned) == len(b.owned) == SHARDS // 2)
        assert a.leases.conn is not None
        pid = a.leases.conn.info.backend_pid
        async with container.pool.connection() as conn:
            await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # A notices at its next check, drops everything and opens a new session; B,
        # briefly the only member, takes what is free; they settle on halves again.
        await _until(lambda: a.leases.conn is None or a.leases.conn.info.backend_pid != pid)
        await _until(lambda: len(a.owned) == len(b.owned) == SHARDS // 2, timeout=20)
        assert not a.owned & b.owned
        mids = [await _submit(container, env["tenant"].id, s, clock) for s in range(SHARDS)]
        jobs = await _jobs(env, SHARDS, step=0)
        assert sorted(j.message_id for j in jobs) == sorted(mids)
    finally:
        await a.close()
        await b.close()
