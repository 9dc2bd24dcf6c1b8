"""WhatsApp Cloud API: text and template sends, Graph errors, signed batched webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import httpx

from hermes.sandbox import Sandbox
from hermes.sandbox.credentials import WHATSAPP

from .conftest import VERIFY_TOKEN, CallbackReceiver

AUTH = {"authorization": f"Bearer {WHATSAPP.access_token}"}
PATH = f"/v21.0/{WHATSAPP.phone_number_id}/messages"


def _text(to: str) -> dict[str, object]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            "type": "text", "text": {"preview_url": False, "body": "Your code is 123456"}}


async def test_text_send_returns_contact_and_wamid(http: httpx.AsyncClient) -> None:
    answer = await http.post(PATH, headers=AUTH, json=_text("447400123456"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "447400123456", "wa_id": "447400123456"}]
    assert body["messages"][0]["id"].startswith("wamid.")


async def test_template_send_is_accepted(http: httpx.AsyncClient) -> None:
    answer = await http.post(PATH, headers=AUTH, json={
        "messaging_product": "whatsapp", "to": "+447400123456", "type": "template",
        "template": {"name": "otp", "language": {"code": "en_US"}},
    })
    assert answer.status_code == 200
    assert answer.json()["messages"][0]["message_status"] == "accepted"


async def test_bad_token_is_graph_oauth_error_190(http: httpx.AsyncClient) -> None:
    answer = await http.post(PATH, headers={"authorization": "Bearer nope"},
                             json=_text("447400123456"))
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert (error["code"], error["type"]) == (190, "OAuthException")
    assert error["fbtrace_id"]


async def test_missing_parameter_is_error_100(http: httpx.AsyncClient) -> None:
    payload = _text("447400123456")
    del payload["messaging_product"]
    answer = await http.post(PATH, headers=AUTH, json=payload)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == 100
    assert "messaging_product" in answer.json()["error"]["message"]


async def test_status_webhooks_are_batched_and_signed(
    sandbox: Sandbox, receiver: CallbackReceiver, http: httpx.AsyncClient,
) -> None:
    path = f"/wa-{uuid.uuid4().hex}"
    await http.put("/_sandbox/whatsapp/webhook", json={"url": receiver.url + path})
    sandbox.state.config.receipt_delay = 0.2  # every status falls due in the same window
    ids = []
    for _ in range(5):
        answer = await http.post(PATH, headers=AUTH, json=_text("447400000001"))
        ids.append(answer.json()["messages"][0]["id"])
    await sandbox.drain()
    posts = receiver.at(path)
    statuses = []
    for post in posts:
        expected = "sha256=" + hmac.new(WHATSAPP.app_secret.encode(), post.body,
                                        hashlib.sha256).hexdigest()
        assert hmac.compare_digest(post.headers["x-hub-signature-256"], expected)
        body = json.loads(post.body)
        assert body["object"] == "whatsapp_business_account"
        value = body["entry"][0]["changes"][0]["value"]
        assert value["metadata"]["phone_number_id"] == WHATSAPP.phone_number_id
        statuses.extend(value["statuses"])
    assert len(posts) < len(statuses) == 10  # sent + delivered per message, fewer POSTs
    assert sorted((s["id"], s["status"]) for s in statuses) == sorted(
        (i, s) for i in ids for s in ("sent", "delivered"))
    await http.put("/_sandbox/whatsapp/webhook", json={"url": None})


async def test_webhook_is_set_only_if_the_endpoint_echoes_the_challenge(
    receiver: CallbackReceiver, http: httpx.AsyncClient,
) -> None:
    url = receiver.url + "/wa-verify"
    refused = await http.put("/_sandbox/whatsapp/webhook",
                             json={"url": url, "verify_token": "wrong"})
    assert refused.status_code == 400
    assert (await http.get("/_sandbox/whatsapp/webhook")).json()["url"] is None
    accepted = await http.put("/_sandbox/whatsapp/webhook",
                              json={"url": url, "verify_token": VERIFY_TOKEN})
    assert accepted.json() == {"url": url, "verified": True}
    await http.put("/_sandbox/whatsapp/webhook", json={"url": None})
