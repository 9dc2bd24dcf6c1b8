"""PostgresContactStore: the tenant's contact book."""

from __future__ import annotations

from uuid import UUID

from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from hermes.domain.plan import Contact

_COLUMNS = "external_id, phone, email, push_tokens, whatsapp, locale, timezone"


class PostgresContactStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def put(self, tenant_id: UUID, contact: Contact) -> bool:
        """Create or replace; True when it was created."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"INSERT INTO contacts (tenant_id, {_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (tenant_id, external_id) DO UPDATE SET"
                " phone = EXCLUDED.phone, email = EXCLUDED.email,"
                " push_tokens = EXCLUDED.push_tokens, whatsapp = EXCLUDED.whatsapp,"
                " locale = EXCLUDED.locale, timezone = EXCLUDED.timezone, updated_at = now()"
                " RETURNING (xmax = 0)",
                (tenant_id, contact.external_id, contact.phone, contact.email,
                 contact.push_tokens, contact.whatsapp, contact.locale, contact.timezone),
            )
            row = await cur.fetchone()
        return bool(row and row[0])

    async def get(self, tenant_id: UUID, external_id: str) -> Contact | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Contact))
            await cur.execute(
                f"SELECT {_COLUMNS} FROM contacts WHERE tenant_id = %s AND external_id = %s",
                (tenant_id, external_id))
            return await cur.fetchone()

    async def resolve(self, tenant_id: UUID, key: str) -> Contact | None:
        """A contact named by external id, else by phone, else by email."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Contact))
            await cur.execute(
                f"SELECT {_COLUMNS} FROM contacts WHERE tenant_id = %(t)s AND"
                " (external_id = %(k)s OR phone = %(k)s OR email = lower(%(k)s))"
                " ORDER BY (external_id = %(k)s) DESC, (phone = %(k)s) DESC LIMIT 1",
                {"t": tenant_id, "k": key})
            return await cur.fetchone()

    async def delete(self, tenant_id: UUID, external_id: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM contacts WHERE tenant_id = %s AND external_id = %s",
                (tenant_id, external_id))
            return cur.rowcount > 0
