"""PostgresMessageStore: durable ingest with group commit, and message reads.

Group commit: concurrent requests hand their rows to a writer task, which
inserts everything queued so far in one transaction and one fsync. While a
commit is in flight the next batch fills up by itself, so a busy API commits
hundreds of messages per fsync and an idle one commits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncCursor
from psycopg_pool import AsyncConnectionPool

from hermes.infra.postgres import copytext

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
    row: NewMessage
    done: asyncio.Future[Inserted] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


_INSERT_MESSAGE = """
INSERT INTO messages (id, tenant_id, mode, status, shard, spec, metadata, idempotency_key,
                      idempotency_hash, send_at, expires_at, next_deadline, created_at)
VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant_id, mode, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id
"""

# Rows without an idempotency key cannot conflict (their ids are fresh UUIDv7s), so they
# are copied in: COPY costs the API about half the CPU of an executemany of two INSERTs
# per row. Rows with a key take the INSERT ... ON CONFLICT path.
_COPY_MESSAGES = """
COPY messages (id, tenant_id, mode, status, shard, spec, metadata, idempotency_key,
               idempotency_hash, send_at, expires_at, next_deadline, created_at) FROM STDIN
"""
_COPY_EVENTS = "COPY message_events (message_id, at, kind, data) FROM STDIN"

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
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        # Nothing queued may be left hanging: fail it, so its request gets a 503.
        while not self.queue.empty():
            p = self.queue.get_nowait()
            if not p.done.done():
                p.done.set_exception(ConnectionError("shutting down"))

    async def insert(self, row: NewMessage) -> Inserted:
        pending = _Pending(row)
        await self.queue.put(pending)
        return await pending.done

    async def insert_many(self, rows: list[NewMessage]) -> list[Inserted]:
        pendings = [_Pending(r) for r in rows]
        for p in pendings:
            self.queue.put_nowait(p)
        return list(await asyncio.gather(*(p.done for p in pendings)))

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < MAX_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                results = await self._commit([p.row for p in batch])
            except Exception as exc:
                log.warning("group commit of %d messages failed: %s", len(batch), exc)
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(exc)
                continue
            self.batches += 1
            self.rows += len(batch)
            for p, r in zip(batch, results, strict=True):
                if not p.done.done():
                    p.done.set_result(r)

    async def _commit(self, rows: list[NewMessage]) -> list[Inserted]:
        plain = [r for r in rows if r.idempotency_key is None]
        keyed = [r for r in rows if r.idempotency_key is not None]
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            if plain:
                async with cur.copy(_COPY_MESSAGES) as copy:
                    await copy.write(copytext.rows(
                        (r.id, r.tenant_id, r.mode, r.status, r.shard, r.spec_json,
                         r.metadata_json, None, None, r.send_at, r.expires_at,
                         r.next_deadline, r.created_at) for r in plain))
                async with cur.copy(_COPY_EVENTS) as copy:
                    await copy.write(copytext.rows(
                        (r.id, r.created_at, "accepted", r.event_json) for r in plain))
            existing = await _insert_keyed(cur, keyed) if keyed else {}
            return [Inserted(r.id, existing.get(r.id)) for r in rows]


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
