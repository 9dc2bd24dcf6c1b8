"""How far behind the workers are, shared through Redis, for the API's load shedding.

A worker measures two things about the work it takes from JetStream: how long it waited
(delivery jobs as they are fetched, the engine's commands and events as a turn takes
them, and the oldest the engine still holds back), and, per consumer, how many messages
are still pending and how many it took in the last second. Once a second it writes both
to one Redis hash, a field per process. The API reads the hash (at most once a second)
and takes as the queue delay the longer of the longest wait reported and, per consumer,
its pending messages over the rate all workers take them at (the wait a message sent now
can expect). While that is above `max_queue_delay_s` it refuses new messages with 503
`service.overloaded` (`hermes.api.admission`): a message accepted into a queue that far
behind starts that late, and its receipts wait behind everyone else's, so taking it is
worse than saying "later". The expected wait reacts as soon as the queue grows faster
than it drains; the measured wait is the backstop for a queue the rate cannot see (a
consumer that takes nothing).

Only first deliveries count as waits: a job put back on purpose (a throttled provider
account, a retry after an outage) waits by design. A report older than `FRESH_S` is
ignored (its worker stopped, or is stuck and reports nothing), and one older than
`FORGET_S` is removed. If Redis does not answer, nothing is refused (fail open), as for
layer 8.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec
from redis.asyncio import Redis

from hermes.observability import metrics

log = logging.getLogger("hermes.queue_delay")

KEY = b"hermes:queue-delay"
REPORT_EVERY_S = 1.0
FRESH_S = 5.0
FORGET_S = 60.0


class Report(msgspec.Struct, frozen=True):
    """One worker's second: when, the longest wait seen, and per consumer
    `[pending, taken per second]`."""

    at: float
    wait: float
    backlog: dict[str, tuple[int, float]] = {}


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Report).decode


def _kind(subject: str) -> str:
    """`hermes.<kind>.<...>` -> kind: the messages of one consumer of a worker."""
    return subject.partition(".")[2].partition(".")[0]


class QueueDelayMeter:
    """What one process saw since the last `take()`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._longest = 0.0
        self._taken: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._since = time.monotonic()

    def observe(self, msgs: Iterable[Any], held: Mapping[str, int] | None = None) -> None:
        """Note a batch of JetStream messages just taken: per consumer (subject kind), the
        wait of its first first delivery (its oldest: a consumer hands messages out in
        stream order), how many were taken and how many are still pending behind them;
        `held` counts, by subject kind, messages fetched but not yet taken."""
        last: dict[str, Any] = {}
        counts: dict[str, int] = {}
        timed: set[str] = set()
        for msg in msgs:
            kind = _kind(msg.subject)
            counts[kind] = counts.get(kind, 0) + 1
            last[kind] = msg
            if kind not in timed:
                waited = self._waited(msg)
                if waited is not None:
                    timed.add(kind)
                    self._longest = max(self._longest, waited)
        for kind, msg in last.items():
            try:
                meta = msg.metadata
            except Exception:  # not a JetStream message (a test double)
                continue
            name = meta.consumer or kind
            self._taken[name] = self._taken.get(name, 0) + counts[kind]
            self._pending[name] = (meta.num_pending or 0) + (held or {}).get(kind, 0)

    def observe_waiting(self, msg: Any) -> None:
        """Note a message still waiting (the oldest held back): its wait so far."""
        waited = self._waited(msg)
        if waited is not None:
            self._longest = max(self._longest, waited)

    def _waited(self, msg: Any) -> float | None:
        try:
            meta = msg.metadata
        except Exception:
            return None
        if meta.num_delivered != 1 or meta.timestamp is None:
            return None
        return self.clock() - float(meta.timestamp.timestamp())

    def take(self) -> Report:
        now = time.monotonic()
        seconds = max(1e-3, now - self._since)
        backlog = {name: (self._pending.get(name, 0), round(taken / seconds, 3))
                   for name, taken in self._taken.items()}
        report = Report(at=self.clock(), wait=max(self._longest, 0.0), backlog=backlog)
        self._longest, self._taken, self._pending, self._since = 0.0, {}, {}, now
        return report


