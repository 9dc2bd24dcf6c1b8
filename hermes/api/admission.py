"""Load shedding: refuse new messages while the workers are too far behind.

Under sustained overload the API can accept far faster than the workers finish (it only
commits and publishes), so the queues grow without bound: a message accepted into them
starts ever later, and its receipts wait behind everyone else's. When the workers report
that work waits (or would wait) in JetStream longer than `max_queue_delay_s`
(`hermes.infra.redis.queue_delay`), the send endpoints answer 503 `service.overloaded`
with `Retry-After` instead, and store nothing.

The check runs where layer 8 does, after validation (a bad request still learns what is
wrong with it) and before the commit; like layer 8, a refused request whose
Idempotency-Key was already committed gets its replay, and a batch is refused whole.
Reads, cancels and provider callbacks are never refused: they are how the backlog drains.
"""

from __future__ import annotations

import math

from hermes.bootstrap import Container
from hermes.domain.errors import Code, HermesError
from hermes.observability import metrics

# Retry-After bounds, in seconds.
MIN_RETRY_S = 1
MAX_RETRY_S = 30


class Overloaded(HermesError):
    def __init__(self, delay_s: float, limit_s: float, count: int) -> None:
        retry = min(MAX_RETRY_S, max(MIN_RETRY_S, math.ceil(delay_s - limit_s)))
        super().__init__(
            Code.SERVICE_OVERLOADED,
            f"work accepted earlier is waiting {delay_s:.1f} s for a worker (the limit is "
            f"{limit_s:g} s); nothing was stored, send again after {retry} s",
            headers={"Retry-After": str(retry)},
            extra={"retry_after": retry, "queue_delay_s": round(delay_s, 3)})
        metrics.MESSAGES_REFUSED_OVERLOADED.inc(count)


async def check(container: Container, count: int = 1) -> None:
    """Raise `Overloaded` (503) if the workers report a queue delay above the limit."""
    over = await excess(container)
    if over is not None:
        raise Overloaded(*over, count)


async def excess(container: Container) -> tuple[float, float] | None:
    """The queue delay and the limit, if the delay is above it; else None."""
    limit = container.settings.max_queue_delay_s
    view = container.queue_view
    if limit <= 0 or view is None:
        return None
    delay = await view.current()
    return (delay, limit) if delay > limit else None
