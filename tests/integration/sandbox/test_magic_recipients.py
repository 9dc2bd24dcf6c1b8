"""Every row of the magic-recipient table in hermes/sandbox/README.md."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from hermes.sandbox import Sandbox
from hermes.sandbox.credentials import SES

from .conftest import CallbackReceiver
from .helpers import messente_send, twilio_send, whatsapp_send
from .test_fcm import _bearer
from .test_ses import _client, _send

FCM_SEND = "/v1/projects/hermes-sandbox/messages:send"


def _unique(prefix: str) -> str:
    return f"/{prefix}-{uuid.uuid4().hex}"


@pytest.mark.parametrize(("number", "statuses"), [
    ("+447400000001", ["sent", "delivered"]),
    ("+4520120001", ["sent", "delivered"]),
    ("+12015550002", ["sent", "undelivered"]),
    ("+447400000007", ["sent", "delivered"]),
])
async def test_sms_receipts_follow_the_number(
    sandbox: Sandbox, receiver: CallbackReceiver, http: httpx.AsyncClient,
    number: str, statuses: list[str],
) -> None:
    path = _unique("sms")
    answer = await twilio_send(http, number, receiver.url + path)
    assert answer.status_code == 201
    posts = await receiver.wait_for(path, len(statuses))
    forms = [dict(parse_qsl(p.body.decode())) for p in posts]
    assert [f["MessageStatus"] for f in forms] == statuses
    if statuses[-1] == "undelivered":
        assert forms[-1]["ErrorCode"] == "30003"


async def test_delivered_receipt_arrives_after_the_configured_delay(
    sandbox: Sandbox, receiver: CallbackReceiver, http: httpx.AsyncClient,
) -> None:
    sandbox.state.config.receipt_delay = 0.1  # the documented default
    path = _unique("delay")
    started = time.monotonic()
    await twilio_send(http, "+447400000001", receiver.url + path)
    await receiver.wait_for(path, 2)
    assert 0.1 <= time.monotonic() - started < 1.0


async def test_0003_is_accepted_and_never_confirmed(
    sandbox: Sandbox, receiver: CallbackReceiver, http: httpx.AsyncClient,
) -> None:
    path = _unique("never")
    assert (await twilio_send(http, "+447400000003", receiver.url + path)).status_code == 201
    assert (await messente_send(http, "+447400000003", receiver.url + path)).status_code == 201
    await asyncio.sleep(0.2)
    await sandbox.drain()
    assert receiver.at(path) == []


async def test_0004_answers_500_on_every_phone_provider(http: httpx.AsyncClient) -> None:
    twilio = await twilio_send(http, "+447400000004")
    messente = await messente_send(http, "+447400000004")
    whatsapp = await whatsapp_send(http, "447400000004")
    assert (twilio.status_code, twilio.json()["code"]) == (500, 20500)
    assert (messente.status_code, messente.json()["errors"][0]["code"]) == (500, "104")
    assert (whatsapp.status_code, whatsapp.json()["error"]["code"]) == (500, 131000)


async def test_0005_answers_429_with_retry_after(http: httpx.AsyncClient) -> None:
    for answer in (await twilio_send(http, "+447400000005"),
                   await messente_send(http, "+447400000005"),
                   await whatsapp_send(http, "447400000005")):
        assert answer.status_code == 429
        assert int(answer.headers["retry-after"]) >= 1
    assert (await twilio_send(http, "+447400000005")).json()["code"] == 20429


async def test_0006_holds_the_request_past_the_client_timeout(
    sandbox: Sandbox, http: httpx.AsyncClient,
) -> None:
    sandbox.state.config.timeout_hold = 1.0
    with pytest.raises(httpx.ReadTimeout):
        await twilio_send(http, "+447400000006", timeout=0.3)
    # Bounded: with a patient client the hold ends and the connection is dropped.
    with pytest.raises(httpx.RemoteProtocolError):
        await twilio_send(http, "+447400000006", timeout=5.0)


async def test_messente_0002_reports_undelivered(
    receiver: CallbackReceiver, http: httpx.AsyncClient,
) -> None:
    path = _unique("messente")
    await messente_send(http, "+447400000002", receiver.url + path)
    [report] = await receiver.wait_for(path, 1)
    body = json.loads(report.body)
    assert (body["status"], body["err"]) == ("UNDELIV", 1)


async def _whatsapp_statuses(sandbox: Sandbox, receiver: CallbackReceiver,
                             http: httpx.AsyncClient, number: str) -> list[dict[str, Any]]:
    path = _unique("wa")
    await http.put("/_sandbox/whatsapp/webhook", json={"url": receiver.url + path})
    try:
        await whatsapp_send(http, number)
        await asyncio.sleep(0.05)
        await sandbox.drain()
    finally:
        await http.put("/_sandbox/whatsapp/webhook", json={"url": None})
    return [s for p in receiver.at(path)
            for s in json.loads(p.body)["entry"][0]["changes"][0]["value"]["statuses"]]


async def test_whatsapp_0007_is_read(
    sandbox: Sandbox, receiver: CallbackReceiver, http: httpx.AsyncClient,
) -> None:
    statuses = await _whatsapp_statuses(sandbox, receiver, http, "447400000007")
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]


async def test_whatsapp_0002_fails_with_131026(
    sandbox: Sandbox, receiver: CallbackReceiver, http: httpx.AsyncClient,
) -> None:
    statuses = await _whatsapp_statuses(sandbox, receiver, http, "447400000002")
    assert [s["status"] for s in statuses] == ["sent", "failed"]
    assert statuses[1]["errors"][0]["code"] == 131026


@pytest.mark.parametrize(("address", "events"), [
    ("anyone@example.com", ["Delivery"]),
    ("bounce@example.com", ["Bounce"]),
    ("complaint@example.com", ["Delivery", "Complaint"]),
    ("noreceipt@example.com", []),
])
async def test_email_events_follow_the_local_part(
    sandbox: Sandbox, receiver: CallbackReceiver, http: httpx.AsyncClient,
    address: str, events: list[str],
) -> None:
    path = _unique("ses")
    await http.put(f"/_sandbox/ses/configuration-sets/{SES.configuration_set}",
                   json={"endpoint": receiver.url + path})
    try:
        await asyncio.to_thread(_send, _client(sandbox), address)
        await asyncio.sleep(0.05)
        await sandbox.drain()
    finally:
        await http.put(f"/_sandbox/ses/configuration-sets/{SES.configuration_set}",
                       json={"endpoint": None})
    got = [json.loads(json.loads(p.body)["Message"]) for p in receiver.at(path)]
    assert [e["eventType"] for e in got] == events
    if "Bounce" in events:
        assert got[0]["bounce"]["bounceType"] == "Permanent"
        assert got[0]["bounce"]["bouncedRecipients"][0]["emailAddress"] == address


@pytest.mark.parametrize(("token", "status", "fcm_code"), [
    ("unregistered-abc12345", 404, "UNREGISTERED"),
    ("error500-abc12345", 500, "INTERNAL"),
    ("throttle-abc12345", 429, "QUOTA_EXCEEDED"),
])
async def test_push_token_prefixes(
    http: httpx.AsyncClient, token: str, status: int, fcm_code: str,
) -> None:
    answer = await http.post(FCM_SEND, headers=await _bearer(http),
                             json={"message": {"token": token}})
    assert answer.status_code == status
    assert answer.json()["error"]["details"][0]["errorCode"] == fcm_code


async def test_invalid_number_under_libphonenumber_is_rejected(http: httpx.AsyncClient) -> None:
    # +44 7700 900xxx is the UK drama range: not a valid number, so not a magic one.
    answer = await twilio_send(http, "+447700900001")
    assert (answer.status_code, answer.json()["code"]) == (400, 21211)


@pytest.mark.parametrize(("address", "status", "error_type"), [
    ("error500@example.com", 500, "InternalFailure"),
    ("throttle+otp@example.com", 429, "TooManyRequestsException"),
])
async def test_email_failure_local_parts(sandbox: Sandbox, address: str, status: int,
                                         error_type: str) -> None:
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(_send, _client(sandbox), address)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert caught.value.response["Error"]["Code"] == error_type


async def test_email_and_push_timeouts_hold_the_request(
    sandbox: Sandbox, http: httpx.AsyncClient,
) -> None:
    sandbox.state.config.timeout_hold = 1.0
    with pytest.raises(ReadTimeoutError):
        await asyncio.to_thread(_send, _client(sandbox, read_timeout=0.3), "timeout@example.com")
    with pytest.raises(httpx.ReadTimeout):
        await http.post(FCM_SEND, headers=await _bearer(http),
                        json={"message": {"token": "timeout-abc12345"}}, timeout=0.3)
