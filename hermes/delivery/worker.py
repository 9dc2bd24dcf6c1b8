"""Delivery workers: `DeliveryJob`s from JetStream -> the provider -> `AttemptResult`s.

A pull consumer (durable `delivery` on HERMES_DELIVER) fetches jobs in batches
and runs them concurrently, up to a bound. Per job:

1. Claim the attempt (`pending -> sending`) before calling the provider. A job
   whose attempt is not pending is a redelivery: an answered attempt has its
   recorded result published again (`Nats-Msg-Id` makes that harmless) and is
   not sent again. An attempt still `sending` was interrupted between the
   provider call and its record (a crash): that is the documented duplicate
   window, so it is counted, closed as `provider.unavailable` and reported as
   retryable, and the engine fails over.
2. Build the request with the account's adapter, send it, parse the answer.
3. Record the answer on the attempt, publish the result on
   `hermes.events.<shard>` (Nats-Msg-Id `<attempt id>:result`), then ack.

A failure of PostgreSQL or NATS naks the job, to be retried; nothing here
raises out of the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from hermes.delivery import throttle
from hermes.delivery.sender import Outcome, Sender, failure
from hermes.domain.errors import Code, catalogue
from hermes.domain.jobs import ENCODER, JOB_DECODER, AttemptResult, DeliveryJob, events_subject
from hermes.infra.nats.connection import NatsConnection
from hermes.infra.nats.publisher import AckedPublisher
from hermes.infra.postgres.attempts import Answer, AttemptRow, PostgresAttemptStore
from hermes.infra.redis.queue_delay import QueueDelayMeter
from hermes.infra.tasks import cancel_and_wait
from hermes.observability import hooks, metrics
from hermes.ports import Limiter
from hermes.providers.accounts import AccountDirectory, ensure_sandbox_accounts
from hermes.providers.quarantine import TRAP_CODES, TrapMonitor

if TYPE_CHECKING:
    from hermes.bootstrap import Container

log = logging.getLogger("hermes.delivery")

STREAM = "HERMES_DELIVER"
DURABLE = "delivery"
SUBJECT = "hermes.deliver.>"
# A job in progress is kept from redelivery by `in_progress()` every KEEPALIVE_S, so
# ack_wait only bounds how soon the jobs of a crashed worker go to another one.
ACK_WAIT_S = 15.0
KEEPALIVE_S = 5.0
RETRY_DELAY_S = 1.0
# A job whose adapter trapped before sending is retried this soon, this many times, while
# the trapping version is quarantined and the previous one restored; then it fails as usual.
TRAP_RETRY_DELAY_S = 0.5
TRAP_RETRIES = 10


class TrapRetry(Exception):
    """The adapter trapped before the provider was called: put the job back."""


@dataclass
class DeliveryMetrics:
    """Counters until real metrics arrive; `duplicate_window_hits` is guarantee 5's figure."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    provider_errors: int = 0
    redelivered_answered: int = 0
    duplicate_window_hits: int = 0
    closed_unsent: int = 0  # jobs whose cascade ended before they were sent
    retried: int = 0
    throttled: int = 0  # jobs put back because their account's send rate was used up
    trap_retries: int = 0  # jobs put back because their adapter version trapped


METRICS = DeliveryMetrics()


def result_msg_id(result: AttemptResult) -> str:
    return f"{result.attempt_id}:result"


