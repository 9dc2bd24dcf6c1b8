"""PostgresCascadeStore: what the engine reads at start and writes after every batch.

One transaction per engine batch: timeline entries, attempt rows (written
before their job is published, so a redelivered job finds its attempt) and
one UPDATE for all the touched messages, carrying their new status, deadline and the
core's serialised state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from hermes.cascade.context import MessageContext
from hermes.domain.errors import Code
from hermes.infra.postgres.arrays import literal as array


@dataclass
class MessageUpdate:
    state: bytes | None = None
    status: str | None = None
    deadline_ms: int | None = None
    clear_deadline: bool = False
    outcome: str | None = None
    started: bool = False


@dataclass
class NewAttempt:
    id: UUID
    message_id: UUID
    tenant_id: UUID
    step: int
    attempt: int
    channel: str
    account_id: UUID | None
    adapter: str | None
    status: str = "pending"
    error_code: str | None = None


@dataclass
class Batch:
    events: list[tuple[UUID, datetime, str, str]] = field(default_factory=list)
    updates: dict[UUID, MessageUpdate] = field(default_factory=dict)
    attempts: list[NewAttempt] = field(default_factory=list)
    # Steps the cascade moved past (timed out or failed): their attempts not yet sent
    # are closed, so a job still queued for one is never sent.
    left_steps: list[tuple[UUID, int]] = field(default_factory=list)
    # Tenant webhook events (hermes.webhooks.events.WebhookEvent), queued in the same
    # transaction as the state change they report.
    notices: list[Any] = field(default_factory=list)
    # Run once the batch has committed (and never if it does not): handing the webhook
    # deliveries the transaction claimed to this process's dispatcher.
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    def update(self, mid: UUID) -> MessageUpdate:
        u = self.updates.get(mid)
        if u is None:
            u = self.updates[mid] = MessageUpdate()
        return u

    def empty(self) -> bool:
        return not (self.events or self.updates or self.attempts or self.notices
                    or self.left_steps)


def _columns(rows: Iterable[tuple[Any, ...]]) -> tuple[str, ...]:
    """Rows as one array literal per column, for `unnest(%s::type[], ...)`."""
    return tuple(array(column) for column in zip(*rows, strict=True))


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


# One statement for every message a turn touched; a null leaves the column as it was.
_UPDATE = """
UPDATE messages m SET
    engine_state = COALESCE(u.state, m.engine_state),
    status = COALESCE(u.status, m.status),
    next_deadline = CASE WHEN u.clear THEN NULL ELSE COALESCE(u.deadline, m.next_deadline) END,
    outcome = COALESCE(u.outcome, m.outcome),
    finished_at = CASE WHEN u.outcome IS NOT NULL THEN now() ELSE m.finished_at END,
    started_at = CASE WHEN u.started THEN COALESCE(m.started_at, now()) ELSE m.started_at END,
    updated_at = now()
FROM unnest(%s::uuid[], %s::bytea[], %s::text[], %s::timestamptz[], %s::bool[], %s::text[],
            %s::bool[]) AS u (id, state, status, deadline, clear, outcome, started)
WHERE m.id = u.id
"""

_ATTEMPTS = """
INSERT INTO attempts (id, message_id, tenant_id, step, attempt, channel, provider_account_id,
                      adapter, status, error_code)
SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::uuid[], %s::smallint[], %s::smallint[],
                     %s::text[], %s::uuid[], %s::text[], %s::text[], %s::text[])
