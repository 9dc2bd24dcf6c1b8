"""messente_sms against the official `messente-api` SDK: the Omnimessage request
it sends (captured at the HTTP pool), error mapping and delivery reports."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
import urllib3
from messente_api import SMS as MessenteSMS
from messente_api import (
    ApiClient,
    Configuration,
    Omnimessage,
    OmnimessageApi,
    OmnimessageMessagesInner,
)

from tests.unit.adapters.wasm import adapter, header

USER = "hermes-api-user"
PASSWORD = "s3cr3t:with:colons"
CALLBACK = "https://hermes.example.com/v1/callbacks/acc_1/messente_sms"
MESSAGE_ID = "fa1b0d2a-3c4e-4f5a-8b6c-7d8e9f0a1b2c"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def request(
        self, method: str, url: str, body: str | None = None, headers: Any = None, **_kw: Any
    ) -> urllib3.HTTPResponse:
        self.calls.append({"method": method, "url": url, "body": body, "headers": dict(headers)})
        payload = {
            "messages": [{"channel": "sms", "message_id": MESSAGE_ID, "sender": "Hermes"}],
            "to": "+37251000000",
            "omnimessage_id": "0a1b2c3d",
        }
        return urllib3.HTTPResponse(
            body=json.dumps(payload).encode(),
            status=201,
            headers={"Content-Type": "application/json"},
            preload_content=False,
        )


def sdk_request(omnimessage: Omnimessage) -> dict[str, Any]:
    client = ApiClient(Configuration(username=USER, password=PASSWORD))
    recorder = Recorder()
    client.rest_client.pool_manager = recorder
    result = OmnimessageApi(client).send_omnimessage(omnimessage)
    assert result.messages[0].message_id == MESSAGE_ID
    (call,) = recorder.calls
    return call


def build(
    message: dict[str, Any], credentials: dict[str, str] | None = None, **config: Any
) -> dict[str, Any]:
    return adapter("messente_sms").build_request(
        {
            "message": {"id": "msg_1", "channel": "sms", **message},
            "credentials": credentials or {"username": USER, "password": PASSWORD},
            "config": config,
            "now": 1_767_225_600_000,
            "attempt_id": "att_1",
        }
    )


def assert_same(ours: dict[str, Any], sdk: dict[str, Any]) -> None:
    assert ours["method"] == sdk["method"]
    assert ours["url"] == sdk["url"]
    assert ours["body"] == sdk["body"]  # byte for byte, as the SDK serialises it
    for name in ("Authorization", "Content-Type", "Accept"):
        assert header(ours, name) == sdk["headers"][name], name


def sms(text: str, sender: str | None = None) -> OmnimessageMessagesInner:
    return OmnimessageMessagesInner(MessenteSMS(text=text, sender=sender))


def test_request_matches_the_sdk(body: str) -> None:
    ours = build({"to": "+37251000000", "body": body}, sender="Hermes", callback_url=CALLBACK)
    sdk = sdk_request(
        Omnimessage(to="+37251000000", messages=[sms(body, "Hermes")], dlr_url=CALLBACK)
    )
    assert_same(ours, sdk)


def test_request_without_sender_or_callback_matches_the_sdk() -> None:
    ours = build({"to": "+447700900123", "body": "Grüße 😀"})
    sdk = sdk_request(Omnimessage(to="+447700900123", messages=[sms("Grüße 😀")]))
    assert_same(ours, sdk)


def test_sent_omnimessage_is_accepted() -> None:
    out = adapter("messente_sms").parse_response(
        201,
        {
            "messages": [{"channel": "sms", "message_id": MESSAGE_ID, "sender": "Hermes"}],
            "to": "+37251000000",
            "omnimessage_id": "0a1b2c3d",
        },
    )
    assert out == {"outcome": "accepted", "provider_message_id": MESSAGE_ID}


def messente_error(title: str, code: str, detail: str, source: str | None) -> dict[str, Any]:
    return {"errors": [{"title": title, "detail": detail, "code": code, "source": source}]}


@pytest.mark.parametrize(
    ("status", "error", "outcome", "code"),
    [
        (
            400,
            messente_error("Invalid data", "105", "Invalid phone number", "payload[to]"),
            "rejected",
            "provider.invalid_recipient",
        ),
        (
            400,
            messente_error("Missing data", "106", "text is required", "payload[messages]"),
            "rejected",
            "provider.rejected",
        ),
        (
            401,
            messente_error("Unauthorized", "103", "Bad credentials", None),
            "rejected",
            "provider.auth_failed",
        ),
        (
            403,
            messente_error("Forbidden", "102", "Account blocked", None),
            "rejected",
            "provider.auth_failed",
        ),
        (
            500,
            messente_error("Internal Server Error", "104", "Oops", None),
            "retryable",
            "provider.unavailable",
        ),
        (
            429,
            messente_error("Too Many Requests", "107", "Slow down", None),
            "retryable",
            "provider.rate_limited",
        ),
    ],
)
def test_errors_are_mapped(status: int, error: dict[str, Any], outcome: str, code: str) -> None:
    out = adapter("messente_sms").parse_response(status, error)
    assert (out["outcome"], out["code"]) == (outcome, code)
    assert out["provider_code"] == error["errors"][0]["code"]
    assert out["message"] == error["errors"][0]["detail"]


def report(status: str, err: int | None = 0, **extra: Any) -> dict[str, Any]:
    # The delivery report Messente posts to dlr_url (DeliveryResult + to/omnimessage_id).
    return {
        "status": status,
        "sender": "Hermes",
        "err": err,
        "message_id": MESSAGE_ID,
        "to": "+37251000000",
        "channel": "sms",
        "error": None,
        "omnimessage_id": "0a1b2c3d",
        "timestamp": "2026-02-14T08:29:56.279008",
        **extra,
    }


def sign(raw: str, key: str = PASSWORD) -> str:
    """X-Messente-Signature as Messente documents it: HMAC_SHA256(password, body)."""
    return hmac.new(key.encode(), raw.encode(), hashlib.sha256).hexdigest()


def callback(
    body: dict[str, Any] | str, signature: str | None = None, password: str = PASSWORD
) -> dict[str, Any]:
    raw = body if isinstance(body, str) else json.dumps(body)
    headers = [["Content-Type", "application/json"]]
    headers.append(["X-Messente-Signature", sign(raw) if signature is None else signature])
    return adapter("messente_sms").parse_callback(
        {
            "method": "POST",
            "url": CALLBACK,
            "body": raw,
            "headers": headers,
            "credentials": {"username": USER, "password": password},
        }
    )


@pytest.mark.parametrize(
    ("status", "err", "expected"),
    [
        ("DELIVRD", 0, {"status": "delivered"}),
        ("UNDELIV", 1, {"status": "undelivered", "provider_error_code": "1"}),
        ("EXPIRED", 2, {"status": "undelivered", "provider_error_code": "2"}),
        ("FAILED", 3, {"status": "failed", "provider_error_code": "3"}),
        ("REJECTD", 7, {"status": "failed", "provider_error_code": "7"}),
        ("ACK", 0, {"status": "sent"}),
        ("SEEN", 10, {"status": "read", "provider_error_code": "10"}),
    ],
)
def test_delivery_reports_become_receipts(status: str, err: int, expected: dict) -> None:
    out = callback(report(status, err))
    assert out == {
        "verified": True,
        "receipts": [{"provider_message_id": MESSAGE_ID, "timestamp": 1771057796279, **expected}],
    }


def test_unknown_status_yields_no_receipt() -> None:
    assert callback(report("UNKNOWN", None)) == {"verified": True, "receipts": []}


def test_signature_covers_the_raw_bytes() -> None:
    raw = json.dumps(report("DELIVRD"), ensure_ascii=False, indent=2) + "\n"
    assert callback(raw)["verified"] is True
    assert callback(raw, sign(raw).upper())["verified"] is True
    mac = hmac.new(PASSWORD.encode(), raw.encode(), hashlib.sha256).digest()
    assert callback(raw, base64.b64encode(mac).decode())["verified"] is True


@pytest.mark.parametrize("tamper", ["body", "key", "missing", "truncated"])
def test_tampered_reports_are_not_verified(tamper: str) -> None:
    raw = json.dumps(report("DELIVRD"))
    signature = {
        "body": sign(raw),
        "key": sign(raw, "other-password"),
        "missing": "",
        "truncated": sign(raw)[:-2],
    }[tamper]
    if tamper == "body":
        raw = raw.replace("DELIVRD", "UNDELIV")
    assert callback(raw, signature) == {"verified": False, "receipts": []}
