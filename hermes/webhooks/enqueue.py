"""From cascade events to pending webhook deliveries, in the caller's transaction.

`enqueue` queues them for any dispatcher (woken by a notification on commit).
`enqueue_claimed` queues them already claimed by the caller's own dispatcher, which
sends them once the caller has committed (`WebhookDispatcher.offer`): that saves each
delivery its claim (an update, a query and the notification's round). The claim is the
same lease a dispatcher takes, so if the claims are never sent (a crash, a shutdown),
the deliveries go out from the database when the lease runs out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection

from hermes.infra.postgres.arrays import literal as array
from hermes.webhooks.delivery import Claimed
from hermes.webhooks.events import WebhookEvent, body_of

# Dispatchers LISTEN here; the notification is delivered when the caller commits.
NOTIFY_CHANNEL = "hermes_webhooks"

# One statement for the whole batch: every event is joined to every enabled endpoint
# of its tenant. clock_timestamp() rather than now() so deliveries made in one
# transaction list in the order their events were given.
_INSERT = """
INSERT INTO webhook_deliveries
    (id, endpoint_id, tenant_id, message_id, event_type, payload, created_at, next_attempt_at)
SELECT gen_random_uuid(), e.id, ev.tenant_id, ev.message_id, ev.type, ev.body::jsonb,
       clock_timestamp(), now()
FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[]) WITH ORDINALITY
     AS ev(tenant_id, message_id, type, body, n)
JOIN webhook_endpoints e ON e.tenant_id = ev.tenant_id AND e.enabled
ORDER BY ev.n, e.id
"""


# The same, claimed: the first attempt counted and the lease taken, as `_CLAIM` does.
_INSERT_CLAIMED = """
WITH d AS (
    INSERT INTO webhook_deliveries
        (id, endpoint_id, tenant_id, message_id, event_type, payload, created_at,
         next_attempt_at, attempts)
    SELECT gen_random_uuid(), e.id, ev.tenant_id, ev.message_id, ev.type, ev.body::jsonb,
           clock_timestamp(), %s, 1
    FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[]) WITH ORDINALITY
         AS ev(tenant_id, message_id, type, body, n)
    JOIN webhook_endpoints e ON e.tenant_id = ev.tenant_id AND e.enabled
    ORDER BY ev.n, e.id
    RETURNING id, attempts, payload, endpoint_id
)
SELECT d.id, d.attempts, d.payload::text, e.id, e.url, e.secret, e.enabled
FROM d JOIN webhook_endpoints e ON e.id = d.endpoint_id
"""


def _columns(events: Sequence[WebhookEvent], now: datetime | None) -> tuple[str, ...]:
    now = now or datetime.now(UTC)
    tenants: list[UUID] = []
    messages: list[UUID] = []
    types: list[str] = []
    bodies: list[str] = []
    for event in events:
        tenants.append(event.tenant_id)
        messages.append(event.message_id)
        types.append(event.type)
        bodies.append(msgspec.json.encode(body_of(event, now)).decode())
    return array(tenants), array(messages), array(types), array(bodies)


async def enqueue(
    conn: AsyncConnection[Any], events: Sequence[WebhookEvent], *, now: datetime | None = None
) -> int:
    """Queue one delivery per event and enabled endpoint of the event's tenant.

    Runs on `conn` without committing: the deliveries become visible to the
    dispatcher when the caller's transaction commits, together with the state
    change they report. Returns the number of deliveries queued.
    """
    if not events:
        return 0
    cur = await conn.execute(_INSERT, _columns(events, now))
    queued = max(cur.rowcount, 0)
    if queued:
        await conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
    return queued


async def enqueue_claimed(
    conn: AsyncConnection[Any], events: Sequence[WebhookEvent], lease_until: datetime, *,
    now: datetime | None = None
) -> list[Claimed]:
    """Queue the deliveries as `enqueue` does, claimed until `lease_until`; the claims.

    Nobody is notified: the caller hands the claims to its dispatcher after its commit
    (and must not, if the transaction rolls back)."""
    if not events:
        return []
    cur = await conn.execute(_INSERT_CLAIMED, (lease_until, *_columns(events, now)))
    return [Claimed.from_row(r) for r in await cur.fetchall()]
