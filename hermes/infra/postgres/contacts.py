"""PostgresContactStore: the tenant's contact book."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from hermes.domain.plan import Contact

_COLUMNS = "external_id, phone, email, push_tokens, whatsapp, locale, timezone, quiet_hours"


@dataclass(frozen=True)
class ContactRecord:
    contact: Contact
    created_at: datetime
    updated_at: datetime
    # True when `put` created it (rather than replaced it).
    created: bool = False


def email_forms(key: str) -> list[str]:
    """How a stored (normalised) email may look for a key: as given, with its domain
    lowercased (how the core stores it), or all lowercase (contacts stored before)."""
    local, at, domain = key.rpartition("@")
    if not at:
        return [key.lower()]
    return list(dict.fromkeys([key, f"{local}@{domain.lower()}", key.lower()]))


def _json(value: dict[str, str] | None) -> Jsonb | None:
    return None if value is None else Jsonb(value)


class PostgresContactStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def put(self, tenant_id: UUID, contact: Contact) -> bool:
        """Create or replace; True when it was created."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"INSERT INTO contacts (tenant_id, {_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (tenant_id, external_id) DO UPDATE SET"
                " phone = EXCLUDED.phone, email = EXCLUDED.email,"
                " push_tokens = EXCLUDED.push_tokens, whatsapp = EXCLUDED.whatsapp,"
                " locale = EXCLUDED.locale, timezone = EXCLUDED.timezone,"
                " quiet_hours = EXCLUDED.quiet_hours, updated_at = now()"
                " RETURNING (xmax = 0)",
                (tenant_id, contact.external_id, contact.phone, contact.email,
                 contact.push_tokens, contact.whatsapp, contact.locale, contact.timezone,
                 _json(contact.quiet_hours)),
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
                " (external_id = %(k)s OR phone = %(k)s OR email = ANY(%(e)s))"
                " ORDER BY (external_id = %(k)s) DESC, (phone = %(k)s) DESC LIMIT 1",
                {"t": tenant_id, "k": key, "e": email_forms(key)})
            return await cur.fetchone()

    async def delete(self, tenant_id: UUID, external_id: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM contacts WHERE tenant_id = %s AND external_id = %s",
                (tenant_id, external_id))
            return cur.rowcount > 0

    async def put_record(self, tenant_id: UUID, contact: Contact) -> ContactRecord:
        """Create or replace, answering the stored contact with its times."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"INSERT INTO contacts (tenant_id, {_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (tenant_id, external_id) DO UPDATE SET"
                " phone = EXCLUDED.phone, email = EXCLUDED.email,"
                " push_tokens = EXCLUDED.push_tokens, whatsapp = EXCLUDED.whatsapp,"
                " locale = EXCLUDED.locale, timezone = EXCLUDED.timezone,"
                " quiet_hours = EXCLUDED.quiet_hours, updated_at = now()"
                " RETURNING (xmax = 0), created_at, updated_at",
                (tenant_id, contact.external_id, contact.phone, contact.email,
                 contact.push_tokens, contact.whatsapp, contact.locale, contact.timezone,
                 _json(contact.quiet_hours)),
            )
            row = await cur.fetchone()
        assert row is not None
        return ContactRecord(contact, created_at=row[1], updated_at=row[2], created=bool(row[0]))

    async def get_record(self, tenant_id: UUID, external_id: str) -> ContactRecord | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS}, created_at, updated_at FROM contacts"
                " WHERE tenant_id = %s AND external_id = %s", (tenant_id, external_id))
            r = await cur.fetchone()
        if r is None:
            return None
        return ContactRecord(Contact(external_id=r[0], phone=r[1], email=r[2],
                                     push_tokens=list(r[3]), whatsapp=r[4], locale=r[5],
                                     timezone=r[6], quiet_hours=r[7]),
                             created_at=r[8], updated_at=r[9])

    async def resolve_many(self, tenant_id: UUID, keys: list[str]) -> dict[str, Contact]:
        """`resolve` for many keys in one query (a batch of messages naming contacts)."""
        if not keys:
            return {}
        forms = [f for k in keys for f in email_forms(k)]
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Contact))
            await cur.execute(
                f"SELECT {_COLUMNS} FROM contacts WHERE tenant_id = %s AND"
                " (external_id = ANY(%s) OR phone = ANY(%s) OR email = ANY(%s))",
                (tenant_id, keys, keys, forms))
            found = await cur.fetchall()
        # The same precedence as `resolve`: external id, then phone, then email.
        by_id = {c.external_id: c for c in found}
        by_phone = {c.phone: c for c in found if c.phone}
        by_email = {c.email: c for c in found if c.email}
        out: dict[str, Contact] = {}
        for k in keys:
            c = by_id.get(k) or by_phone.get(k) or next(
                (by_email[f] for f in email_forms(k) if f in by_email), None)
            if c is not None:
                out[k] = c
        return out
