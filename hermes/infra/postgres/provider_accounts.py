"""`provider_accounts` as the API and `hermes secrets rotate` see them.

The API never reads the credentials column: listings show `credentials_hint` and
`credential_keys`, written with the sealed value. Routing reads it through
`hermes.providers.accounts`; both go through `hermes.providers.secrets`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from hermes.providers.secrets import CredentialsUnreadable, KeyRing, needs_reseal, seal, unseal

log = logging.getLogger("hermes.accounts")


class ProviderAccountRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    tenant_id: UUID | None
    name: str
    channel: str
    adapter: str
    adapter_version: str | None
    mode: str
    credentials_hint: str | None
    credential_keys: list[str]
    config: dict[str, Any]
    base_url: str | None
    priority: int
    weight: int
    cost: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Owner:
    """Whose accounts a call may touch: a tenant's of one mode, or the platform's (None)."""

    tenant_id: UUID | None
    mode: str | None = None

    def where(self) -> tuple[sql.Composable, list[Any]]:
        if self.tenant_id is None:
            clause: sql.Composable = sql.SQL("tenant_id IS NULL")
            params: list[Any] = []
        else:
            clause, params = sql.SQL("tenant_id = %s"), [self.tenant_id]
        if self.mode is not None:
            clause = sql.SQL("{} AND mode = %s").format(clause)
            params.append(self.mode)
        return clause, params


@dataclass(frozen=True)
class RotationReport:
    reencrypted: int = 0
    already_current: int = 0
    unreadable: int = 0


_COLUMNS = sql.SQL("""id, tenant_id, name, channel, adapter, adapter_version, mode,
    credentials_hint, credential_keys, config, base_url, priority, weight, cost, status,
    created_at, updated_at""")
# Columns an update may set; everything else about an account is fixed at creation.
UPDATABLE = ("name", "adapter_version", "config", "base_url", "priority", "weight", "cost",
             "status", "credentials", "credentials_hint", "credential_keys")
_JSONB = {"config", "cost"}


def _record(row: tuple[Any, ...]) -> ProviderAccountRecord:
    names = ProviderAccountRecord.__struct_fields__
    return ProviderAccountRecord(**dict(zip(names, row, strict=True)))


def _param(column: str, value: Any) -> Any:
    return msgspec.json.encode(value).decode() if column in _JSONB else value


class PostgresProviderAccountStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create(self, values: dict[str, Any]) -> ProviderAccountRecord:
        """Insert an account; `values` holds every column but the timestamps and status."""
        columns = list(values)
        query = sql.SQL("INSERT INTO provider_accounts ({}) VALUES ({}) RETURNING {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.SQL("%s::jsonb" if c in _JSONB else "%s") for c in columns),
            _COLUMNS)
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, [_param(c, values[c]) for c in columns])
            row = await cur.fetchone()
        assert row is not None
        return _record(row)

    async def get(self, owner: Owner, account_id: UUID) -> ProviderAccountRecord | None:
        where, params = owner.where()
        query = sql.SQL("SELECT {} FROM provider_accounts WHERE id = %s AND {}").format(
            _COLUMNS, where)
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, [account_id, *params])
            row = await cur.fetchone()
        return None if row is None else _record(row)

    async def list(self, owner: Owner, *, limit: int, after: UUID | None = None,
                   channel: str | None = None,
                   status: str | None = None) -> list[ProviderAccountRecord]:
        where, params = owner.where()
        for column, value in (("id >", after), ("channel =", channel), ("status =", status)):
            if value is not None:
                where = sql.SQL("{} AND {} %s").format(where, sql.SQL(column))
                params.append(value)
        query = sql.SQL("SELECT {} FROM provider_accounts WHERE {} ORDER BY id LIMIT %s").format(
            _COLUMNS, where)
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, [*params, limit])
            rows = await cur.fetchall()
        return [_record(r) for r in rows]

    async def update(self, owner: Owner, account_id: UUID,
                     changes: dict[str, Any]) -> ProviderAccountRecord | None:
        """Set `changes` (columns of UPDATABLE); None when the owner has no such account."""
        assert changes and set(changes) <= set(UPDATABLE), changes
        where, params = owner.where()
        sets = sql.SQL(", ").join(
            sql.SQL("{} = %s::jsonb" if c in _JSONB else "{} = %s").format(sql.Identifier(c))
            for c in changes)
        query = sql.SQL("UPDATE provider_accounts SET {}, updated_at = now() "
                        "WHERE id = %s AND {} RETURNING {}").format(sets, where, _COLUMNS)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                query, [*(_param(c, v) for c, v in changes.items()), account_id, *params])
            row = await cur.fetchone()
        return None if row is None else _record(row)

    async def reencrypt(self, keyring: KeyRing, *, batch: int = 200) -> RotationReport:
        """Seal every account's credentials under the active key, `batch` rows per
        transaction. Rows already under it are left alone, so a second run (or a run
        interrupted and started again) changes nothing more."""
        report = RotationReport()
        after: UUID | None = None
        while True:
            async with self.pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    "SELECT id, credentials FROM provider_accounts WHERE %s::uuid IS NULL "
                    "OR id > %s ORDER BY id LIMIT %s FOR UPDATE", (after, after, batch))
                rows = await cur.fetchall()
                updates = []
                for account_id, stored in rows:
                    stored = bytes(stored)
                    if not needs_reseal(stored, keyring):
                        report = _add(report, already_current=1)
                        continue
                    try:
                        credentials = unseal(stored, account_id, keyring)
                    except CredentialsUnreadable as exc:
                        log.error("provider account %s: %s: %s; left as it is", account_id,
                                  exc.code, exc.detail)
                        report = _add(report, unreadable=1)
                        continue
                    updates.append((seal(credentials, account_id, keyring), account_id))
                if updates:
                    async with conn.cursor() as c:
                        await c.executemany(
                            "UPDATE provider_accounts SET credentials = %s WHERE id = %s",
                            updates)
                    report = _add(report, reencrypted=len(updates))
            if len(rows) < batch:
                return report
            after = rows[-1][0]


def _add(report: RotationReport, **counts: int) -> RotationReport:
    return RotationReport(**{k: getattr(report, k) + counts.get(k, 0)
                             for k in ("reencrypted", "already_current", "unreadable")})
