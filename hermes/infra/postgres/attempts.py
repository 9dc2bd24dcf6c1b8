"""PostgresAttemptStore: the `attempts` rows delivery claims and answers, and receipts move on.

An attempt goes `pending -> sending` (claimed before the provider call, so a
redelivered job is never sent twice) `-> accepted | rejected | failed`, then
receipts move an accepted attempt on, never backwards (`delivered` does not
become `sent` again). Claims and answers from concurrent jobs are written in
batches: one statement per batch, not per send.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from hermes.delivery.batching import Batcher
from hermes.infra.postgres.arrays import literal as array

log = logging.getLogger("hermes.attempts")

# The attempt was claimed but its provider call was never recorded (a crash in between).
INTERRUPTED = "hermes.interrupted"

# How far along a status is; a receipt only ever moves an attempt forward.
STATUS_RANK: dict[str, int] = {
    "pending": 0, "sending": 1, "accepted": 2, "sent": 3,
    "delivered": 4, "undelivered": 4, "failed": 4, "bounced": 4, "read": 5,
}


@dataclass(frozen=True, slots=True)
class Answer:
    """How the provider answered one claimed attempt."""

    attempt_id: UUID
    status: str  # accepted | rejected | failed
    provider_message_id: str | None = None
    error_code: str | None = None
    provider_error_code: str | None = None
    segments: int | None = None
    cost: Decimal | None = None
    adapter: str | None = None
    adapter_version: str | None = None
    adapter_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class _Advance:
    """A receipt's move of one attempt to `status`."""

    attempt_id: UUID
    status: str
    at: datetime
    code: str | None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    id: UUID
    message_id: UUID
    step: int
    attempt: int
    status: str
    provider_account_id: UUID | None
    provider_message_id: str | None
    error_code: str | None
    shard: int


_SELECT = """
SELECT a.id, a.message_id, a.step, a.attempt, a.status, a.provider_account_id,
       a.provider_message_id, a.error_code, m.shard
FROM attempts a JOIN messages m ON m.id = a.message_id
"""

_BY_PROVIDER_IDS = _SELECT + """
JOIN unnest(%s::uuid[], %s::text[]) AS q (account_id, provider_message_id)
  ON a.provider_account_id = q.account_id AND a.provider_message_id = q.provider_message_id
"""


def _rank_sql(column: str) -> str:
    """STATUS_RANK as SQL, so the database compares statuses as this module does."""
    cases = " ".join(f"WHEN '{s}' THEN {r}" for s, r in STATUS_RANK.items())
    return f"(CASE {column} {cases} ELSE 0 END)"


# A receipt only ever moves an attempt forward, whatever moved it since it was read:
# of a `sent` and a `delivered` arriving together, `delivered` stays.
_ADVANCE = f"""
UPDATE attempts a SET status = q.status, receipt_at = q.at,
    provider_error_code = COALESCE(q.code, a.provider_error_code)
FROM unnest(%s::uuid[], %s::text[], %s::timestamptz[], %s::text[]) AS q (id, status, at, code)
WHERE a.id = q.id AND {_rank_sql("a.status")} < {_rank_sql("q.status")}
RETURNING a.id
"""

_CLAIM = """
UPDATE attempts SET status = 'sending', sent_at = now()
WHERE id = ANY(%s::uuid[]) AND status = 'pending'
RETURNING id
"""

_ANSWER = """
UPDATE attempts a SET status = q.status, provider_message_id = q.pmid, error_code = q.code,
    provider_error_code = q.pcode, segments = q.segments, cost = q.cost, answered_at = now(),
    adapter = COALESCE(q.adapter, a.adapter),
    adapter_version = COALESCE(q.version, a.adapter_version),
    adapter_sha256 = COALESCE(q.sha, a.adapter_sha256)
FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::int[],
            %s::numeric[], %s::text[], %s::text[], %s::text[])
     AS q (id, status, pmid, code, pcode, segments, cost, adapter, version, sha)
WHERE a.id = q.id AND a.status = 'sending'
"""


