"""RedisLimiter: token buckets and daily quotas, one atomic Lua script, one round trip.

A bucket holds up to `burst` tokens and refills at `rate_per_s`; a take of `cost`
tokens succeeds only if all of them are there (a batch of 500 takes 500 or none).
The daily quota is a counter per UTC day, checked and counted by the same script,
so a request that the bucket allows but the quota refuses spends nothing, and the
reverse. Time is Redis's own (`TIME`), so the clocks of the API processes and
workers do not matter, only the one of the Redis server.

Keys expire: a bucket once it would be full again anyway (absent means full), a
day's counter an hour after the day ends. Both keys of a take share a hash tag,
so the script is valid on Redis Cluster too.

The script is sent once and then called by its SHA1 (EVALSHA); after a Redis
restart or `SCRIPT FLUSH` the first call answers NOSCRIPT and the script is
loaded again. A take is at most one round trip: the takes of concurrent requests
share one pipeline (each EVALSHA still atomic on its own), which under load cuts
the client's CPU per take about fivefold.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from hermes.domain.limits import Decision, Limits, day_of

log = logging.getLogger("hermes.ratelimit")

# KEYS[1] the bucket (hash: tokens `t`, time `ts` in µs); KEYS[2] the day's counter, only
# when there is a quota. ARGV: rate per second (0 = no bucket), burst, cost, quota (0 = none),
# end of the quota's day (Unix seconds), and a fixed `now` in µs (tests) or '' for TIME.
# A negative cost gives tokens back and uncounts (a request that did not commit after all).
# Answers {verdict (0 allowed, 1 rate, 2 quota), tokens left (floor), ms until the bucket is
# full, ms to wait before retrying, counted today, now in ms}.
SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local quota = tonumber(ARGV[4])
local day_end = tonumber(ARGV[5])
local now
if ARGV[6] ~= '' then
  now = tonumber(ARGV[6])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local tokens, ts = burst, now
if rate > 0 then
  local b = redis.call('HMGET', KEYS[1], 't', 'ts')
  if b[1] then
    tokens, ts = tonumber(b[1]), tonumber(b[2])
    if now > ts then
      tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
      ts = now
    end
  end
end
local used = 0
if quota > 0 then
  used = tonumber(redis.call('GET', KEYS[2]) or '0')
end

local verdict, wait_us = 0, 0
if cost > 0 and quota > 0 and used + cost > quota then
  verdict, wait_us = 2, day_end * 1000000 - now
elseif cost > 0 and rate > 0 and tokens < cost then
  verdict, wait_us = 1, (cost - tokens) * 1000000 / rate
end

if verdict == 0 and cost ~= 0 then
  if rate > 0 then
    tokens = math.min(burst, tokens - cost)
    redis.call('HSET', KEYS[1], 't', tokens, 'ts', ts)
    redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
  end
  if quota > 0 then
    used = redis.call('INCRBY', KEYS[2], cost)
    if used < 0 then
      used = 0
      redis.call('SET', KEYS[2], 0)
    end
    redis.call('EXPIREAT', KEYS[2], day_end + 3600)
  end
end

local full_ms = 0
if rate > 0 then
  full_ms = math.ceil((burst - tokens) * 1000 / rate)
end
return {verdict, math.floor(tokens), full_ms, math.ceil(wait_us / 1000), used,
        math.floor(now / 1000)}
"""
SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()

# After Redis fails, admit without asking it for this long, so an outage costs each request
# nothing rather than a connect timeout.
OUTAGE_BACKOFF_S = 1.0


