"""twilio_sms against the official `twilio` SDK: the request it builds, the
responses it maps and the StatusCallback signatures it checks."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests.unit.adapters.wasm import AdapterError, adapter, header

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "f" * 32
CALLBACK = "https://hermes.example.com/v1/callbacks/acc_1/twilio_sms?tenant=t%201"

CREATED = {
    "sid": "SM" + "1" * 32,
    "status": "queued",
    "num_segments": "1",
    "price": None,
    "price_unit": "USD",
    "error_code": None,
    "account_sid": SID,
}


class RecordingHttpClient(HttpClient):
    """Prepares the request exactly as the SDK's requests-based client does, records it."""

    def __init__(self) -> None:
        super().__init__(logger=None, is_async=False)  # type: ignore[arg-type]
        self.prepared: requests.PreparedRequest | None = None

    def request(self, method, uri, params=None, data=None, headers=None, auth=None, **_kw):  # type: ignore[no-untyped-def,override]
        self.prepared = requests.Request(
            method.upper(), uri, params=params, data=data, headers=headers, auth=auth
        ).prepare()
        return Response(201, json.dumps(CREATED))


def sdk_request(to: str, body: str, **kwargs: Any) -> requests.PreparedRequest:
    http = RecordingHttpClient()
    Client(SID, TOKEN, http_client=http).messages.create(to=to, body=body, **kwargs)
    assert http.prepared is not None
    return http.prepared


def build(to: str, body: str, config: dict[str, Any]) -> dict[str, Any]:
    return adapter("twilio_sms").build_request(
        {
            "message": {"id": "msg_1", "channel": "sms", "to": to, "body": body},
            "credentials": {"account_sid": SID, "auth_token": TOKEN},
            "config": config,
            "now": 1_767_225_600_000,
            "attempt_id": "att_1",
        }
    )


def assert_same_request(ours: dict[str, Any], sdk: requests.PreparedRequest) -> None:
    assert ours["method"] == sdk.method
    assert ours["url"] == sdk.url
    assert ours["body"] == sdk.body
    for name in ("Authorization", "Content-Type", "Accept", "Accept-Charset"):
        assert header(ours, name) == sdk.headers[name], name


def test_request_matches_the_sdk_with_a_from_number(body: str) -> None:
    ours = build("+14155550100", body, {"from": "+14155550199", "callback_url": CALLBACK})
    sdk = sdk_request("+14155550100", body, from_="+14155550199", status_callback=CALLBACK)
    assert_same_request(ours, sdk)


def test_request_matches_the_sdk_with_a_messaging_service(body: str) -> None:
    service = "MG" + "2" * 32
    ours = build("+447700900123", body, {"messaging_service_sid": service})
    sdk = sdk_request("+447700900123", body, messaging_service_sid=service)
    assert_same_request(ours, sdk)


def test_request_honours_base_url_and_api_keys() -> None:
    ours = adapter("twilio_sms").build_request(
        {
            "message": {"to": "+14155550100", "body": "hi"},
            "credentials": {"account_sid": SID, "api_key_sid": "SK1", "api_key_secret": "s3"},
            "config": {"from": "+14155550199", "base_url": "http://sandbox.local:8025/twilio/"},
            "now": 0,
            "attempt_id": "a",
        }
    )
    assert (
        ours["url"] == f"http://sandbox.local:8025/twilio/2010-04-01/Accounts/{SID}/Messages.json"
    )
    assert header(ours, "Authorization") == "Basic " + base64.b64encode(b"SK1:s3").decode()


@pytest.mark.parametrize(
    ("missing", "config", "credentials"),
    [
        ("config.from", {}, {"account_sid": SID, "auth_token": TOKEN}),
        ("credentials.auth_token", {"from": "+1"}, {"account_sid": SID}),
        ("credentials.account_sid", {"from": "+1"}, {"auth_token": TOKEN}),
    ],
)
def test_missing_settings_are_bad_input(missing: str, config: dict, credentials: dict) -> None:
    with pytest.raises(AdapterError) as exc:
        adapter("twilio_sms").build_request(
            {"message": {"to": "+1", "body": "x"}, "credentials": credentials, "config": config}
        )
    assert exc.value.code == "adapter.bad_input"
    assert missing in exc.value.message


