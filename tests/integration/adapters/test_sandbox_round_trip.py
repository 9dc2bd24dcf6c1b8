"""Each shipped adapter against the provider sandbox, end to end: the adapter's
request is accepted, its response parsed, and the receipts the sandbox sends
back (signed as the real providers sign them) are verified and parsed.

Two independent implementations of every wire format meet here: the Zig
adapters and the sandbox's Python fakes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from hermes.sandbox import Sandbox
from hermes.sandbox.credentials import FCM, MESSENTE, SES, TWILIO, WHATSAPP
from tests.integration.sandbox.conftest import CallbackReceiver, Received
from tests.unit.adapters.wasm import adapter


async def send(request: dict[str, Any]) -> dict[str, Any]:
    """What the host does with a build_request result, then parse_response."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.request(
            request["method"],
            request["url"],
            headers=request["headers"],
            content=request["body"].encode(),
        )
    return {
        "status": response.status_code,
        "headers": [list(h) for h in response.headers.items()],
        "body": response.text,
    }


def callback_input(receiver: CallbackReceiver, got: Received, credentials: dict) -> dict:
    url = receiver.url + got.path + (f"?{got.query}" if got.query else "")
    return {
        "method": "POST",
        "url": url,
        "headers": [list(h) for h in got.headers.items()],
        "body": got.body.decode(),
        "credentials": credentials,
    }


def build(name: str, message: dict, credentials: dict, config: dict, **extra: Any) -> dict:
    # The real clock: the sandbox, like AWS, refuses SigV4 signatures from the past.
    extra.setdefault("now", int(time.time() * 1000))
    return adapter(name).build_request(
        {
            "message": {"id": "msg_1", **message},
            "credentials": credentials,
            "config": config,
            "attempt_id": "att_1",
            **extra,
        }
    )


async def test_twilio_sms(sandbox: Sandbox, receiver: CallbackReceiver) -> None:
    creds = {"account_sid": TWILIO.account_sid, "auth_token": TWILIO.auth_token}
    request = build(
        "twilio_sms",
        {"channel": "sms", "to": "+447400000001", "body": "Grüße 😀"},
        creds,
        {
            "base_url": sandbox.url,
            "from": TWILIO.from_number,
            "callback_url": receiver.url + "/twilio?acc=1%202",
        },
    )
    answer = adapter("twilio_sms").parse_response(**await send(request))
    assert answer["outcome"] == "accepted"
    received = await receiver.wait_for("/twilio", 2)
    statuses = []
    for got in received:
        out = adapter("twilio_sms").parse_callback(callback_input(receiver, got, creds))
        assert out["verified"] is True
        statuses += [
            r["status"]
            for r in out["receipts"]
            if r["provider_message_id"] == answer["provider_message_id"]
        ]
    assert statuses == ["sent", "delivered"]


async def test_twilio_rate_limit_is_retryable(sandbox: Sandbox) -> None:
    creds = {"account_sid": TWILIO.account_sid, "auth_token": TWILIO.auth_token}
    request = build(
        "twilio_sms",
        {"channel": "sms", "to": "+447400000005", "body": "x"},
        creds,
        {"base_url": sandbox.url, "from": TWILIO.from_number},
    )
    answer = adapter("twilio_sms").parse_response(**await send(request))
    assert (answer["outcome"], answer["code"]) == ("retryable", "provider.rate_limited")


async def test_messente_sms(sandbox: Sandbox, receiver: CallbackReceiver) -> None:
    creds = {"username": MESSENTE.username, "password": MESSENTE.password}
    request = build(
        "messente_sms",
        {"channel": "sms", "to": "+447400000002", "body": "Hi ü"},
        creds,
        {
            "base_url": sandbox.url + "/v1",
            "sender": MESSENTE.sender,
            "callback_url": receiver.url + "/messente",
        },
    )
    answer = adapter("messente_sms").parse_response(**await send(request))
    assert answer["outcome"] == "accepted"
    received = await receiver.wait_for("/messente", 1)
    receipts = []
    for got in received:
        out = adapter("messente_sms").parse_callback(callback_input(receiver, got, creds))
        assert out["verified"] is True
        receipts += out["receipts"]
    assert receipts[-1]["provider_message_id"] == answer["provider_message_id"]
    assert receipts[-1]["status"] in {"undelivered", "failed"}


