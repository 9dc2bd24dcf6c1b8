"""Messente Omnimessage: `POST /v1/omnimessage`.

JSON body with `to` and a `messages` list of channel objects, HTTP Basic auth
with the API username and password, a 201 listing one message id per channel,
Messente's `{"errors": [...]}` container, and delivery reports POSTed as JSON
to the request's `dlr_url`, signed with `X-Messente-Signature`
(hex HMAC-SHA256 of the body, keyed by the API password).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Any

import msgspec

from hermes.sandbox import credentials, outcomes
from hermes.sandbox.common import Context, basic_credentials, held, utc_now
from hermes.sandbox.http import Request, Response, json_response
from hermes.sandbox.outcomes import Outcome
from hermes.sandbox.receipts import Receipt

PROVIDER = "messente"
PATH = "/v1/omnimessage"
CHANNELS = ("sms", "viber", "whatsapp", "telegram", "rcs")
_TITLES = {
    "101": "Not found", "102": "Forbidden", "103": "Unauthorized",
    "104": "Internal Server Error", "105": "Invalid data", "106": "Missing data",
    "107": "Method not allowed",
}
_encode = msgspec.json.Encoder().encode


def error(status: int, code: str, detail: str, source: str | None = None,
          headers: list[tuple[str, str]] | None = None) -> Response:
    item = {"title": _TITLES[code], "detail": detail, "code": code, "source": source}
    return json_response(status, {"errors": [item]}, headers)


def signature(password: str, body: bytes) -> str:
    return hmac.new(password.encode(), body, hashlib.sha256).hexdigest()


def install(ctx: Context) -> None:
    creds = credentials.MESSENTE

    def send(request: Request) -> Any:
        auth = basic_credentials(request.headers.get("authorization", ""))
        if auth != (creds.username, creds.password):
            return error(401, "103", "Invalid credentials")
        try:
            payload = request.json()
        except msgspec.DecodeError:
            return error(400, "105", "Request body is not valid JSON", "payload")
        response, outcome = _check(payload)
        if response is None:
            to = payload["to"]
            outcome, delay = ctx.state.resolve(PROVIDER, to, outcomes.for_phone(to))
            response = _answer(ctx, payload, outcome, delay)
        ctx.state.record(PROVIDER, request.method, request.path, request.headers, payload,
                         response.status if isinstance(response, Response) else 0, outcome)
        return response

    ctx.router.add("POST", PATH, send)


def _check(payload: Any) -> tuple[Response | None, None]:
    if not isinstance(payload, dict):
        return error(400, "105", "Payload must be a JSON object", "payload"), None
    to = payload.get("to")
    if not to:
        return error(400, "106", "Recipient number is missing", "payload[to]"), None
    if not isinstance(to, str) or outcomes.normalise_phone(to) != to:
        return error(400, "105", "Recipient number is not in E.164 format", "payload[to]"), None
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        return error(400, "106", "At least one message is required", "payload[messages]"), None
    for i, message in enumerate(messages):
        where = f"payload[messages][{i}]"
        if not isinstance(message, dict):
            return error(400, "105", "Message must be an object", where), None
        channel = message.get("channel", "sms")
        if channel not in CHANNELS:
            return error(400, "105", f"Unknown channel '{channel}'", f"{where}[channel]"), None
        if channel == "sms" and not message.get("text"):
            return error(400, "106", "Text is missing", f"{where}[text]"), None
        sender = message.get("sender")
        if sender is not None and (not isinstance(sender, str) or not 1 <= len(sender) <= 15):
            return error(400, "105", "Invalid sender", f"{where}[sender]"), None
    dlr_url = payload.get("dlr_url")
    if dlr_url is not None and not (
        isinstance(dlr_url, str) and dlr_url.startswith(("http://", "https://"))
    ):
        return error(400, "105", "Invalid dlr_url", "payload[dlr_url]"), None
    return None, None


def _answer(ctx: Context, payload: dict[str, Any], outcome: Outcome, delay: float) -> Any:
    if outcome is Outcome.SERVER_ERROR:
        return error(500, "104", "Internal Server Error")
    if outcome is Outcome.RATE_LIMITED:
        # Messente documents no throttling body; its error container is reused.
        retry = str(ctx.state.config.retry_after)
        return error(429, "102", "Too many requests", None, [("retry-after", retry)])
    if outcome is Outcome.TIMEOUT:
        return held(ctx)
    omnimessage_id = str(uuid.uuid4())
    results = [
        {
            "channel": m.get("channel", "sms"),
            "message_id": str(uuid.uuid4()),
            "sender": m.get("sender") or credentials.MESSENTE.sender,
        }
        for m in payload["messages"]
    ]
    dlr_url = payload.get("dlr_url")
    if dlr_url and outcome is not Outcome.NO_RECEIPT:
        reports = results[:1] if outcome is not Outcome.UNDELIVERED else results
        ctx.receipts.send_later(delay, [
            _report(dlr_url, payload["to"], omnimessage_id, r, outcome) for r in reports
        ])
    return json_response(201, {
        "messages": results, "to": payload["to"], "omnimessage_id": omnimessage_id,
    })


def _report(url: str, to: str, omnimessage_id: str, result: dict[str, str],
            outcome: Outcome) -> Receipt:
    failed = outcome is Outcome.UNDELIVERED
    report = {
        "status": "UNDELIV" if failed else "DELIVRD",
        "sender": result["sender"],
        "err": 1 if failed else 0,
        "message_id": result["message_id"],
        "to": to,
        "channel": result["channel"],
        "error": "Delivery failure" if failed else None,
        "omnimessage_id": omnimessage_id,
        "timestamp": utc_now().replace(tzinfo=None).isoformat(timespec="microseconds"),
    }
    body = _encode(report)
    headers = {
        "content-type": "application/json",
        "x-messente-signature": signature(credentials.MESSENTE.password, body),
    }
    return Receipt(PROVIDER, url, body, headers)