ON CONFLICT (message_id, step, attempt) DO NOTHING
"""

_OPEN_COLUMNS = "id, tenant_id, mode, shard, spec::text, metadata, engine_state, finished_at"


NoticeWriter = Callable[[AsyncConnection[Any], "Batch"], Awaitable[None]]


class PostgresCascadeStore:
    def __init__(self, pool: AsyncConnectionPool, *,
                 notice_writer: NoticeWriter | None = None) -> None:
        self.pool = pool
        self.notice_writer = notice_writer

    async def unstarted(self, ids: list[UUID]) -> set[UUID]:
        """Of `ids`, those whose cascade has not started: a repeated start must not restart one."""
        if not ids:
            return set()
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id FROM messages WHERE id = ANY(%s) AND started_at IS NULL"
                " AND finished_at IS NULL", (ids,))
            return {r[0] for r in await cur.fetchall()}

    async def open_cascades(self, shards: Sequence[int] | None = None
                            ) -> list[tuple[MessageContext, bytes]]:
        """Every started, unfinished cascade with its state (of `shards`, or of all): the
        wheel is rebuilt from these."""
        if shards is not None and not shards:
            return []
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_OPEN_COLUMNS} FROM messages"
                " WHERE finished_at IS NULL AND engine_state IS NOT NULL"
                " AND (%s::smallint[] IS NULL OR shard = ANY(%s::smallint[]))",
                (None if shards is None else list(shards),) * 2)
            return [(_context(r), bytes(r[6])) for r in await cur.fetchall()]

    async def load(self, ids: list[UUID]) -> dict[UUID, tuple[MessageContext, bytes | None, bool]]:
        """Context, state and whether it is final, for cascades the engine does not hold."""
        if not ids:
            return {}
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_OPEN_COLUMNS} FROM messages WHERE id = ANY(%s)", (ids,))
            return {
                r[0]: (_context(r), bytes(r[6]) if r[6] is not None else None, r[7] is not None)
                for r in await cur.fetchall()
            }

    async def persist(self, batch: Batch) -> None:
        if batch.empty():
            return
        async with self.pool.connection() as conn, conn.transaction():
            await self._write(conn, batch)
        for then in batch.after_commit:
            then()

    async def _write(self, conn: AsyncConnection[Any], batch: Batch) -> None:
        cur = conn.cursor()
        if batch.attempts:
            await cur.execute(_ATTEMPTS, _columns(
                (a.id, a.message_id, a.tenant_id, a.step, a.attempt, a.channel, a.account_id,
                 a.adapter, a.status, a.error_code) for a in batch.attempts))
        if batch.events:
            await cur.execute(
                "INSERT INTO message_events (message_id, at, kind, data)"
                " SELECT * FROM unnest(%s::uuid[], %s::timestamptz[], %s::text[], %s::jsonb[])",
                _columns(batch.events))
        if batch.updates:
            await cur.execute(_UPDATE, _columns(
                (mid, u.state, u.status,
                 _ts(u.deadline_ms) if u.deadline_ms is not None else None,
                 u.clear_deadline, u.outcome, u.started)
                for mid, u in batch.updates.items()))
        finished = [mid for mid, u in batch.updates.items() if u.outcome is not None]
        if finished:
            # A job not yet sent when its cascade ends is never sent: delivery claims only
            # pending attempts. Without this, a job held up (a backlog, a crashed worker's
            # redelivery) would reach the provider after the final state, an expired OTP too.
            await cur.execute(
                "UPDATE attempts SET status = 'failed', error_code = %s, answered_at = now()"
                " WHERE message_id = ANY(%s::uuid[]) AND status = 'pending'",
                (Code.MESSAGE_ALREADY_FINAL, array(finished)))
        if batch.left_steps:
            # As at the end of a cascade: a job held up past its step's timeout (a backlog,
            # a throttled provider account) must not reach the provider after the cascade
            # fell back to the next channel.
            await cur.execute(
                "UPDATE attempts a SET status = 'failed', error_code = %s, answered_at = now()"
                " FROM unnest(%s::uuid[], %s::int[]) AS l(message_id, step)"
                " WHERE a.message_id = l.message_id AND a.step = l.step"
                " AND a.status = 'pending'",
                (Code.CASCADE_STEP_LEFT, array(m for m, _ in batch.left_steps),
                 array(s for _, s in batch.left_steps)))
        if batch.notices and self.notice_writer is not None:
            await self.notice_writer(conn, batch)


def _context(r: Any) -> MessageContext:
    return MessageContext.from_json(r[0], r[1], r[2], r[3], r[4], r[5])
