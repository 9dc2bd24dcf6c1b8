"""Twilio: the official SDK against the sandbox, and signed status callbacks."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import parse_qsl

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from hermes.sandbox import Sandbox
from hermes.sandbox.credentials import TWILIO

from .conftest import CallbackReceiver


def _client(sandbox: Sandbox, token: str = TWILIO.auth_token) -> Client:
    client = Client(TWILIO.account_sid, token)
    # The SDK builds every URL from its Domain's base_url (https://api.twilio.com).
    client.api.base_url = sandbox.url
    return client


async def test_sdk_send_gets_a_queued_message(sandbox: Sandbox) -> None:
    message = await asyncio.to_thread(
        _client(sandbox).messages.create, to="+447400123456", from_=TWILIO.from_number,
        body="Your code is 123456",
    )
    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued"
    assert message.to == "+447400123456"
    assert message.num_segments == "1"
    assert message.direction == "outbound-api"
    assert message.account_sid == TWILIO.account_sid


async def test_sdk_invalid_number_is_error_21211(sandbox: Sandbox) -> None:
    with pytest.raises(TwilioRestException) as caught:
        await asyncio.to_thread(
            _client(sandbox).messages.create, to="+15550100", from_=TWILIO.from_number, body="x",
        )
    assert caught.value.status == 400
    assert caught.value.code == 21211


async def test_sdk_wrong_auth_token_is_401_20003(sandbox: Sandbox) -> None:
    with pytest.raises(TwilioRestException) as caught:
        await asyncio.to_thread(
            _client(sandbox, "wrong").messages.create, to="+447400123456",
            from_=TWILIO.from_number, body="x",
        )
    assert caught.value.status == 401
    assert caught.value.code == 20003


async def test_missing_body_is_21602_and_missing_from_is_21603(sandbox: Sandbox) -> None:
    client = _client(sandbox)
    with pytest.raises(TwilioRestException) as no_body:
        await asyncio.to_thread(client.messages.create, to="+447400123456",
                                from_=TWILIO.from_number)
    with pytest.raises(TwilioRestException) as no_from:
        await asyncio.to_thread(client.messages.create, to="+447400123456", body="x")
    assert (no_body.value.code, no_from.value.code) == (21602, 21603)


async def test_messaging_service_send_is_accepted(sandbox: Sandbox) -> None:
    message = await asyncio.to_thread(
        _client(sandbox).messages.create, to="+447400123456",
        messaging_service_sid=TWILIO.messaging_service_sid, body="hi",
    )
    assert message.status == "accepted"
    assert message.messaging_service_sid == TWILIO.messaging_service_sid


async def test_status_callbacks_verify_with_the_sdk_validator(
    sandbox: Sandbox, receiver: CallbackReceiver,
) -> None:
    path = f"/twilio-{uuid.uuid4().hex}"
    callback = receiver.url + path
    message = await asyncio.to_thread(
        _client(sandbox).messages.create, to="+447400000001", from_=TWILIO.from_number,
        body="hi", status_callback=callback,
    )
    posts = await receiver.wait_for(path, 2)
    validator = RequestValidator(TWILIO.auth_token)
    statuses = []
    for post in posts:
        params = dict(parse_qsl(post.body.decode()))
        assert validator.validate(callback, params, post.headers["x-twilio-signature"])
        assert not validator.validate(callback, {**params, "MessageStatus": "x"},
                                      post.headers["x-twilio-signature"])
        assert params["MessageSid"] == message.sid
        statuses.append(params["MessageStatus"])
    assert statuses == ["sent", "delivered"]


async def test_sdk_fetch_shows_the_status_progressing(sandbox: Sandbox) -> None:
    client = _client(sandbox)
    sent = await asyncio.to_thread(client.messages.create, to="+447400000002",
                                   from_=TWILIO.from_number, body="hi")
    early = await asyncio.to_thread(client.messages(sent.sid).fetch)
    assert early.status == "sent"
    await asyncio.sleep(sandbox.state.config.receipt_delay + 0.05)
    late = await asyncio.to_thread(client.messages(sent.sid).fetch)
    assert (late.status, late.error_code) == ("undelivered", 30003)
    with pytest.raises(TwilioRestException) as caught:
        await asyncio.to_thread(client.messages("SM" + "0" * 32).fetch)
    assert (caught.value.status, caught.value.code) == (404, 20404)
