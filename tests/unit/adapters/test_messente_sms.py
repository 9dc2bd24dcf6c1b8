"""messente_sms against the official `messente-api` SDK: the Omnimessage request
it sends (captured at the HTTP pool), error mapping and delivery reports."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

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

from tests.unit.adapters.wasm import AdapterError, adapter, header

USER = "hermes-api-user"
PASSWORD = "s3cr3t:with:colons"
SECRET = "cb/secret+1"
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


def test_callback_secret_goes_into_the_dlr_url_as_basic_auth() -> None:
    creds = {"username": USER, "password": PASSWORD, "callback_secret": SECRET}
    ours = build({"to": "+37251000000", "body": "x"}, creds, callback_url=CALLBACK)
    dlr = json.loads(ours["body"])["dlr_url"]
    assert dlr == CALLBACK.replace("https://", f"https://hermes:{quote(SECRET, safe='')}@")
    parsed = urllib3.util.parse_url(dlr)
    assert parsed.auth == f"hermes:{quote(SECRET, safe='')}"
    with pytest.raises(AdapterError):
        build({"to": "+1", "body": "x"}, creds, callback_url="https://u:p@evil.example/cb")


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


def callback(
    body: dict[str, Any], authorization: str | None = None, secret: str | None = SECRET
) -> dict[str, Any]:
    if authorization is None:
        authorization = "Basic " + base64.b64encode(f"hermes:{SECRET}".encode()).decode()
    creds = {"username": USER, "password": PASSWORD}
    if secret:
        creds["callback_secret"] = secret
    return adapter("messente_sms").parse_callback(
        {
            "method": "POST",
            "url": CALLBACK,
            "body": json.dumps(body),
            "credentials": creds,
            "headers": [["Content-Type", "application/json"], ["Authorization", authorization]],
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


@pytest.mark.parametrize(
    ("authorization", "secret"),
    [
        ("Basic " + base64.b64encode(b"hermes:wrong").decode(), SECRET),
        ("", SECRET),
        ("Bearer " + SECRET, SECRET),
        ("Basic " + base64.b64encode(f"hermes:{SECRET}".encode()).decode(), None),
    ],
)
def test_reports_without_the_callback_secret_are_not_verified(
    authorization: str, secret: str | None
) -> None:
    assert callback(report("DELIVRD"), authorization, secret) == {"verified": False, "receipts": []}
