"""PostgresMessageStore: durable ingest with group commit, and message reads.

Group commit: concurrent requests hand their rows to a writer task, which
inserts everything queued so far in one transaction and one fsync. While a
commit is in flight the next batch fills up by itself, so a busy API commits
hundreds of messages per fsync and an idle one commits at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncCursor
from psycopg_pool import AsyncConnectionPool

from hermes.infra.postgres.arrays import literal as array
from hermes.infra.tasks import cancel_and_wait

log = logging.getLogger("hermes.store")

MAX_BATCH = 1000
# How long an Idempotency-Key is remembered (Stripe's 24 hours). An older key is
# released when it is reused, and the recovery sweep releases the rest.
IDEMPOTENCY_TTL_S = 24 * 3600


@dataclass
class NewMessage:
    id: UUID
    tenant_id: UUID
    mode: str
    status: str
    shard: int
    spec_json: str
    metadata_json: str
    idempotency_key: str | None
    idempotency_hash: bytes | None
    send_at: datetime | None
    expires_at: datetime | None
    next_deadline: datetime | None
    event_json: str
    created_at: datetime


@dataclass(frozen=True)
class Inserted:
    """The row is committed (`existing` is None), or the idempotency key was used before."""

    id: UUID
    existing: ExistingMessage | None = None


@dataclass(frozen=True)
class ExistingMessage:
    id: UUID
    # The status the message had when it was accepted (what the first answer said).
    initial_status: str
    created_at: datetime
    idempotency_hash: bytes | None
    send_at: datetime | None = None


@dataclass
class _Pending:
    """One caller's rows, committed together (never split across transactions)."""

    rows: list[NewMessage]
    done: asyncio.Future[list[Inserted]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


_INSERT_MESSAGE = """
INSERT INTO messages (id, tenant_id, mode, status, shard, spec, metadata, idempotency_key,
                      idempotency_hash, send_at, expires_at, next_deadline, created_at)
VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant_id, mode, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id
"""

# Rows without an idempotency key cannot conflict (their ids are fresh UUIDv7s): the
# messages and their `accepted` events go in as one statement over unnested arrays,
# which on an autocommit connection is one round trip and one commit. (Two COPYs in a
# transaction cost five or six round trips, each with its share of the API's CPU.)
_INSERT_PLAIN = """
WITH m AS (
    INSERT INTO messages (id, tenant_id, mode, status, shard, spec, metadata, send_at,
                          expires_at, next_deadline, created_at)
    SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::int[],
                         %s::jsonb[], %s::jsonb[], %s::timestamptz[], %s::timestamptz[],
                         %s::timestamptz[], %s::timestamptz[])
)
INSERT INTO message_events (message_id, at, kind, data)
SELECT id, at, 'accepted', data FROM unnest(%s::uuid[], %s::timestamptz[], %s::jsonb[])
    AS e (id, at, data)
"""

# Keys of these requests that were last used more than IDEMPOTENCY_TTL_S ago are free.
_RELEASE_EXPIRED = """
UPDATE messages m SET idempotency_key = NULL, idempotency_hash = NULL
FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS k(tenant_id, mode, key)
WHERE m.tenant_id = k.tenant_id AND m.mode = k.mode AND m.idempotency_key = k.key
  AND m.created_at < now() - make_interval(secs => %s)
"""

_INSERT_EVENT = """
INSERT INTO message_events (message_id, at, kind, data)
VALUES (%s, %s, 'accepted', %s::jsonb)
"""


class GroupCommitWriter:
    def __init__(self, pool: AsyncConnectionPool, *, writers: int = 2) -> None:
        self.pool = pool
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.writers = writers
        self.tasks: list[asyncio.Task[None]] = []
        self.batches = 0
        self.rows = 0

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._run(), name=f"group-commit-{i}")
                      for i in range(self.writers)]

    async def stop(self) -> None:
        await cancel_and_wait(*self.tasks)
        # Nothing queued may be left hanging: fail it, so its request gets a 503.
        while not self.queue.empty():
            p = self.queue.get_nowait()
            if not p.done.done():
                p.done.set_exception(ConnectionError("shutting down"))

    async def insert_many(self, rows: list[NewMessage]) -> list[Inserted]:
        """Commit `rows` in one transaction, with whatever other callers queued meanwhile."""
        if not rows:
            return []
        pending = _Pending(rows)
        self.queue.put_nowait(pending)
        return await pending.done

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            size = len(batch[0].rows)
            while size < MAX_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
                size += len(batch[-1].rows)
            try:
                results = await self._commit([r for p in batch for r in p.rows])
            except Exception as exc:
                log.warning("group commit of %d messages failed: %s", size, exc)
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(exc)
                continue
            self.batches += 1
            self.rows += size
            at = 0
            for p in batch:
                if not p.done.done():
                    p.done.set_result(results[at:at + len(p.rows)])
                at += len(p.rows)

    async def _commit(self, rows: list[NewMessage]) -> list[Inserted]:
        plain = [r for r in rows if r.idempotency_key is None]
        keyed = [r for r in rows if r.idempotency_key is not None]
        async with self.pool.connection() as conn:
            if not keyed:
                # One statement on an autocommit connection: one round trip, one commit.
                await conn.execute(_INSERT_PLAIN, _plain_params(plain), prepare=True)
                return [Inserted(r.id) for r in rows]
            async with conn.transaction():
                cur = conn.cursor()
                if plain:
                    await cur.execute(_INSERT_PLAIN, _plain_params(plain), prepare=True)
                existing = await _insert_keyed(cur, keyed)
                return [Inserted(r.id, existing.get(r.id)) for r in rows]


