"""The cascade engine loop: JetStream in, the core's `CascadeEngine` in the middle, actions out.

One task owns the engine. Each turn it takes whatever arrived (start and cancel
commands, attempt results, receipts), applies it and fires due timers in one
call each into Rust, executes the actions (route and dispatch, timeline,
deadlines, outcomes), persists them in one transaction, publishes the delivery
jobs, and only then acks what it consumed. A failed persist rebuilds the
engine from PostgreSQL and naks, so memory never runs ahead of the record.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, cast
from uuid import UUID

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from hermes import _core
from hermes.cascade.context import MessageContext
from hermes.cascade.leases import LeaseLost, ShardLeases
from hermes.cascade.store import Batch, NewAttempt, PostgresCascadeStore, _ts
from hermes.domain.ids import uuid7
from hermes.domain.jobs import (
    COMMAND_DECODER,
    ENCODER,
    EVENT_DECODER,
    AttemptResult,
    CancelCommand,
    DeliveryJob,
    ReceiptNotice,
    StartCommand,
    deliver_subject,
)
from hermes.infra.nats.connection import NatsConnection
from hermes.infra.nats.publisher import AckedPublisher
from hermes.infra.nats.streams import CASCADE_STREAM
from hermes.infra.redis.queue_delay import QueueDelayMeter
from hermes.infra.tasks import cancel_and_wait
from hermes.observability import metrics, tracing
from hermes.observability.engine import EngineTrace

log = logging.getLogger("hermes.engine")

Action = dict[str, Any]
CoreEvent = dict[str, Any]


class ChosenAccount(Protocol):
    @property
    def id(self) -> UUID: ...

    @property
    def adapter(self) -> str: ...


class AccountChooser(Protocol):
    async def choose(self, tenant_id: UUID, mode: str, channel: str, *,
                     preferred: UUID | None = None, exclude: Sequence[UUID] = (),
                     seed: int = 0, now_ms: int,
                     country: str | None = None) -> ChosenAccount | None: ...

    def record(self, account_id: UUID, success: bool, latency_ms: float | None,
               now_ms: int) -> None: ...


NoticeSink = Callable[[Batch, MessageContext, Action, int], None]
Decoded = tuple[StartCommand | CancelCommand | AttemptResult | ReceiptNotice,
                MessageContext | None]


# Turns whose delivery jobs may still be being published while the engine goes on.
MAX_PUBLISHING = 8

# Timeline kinds that mean the cascade moved past a step.
_LEFT_STEP = frozenset({"step_timed_out", "step_failed"})

# A receipt for a cascade that already ended is still news for the tenant.
_LATE = {"delivered": "late_delivered", "read": "late_read"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# A turn waits `linger_s` for more work only while fewer than this many messages wait:
# with more, the turn is large enough already.
LINGER_BELOW = 64


class CascadeRunner:
    def __init__(self, nats: NatsConnection, store: PostgresCascadeStore,
                 accounts: AccountChooser, *, batch_size: int = 512, tick_s: float = 0.01,
                 notice_sink: NoticeSink | None = None,
                 clock: Callable[[], int] = now_ms,
                 queue_meter: QueueDelayMeter | None = None, linger_s: float = 0.0) -> None:
        self.js_factory = nats.jetstream
        self.jobs = AckedPublisher(nats)  # delivery jobs, acknowledged in batches
        self.queue_meter = queue_meter
        self.store = store
        self.accounts = accounts
        self.batch_size = batch_size
        self.tick_s = tick_s
        self.linger_s = linger_s
        self.notice_sink = notice_sink
        self.clock = clock
        self.engine = _core.CascadeEngine(clock())
        self.contexts: dict[UUID, MessageContext] = {}
        self.inbox = Inbox()
        self.turns = 0
        self.terminated = 0
        self._stop: asyncio.Event | None = None
        self._trace: EngineTrace | None = None  # this turn's spans, when tracing is on
        metrics.watch_engine(self)
        # The shards this engine owns under leases; None: every shard.
        self.owned: set[int] | None = None
        # Inside `run`, a turn's delivery jobs are published while the next turn runs.
        self._background_publish = False
        self._publishing: set[asyncio.Task[None]] = set()

    # -- start and stop ------------------------------------------------------

    async def rebuild(self) -> int:
        """Load every open cascade (of the shards this engine owns, when it runs under leases)
        from PostgreSQL; deadlines that passed fire on the next tick."""
        rows = await self.store.open_cascades(
            None if self.owned is None else sorted(self.owned))
        self.engine = _core.CascadeEngine(self.clock())
        self.contexts = {ctx.id: ctx for ctx, _ in rows}
        self.engine.restore(cast(Any, [(ctx.id.bytes, state) for ctx, state in rows]))
        log.info("engine rebuilt with %d open cascades", len(rows))
        return len(rows)

    async def _rebuild_when_possible(self) -> None:
        """Rebuild from PostgreSQL, waiting out an outage: the engine outlives a database
        restart instead of ending the worker."""
        delay = 0.2
        while True:
            try:
                await self.rebuild()
                return
            except Exception as exc:
                if self._stop is not None and self._stop.is_set():
                    raise
                log.warning("engine rebuild failed (retrying in %.1fs): %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def run(self, stop: asyncio.Event, *, ready: Callable[[], Awaitable[None]] | None = None,
                  durable_prefix: str = "engine", leases: ShardLeases | None = None,
                  lease_check_s: float = 1.0) -> None:
        """Run until `stop`. Without `leases` this engine takes every shard (one worker per
        deployment); with them, only the shards it holds a lease on, so workers can be
        added, removed or killed while cascades run."""
        self._stop = stop
        self._background_publish = True
        try:
            await self._run(stop, ready, durable_prefix, leases, lease_check_s)
        finally:
            self._background_publish = False
            await self._publish_settled()
            await self.jobs.close()

    async def _run(self, stop: asyncio.Event, ready: Callable[[], Awaitable[None]] | None,
                   durable_prefix: str, leases: ShardLeases | None,
                   lease_check_s: float) -> None:
        if leases is not None:
            await self._run_leased(stop, ready, durable_prefix, leases, lease_check_s)
            return
        await self._rebuild_when_possible()
        js = self.js_factory()
        subs = [
            await js.pull_subscribe("hermes.cascade.>", durable=f"{durable_prefix}-commands",
                                    stream=CASCADE_STREAM),
            await js.pull_subscribe("hermes.events.>", durable=f"{durable_prefix}-events",
                                    stream="HERMES_EVENTS"),
        ]
        fetchers = [asyncio.create_task(self._fetch(s, stop)) for s in subs]
        if ready is not None:
            await ready()
        try:
            while not stop.is_set():
                msgs = await self._take()
                await self.turn(msgs)
        finally:
            await cancel_and_wait(*fetchers)
            # Anything fetched but not processed goes back for redelivery.
            while not self.inbox.empty():
                with contextlib.suppress(Exception):
                    await self.inbox.get_nowait().nak()
            for s in subs:
                with contextlib.suppress(Exception):
                    await s.unsubscribe()

    # -- shard leases ----------------------------------------------------------

    async def _run_leased(self, stop: asyncio.Event, ready: Callable[[], Awaitable[None]] | None,
                          prefix: str, leases: ShardLeases, check_s: float) -> None:
        self.owned = set()
        self.engine = _core.CascadeEngine(self.clock())
        self.contexts = {}
        consumers = _ShardConsumers(self, prefix, stop)
        next_check = 0.0
        announced = False
        try:
            while not stop.is_set():
                if time.monotonic() >= next_check:
                    await self._rebalance(leases, consumers)
                    next_check = time.monotonic() + check_s
                    if not announced and ready is not None:
                        announced = True
                        await ready()
                await self.turn(await self._take())
        finally:
            # Hand everything back: what was fetched is redelivered once the consumers are
            # gone, and closing the lease session frees the shards for the other workers.
            await consumers.stop(drain=False)
            while not self.inbox.empty():
                with contextlib.suppress(Exception):
                    await self.inbox.get_nowait().nak()
            await consumers.delete()
            await leases.close()

    async def _rebalance(self, leases: ShardLeases, consumers: _ShardConsumers) -> None:
        """Hold the fair share of shards: give back extra ones, take free ones."""
        assert self.owned is not None
        try:
            if leases.conn is None:
                await leases.open()
            members = await leases.members()
            held = await leases.held()
            target = leases.fair_share(members)
            if not self.owned <= held:
                raise LeaseLost(f"shards {sorted(self.owned - held)} are no longer locked")
            if len(self.owned) > target:
                give = sorted(self.owned)[target:]
                await self._reshape(self.owned - set(give), consumers)
                await leases.release(give)
                log.info("gave back shards %s (%d workers); holding %s", give, members,
                         sorted(self.owned))
            elif len(self.owned) < target:
                free = [s for s in range(leases.shard_count) if s not in self.owned]
                got = await leases.try_acquire(free, target - len(self.owned))
                if got:
                    await self._reshape(self.owned | set(got), consumers, acquired=got)
                    log.info("took shards %s (%d workers); holding %s", got, members,
                             sorted(self.owned))
        except Exception as exc:
            if self._stop is not None and self._stop.is_set():
                return
            # The locks may be gone (lease connection lost), or taking shards failed
            # half way: own nothing until the next check starts over.
            log.error("shard leases: %s; dropping every shard until the next check", exc)
            with contextlib.suppress(Exception):
                await self._reshape(set(), consumers, lost=True)
            self.owned = set()
            self.engine = _core.CascadeEngine(self.clock())
            self.contexts = {}
            await leases.close()

    async def _reshape(self, owned: set[int], consumers: _ShardConsumers, *,
                       acquired: Sequence[int] = (), lost: bool = False) -> None:
        """Change the owned shards between turns: stop consuming, finish what was fetched
        (unless the leases are lost), bring the engine to the new set, consume again."""
        assert self.owned is not None
        await consumers.stop(drain=not lost)
        if lost:
            while not self.inbox.empty():
                self.inbox.get_nowait()  # not ours any more: redelivered to the next owner
        await consumers.delete()
        released = self.owned - owned
        self.owned = set(owned)
        if released or lost:
            await self.rebuild()
        elif acquired:
            rows = await self.store.open_cascades(sorted(acquired))
            fresh = [(ctx, state) for ctx, state in rows if ctx.id not in self.contexts]
            self.contexts.update({ctx.id: ctx for ctx, _ in fresh})
            self.engine.restore(cast(Any, [(ctx.id.bytes, state) for ctx, state in fresh]))
        if self.owned:
            await consumers.start(sorted(self.owned))

    async def _fetch(self, sub: JetStreamContext.PullSubscription, stop: asyncio.Event) -> None:
        import nats.errors

        while not stop.is_set():
            try:
                for m in await sub.fetch(self.batch_size, timeout=1.0):
                    self.inbox.put_nowait(m)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection trouble: nats-py reconnects; back off
                log.warning("engine fetch failed: %s", exc)
                await asyncio.sleep(0.5)

    def drain_inbox(self) -> list[Msg]:
        msgs: list[Msg] = []
        while len(msgs) < self.batch_size and not self.inbox.empty():
            msgs.append(self.inbox.get_nowait())
        self._observe(msgs)
        return msgs

    async def _take(self) -> list[Msg]:
        msgs: list[Msg] = []
        try:
            msgs.append(await asyncio.wait_for(self.inbox.get(), self.tick_s))
        except TimeoutError:
            return msgs
        if self.linger_s > 0 and len(self.inbox) < LINGER_BELOW:
            # Little is queued: let more arrive, so one transaction carries many events.
            await asyncio.sleep(self.linger_s)
        while len(msgs) < self.batch_size and not self.inbox.empty():
            msgs.append(self.inbox.get_nowait())
        self._observe(msgs)
        return msgs

    def _observe(self, msgs: list[Msg]) -> None:
        # How long work waited for the engine (load shedding in the API): the turn's oldest
        # event and command, and the oldest still waiting behind them (a command kept back
        # while events come first is waiting too).
        if self.queue_meter is not None:
            if msgs:
                self.queue_meter.observe(msgs, self.inbox.held())
            for head in self.inbox.heads():
                self.queue_meter.observe_waiting(head)

    # -- one turn ------------------------------------------------------------

    def _apply(self, events: list[CoreEvent], now: int) -> list[Action]:
        # Events and actions are plain dicts here; the stub's TypedDicts document them.
        return cast(list[Action], self.engine.apply(cast(Any, events), now))

    async def turn(self, msgs: list[Msg]) -> None:
        self._trace = EngineTrace() if tracing.ENABLED else None
        started = time.perf_counter()
        try:
            await self._turn(msgs)
        finally:
            if msgs:
                metrics.ENGINE_TURN_SECONDS.observe(time.perf_counter() - started)
            if self._trace is not None:
                self._trace.end()

    async def _turn(self, msgs: list[Msg]) -> None:
        now = self.clock()
        batch = Batch()
        jobs: list[DeliveryJob] = []
        msgs, decoded = await self._decode(msgs)
        try:
            events = await self._events_from(decoded, batch, now)
            actions = self._apply(events, now) if events else []
            actions += cast(list[Action], self.engine.tick(now))
            await self._execute(actions, events, batch, jobs, now)
            held = [mid for mid in batch.updates if mid in self.contexts]
            for mid, state in zip(held, self.engine.export([m.bytes for m in held]), strict=True):
                batch.updates[mid].state = state
            await self.store.persist(batch)
        except Exception:
            log.exception("engine turn failed; rebuilding from PostgreSQL")
            for m in msgs:
                with contextlib.suppress(Exception):
                    await m.nak(delay=1)
            await self._rebuild_when_possible()
            return
        if self._background_publish:
            await self._publish_later(jobs)
        else:
            await self._publish(jobs)
        for m in msgs:
            with contextlib.suppress(Exception):
                await m.ack()
        self.turns += 1

    async def _decode(self, msgs: list[Msg]) -> tuple[list[Msg], list[Decoded]]:
        """Decode each message on its own: one malformed message is terminated, never
        redelivered, and cannot hold up the others."""
        good: list[Msg] = []
        decoded: list[Decoded] = []
        for m in msgs:
            try:
                if m.subject.startswith("hermes.cascade."):
                    cmd = COMMAND_DECODER.decode(m.data)
                    if isinstance(cmd, StartCommand):
                        ctx = MessageContext.from_json(cmd.id, cmd.tenant_id, cmd.mode,
                                                       cmd.shard, bytes(cmd.spec))
                        decoded.append((cmd, ctx))
                    else:
                        decoded.append((cmd, None))
                else:
                    decoded.append((EVENT_DECODER.decode(m.data), None))
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                self.terminated += 1
                log.error("terminating malformed message on %s: %s", m.subject, exc)
                with contextlib.suppress(Exception):
                    await m.term()
                continue
            good.append(m)
            if self._trace is not None:
                self._trace.consumed_obj(decoded[-1][0], m.headers)
        return good, decoded

    async def _events_from(self, decoded: list[Decoded], batch: Batch,
                           now: int) -> list[CoreEvent]:
        starts: list[tuple[StartCommand, MessageContext]] = []
        events: list[CoreEvent] = []
        for obj, ctx in decoded:
            if isinstance(obj, StartCommand):
                assert ctx is not None
                starts.append((obj, ctx))
            elif isinstance(obj, CancelCommand):
                events.append({"id": obj.id.bytes, "type": "cancel"})
            else:
                events.extend(self._engine_event(obj, now))
        fresh = await self.store.unstarted(
            [s.id for s, _ in starts if s.id not in self.contexts])
        for s, ctx in starts:
            if s.id not in fresh:
                continue  # a repeat of a start already taken: never restart a cascade
            fresh.discard(s.id)
            self.contexts[s.id] = ctx
            batch.update(s.id).started = True
            events.insert(0, {"id": s.id.bytes, "type": "start", "plan": ctx.plan()})
        return events

    def _engine_event(self, ev: AttemptResult | ReceiptNotice, now: int) -> list[CoreEvent]:
        base = {"id": ev.message_id.bytes, "step": ev.step, "attempt": ev.attempt}
        if isinstance(ev, ReceiptNotice):
            return [{**base, "type": "receipt", "status": ev.status}]
        # The result carries no latency; None leaves the latency average untouched.
        self.accounts.record(ev.account_id, account_answered(ev), None, now)
        if ev.outcome == "accepted":
            return [{**base, "type": "accepted", "account": str(ev.account_id)}]
        return [{**base, "type": ev.outcome, "retryable": ev.retryable,
                 "account": str(ev.account_id)}]

    async def _execute(self, actions: list[Action], events: list[CoreEvent], batch: Batch,
                       jobs: list[DeliveryJob], now: int) -> None:
        pending = actions
        for _ in range(8):  # follow-up events (no provider to route to) settle in a few rounds
            follow: list[CoreEvent] = []
            unknown: list[UUID] = []
            for a in pending:
                mid = UUID(bytes=a["id"])
                kind = a["type"]
                if kind == "unknown":
                    unknown.append(mid)
                elif kind == "dispatch":
                    follow += await self._dispatch(mid, a, batch, jobs, now)
                else:
                    self._record(mid, a, batch, now)
            if unknown:
                follow += await self._restore(unknown, events, batch, now)
            if not follow:
                return
            pending = self._apply(follow, now)
        log.error("engine follow-up events did not settle; leaving the rest to timers")

    async def _dispatch(self, mid: UUID, a: Action, batch: Batch, jobs: list[DeliveryJob],
                        now: int) -> list[CoreEvent]:
        ctx = self.contexts[mid]
        step, attempt, channel = a["step"], a["attempt"], a["channel"]
        preferred = UUID(a["provider"]) if a["provider"] else None
        account = await self.accounts.choose(
            ctx.tenant_id, ctx.mode, channel, preferred=preferred,
            exclude=[UUID(x) for x in a["exclude"]], seed=mid.int ^ attempt, now_ms=now,
            country=ctx.spec.country)
        to = ctx.address(channel)
        if account is None or to is None:
            code = "routing.no_provider" if account is None else "recipient.missing_address"
            batch.attempts.append(NewAttempt(uuid7(now), mid, ctx.tenant_id, step, attempt,
                                             channel, None, None, "failed", code))
            return [{"id": mid.bytes, "type": "provider_error", "step": step,
                     "attempt": attempt, "retryable": False}]
        attempt_id = uuid7(now)
        ctx.served = (channel, account.adapter)
        if self._trace is not None:
            self._trace.dispatched(mid, step, channel, account.adapter)
        batch.attempts.append(NewAttempt(attempt_id, mid, ctx.tenant_id, step, attempt, channel,
                                         account.id, account.adapter))
        jobs.append(DeliveryJob(
            attempt_id=attempt_id, message_id=mid, tenant_id=ctx.tenant_id, mode=ctx.mode,
            shard=ctx.shard, step=step, attempt=attempt, channel=channel, account_id=account.id,
            to=to, content=ctx.spec.content, metadata=ctx.metadata))
        return []

    def _record(self, mid: UUID, a: Action, batch: Batch, now: int) -> None:
        kind = a["type"]
        if kind == "timeline":
            data = {k: a[k] for k in ("step", "attempt", "detail") if a.get(k) is not None}
            batch.events.append((mid, _ts(now), a["kind"], msgspec.json.encode(data).decode()))
            if a["kind"] == "step_started":
                # Not at the start command: a scheduled message stays `scheduled` until then.
                batch.update(mid).status = "sending"
            elif a["kind"] in _LEFT_STEP and a.get("step") is not None:
                batch.left_steps.append((mid, a["step"]))
        elif kind == "set_timer":
            batch.update(mid).deadline_ms = a["deadline"]
        elif kind == "cancel_timer":
            batch.update(mid).clear_deadline = True
        elif kind == "finish":
            u = batch.update(mid)
            u.outcome = u.status = a["outcome"]
            u.clear_deadline = True
            ctx = self.contexts.pop(mid, None)
            if ctx is not None:
                metrics.message_finished(mid, ctx.tenant_id, *ctx.served, a["outcome"], now)
            if self._trace is not None:
                self._trace.finished(mid, a["outcome"])
            if ctx is not None and self.notice_sink is not None:
                self.notice_sink(batch, ctx, a, now)
        elif kind == "notify":
            ctx = self.contexts.get(mid)
            if ctx is not None and self.notice_sink is not None:
                self.notice_sink(batch, ctx, a, now)

    async def _restore(self, ids: list[UUID], events: list[CoreEvent], batch: Batch,
                       now: int) -> list[CoreEvent]:
        """Cascades this engine does not hold: restore the open ones and replay their events."""
        rows = await self.store.load(ids)
        replay: list[CoreEvent] = []
        restore: list[tuple[bytes, bytes]] = []
        wanted = {i.bytes for i in ids}
        for mid, (ctx, state, final) in rows.items():
            mine = [e for e in events if e["id"] == mid.bytes]
            ended = batch.updates.get(mid)
            if ended is not None and ended.outcome is not None:
                # It ended earlier in this turn, which the store has not seen yet: the
                # events the engine no longer knew are its last ones. Restoring it from
                # the store would replay the event that ended it, and end it again.
                mine, final = mine[max(0, len(mine) - ids.count(mid)):], True
            if final or state is None:
                # A receipt after the cascade ended: keep it in the timeline, never drop it.
                for e in mine:
                    if e["type"] == "receipt":
                        data = {"step": e["step"], "attempt": e["attempt"], "status": e["status"]}
                        batch.events.append((mid, _ts(now), "late_receipt",
                                             msgspec.json.encode(data).decode()))
                        late = _LATE.get(e["status"])
                        if late is not None and self.notice_sink is not None:
                            self.notice_sink(batch, ctx, {"type": "notify", "notice": late,
                                                          "step": e["step"], "outcome": None},
                                             now)
                continue
            self.contexts[mid] = ctx
            restore.append((mid.bytes, state))
        self.engine.restore(cast(Any, restore))
        restored = {r[0] for r in restore}
        for e in events:
            if e["id"] in wanted and e["id"] in restored:
                replay.append(e)
        return replay

    async def _publish_later(self, jobs: list[DeliveryJob]) -> None:
        """Publish a turn's jobs in the background, so the next turn does not wait for their
        acknowledgements (a job that never arrives is covered by its step's timer, as a
        failed publish is), with at most MAX_PUBLISHING turns' jobs in flight."""
        if not jobs:
            return
        # The headers carry this turn's spans: made now, while the turn's trace is open.
        task = asyncio.create_task(self._send_jobs(jobs, self._job_headers(jobs)))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)
        while len(self._publishing) > MAX_PUBLISHING:
            await asyncio.wait(set(self._publishing), return_when=asyncio.FIRST_COMPLETED)

    async def _publish_settled(self) -> None:
        """Wait for the jobs still being published (at stop)."""
        if self._publishing:
            await asyncio.gather(*self._publishing, return_exceptions=True)

    async def _publish(self, jobs: list[DeliveryJob]) -> None:
        if jobs:
            await self._send_jobs(jobs, self._job_headers(jobs))

    def _job_headers(self, jobs: list[DeliveryJob]) -> list[dict[str, str]]:
        trace = self._trace
        out = []
        for job in jobs:
            headers = {"Nats-Msg-Id": str(job.attempt_id)}
            if trace is not None:
                trace.job_headers(job.message_id, headers)
            out.append(headers)
        return out

    async def _send_jobs(self, jobs: list[DeliveryJob], headers: list[dict[str, str]]) -> None:
        results = await self.jobs.publish_many([
            (deliver_subject(job.channel), ENCODER.encode(job), h)
            for job, h in zip(jobs, headers, strict=True)])
        for job, failed in zip(jobs, results, strict=True):
            if failed is not None:
                # The attempt is recorded and the step's timer is set: the cascade moves on
                # by itself if this job never arrives.
                log.warning("publish of job %s of message %s failed: %s", job.attempt_id,
                            job.message_id, failed)