class DeliveryWorker:
    def __init__(
        self,
        *,
        nats: NatsConnection,
        accounts: AccountDirectory,
        attempts: PostgresAttemptStore,
        sender: Sender,
        durable: str = DURABLE,
        subject: str = SUBJECT,
        batch: int = 64,
        concurrency: int = 256,
        drain_timeout: float = 20.0,
        ack_wait: float = ACK_WAIT_S,
        keepalive: float = KEEPALIVE_S,
        metrics: DeliveryMetrics = METRICS,
        limiter: Limiter | None = None,
        traps: TrapMonitor | None = None,
        queue_meter: QueueDelayMeter | None = None,
    ) -> None:
        self.nats = nats
        self.acked = AckedPublisher(nats)  # attempt results, acknowledged in batches
        self.queue_meter = queue_meter  # how long jobs waited (load shedding in the API)
        self.accounts = accounts
        self.attempts = attempts
        self.sender = sender
        self.durable = durable
        self.subject = subject
        self.batch = batch
        self.concurrency = concurrency
        self.drain_timeout = drain_timeout
        self.ack_wait = ack_wait
        self.keepalive = keepalive
        self.metrics = metrics
        self.limiter = limiter  # providers' send rates (`config.rate_limit_per_s`)
        self.traps = traps

    @classmethod
    def from_container(cls, container: Container, **options: Any) -> DeliveryWorker:
        sender = Sender(container.adapters, container.http, container.google_tokens,
                        public_url=container.settings.callback_base_url)
        options.setdefault("traps", container.deploys.monitor if container.deploys else None)
        options.setdefault("limiter", container.limiter)
        options.setdefault("queue_meter", container.queue_meter)
        return cls(nats=container.nats, accounts=container.accounts,
                   attempts=container.attempts, sender=sender, **options)

    # --- the consumer loop ---

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then finish the jobs in flight (up to `drain_timeout`)."""
        waiting = asyncio.ensure_future(self.nats.wait_connected())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            waiting.cancel()
            return
        stopping.cancel()
        js = self.nats.jetstream()
        config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait,
                                max_ack_pending=self.concurrency * 4)
        sub = await js.pull_subscribe(self.subject, durable=self.durable, stream=STREAM,
                                      config=config)
        tasks: set[asyncio.Task[None]] = set()
        in_flight: dict[asyncio.Task[None], Msg] = {}
        keepalive = asyncio.create_task(self._keep_alive(in_flight))
        try:
            while not stop.is_set():
                room = self.concurrency - len(tasks)
                if room <= 0:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    msgs = await sub.fetch(min(self.batch, room), timeout=0.5)
                except TimeoutError:  # nats-py raises its own subclass, or asyncio's
                    continue
                except Exception as exc:  # connection trouble: nats-py reconnects by itself
                    log.warning("delivery fetch failed: %r", exc)
                    await asyncio.sleep(0.5)
                    continue
                if self.queue_meter is not None:
                    self.queue_meter.observe(msgs)
                for msg in msgs:
                    task = asyncio.create_task(self.handle(msg),
                                               context=hooks.job_context(msg.headers))
                    tasks.add(task)
                    in_flight[task] = msg
                    task.add_done_callback(tasks.discard)
                    task.add_done_callback(lambda t: in_flight.pop(t, None))
        finally:
            if tasks:
                await asyncio.wait(tasks, timeout=self.drain_timeout)
            await cancel_and_wait(keepalive)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            await self.acked.close()

    async def _keep_alive(self, in_flight: dict[asyncio.Task[None], Msg]) -> None:
        """Tell JetStream the jobs still running are in progress (a slow provider)."""
        seen: set[asyncio.Task[None]] = set()
        while True:
            await asyncio.sleep(self.keepalive)
            running = set(in_flight)
            # Only jobs running since the last tick: most finish in milliseconds.
            for task in running & seen:
                msg = in_flight.get(task)
                if msg is not None:
                    await _quietly(msg.in_progress())
            seen = running

    async def handle(self, msg: Msg) -> None:
        try:
            job = JOB_DECODER.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.error("dropping an undecodable delivery job: %s", exc)
            await _quietly(msg.term())
            return
        try:
            try:
                result = await self.process(job, deliveries=msg.metadata.num_delivered)
            except TrapRetry:
                self.metrics.trap_retries += 1
                await msg.nak(delay=TRAP_RETRY_DELAY_S)
                return
            if result is None:
                # No attempt row: the engine commits it before publishing, so this is a
                # job from a lost or rolled-back dispatch. Retry a few times, then drop it.
                if msg.metadata.num_delivered >= 5:
                    log.error("no attempt %s; dropping its job", job.attempt_id)
                    await msg.term()
                else:
                    await msg.nak(delay=RETRY_DELAY_S)
                return
            if result.code == Code.MESSAGE_ALREADY_FINAL:
                await msg.ack()  # closed unsent when its cascade ended: nothing to report
                return
            await self.publish(job.shard, result)
            await msg.ack()
        except throttle.Throttled as wait:  # back to the stream; the slot goes to other jobs
            self.metrics.throttled += 1
            await _quietly(msg.nak(delay=throttle.delay(wait.wait_s,
                                                        msg.metadata.num_delivered)))
        except Exception as exc:  # PostgreSQL or NATS unavailable: retry the job later
            self.metrics.retried += 1
            log.warning("delivery of attempt %s will be retried: %s", job.attempt_id, exc)
            await _quietly(msg.nak(delay=RETRY_DELAY_S))

    async def publish(self, shard: int, result: AttemptResult) -> None:
        await self.acked.publish(
            events_subject(shard), ENCODER.encode(result),
            hooks.result_headers(result.message_id, result.attempt_id,
                                 {"Nats-Msg-Id": result_msg_id(result)}))

    # --- one job ---

    async def process(self, job: DeliveryJob, deliveries: int = 1) -> AttemptResult | None:
        """Claim, send, record; the result to publish (None when the attempt does not exist).

        `TrapRetry` when the adapter version trapped before sending and the job has been
        delivered fewer than TRAP_RETRIES times: the attempt is pending again."""
        await self._take_send_token(job)
        if not await self.attempts.claim(job.attempt_id):
            row = await self.attempts.get(job.attempt_id)
            if row is None:
                return None
            return await self._redelivered(job, row)

        account = await self.accounts.get(job.account_id)
        adapter = None if account is None else self.sender.adapter_for(account)
        if account is None:
            outcome = failure("routing.no_provider", f"no provider account {job.account_id}")
        elif (not self.accounts.allowed(account, job.mode) or account.channel != job.channel
              or account.tenant_id not in (None, job.tenant_id)):
            # Never send a live message through the sandbox, a test one to a real provider,
            # or anything through another tenant's account.
            outcome = failure("routing.no_provider",
                              f"account {account.id} may not send this {job.mode} message")
        elif adapter is None:
            outcome = failure("routing.no_provider", f"adapter {account.adapter} is not loaded")
        else:
            self.metrics.sent += 1
            outcome = await hooks.attempt(job, adapter.name,
                                          self.sender.send(job, account, adapter))
            if self.traps is not None:
                self.traps.record(adapter, job.attempt_id, outcome.code)
                if (outcome.before_send and outcome.code in TRAP_CODES
                        and deliveries < TRAP_RETRIES):
                    await self.attempts.release(job.attempt_id)
                    raise TrapRetry(outcome.code)

        await self.attempts.answer(_answer(job, outcome))
        self._count(outcome)
        return _result(job, outcome)

    async def _take_send_token(self, job: DeliveryJob) -> None:
        """A token from the account's send rate, taken before the attempt is claimed so a
        throttled job goes back to the stream with its attempt still pending; `Throttled`
        when there is none. (A redelivered job whose attempt was answered also takes one.)"""
        if self.limiter is None:
            return
        account = await self.accounts.get(job.account_id)
        limits = None if account is None else throttle.account_limits(account.config)
        if limits is None:
            return
        decision = await self.limiter.take(throttle.partition(job.account_id), limits)
        if not decision.allowed:
            raise throttle.Throttled(decision.retry_after_s)

    async def _redelivered(self, job: DeliveryJob, row: AttemptRow) -> AttemptResult | None:
        if row.status == "pending":
            raise RuntimeError("attempt still pending after a failed claim")  # a race: retry
        if row.status == "sending":
            # Interrupted between the provider call and its record: the provider may or may
            # not have the message. Report it retryable so the engine fails over; counted.
            self.metrics.duplicate_window_hits += 1
            metrics.duplicate_send()
            code = "provider.unavailable"
            await self.attempts.fail_stuck(row.id, code)
            log.warning("attempt %s was interrupted mid-send (duplicate window)", row.id)
            return _result(job, failure(code, "interrupted between the provider call and its "
                                        "record; the provider may have the message"))
        if row.error_code == Code.MESSAGE_ALREADY_FINAL:
            self.metrics.closed_unsent += 1
            return _result(job, failure(Code.MESSAGE_ALREADY_FINAL,
                                        "the cascade ended before this attempt was sent"))
        self.metrics.redelivered_answered += 1
        return _recorded_result(job, row)

    def _count(self, outcome: Outcome) -> None:
        if outcome.outcome == "accepted":
            self.metrics.accepted += 1
        elif outcome.outcome == "rejected":
            self.metrics.rejected += 1
        else:
            self.metrics.provider_errors += 1


def _answer(job: DeliveryJob, o: Outcome) -> Answer:
    status = {"accepted": "accepted", "rejected": "rejected"}.get(o.outcome, "failed")
    return Answer(
        attempt_id=job.attempt_id, status=status, provider_message_id=o.provider_message_id,
        error_code=o.code, provider_error_code=o.provider_error_code, segments=o.segments,
        cost=o.cost, adapter=o.adapter.name if o.adapter else None,
        adapter_version=o.adapter.version if o.adapter else None,
        adapter_sha256=o.adapter.sha256 if o.adapter else None,
    )


def _result(job: DeliveryJob, o: Outcome) -> AttemptResult:
    return AttemptResult(
        message_id=job.message_id, attempt_id=job.attempt_id, step=job.step,
        attempt=job.attempt, account_id=job.account_id, outcome=o.outcome,
        retryable=o.retryable, code=o.code, provider_message_id=o.provider_message_id,
        retry_after_ms=o.retry_after_ms, detail=o.detail,
    )


def _recorded_result(job: DeliveryJob, row: AttemptRow) -> AttemptResult:
    """The result an answered attempt had, rebuilt from its row (receipts may have moved it on)."""
    if row.provider_message_id is not None:
        return _result(job, Outcome("accepted", provider_message_id=row.provider_message_id))
    code = row.error_code or "provider.unavailable"
    if row.status == "rejected":
        return _result(job, Outcome("rejected", retryable=code == "provider.auth_failed",
                                    code=code))
    info = catalogue().get(code)
    return _result(job, Outcome("provider_error", retryable=bool(info and info.retryable),
                                code=code))


async def _quietly(action: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await action


async def run_delivery(container: Container, stop: asyncio.Event, **options: Any) -> None:
    """Run the delivery consumer of a worker process until `stop` is set."""
    if container.settings.sandbox_url:
        await ensure_sandbox_accounts(container.pool, container.settings.sandbox_url,
                                      container.keyring)
        await container.accounts.refresh()
    await DeliveryWorker.from_container(container, **options).run(stop)
