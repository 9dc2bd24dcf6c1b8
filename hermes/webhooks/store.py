"""PostgresWebhookStore: a tenant's endpoints and the log of their deliveries."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import msgspec
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from hermes.domain.errors import Code, FieldError, HermesError
from hermes.webhooks.signing import new_secret

MAX_ENDPOINTS = 16
DELETED = "deleted"  # disabled_reason of an endpoint its tenant deleted

DeliveryStatus = Literal["pending", "delivered", "failed", "abandoned"]
DELIVERY_STATUSES: tuple[str, ...] = ("pending", "delivered", "failed", "abandoned")


class Endpoint(msgspec.Struct, frozen=True):
    id: UUID
    url: str
    enabled: bool
    disabled_reason: str | None
    created_at: datetime


class Delivery(msgspec.Struct, frozen=True):
    id: UUID
    endpoint_id: UUID
    message_id: UUID | None
    event_type: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(msgspec.Struct, frozen=True):
    data: list[Delivery]
    next_cursor: str | None


_ENDPOINT = "id, url, enabled, disabled_reason, created_at"
_DELIVERY = ("id, endpoint_id, message_id, event_type, status, attempts, last_status,"
             " last_error, CASE WHEN status = 'pending' THEN next_attempt_at END"
             " AS next_attempt_at, created_at, delivered_at")


def encode_cursor(d: Delivery) -> str:
    raw = f"{d.created_at.isoformat()}|{d.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, ident = raw.partition("|")
        return datetime.fromisoformat(at), UUID(ident)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        detail = "the cursor is not one this API returned"
        raise HermesError(Code.REQUEST_INVALID, detail, errors=[
            FieldError(code=Code.REQUEST_INVALID, field="cursor", detail=detail)]) from None


class PostgresWebhookStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create_endpoint(self, tenant_id: UUID, url: str) -> tuple[Endpoint, str]:
        """A new enabled endpoint and its signing secret (which is never returned again)."""
        secret = new_secret()
        async with self.pool.connection() as conn, conn.transaction():
            # The tenant's row lock serialises concurrent creations against the limit.
            await conn.execute("SELECT 1 FROM tenants WHERE id = %s FOR UPDATE", (tenant_id,))
            cur = await conn.execute(
                "SELECT count(*) FROM webhook_endpoints"
                " WHERE tenant_id = %s AND disabled_reason IS DISTINCT FROM %s",
                (tenant_id, DELETED))
            row = await cur.fetchone()
            if row is not None and row[0] >= MAX_ENDPOINTS:
                raise HermesError(Code.WEBHOOK_TOO_MANY_ENDPOINTS,
                                  f"a tenant may have at most {MAX_ENDPOINTS} endpoints;"
                                  " delete one first")
            ecur = conn.cursor(row_factory=class_row(Endpoint))
            await ecur.execute(
                f"INSERT INTO webhook_endpoints (id, tenant_id, url, secret)"
                f" VALUES (%s, %s, %s, %s) RETURNING {_ENDPOINT}",
                (uuid.uuid4(), tenant_id, url, secret))
            endpoint = await ecur.fetchone()
        assert endpoint is not None
        return endpoint, secret

    async def list_endpoints(self, tenant_id: UUID) -> list[Endpoint]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Endpoint))
            await cur.execute(
                f"SELECT {_ENDPOINT} FROM webhook_endpoints"
                " WHERE tenant_id = %s AND disabled_reason IS DISTINCT FROM %s"
                " ORDER BY created_at, id", (tenant_id, DELETED))
            return await cur.fetchall()

    async def get_endpoint(self, tenant_id: UUID, endpoint_id: UUID) -> Endpoint | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Endpoint))
            await cur.execute(
                f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE id = %s AND tenant_id = %s"
                " AND disabled_reason IS DISTINCT FROM %s", (endpoint_id, tenant_id, DELETED))
            return await cur.fetchone()

    async def delete_endpoint(self, tenant_id: UUID, endpoint_id: UUID) -> bool:
        """Stop all deliveries to the endpoint. The row stays, so the delivery log keeps it."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE webhook_endpoints SET enabled = false, disabled_reason = %s"
                " WHERE id = %s AND tenant_id = %s AND disabled_reason IS DISTINCT FROM %s",
                (DELETED, endpoint_id, tenant_id, DELETED))
            if cur.rowcount == 0:
                return False
            await conn.execute(
                "UPDATE webhook_deliveries SET status = 'abandoned',"
                " last_error = 'endpoint deleted' WHERE endpoint_id = %s AND status = 'pending'",
                (endpoint_id,))
        return True

    async def list_deliveries(
        self,
        tenant_id: UUID,
        *,
        limit: int,
        cursor: str | None = None,
        status: str | None = None,
        message_id: UUID | None = None,
    ) -> DeliveryPage:
        """Newest first; `next_cursor` continues after the last item when there are more."""
        where = ["tenant_id = %(t)s"]
        params: dict[str, Any] = {"t": tenant_id, "n": limit + 1}
        if status is not None:
            where.append("status = %(s)s")
            params["s"] = status
        if message_id is not None:
            where.append("message_id = %(m)s")
            params["m"] = message_id
        if cursor is not None:
            params["ca"], params["ci"] = decode_cursor(cursor)
            where.append("(created_at, id) < (%(ca)s, %(ci)s)")
        sql = (f"SELECT {_DELIVERY} FROM webhook_deliveries WHERE {' AND '.join(where)}"
               " ORDER BY created_at DESC, id DESC LIMIT %(n)s")
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Delivery))
            await cur.execute(sql, params)
            rows = await cur.fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return DeliveryPage(data=rows, next_cursor=encode_cursor(rows[-1]) if more else None)
