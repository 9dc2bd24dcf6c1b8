"""The JetStream side of delivery: jobs pulled from HERMES_DELIVER, results published,
jobs acked, and a clean stop."""

from __future__ import annotations

import asyncio
import contextlib

from hermes.delivery.worker import DURABLE, STREAM
from hermes.domain.jobs import ENCODER, deliver_subject
from hermes.infra.redis.queue_delay import QueueDelayMeter
from tests.integration.delivery.support import SES, TWILIO, World


async def _clear_consumers(world: World) -> None:
    """Work-queue streams allow one consumer per subject; drop what earlier tests left."""
    js = world.container.nats.jetstream()
    for info in await js.consumers_info(STREAM):
        await js.delete_consumer(STREAM, info.name)


async def _run_until_results(world: World, count: int) -> None:
    """Run the delivery worker until `count` attempt results are out, then stop it."""
    stop = asyncio.Event()
    running = asyncio.create_task(world.worker.run(stop))
    try:
        await world.events.wait_for(count, within=10)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)


async def test_jobs_from_jetstream_are_sent_answered_and_acked(world: World) -> None:
    await _clear_consumers(world)
    js = world.container.nats.jetstream()
    jobs = [await world.job("sms", f"+44740000000{d}", TWILIO) for d in (1, 3, 4)]
    jobs.append(await world.job("email", "success@example.com", SES))
    for job in jobs:
        await js.publish(deliver_subject(job.channel), ENCODER.encode(job),
                         headers={"Nats-Msg-Id": str(job.attempt_id)})

    await _run_until_results(world, len(jobs))

    outcomes = {r.attempt_id: r.outcome for r in world.events.results()}
    assert outcomes == {jobs[0].attempt_id: "accepted", jobs[1].attempt_id: "accepted",
                        jobs[2].attempt_id: "provider_error", jobs[3].attempt_id: "accepted"}
    info = await js.consumer_info(STREAM, DURABLE)
    assert info.num_pending == 0 and info.num_ack_pending == 0  # every job acked
    with contextlib.suppress(Exception):
        await js.delete_consumer(STREAM, DURABLE)


async def test_an_undecodable_job_is_dropped_and_the_loop_goes_on(world: World) -> None:
    await _clear_consumers(world)
    js = world.container.nats.jetstream()
    await js.publish(deliver_subject("sms"), b"not a job")
    job = await world.job("sms", "+447400000001", TWILIO)
    await js.publish(deliver_subject("sms"), ENCODER.encode(job),
                     headers={"Nats-Msg-Id": str(job.attempt_id)})
    await _run_until_results(world, 1)
    assert world.events.results()[0].outcome == "accepted"
    info = await js.consumer_info(STREAM, DURABLE)
    assert info.num_pending == 0 and info.num_ack_pending == 0
    with contextlib.suppress(Exception):
        await js.delete_consumer(STREAM, DURABLE)


async def test_a_slow_provider_call_is_kept_in_progress_not_redelivered(world: World) -> None:
    await _clear_consumers(world)
    world.worker.ack_wait, world.worker.keepalive = 1.0, 0.3
    js = world.container.nats.jetstream()
    job = await world.job("sms", "+447400000006", TWILIO)  # held 2 s, then dropped
    await js.publish(deliver_subject("sms"), ENCODER.encode(job),
                     headers={"Nats-Msg-Id": str(job.attempt_id)})
    stop = asyncio.Event()
    running = asyncio.create_task(world.worker.run(stop))
    try:
        await world.events.wait_for(1, within=10)
        await asyncio.sleep(1.5)  # time for a redelivery, had the ack deadline passed
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    assert [r.outcome for r in world.events.results()] == ["provider_error"]
    assert world.metrics.duplicate_window_hits == 0  # never seen again mid-send
    assert len(world.sandbox_requests("twilio")) == 1
    with contextlib.suppress(Exception):
        await js.delete_consumer(STREAM, DURABLE)


async def test_the_worker_notes_how_long_jobs_waited_but_not_redeliveries(world: World) -> None:
    # Load shedding reads this wait. A job published 1.2 s before the worker runs waited
    # that long; a job put back on purpose (here: delivered once, then nak'd) is not news.
    await _clear_consumers(world)
    js = world.container.nats.jetstream()
    meter = QueueDelayMeter()
    world.worker.queue_meter = meter
    job = await world.job("sms", "+447400000001", TWILIO)
    await js.publish(deliver_subject(job.channel), ENCODER.encode(job),
                     headers={"Nats-Msg-Id": str(job.attempt_id)})
    await asyncio.sleep(1.2)
    await _run_until_results(world, 1)
    report = meter.take()
    assert 1.2 <= report.wait < 10, report
    assert report.backlog[DURABLE][0] == 0 and report.backlog[DURABLE][1] > 0  # taken, none left

    again = await world.job("sms", "+447400000001", TWILIO)
    await js.publish(deliver_subject(again.channel), ENCODER.encode(again),
                     headers={"Nats-Msg-Id": str(again.attempt_id)})
    sub = await js.pull_subscribe_bind(durable=DURABLE, stream=STREAM)
    first = await sub.fetch(1, timeout=5)
    meter.observe(first)  # a first delivery, fresh: counts, but is short
    assert meter.take().wait < 1.0
    await first[0].nak()
    await asyncio.sleep(1.2)
    redelivered = await sub.fetch(1, timeout=5)
    assert redelivered[0].metadata.num_delivered == 2
    meter.observe(redelivered)
    assert meter.take().wait == 0.0
    await redelivered[0].ack()
    await sub.unsubscribe()
    with contextlib.suppress(Exception):
        await js.delete_consumer(STREAM, DURABLE)
