"""PostgresTenantStore: tenants, API keys and admin tokens in PostgreSQL."""

from __future__ import annotations

import hmac
import uuid
from typing import Any
from uuid import UUID

import msgspec
from psycopg.rows import args_row, class_row
from psycopg_pool import AsyncConnectionPool

from hermes.domain.tenancy import ApiKeyInfo, Principal, Tenant, TenantLimits


def _tenant(tenant_id: UUID, name: str, status: Any, created_at: Any, limits: Any) -> Tenant:
    return Tenant(id=tenant_id, name=name, status=status, created_at=created_at,
                  limits=_limits(limits))


def _limits(value: Any) -> TenantLimits:
    return msgspec.convert(value or {}, TenantLimits)


class PostgresTenantStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create_tenant(self, name: str) -> Tenant:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=args_row(_tenant))
            await cur.execute(
                "INSERT INTO tenants (id, name) VALUES (%s, %s)"
                " RETURNING id, name, status, created_at, limits",
                (uuid.uuid4(), name),
            )
            row = await cur.fetchone()
            assert row is not None
            return row

    async def get_tenant(self, tenant_id: UUID) -> Tenant | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=args_row(_tenant))
            await cur.execute(
                "SELECT id, name, status, created_at, limits FROM tenants WHERE id = %s",
                (tenant_id,))
            return await cur.fetchone()

    async def find_tenant_by_name(self, name: str) -> Tenant | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=args_row(_tenant))
            await cur.execute(
                "SELECT id, name, status, created_at, limits FROM tenants WHERE name = %s"
                " ORDER BY created_at LIMIT 1",
                (name,),
            )
            return await cur.fetchone()

    async def add_api_key(
        self, tenant_id: UUID, *, prefix: str, key_hash: bytes, mode: str, scopes: list[str]
    ) -> UUID:
        key_id = uuid.uuid4()
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO api_keys (id, tenant_id, prefix, key_hash, mode, scopes)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (key_id, tenant_id, prefix, key_hash, mode, scopes),
            )
        return key_id

    async def principal_for_key(self, key_hash: bytes) -> Principal | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT k.key_hash, k.tenant_id, t.name, k.id, k.mode, k.scopes, t.limits"
                " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
                " WHERE k.key_hash = %s AND k.revoked_at IS NULL AND t.status = 'active'",
                (key_hash,),
            )
            row = await cur.fetchone()
        # The index lookup already matched; compare again in constant time so no
        # code path branches on a partial match.
        if row is None or not hmac.compare_digest(bytes(row[0]), key_hash):
            return None
        return Principal(
            tenant_id=row[1], tenant_name=row[2], key_id=row[3], mode=row[4], scopes=tuple(row[5]),
            limits=_limits(row[6]),
        )

    async def list_tenants(self, *, limit: int, after: UUID | None) -> list[Tenant]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=args_row(_tenant))
            await cur.execute(
                "SELECT id, name, status, created_at, limits FROM tenants"
                " WHERE %(after)s::uuid IS NULL OR id > %(after)s ORDER BY id LIMIT %(limit)s",
                {"after": after, "limit": limit})
            return await cur.fetchall()

    async def update_tenant(self, tenant_id: UUID, *, name: str | None, status: str | None,
                            limits: dict[str, Any] | None = None) -> Tenant | None:
        """`limits` is merged into the stored ones (a null value removes that key, back to
        the platform default), as a JSON merge patch would."""
        patch = msgspec.json.encode(limits or {}).decode()
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=args_row(_tenant))
            await cur.execute(
                "UPDATE tenants SET name = COALESCE(%s, name), status = COALESCE(%s, status),"
                " limits = jsonb_strip_nulls(limits || %s::jsonb),"
                " updated_at = now() WHERE id = %s"
                " RETURNING id, name, status, created_at, limits",
                (name, status, patch, tenant_id))
            return await cur.fetchone()

    async def list_api_keys(self, tenant_id: UUID) -> list[ApiKeyInfo]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(ApiKeyInfo))
            await cur.execute(
                "SELECT id, prefix, mode, scopes, created_at, revoked_at FROM api_keys"
                " WHERE tenant_id = %s ORDER BY created_at, id", (tenant_id,))
            return await cur.fetchall()

    async def revoke_api_key(self, tenant_id: UUID, key_id: UUID) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())"
                " WHERE tenant_id = %s AND id = %s", (tenant_id, key_id))
            return cur.rowcount > 0

    async def add_admin_token(self, *, prefix: str, token_hash: bytes) -> UUID:
        token_id = uuid.uuid4()
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO admin_tokens (id, prefix, token_hash) VALUES (%s, %s, %s)",
                (token_id, prefix, token_hash),
            )
        return token_id

    async def admin_token_exists(self, token_hash: bytes) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT token_hash FROM admin_tokens WHERE token_hash = %s AND revoked_at IS NULL",
                (token_hash,),
            )
            row = await cur.fetchone()
        return row is not None and hmac.compare_digest(bytes(row[0]), token_hash)
