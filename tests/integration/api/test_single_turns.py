"""`POST /v1/messages` requests in flight together go through layers 3-9 and the commit as
one turn (`hermes.api.singles`), and each still gets the answer it would have had alone.

The test client hands the app one request at a time, so these tests send through
`Singles` itself, against the real PostgreSQL, Redis and NATS: requests started together
there are one turn.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import msgspec
import psycopg
import pytest

from hermes.api import admission
from hermes.api import limits as layer8
from hermes.api.ingest import decode_create, now_ms, request_hash
from hermes.api.singles import Answered, Singles
from hermes.bootstrap import Container
from hermes.domain.errors import HermesError
from hermes.domain.tenancy import Principal
from hermes.infra.nats.streams import ensure_streams
from hermes.infra.postgres.suppressions import PostgresSuppressionStore
from hermes.infra.redis.queue_delay import (
    KEY,
    REPORT_EVERY_S,
    QueueDelayMeter,
    QueueDelayReporter,
    Report,
)
from hermes.tenancy.secrets import digest
from tests.integration.api.conftest import Tenant, count_messages

MSG = {"to": {"phone": "+4520123456"}, "body": "Your order has shipped"}
NO_ROUTE = {"to": {"phone": "+4520123456"}, "body": "x", "cascade": ["fax"]}


async def _principal(container: Container, tenant: Tenant) -> Principal:
    principal = await container.tenants.principal_for_key(digest(tenant.key))
    assert principal is not None
    return principal


async def _limited(container: Container, tenant: Tenant, *, burst: int) -> Principal:
    """The tenant's principal, with a bucket of `burst` that all but never refills (set
    before its key is first used: principals are cached)."""
    assert await container.tenants.update_tenant(tenant.id, name=None, status=None,
                                                 limits={"rate_per_s": 0.01, "burst": burst})
    return await _principal(container, tenant)


async def _send_together(singles: Singles,
                         sends: list[tuple[Principal, dict[str, Any], str | None]]
                         ) -> list[Answered | BaseException]:
    async def one(principal: Principal, body: dict[str, Any], key: str | None) -> Answered:
        raw = msgspec.json.encode(body)
        return await singles.send(principal, key, request_hash(raw) if key else None,
                                  decode_create(raw), None, now_ms())

    return await asyncio.gather(*(one(*s) for s in sends), return_exceptions=True)


@pytest.fixture
async def singles(container: Container, clean_streams: None) -> Any:
    await ensure_streams(container.nats.jetstream())
    s = Singles(container)
    yield s
    await s.close()


async def test_requests_in_flight_together_commit_together_and_each_gets_its_own_answer(
        singles: Singles, container: Container, tenant: Tenant, other_tenant: Tenant) -> None:
    mine, theirs = await _principal(container, tenant), await _principal(container, other_tenant)
    batches = container.writer.batches
    answers = await _send_together(singles, [(mine, MSG, None)] * 5 + [(mine, NO_ROUTE, None)]
                                   + [(theirs, MSG, None)] * 4)
    bad = answers.pop(5)
    assert isinstance(bad, HermesError) and bad.code == "cascade.unknown_channel"
    assert [f.field for f in bad.errors] == ["steps[0].channel"]
    accepted = [a for a in answers if not isinstance(a, BaseException)]
    assert len(accepted) == 9, answers
    assert len({a.id for a, _ in accepted}) == 9
    assert {a.status for a, _ in accepted} == {"queued"}
    assert await count_messages(container, tenant) == 5
    assert await count_messages(container, other_tenant) == 4
    assert container.writer.batches - batches == 1  # one commit for the turn


async def test_a_turn_the_bucket_cannot_cover_falls_back_to_one_take_each(
        singles: Singles, container: Container, tenant: Tenant) -> None:
    principal = await _limited(container, tenant, burst=3)
    answers = await _send_together(singles, [(principal, MSG, None)] * 5)
    refused = [a for a in answers if isinstance(a, BaseException)]
    assert len(refused) == 2 and all(isinstance(r, layer8.Refused) for r in refused)
    # The three that passed took the bucket's three tokens, one each, in arrival order.
    remaining = [h["RateLimit"] for a in answers if not isinstance(a, BaseException)
                 for h in [a[1]]]
    assert [r.split(";")[1] for r in remaining] == ["r=2", "r=1", "r=0"]
    assert await count_messages(container, tenant) == 3


async def test_a_tenant_the_bucket_covers_takes_its_turn_in_one_go(
        singles: Singles, container: Container, tenant: Tenant) -> None:
    principal = await _limited(container, tenant, burst=10)
    answers = await _send_together(singles, [(principal, MSG, None)] * 4)
    assert not any(isinstance(a, BaseException) for a in answers), answers
    # All four see the state after the one take of four.
    assert {a[1]["RateLimit"].split(";")[1] for a in answers
            if not isinstance(a, BaseException)} == {"r=6"}


async def test_duplicates_in_one_turn_commit_once_and_the_replays_cost_nothing(
        singles: Singles, container: Container, tenant: Tenant) -> None:
    principal = await _limited(container, tenant, burst=10)
    answers = await _send_together(singles, [(principal, MSG, "order-1")] * 3
                                   + [(principal, {**MSG, "body": "other"}, "order-1")])
    conflict = answers.pop()
    assert isinstance(conflict, HermesError) and conflict.code == "idempotency.conflict"
    done = [a for a in answers if not isinstance(a, BaseException)]
    assert len(done) == 3 and len({a.id for a, _ in done}) == 1
    assert sorted(a.replayed for a, _ in done) == [False, True, True]
    assert await count_messages(container, tenant) == 1
    # Four tokens were taken for the turn; the two replays and the conflict gave theirs back.
    after = await layer8.give_back(container, principal, 0)
    assert after is not None and after.remaining == 9


async def test_a_request_layer_7_refuses_gives_its_token_back(
        singles: Singles, container: Container, tenant: Tenant) -> None:
    # Layer 8 takes for the turn while layer 7 looks its addresses up; the request layer 7
    # then refuses must not cost its tenant a message.
    principal = await _limited(container, tenant, burst=10)
    await PostgresSuppressionStore(container.pool).put(tenant.id, "phone", "+4520999999",
                                                       "manual")
    blocked = {"to": {"phone": "+4520999999"}, "body": "x", "cascade": ["sms"]}
    answers = await _send_together(singles, [(principal, MSG, None)] * 3
                                   + [(principal, blocked, None)])
    refused = answers.pop()
    assert isinstance(refused, HermesError) and refused.code == "compliance.suppressed"
    assert not any(isinstance(a, BaseException) for a in answers), answers
    after = await layer8.give_back(container, principal, 0)
    assert after is not None and after.remaining == 7
    assert await count_messages(container, tenant) == 3


async def test_an_overloaded_turn_stores_nothing_and_spends_no_token(
        singles: Singles, container: Container, tenant: Tenant) -> None:
    principal = await _limited(container, tenant, burst=10)
    field = f"test-worker-{uuid.uuid4().hex[:8]}"
    await QueueDelayReporter(container.redis, QueueDelayMeter(), field).report(
        Report(at=time.time(), wait=30.0, backlog={}))
    try:
        await asyncio.sleep(REPORT_EVERY_S + 0.05)  # the view reads again
        answers = await _send_together(singles, [(principal, MSG, None)] * 3)
    finally:
        await container.redis.hdel(KEY, field)
    assert all(isinstance(a, admission.Overloaded) for a in answers), answers
    after = await layer8.give_back(container, principal, 0)
    assert after is not None and after.remaining == 10
    assert await count_messages(container, tenant) == 0


async def test_a_failed_commit_fails_the_turn_and_gives_every_token_back(
        singles: Singles, container: Container, tenant: Tenant,
        monkeypatch: pytest.MonkeyPatch) -> None:
    principal = await _limited(container, tenant, burst=10)

    async def down(rows: Any) -> Any:
        raise psycopg.OperationalError("the server closed the connection")

    monkeypatch.setattr(container.writer, "insert_many", down)
    answers = await _send_together(singles, [(principal, MSG, None)] * 3)
    assert all(isinstance(a, psycopg.OperationalError) for a in answers), answers
    after = await layer8.give_back(container, principal, 0)
    assert after is not None and after.remaining == 10
