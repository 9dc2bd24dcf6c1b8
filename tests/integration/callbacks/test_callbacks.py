"""Provider callbacks through the API: real sandbox receipts (Twilio and WhatsApp signed,
SES through SNS) become ReceiptNotices; anything that does not verify is refused and
changes nothing."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from hermes.api.app import create_app
from hermes.sandbox.credentials import SES as SES_CREDS
from hermes.sandbox.credentials import WHATSAPP as WA_CREDS
from tests.integration.delivery.support import MESSENTE, SES, TWILIO, WHATSAPP, Captured, World


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    # The API as a real server on this event loop, with a container of its own (the SNS
    # check fetches its certificate from the sandbox, which runs on this loop too).
    # Providers reach it at the receiver's address, which is what their signatures cover.
    settings = world.container.settings.with_overrides(public_url=world.receiver.url)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning",
                                           lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(20):
            while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
                await asyncio.sleep(0.02)
        port = sock.getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as c:
            yield c
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def replay(client: Any, got: Captured, *, headers: dict[str, str] | None = None,
                 body: bytes | None = None) -> httpx.Response:
    """Hand a callback the sandbox sent to the API, as the provider sent it."""
    override = {k.lower(): v for k, v in (headers or {}).items()}
    sent = {k: v for k, v in got.headers.items()
            if k.lower() not in ("host", "content-length", *override)}
    sent.update(override)
    path = got.path + (f"?{got.query}" if got.query else "")
    return await client.request(got.method, path, content=got.body if body is None else body,
                                headers=sent)


async def test_an_undelivered_sms_comes_back_through_the_twilio_callback(
    world: World, client: Any
) -> None:
    job = await world.job("sms", "+447400000002", TWILIO)
    result = await world.deliver(job)
    assert result.outcome == "accepted"
    callbacks = await world.receiver.wait_for(2)
    for got in callbacks:
        resp = await replay(client, got)
        assert resp.status_code == 200, resp.text

    events = await world.events.wait_for(3)
    receipts = world.events.receipts()
    assert [r.status for r in receipts] == ["sent", "undelivered"]
    assert {msg_id for msg_id, e in events if e in receipts} == {
        f"{job.attempt_id}:sent", f"{job.attempt_id}:undelivered"}
    last = receipts[-1]
    assert (last.message_id, last.attempt_id, last.step, last.attempt, last.account_id) == (
        job.message_id, job.attempt_id, job.step, job.attempt, TWILIO)
    assert last.provider_message_id == result.provider_message_id
    assert last.provider_error_code == "30003"
    row = await world.attempt(job.attempt_id)
    assert row["status"] == "undelivered" and row["receipt"]
    assert row["provider_error_code"] == "30003"


async def test_a_tampered_twilio_signature_is_refused_and_changes_nothing(
    world: World, client: Any
) -> None:
    job = await world.job("sms", "+447400000001", TWILIO)
    await world.deliver(job)
    got = (await world.receiver.wait_for(1))[0]
    await world.events.wait_for(1)

    resp = await replay(client, got, headers={"X-Twilio-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="})
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == "auth.invalid"
    # A valid signature over another body is just as bad.
    forged = got.body.replace(b"MessageStatus=sent", b"MessageStatus=delivered")
    assert forged != got.body
    assert (await replay(client, got, body=forged)).status_code == 401

    await asyncio.sleep(0.2)
    assert world.events.receipts() == []
    assert (await world.attempt(job.attempt_id))["status"] == "accepted"


async def test_a_late_older_status_never_moves_the_attempt_back(world: World, client: Any) -> None:
    job = await world.job("sms", "+447400000001", TWILIO)
    await world.deliver(job)
    sent, delivered = await world.receiver.wait_for(2)
    assert (await replay(client, delivered)).status_code == 200
    assert (await replay(client, sent)).status_code == 200  # arrives late
    assert (await replay(client, delivered)).status_code == 200  # the provider retries

    assert (await world.attempt(job.attempt_id))["status"] == "delivered"
    await world.events.wait_for(2)
    await asyncio.sleep(0.2)
    assert [r.status for r in world.events.receipts()] == ["delivered"]


async def test_whatsapp_signed_statuses_become_receipts(world: World, client: Any) -> None:
    world.sandbox.state.whatsapp_webhook = f"{world.receiver.url}/v1/callbacks/{WHATSAPP}"
    job = await world.job("whatsapp", "+447400000001", WHATSAPP)
    assert (await world.deliver(job)).outcome == "accepted"
    await world.sandbox.drain()
    for got in await world.receiver.wait_for(1):
        assert (await replay(client, got)).status_code == 200
    await world.events.wait_for(3)
    assert [r.status for r in world.events.receipts()] == ["sent", "delivered"]
    assert (await world.attempt(job.attempt_id))["status"] == "delivered"

    got = world.receiver.received[0]
    resp = await replay(client, got, headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert resp.status_code == 401


async def test_metas_webhook_handshake_is_answered(world: World, client: Any) -> None:
    path = f"/v1/callbacks/{WHATSAPP}"
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444",
             "hub.verify_token": WA_CREDS.webhook_verify_token}
    resp = await client.get(path, params=query)
    assert resp.status_code == 200 and resp.text == "1158201444"
    resp = await client.get(path, params={**query, "hub.verify_token": "guess"})
    assert resp.status_code == 401


@pytest.mark.parametrize(("local", "status"), [("delivered", "delivered"), ("bounce", "bounced")])
async def test_ses_events_through_sns_become_receipts(
    world: World, client: Any, local: str, status: str
) -> None:
    endpoint = f"{world.receiver.url}/v1/callbacks/{SES}"
    world.sandbox.state.ses_configuration_sets[SES_CREDS.configuration_set] = endpoint
    job = await world.job("email", f"{local}@example.com", SES)
    assert (await world.deliver(job)).outcome == "accepted"
    (got,) = await world.receiver.wait_for(1)
    assert (await replay(client, got)).status_code == 200
    await world.events.wait_for(2)
    assert [r.status for r in world.events.receipts()] == [status]
    assert (await world.attempt(job.attempt_id))["status"] == status


async def test_a_tampered_sns_notification_is_refused(world: World, client: Any) -> None:
    endpoint = f"{world.receiver.url}/v1/callbacks/{SES}"
    world.sandbox.state.ses_configuration_sets[SES_CREDS.configuration_set] = endpoint
    job = await world.job("email", "bounce@example.com", SES)
    await world.deliver(job)
    (got,) = await world.receiver.wait_for(1)
    envelope = json.loads(got.body)
    envelope["Message"] = envelope["Message"].replace("Bounce", "Delivery")
    resp = await replay(client, got, body=json.dumps(envelope).encode())
    assert resp.status_code == 401
    # A certificate from anywhere but SNS (or the account's sandbox prefix) is not fetched.
    envelope = json.loads(got.body)
    envelope["SigningCertURL"] = "https://evil.example.com/cert.pem"
    assert (await replay(client, got, body=json.dumps(envelope).encode())).status_code == 401
    await asyncio.sleep(0.2)
    assert world.events.receipts() == []
    assert (await world.attempt(job.attempt_id))["status"] == "accepted"


async def test_an_sns_subscription_is_confirmed_before_events_flow(
    world: World, client: Any
) -> None:
    name = f"set-{uuid.uuid4().hex[:6]}"
    endpoint = f"{world.receiver.url}/v1/callbacks/{SES}"
    async with httpx.AsyncClient(base_url=world.sandbox.url) as control:
        resp = await control.put(f"/_sandbox/ses/configuration-sets/{name}",
                                 json={"endpoint": endpoint, "confirm": True})
        assert resp.status_code < 300, resp.text
    (got,) = await world.receiver.wait_for(1)
    assert json.loads(got.body)["Type"] == "SubscriptionConfirmation"
    # The confirmation names another topic than the account's pinned one, so it is refused...
    assert (await replay(client, got)).status_code == 401
    assert world.sandbox.state.ses_configuration_sets.get(name) is None


async def test_a_receipt_for_an_unknown_message_is_acknowledged(world: World, client: Any) -> None:
    job = await world.job("sms", "+447400000001", TWILIO)
    await world.deliver(job)
    got = (await world.receiver.wait_for(1))[0]
    async with world.container.pool.connection() as conn:  # as if the message were long gone
        await conn.execute("UPDATE attempts SET provider_message_id = NULL WHERE id = %s",
                           (job.attempt_id,))
    assert (await replay(client, got)).status_code == 200
    assert world.events.receipts() == []


async def test_an_unknown_account_is_a_404_problem(client: Any) -> None:
    resp = await client.post(f"/v1/callbacks/{uuid.uuid4()}", content=b"x=1")
    assert resp.status_code == 404 and resp.json()["code"] == "request.not_found"


async def test_the_accounts_sns_subscription_is_confirmed_by_the_host(
    world: World, client: Any
) -> None:
    name = SES_CREDS.configuration_set
    endpoint = f"{world.receiver.url}/v1/callbacks/{SES}"
    world.sandbox.state.ses_configuration_sets.pop(name, None)
    async with httpx.AsyncClient(base_url=world.sandbox.url) as control:
        resp = await control.put(f"/_sandbox/ses/configuration-sets/{name}",
                                 json={"endpoint": endpoint, "confirm": True})
        assert resp.status_code < 300, resp.text
    (got,) = await world.receiver.wait_for(1)
    assert json.loads(got.body)["Type"] == "SubscriptionConfirmation"
    assert world.sandbox.state.ses_configuration_sets.get(name) is None  # not yet active
    assert (await replay(client, got)).status_code == 200
    assert world.sandbox.state.ses_configuration_sets.get(name) == endpoint


async def test_messente_signed_reports_become_receipts(world: World, client: Any) -> None:
    job = await world.job("sms", "+4520120002", MESSENTE)
    assert (await world.deliver(job)).outcome == "accepted"
    (got,) = await world.receiver.wait_for(1)
    resp = await replay(client, got, headers={"X-Messente-Signature": "0" * 64})
    assert resp.status_code == 401
    assert (await replay(client, got)).status_code == 200
    await world.events.wait_for(2)
    assert [r.status for r in world.events.receipts()] == ["undelivered"]
    assert (await world.attempt(job.attempt_id))["status"] == "undelivered"