def account_answered(result: AttemptResult) -> bool:
    """Whether an attempt's result speaks for its account's health (routing, the breaker).

    A provider that refuses one message (a number it cannot reach, content it will not
    carry) is working: counting that against it would let one tenant's bad recipients
    open the breaker of an account others share. One that refuses the account's
    credentials, fails or does not answer is not."""
    if result.outcome == "accepted":
        return True
    return result.outcome == "rejected" and result.code != "provider.auth_failed"


class Inbox:
    """What the fetchers brought, events first: attempt results and receipts of running
    cascades are taken before new commands. Under overload, finishing the cascades in
    flight comes before starting more, whose steps would only compete with them (a receipt
    kept waiting behind new starts lets its step time out). Commands keep their order, and
    events theirs; a command and an event of one cascade cannot pass each other, since a
    cascade has no events before its start was processed.
    """

    def __init__(self) -> None:
        self.events: collections.deque[Msg] = collections.deque()
        self.commands: collections.deque[Msg] = collections.deque()
        self._ready = asyncio.Event()

    def put_nowait(self, msg: Msg) -> None:
        queue = self.events if msg.subject.startswith(_EVENTS_PREFIX) else self.commands
        queue.append(msg)
        self._ready.set()

    def empty(self) -> bool:
        return not self.events and not self.commands

    def __len__(self) -> int:
        return len(self.events) + len(self.commands)

    def get_nowait(self) -> Msg:
        if self.events:
            return self.events.popleft()
        if self.commands:
            return self.commands.popleft()
        raise asyncio.QueueEmpty

    async def get(self) -> Msg:
        while self.empty():
            self._ready.clear()
            await self._ready.wait()
        return self.get_nowait()

    def held(self) -> dict[str, int]:
        """Messages fetched and not yet taken, by subject kind (`hermes.<kind>.…`)."""
        return {"events": len(self.events), "cascade": len(self.commands)}

    def heads(self) -> list[Msg]:
        """The oldest message still waiting of each kind."""
        return [q[0] for q in (self.events, self.commands) if q]


