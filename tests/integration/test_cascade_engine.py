"""The engine loop against real PostgreSQL and NATS JetStream, in virtual time.

The delivery side is played by the test: it takes DeliveryJobs off
`hermes.deliver.*` and answers with AttemptResults and ReceiptNotices, as
delivery workers and provider callbacks do.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec
import pytest

from hermes.bootstrap import Container
from hermes.cascade.runner import CascadeRunner
from hermes.cascade.store import PostgresCascadeStore
from hermes.cascade.sweep import RecoverySweep
from hermes.domain.jobs import (
    ENCODER,
    JOB_DECODER,
    AttemptResult,
    DeliveryJob,
    ReceiptNotice,
    StartCommand,
    cascade_subject,
    events_subject,
)
from hermes.domain.messages import Address, Content, MessageSpec, StepSpec
from hermes.infra.nats.streams import STREAMS, ensure_streams
from hermes.infra.postgres.attempts import PostgresAttemptStore
from hermes.infra.postgres.messages import NewMessage
from hermes.infra.redis.queue_delay import QueueDelayMeter


def _now() -> int:
    import time

    return time.time_ns() // 1_000_000


class Clock:
    def __init__(self, start_ms: int) -> None:
        self.ms = start_ms

    def __call__(self) -> int:
        return self.ms


@dataclass
class Account:
    id: UUID
    adapter: str


class FakeChooser:
    """Routing stand-in: one account per channel, none excluded twice."""

    def __init__(self, accounts: dict[str, list[Account]]) -> None:
        self.accounts = accounts
        self.recorded: list[tuple[UUID, bool]] = []

    async def choose(self, tenant_id: UUID, mode: str, channel: str, *,
                     preferred: UUID | None = None, exclude: Sequence[UUID] = (),
                     seed: int = 0, now_ms: int, country: str | None = None) -> Account | None:
        for a in self.accounts.get(channel, []):
            if a.id not in exclude:
                return a
        return None

    def record(self, account_id: UUID, success: bool, latency_ms: float | None,
               now_ms: int) -> None:
        self.recorded.append((account_id, success))


async def close_open_cascades(container: Container) -> None:
    """Finish every open cascade. An engine under test rebuilds every open cascade from
    PostgreSQL: cascades other tests left open would fire their timers into this test's
    queues (under the virtual clock, all at once), burying the jobs a test waits for."""
    async with container.pool.connection() as conn:
        await conn.execute(
            "UPDATE messages SET started_at = coalesce(started_at, now()),"
            " finished_at = now(), next_deadline = NULL WHERE finished_at IS NULL")


@pytest.fixture
async def env(container: Container) -> AsyncIterator[dict[str, Any]]:
    js = container.nats.jetstream()
    await ensure_streams(js)
    for s in STREAMS:
        assert s.name is not None
        await js.purge_stream(s.name)
        # Work-queue streams allow one consumer per subject: clear what other tests left.
        for info in await js.consumers_info(s.name):
            await js.delete_consumer(s.name, info.name)
    await close_open_cascades(container)
    tenant = await container.tenants.create_tenant(f"eng-{uuid.uuid4().hex[:6]}")
    accounts: dict[str, list[Account]] = {}
    async with container.pool.connection() as conn:
        for channel, adapters in {"sms": ["twilio_sms", "messente_sms"],
                                  "email": ["ses_email"], "push": ["fcm_push"]}.items():
            for adapter in adapters:
                aid = uuid.uuid4()
                await conn.execute(
                    "INSERT INTO provider_accounts (id, tenant_id, name, channel, adapter,"
                    " mode, credentials) VALUES (%s, %s, %s, %s, %s, 'test', %s)",
                    (aid, tenant.id, adapter, channel, adapter, b"{}"))
                accounts.setdefault(channel, []).append(Account(aid, adapter))
    deliver = await js.pull_subscribe("hermes.deliver.>", durable="test-deliver",
                                      stream="HERMES_DELIVER")
    yield {"tenant": tenant, "chooser": FakeChooser(accounts), "deliver": deliver, "js": js}
    await deliver.unsubscribe()
    for stream, name in (("HERMES_DELIVER", "test-deliver"), ("HERMES_CASCADE", "engine-commands"),
                         ("HERMES_EVENTS", "engine-events")):
        try:
            await js.delete_consumer(stream, name)
        except Exception:
            pass


async def _submit(container: Container, tenant_id: UUID, steps: list[StepSpec],
                  clock: Clock, *, publish: bool = True) -> UUID:
    spec = MessageSpec(to=Address(phone="+4520120003", email="noreceipt@example.com"),
                       content=Content(body="Your order has shipped", subject="Shipped"),
                       steps=steps)
    mid = uuid.uuid4()
    from datetime import UTC, datetime

    now = datetime.fromtimestamp(clock.ms / 1000, tz=UTC)
    row = NewMessage(id=mid, tenant_id=tenant_id, mode="test", status="queued", shard=3,
                     spec_json=msgspec.json.encode(spec).decode(), metadata_json="{}",
                     idempotency_key=None, idempotency_hash=None, send_at=None, expires_at=None,
                     next_deadline=now, event_json='{"status":"queued"}', created_at=now)
    assert (await container.writer.insert_many([row]))[0].existing is None
    if publish:
        cmd = StartCommand(id=mid, tenant_id=tenant_id, mode="test", shard=3,
                           spec=msgspec.Raw(row.spec_json.encode()))
        await container.nats.jetstream().publish(cascade_subject(3), ENCODER.encode(cmd),
                                                 headers={"Nats-Msg-Id": f"{mid}:start"})
    return mid


async def _next_job(env: dict[str, Any], mid: UUID, timeout: float = 10) -> DeliveryJob:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            msgs = await env["deliver"].fetch(10, timeout=0.5)
        except Exception:
            continue
        for m in msgs:
            await m.ack()
            job = JOB_DECODER.decode(m.data)
            if job.message_id == mid:
                return job  # type: ignore[no-any-return]
    raise AssertionError("no delivery job")


async def _send(container: Container, event: AttemptResult | ReceiptNotice, key: str) -> None:
    await container.nats.jetstream().publish(events_subject(3), ENCODER.encode(event),
                                             headers={"Nats-Msg-Id": key})


def _result(job: DeliveryJob, outcome: str = "accepted", **kw: Any) -> AttemptResult:
    return AttemptResult(message_id=job.message_id, attempt_id=job.attempt_id, step=job.step,
                         attempt=job.attempt, account_id=job.account_id,
                         outcome=outcome, **kw)  # type: ignore[arg-type]


def _receipt(job: DeliveryJob, status: str) -> ReceiptNotice:
    return ReceiptNotice(message_id=job.message_id, attempt_id=job.attempt_id, step=job.step,
                         attempt=job.attempt, account_id=job.account_id,
                         status=status)  # type: ignore[arg-type]


async def _row(container: Container, mid: UUID) -> dict[str, Any]:
    async with container.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, outcome, finished_at, next_deadline, started_at FROM messages"
            " WHERE id = %s", (mid,))
        status, outcome, finished, deadline, started = await cur.fetchone()  # type: ignore[misc]
        cur = await conn.execute(
            "SELECT kind, data FROM message_events WHERE message_id = %s ORDER BY id", (mid,))
        timeline = [(k, d) for k, d in await cur.fetchall()]
        cur = await conn.execute(
            "SELECT step, attempt, channel, provider_account_id, status FROM attempts"
            " WHERE message_id = %s ORDER BY attempt", (mid,))
        attempts = await cur.fetchall()
    return {"status": status, "outcome": outcome, "finished": finished, "deadline": deadline,
            "started": started, "timeline": timeline, "attempts": attempts}


async def _until(container: Container, mid: UUID, pred: Any, timeout: float = 10) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        row = await _row(container, mid)
        if pred(row):
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not reached: {json.dumps(row, default=str)}")
        await asyncio.sleep(0.05)


class Running:
    def __init__(self, container: Container, chooser: FakeChooser, clock: Clock,
                 queue_meter: QueueDelayMeter | None = None) -> None:
        self.runner = CascadeRunner(container.nats, PostgresCascadeStore(container.pool),
                                    chooser, clock=clock, queue_meter=queue_meter)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CascadeRunner:
        ready = asyncio.Event()

        async def on_ready() -> None:
            ready.set()

        self.task = asyncio.create_task(self.runner.run(self.stop, ready=on_ready))
        await asyncio.wait_for(ready.wait(), 10)
        return self.runner

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)


SEED_STEPS = [StepSpec("sms", 30_000, "delivered"), StepSpec("email", 30_000, "delivered"),
              StepSpec("push", 30_000, "accepted")]


async def test_seed_cascade_sms_unconfirmed_falls_back_to_email(
    container: Container, env: dict[str, Any]
) -> None:
    clock = Clock(_now())
    mid = await _submit(container, env["tenant"].id, SEED_STEPS, clock)
    async with Running(container, env["chooser"], clock):
        sms = await _next_job(env, mid)
        assert (sms.channel, sms.step, sms.to) == ("sms", 0, "+4520120003")
        await _send(container, _result(sms, provider_message_id="SM1"), f"{sms.attempt_id}:r")
        row = await _until(container, mid, lambda r: any(k == "accepted" for k, _ in r["timeline"]))
        assert row["status"] == "sending" and row["started"] is not None
        assert row["deadline"] is not None

        clock.ms += 30_001  # no receipt within the step's timeout
        email = await _next_job(env, mid)
        assert (email.channel, email.step, email.to) == ("email", 1, "noreceipt@example.com")
        await _send(container, _result(email), f"{email.attempt_id}:r")
        await _send(container, _receipt(email, "delivered"), f"{email.attempt_id}:d")
        row = await _until(container, mid, lambda r: r["finished"] is not None)
        assert row["outcome"] == row["status"] == "delivered" and row["deadline"] is None
        kinds = [k for k, _ in row["timeline"]]
        for expected in ("accepted", "step_timed_out", "fallback", "receipt", "finished"):
            assert expected in kinds, kinds
        # No delivery worker took these jobs here, so the end of the cascade closed them
        # unsent: a job that arrives after the final state is never sent.
        assert [(a[0], a[2], a[4]) for a in row["attempts"]] == [(0, "sms", "failed"),
                                                                 (1, "email", "failed")]

        # The SMS receipt arrives after the cascade moved on: recorded, never lost.
        await _send(container, _receipt(sms, "delivered"), f"{sms.attempt_id}:late")
        row = await _until(container, mid,
                           lambda r: any(k == "late_receipt" for k, _ in r["timeline"]))


async def test_a_job_still_queued_when_its_step_times_out_is_never_sent(
    container: Container, env: dict[str, Any]
) -> None:
    clock = Clock(_now())
    mid = await _submit(container, env["tenant"].id, SEED_STEPS, clock)
    async with Running(container, env["chooser"], clock):
        sms = await _next_job(env, mid)  # published; no delivery worker has claimed it yet
        clock.ms += 30_001  # the SMS step times out while the job still waits
        email = await _next_job(env, mid)
        row = await _until(container, mid, lambda r: len(r["attempts"]) == 2)
        assert row["finished"] is None
        assert [(a[0], a[2], a[4]) for a in row["attempts"]] == [(0, "sms", "failed"),
                                                                 (1, "email", "pending")]
        async with container.pool.connection() as conn:
            cur = await conn.execute("SELECT error_code FROM attempts WHERE id = %s",
                                     (sms.attempt_id,))
            assert await cur.fetchone() == ("cascade.step_left",)
        # The delivery worker that finally takes the SMS job cannot claim it: never sent.
        attempts = PostgresAttemptStore(container.pool)
        try:
            assert not await attempts.claim(sms.attempt_id)
            assert await attempts.claim(email.attempt_id)
        finally:
            await attempts.close()


async def test_sms_delivered_stops_the_cascade(container: Container, env: dict[str, Any]) -> None:
    clock = Clock(_now())
    mid = await _submit(container, env["tenant"].id, SEED_STEPS, clock)
    async with Running(container, env["chooser"], clock):
        sms = await _next_job(env, mid)
        await _send(container, _result(sms), f"{sms.attempt_id}:r")
        await _send(container, _receipt(sms, "delivered"), f"{sms.attempt_id}:d")
        row = await _until(container, mid, lambda r: r["finished"] is not None)
        assert row["outcome"] == "delivered"
        clock.ms += 120_000
        await asyncio.sleep(0.3)
        row = await _row(container, mid)
        assert [a[2] for a in row["attempts"]] == ["sms"]  # email was never sent


async def test_provider_error_fails_over_within_the_step(
    container: Container, env: dict[str, Any]
) -> None:
    clock = Clock(_now())
    mid = await _submit(container, env["tenant"].id, SEED_STEPS, clock)
    async with Running(container, env["chooser"], clock):
        first = await _next_job(env, mid)
        await _send(container, _result(first, "provider_error", retryable=True,
                                       code="provider.unavailable"), f"{first.attempt_id}:r")
        second = await _next_job(env, mid)
        assert second.channel == "sms" and second.step == 0
        assert second.account_id != first.account_id


async def test_an_account_is_judged_by_whether_it_answered_not_by_the_message(
    container: Container, env: dict[str, Any]
) -> None:
    # Routing health: a provider refusing one message is working; one refusing the
    # account's credentials, or failing, is not.
    clock = Clock(_now())
    chooser: FakeChooser = env["chooser"]
    results = [("accepted", None, True), ("rejected", "provider.rejected", True),
               ("rejected", "provider.auth_failed", False),
               ("provider_error", "provider.unavailable", False)]
    async with Running(container, chooser, clock):
        for outcome, code, healthy in results:
            mid = await _submit(container, env["tenant"].id, SEED_STEPS, clock)
            job = await _next_job(env, mid)
            chooser.recorded.clear()
            extra: dict[str, Any] = {"provider_message_id": "pm-1"} if code is None else {
                "code": code, "retryable": code != "provider.rejected"}
            await _send(container, _result(job, outcome, **extra), f"{job.attempt_id}:r")
            deadline = asyncio.get_running_loop().time() + 10
            while not chooser.recorded:
                assert asyncio.get_running_loop().time() < deadline, (outcome, code)
                await asyncio.sleep(0.02)
            assert chooser.recorded == [(job.account_id, healthy)], (outcome, code)


async def test_timers_survive_an_engine_restart(container: Container, env: dict[str, Any]) -> None:
    clock = Clock(_now())
    mid = await _submit(container, env["tenant"].id, SEED_STEPS, clock)
    async with Running(container, env["chooser"], clock):
        sms = await _next_job(env, mid)
        await _until(container, mid, lambda r: r["deadline"] is not None)
    # The engine is gone; its replacement rebuilds the wheel from PostgreSQL.
    clock.ms += 31_000
    async with Running(container, env["chooser"], clock) as runner:
        assert mid in runner.contexts
        email = await _next_job(env, mid)
        assert email.channel == "email" and email.attempt > sms.attempt


async def test_sweep_redrives_a_message_whose_start_was_never_published(
    container: Container, env: dict[str, Any]
) -> None:
    clock = Clock(_now())
    mid = await _submit(container, env["tenant"].id, SEED_STEPS, clock, publish=False)
    sweep = RecoverySweep(container.pool, container.nats.jetstream, grace_s=0)
    async with Running(container, env["chooser"], clock):
        assert mid in await sweep.once()
        job = await _next_job(env, mid)
        assert job.channel == "sms"
        await _until(container, mid, lambda r: r["started"] is not None)
        # A second sweep finds nothing left to re-drive for it, and a repeated start is ignored.
        assert mid not in await sweep.once()


async def test_sweep_passes_over_a_start_still_waiting_in_its_shard(
    container: Container, env: dict[str, Any]
) -> None:
    # An engine that is behind: the start is in the stream, unconsumed, past the grace.
    clock = Clock(_now())
    mid = await _submit(container, env["tenant"].id, SEED_STEPS, clock)
    sweep = RecoverySweep(container.pool, container.nats.jetstream, grace_s=0.3)
    await asyncio.sleep(0.4)
    assert mid not in await sweep.once()
    assert sweep.passed_over == 1 and sweep.republished == 0
    info = await container.nats.jetstream().stream_info("HERMES_CASCADE")
    assert info.state.messages == 1  # nothing was published again
    async with Running(container, env["chooser"], clock):
        await _until(container, mid, lambda r: r["started"] is not None)


async def test_sweep_republishes_a_lost_start_behind_a_newer_backlog(
    container: Container, env: dict[str, Any]
) -> None:
    # The first message's start was never published; the second's, committed well after
    # the first, waits in the same shard: the backlog cannot hold the first one's start.
    clock = Clock(_now())
    lost = await _submit(container, env["tenant"].id, SEED_STEPS, clock, publish=False)
    await asyncio.sleep(0.5)
    waiting = await _submit(container, env["tenant"].id, SEED_STEPS, Clock(_now()))
    sweep = RecoverySweep(container.pool, container.nats.jetstream, grace_s=0.3)
    await asyncio.sleep(0.4)
    republished = await sweep.once()
    assert lost in republished and waiting not in republished
    assert sweep.passed_over == 1
    async with Running(container, env["chooser"], clock):
        for mid in (lost, waiting):
            await _until(container, mid, lambda r: r["started"] is not None)


async def test_a_malformed_command_is_terminated_and_holds_nothing_up(
    container: Container, env: dict[str, Any]
) -> None:
    clock = Clock(_now())
    bad = {"type": "start", "id": str(uuid.uuid4()), "tenant_id": str(env["tenant"].id),
           "mode": "test", "shard": 3, "spec": {"steps": []}}
    await container.nats.jetstream().publish(cascade_subject(3), json.dumps(bad).encode())
    await container.nats.jetstream().publish(cascade_subject(3), b"not json at all")
    mid = await _submit(container, env["tenant"].id, SEED_STEPS, clock)
    async with Running(container, env["chooser"], clock) as runner:
        job = await _next_job(env, mid)
        assert job.channel == "sms"
        assert runner.terminated == 2


async def test_stuck_check_finds_a_started_message_with_no_timer_and_nothing_in_flight(
    container: Container, env: dict[str, Any]
) -> None:
    clock = Clock(_now())
    healthy = await _submit(container, env["tenant"].id, SEED_STEPS, clock, publish=False)
    stuck = await _submit(container, env["tenant"].id, SEED_STEPS, clock, publish=False)
    async with container.pool.connection() as conn:
        await conn.execute("UPDATE messages SET started_at = now(),"
                           " next_deadline = now() + interval '30 seconds' WHERE id = %s",
                           (healthy,))
        await conn.execute("UPDATE messages SET started_at = now(), next_deadline = NULL"
                           " WHERE id = %s", (stuck,))
    sweep = RecoverySweep(container.pool, container.nats.jetstream)
    found = await sweep.check_stuck()
    assert stuck in found and healthy not in found
    async with container.pool.connection() as conn:
        await conn.execute("UPDATE messages SET finished_at = now(), outcome = 'failed'"
                           " WHERE id = ANY(%s)", ([healthy, stuck],))
    assert stuck not in await sweep.check_stuck()


async def test_the_engine_notes_how_long_a_command_waited_for_it(
    container: Container, env: dict[str, Any]
) -> None:
    # Load shedding reads this wait: a start command published 1.2 s before the engine
    # runs has waited at least that long when a turn takes it.
    clock = Clock(_now())
    mid = await _submit(container, env["tenant"].id, SEED_STEPS, clock)
    await asyncio.sleep(1.2)
    meter = QueueDelayMeter()
    async with Running(container, env["chooser"], clock, queue_meter=meter):
        assert (await _next_job(env, mid)).message_id == mid
    report = meter.take()
    assert 1.2 <= report.wait < 10, report
    assert any(name.endswith("commands") for name in report.backlog), report
    assert meter.take().wait == 0.0  # taken: the next second starts from nothing
