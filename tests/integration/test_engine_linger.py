"""The engine's turn waits `linger_s` for more work while little is queued.

Between idle and busy, events arrive a few milliseconds apart; without the linger every
one of them is a turn and a transaction of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hermes.bootstrap import Container
from hermes.cascade.runner import LINGER_BELOW, CascadeRunner
from hermes.cascade.store import PostgresCascadeStore
from hermes.domain.jobs import events_subject
from tests.integration.test_cascade_same_turn import FakeMsg


def _runner(container: Container, linger_s: float) -> CascadeRunner:
    return CascadeRunner(container.nats, PostgresCascadeStore(container.pool),
                         accounts=None,  # type: ignore[arg-type]  # no turn runs here
                         linger_s=linger_s)


async def _staggered_take(runner: CascadeRunner, count: int) -> list[Any]:
    async def arrive(i: int) -> None:
        await asyncio.sleep(0.005 * i)  # one event every 5 ms
        runner.inbox.put_nowait(FakeMsg(events_subject(0), {"n": i}))  # type: ignore[arg-type]

    arrivals = [asyncio.create_task(arrive(i)) for i in range(count)]
    try:
        return await runner._take()
    finally:
        await asyncio.gather(*arrivals)


async def test_a_turn_takes_what_arrives_within_the_linger(container: Container) -> None:
    assert len(await _staggered_take(_runner(container, 0.0), 4)) == 1
    assert len(await _staggered_take(_runner(container, 0.1), 4)) == 4


async def test_a_turn_with_enough_queued_does_not_wait(container: Container) -> None:
    runner = _runner(container, 10.0)
    for i in range(LINGER_BELOW + 1):
        runner.inbox.put_nowait(FakeMsg(events_subject(0), {"n": i}))  # type: ignore[arg-type]
    async with asyncio.timeout(2):
        assert len(await runner._take()) == LINGER_BELOW + 1