async def test_whatsapp_cloud(sandbox: Sandbox, receiver: CallbackReceiver) -> None:
    sandbox.state.whatsapp_webhook = receiver.url + "/whatsapp"
    creds = {"access_token": WHATSAPP.access_token, "app_secret": WHATSAPP.app_secret}
    request = build(
        "whatsapp_cloud",
        {"channel": "whatsapp", "to": "447400000007", "body": "Olá 👋"},
        creds,
        {"base_url": sandbox.url, "phone_number_id": WHATSAPP.phone_number_id},
    )
    answer = adapter("whatsapp_cloud").parse_response(**await send(request))
    assert answer["outcome"] == "accepted"
    statuses: list[str] = []
    seen = 0
    async with asyncio.timeout(5):
        while "read" not in statuses:  # the sandbox batches statuses into fewer POSTs
            received = await receiver.wait_for("/whatsapp", seen + 1)
            for got in received[seen:]:
                out = adapter("whatsapp_cloud").parse_callback(callback_input(receiver, got, creds))
                assert out["verified"] is True
                statuses += [
                    r["status"]
                    for r in out["receipts"]
                    if r["provider_message_id"] == answer["provider_message_id"]
                ]
            seen = len(received)
    assert statuses == ["sent", "delivered", "read"]


async def test_fcm_push(sandbox: Sandbox) -> None:
    token_uri = sandbox.url + "/token"
    async with httpx.AsyncClient() as http:  # the host mints the token
        minted = await http.post(
            token_uri,
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": FCM.assertion(token_uri),
            },
        )
    token = minted.json()["access_token"]
    request = build(
        "fcm_push",
        {
            "channel": "push",
            "to": "device-token-1",
            "title": "Hi",
            "body": "😀",
            "data": {"k": "v"},
        },
        {},
        {"base_url": sandbox.url, "project_id": FCM.project_id},
        token=token,
    )
    answer = adapter("fcm_push").parse_response(**await send(request))
    assert answer["outcome"] == "accepted"
    assert answer["provider_message_id"].startswith(f"projects/{FCM.project_id}/messages/")

    request = build(
        "fcm_push",
        {"channel": "push", "to": "unregistered-1", "body": "x"},
        {},
        {"base_url": sandbox.url, "project_id": FCM.project_id},
        token=token,
    )
    answer = adapter("fcm_push").parse_response(**await send(request))
    assert (answer["outcome"], answer["code"]) == ("rejected", "provider.invalid_recipient")


@pytest.mark.parametrize(("local", "status"), [("delivered", "delivered"), ("bounce", "bounced")])
async def test_ses_email(
    sandbox: Sandbox, receiver: CallbackReceiver, local: str, status: str
) -> None:
    sandbox.state.ses_configuration_sets[SES.configuration_set] = receiver.url + "/ses"
    creds = {
        "access_key_id": SES.access_key_id,
        "secret_access_key": SES.secret_access_key,
        "sns_cert_url_prefix": sandbox.url + "/",
    }
    request = build(
        "ses_email",
        {
            "channel": "email",
            "to": f"{local}@example.com",
            "subject": "Grüße",
            "body": "Hallo 😀",
            "html": "<b>Hi</b>",
        },
        creds,
        {
            "base_url": sandbox.url,
            "region": SES.region,
            "from": SES.from_address,
            "configuration_set": SES.configuration_set,
        },
    )
    answer = adapter("ses_email").parse_response(**await send(request))
    assert answer["outcome"] == "accepted", answer
    before = len(receiver.at("/ses"))
    received = await receiver.wait_for("/ses", before + 1)
    receipts = []
    async with httpx.AsyncClient() as http:
        for got in received[before:]:
            out = adapter("ses_email").parse_callback(callback_input(receiver, got, creds))
            verify = out["verify"]
            cert = x509.load_pem_x509_certificate((await http.get(verify["cert_url"])).content)
            digest = hashes.SHA256() if verify["signature_version"] == "2" else hashes.SHA1()
            cert.public_key().verify(
                base64.b64decode(verify["signature"]),
                verify["string_to_sign"].encode(),
                padding.PKCS1v15(),
                digest,
            )
            receipts += out["receipts"]
    mine = [r for r in receipts if r["provider_message_id"] == answer["provider_message_id"]]
    assert mine and mine[-1]["status"] == status
    assert json.dumps(mine)  # plain JSON all the way