class RedisLimiter:
    """Buckets and quotas in Redis. Fails open: when Redis does not answer, every take is
    allowed (and logged, at most once per `OUTAGE_BACKOFF_S`): a limiter outage must not
    stop message intake.

    `clock` fixes the time (Unix seconds) instead of Redis's, for tests of day boundaries.
    """

    def __init__(self, redis: Redis, *, prefix: str = "hermes:rl",
                 clock: Callable[[], float] | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._skip_until = 0.0
        self._queue: list[_Call] = []
        self._flusher: asyncio.Task[None] | None = None

    def keys(self, partition: str, day: str) -> tuple[str, str]:
        tag = f"{self.prefix}:{{{partition}}}"
        return f"{tag}:bucket", f"{tag}:day:{day}"

    async def take(self, partition: str, limits: Limits, cost: int = 1) -> Decision:
        """Take `cost` tokens (and count `cost` against today's quota) from `partition`'s
        bucket, all or none. Cost 0 only reads; a negative cost gives back."""
        now = time.time() if self.clock is None else self.clock()
        day, day_end = day_of(now)
        if limits.unlimited:
            return _open(limits, day_end - now)
        if time.monotonic() < self._skip_until:
            return _open(limits, day_end - now, degraded=True)
        bucket, counter = self.keys(partition, day)
        keys = [bucket, counter] if limits.daily_quota > 0 else [bucket]
        args: list[str | int] = [
            repr(float(limits.rate_per_s)), limits.burst, cost, limits.daily_quota, day_end,
            "" if self.clock is None else str(int(now * 1_000_000))]
        try:
            raw = await self._call(keys, args)
        except (RedisError, OSError) as exc:
            if time.monotonic() >= self._skip_until:  # once for the takes that failed together
                log.warning("rate limiter: Redis did not answer (%s: %s); admitting without "
                            "a check", type(exc).__name__, exc)
            self._skip_until = time.monotonic() + OUTAGE_BACKOFF_S
            return _open(limits, day_end - now, degraded=True)
        verdict, tokens, full_ms, wait_ms, used, now_ms = (int(v) for v in raw)
        return Decision(
            allowed=verdict == 0,
            refused_by=None if verdict == 0 else ("rate" if verdict == 1 else "quota"),
            limits=limits, remaining=max(0, tokens), full_in_s=full_ms / 1000,
            retry_after_s=wait_ms / 1000, quota_used=used,
            quota_reset_s=max(0.0, day_end - now_ms / 1000),
        )

    # --- group calls: one pipeline for the takes of concurrent requests ---

    async def _call(self, keys: list[str], args: list[str | int]) -> list[int]:
        """Run the script. Takes that arrive while a call is in flight go together in the
        next one (a pipeline of EVALSHAs, each still atomic on its own), as the group commit
        does for PostgreSQL: under load a take costs a fraction of a round trip of CPU."""
        call = _Call(keys, args, asyncio.get_running_loop().create_future())
        self._queue.append(call)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await call.future

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                results = await self._pipeline(batch)
            except Exception as exc:  # Redis unreachable: every take of the batch hears it
                results = [exc] * len(batch)
            for call, result in zip(batch, results, strict=True):
                if call.future.done():  # the request was cancelled meanwhile
                    continue
                if isinstance(result, BaseException):
                    call.future.set_exception(result)
                else:
                    call.future.set_result(result)

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        results: list[Any] = await self._send(batch)
        if any(isinstance(r, NoScriptError) for r in results):  # Redis restarted or flushed
            await self.redis.script_load(SCRIPT)
            again = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            for i, r in zip(again, await self._send([batch[i] for i in again]), strict=True):
                results[i] = r
        return results

    async def _send(self, batch: list[_Call]) -> list[Any]:
        if len(batch) == 1:  # alone: a plain EVALSHA costs less than a pipeline of one
            call = batch[0]
            try:
                return [await self.redis.evalsha(SHA, len(call.keys), *call.keys, *call.args)]
            except ResponseError as exc:  # NOSCRIPT among them; connection errors propagate
                return [exc]
        pipe = self.redis.pipeline(transaction=False)
        for call in batch:
            pipe.evalsha(SHA, len(call.keys), *call.keys, *call.args)
        return await pipe.execute(raise_on_error=False)


@dataclass(frozen=True, slots=True)
class _Call:
    keys: list[str]
    args: list[str | int]
    future: asyncio.Future[list[int]]


def _open(limits: Limits, quota_reset_s: float, *, degraded: bool = False) -> Decision:
    return Decision(allowed=True, refused_by=None, limits=limits, remaining=limits.burst,
                    full_in_s=0.0, retry_after_s=0.0, quota_used=0,
                    quota_reset_s=quota_reset_s, degraded=degraded)
