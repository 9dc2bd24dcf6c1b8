"""The token bucket and daily quota script against a real Redis."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from datetime import UTC, datetime

import pytest

from hermes.bootstrap import Container
from hermes.domain.limits import Limits, day_of
from hermes.infra.redis.client import make_redis
from hermes.infra.redis.ratelimit import SHA, RedisLimiter


def _partition() -> str:
    return f"test:{uuid.uuid4().hex}"


class Clock:
    def __init__(self, at: datetime) -> None:
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now


async def test_a_take_beyond_the_tokens_left_is_refused_whole_and_spends_nothing(
        container: Container) -> None:
    limiter = RedisLimiter(container.redis)
    p, limits = _partition(), Limits(rate_per_s=1, burst=5)
    first = await limiter.take(p, limits, 3)
    assert first.allowed and first.remaining == 2
    # A batch of 3 against 2 tokens: refused, and the 2 are still there.
    refused = await limiter.take(p, limits, 3)
    assert not refused.allowed and refused.refused_by == "rate"
    assert refused.remaining == 2
    # One token short at 1/s: about 1 s (less the little refilled meanwhile).
    assert 0.7 < refused.retry_after_s <= 1.0
    assert (await limiter.take(p, limits, 2)).allowed


async def test_the_bucket_refills_at_its_rate_by_redis_time(container: Container) -> None:
    limiter = RedisLimiter(container.redis)
    p, limits = _partition(), Limits(rate_per_s=2, burst=1)
    assert (await limiter.take(p, limits)).allowed
    refused = await limiter.take(p, limits)
    assert not refused.allowed
    assert 0.25 < refused.retry_after_s <= 0.5  # one token at 2/s
    await asyncio.sleep(refused.retry_after_s + 0.05)
    assert (await limiter.take(p, limits)).allowed


async def test_refill_is_proportional_to_elapsed_time(container: Container) -> None:
    clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    limiter = RedisLimiter(container.redis, clock=clock)
    p, limits = _partition(), Limits(rate_per_s=4, burst=10)
    assert (await limiter.take(p, limits, 10)).allowed
    clock.now += 0.5  # two tokens back at 4/s
    assert not (await limiter.take(p, limits, 3)).allowed
    taken = await limiter.take(p, limits, 2)
    assert taken.allowed and taken.remaining == 0
    assert taken.full_in_s == pytest.approx(2.5)  # 10 tokens at 4/s
    clock.now += 60  # never more than the burst
    assert (await limiter.take(p, limits, 0)).remaining == 10


async def test_concurrent_takes_never_overspend(container: Container) -> None:
    limiter = RedisLimiter(container.redis)
    p, limits = _partition(), Limits(rate_per_s=0.001, burst=50)
    decisions = await asyncio.gather(*(limiter.take(p, limits) for _ in range(300)))
    assert sum(d.allowed for d in decisions) == 50
    # The same with a second client, as two API processes would be.
    other = RedisLimiter(make_redis(_url(container)))
    try:
        p2 = _partition()
        both = await asyncio.gather(*(lim.take(p2, limits, 2) for lim in (limiter, other)
                                      for _ in range(40)))
    finally:
        await other.redis.aclose()
    assert sum(d.allowed for d in both) == 25


async def test_the_daily_quota_is_counted_per_utc_day(container: Container) -> None:
    # Two seconds before the coming midnight (a real one: counters expire by real time).
    day, midnight = day_of(time.time())
    clock = Clock(datetime.fromtimestamp(midnight - 2, tz=UTC))
    limiter = RedisLimiter(container.redis, clock=clock)
    p, limits = _partition(), Limits(rate_per_s=0, burst=1, daily_quota=3)
    assert (await limiter.take(p, limits, 2)).allowed
    last = await limiter.take(p, limits)
    assert last.allowed and last.quota_remaining == 0
    over = await limiter.take(p, limits)
    assert not over.allowed and over.refused_by == "quota"
    assert over.retry_after_s == pytest.approx(2.0)  # to midnight UTC
    assert over.quota_reset_s == pytest.approx(2.0)
    # The day's counter goes away by itself, an hour after its day.
    _, counter = limiter.keys(p, day)
    assert 3600 < await container.redis.ttl(counter) <= midnight - time.time() + 3600 + 1

    clock.now += 3  # 00:00:01 the next day: a fresh count
    fresh = await limiter.take(p, limits, 3)
    assert fresh.allowed and fresh.quota_used == 3
    assert fresh.quota_reset_s == pytest.approx(86_399)


async def test_bucket_and_quota_are_one_decision(container: Container) -> None:
    limiter = RedisLimiter(container.redis)
    p = _partition()
    # The quota refuses: no token is spent.
    tight_quota = Limits(rate_per_s=0.001, burst=10, daily_quota=4)
    assert (await limiter.take(p, tight_quota, 4)).allowed
    refused = await limiter.take(p, tight_quota, 1)
    assert refused.refused_by == "quota" and refused.remaining == 6
    # The bucket refuses: nothing is counted.
    p = _partition()
    tight_rate = Limits(rate_per_s=0.001, burst=2, daily_quota=100)
    assert (await limiter.take(p, tight_rate, 2)).allowed
    refused = await limiter.take(p, tight_rate, 1)
    assert refused.refused_by == "rate" and refused.quota_used == 2


async def test_giving_back_restores_tokens_and_uncounts(container: Container) -> None:
    limiter = RedisLimiter(container.redis)
    p, limits = _partition(), Limits(rate_per_s=0.001, burst=3, daily_quota=10)
    assert (await limiter.take(p, limits, 3)).allowed
    back = await limiter.take(p, limits, -1)
    assert back.remaining == 1 and back.quota_used == 2
    assert (await limiter.take(p, limits)).allowed
    assert not (await limiter.take(p, limits)).allowed


async def test_keys_expire(container: Container) -> None:
    limiter = RedisLimiter(container.redis)
    p, limits = _partition(), Limits(rate_per_s=100, burst=200)
    await limiter.take(p, limits, 50)
    bucket, _ = limiter.keys(p, day_of(0)[0])
    # Full again after 0.5 s: the key is not kept much longer than that.
    assert 0 < await container.redis.pttl(bucket) <= 1500


async def test_the_script_is_loaded_again_after_a_flush(container: Container) -> None:
    limiter = RedisLimiter(container.redis)
    p, limits = _partition(), Limits(rate_per_s=1, burst=2)
    assert (await limiter.take(p, limits)).allowed
    await container.redis.script_flush()
    assert await container.redis.script_exists(SHA) == [False]
    second = await limiter.take(p, limits)
    assert second.allowed and not second.degraded and second.remaining == 0
    assert await container.redis.script_exists(SHA) == [True]
    # The same when concurrent takes share one pipeline.
    await container.redis.script_flush()
    many = await asyncio.gather(*(limiter.take(_partition(), limits) for _ in range(20)))
    assert all(d.allowed and not d.degraded for d in many)


async def test_an_unreachable_redis_admits_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis = make_redis(f"redis://127.0.0.1:{port}/0")
    limiter = RedisLimiter(redis)
    try:
        with caplog.at_level(logging.WARNING, logger="hermes.ratelimit"):
            together = await asyncio.gather(*(
                limiter.take(_partition(), Limits(rate_per_s=1, burst=1)) for _ in range(5)))
            again = await limiter.take(_partition(), Limits(rate_per_s=1, burst=1), 1)
    finally:
        await redis.aclose()
    assert all(d.allowed and d.degraded for d in together)
    assert again.allowed and again.degraded
    # One warning: the takes that failed together say it once, and the next one did not
    # try Redis again.
    assert len([r for r in caplog.records if "Redis did not answer" in r.message]) == 1


def _url(container: Container) -> str:
    url = container.settings.redis_url
    assert url is not None
    return url
