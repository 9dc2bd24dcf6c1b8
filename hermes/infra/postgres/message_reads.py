"""PostgresMessageReader: one message with its attempts and timeline, pages of messages, cancel.

Reads are scoped by tenant and mode in SQL, so another tenant's id, or a live message
asked for with a test key, simply finds nothing.
A message's attempts and events come back as JSON arrays from the same query,
so `GET /v1/messages/{id}` is one round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from hermes.infra.postgres.messages import IDEMPOTENCY_TTL_S, ExistingMessage

_DETAIL = """
SELECT m.id, m.status, m.outcome, m.mode, m.shard, m.spec::text, m.metadata::text,
       m.send_at, m.expires_at, m.created_at, m.updated_at, m.finished_at, m.engine_state,
       (SELECT coalesce(json_agg(a ORDER BY a.step, a.attempt, a.created_at), '[]')::text FROM (
            SELECT id, step, attempt, channel, provider_account_id, adapter, adapter_version,
                   status, provider_message_id, error_code, provider_error_code, segments,
                   cost::text AS cost, created_at, sent_at, answered_at, receipt_at
            FROM attempts WHERE message_id = m.id) a),
       (SELECT coalesce(json_agg(e ORDER BY e.id), '[]')::text FROM (
            SELECT id, at, kind, data FROM message_events WHERE message_id = m.id) e)
FROM messages m WHERE m.id = %s AND m.tenant_id = %s AND m.mode = %s
"""

_LIST = """
SELECT id, status, outcome, mode, spec::text, metadata::text, send_at, expires_at,
       created_at, updated_at, finished_at
FROM messages
WHERE tenant_id = %(t)s AND mode = %(mode)s
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(after)s::timestamptz IS NULL OR created_at > %(after)s::timestamptz)
  AND (%(before)s::timestamptz IS NULL OR created_at < %(before)s::timestamptz)
  AND (%(c_at)s::timestamptz IS NULL OR (created_at, id) < (%(c_at)s::timestamptz, %(c_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s
"""

# Record the request in the timeline (once), unless the message is already final. The
# event stays even if the publish that follows fails: the client is told to retry, and
# a sweep can re-drive cancels from it, as it re-drives starts.
_CANCEL = """
WITH m AS (
    SELECT id, status, shard, created_at, finished_at FROM messages
    WHERE id = %(id)s AND tenant_id = %(t)s AND mode = %(mode)s
), ev AS (
    INSERT INTO message_events (message_id, at, kind, data)
    SELECT id, now(), 'cancel_requested', '{}'::jsonb FROM m WHERE finished_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM message_events e
                      WHERE e.message_id = m.id AND e.kind = 'cancel_requested')
    RETURNING id
)
SELECT m.status, m.shard, m.created_at, m.finished_at IS NOT NULL FROM m
"""


@dataclass(frozen=True)
class MessageRow:
    id: UUID
    status: str
    outcome: str | None
    mode: str
    spec_json: str
    metadata_json: str
    send_at: datetime | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class MessageDetailRow(MessageRow):
    shard: int
    engine_state: bytes | None
    attempts_json: str
    events_json: str


@dataclass(frozen=True)
class CancelRow:
    status: str
    shard: int
    created_at: datetime
    final: bool


@dataclass(frozen=True)
class Page:
    rows: list[MessageRow]
    has_more: bool


class PostgresMessageReader:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def get(self, tenant_id: UUID, mode: str,
                  message_id: UUID) -> MessageDetailRow | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_DETAIL, (message_id, tenant_id, mode))
            r = await cur.fetchone()
        if r is None:
            return None
        return MessageDetailRow(
            id=r[0], status=r[1], outcome=r[2], mode=r[3], shard=r[4], spec_json=r[5],
            metadata_json=r[6], send_at=r[7], expires_at=r[8], created_at=r[9],
            updated_at=r[10], finished_at=r[11],
            engine_state=bytes(r[12]) if r[12] is not None else None,
            attempts_json=r[13], events_json=r[14])

    async def page(self, tenant_id: UUID, mode: str, *, statuses: list[str] | None,
                   created_after: datetime | None, created_before: datetime | None,
                   cursor: tuple[datetime, UUID] | None, limit: int) -> Page:
        """Newest first; rows strictly older than `cursor`, so new arrivals never shift a page."""
        params: dict[str, Any] = {
            "t": tenant_id, "mode": mode, "statuses": statuses or None, "after": created_after,
            "before": created_before, "c_at": cursor[0] if cursor else None,
            "c_id": cursor[1] if cursor else None, "limit": limit + 1,
        }
        async with self.pool.connection() as conn:
            cur = await conn.execute(_LIST, params)
            rows = await cur.fetchall()
        out = [MessageRow(id=r[0], status=r[1], outcome=r[2], mode=r[3], spec_json=r[4],
                          metadata_json=r[5], send_at=r[6], expires_at=r[7], created_at=r[8],
                          updated_at=r[9], finished_at=r[10]) for r in rows[:limit]]
        return Page(out, has_more=len(rows) > limit)

    async def request_cancel(self, tenant_id: UUID, mode: str,
                             message_id: UUID) -> CancelRow | None:
        """None when the tenant has no such message; `final` when it can no longer be cancelled."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(_CANCEL, {"id": message_id, "t": tenant_id, "mode": mode})
            r = await cur.fetchone()
        if r is None:
            return None
        return CancelRow(status=r[0], shard=r[1], created_at=r[2], final=bool(r[3]))

    async def by_idempotency_keys(self, tenant_id: UUID, mode: str,
                                  keys: list[str]) -> dict[str, ExistingMessage]:
        """Messages committed under these keys in the last IDEMPOTENCY_TTL_S, with the status
        they were accepted in."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT m.idempotency_key, m.id, e.data->>'status', m.created_at,"
                " m.idempotency_hash, m.send_at FROM messages m"
                " JOIN message_events e ON e.message_id = m.id AND e.kind = 'accepted'"
                " WHERE m.tenant_id = %s AND m.mode = %s AND m.idempotency_key = ANY(%s)"
                " AND m.created_at >= now() - make_interval(secs => %s)",
                (tenant_id, mode, keys, IDEMPOTENCY_TTL_S))
            rows = await cur.fetchall()
        return {r[0]: ExistingMessage(id=r[1], initial_status=r[2], created_at=r[3],
                                      idempotency_hash=bytes(r[4]) if r[4] is not None else None,
                                      send_at=r[5])
                for r in rows}
