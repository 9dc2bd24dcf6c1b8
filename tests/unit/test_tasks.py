"""Stopping background tasks for certain (`hermes.infra.tasks.cancel_and_wait`), and the
engine's shard consumers, which stop their fetchers with it."""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace
from typing import Any, cast

import pytest

from hermes.cascade.runner import CascadeRunner, Inbox, _ShardConsumers
from hermes.infra.tasks import cancel_and_wait


async def _stubborn(ignore: int, rounds: list[int]) -> None:
    """A loop that carries on after its first `ignore` cancellations, as a loop over
    `wait_for` does on Python 3.11 when the cancellation meets a result."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if ignore <= 0:
                raise
            ignore -= 1
        rounds.append(1)


async def test_a_task_that_ignores_its_first_cancellations_is_cancelled_until_it_ends() -> None:
    rounds: list[int] = []
    task = asyncio.create_task(_stubborn(2, rounds))
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, every_s=0.01), 5)
    assert task.cancelled()
    assert len(rounds) == 2  # it did go on twice, and was cancelled again each time


async def _fetch_like(queue: asyncio.Queue[int], got: list[int]) -> None:
    # nats-py's next_msg: a task of its own around wait_for, awaited by the loop.
    while True:
        got.append(await asyncio.create_task(asyncio.wait_for(queue.get(), 30)))


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the wait_for race of Python 3.11")
async def test_a_cancellation_that_meets_a_result_is_lost_once_and_not_twice() -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    got: list[int] = []
    task = asyncio.create_task(_fetch_like(queue, got))
    for _ in range(3):
        await asyncio.sleep(0)
    queue.put_nowait(1)  # the result arrives in the same loop iteration as the cancel
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=0.2)
    assert not done and got == [1]  # one cancel() was lost: the loop went on
    await asyncio.wait_for(cancel_and_wait(task), 5)
    assert task.cancelled()


async def test_the_exception_a_task_ended_with_is_raised_and_none_are_skipped() -> None:
    async def fail() -> None:
        raise ValueError("broken")

    failed = asyncio.create_task(fail())
    sleeping = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="broken"):
        await cancel_and_wait(None, failed, sleeping)
    assert sleeping.cancelled()
    await cancel_and_wait()  # nothing to do


class _SwallowingSub:
    """A pull subscription whose fetch returns normally when it is first cancelled."""

    def __init__(self) -> None:
        self.fetches = 0
        self.swallowed = 0

    async def fetch(self, batch: int, timeout: float) -> list[Any]:
        self.fetches += 1
        try:
            await asyncio.sleep(timeout)
        except asyncio.CancelledError:
            if self.swallowed:
                raise
            self.swallowed += 1
            return []
        raise TimeoutError


async def test_shard_consumers_stop_even_when_a_fetch_swallows_the_cancellation() -> None:
    # Before, stopping awaited the fetchers after one cancel(): an engine whose fetcher
    # missed it waited for ever, holding every shard it had (a second worker got none).
    runner = SimpleNamespace(inbox=Inbox(), batch_size=10)
    stop = asyncio.Event()
    consumers = _ShardConsumers(cast(CascadeRunner, runner), "engine", stop)
    sub = _SwallowingSub()
    fetch = CascadeRunner._fetch  # the engine's own fetch loop, on the stand-in runner
    consumers.fetchers = [asyncio.create_task(fetch(cast(CascadeRunner, runner),
                                                    cast(Any, sub), stop))]
    await asyncio.sleep(0.05)
    await asyncio.wait_for(consumers.stop(drain=False), 5)
    assert sub.swallowed == 1 and sub.fetches >= 2  # it did fetch again after the lost cancel
    assert consumers.fetchers == []