def test_created_message_is_accepted() -> None:
    out = adapter("twilio_sms").parse_response(201, CREATED)
    assert out == {"outcome": "accepted", "provider_message_id": CREATED["sid"], "segments": 1}


def twilio_error(code: int, status: int, message: str = "m") -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@pytest.mark.parametrize(
    ("status", "code", "outcome", "hermes_code"),
    [
        (400, 21211, "rejected", "provider.invalid_recipient"),
        (400, 21614, "rejected", "provider.invalid_recipient"),
        (400, 21610, "rejected", "provider.rejected"),
        (400, 21602, "rejected", "provider.rejected"),
        (401, 20003, "rejected", "provider.auth_failed"),
        (429, 20429, "retryable", "provider.rate_limited"),
        (400, 14107, "retryable", "provider.rate_limited"),
        (500, 20500, "retryable", "provider.unavailable"),
        (503, 20503, "retryable", "provider.unavailable"),
    ],
)
def test_errors_are_mapped(status: int, code: int, outcome: str, hermes_code: str) -> None:
    out = adapter("twilio_sms").parse_response(status, twilio_error(code, status, "Bad 'To' ✗"))
    assert out["outcome"] == outcome
    assert out["code"] == hermes_code
    assert out["provider_code"] == str(code)
    assert out["message"] == "Bad 'To' ✗"


def test_retry_after_is_passed_on_and_non_json_5xx_is_unavailable() -> None:
    out = adapter("twilio_sms").parse_response(
        429, twilio_error(20429, 429), [["retry-after", "12"]]
    )
    assert out["retry_after_ms"] == 12_000
    out = adapter("twilio_sms").parse_response(502, "<html>Bad Gateway</html>")
    assert out == {
        "outcome": "retryable",
        "code": "provider.unavailable",
        "message": "<html>Bad Gateway</html>",
    }


# The StatusCallback parameters Twilio documents for an outbound SMS.
def callback_params(status: str = "delivered", error: str | None = None) -> dict[str, str]:
    params = {
        "AccountSid": SID,
        "ApiVersion": "2010-04-01",
        "From": "+14155550199",
        "MessageSid": "SM" + "1" * 32,
        "MessageStatus": status,
        "SmsSid": "SM" + "1" * 32,
        "SmsStatus": status,
        "To": "+14155550100",
    }
    if error is not None:
        params["ErrorCode"] = error
    return params


def callback(
    params: dict[str, str], url: str = CALLBACK, signature: str | None = None, **extra: Any
) -> dict[str, Any]:
    if signature is None:
        signature = RequestValidator(TOKEN).compute_signature(url, params)
    headers = [
        ["Content-Type", "application/x-www-form-urlencoded"],
        ["X-Twilio-Signature", signature],
        *extra.pop("headers", []),
    ]
    return adapter("twilio_sms").parse_callback(
        {
            "method": "POST",
            "url": url,
            "headers": headers,
            "body": urlencode(params),
            "credentials": extra.pop("credentials", {"account_sid": SID, "auth_token": TOKEN}),
        }
    )


@pytest.mark.parametrize(
    ("twilio_status", "status"),
    [("delivered", "delivered"), ("sent", "sent"), ("failed", "failed"), ("read", "read")],
)
def test_signed_status_callback_is_verified_and_parsed(twilio_status: str, status: str) -> None:
    out = callback(callback_params(twilio_status))
    assert out == {
        "verified": True,
        "receipts": [{"provider_message_id": "SM" + "1" * 32, "status": status}],
    }


