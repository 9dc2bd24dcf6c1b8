"""WebhookDispatcher: claim due deliveries, sign them, POST them, record the outcome.

A claim moves the delivery's `next_attempt_at` forward by a lease and counts the
attempt, then commits; the HTTP calls happen outside any transaction. A
dispatcher that dies mid-batch leaves its deliveries pending, so they go out
again when the lease runs out (at least once: the receiver deduplicates by
`webhook-id`, which is the delivery id and the same on every attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

import hermes
from hermes.webhooks.schedule import retry_delay
from hermes.webhooks.signing import secret_key, signature

log = logging.getLogger("hermes.webhooks")

USER_AGENT = f"Hermes-Webhooks/{hermes.__version__}"
MAX_ERROR_CHARS = 500

_CLAIM = """
WITH due AS (
    SELECT id FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= %(now)s
    ORDER BY next_attempt_at
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d
SET attempts = d.attempts + 1, next_attempt_at = %(lease)s
FROM due, webhook_endpoints e
WHERE d.id = due.id AND e.id = d.endpoint_id
RETURNING d.id, d.attempts, d.payload::text, e.id, e.url, e.secret, e.enabled
"""

_RECORD = """
UPDATE webhook_deliveries d
SET status = r.status, next_attempt_at = coalesce(r.next_at, d.next_attempt_at),
    last_status = r.http_status, last_error = r.error, delivered_at = r.delivered_at
FROM unnest(%s::uuid[], %s::text[], %s::timestamptz[], %s::int[], %s::text[],
            %s::timestamptz[]) AS r(id, status, next_at, http_status, error, delivered_at)
WHERE d.id = r.id AND d.status = 'pending'
"""

_DISABLE = """
UPDATE webhook_endpoints SET enabled = false, disabled_reason = %s
WHERE id = ANY(%s::uuid[]) AND enabled
"""

_ABANDON_PENDING = """
UPDATE webhook_deliveries SET status = 'abandoned', last_error = 'endpoint disabled'
WHERE endpoint_id = ANY(%s::uuid[]) AND status = 'pending'
"""

GONE_REASON = "the endpoint answered 410 Gone"


@dataclass(frozen=True)
class Claimed:
    id: UUID
    attempt: int
    body: bytes
    endpoint_id: UUID
    url: str
    secret: str
    enabled: bool


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to, as it is recorded."""

    status: str  # pending (retry later) | delivered | failed | abandoned
    next_at: datetime | None = None
    http_status: int | None = None
    error: str | None = None
    delivered_at: datetime | None = None
    disable_endpoint: bool = False


def _utcnow() -> datetime:
    return datetime.now(UTC)


class WebhookDispatcher:
    """Sends due webhook deliveries until `run`'s stop event is set.

    `now` and `rng` are injectable so the retry schedule can be tested in
    virtual time; `client` so tests (or a deployment) can bring their own pool.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        client: httpx.AsyncClient | None = None,
        now: Callable[[], datetime] = _utcnow,
        rng: random.Random | None = None,
        batch_size: int = 100,
        lanes: int = 4,
        timeout_s: float = 10.0,
        poll_interval_s: float = 0.2,
    ) -> None:
        assert batch_size > 0 and lanes > 0 and timeout_s > 0
        self.pool = pool
        self.now = now
        self.rng = rng or random.Random()
        self.batch_size = batch_size
        self.lanes = lanes
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        # Longer than any attempt can take, so a live dispatcher never loses its claim.
        self.lease = timedelta(seconds=timeout_s + 60)
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=batch_size * lanes,
                                max_keepalive_connections=batch_size),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await asyncio.gather(*(self._lane(stop) for _ in range(self.lanes)))
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    async def _lane(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                sent = await self.dispatch_once()
            except Exception:
                log.exception("webhook dispatch failed; retrying")
                sent = 0
            if sent < self.batch_size and not stop.is_set():
                await self._idle(stop)

    async def _idle(self, stop: asyncio.Event) -> None:
        self._wake.clear()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=self.poll_interval_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            for w in waiters:
                with contextlib.suppress(asyncio.CancelledError):
                    await w

    async def dispatch_once(self) -> int:
        """Claim one batch of due deliveries, send them, record the outcomes; the batch size."""
        now = self.now()
        async with self.pool.connection() as conn:
            batch = await self._claim(conn, now)
        if not batch:
            return 0
        outcomes = await asyncio.gather(*(self._attempt(c) for c in batch))
        async with self.pool.connection() as conn:
            await self._record(conn, batch, outcomes)
        return len(batch)

    async def _claim(self, conn: AsyncConnection[Any], now: datetime) -> list[Claimed]:
        async with conn.transaction():
            cur = await conn.execute(_CLAIM, {"now": now, "n": self.batch_size,
                                              "lease": now + self.lease})
            rows = await cur.fetchall()
        return [Claimed(id=r[0], attempt=r[1], body=r[2].encode(), endpoint_id=r[3], url=r[4],
                        secret=r[5], enabled=r[6]) for r in rows]

    async def _attempt(self, c: Claimed) -> Outcome:
        if not c.enabled:
            return Outcome("abandoned", error="endpoint disabled")
        sent_at = self.now()
        timestamp = int(sent_at.timestamp())
        msg_id = str(c.id)
        try:
            headers = {
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature(secret_key(c.secret), msg_id, timestamp, c.body),
            }
            response = await self.client.post(c.url, content=c.body, headers=headers)
        except httpx.TimeoutException:
            return self._failed(c, None, f"no answer within {self.timeout_s:g} s")
        except httpx.HTTPError as exc:
            return self._failed(c, None, f"{type(exc).__name__}: {exc}".strip())
        except Exception as exc:  # a URL httpx refuses, a broken secret: keep the batch going
            log.warning("webhook %s to %s failed: %r", c.id, c.url, exc)
            return self._failed(c, None, f"{type(exc).__name__}: {exc}".strip())
        code = response.status_code
        if 200 <= code < 300:
            return Outcome("delivered", http_status=code, delivered_at=self.now())
        if code == 410:
            return Outcome("abandoned", http_status=code, error=GONE_REASON,
                           disable_endpoint=True)
        return self._failed(c, code, f"HTTP {code} {response.reason_phrase}".strip())

    def _failed(self, c: Claimed, http_status: int | None, error: str) -> Outcome:
        error = error[:MAX_ERROR_CHARS]
        delay = retry_delay(c.attempt, self.rng)
        if delay is None:
            return Outcome("failed", http_status=http_status, error=error)
        return Outcome("pending", next_at=self.now() + timedelta(seconds=delay),
                       http_status=http_status, error=error)

    async def _record(
        self, conn: AsyncConnection[Any], batch: list[Claimed], outcomes: list[Outcome]
    ) -> None:
        gone = sorted({c.endpoint_id for c, o in zip(batch, outcomes, strict=True)
                       if o.disable_endpoint})
        async with conn.transaction():
            await conn.execute(_RECORD, (
                [c.id for c in batch], [o.status for o in outcomes],
                [o.next_at for o in outcomes], [o.http_status for o in outcomes],
                [o.error for o in outcomes], [o.delivered_at for o in outcomes]))
            if gone:
                await conn.execute(_DISABLE, (GONE_REASON, gone))
                await conn.execute(_ABANDON_PENDING, (gone,))
        for endpoint_id in gone:
            log.info("webhook endpoint %s answered 410 Gone; disabled", endpoint_id)
