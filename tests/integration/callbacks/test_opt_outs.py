"""Verified callbacks feed the suppression list: a STOP reply (Twilio's incoming-message
webhook, signed as Twilio signs it, or a WhatsApp message), START to opt back in, SES
permanent bounces and complaints through SNS. Later sends skip the suppressed channel."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from hermes.bootstrap import Container
from hermes.providers.secrets import seal
from hermes.sandbox.credentials import SES as SES_CREDS
from hermes.sandbox.credentials import TWILIO as TWILIO_CREDS
from tests.integration.api.conftest import add_key, retire_messages
from tests.integration.callbacks.test_callbacks import client, replay
from tests.integration.delivery.support import SES, TWILIO, World

__all__ = ["client"]

SENDER = "+4520120001"
OWN_TOKEN = "tenant-own-twilio-auth-token"


@pytest.fixture
async def own_account(container: Container, world: World) -> AsyncIterator[uuid.UUID]:
    """A Twilio account of the test's tenant (disabled, so nothing routes through it)."""
    aid = uuid.uuid4()
    creds = {"account_sid": TWILIO_CREDS.account_sid, "auth_token": OWN_TOKEN}
    async with container.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO provider_accounts (id, tenant_id, name, channel, adapter, mode,"
            " credentials, status) VALUES (%s, %s, 'own-twilio', 'sms', 'twilio_sms', 'test',"
            " %s, 'disabled')", (aid, world.tenant_id, seal(creds, aid, container.keyring)))
    yield aid
    async with container.pool.connection() as conn:
        await conn.execute("DELETE FROM provider_accounts WHERE id = %s", (aid,))
    await retire_messages(container, [world.tenant_id])


async def incoming(client: Any, world: World, account: uuid.UUID, body: str, *,
                   token: str = OWN_TOKEN, sender: str = SENDER) -> Any:
    """Post Twilio's "A message comes in" webhook, signed with `token`."""
    path = f"/v1/callbacks/{account}"
    params = {
        "AccountSid": TWILIO_CREDS.account_sid, "ApiVersion": "2010-04-01", "Body": body,
        "From": sender, "MessageSid": "SM" + uuid.uuid4().hex, "NumMedia": "0",
        "NumSegments": "1", "SmsSid": "SM" + uuid.uuid4().hex, "SmsStatus": "received",
        "To": TWILIO_CREDS.from_number,
    }
    signature = RequestValidator(token).compute_signature(world.receiver.url + path, params)
    return await client.post(path, content=urlencode(params).encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})


async def entries(container: Container, tenant_id: uuid.UUID) -> list[tuple[Any, ...]]:
    async with container.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT kind, address, reason, message_id FROM suppressions WHERE tenant_id = %s"
            " ORDER BY kind, address", (tenant_id,))
        return list(await cur.fetchall())


async def channels_of_a_send(client: Any, key: str) -> list[str]:
    """Send SMS-then-email to the sender and answer the channels of the plan."""
    auth = {"Authorization": f"Bearer {key}"}
    resp = await client.post("/v1/messages", headers=auth, json={
        "to": {"phone": SENDER, "email": "ada@example.com"}, "body": "Your order shipped",
        "cascade": ["sms", "email"]})
    assert resp.status_code == 202, resp.text
    got = await client.get(f"/v1/messages/{resp.json()['id']}", headers=auth)
    return [s["channel"] for s in got.json()["steps"]]


async def test_stop_suppresses_the_sender_and_start_lifts_it(
    world: World, client: Any, container: Container, own_account: uuid.UUID,
) -> None:
    key = await add_key(container, world.tenant_id, ("send", "read"))
    assert await channels_of_a_send(client, key) == ["sms", "email"]

    resp = await incoming(client, world, own_account, " Stop\n")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/xml")
    assert "<Response></Response>" in resp.text
    assert await entries(container, world.tenant_id) == [("phone", SENDER, "stop", None)]
    assert await channels_of_a_send(client, key) == ["email"]

    # Any other reply changes nothing; START lifts the opt-out.
    assert (await incoming(client, world, own_account, "thanks")).status_code == 200
    assert len(await entries(container, world.tenant_id)) == 1
    assert (await incoming(client, world, own_account, "START")).status_code == 200
    assert await entries(container, world.tenant_id) == []
    assert await channels_of_a_send(client, key) == ["sms", "email"]


