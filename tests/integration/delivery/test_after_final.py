"""Once a cascade has ended, a delivery job still on its way is never sent.

A job can reach the delivery worker late: a backlog, or a crashed worker's jobs
redelivered when their ack wait runs out. By then the step may have timed out
and the message finished (delivered another way, expired, cancelled); the
provider must not get it, and an expired OTP must not arrive after all.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from hermes.cascade.store import Batch, PostgresCascadeStore
from hermes.domain.jobs import ENCODER
from tests.integration.delivery.support import TWILIO, World


class FakeMsg:
    """The parts of a JetStream message the worker uses."""

    class Metadata:
        num_delivered = 1

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.metadata = self.Metadata()
        self.calls: list[str] = []

    async def ack(self) -> None:
        self.calls.append("ack")

    async def nak(self, delay: Any = None) -> None:
        self.calls.append("nak")

    async def term(self) -> None:
        self.calls.append("term")


async def _reopen(world: World, message_id: UUID) -> None:
    """The support's messages are final from the start; this one runs until the store ends it.
    With `engine_state` NULL and `started_at` set, no engine or sweep picks it up meanwhile."""
    async with world.container.pool.connection() as conn:
        await conn.execute("UPDATE messages SET finished_at = NULL, outcome = NULL,"
                           " status = 'sending' WHERE id = %s", (message_id,))


async def test_a_job_whose_cascade_ended_before_it_was_sent_is_never_sent(world: World) -> None:
    job = await world.job("sms", "+447400000001", TWILIO)
    await _reopen(world, job.message_id)
    # The engine ends the cascade (the OTP expired) before delivery takes the job.
    batch = Batch()
    end = batch.update(job.message_id)
    end.outcome = end.status = "expired"
    end.clear_deadline = True
    await PostgresCascadeStore(world.container.pool).persist(batch)

    msg = FakeMsg(ENCODER.encode(job))
    await world.worker.handle(msg)  # type: ignore[arg-type]

    assert msg.calls == ["ack"]  # done with, not retried
    assert world.sandbox_requests("twilio") == []
    row = await world.attempt(job.attempt_id)
    assert (row["status"], row["error_code"], row["sent"]) == (
        "failed", "message.already_final", False)
    assert world.metrics.closed_unsent == 1 and world.metrics.sent == 0
    await asyncio.sleep(0.2)
    assert world.events.results() == []  # nothing for the engine: its cascade is over


async def test_a_job_in_flight_when_the_cascade_ends_keeps_its_answer(world: World) -> None:
    job = await world.job("sms", "+447400000001", TWILIO)
    await _reopen(world, job.message_id)
    result = await world.deliver(job)  # sent before the end
    batch = Batch()
    end = batch.update(job.message_id)
    end.outcome = end.status = "delivered"
    await PostgresCascadeStore(world.container.pool).persist(batch)

    assert result.outcome == "accepted"
    row = await world.attempt(job.attempt_id)
    assert row["status"] in ("accepted", "sent", "delivered") and row["error_code"] is None
    assert len(world.sandbox_requests("twilio")) == 1
