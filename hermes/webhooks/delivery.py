"""One delivery attempt: what was claimed, and what its answer comes to."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from hermes.webhooks.schedule import retry_delay

GONE_REASON = "the endpoint answered 410 Gone"
MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class Claimed:
    id: UUID
    attempt: int  # 1 for the first attempt
    body: bytes
    endpoint_id: UUID
    url: str
    secret: str
    enabled: bool

    @classmethod
    def from_row(cls, r: tuple[Any, ...]) -> Claimed:
        """From a claim's row: id, attempts, payload text, endpoint id, url, secret, enabled."""
        return cls(id=r[0], attempt=r[1], body=r[2].encode(), endpoint_id=r[3], url=r[4],
                   secret=r[5], enabled=r[6])


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to, as it is recorded."""

    status: str  # pending (retry at next_at) | delivered | failed | abandoned
    next_at: datetime | None = None
    http_status: int | None = None
    error: str | None = None
    delivered_at: datetime | None = None
    disable_endpoint: bool = False


def classify(
    attempt: int, http_status: int | None, error: str | None, now: datetime, rng: random.Random
) -> Outcome:
    """2xx delivers; 410 abandons and disables the endpoint; anything else retries or fails.

    `http_status` is None when no answer came (timeout, refused connection); `error` then says why.
    """
    if http_status is not None and 200 <= http_status < 300:
        return Outcome("delivered", http_status=http_status, delivered_at=now)
    if http_status == 410:
        return Outcome("abandoned", http_status=http_status, error=GONE_REASON,
                       disable_endpoint=True)
    error = (error or f"HTTP {http_status}")[:MAX_ERROR_CHARS]
    delay = retry_delay(attempt, rng)
    if delay is None:
        return Outcome("failed", http_status=http_status, error=error)
    return Outcome("pending", next_at=now + timedelta(seconds=delay), http_status=http_status,
                   error=error)
