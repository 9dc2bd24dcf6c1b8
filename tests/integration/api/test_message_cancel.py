"""`POST /v1/messages/{id}/cancel`: a CancelCommand for the engine, or 409 once final."""

from __future__ import annotations

import uuid

import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from hermes.bootstrap import Container
from hermes.domain.jobs import COMMAND_DECODER, CancelCommand
from tests.integration.api.conftest import Tenant, add_key
from tests.integration.api.nats_helpers import cascade_commands

Client = AsyncTestClient[Litestar]


async def _send(client: Client, tenant: Tenant) -> uuid.UUID:
    resp = await client.post("/v1/messages", headers=tenant.auth,
                             json={"to": {"phone": "+4520123456"}, "body": "hi"})
    assert resp.status_code == 202, resp.text
    return uuid.UUID(resp.json()["id"])


async def _shard(container: Container, mid: uuid.UUID) -> int:
    async with container.pool.connection() as conn:
        cur = await conn.execute("SELECT shard FROM messages WHERE id = %s", (mid,))
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_cancel_publishes_a_cancel_command(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    mid = await _send(client, tenant)
    resp = await client.post(f"/v1/messages/{mid}/cancel", headers=tenant.auth)
    assert resp.status_code == 202, resp.text
    assert resp.json()["id"] == str(mid) and resp.json()["status"] == "queued"
    # Asking twice is harmless: JetStream drops the repeat by its Nats-Msg-Id.
    again = await client.post(f"/v1/messages/{mid}/cancel", headers=tenant.auth)
    assert again.status_code == 202

    found = await cascade_commands(container, await _shard(container, mid), f"{mid}:cancel")
    assert len(found) == 1
    command = COMMAND_DECODER.decode(msgspec.json.encode(found[0]))
    assert command == CancelCommand(id=mid, tenant_id=tenant.id)

    detail = (await client.get(f"/v1/messages/{mid}", headers=tenant.auth)).json()
    assert [e["kind"] for e in detail["events"]] == ["accepted", "cancel_requested"]


async def test_a_final_message_cannot_be_cancelled(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    mid = await _send(client, tenant)
    async with container.pool.connection() as conn:
        await conn.execute("UPDATE messages SET status = 'delivered', outcome = 'delivered',"
                           " finished_at = now(), next_deadline = NULL WHERE id = %s", (mid,))
    resp = await client.post(f"/v1/messages/{mid}/cancel", headers=tenant.auth)
    assert resp.status_code == 409, resp.text
    problem = resp.json()
    assert problem["code"] == "message.already_final" and problem["status"] == 409
    assert problem["message_status"] == "delivered" and "delivered" in problem["detail"]
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert await cascade_commands(container, await _shard(container, mid), f"{mid}:cancel",
                                  tries=2) == []
    detail = (await client.get(f"/v1/messages/{mid}", headers=tenant.auth)).json()
    assert [e["kind"] for e in detail["events"]] == ["accepted"]


async def test_cancel_needs_the_send_scope(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    mid = await _send(client, tenant)
    key = await add_key(container, tenant.id, ("read",))
    resp = await client.post(f"/v1/messages/{mid}/cancel",
                             headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 403 and resp.json()["code"] == "auth.forbidden"


async def test_a_recorded_cancel_whose_publish_was_lost_is_published_by_the_sweep(
    client: Client, container: Container, tenant: Tenant,
) -> None:
    from hermes.cascade.sweep import RecoverySweep

    mid, done = await _send(client, tenant), await _send(client, tenant)
    # The API recorded both cancels, but (NATS away) neither was published; one of the
    # messages has finished since, and a third cancel is too recent to re-drive yet.
    recent = await _send(client, tenant)
    async with container.pool.connection() as conn:
        for m, ago in ((mid, 60), (done, 60), (recent, 1)):
            await conn.execute(
                "INSERT INTO message_events (message_id, at, kind) VALUES"
                " (%s, now() - make_interval(secs => %s), 'cancel_requested')", (m, ago))
        await conn.execute("UPDATE messages SET status = 'delivered', outcome = 'delivered',"
                           " finished_at = now(), next_deadline = NULL WHERE id = %s", (done,))
    sweep = RecoverySweep(container.pool, container.nats.jetstream, cancel_grace_s=30)
    assert await sweep.redrive_cancels() >= 1
    # The tenant's cancels on the cascade subjects: only the open message's, once.
    js = container.nats.jetstream()
    sub = await js.pull_subscribe("hermes.cascade.>", durable="cancel-redrive",
                                  stream="HERMES_CASCADE")
    cancels = []
    try:
        for _ in range(3):
            try:
                msgs = await sub.fetch(100, timeout=1)
            except Exception:
                msgs = []
            for m in msgs:
                command = COMMAND_DECODER.decode(m.data)
                # (Other tests' open messages may have old cancels of their own.)
                if isinstance(command, CancelCommand) and command.tenant_id == tenant.id:
                    cancels.append(command)
                await m.ack()
    finally:
        await sub.unsubscribe()
        await js.delete_consumer("HERMES_CASCADE", "cancel-redrive")
    assert cancels == [CancelCommand(id=mid, tenant_id=tenant.id)]
