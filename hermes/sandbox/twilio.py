"""Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{Sid}/Messages.json`.

Form-encoded request, HTTP Basic auth with AccountSid:AuthToken, a 201 with
the Message resource, Twilio's error JSON, and status callbacks signed with
`X-Twilio-Signature` (base64 HMAC-SHA1 over the URL and the sorted POST
parameters, keyed by the auth token).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, quote_plus

from hermes.sandbox import credentials, outcomes
from hermes.sandbox.common import Context, basic_credentials, held, hex_id, utc_now
from hermes.sandbox.http import Request, Response, json_response
from hermes.sandbox.outcomes import Outcome
from hermes.sandbox.receipts import Receipt
from hermes.sandbox.sms import segments

PROVIDER = "twilio"
API_VERSION = "2010-04-01"
PATH = "/2010-04-01/Accounts/{sid}/Messages.json"
MESSAGE_PATH = "/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json"
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
_ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_SHORT_CODE = re.compile(r"^\d{3,8}$")
UNDELIVERED_ERROR = "30003"  # Unreachable destination handset


def error(status: int, code: int, message: str, headers: list[tuple[str, str]] | None = None
          ) -> Response:
    return json_response(status, {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }, headers)


_PLAIN = re.compile(r"^[A-Za-z0-9_.\-]*$")


def form_encode(params: dict[str, str]) -> bytes:
    """urlencode, with a fast path for the values that need no escaping (most of them)."""
    return "&".join(
        f"{quote_plus(k)}={v if _PLAIN.match(v) else quote_plus(v)}" for k, v in params.items()
    ).encode()


def signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    payload = url + "".join(k + params[k] for k in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def install(ctx: Context) -> None:
    creds = credentials.TWILIO

    def authenticate(request: Request) -> Response | None:
        auth = request.headers.get("authorization")
        if auth is None:
            return error(401, 20003, "Authentication Error - No credentials provided")
        if basic_credentials(auth) != (creds.account_sid, creds.auth_token):
            return error(401, 20003, "Authenticate")
        if request.params[0] != creds.account_sid:
            return error(404, 20404, f"The requested resource {request.path} was not found")
        return None

    def fetch(request: Request) -> Response:
        refused = authenticate(request)
        if refused is not None:
            return refused
        stored = ctx.state.twilio_messages.get(request.params[1])
        if stored is None:
            return error(404, 20404, f"The requested resource {request.path} was not found")
        message, due, final = stored
        if time.monotonic() < due or final is None:
            return json_response(200, {**message, "status": "sent"})
        failed = final == "undelivered"
        return json_response(200, {
            **message, "status": final,
            "error_code": int(UNDELIVERED_ERROR) if failed else None,
            "error_message": "Unreachable destination handset" if failed else None,
        })

    def send(request: Request) -> Any:
        refused = authenticate(request)
        if refused is not None:
            return refused
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        to = form.get("To", "")
        response, outcome = _check(ctx, form, to)
        if response is None:
            outcome, delay = ctx.state.resolve(PROVIDER, to, outcomes.for_phone(to))
            response = _answer(ctx, form, outcome, delay)
        ctx.state.record(PROVIDER, request.method, request.path, request.headers, form,
                         response.status if isinstance(response, Response) else 0, outcome)
        return response

    ctx.router.add("POST", PATH, send)
    ctx.router.add("GET", MESSAGE_PATH, fetch)


def _check(ctx: Context, form: dict[str, str], to: str) -> tuple[Response | None, Outcome | None]:
    if not to:
        return error(400, 21604, "A 'To' phone number is required."), None
    if outcomes.normalise_phone(to) != to:
        return error(400, 21211, f"Invalid 'To' Phone Number: {to}"), None
    sender = form.get("From")
    service = form.get("MessagingServiceSid")
    if not sender and not service:
        return error(400, 21603, "A 'From' phone number is required."), None
    if sender and not (
        outcomes.normalise_phone(sender) == sender
        or _ALPHANUMERIC_SENDER.match(sender) or _SHORT_CODE.match(sender)
    ):
        return error(400, 21212, f"Invalid From Number (caller ID): {sender}"), None
    if service and not _SERVICE_SID.match(service):
        return error(400, 21701, f"The Messaging Service Sid {service} is invalid."), None
    body = form.get("Body", "")
    if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
        return error(400, 21602, "Message body is required."), None
    if len(body) > 1600:
        return error(400, 21617, "The concatenated message body exceeds the 1600 character "
                     "limit."), None
    callback = form.get("StatusCallback")
    if callback and not callback.startswith(("http://", "https://")):
        return error(400, 21609, f"Invalid StatusCallback URL: {callback}"), None
    return None, None


def _answer(ctx: Context, form: dict[str, str], outcome: Outcome, delay: float) -> Any:
    if outcome is Outcome.SERVER_ERROR:
        return error(500, 20500, "Internal Server Error")
    if outcome is Outcome.RATE_LIMITED:
        retry = str(ctx.state.config.retry_after)
        return error(429, 20429, "Too Many Requests", [("retry-after", retry)])
    if outcome is Outcome.TIMEOUT:
        return held(ctx)
    sid = "SM" + hex_id()
    now = format_datetime(utc_now())
    sender = form.get("From")
    service = form.get("MessagingServiceSid")
    body = form.get("Body", "")
    message = {
        "account_sid": credentials.TWILIO.account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": sender,
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": str(segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "accepted" if service and not sender else "queued",
        "subresource_uris": {
            "media": f"/{API_VERSION}/Accounts/{credentials.TWILIO.account_sid}/Messages/{sid}"
                     "/Media.json",
        },
        "to": form["To"],
        "uri": f"/{API_VERSION}/Accounts/{credentials.TWILIO.account_sid}/Messages/{sid}.json",
    }
    final = None if outcome is Outcome.NO_RECEIPT else (
        "undelivered" if outcome is Outcome.UNDELIVERED else "delivered")
    ctx.state.remember_twilio_message(message, time.monotonic() + delay, final)
    callback = form.get("StatusCallback")
    if callback and final is not None:
        ctx.receipts.send_later(delay, [
            _callback(callback, sid, form, "sent"), _callback(callback, sid, form, final),
        ])
    return json_response(201, message)


def _callback(url: str, sid: str, form: dict[str, str], status: str) -> Receipt:
    params = {
        "AccountSid": credentials.TWILIO.account_sid,
        "ApiVersion": API_VERSION,
        "From": form.get("From") or credentials.TWILIO.from_number,
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": form["To"],
    }
    if form.get("MessagingServiceSid"):
        params["MessagingServiceSid"] = form["MessagingServiceSid"]
    if status in ("delivered", "undelivered"):
        params["RawDlrDoneDate"] = utc_now().strftime("%y%m%d%H%M")
    if status == "undelivered":
        params["ErrorCode"] = UNDELIVERED_ERROR
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": signature(credentials.TWILIO.auth_token, url, params),
        "i-twilio-idempotency-token": hex_id(),
        "user-agent": "TwilioProxy/1.1",
    }
    return Receipt(PROVIDER, url, form_encode(params), headers)
