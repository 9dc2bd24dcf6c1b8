"""Stopping background tasks for certain.

On Python 3.11, `asyncio.wait_for` returns its inner result when a cancellation
arrives in the same loop iteration as that result (fixed in 3.12). A task that
loops over such waits (nats-py's `fetch` and `next_msg` are built on `wait_for`)
then carries on as if it had never been cancelled, and `task.cancel(); await task`
waits for ever. `cancel_and_wait` cancels again until the task has ended.
"""

from __future__ import annotations

import asyncio
from typing import Any

# How long a cancelled task gets to end before it is cancelled again. A task that
# cleans up on cancellation should not need longer than this for it.
RECANCEL_S = 0.5


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None, every_s: float = RECANCEL_S) -> None:
    """Cancel `tasks` (None is skipped) and return once every one has ended, cancelling
    again every `every_s` any that are still running. An exception a task ended with
    (other than its cancellation) is raised, as awaiting it would; the first one if
    several did."""
    pending: set[asyncio.Future[Any]] = {t for t in tasks if t is not None and not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=every_s)
    failure: BaseException | None = None
    for ended in tasks:
        if ended is None or ended.cancelled():
            continue
        exc = ended.exception()  # retrieved, so none is reported as never retrieved
        if exc is not None and failure is None:
            failure = exc
    if failure is not None:
        raise failure
