"""Many concurrent callers, one database round trip: a small group-commit helper.

Callers `submit` an item and await its result; a task flushes everything queued
so far in one call. While a flush runs the next batch fills up by itself, so a
busy worker writes hundreds of rows per statement.

With `linger_s`, a flush that would carry few items (under an eighth of
`max_batch`) first waits that long for more. Between idle and busy, without it,
every item pays a round trip and a transaction of its own: the database's and the
caller's CPU per item is then several times what it is under load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from hermes.infra.tasks import cancel_and_wait

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(self, flush: Callable[[list[T]], Awaitable[list[R]]], *,
                 max_batch: int = 500, name: str = "batcher", linger_s: float = 0.0) -> None:
        self.flush = flush
        self.max_batch = max_batch
        self.linger_s = linger_s
        self.name = name
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=self.name)
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self.linger_s > 0 and self._queue.qsize() < self.max_batch // 8:
                # Little is queued: let more callers join this round trip.
                await asyncio.sleep(self.linger_s)
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            live = [(item, fut) for item, fut in batch if not fut.done()]
            if not live:
                continue
            try:
                results = await self.flush([item for item, _ in live])
            except Exception as exc:
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                for (_, fut), result in zip(live, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
