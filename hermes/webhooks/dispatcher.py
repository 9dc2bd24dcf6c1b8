"""WebhookDispatcher: claim due deliveries, sign them, POST them, record the outcome.

A claim moves the delivery's `next_attempt_at` forward by a lease and counts the
attempt, then commits; the HTTP calls happen outside any transaction. A
dispatcher that dies mid-flight leaves its deliveries pending, so they go out
again when the lease runs out (at least once: the receiver deduplicates by
`webhook-id`, which is the delivery id and the same on every attempt).

`run` keeps up to `max_in_flight` requests going at once and claims more as
they finish, so one slow endpoint holds a slot, never a batch; outcomes are
recorded in batches by a single task.

Handed-over claims: the engine in the same process inserts the deliveries it is about
to report already claimed (`enqueue_claimed`, with `lease_until` from here) and, once
its transaction has committed, `offer`s them; `run` sends them before it claims from
the database. While the dispatcher is busy (`max_in_flight` sending and waiting) or
not running, `lease_until` is None and the engine queues deliveries the ordinary way.
A handed claim that could not start within its lease's margin, or that is still
waiting when `run` stops, is released (its lease ended, its attempt uncounted) for any
dispatcher to claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

import hermes
from hermes.infra.http.ssrf import TargetPolicy, guarded_resolve, literal_refusal
from hermes.infra.http.wire import WireClient, WireError
from hermes.infra.postgres.arrays import literal as array
from hermes.infra.tasks import cancel_and_wait
from hermes.observability.hooks import webhook_attempt
from hermes.webhooks.delivery import GONE_REASON, Claimed, Outcome, classify
from hermes.webhooks.enqueue import NOTIFY_CHANNEL
from hermes.webhooks.signing import secret_key, signature

log = logging.getLogger("hermes.webhooks")

USER_AGENT = f"Hermes-Webhooks/{hermes.__version__}"
# Enough of an answer to keep the connection for the next request; the rest is ignored.
MAX_ANSWER_BYTES = 64 * 1024
RECORD_BATCH = 500

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

# Handed-over claims that will not be sent by this dispatcher: free for any to claim now.
_RELEASE = """
UPDATE webhook_deliveries SET attempts = attempts - 1, next_attempt_at = now()
WHERE id = ANY(%s::uuid[]) AND status = 'pending'
"""

_DISABLE = """
UPDATE webhook_endpoints SET enabled = false, disabled_reason = %s
WHERE id = ANY(%s::uuid[]) AND enabled
"""

_ABANDON_PENDING = """
UPDATE webhook_deliveries SET status = 'abandoned', last_error = 'endpoint disabled'
WHERE endpoint_id = ANY(%s::uuid[]) AND status = 'pending'
"""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class WebhookDispatcher:
    """Sends due webhook deliveries until `run`'s stop event is set.

    `now` and `rng` are injectable so the retry schedule can be tested in
    virtual time; `client` so a caller can bring its own HTTP client.

    `targets` applies the SSRF rules at every attempt (an IP-literal URL is checked
    before the request, a name as it is resolved), so an endpoint whose name now points
    at a private address is refused even though it passed at registration. None sends
    anywhere (the worker always passes the deployment's rules).
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        client: WireClient | None = None,
        now: Callable[[], datetime] = _utcnow,
        rng: random.Random | None = None,
        batch_size: int = 100,
        max_in_flight: int = 256,
        per_host: int = 64,
        timeout_s: float = 10.0,
        poll_interval_s: float = 0.5,
        listen: bool = True,
        targets: TargetPolicy | None = None,
    ) -> None:
        assert batch_size > 0 and max_in_flight > 0 and per_host > 0 and timeout_s > 0
        self.pool = pool
        self.now = now
        self.rng = rng or random.Random()
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.per_host = per_host
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self.listen = listen
        self.targets = targets
        # Longer than any attempt can take, so a live dispatcher never loses its claim.
        self.lease = timedelta(seconds=timeout_s + 60)
        self._client = client
        self._own_client = client is None
        self._wake = asyncio.Event()
        # Claims handed over by `offer`, each with the time by which it must start.
        self._handed: deque[tuple[Claimed, datetime]] = deque()
        self._running = False
        self._sending: set[asyncio.Task[None]] = set()  # run's requests in flight
        self.handed_sent = 0
        self.handed_released = 0
        # When run last claimed from the database, and whether something asked it to look
        # (a notification, `wake`): offers alone do not, so a steady stream of handed
        # claims costs no claim query per offer, while a poll still comes every interval.
        self._claimed_at = float("-inf")
        self._look = True
        self.db_claims = 0

    def lease_until(self) -> datetime | None:
        """The lease for deliveries the caller claims for this dispatcher, or None when it
        would not send them soon (not running, or `max_in_flight` already sending and
        waiting): then queue them unclaimed."""
        if not self._running or len(self._sending) + len(self._handed) >= self.max_in_flight:
            return None
        return self.now() + self.lease

    def offer(self, claims: Sequence[Claimed]) -> None:
        """Send these committed claims (from `enqueue_claimed`) soon.

        Claims offered once `run` has stopped (a batch that committed during shutdown)
        are not kept: they go out from the database when their lease runs out."""
        if not claims or not self._running:
            return
        # A claim must start early enough to end inside its lease.
        start_by = self.now() + self.lease - timedelta(seconds=self.timeout_s)
        self._handed.extend((c, start_by) for c in claims)
        self._wake.set()

    def _take_handed(self, n: int) -> tuple[list[Claimed], list[Claimed]]:
        """Up to `n` handed claims to send now, and those too late to."""
        now = self.now()
        ready: list[Claimed] = []
        late: list[Claimed] = []
        while self._handed and len(ready) < n:
            c, start_by = self._handed.popleft()
            (ready if now <= start_by else late).append(c)
        return ready, late

    async def _release(self, claims: list[Claimed]) -> None:
        if not claims:
            return
        self.handed_released += len(claims)
        try:
            async with self.pool.connection() as conn:
                await conn.execute(_RELEASE, (array(c.id for c in claims),))
        except Exception as exc:
            # They stay claimed and go out when the lease runs out.
            log.warning("releasing %d webhook deliveries failed: %s", len(claims), exc)

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll."""
        self._look = True
        self._wake.set()

    def _claim_due(self) -> bool:
        return self._look or time.monotonic() - self._claimed_at >= self.poll_interval_s

    def client(self) -> WireClient:
        if self._client is None:
            self._client = WireClient(
                total_timeout=self.timeout_s, max_per_origin=self.per_host,
                user_agent=USER_AGENT,
                resolve=None if self.targets is None else guarded_resolve(self.targets))
        return self._client

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- the long-running loop -------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until `stop` is set; then finish what is in flight, record it, return."""
        results: asyncio.Queue[tuple[Claimed, Outcome] | None] = asyncio.Queue()
        recorder = asyncio.create_task(self._record_loop(results))
        listener = asyncio.create_task(self._listen(stop)) if self.listen else None
        in_flight = self._sending = set()

        async def send(c: Claimed) -> None:
            results.put_nowait((c, await self._attempt(c)))

        def start(batch: list[Claimed]) -> None:
            for c in batch:
                task = asyncio.create_task(send(c))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)

        self._running = True
        try:
            while not stop.is_set():
                free = self.max_in_flight - len(in_flight)
                if free <= 0:
                    await _first_of(stop, *in_flight)
                    continue
                handed, late = self._take_handed(free)
                if late:
                    await self._release(late)
                    self._look = True  # due now, for this dispatcher too
                self.handed_sent += len(handed)
                start(handed)
                free -= len(handed)
                if free <= 0:
                    continue
                if not self._claim_due():
                    await self._idle(stop)
                    continue
                self._look, self._claimed_at = False, time.monotonic()
                try:
                    batch = await self._claim_batch(min(self.batch_size, free))
                    self.db_claims += 1
                except Exception as exc:
                    # PostgreSQL away: what is in flight finishes; claiming resumes when it is back.
                    log.warning("claiming webhook deliveries failed (%s); retrying", exc)
                    self._look = True
                    await _first_of(stop, timeout=1.0)
                    continue
                start(batch)
                if len(batch) == min(self.batch_size, free):
                    self._look = True  # a full batch: more may be due
                elif not self._handed:
                    await self._idle(stop)
        finally:
            self._running = False
            await cancel_and_wait(listener)
            # What was handed over and not started goes back to the database for any
            # dispatcher; what is in flight finishes and is recorded.
            waiting = [c for c, _ in self._handed]
            self._handed.clear()
            await self._release(waiting)
            if in_flight:
                await asyncio.wait(in_flight)
            results.put_nowait(None)
            await recorder
            await self.aclose()

    async def _idle(self, stop: asyncio.Event) -> None:
        self._wake.clear()
        if self._handed or self._look:
            return  # offered or asked since the loop last looked
        # Until the next poll is due (the poll interval after the last claim).
        timeout = max(0.0, self._claimed_at + self.poll_interval_s - time.monotonic())
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await _first_of(stop, woken, timeout=timeout)
        finally:
            woken.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await woken

    async def _listen(self, stop: asyncio.Event) -> None:
        """Wake on `enqueue`'s notifications, so new deliveries go out without waiting for a poll.

        Polling stays the fallback (and finds retries as they fall due); a lost
        listening connection is reopened.
        """
        conninfo = self.pool.conninfo
        if not isinstance(conninfo, str):
            return  # a pool with computed credentials: polling only
        while not stop.is_set():
            try:
                async with await AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
                    self.wake()  # whatever was queued before we listened
                    while not stop.is_set():
                        async for _ in conn.notifies(timeout=1.0):
                            self.wake()
            except Exception as exc:
                log.warning("webhook notifications unavailable (%s); polling", exc)
                await _first_of(stop, timeout=5.0)

    async def _record_loop(self, results: asyncio.Queue[tuple[Claimed, Outcome] | None]) -> None:
        done = False
        while not done:
            items = [await results.get()]
            while not results.empty() and len(items) < RECORD_BATCH:
                items.append(results.get_nowait())
            if items[-1] is None:
                done = True
            pairs = [i for i in items if i is not None]
            if not pairs:
                continue
            try:
                async with self.pool.connection() as conn:
                    await self._record(conn, [c for c, _ in pairs], [o for _, o in pairs])
            except Exception:
                # The deliveries stay pending under their lease and go out again after it.
                log.exception("recording %d webhook outcomes failed", len(pairs))

    # -- one step at a time (the loop above, and tests in virtual time) ---------

    async def dispatch_once(self) -> int:
        """Claim one batch of due deliveries, send them, record the outcomes; the batch size."""
        batch = await self._claim_batch(self.batch_size)
        if not batch:
            return 0
        outcomes = list(await asyncio.gather(*(self._attempt(c) for c in batch)))
        async with self.pool.connection() as conn:
            await self._record(conn, batch, outcomes)
        return len(batch)

    async def _claim_batch(self, n: int) -> list[Claimed]:
        now = self.now()
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_CLAIM, {"now": now, "n": n, "lease": now + self.lease})
            rows = await cur.fetchall()
        return [Claimed.from_row(r) for r in rows]

    @webhook_attempt
    async def _attempt(self, c: Claimed) -> Outcome:
        if not c.enabled:
            return Outcome("abandoned", error="endpoint disabled")
        timestamp = int(self.now().timestamp())
        msg_id = str(c.id)
        http_status: int | None = None
        error: str | None = None
        refused = None if self.targets is None else literal_refusal(c.url, self.targets)
        if refused is not None:
            return classify(c.attempt, None, f"target not allowed: {refused}", self.now(),
                            self.rng)
        try:
            headers = {
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature(secret_key(c.secret), msg_id, timestamp, c.body),
            }
            answer = await self.client().request("POST", c.url, headers.items(), c.body,
                                                 max_body=MAX_ANSWER_BYTES)
            http_status = answer.status
            error = f"HTTP {answer.status} {answer.reason}".strip()
        except TimeoutError:
            error = f"no answer within {self.timeout_s:g} s"
        except WireError as exc:
            error = str(exc)
        except Exception as exc:  # a URL the client refuses, a broken secret: keep going
            log.warning("webhook %s to %s failed: %r", c.id, c.url, exc)
            error = f"{type(exc).__name__}: {exc}".strip()
        return classify(c.attempt, http_status, error, self.now(), self.rng)

    async def _record(
        self, conn: AsyncConnection[Any], batch: list[Claimed], outcomes: list[Outcome]
    ) -> None:
        gone = sorted({c.endpoint_id for c, o in zip(batch, outcomes, strict=True)
                       if o.disable_endpoint})
        async with conn.transaction():
            await conn.execute(_RECORD, (
                array(c.id for c in batch), array(o.status for o in outcomes),
                array(o.next_at for o in outcomes), array(o.http_status for o in outcomes),
                array(o.error for o in outcomes), array(o.delivered_at for o in outcomes)))
            if gone:
                await conn.execute(_DISABLE, (GONE_REASON, gone))
                await conn.execute(_ABANDON_PENDING, (gone,))
        for endpoint_id in gone:
            log.info("webhook endpoint %s answered 410 Gone; disabled", endpoint_id)


async def _first_of(
    stop: asyncio.Event, *others: asyncio.Future[Any], timeout: float | None = None
) -> None:
    """Wait until `stop` is set, any of `others` is done, or `timeout` passes."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({stopping, *others}, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
