"""Validation layer 7's lookups: the lookups of several tenants in one query, each still
answered with exactly its own tenant's suppressions and quiet hours."""

from __future__ import annotations

import json
import uuid

from hermes.bootstrap import Container
from hermes.infra.postgres.suppressions import PostgresSuppressionStore


async def test_lookups_of_several_tenants_share_a_query_and_are_kept_apart(
        container: Container) -> None:
    a = await container.tenants.create_tenant(f"l7-{uuid.uuid4().hex[:6]}")
    b = await container.tenants.create_tenant(f"l7-{uuid.uuid4().hex[:6]}")
    store = PostgresSuppressionStore(container.pool)
    await store.put(a.id, "phone", "+4520123456", "manual")
    await store.put(a.id, "email", "gone@example.com", "hard_bounce")
    await store.put(b.id, "email", "gone@example.com", "complaint")
    window = {"start": "21:00", "end": "08:00", "timezone": "Europe/Copenhagen"}
    async with container.pool.connection() as conn:
        await conn.execute("UPDATE tenants SET quiet_hours = %s::jsonb WHERE id = %s",
                           (json.dumps(window), b.id))

    asked = [("phone", "+4520123456"), ("email", "gone@example.com"), ("email", "ok@example.com")]
    results = await store.layer7_many([(t, asked) for t in [a.id, b.id, uuid.uuid4()] * 10])
    for r in results[0::3]:  # tenant A: both of its entries, no quiet hours
        assert r.suppressed == {("phone", "+4520123456"), ("email", "gone@example.com")}
        assert r.quiet_hours is None
    for r in results[1::3]:  # tenant B: only its own entry, and its window
        assert r.suppressed == {("email", "gone@example.com")}
        assert r.quiet_hours == window
    for r in results[2::3]:  # no such tenant: nothing
        assert r.suppressed == set() and r.quiet_hours is None
