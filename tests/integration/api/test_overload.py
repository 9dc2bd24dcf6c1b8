"""Load shedding: while a worker reports work waiting longer than `max_queue_delay_s`, the
send endpoints answer 503 `service.overloaded` with Retry-After and store nothing; replays,
reads and stale reports are not refused, and Redis trouble admits everything."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from hermes.bootstrap import Container
from hermes.infra.redis.queue_delay import (
    FORGET_S,
    KEY,
    REPORT_EVERY_S,
    QueueDelayMeter,
    QueueDelayReporter,
    QueueDelayView,
    Report,
)
from tests.integration.api.conftest import Tenant, count_messages
from tests.integration.api.nats_helpers import cascade_commands

Client = AsyncTestClient[Litestar]
MSG = {"to": {"phone": "+4520123456"}, "body": "Your order has shipped"}
LIMIT_S = 10.0  # the default max_queue_delay_s


@pytest.fixture
async def reports(container: Container) -> AsyncIterator[list[str]]:
    """The fake workers' fields, removed afterwards so no other test sees them."""
    fields: list[str] = []
    yield fields
    if fields:
        await container.redis.hdel(KEY, *fields)


async def _worker_reports(container: Container, fields: list[str], waited_s: float, *,
                          age_s: float = 0.0,
                          backlog: dict[str, tuple[int, float]] | None = None) -> None:
    """A worker reports (through the real reporter) that work waited `waited_s`, and its
    consumers' backlog, `age_s` seconds ago; then the API's once-a-second view is due to
    read again."""
    field = f"test-worker-{uuid.uuid4().hex[:8]}"
    fields.append(field)
    report = Report(at=time.time() - age_s, wait=waited_s, backlog=backlog or {})
    await QueueDelayReporter(container.redis, QueueDelayMeter(), field).report(report)
    await asyncio.sleep(REPORT_EVERY_S + 0.05)


async def test_a_worker_far_behind_makes_sends_503_and_nothing_is_stored(
        client: Client, container: Container, tenant: Tenant, reports: list[str]) -> None:
    await _worker_reports(container, reports, 0.5)
    assert (await client.post("/v1/messages", json=MSG, headers=tenant.auth)).status_code == 202
    await _worker_reports(container, reports, 14.2)  # the longest fresh report counts

    refused = await client.post("/v1/messages", json=MSG, headers=tenant.auth)
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["code"] == "service.overloaded" and problem["status"] == 503
    assert refused.headers["Retry-After"] == "5" and problem["retry_after"] == 5
    assert problem["queue_delay_s"] == 14.2
    batch = await client.post("/v1/messages/batch", json={"messages": [MSG, MSG]},
                              headers=tenant.auth)
    assert batch.status_code == 503 and batch.json()["code"] == "service.overloaded"
    assert await count_messages(container, tenant) == 1  # only the message sent before

    # Reads are not refused: they are how a client follows the backlog down.
    listed = await client.get("/v1/messages", headers=tenant.auth)
    assert listed.status_code == 200 and len(listed.json()["data"]) == 1
    # Bad input still hears what is wrong with it.
    bad = await client.post("/v1/messages", json={"to": {"phone": "+45"}, "body": "x"},
                            headers=tenant.auth)
    assert bad.status_code == 422


async def test_a_refusal_spends_nothing_and_a_caught_up_worker_lifts_it(
        client: Client, container: Container, tenant: Tenant, reports: list[str]) -> None:
    await _worker_reports(container, reports, 30.0)
    keyed = {**tenant.auth, "Idempotency-Key": f"k-{uuid.uuid4()}"}
    refused = await client.post("/v1/messages", json=MSG, headers=keyed)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "20"
    assert await count_messages(container, tenant) == 0

    await container.redis.hdel(KEY, *reports)
    await _worker_reports(container, reports, 0.2)
    sent = await client.post("/v1/messages", json=MSG, headers=keyed)
    assert sent.status_code == 202, sent.text
    # The key was not spent by the refusal: the retry is a first send, not a replay.
    assert "Idempotent-Replayed" not in sent.headers
    commands = await cascade_commands(container, _shard(container, sent.json()["id"]),
                                      f"{sent.json()['id']}:start")
    assert len(commands) == 1