class PostgresAttemptStore:
    def __init__(self, pool: AsyncConnectionPool, *, max_batch: int = 500,
                 linger_s: float = 0.0) -> None:
        self.pool = pool
        self._claims: Batcher[UUID, bool] = Batcher(
            self._claim_many, max_batch=max_batch, name="attempt-claims", linger_s=linger_s)
        self._answers: Batcher[Answer, Exception | None] = Batcher(
            self._answer_many, max_batch=max_batch, name="attempt-answers", linger_s=linger_s)
        self._lookups: Batcher[tuple[UUID, str], AttemptRow | None] = Batcher(
            self._lookup_many, max_batch=max_batch, name="attempt-lookups", linger_s=linger_s)
        self._advances: Batcher[_Advance, bool] = Batcher(
            self._advance_many, max_batch=max_batch, name="attempt-advances", linger_s=linger_s)

    async def close(self) -> None:
        for batcher in (self._claims, self._answers, self._lookups, self._advances):
            await batcher.close()

    async def claim(self, attempt_id: UUID) -> bool:
        """pending -> sending; False if the attempt was not pending (or does not exist)."""
        return await self._claims.submit(attempt_id)

    async def answer(self, answer: Answer) -> None:
        """Record the provider's answer on a claimed (`sending`) attempt."""
        failed = await self._answers.submit(answer)
        if failed is not None:
            raise failed

    async def release(self, attempt_id: UUID) -> None:
        """sending -> pending, for a claimed attempt that was never sent (its adapter
        trapped before the provider call), so its job can be run again."""
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE attempts SET status = 'pending', sent_at = NULL"
                               " WHERE id = %s AND status = 'sending'", (attempt_id,))

    async def get(self, attempt_id: UUID) -> AttemptRow | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_SELECT + " WHERE a.id = %s", (attempt_id,))
            row = await cur.fetchone()
        return None if row is None else AttemptRow(*row)

    async def fail_stuck(self, attempt_id: UUID, code: str) -> None:
        """Close an attempt left in `sending` by a crash between provider call and record.

        `provider_error_code` INTERRUPTED marks it, so duplicate-window hits can be counted
        from the table as well as from the process's counters."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE attempts SET status = 'failed', error_code = %s,"
                " provider_error_code = %s, answered_at = now()"
                " WHERE id = %s AND status = 'sending'", (code, INTERRUPTED, attempt_id))

    async def by_provider_ids(self, account_id: UUID,
                              provider_message_ids: list[str]) -> dict[str, AttemptRow]:
        """The attempts of an account by the provider's message ids (receipts name them).
        Concurrent callers share one query."""
        found = await asyncio.gather(*(self._lookups.submit((account_id, pmid))
                                       for pmid in dict.fromkeys(provider_message_ids)))
        return {r.provider_message_id: r for r in found
                if r is not None and r.provider_message_id is not None}

    async def advance(self, row: AttemptRow, status: str, at: datetime,
                      provider_error_code: object = None) -> bool:
        """Move the attempt to a receipt's status if that is forward; False if not moved.
        Concurrent callers share one statement (and one commit)."""
        if STATUS_RANK.get(status, 0) <= STATUS_RANK.get(row.status, 0):
            return False
        code = None if provider_error_code is None else str(provider_error_code)
        return await self._advances.submit(_Advance(row.id, status, at, code))

    # --- batch flushes ---

    async def _lookup_many(self, keys: list[tuple[UUID, str]]) -> list[AttemptRow | None]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_BY_PROVIDER_IDS, (array(k[0] for k in keys),
                                                        array(k[1] for k in keys)))
            rows = [AttemptRow(*row) for row in await cur.fetchall()]
        by_key = {(r.provider_account_id, r.provider_message_id): r for r in rows}
        return [by_key.get(k) for k in keys]

    async def _advance_many(self, moves: list[_Advance]) -> list[bool]:
        # One UPDATE changes a row once, so of several moves of one attempt in a batch (its
        # `sent` and `delivered` receipts together) only the furthest is applied; the
        # others did not move it (the furthest supersedes them).
        furthest: dict[UUID, _Advance] = {}
        for m in moves:
            best = furthest.get(m.attempt_id)
            if best is None or STATUS_RANK.get(m.status, 0) > STATUS_RANK.get(best.status, 0):
                furthest[m.attempt_id] = m
        chosen = list(furthest.values())
        async with self.pool.connection() as conn:
            cur = await conn.execute(_ADVANCE, (
                array(m.attempt_id for m in chosen), array(m.status for m in chosen),
                array(m.at for m in chosen), array(m.code for m in chosen)))
            moved = {r[0] for r in await cur.fetchall()}
        return [m.attempt_id in moved and furthest[m.attempt_id] is m for m in moves]

    async def _claim_many(self, ids: list[UUID]) -> list[bool]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_CLAIM, (array(ids),))
            claimed = {r[0] for r in await cur.fetchall()}
        return [i in claimed for i in ids]

    async def _answer_many(self, answers: list[Answer]) -> list[Exception | None]:
        # An attempt is answered once (it leaves 'sending'): of repeats in one batch the
        # first counts, as it would have run first. One UPDATE for all of them.
        first = {a.attempt_id: a for a in reversed(answers)}
        rows = [(a.attempt_id, a.status, a.provider_message_id, a.error_code,
                 a.provider_error_code, a.segments, a.cost, a.adapter, a.adapter_version,
                 a.adapter_sha256) for a in first.values()]
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute(_ANSWER, tuple(array(c) for c in zip(*rows, strict=True)))
        except psycopg.errors.IntegrityError as exc:
            # One bad row (a provider message id seen before) must not sink the batch.
            if len(answers) == 1:
                return [exc]
            return [(await self._answer_many([one]))[0] for one in answers]
        return [None] * len(answers)