def test_undelivered_callback_carries_the_error_code() -> None:
    out = callback(callback_params("undelivered", "30003"))
    assert out["receipts"] == [
        {
            "provider_message_id": "SM" + "1" * 32,
            "status": "undelivered",
            "provider_error_code": "30003",
        }
    ]


def test_signature_with_unicode_and_escaped_params_verifies(body: str) -> None:
    params = {**callback_params(), "Body": body, "Zeta": "&=+%"}
    assert callback(params)["verified"] is True


def test_signature_over_the_url_with_an_explicit_port_verifies() -> None:
    params = callback_params()
    signed_with_port = RequestValidator(TOKEN).compute_signature(
        CALLBACK.replace("example.com/", "example.com:443/"), params
    )
    assert callback(params, signature=signed_with_port)["verified"] is True


@pytest.mark.parametrize(
    "tamper",
    ["status", "url", "signature", "token", "missing"],
)
def test_tampered_callback_is_not_verified_and_yields_no_receipts(tamper: str) -> None:
    params = callback_params()
    signature = RequestValidator(TOKEN).compute_signature(CALLBACK, params)
    kwargs: dict[str, Any] = {}
    url = CALLBACK
    if tamper == "status":
        params = {**params, "MessageStatus": "failed"}
    elif tamper == "url":
        url = CALLBACK.replace("acc_1", "acc_2")
    elif tamper == "signature":
        signature = signature[:-2] + ("A=" if signature[-2:] != "A=" else "B=")
    elif tamper == "token":
        kwargs["credentials"] = {"account_sid": SID, "auth_token": "e" * 32}
    elif tamper == "missing":
        signature = ""
    assert callback(params, url=url, signature=signature, **kwargs) == {
        "verified": False,
        "receipts": [],
    }


def test_shared_key_sha256_signatures_are_verified() -> None:
    params = callback_params()
    secret = "shared-key-secret"
    signature = RequestValidator(secret).compute_signature(CALLBACK, params, "HMAC_SHA256")
    settings = [["X-Twilio-Webhooks-Signature-Settings", "key=KS123,algorithm=HMAC_SHA256"]]
    creds = {"account_sid": SID, "auth_token": TOKEN, "webhook_shared_key_secret": secret}
    out = callback(params, signature=signature, headers=settings, credentials=creds)
    assert out["verified"] is True
    # Signed with the auth token instead of the shared key: rejected.
    wrong = RequestValidator(TOKEN).compute_signature(CALLBACK, params, "HMAC_SHA256")
    out = callback(params, signature=wrong, headers=settings, credentials=creds)
    assert out["verified"] is False


# The parameters Twilio posts to a number's "A message comes in" webhook.
def inbound_params(body: str = "STOP") -> dict[str, str]:
    return {
        "AccountSid": SID,
        "ApiVersion": "2010-04-01",
        "Body": body,
        "From": "+14155550100",
        "FromCountry": "US",
        "MessageSid": "SM" + "2" * 32,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsMessageSid": "SM" + "2" * 32,
        "SmsSid": "SM" + "2" * 32,
        "SmsStatus": "received",
        "To": "+14155550199",
        "ToCountry": "US",
    }


def test_an_incoming_message_is_passed_on_as_inbound_with_an_empty_twiml_answer() -> None:
    out = callback(inbound_params(" stop \n"))
    assert out["verified"] is True and out["receipts"] == []
    assert out["inbound"] == [{
        "provider_message_id": "SM" + "2" * 32, "channel": "sms",
        "from": "+14155550100", "to": "+14155550199", "body": " stop \n",
    }]
    assert out["reply"]["status"] == 200
    assert out["reply"]["content_type"] == "text/xml"
    assert out["reply"]["body"].endswith("<Response></Response>")


def test_a_forged_incoming_message_is_not_verified_and_passes_nothing_on() -> None:
    params = inbound_params()
    signature = RequestValidator(TOKEN).compute_signature(CALLBACK, params)
    forged = {**params, "From": "+14155550111"}
    assert callback(forged, signature=signature) == {"verified": False, "receipts": []}
