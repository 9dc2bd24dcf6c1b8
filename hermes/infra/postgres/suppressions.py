"""PostgresSuppressionStore: each tenant's suppression list, and the layer-7 lookup.

The lookup answers, in one round trip, which of each request's (kind, address) pairs
are suppressed and its tenant's quiet hours, for the requests of any tenants: validation
layer 7 costs one query per batch, and one per turn of single sends (`hermes.api.singles`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from hermes.infra.postgres.arrays import literal


@dataclass(frozen=True)
class Suppression:
    kind: str
    address: str
    reason: str
    message_id: UUID | None
    created_at: datetime


@dataclass(frozen=True)
class Layer7:
    """What layer 7 needs to know about a tenant for one request."""

    suppressed: set[tuple[str, str]]
    quiet_hours: dict[str, Any] | None


_COLUMNS = "kind, address, reason, message_id, created_at"

# Each tenant's quiet hours (a row with no index), then every (request index, kind,
# address) of the lookups that is suppressed.
_LOOKUP_MANY = """
SELECT t.id, NULL::int, NULL::text, NULL::text, t.quiet_hours
FROM tenants t WHERE t.id = ANY(%(ids)s::uuid[])
UNION ALL
SELECT q.tenant_id, q.i, s.kind, s.address, NULL::jsonb
FROM unnest(%(i)s::int[], %(t)s::uuid[], %(k)s::text[], %(a)s::text[])
     AS q (i, tenant_id, kind, address)
JOIN suppressions s ON s.tenant_id = q.tenant_id AND s.kind = q.kind AND s.address = q.address
"""

# Hard bounces and complaints of email attempts: the address is the one the message
# was sent to, and the tenant the message's (also when the account is the platform's).
_FROM_RECEIPTS = """
INSERT INTO suppressions (tenant_id, kind, address, reason, message_id)
SELECT DISTINCT ON (m.tenant_id, m.spec->'to'->>'email')
       m.tenant_id, 'email', m.spec->'to'->>'email', q.reason, m.id
