"""Several events for one cascade in one engine turn, the first of which ends it.

Under load the engine takes events in batches, so a late SMS receipt and the
email's answer can arrive in the same turn. The receipt ends the cascade;
the answer after it finds no cascade in the engine. The message must still
finish exactly once, with one `late_receipt` and one final webhook event.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hermes.bootstrap import Container
from hermes.cascade.runner import CascadeRunner
from hermes.cascade.store import PostgresCascadeStore
from hermes.domain.jobs import ENCODER, StartCommand, cascade_subject, events_subject
from tests.integration.test_cascade_engine import (
    SEED_STEPS,
    Clock,
    _next_job,
    _now,
    _receipt,
    _result,
    _row,
    _submit,
    env,
)

__all__ = ["env"]


class FakeMsg:
    """What the runner uses of a JetStream message."""

    def __init__(self, subject: str, payload: Any) -> None:
        self.subject = subject
        self.data = ENCODER.encode(payload)
        self.acked = False

    async def ack(self) -> None:
        self.acked = True

    async def nak(self, delay: Any = None) -> None:
        raise AssertionError("the turn failed")


async def test_a_late_receipt_and_the_next_steps_answer_in_one_turn_finish_once(
    container: Container, env: dict[str, Any],
) -> None:
    clock = Clock(_now())
    mid = await _submit(container, env["tenant"].id, SEED_STEPS, clock, publish=False)
    async with container.pool.connection() as conn:
        cur = await conn.execute("SELECT spec::text FROM messages WHERE id = %s", (mid,))
        (spec,) = await cur.fetchone()  # type: ignore[misc]
    runner = CascadeRunner(container.nats, PostgresCascadeStore(container.pool),
                           env["chooser"], clock=clock)
    await runner.rebuild()
    start = StartCommand(id=mid, tenant_id=env["tenant"].id, mode="test", shard=3,
                         spec=msgspec.Raw(spec.encode()))
    await runner.turn([FakeMsg(cascade_subject(3), start)])  # type: ignore[list-item]
    sms = await _next_job(env, mid)
    await runner.turn([FakeMsg(events_subject(3), _result(sms))])  # type: ignore[list-item]
    clock.ms += 30_001  # the SMS step times out: on to email
    await runner.turn([])
    email = await _next_job(env, mid)

    same_turn: list[Any] = [FakeMsg(events_subject(3), _receipt(sms, "delivered")),
                            FakeMsg(events_subject(3), _result(email))]
    await runner.turn(same_turn)

    row = await _row(container, mid)
    kinds = [k for k, _ in row["timeline"]]
    assert row["outcome"] == row["status"] == "delivered"
    assert kinds.count("finished") == 1, kinds
    assert kinds.count("late_receipt") == 1, kinds
