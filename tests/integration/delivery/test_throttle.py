"""A provider account's send rate (`config.rate_limit_per_s`): jobs over it wait in the
stream, none fails, and other accounts' jobs go on meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import msgspec

from hermes.delivery.worker import DURABLE, STREAM, DeliveryMetrics, DeliveryWorker
from hermes.domain.jobs import ENCODER, deliver_subject
from hermes.infra.redis.client import make_redis
from hermes.infra.redis.ratelimit import RedisLimiter
from tests.integration.delivery.support import MESSENTE, TWILIO, World

RATE = 2.0  # sends per second, one at a time


@contextlib.asynccontextmanager
async def _throttled(world: World, account_id: uuid.UUID) -> AsyncIterator[None]:
    """The account limited to RATE sends a second, one at a time, for the block's length
    (the next test's `world` writes the sandbox accounts' config afresh anyway)."""
    sql = "UPDATE provider_accounts SET config = config {} WHERE id = %s"
    limit = msgspec.json.encode({"rate_limit_per_s": RATE, "rate_limit_burst": 1}).decode()
    async with world.container.pool.connection() as conn:
        await conn.execute(sql.format("|| %s::jsonb"), (limit, account_id))
    await world.directory.refresh()
    try:
        yield
    finally:
        async with world.container.pool.connection() as conn:
            await conn.execute(sql.format("- 'rate_limit_per_s' - 'rate_limit_burst'"),
                               (account_id,))


async def _sent_at(world: World, attempt_ids: list[uuid.UUID]) -> list[datetime]:
    async with world.container.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT sent_at FROM attempts WHERE id = ANY(%s) ORDER BY sent_at", (attempt_ids,))
        return [r[0] for r in await cur.fetchall()]


async def test_jobs_over_an_accounts_rate_wait_and_none_fails(world: World) -> None:
    js = world.container.nats.jetstream()
    for info in await js.consumers_info(STREAM):
        await js.delete_consumer(STREAM, info.name)
    slow = [await world.job("sms", f"+44740000{1000 + i}", TWILIO) for i in range(4)]
    fast = [await world.job("sms", f"+44740000{2000 + i}", MESSENTE) for i in range(3)]
    for job in slow + fast:  # the throttled ones first, ahead of the others in the stream
        await js.publish(deliver_subject(job.channel), ENCODER.encode(job),
                         headers={"Nats-Msg-Id": str(job.attempt_id)})

    metrics = DeliveryMetrics()
    # Two slots only: a throttled job that held one while waiting would stall the others.
    worker = DeliveryWorker(nats=world.container.nats, accounts=world.directory,
                            attempts=world.container.attempts, sender=world.worker.sender,
                            metrics=metrics, limiter=RedisLimiter(world.container.redis),
                            concurrency=2)
    stop = asyncio.Event()
    async with _throttled(world, TWILIO):
        running = asyncio.create_task(worker.run(stop))
        try:
            await world.events.wait_for(len(slow) + len(fast), within=60)
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)
            with contextlib.suppress(Exception):
                await js.delete_consumer(STREAM, DURABLE)

    assert {r.attempt_id: r.outcome for r in world.events.results()} == {
        j.attempt_id: "accepted" for j in slow + fast}
    assert metrics.throttled >= len(slow) - 1 and metrics.provider_errors == 0
    assert [(await world.attempt(j.attempt_id))["status"] for j in slow + fast] == [
        "accepted"] * 7

    # The throttled account sent no faster than its rate (slack for the time between a
    # token and the attempt's claim, which stamps sent_at)...
    sent = await _sent_at(world, [j.attempt_id for j in slow])
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(sent)]
    assert (sent[-1] - sent[0]).total_seconds() >= (len(slow) - 1) / RATE - 0.15, gaps
    assert min(gaps) >= 0.5 / RATE, gaps  # unthrottled, they would be milliseconds apart
    # ...while the other account's jobs, queued behind them, went on at once.
    others = await _sent_at(world, [j.attempt_id for j in fast])
    assert max(others) < sent[1]


async def test_with_redis_unreachable_an_accounts_sends_are_not_held(world: World) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis = make_redis(f"redis://127.0.0.1:{port}/0")
    worker = DeliveryWorker(nats=world.container.nats, accounts=world.directory,
                            attempts=world.container.attempts, sender=world.worker.sender,
                            metrics=DeliveryMetrics(), limiter=RedisLimiter(redis))
    try:
        async with _throttled(world, TWILIO):
            jobs = [await world.job("sms", f"+44740000{3000 + i}", TWILIO) for i in range(3)]
            results = [await worker.process(job) for job in jobs]  # no Throttled raised
    finally:
        await redis.aclose()
    assert [r.outcome if r else None for r in results] == ["accepted"] * 3