def _plain_params(rows: list[NewMessage]) -> tuple[str, ...]:
    ids, created = array([r.id for r in rows]), array([r.created_at for r in rows])
    return (ids, array([r.tenant_id for r in rows]), array([r.mode for r in rows]),
            array([r.status for r in rows]), array([r.shard for r in rows]),
            array([r.spec_json for r in rows]), array([r.metadata_json for r in rows]),
            array([r.send_at for r in rows]), array([r.expires_at for r in rows]),
            array([r.next_deadline for r in rows]), created,
            ids, created, array([r.event_json for r in rows]))


async def _insert_keyed(cur: AsyncCursor[Any], rows: list[NewMessage]
                        ) -> dict[UUID, ExistingMessage]:
    """Insert rows that carry an idempotency key; the earlier message of each key taken."""
    await cur.execute(_RELEASE_EXPIRED, (
        [r.tenant_id for r in rows], [r.mode for r in rows],
        [r.idempotency_key for r in rows], IDEMPOTENCY_TTL_S))
    await cur.executemany(
        _INSERT_MESSAGE,
        [(r.id, r.tenant_id, r.mode, r.status, r.shard, r.spec_json, r.metadata_json,
          r.idempotency_key, r.idempotency_hash, r.send_at, r.expires_at,
          r.next_deadline, r.created_at) for r in rows],
        returning=True,
    )
    inserted: set[UUID] = set()
    while True:
        row = await cur.fetchone()
        if row is not None:
            inserted.add(row[0])
        if not cur.nextset():
            break
    fresh = [r for r in rows if r.id in inserted]
    if fresh:
        await cur.executemany(_INSERT_EVENT,
                              [(r.id, r.created_at, r.event_json) for r in fresh])
    return {r.id: await _existing(cur, r) for r in rows if r.id not in inserted}


async def _existing(cur: AsyncCursor[Any], r: NewMessage) -> ExistingMessage:
    await cur.execute(
        "SELECT m.id, e.data->>'status', m.created_at, m.idempotency_hash, m.send_at"
        " FROM messages m"
        " JOIN message_events e ON e.message_id = m.id AND e.kind = 'accepted'"
        " WHERE m.tenant_id = %s AND m.mode = %s AND m.idempotency_key = %s",
        (r.tenant_id, r.mode, r.idempotency_key),
    )
    row = await cur.fetchone()
    if row is None:  # the key's holder vanished between the conflict and this read
        raise RuntimeError("idempotency conflict with no existing message")
    return ExistingMessage(id=row[0], initial_status=row[1], created_at=row[2],
                           idempotency_hash=bytes(row[3]) if row[3] is not None else None,
                           send_at=row[4])


async def release_expired_keys(pool: AsyncConnectionPool, *, limit: int = 1000) -> int:
    """Forget up to `limit` idempotency keys older than IDEMPOTENCY_TTL_S; how many were."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE messages SET idempotency_key = NULL, idempotency_hash = NULL"
            " WHERE id IN (SELECT id FROM messages WHERE idempotency_key IS NOT NULL"
            "              AND created_at < now() - make_interval(secs => %s) LIMIT %s)",
            (IDEMPOTENCY_TTL_S, limit))
        return cur.rowcount
