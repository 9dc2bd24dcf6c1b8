"""WhatsApp Cloud API: `POST /{version}/{phone_number_id}/messages`.

Bearer access token, text and template messages, the Graph API success body
(`contacts[]`, `messages[].id` = `wamid....`) and Graph error shape. Status
webhooks (sent, delivered, read, failed) go to the app's webhook URL (set
through the control API; Meta configures it per app, not per request), batched
as `entry[].changes[].value.statuses[]` and signed with `X-Hub-Signature-256`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import Any

import msgspec

from hermes.sandbox import credentials, outcomes
from hermes.sandbox.common import Context, bearer_token, held
from hermes.sandbox.http import Request, Response, json_response
from hermes.sandbox.outcomes import Outcome
from hermes.sandbox.receipts import Receipt

PROVIDER = "whatsapp"
PATH = "/{version}/{phone_number_id}/messages"
_VERSION = re.compile(r"^v\d{1,2}\.\d$")
_TYPES = ("text", "template", "image", "document", "audio", "video", "sticker", "location",
          "contacts", "interactive", "reaction")
_encode = msgspec.json.Encoder().encode
ERRORS_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


def error(status: int, code: int, message: str, kind: str = "OAuthException",
          details: str | None = None, headers: list[tuple[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"message": message, "type": kind, "code": code,
                            "fbtrace_id": base64.b64encode(secrets.token_bytes(12)).decode()}
    if details is not None:
        body["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return json_response(status, {"error": body}, headers)


def signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def install(ctx: Context) -> None:
    creds = credentials.WHATSAPP

    def send(request: Request) -> Any:
        version, phone_number_id = request.params
        if not _VERSION.match(version):
            return error(400, 2500, "Unknown path components: /" + version, "OAuthException")
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            return error(400, 2500, "An active access token must be used to query information "
                         "about the current user.")
        if token != creds.access_token:
            return error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if phone_number_id != creds.phone_number_id:
            return error(400, 100, f"Unsupported post request. Object with ID "
                         f"'{phone_number_id}' does not exist, cannot be loaded due to missing "
                         "permissions, or does not support this operation.",
                         "GraphMethodException")
        try:
            payload = request.json()
        except msgspec.DecodeError:
            return error(400, 100, "(#100) Invalid parameter")
        outcome: Outcome | None = None
        response, to = _check(payload)
        if response is None:
            outcome, delay = ctx.state.resolve(PROVIDER, to, outcomes.for_phone(to))
            response = _answer(ctx, payload, to, outcome, delay)
        ctx.state.record(PROVIDER, request.method, request.path, request.headers, payload,
                         response.status if isinstance(response, Response) else 0, outcome)
        return response

    ctx.router.add("POST", PATH, send)


def _check(payload: Any) -> tuple[Response | None, str]:
    if not isinstance(payload, dict):
        return error(400, 100, "(#100) Invalid parameter"), ""
    for name in ("messaging_product", "to"):
        if not payload.get(name):
            return error(400, 100, f"(#100) The parameter {name} is required."), ""
    if payload["messaging_product"] != "whatsapp":
        return error(400, 100, "(#100) Param messaging_product must be one of {WHATSAPP} - got "
                     f"\"{payload['messaging_product']}\"."), ""
    to = outcomes.normalise_phone(str(payload["to"]))
    if to is None:
        return error(400, 131009, "(#131009) Parameter value is not valid",
                     details="Recipient phone number is not a valid phone number"), ""
    kind = payload.get("type", "text")
    if kind not in _TYPES:
        return error(400, 100, f"(#100) Param type must be one of {{{', '.join(_TYPES)}}}"), ""
    if kind == "text" and not (payload.get("text") or {}).get("body"):
        return error(400, 100, "(#100) The parameter text['body'] is required."), ""
    if kind == "template":
        template = payload.get("template") or {}
        if not template.get("name"):
            return error(400, 100, "(#100) The parameter template['name'] is required."), ""
        if not (template.get("language") or {}).get("code"):
            return error(400, 100, "(#100) The parameter template['language']['code'] is "
                         "required."), ""
    return None, to


def _answer(ctx: Context, payload: dict[str, Any], to: str, outcome: Outcome,
            delay: float) -> Any:
    if outcome is Outcome.SERVER_ERROR:
        return error(500, 131000, "(#131000) Something went wrong",
                     details="Message failed to send due to an unknown error.")
    if outcome is Outcome.RATE_LIMITED:
        return error(429, 130429, "(#130429) Rate limit hit", details="Cloud API message "
                     "throughput has been reached.",
                     headers=[("retry-after", str(ctx.state.config.retry_after))])
    if outcome is Outcome.TIMEOUT:
        return held(ctx)
    wa_id = to[1:]
    wamid = "wamid." + base64.b64encode(b"HBgL" + secrets.token_bytes(24)).decode()
    message: dict[str, str] = {"id": wamid}
    if payload.get("type") == "template":
        message["message_status"] = "accepted"
    webhook = ctx.state.whatsapp_webhook
    if webhook and outcome is not Outcome.NO_RECEIPT:
        statuses = ["sent", "failed"] if outcome is Outcome.UNDELIVERED else ["sent", "delivered"]
        build = _webhook(webhook)
        for status in statuses:
            ctx.receipts.batch_later(delay, webhook, _status(wamid, wa_id, status), build)
        if outcome is Outcome.READ:
            ctx.receipts.batch_later(2 * delay, webhook, _status(wamid, wa_id, "read"), build)
    return json_response(200, {
        "messaging_product": "whatsapp",
        "contacts": [{"input": str(payload["to"]), "wa_id": wa_id}],
        "messages": [message],
    })


def _status(wamid: str, wa_id: str, status: str) -> dict[str, Any]:
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(time.time())),
                            "recipient_id": wa_id}
    if status == "failed":
        item["errors"] = [{"code": 131026, "title": "Message undeliverable",
                           "message": "Message undeliverable",
                           "error_data": {"details": "Message Undeliverable."},
                           "href": ERRORS_HREF}]
    elif status in ("sent", "delivered"):
        item["conversation"] = {"id": hashlib.md5(wa_id.encode()).hexdigest(),
                                "origin": {"type": "utility"}}
        item["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "utility"}
    return item


def _webhook(url: str) -> Any:
    creds = credentials.WHATSAPP

    def build(statuses: list[dict[str, Any]]) -> Receipt:
        body = _encode({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": creds.business_account_id,
                "changes": [{
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": creds.display_phone_number,
                                     "phone_number_id": creds.phone_number_id},
                        "statuses": statuses,
                    },
                    "field": "messages",
                }],
            }],
        })
        headers = {"content-type": "application/json",
                   "x-hub-signature-256": signature(creds.app_secret, body)}
        return Receipt(PROVIDER, url, body, headers)

    return build
