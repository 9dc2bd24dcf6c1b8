"""Shard leases: which worker's engine owns which shards of the cascade space.

A lease is a PostgreSQL session advisory lock, held on one connection per worker
that does nothing else. It needs no table and no expiry: when a worker dies, its
session ends and every lock it held is free at once, and a worker that loses
the connection knows it lost them all. Each worker also holds a member lock, so
every worker can count the live workers (from `pg_locks`) and aim for its fair
share, ceil(shards / workers): a worker with more than that gives shards back, a
worker with fewer takes free ones. Two workers converge in a couple of checks.

The runner changes hands cleanly: it stops consuming a shard and persists its
state before unlocking it, and the next owner loads the shard's open cascades
from PostgreSQL after locking it. If a worker's lease connection is cut, it drops
every shard at its next check (the check interval bounds the overlap).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import psycopg

log = logging.getLogger("hermes.leases")

# The first key of the two-key advisory locks Hermes takes (any fixed 32-bit numbers
# that nothing else in the database uses): "hmsh" for shards, "hmwk" for workers.
SHARD_LOCKS = 0x686D7368
MEMBER_LOCKS = 0x686D776B

_MEMBERS = """
SELECT count(DISTINCT pid) FROM pg_locks
WHERE locktype = 'advisory' AND classid::bigint = %s AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
_HELD = """
SELECT objid::bigint FROM pg_locks
WHERE locktype = 'advisory' AND classid::bigint = %s AND granted AND pid = pg_backend_pid()
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


class LeaseLost(RuntimeError):
    """The lease connection failed: every lock this worker held is gone."""


class ShardLeases:
    def __init__(self, database_url: str, shard_count: int) -> None:
        self.database_url = database_url
        self.shard_count = shard_count
        self.conn: psycopg.AsyncConnection | None = None

    async def open(self) -> None:
        """Connect and join as a member (a new session holds no shard)."""
        await self.close()
        conn = await psycopg.AsyncConnection.connect(
            self.database_url, autocommit=True, application_name="hermes-leases")
        await conn.execute("SELECT pg_advisory_lock(%s, pg_backend_pid())",
                           (_int4(MEMBER_LOCKS),))
        self.conn = conn

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception as exc:
                log.debug("closing the lease connection: %s", exc)

    def _connection(self) -> psycopg.AsyncConnection:
        if self.conn is None or self.conn.closed:
            raise LeaseLost("no lease connection")
        return self.conn

    async def members(self) -> int:
        """Live workers (including this one)."""
        try:
            cur = await self._connection().execute(_MEMBERS, (_int4(MEMBER_LOCKS),))
            row = await cur.fetchone()
        except psycopg.Error as exc:
            raise LeaseLost(str(exc)) from exc
        return max(1, int(row[0]) if row else 1)

    async def held(self) -> set[int]:
        """The shards this session holds, as PostgreSQL sees it."""
        try:
            cur = await self._connection().execute(_HELD, (_int4(SHARD_LOCKS),))
            return {int(r[0]) for r in await cur.fetchall()}
        except psycopg.Error as exc:
            raise LeaseLost(str(exc)) from exc

    def fair_share(self, members: int) -> int:
        return math.ceil(self.shard_count / max(1, members))

    async def try_acquire(self, shards: Iterable[int], want: int) -> list[int]:
        """Lock up to `want` of `shards` that nobody holds; the ones locked. Shards this
        session holds already are skipped (advisory locks nest, and a second hold would
        need a second unlock)."""
        got: list[int] = []
        mine = await self.held()
        conn = self._connection()
        try:
            for shard in shards:
                if shard in mine:
                    continue
                if len(got) >= want:
                    break
                cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                         (_int4(SHARD_LOCKS), shard))
                row = await cur.fetchone()
                if row and row[0]:
                    got.append(shard)
        except psycopg.Error as exc:
            raise LeaseLost(str(exc)) from exc
        return got

    async def release(self, shards: Iterable[int]) -> None:
        conn = self._connection()
        try:
            for shard in shards:
                await conn.execute("SELECT pg_advisory_unlock(%s, %s)",
                                   (_int4(SHARD_LOCKS), shard))
        except psycopg.Error as exc:
            raise LeaseLost(str(exc)) from exc


def _int4(value: int) -> int:
    """A 32-bit key as PostgreSQL's signed int4."""
    return value - (1 << 32) if value >= (1 << 31) else value