# The engine's streams: where commands and events for shard N are published.
_ENGINE_STREAMS = ((CASCADE_STREAM, "hermes.cascade", "commands"),
                   ("HERMES_EVENTS", "hermes.events", "events"))
_EVENTS_PREFIX = _ENGINE_STREAMS[1][1] + "."


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, a final `>` one or more."""
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


class _ShardConsumers:
    """This engine's JetStream consumers for the shards it owns.

    A consumer's filter is fixed for its life: JetStream skips messages already stored
    when a filter is widened, so a new set of shards gets new consumers (with a new
    generation in their names), created after the old ones are deleted. Work-queue
    streams allow one consumer per subject, and deleting a consumer puts what it had
    delivered but not acked back in reach of the next one.
    """

    def __init__(self, runner: CascadeRunner, prefix: str, stop: asyncio.Event) -> None:
        self.runner = runner
        self.prefix = prefix
        self.stop_event = stop
        self.member = uuid.uuid4().hex[:10]
        self.generation = 0
        self.names: list[tuple[str, str]] = []
        self.subs: list[JetStreamContext.PullSubscription] = []
        self.fetchers: list[asyncio.Task[None]] = []

    async def start(self, shards: list[int]) -> None:
        js = self.runner.js_factory()
        self.generation += 1
        for stream, base, kind in _ENGINE_STREAMS:
            subjects = [f"{base}.{s}" for s in shards]
            await self._clear_stale(js, stream, subjects)
            name = f"{self.prefix}-{self.member}-{self.generation}-{kind}"
            await js.add_consumer(stream, ConsumerConfig(
                durable_name=name, filter_subjects=subjects, ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL, inactive_threshold=300.0))
            self.names.append((stream, name))
            self.subs.append(await js.pull_subscribe_bind(durable=name, stream=stream))
        self.fetchers = [asyncio.create_task(self.runner._fetch(s, self.stop_event))
                         for s in self.subs]

    async def _clear_stale(self, js: JetStreamContext, stream: str, subjects: list[str]) -> None:
        """Delete engine consumers that still filter on these subjects: ones left by a
        worker that died (its leases ended with its session), or by an older version."""
        for info in await js.consumers_info(stream):
            name = info.name or ""
            if not name.startswith(f"{self.prefix}-") or (stream, name) in self.names:
                continue
            filters = list(info.config.filter_subjects or [])
            if info.config.filter_subject:
                filters.append(info.config.filter_subject)
            if not filters or any(subject_matches(f, s) for f in filters for s in subjects):
                log.info("deleting stale engine consumer %s on %s", name, stream)
                with contextlib.suppress(Exception):
                    await js.delete_consumer(stream, name)

    async def stop(self, *, drain: bool) -> None:
        """Stop fetching; with `drain`, process what was already fetched first."""
        fetchers, self.fetchers = self.fetchers, []
        # Cancelled until they end: a fetcher that missed a cancellation (see
        # hermes.infra.tasks) would keep this engine from ever changing its shards.
        await cancel_and_wait(*fetchers)
        while drain and not self.runner.inbox.empty():
            await self.runner.turn(self.runner.drain_inbox())

    async def delete(self) -> None:
        subs, self.subs = self.subs, []
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        names, self.names = self.names, []
        if not names:
            return
        js = self.runner.js_factory()
        for stream, name in names:
            try:
                await js.delete_consumer(stream, name)
            except Exception as exc:  # left for the next owner's clean-up, or its threshold
                log.warning("deleting engine consumer %s failed: %s", name, exc)
