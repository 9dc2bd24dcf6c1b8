"""From the engine's `notify` and `finish` actions to tenant webhook events.

The final event carries the whole cascade: every step tried, its provider,
attempt statuses and times, segments and cost, read from the attempts table
in the same transaction that records the outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from psycopg import AsyncConnection

from hermes.cascade.context import MessageContext
from hermes.cascade.store import Batch
from hermes.webhooks.delivery import Claimed
from hermes.webhooks.enqueue import enqueue, enqueue_claimed
from hermes.webhooks.events import WebhookEvent


class Handoff(Protocol):
    """The dispatcher in this process (`hermes.webhooks.WebhookDispatcher`)."""

    def lease_until(self) -> datetime | None: ...

    def offer(self, claims: Sequence[Claimed]) -> None: ...

_TYPES = {
    "sent": "message.sent",
    "delivered": "message.delivered",
    "read": "message.read",
    "late_read": "message.read",
    "fallback": "message.fallback",
    "late_delivered": "message.late_delivered",
    "finished": "message.finished",
}


def collect(batch: Batch, ctx: MessageContext, action: dict[str, Any], now_ms: int) -> None:
    """The engine's notice sink: queue the webhook event on the batch being persisted."""
    if action["type"] == "finish":
        notice, outcome, step = "finished", action["outcome"], None
    else:
        notice, outcome, step = action["notice"], action.get("outcome"), action.get("step")
    if notice == "finished" and action["type"] == "notify":
        return  # the finish action itself reports the outcome, with the whole cascade
    kind = _TYPES.get(notice)
    if kind is None:
        return
    payload: dict[str, Any] = {}
    if step is not None and 0 <= step < len(ctx.spec.steps):
        payload["step"] = step
        payload["channel"] = ctx.spec.steps[step].channel
    if outcome is not None:
        payload["outcome"] = outcome
    if notice.startswith("late_"):
        payload["late"] = True
    if ctx.metadata:
        payload["metadata"] = ctx.metadata
    batch.notices.append(WebhookEvent(
        tenant_id=ctx.tenant_id, message_id=ctx.id, type=kind,  # type: ignore[arg-type]
        payload=payload, at=datetime.fromtimestamp(now_ms / 1000, tz=UTC)))


def writer(handoff: Handoff | None) -> Callable[[AsyncConnection[Any], Batch], Awaitable[None]]:
    """`write`, with the deliveries claimed for `handoff` while it has room for them."""
    async def write_to(conn: AsyncConnection[Any], batch: Batch) -> None:
        await write(conn, batch, handoff)
    return write_to


async def write(conn: AsyncConnection[Any], batch: Batch, handoff: Handoff | None = None
                ) -> None:
    """Enqueue the batch's webhook events, completing final ones with their cascade.

    With a `handoff` that has room, the deliveries are inserted claimed for it and
    offered to it once the batch commits; otherwise any dispatcher is notified."""
    if not batch.notices:
        return
    finished = [e.message_id for e in batch.notices if e.type == "message.finished"]
    cascades = await _cascades(conn, finished) if finished else {}
    events = []
    for e in batch.notices:
        if e.type == "message.finished":
            e = WebhookEvent(tenant_id=e.tenant_id, message_id=e.message_id, type=e.type,
                             payload={**e.payload, "attempts": cascades.get(e.message_id, [])},
                             at=e.at)
        events.append(e)
    lease_until = None if handoff is None else handoff.lease_until()
    if handoff is None or lease_until is None:
        await enqueue(conn, events)
        return
    claims = await enqueue_claimed(conn, events, lease_until)
    batch.after_commit.append(lambda: handoff.offer(claims))


Cascades = dict[UUID, list[dict[str, Any]]]


async def _cascades(conn: AsyncConnection[Any], ids: list[UUID]) -> Cascades:
    cur = await conn.execute(
        "SELECT a.message_id, a.step, a.attempt, a.channel, a.provider_account_id, a.adapter,"
        " a.status, a.provider_message_id, a.error_code, a.segments, a.cost, a.sent_at,"
        " a.answered_at, a.receipt_at, p.name"
        " FROM attempts a LEFT JOIN provider_accounts p ON p.id = a.provider_account_id"
        " WHERE a.message_id = ANY(%s) ORDER BY a.message_id, a.attempt", (ids,))
    out: Cascades = {}
    for (mid, step, attempt, channel, account, adapter, status, pmid, code, segments, cost,
         sent, answered, receipt, name) in await cur.fetchall():
        item = {"step": step, "attempt": attempt, "channel": channel,
                "provider_account_id": str(account) if account else None,
                "provider": name or adapter, "status": status,
                "provider_message_id": pmid, "error_code": code, "segments": segments,
                "cost": str(cost) if cost is not None else None,
                "sent_at": _iso(sent), "answered_at": _iso(answered),
                "receipt_at": _iso(receipt)}
        out.setdefault(mid, []).append({k: v for k, v in item.items() if v is not None})
    return out


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
