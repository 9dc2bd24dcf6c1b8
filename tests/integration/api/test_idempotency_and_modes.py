"""Idempotency keys (Stripe's semantics: 24 hours, per mode, safe under concurrency) and
the wall between a tenant's test-mode and live-mode messages."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from litestar.testing import AsyncTestClient

from hermes.bootstrap import Container
from hermes.infra.postgres.messages import IDEMPOTENCY_TTL_S, release_expired_keys
from hermes.tenancy.secrets import digest, display_prefix, new_api_key
from tests.integration.api.conftest import Tenant

MSG = {"to": {"phone": "+4520123456"}, "body": "code 1234", "cascade": ["sms"]}


async def _live_key(container: Container, tenant: Tenant) -> dict[str, str]:
    key = new_api_key("live")
    await container.tenants.add_api_key(tenant.id, prefix=display_prefix(key),
                                        key_hash=digest(key), mode="live",
                                        scopes=["send", "read", "manage"])
    return {"Authorization": f"Bearer {key}"}


async def _rows(container: Container, tenant: Tenant) -> list[tuple[uuid.UUID, str | None]]:
    async with container.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, idempotency_key FROM messages WHERE tenant_id = %s ORDER BY id",
            (tenant.id,))
        return [(r[0], r[1]) for r in await cur.fetchall()]


async def _age(container: Container, message_id: str, seconds: int) -> None:
    async with container.pool.connection() as conn:
        await conn.execute(
            "UPDATE messages SET created_at = created_at - make_interval(secs => %s)"
            " WHERE id = %s", (seconds, message_id))


async def test_concurrent_duplicates_commit_once_and_all_get_the_first_answer(
    client: AsyncTestClient, container: Container, tenant: Tenant,  # type: ignore[type-arg]
) -> None:
    headers = {**tenant.auth, "Idempotency-Key": f"order-{uuid.uuid4()}"}
    answers = await asyncio.gather(
        *(client.post("/v1/messages", json=MSG, headers=headers) for _ in range(12)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 11
    assert len(await _rows(container, tenant)) == 1


async def test_a_key_older_than_24_hours_is_free_again(
    client: AsyncTestClient, container: Container, tenant: Tenant,  # type: ignore[type-arg]
) -> None:
    headers = {**tenant.auth, "Idempotency-Key": f"order-{uuid.uuid4()}"}
    first = await client.post("/v1/messages", json=MSG, headers=headers)
    assert first.status_code == 202
    # Just inside the window the key still binds: another body is a conflict.
    await _age(container, first.json()["id"], IDEMPOTENCY_TTL_S - 60)
    other = {**MSG, "body": "code 9999"}
    conflict = await client.post("/v1/messages", json=other, headers=headers)
    assert conflict.status_code == 422 and conflict.json()["code"] == "idempotency.conflict"
    # Past it, the same key with another body is a new message, and the old one lets go.
    await _age(container, first.json()["id"], 120)
    second = await client.post("/v1/messages", json=other, headers=headers)
    assert second.status_code == 202 and "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    rows = dict(await _rows(container, tenant))
    assert rows[uuid.UUID(first.json()["id"])] is None
    assert rows[uuid.UUID(second.json()["id"])] == headers["Idempotency-Key"]
    # And a retry of the new request replays the new answer.
    again = await client.post("/v1/messages", json=other, headers=headers)
    assert again.json()["id"] == second.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"


async def test_an_expired_batch_key_commits_the_batch_anew(
    client: AsyncTestClient, container: Container, tenant: Tenant,  # type: ignore[type-arg]
) -> None:
    headers = {**tenant.auth, "Idempotency-Key": f"batch-{uuid.uuid4()}"}
    body = {"messages": [MSG, {**MSG, "body": "code 5678"}]}
    first = await client.post("/v1/messages/batch", json=body, headers=headers)
    replay = await client.post("/v1/messages/batch", json=body, headers=headers)
    assert replay.json()["results"] == first.json()["results"]
    for item in first.json()["results"]:
        await _age(container, item["id"], IDEMPOTENCY_TTL_S + 60)
    fresh = await client.post("/v1/messages/batch", json=body, headers=headers)
    assert "idempotent-replayed" not in fresh.headers
    old_ids = {i["id"] for i in first.json()["results"]}
    assert old_ids.isdisjoint(i["id"] for i in fresh.json()["results"])
    assert len(await _rows(container, tenant)) == 4


async def test_the_sweep_releases_expired_keys(
    client: AsyncTestClient, container: Container, tenant: Tenant,  # type: ignore[type-arg]
) -> None:
    old = await client.post("/v1/messages", json=MSG,
                            headers={**tenant.auth, "Idempotency-Key": "old"})
    young = await client.post("/v1/messages", json=MSG,
                              headers={**tenant.auth, "Idempotency-Key": "young"})
    await _age(container, old.json()["id"], IDEMPOTENCY_TTL_S + 1)
    assert await release_expired_keys(container.pool) >= 1
    rows = dict(await _rows(container, tenant))
    assert rows[uuid.UUID(old.json()["id"])] is None
    assert rows[uuid.UUID(young.json()["id"])] == "young"


async def test_test_and_live_keys_neither_see_nor_replay_each_others_messages(
    client: AsyncTestClient, container: Container, tenant: Tenant,  # type: ignore[type-arg]
) -> None:
    live = await _live_key(container, tenant)
    key = f"order-{uuid.uuid4()}"
    test_msg = await client.post("/v1/messages", json=MSG,
                                 headers={**tenant.auth, "Idempotency-Key": key})
    live_msg = await client.post("/v1/messages", json=MSG,
                                 headers={**live, "Idempotency-Key": key})
    assert test_msg.status_code == live_msg.status_code == 202
    assert "idempotent-replayed" not in live_msg.headers
    test_id, live_id = test_msg.json()["id"], live_msg.json()["id"]
    assert test_id != live_id

    for auth, mine, theirs in ((tenant.auth, test_id, live_id), (live, live_id, test_id)):
        assert (await client.get(f"/v1/messages/{mine}", headers=auth)).status_code == 200
        missing = await client.get(f"/v1/messages/{theirs}", headers=auth)
        assert missing.status_code == 404 and missing.json()["code"] == "request.not_found"
        listed = (await client.get("/v1/messages", headers=auth)).json()["data"]
        assert [m["id"] for m in listed] == [mine]
        cancel = await client.post(f"/v1/messages/{theirs}/cancel", headers=auth)
        assert cancel.status_code == 404


async def test_a_replayed_scheduled_message_answers_with_its_send_at(
    client: AsyncTestClient, tenant: Tenant,  # type: ignore[type-arg]
) -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    headers = {**tenant.auth, "Idempotency-Key": f"later-{uuid.uuid4()}"}
    body = {**MSG, "send_at": later.isoformat()}
    first = await client.post("/v1/messages", json=body, headers=headers)
    again = await client.post("/v1/messages", json=body, headers=headers)
    assert first.json()["status"] == "scheduled"
    sent_at = datetime.fromisoformat(first.json()["send_at"].replace("Z", "+00:00"))
    assert sent_at == later
    assert first.json() == again.json()
    assert (await client.post("/v1/messages", json=MSG, headers=tenant.auth)).json().get(
        "send_at") is None
