"""The recovery sweep: committed messages whose start never reached the engine are re-driven.

A crash between commit and publish, NATS being down, or NATS losing its data
all leave the same trace: a message with `started_at IS NULL` well after it
was created. The sweep publishes its start command again; `Nats-Msg-Id`
drops the repeat while JetStream still remembers the first, and the engine
ignores a start for a cascade that already started.

An engine that is behind leaves the same trace for messages whose start is only
waiting in the stream. Re-publishing those would be work for nothing exactly when
there is least room for it. A start is published within the grace of its commit,
and the stream keeps a shard's commands until the engine has taken them, in order:
so while the oldest command still in the message's shard was published no later
than the grace after the message was created, its start may be waiting there, and
it is passed over. Once the shard's backlog has moved past that, or the shard holds
nothing, it is re-published. (`created_at` is the API's clock and the publish time
NATS's: the grace also absorbs the two being a little apart.)

It also re-publishes cancels that were recorded but whose message is still open after
30 s (the API's publish after the record may have failed), and every minute or so it
forgets idempotency keys older than 24 hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from psycopg_pool import AsyncConnectionPool

from hermes.domain.jobs import ENCODER, CancelCommand, StartCommand, cancel_msg_id, cascade_subject
from hermes.infra.nats.publisher import start_msg_id
from hermes.infra.nats.streams import CASCADE_STREAM
from hermes.infra.postgres.messages import release_expired_keys

log = logging.getLogger("hermes.sweep")


class RecoverySweep:
    def __init__(self, pool: AsyncConnectionPool, js_factory: Callable[[], JetStreamContext], *,
                 grace_s: float = 5.0, interval_s: float = 2.0, limit: int = 1000,
                 cancel_grace_s: float = 30.0) -> None:
        self.pool = pool
        self.js_factory = js_factory
        self.grace_s = grace_s
        self.cancel_grace_s = cancel_grace_s
        self.interval_s = interval_s
        self.limit = limit
        self.republished = 0
        self.passed_over = 0  # unstarted messages whose start may still wait in the stream
        self.stuck = 0
        self.keys_released = 0
        self.cancels_redriven = 0

    async def run(self, stop: asyncio.Event) -> None:
        rounds = 0
        while not stop.is_set():
            try:
                await self.once()
                if rounds % 15 == 0:
                    await self.check_stuck()
                if rounds % 30 == 0:
                    self.keys_released += await release_expired_keys(self.pool)
                if rounds % 5 == 0:
                    await self.redrive_cancels()
            except Exception as exc:
                log.warning("recovery sweep failed (will retry): %s", exc)
            rounds += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    async def check_stuck(self, overdue_s: float = 60.0) -> list[UUID]:
        """Guarantee 4, checked: every started, unfinished message has a pending timer
        (`next_deadline`) that is not long overdue, or an attempt in flight. Any other
        is stuck; it is logged (and returned) so it cannot go unnoticed."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT m.id FROM messages m"
                " WHERE m.finished_at IS NULL AND m.started_at IS NOT NULL"
                " AND (m.next_deadline IS NULL"
                "      OR m.next_deadline < now() - make_interval(secs => %s))"
                " AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.message_id = m.id"
                "                 AND a.status IN ('pending', 'sending'))"
                " LIMIT 100", (overdue_s,))
            stuck = [r[0] for r in await cur.fetchall()]
        self.stuck = len(stuck)
        if stuck:
            log.error("%d stuck messages (no pending timer, no attempt in flight): %s",
                      len(stuck), ", ".join(str(s) for s in stuck[:10]))
        return stuck

    async def once(self) -> list[UUID]:
        """Re-publish the start of every unstarted message older than the grace whose start
        cannot be waiting in its shard's backlog; the ids re-published."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, tenant_id, mode, shard, spec::text, created_at FROM messages"
                " WHERE started_at IS NULL AND finished_at IS NULL"
                " AND created_at < now() - make_interval(secs => %s)"
                " ORDER BY created_at LIMIT %s",
                (self.grace_s, self.limit))
            rows = await cur.fetchall()
        if not rows:
            return []
        js = self.js_factory()
        oldest = await self._oldest_waiting(js, sorted({r[3] for r in rows}))
        grace = timedelta(seconds=self.grace_s)
        republished: list[UUID] = []
        for mid, tenant_id, mode, shard, spec, created_at in rows:
            waiting = oldest.get(shard)
            if waiting is not None and waiting <= created_at + grace:
                # A start is published within the grace of its commit: this one may be in
                # the backlog, and the engine will get to it.
                self.passed_over += 1
                continue
            cmd = StartCommand(id=mid, tenant_id=tenant_id, mode=mode, shard=shard,
                               spec=msgspec.Raw(spec.encode()))
            await js.publish(cascade_subject(shard), ENCODER.encode(cmd),
                             headers={"Nats-Msg-Id": start_msg_id(mid)}, timeout=5)
            republished.append(mid)
        if republished:
            self.republished += len(republished)
            log.info("recovery sweep re-published %d unstarted messages", len(republished))
        return republished

    async def _oldest_waiting(self, js: JetStreamContext,
                              shards: list[int]) -> dict[int, datetime | None]:
        """When the oldest command still in each shard's subject of the engine's stream was
        published (None: nothing waits there). Consumed commands leave a work-queue stream
        once acknowledged, so this is how far the shard's engine has got."""
        oldest: dict[int, datetime | None] = {}
        for shard in shards:
            try:
                msg = await js.get_msg(CASCADE_STREAM, seq=1, subject=cascade_subject(shard),
                                       next=True)
            except NotFoundError:
                oldest[shard] = None
            else:
                oldest[shard] = msg.time
        return oldest

    async def redrive_cancels(self) -> int:
        """Publish again the cancels recorded at least `cancel_grace_s` ago (in the last
        day) whose message is still open: the API records a cancel before publishing it,
        and a publish that failed must not leave the cascade running. `Nats-Msg-Id` is the
        API's, so a cancel JetStream still remembers is not delivered twice."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT m.id, m.tenant_id, m.shard FROM message_events e"
                " JOIN messages m ON m.id = e.message_id"
                " WHERE e.kind = 'cancel_requested' AND m.finished_at IS NULL"
                " AND e.at < now() - make_interval(secs => %s)"
                " AND e.at > now() - interval '1 day'"
                " ORDER BY e.at LIMIT %s", (self.cancel_grace_s, self.limit))
            rows = await cur.fetchall()
        if not rows:
            return 0
        js = self.js_factory()
        for mid, tenant_id, shard in rows:
            await js.publish(cascade_subject(shard),
                             ENCODER.encode(CancelCommand(id=mid, tenant_id=tenant_id)),
                             headers={"Nats-Msg-Id": cancel_msg_id(mid)}, timeout=5)
        self.cancels_redriven += len(rows)
        log.info("recovery sweep re-published %d cancels", len(rows))
        return len(rows)