async def test_start_does_not_lift_a_suppression_the_tenant_made(
    world: World, client: Any, container: Container, own_account: uuid.UUID,
) -> None:
    key = await add_key(container, world.tenant_id, ("manage",))
    resp = await client.put(f"/v1/suppressions/phone/{SENDER}",
                            headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 201, resp.text
    assert (await incoming(client, world, own_account, "UNSTOP")).status_code == 200
    assert await entries(container, world.tenant_id) == [("phone", SENDER, "manual", None)]


async def test_a_forged_stop_is_refused_and_suppresses_nothing(
    world: World, client: Any, container: Container, own_account: uuid.UUID,
) -> None:
    resp = await incoming(client, world, own_account, "STOP", token="not-the-account-token")
    assert resp.status_code == 401 and resp.json()["code"] == "auth.invalid"
    assert await entries(container, world.tenant_id) == []


async def test_a_stop_on_a_platform_account_is_attributed_to_no_tenant(
    world: World, client: Any, container: Container,
) -> None:
    # The tenant has sent to the number through the shared account, yet the account is
    # not the tenant's: the reply is answered and suppresses nothing.
    key = await add_key(container, world.tenant_id, ("send", "read"))
    assert await channels_of_a_send(client, key) == ["sms", "email"]
    async with container.pool.connection() as conn:
        before = await (await conn.execute("SELECT count(*) FROM suppressions")).fetchone()
    resp = await incoming(client, world, TWILIO, "STOP", token=TWILIO_CREDS.auth_token)
    assert resp.status_code == 200, resp.text
    assert "<Response></Response>" in resp.text
    async with container.pool.connection() as conn:
        after = await (await conn.execute("SELECT count(*) FROM suppressions")).fetchone()
    assert before == after
    assert await entries(container, world.tenant_id) == []


@pytest.mark.parametrize(("local", "reason", "status"), [
    ("bounce", "hard_bounce", "bounced"), ("complaint", "complaint", "delivered")])
async def test_ses_permanent_bounces_and_complaints_suppress_the_address(
    world: World, client: Any, container: Container, local: str, reason: str, status: str,
) -> None:
    endpoint = f"{world.receiver.url}/v1/callbacks/{SES}"
    world.sandbox.state.ses_configuration_sets[SES_CREDS.configuration_set] = endpoint
    address = f"{local}@example.com"
    job = await world.job("email", address, SES)
    async with container.pool.connection() as conn:  # the message was sent to that address
        await conn.execute(
            "UPDATE messages SET spec = jsonb_set(spec, '{to,email}', to_jsonb(%s::text))"
            " WHERE id = %s", (address, job.message_id))
    assert (await world.deliver(job)).outcome == "accepted"
    events = 2 if local == "complaint" else 1  # a complaint follows the delivery
    for got in await world.receiver.wait_for(events):
        assert (await replay(client, got)).status_code == 200
    assert await entries(container, world.tenant_id) == [
        ("email", address, reason, job.message_id)]
    # The step's outcome is recorded as before: the bounce fails it.
    assert (await world.attempt(job.attempt_id))["status"] == status
    if local == "bounce":
        await world.events.wait_for(2)
        assert [r.status for r in world.events.receipts()] == ["bounced"]


async def test_a_whatsapp_stop_silences_whatsapp_but_not_sms(
    world: World, client: Any, container: Container,
) -> None:
    aid = uuid.uuid4()
    secret = "tenant-own-app-secret"
    async with container.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO provider_accounts (id, tenant_id, name, channel, adapter, mode,"
            " credentials, status) VALUES (%s, %s, 'own-wa', 'whatsapp', 'whatsapp_cloud',"
            " 'test', %s, 'disabled')",
            (aid, world.tenant_id,
             seal({"access_token": "t", "app_secret": secret}, aid, container.keyring)))
    try:
        payload = json.dumps({"object": "whatsapp_business_account", "entry": [{
            "id": "1", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "4520990000", "phone_number_id": "1"},
                "messages": [{"from": SENDER.lstrip("+"), "id": "wamid.stop",
                              "timestamp": "1750263773", "type": "text",
                              "text": {"body": "stop"}}]}}]}]}).encode()
        mac = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
        resp = await client.post(f"/v1/callbacks/{aid}", content=payload, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={mac}"})
        assert resp.status_code == 200, resp.text
        assert await entries(container, world.tenant_id) == [("whatsapp", SENDER, "stop", None)]
        key = await add_key(container, world.tenant_id, ("send", "read"))
        auth = {"Authorization": f"Bearer {key}"}
        sent = await client.post("/v1/messages", headers=auth, json={
            "to": {"whatsapp": SENDER, "phone": SENDER}, "body": "x",
            "cascade": ["whatsapp", "sms"]})
        assert sent.status_code == 202, sent.text
        got = await client.get(f"/v1/messages/{sent.json()['id']}", headers=auth)
        assert [s["channel"] for s in got.json()["steps"]] == ["sms"]
    finally:
        async with container.pool.connection() as conn:
            await conn.execute("DELETE FROM provider_accounts WHERE id = %s", (aid,))
        await retire_messages(container, [world.tenant_id])