FROM unnest(%(ids)s::text[], %(reasons)s::text[]) AS q (pmid, reason)
JOIN attempts a ON a.provider_account_id = %(account)s AND a.provider_message_id = q.pmid
JOIN messages m ON m.id = a.message_id
WHERE a.channel = 'email' AND m.spec->'to'->>'email' IS NOT NULL
ORDER BY m.tenant_id, m.spec->'to'->>'email', q.reason = 'complaint' DESC
ON CONFLICT (tenant_id, kind, address) DO NOTHING
RETURNING kind, address
"""


class PostgresSuppressionStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def layer7_many(self, lookups: Sequence[tuple[UUID, Sequence[tuple[str, str]]]]
                          ) -> list[Layer7]:
        """For each (tenant, pairs) lookup, which pairs the tenant has suppressed and its
        quiet hours: several requests (of any tenants) in one query."""
        index: list[int] = []
        tenants: list[UUID] = []
        kinds: list[str] = []
        addresses: list[str] = []
        for i, (tenant_id, pairs) in enumerate(lookups):
            for kind, address in pairs:
                index.append(i)
                tenants.append(tenant_id)
                kinds.append(kind)
                addresses.append(address)
        async with self.pool.connection() as conn:
            cur = await conn.execute(_LOOKUP_MANY, {
                "ids": literal({t for t, _ in lookups}), "i": literal(index),
                "t": literal(tenants), "k": literal(kinds), "a": literal(addresses)}, prepare=True)
            rows = await cur.fetchall()
        quiet: dict[UUID, dict[str, Any] | None] = {}
        found: list[set[tuple[str, str]]] = [set() for _ in lookups]
        for tenant_id, i, kind, address, quiet_hours in rows:
            if i is None:
                quiet[tenant_id] = quiet_hours
            else:
                found[i].add((kind, address))
        # A tenant that is gone (its key stops working shortly) has nothing suppressed.
        return [Layer7(found[i], quiet.get(t)) if t in quiet else Layer7(set(), None)
                for i, (t, _) in enumerate(lookups)]

    async def put(self, tenant_id: UUID, kind: str, address: str, reason: str,
                  message_id: UUID | None = None) -> tuple[Suppression, bool]:
        """Suppress the address; the entry and whether it is new (an existing entry keeps
        its first reason and time)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO suppressions (tenant_id, kind, address, reason, message_id)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant_id, kind, address) DO NOTHING"
                f" RETURNING {_COLUMNS}", (tenant_id, kind, address, reason, message_id))
            row = await cur.fetchone()
            if row is not None:
                return Suppression(*row), True
            found = await self._get(conn, tenant_id, kind, address)
        assert found is not None  # nothing deletes it between the two statements but a race
        return found, False

    async def get(self, tenant_id: UUID, kind: str, address: str) -> Suppression | None:
        async with self.pool.connection() as conn:
            return await self._get(conn, tenant_id, kind, address)

    @staticmethod
    async def _get(conn: Any, tenant_id: UUID, kind: str, address: str) -> Suppression | None:
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM suppressions WHERE tenant_id = %s AND kind = %s"
            " AND address = %s", (tenant_id, kind, address))
        row = await cur.fetchone()
        return None if row is None else Suppression(*row)

    async def delete(self, tenant_id: UUID, kind: str, address: str,
                     reasons: tuple[str, ...] | None = None) -> bool:
        """Un-suppress; with `reasons`, only an entry put there for one of them."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM suppressions WHERE tenant_id = %s AND kind = %s AND address = %s"
                " AND (%s::text[] IS NULL OR reason = ANY(%s))",
                (tenant_id, kind, address, None if reasons is None else list(reasons),
                 None if reasons is None else list(reasons)))
            return cur.rowcount > 0

    async def page(self, tenant_id: UUID, *, kind: str | None, reason: str | None,
                   after: tuple[datetime, str, str] | None, limit: int) -> list[Suppression]:
        """Newest first; `after` is the (created_at, kind, address) of the previous page's last."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM suppressions WHERE tenant_id = %(t)s"
                " AND (%(kind)s::text IS NULL OR kind = %(kind)s)"
                " AND (%(reason)s::text IS NULL OR reason = %(reason)s)"
                " AND (%(at)s::timestamptz IS NULL"
                "      OR (created_at, kind, address) < (%(at)s, %(k)s, %(a)s))"
                " ORDER BY created_at DESC, kind DESC, address DESC LIMIT %(limit)s",
                {"t": tenant_id, "kind": kind, "reason": reason, "limit": limit,
                 "at": after[0] if after else None, "k": after[1] if after else None,
                 "a": after[2] if after else None})
            return [Suppression(*r) for r in await cur.fetchall()]

    async def from_receipts(self, account_id: UUID,
                            receipts: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Suppress the email addresses of attempts that hard-bounced or drew a complaint:
        `receipts` are (provider message id, reason). Answers the (kind, address) added."""
        if not receipts:
            return []
        async with self.pool.connection() as conn:
            cur = await conn.execute(_FROM_RECEIPTS, {
                "account": account_id, "ids": [p for p, _ in receipts],
                "reasons": [r for _, r in receipts]})
            return [(r[0], r[1]) for r in await cur.fetchall()]

    async def quiet_hours(self, tenant_ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        """The tenants' quiet-hours windows (those that have one)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, quiet_hours FROM tenants WHERE id = ANY(%s)"
                " AND quiet_hours IS NOT NULL", (tenant_ids,))
            return {r[0]: r[1] for r in await cur.fetchall()}

    async def set_quiet_hours(self, tenant_id: UUID, window: dict[str, Any] | None) -> bool:
        """Set (or with None, clear) the tenant's window; False if there is no such tenant."""
        value = None if window is None else Jsonb(window)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE tenants SET quiet_hours = %s, updated_at = now() WHERE id = %s",
                (value, tenant_id))
            return cur.rowcount > 0