async def test_a_replay_is_answered_even_while_overloaded(
        client: Client, container: Container, tenant: Tenant, reports: list[str]) -> None:
    keyed = {**tenant.auth, "Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = await client.post("/v1/messages", json=MSG, headers=keyed)
    assert first.status_code == 202
    batch_key = {**tenant.auth, "Idempotency-Key": f"b-{uuid.uuid4()}"}
    first_batch = await client.post("/v1/messages/batch", json={"messages": [MSG]},
                                    headers=batch_key)
    assert first_batch.status_code == 200
    await _worker_reports(container, reports, 60.0)

    replay = await client.post("/v1/messages", json=MSG, headers=keyed)
    assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    batch_replay = await client.post("/v1/messages/batch", json={"messages": [MSG]},
                                     headers=batch_key)
    assert batch_replay.status_code == 200
    assert batch_replay.json() == first_batch.json()
    other = await client.post("/v1/messages", json=MSG, headers=tenant.auth)
    assert other.status_code == 503
    assert await count_messages(container, tenant) == 2


async def test_a_queue_growing_faster_than_it_drains_is_refused_before_anyone_waited(
        client: Client, container: Container, tenant: Tenant, reports: list[str]) -> None:
    # Nothing has waited long yet, but 9,000 jobs are pending on the delivery consumer
    # that two workers take from at 400/s each: a message sent now would wait ~11 s.
    await _worker_reports(container, reports, 0.3,
                          backlog={"delivery": (9000, 400.0), "engine-a-events": (10, 900.0)})
    await _worker_reports(container, reports, 0.4, backlog={"delivery": (8900, 400.0)})
    refused = await client.post("/v1/messages", json=MSG, headers=tenant.auth)
    assert refused.status_code == 503, refused.text
    assert refused.json()["queue_delay_s"] == 11.25
    # A third worker on the same consumer: 9,000 / 1,200 per second is 7.5 s: admitted.
    await _worker_reports(container, reports, 0.2, backlog={"delivery": (9000, 400.0)})
    assert (await client.post("/v1/messages", json=MSG, headers=tenant.auth)).status_code == 202


async def test_reports_of_stopped_workers_are_ignored_then_forgotten(
        client: Client, container: Container, tenant: Tenant, reports: list[str]) -> None:
    await _worker_reports(container, reports, 60.0, age_s=6.0)  # older than FRESH_S
    assert (await client.post("/v1/messages", json=MSG, headers=tenant.auth)).status_code == 202
    await _worker_reports(container, reports, 60.0, age_s=FORGET_S + 1)
    view = QueueDelayView(container.redis)
    assert await view.refresh() < LIMIT_S
    remaining = await container.redis.hkeys(KEY)
    assert reports[0].encode() in remaining and reports[1].encode() not in remaining


async def test_without_redis_everything_is_admitted(container: Container) -> None:
    class Down:
        async def hgetall(self, key: bytes) -> dict[bytes, bytes]:
            raise ConnectionError("redis is down")

    class Hanging:
        async def hgetall(self, key: bytes) -> dict[bytes, bytes]:
            await asyncio.sleep(60)
            return {}

    for redis in (Down(), Hanging()):
        view = QueueDelayView(redis)  # type: ignore[arg-type]
        view._delay = 60.0  # what it read before Redis went away
        view._read_at = float("-inf")
        assert await asyncio.wait_for(view.current(), 2) == 0.0


async def test_the_limit_can_be_turned_off(container: Container, reports: list[str]) -> None:
    from hermes.api import admission

    await _worker_reports(container, reports, 60.0)
    off = container.settings.with_overrides(max_queue_delay_s=0)
    view = QueueDelayView(container.redis)
    assert await view.current() == 60.0
    fake = type("C", (), {"settings": off, "queue_view": view})()
    await admission.check(fake)  # no refusal
    on = type("C", (), {"settings": container.settings, "queue_view": view})()
    with pytest.raises(admission.Overloaded):
        await admission.check(on)


def _shard(container: Container, message_id: str) -> int:
    from hermes.domain.ids import shard_of

    return shard_of(uuid.UUID(message_id), container.settings.shard_count)