def queue_delay(reports: Iterable[Report]) -> float:
    """The longest wait reported, or the longest expected wait of any consumer (its
    pending messages over the rate all the workers reporting it take them at)."""
    longest = 0.0
    pending: dict[str, int] = {}
    rates: dict[str, float] = {}
    for report in reports:
        longest = max(longest, report.wait)
        for name, (waiting, rate) in report.backlog.items():
            pending[name] = max(pending.get(name, 0), waiting)
            rates[name] = rates.get(name, 0.0) + rate
    for name, waiting in pending.items():
        if rates[name] > 0:
            longest = max(longest, waiting / rates[name])
    return longest


class QueueDelayReporter:
    """Writes this process's meter to Redis once a second until stopped."""

    def __init__(self, redis: Redis, meter: QueueDelayMeter, process_id: str, *,
                 every_s: float = REPORT_EVERY_S) -> None:
        self.redis = redis
        self.meter = meter
        self.field = process_id.encode()
        self.every_s = every_s
        self._failing = False

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every_s)
            await self.report()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.redis.hdel(KEY, self.field), 2.0)

    async def report(self, report: Report | None = None) -> Report:
        report = report or self.meter.take()
        metrics.QUEUE_DELAY.set(queue_delay([report]))
        try:
            await self.redis.hset(KEY, self.field, _encode(report))
        except Exception as exc:
            if not self._failing:
                log.warning("cannot report the queue delay to Redis: %r", exc)
            self._failing = True
        else:
            self._failing = False
        return report


class QueueDelayView:
    """The longest fresh report over all workers, as the API sees it.

    `current()` answers the last value read while it is younger than `every_s`; after
    that, the next caller reads Redis again (concurrent callers share the one read, which
    gives up after `READ_TIMEOUT_S`: then, as when Redis fails, the answer is 0.0).
    """

    READ_TIMEOUT_S = 0.5

    def __init__(self, redis: Redis, *, every_s: float = REPORT_EVERY_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.every_s = every_s
        self.clock = clock
        self._delay = 0.0
        self._read_at = float("-inf")
        self._reading: asyncio.Future[float] | None = None
        self._failing = False

    async def current(self) -> float:
        if time.monotonic() - self._read_at < self.every_s:
            return self._delay
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read())
        return await asyncio.shield(self._reading)

    async def _read(self) -> float:
        try:
            return await asyncio.wait_for(self.refresh(), self.READ_TIMEOUT_S)
        except TimeoutError:
            self._note_failure("no answer in time")
            self._delay = 0.0
            return 0.0
        finally:
            self._read_at = time.monotonic()
            self._reading = None

    async def refresh(self) -> float:
        """Read every worker's report now: the longest fresh one (0.0 if Redis fails)."""
        try:
            reports = await self.redis.hgetall(KEY)
        except Exception as exc:
            self._note_failure(repr(exc))
            self._delay = 0.0
            return 0.0
        self._failing = False
        now = self.clock()
        fresh, forgotten = [], []
        for field, value in reports.items():
            try:
                report = _decode(value)
            except msgspec.DecodeError:
                forgotten.append(field)
                continue
            age = now - report.at
            if age > FORGET_S:
                forgotten.append(field)
            elif age <= FRESH_S:
                fresh.append(report)
        longest = queue_delay(fresh)
        if forgotten:
            with contextlib.suppress(Exception):
                await self.redis.hdel(KEY, *forgotten)
        self._delay = longest
        metrics.QUEUE_DELAY.set(longest)
        return longest

    def _note_failure(self, why: str) -> None:
        if not self._failing:
            log.warning("cannot read the queue delay from Redis; admitting everything: %s", why)
        self._failing = True

    async def close(self) -> None:
        reading = self._reading
        if reading is not None:
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading
