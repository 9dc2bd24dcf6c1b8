"""whatsapp_cloud against the documented Cloud API requests, error responses and
`messages` webhooks (X-Hub-Signature-256)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from tests.unit.adapters.wasm import AdapterError, adapter, header

TOKEN = "EAAG" + "x" * 40
APP_SECRET = "0123456789abcdef0123456789abcdef"
PHONE_NUMBER_ID = "106540352242922"
WAMID = "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"


def build(message: dict[str, Any], **config: Any) -> dict[str, Any]:
    return adapter("whatsapp_cloud").build_request(
        {
            "message": {"id": "msg_1", "channel": "whatsapp", **message},
            "credentials": {"access_token": TOKEN, "app_secret": APP_SECRET},
            "config": {"phone_number_id": PHONE_NUMBER_ID, **config},
            "now": 1_767_225_600_000,
            "attempt_id": "att_1",
        }
    )


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def test_text_message_is_the_documented_request(body: str) -> None:
    request = build({"to": "+16505551234", "body": body})
    assert request["method"] == "POST"
    assert request["url"] == f"https://graph.facebook.com/v23.0/{PHONE_NUMBER_ID}/messages"
    assert header(request, "Authorization") == f"Bearer {TOKEN}"
    assert header(request, "Content-Type") == "application/json"
    documented = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+16505551234",
        "type": "text",
        "text": {"preview_url": False, "body": body},
    }
    assert json.loads(request["body"]) == documented
    assert request["body"] == compact(documented)


def test_template_message_with_components_is_passed_through() -> None:
    components = [
        {"type": "header", "parameters": [{"type": "text", "text": "Ünïcödé 😀"}]},
        {
            "type": "body",
            "parameters": [
                {
                    "type": "currency",
                    "currency": {"fallback_value": "$100.99", "code": "USD", "amount_1000": 100990},
                }
            ],
        },
        {
            "type": "button",
            "sub_type": "url",
            "index": "0",
            "parameters": [{"type": "text", "text": "a&b=c"}],
        },
    ]
    request = build(
        {
            "to": "16505551234",
            "template": {"name": "order_update", "language": "de", "components": components},
        },
        api_version="v21.0",
    )
    assert request["url"] == f"https://graph.facebook.com/v21.0/{PHONE_NUMBER_ID}/messages"
    assert json.loads(request["body"]) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "template",
        "template": {"name": "order_update", "language": {"code": "de"}, "components": components},
    }


def test_template_parameters_fill_the_body_placeholders() -> None:
    request = build(
        {"to": "16505551234", "template": {"name": "otp", "parameters": ["123456", 42]}}
    )
    assert json.loads(request["body"])["template"] == {
        "name": "otp",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "123456"}, {"type": "text", "text": "42"}],
            },
        ],
    }


def test_base_url_override_and_missing_phone_number_id() -> None:
    request = build({"to": "1", "body": "x"}, base_url="http://127.0.0.1:9000/wa")
    assert request["url"] == f"http://127.0.0.1:9000/wa/v23.0/{PHONE_NUMBER_ID}/messages"
    with pytest.raises(AdapterError) as exc:
        adapter("whatsapp_cloud").build_request(
            {
                "message": {"to": "1", "body": "x"},
                "credentials": {"access_token": "t"},
                "config": {},
            }
        )
    assert exc.value.code == "adapter.bad_input"
    assert "config.phone_number_id" in exc.value.message


def test_sent_message_is_accepted() -> None:
    out = adapter("whatsapp_cloud").parse_response(
        200,
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
            "messages": [{"id": WAMID, "message_status": "accepted"}],
        },
    )
    assert out == {"outcome": "accepted", "provider_message_id": WAMID}


def graph_error(code: int, message: str, details: str = "details") -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
        }
    }


@pytest.mark.parametrize(
    ("status", "code", "outcome", "hermes_code"),
    [
        (400, 131026, "rejected", "provider.invalid_recipient"),
        (400, 131030, "rejected", "provider.invalid_recipient"),
        (400, 131047, "rejected", "provider.rejected"),
        (400, 132001, "rejected", "provider.rejected"),
        (400, 100, "rejected", "provider.rejected"),
        (401, 190, "rejected", "provider.auth_failed"),
        (403, 200, "rejected", "provider.auth_failed"),
        (400, 130429, "retryable", "provider.rate_limited"),
        (400, 131056, "retryable", "provider.rate_limited"),
        (429, 4, "retryable", "provider.rate_limited"),
        (500, 131000, "retryable", "provider.unavailable"),
        (503, 2, "retryable", "provider.unavailable"),
        (400, 133004, "retryable", "provider.unavailable"),
    ],
)
def test_errors_are_mapped(status: int, code: int, outcome: str, hermes_code: str) -> None:
    out = adapter("whatsapp_cloud").parse_response(
        status, graph_error(code, f"(#{code}) Title", "Détails ✓")
    )
    assert out["outcome"] == outcome
    assert out["code"] == hermes_code
    assert out["provider_code"] == str(code)
    assert out["message"] == f"(#{code}) Title: Détails ✓"


def test_gateway_errors_without_json_are_retryable() -> None:
    out = adapter("whatsapp_cloud").parse_response(502, "Bad Gateway", [["Retry-After", "5"]])
    assert out["outcome"] == "retryable"
    assert out["code"] == "provider.unavailable"
    assert out["retry_after_ms"] == 5000


def status_webhook(*statuses: dict[str, Any]) -> dict[str, Any]:
    # The documented `messages` webhook shape for status updates.
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            "statuses": list(statuses),
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def status(kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": WAMID,
        "status": kind,
        "timestamp": "1750263773",
        "recipient_id": "16505551234",
        **extra,
    }


def callback(
    payload: dict[str, Any] | str, secret: str = APP_SECRET, signature: str | None = None
) -> dict[str, Any]:
    raw = payload if isinstance(payload, str) else json.dumps(payload)
    if signature is None:
        signature = "sha256=" + hmac.new(secret.encode(), raw.encode(), hashlib.sha256).hexdigest()
    return adapter("whatsapp_cloud").parse_callback(
        {
            "method": "POST",
            "url": "https://hermes.example.com/v1/callbacks/acc_1/whatsapp_cloud",
            "headers": [["Content-Type", "application/json"], ["X-Hub-Signature-256", signature]],
            "body": raw,
            "credentials": {"access_token": TOKEN, "app_secret": APP_SECRET},
        }
    )


def test_status_webhooks_become_receipts() -> None:
    payload = status_webhook(
        status(
            "sent",
            conversation={"id": "c1", "origin": {"type": "utility"}},
            pricing={"billable": True, "pricing_model": "CBP", "category": "utility"},
        ),
        status("delivered"),
        status("read"),
        status(
            "failed",
            errors=[
                {
                    "code": 131050,
                    "title": "Unable to deliver the message.",
                    "message": "Unable to deliver the message.",
                    "error_data": {"details": "The user stopped marketing."},
                }
            ],
        ),
        status("deleted"),
    )
    out = callback(payload)
    assert out["verified"] is True
    base = {"provider_message_id": WAMID, "timestamp": 1_750_263_773_000}
    assert out["receipts"] == [
        {**base, "status": "sent"},
        {**base, "status": "delivered"},
        {**base, "status": "read"},
        {**base, "status": "failed", "provider_error_code": "131050"},
    ]


def test_inbound_text_messages_are_passed_on_without_receipts() -> None:
    payload = status_webhook()
    del payload["entry"][0]["changes"][0]["value"]["statuses"]
    payload["entry"][0]["changes"][0]["value"]["messages"] = [
        {
            "from": "16505551234",
            "id": "wamid.in",
            "timestamp": "1750263773",
            "type": "text",
            "text": {"body": "Hallo 👋"},
        },
        {
            "from": "16505551234",
            "id": "wamid.img",
            "timestamp": "1750263774",
            "type": "image",
            "image": {"id": "media-1", "mime_type": "image/jpeg"},
        },
    ]
    to = payload["entry"][0]["changes"][0]["value"]["metadata"]["display_phone_number"]
    assert callback(payload) == {
        "verified": True,
        "receipts": [],
        "inbound": [{"provider_message_id": "wamid.in", "channel": "whatsapp",
                     "from": "+16505551234", "to": "+" + to.lstrip("+"), "body": "Hallo 👋"}],
    }


def test_signature_is_over_the_raw_bytes_including_unicode() -> None:
    raw = json.dumps(status_webhook(status("delivered")), ensure_ascii=False, indent=1) + " ü"
    raw = raw[:-2]
    assert callback(raw)["verified"] is True
    upper = (
        "sha256=" + hmac.new(APP_SECRET.encode(), raw.encode(), hashlib.sha256).hexdigest().upper()
    )
    assert callback(raw, signature=upper)["verified"] is True


@pytest.mark.parametrize("tamper", ["body", "secret", "prefix", "missing", "truncated"])
def test_tampered_webhooks_are_not_verified(tamper: str) -> None:
    raw = json.dumps(status_webhook(status("delivered")))
    good = "sha256=" + hmac.new(APP_SECRET.encode(), raw.encode(), hashlib.sha256).hexdigest()
    signature = {
        "body": good,
        "secret": None,
        "prefix": good.replace("sha256=", "sha1="),
        "missing": "",
        "truncated": good[:-1],
    }[tamper]
    if tamper == "body":
        raw = raw.replace("delivered", "read")
    secret = "wrong" if tamper == "secret" else APP_SECRET
    assert callback(raw, secret=secret, signature=signature) == {"verified": False, "receipts": []}


def handshake(query: str, token: str | None = "verify-me") -> dict[str, Any]:
    creds = {"access_token": TOKEN, "app_secret": APP_SECRET}
    if token:
        creds["webhook_verify_token"] = token
    return adapter("whatsapp_cloud").parse_callback(
        {
            "method": "GET",
            "headers": [],
            "body": "",
            "credentials": creds,
            "url": "https://hermes.example.com/v1/callbacks/acc_1/whatsapp_cloud?" + query,
        }
    )


def test_subscription_handshake_is_answered_with_the_challenge() -> None:
    out = handshake("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-me")
    assert out == {
        "verified": True,
        "receipts": [],
        "reply": {"status": 200, "content_type": "text/plain", "body": "1158201444"},
    }


@pytest.mark.parametrize(
    ("query", "token"),
    [
        ("hub.mode=subscribe&hub.challenge=1&hub.verify_token=wrong", "verify-me"),
        ("hub.mode=subscribe&hub.challenge=1&hub.verify_token=verify-me", None),
    ],
)
def test_handshake_with_the_wrong_token_gets_no_reply(query: str, token: str | None) -> None:
    out = handshake(query, token)
    assert out["verified"] is False and "reply" not in out
