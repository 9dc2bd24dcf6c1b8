"""Messente: the official SDK against the sandbox, and signed delivery reports."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid

import pytest
from messente_api import (
    SMS,
    ApiClient,
    Configuration,
    Omnimessage,
    OmnimessageApi,
    OmnimessageMessagesInner,
)
from messente_api.exceptions import ApiException

from hermes.sandbox import Sandbox
from hermes.sandbox.credentials import MESSENTE

from .conftest import CallbackReceiver


def _send(sandbox: Sandbox, to: str, dlr_url: str | None = None,
          password: str = MESSENTE.password) -> object:
    config = Configuration(host=sandbox.url + "/v1", username=MESSENTE.username,
                           password=password)
    with ApiClient(config) as client:
        sms = SMS(sender="Hermes", text="Your code is 123456")
        message = Omnimessage(to=to, messages=[OmnimessageMessagesInner(sms)], dlr_url=dlr_url)
        return OmnimessageApi(client).send_omnimessage(message)


async def test_sdk_send_returns_message_per_channel(sandbox: Sandbox) -> None:
    response = await asyncio.to_thread(_send, sandbox, "+447400123456")
    assert response.to == "+447400123456"
    assert uuid.UUID(response.omnimessage_id)
    assert [(m.channel, m.sender) for m in response.messages] == [("sms", "Hermes")]


async def test_sdk_wrong_password_is_401(sandbox: Sandbox) -> None:
    with pytest.raises(ApiException) as caught:
        await asyncio.to_thread(_send, sandbox, "+447400123456", None, "nope")
    assert caught.value.status == 401
    assert json.loads(caught.value.body)["errors"][0]["code"] == "103"


async def test_sdk_invalid_number_is_400_invalid_data(sandbox: Sandbox) -> None:
    with pytest.raises(ApiException) as caught:
        await asyncio.to_thread(_send, sandbox, "+44123")
    error = json.loads(caught.value.body)["errors"][0]
    assert caught.value.status == 400
    assert (error["code"], error["title"], error["source"]) == ("105", "Invalid data",
                                                                 "payload[to]")


async def test_delivery_report_is_signed_with_the_api_password(
    sandbox: Sandbox, receiver: CallbackReceiver,
) -> None:
    path = f"/messente-{uuid.uuid4().hex}"
    response = await asyncio.to_thread(_send, sandbox, "+447400000001", receiver.url + path)
    [report] = await receiver.wait_for(path, 1)
    expected = hmac.new(MESSENTE.password.encode(), report.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(report.headers["x-messente-signature"], expected)
    body = json.loads(report.body)
    assert body["status"] == "DELIVRD" and body["err"] == 0 and body["error"] is None
    assert body["message_id"] == response.messages[0].message_id
    assert body["omnimessage_id"] == response.omnimessage_id
    assert body["to"] == "+447400000001" and body["channel"] == "sms"
