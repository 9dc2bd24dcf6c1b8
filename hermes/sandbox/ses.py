"""Amazon SES v2 `SendEmail`: `POST /v2/email/outbound-emails`.

JSON body signed with AWS Signature Version 4 (verified for real against the
sandbox secret), `{"MessageId": ...}` on success, errors as the rest-json
protocol carries them (`x-amzn-ErrorType` header, `{"message": ...}` body).
Events (Delivery, Bounce, Complaint) go out as SNS HTTP notifications to the
endpoint subscribed for the send's configuration set: SES has no per-request
callback, so the control API maps configuration sets to endpoints.
"""

from __future__ import annotations

import base64
import binascii
import email
import functools
import re
import time
import uuid
from email.utils import getaddresses
from typing import Any

import msgspec

from hermes.sandbox import credentials, outcomes, sigv4
from hermes.sandbox.common import Context, held, hex_id, iso_millis, utc_now
from hermes.sandbox.http import Request, Response, json_response
from hermes.sandbox.outcomes import FAILS_SYNCHRONOUSLY, Outcome
from hermes.sandbox.sns import SnsSigner

PROVIDER = "ses"
PATH = "/v2/email/outbound-emails"
MAX_RECIPIENTS = 50
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_MTA = "a8-70.smtp-out.amazonses.com"
_encode = msgspec.json.Encoder().encode


def error(status: int, error_type: str, message: str,
          extra: list[tuple[str, str]] | None = None) -> Response:
    headers = [("x-amzn-errortype", error_type), ("x-amzn-requestid", str(uuid.uuid4()))]
    return json_response(status, {"message": message}, headers + (extra or []))


def topic_arn(configuration_set: str) -> str:
    return credentials.ses_topic_arn(configuration_set)


def install(ctx: Context, signer: SnsSigner) -> None:
    secrets = {credentials.SES.access_key_id: credentials.SES.secret_access_key}
    ctx.state.ses_configuration_sets.setdefault(credentials.SES.configuration_set, None)

    def send(request: Request) -> Any:
        try:
            sigv4.verify(request.method, request.path, request.query, request.headers,
                         request.body, secrets, "ses")
        except sigv4.SigV4Error as exc:
            return error(exc.status, exc.error_type, exc.message)
        try:
            payload = request.json()
        except msgspec.DecodeError:
            return error(400, "SerializationException", "Could not parse the request body.")
        outcome: Outcome | None = None
        response, recipients = _check(ctx, payload)
        if response is None:
            resolved = [
                (address, *ctx.state.resolve(PROVIDER, address, outcomes.for_email(address)))
                for address in recipients
            ]
            outcome = next((o for _, o, _ in resolved if o in FAILS_SYNCHRONOUSLY), None)
            response = _answer(ctx, signer, payload, resolved, outcome)
            outcome = outcome or resolved[0][1]
        ctx.state.record(PROVIDER, request.method, request.path, request.headers, payload,
                         response.status if isinstance(response, Response) else 0, outcome)
        return response

    ctx.router.add("POST", PATH, send)


def _check(ctx: Context, payload: Any) -> tuple[Response | None, list[str]]:
    if not isinstance(payload, dict):
        return error(400, "BadRequestException", "Request body must be a JSON object."), []
    content = payload.get("Content")
    kinds = ("Simple", "Raw", "Template")
    if not isinstance(content, dict) or sum(k in content for k in kinds) != 1:
        return error(400, "BadRequestException",
                     "Exactly one of Simple, Raw or Template content is required."), []
    destination = payload.get("Destination") or {}
    recipients = [
        a for key in ("ToAddresses", "CcAddresses", "BccAddresses")
        for a in destination.get(key, [])
    ]
    sender = payload.get("FromEmailAddress")
    if "Raw" in content:
        try:
            raw = email.message_from_bytes(base64.b64decode(content["Raw"].get("Data", "")))
        except (binascii.Error, TypeError, ValueError):
            return error(400, "BadRequestException", "Raw message data is not valid base64."), []
        sender = sender or raw.get("From")
        if not recipients:
            recipients = [a for _, a in getaddresses(raw.get_all("To", []) + raw.get_all("Cc", []))]
    elif "Simple" in content:
        simple = content["Simple"]
        if not (simple.get("Subject") or {}).get("Data"):
            return error(400, "BadRequestException", "Subject is required."), []
        body = simple.get("Body") or {}
        if not (body.get("Text") or body.get("Html")):
            return error(400, "BadRequestException", "Body is required."), []
    elif not any(content["Template"].get(k) for k in
                 ("TemplateName", "TemplateArn", "TemplateContent")):
        return error(400, "BadRequestException",
                     "Template content requires TemplateName, TemplateArn or TemplateContent."), []
    if not sender:
        return error(400, "BadRequestException", "Missing required parameter: FromEmailAddress"), []
    if not recipients:
        return error(400, "BadRequestException", "Missing required header 'To'."), []
    if len(recipients) > MAX_RECIPIENTS:
        return error(400, "BadRequestException",
                     f"Recipient count exceeds {MAX_RECIPIENTS}."), []
    for address in [_bare(sender), *recipients]:
        if "@" not in address:
            return error(400, "BadRequestException", "Missing final '@domain'"), []
        if not _ADDRESS.match(address):
            return error(400, "BadRequestException", f"Illegal address: {address}"), []
    name = payload.get("ConfigurationSetName")
    if name is not None and name not in ctx.state.ses_configuration_sets:
        return error(404, "NotFoundException", f"Configuration set <{name}> does not exist."), []
    return None, recipients


@functools.lru_cache(maxsize=4096)
def _bare(address: str) -> str:
    return getaddresses([address])[0][1] or address


def _answer(ctx: Context, signer: SnsSigner, payload: dict[str, Any],
            resolved: list[tuple[str, Outcome, float]], failure: Outcome | None) -> Any:
    if failure is Outcome.SERVER_ERROR:
        return error(500, "InternalFailure", "The request processing has failed because of an "
                     "unknown error, exception or failure.")
    if failure is Outcome.RATE_LIMITED:
        return error(429, "TooManyRequestsException", "Maximum sending rate exceeded.",
                     [("retry-after", str(ctx.state.config.retry_after))])
    if failure is Outcome.TIMEOUT:
        return held(ctx)
    message_id = f"{int(time.time() * 1000):016x}-{uuid.uuid4()}-000000"
    name = payload.get("ConfigurationSetName") or credentials.SES.configuration_set
    endpoint = ctx.state.ses_configuration_sets.get(name)
    if endpoint:
        mail = _mail(payload, message_id, name, [a for a, _, _ in resolved])
        for address, outcome, delay in resolved:
            events = _events(mail, address, outcome)
            if events:
                ctx.receipts.send_later(delay, [
                    functools.partial(signer.notification, ctx.base_url, endpoint,
                                      topic_arn(name), _encode(e).decode(), PROVIDER)
                    for e in events
                ])
    return json_response(200, {"MessageId": message_id})


def _mail(payload: dict[str, Any], message_id: str, configuration_set: str,
          destination: list[str]) -> dict[str, Any]:
    ses = credentials.SES
    sender = payload.get("FromEmailAddress") or ""
    domain = _bare(sender).rpartition("@")[2]
    subject = ((payload["Content"].get("Simple") or {}).get("Subject") or {}).get("Data")
    return {
        "timestamp": iso_millis(utc_now()),
        "source": sender,
        "sourceArn": f"arn:aws:ses:{ses.region}:{ses.account_id}:identity/{domain}",
        "sendingAccountId": ses.account_id,
        "messageId": message_id,
        "destination": destination,
        "headersTruncated": False,
        "headers": [{"name": "From", "value": sender},
                    {"name": "To", "value": ", ".join(destination)}],
        "commonHeaders": {"from": [sender], "to": destination, "messageId": message_id,
                          "subject": subject},
        "tags": {
            "ses:configuration-set": [configuration_set],
            "ses:from-domain": [domain],
            "ses:caller-identity": ["hermes-sandbox"],
        },
    }


def _events(mail: dict[str, Any], address: str, outcome: Outcome) -> list[dict[str, Any]]:
    now = iso_millis(utc_now())
    delivery = {
        "eventType": "Delivery", "mail": mail,
        "delivery": {"timestamp": now, "processingTimeMillis": 100, "recipients": [address],
                     "smtpResponse": "250 2.6.0 Message received", "reportingMTA": _MTA},
    }
    if outcome in (Outcome.BOUNCE, Outcome.UNDELIVERED):
        return [{"eventType": "Bounce", "mail": mail, "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": address, "action": "failed",
                                   "status": "5.1.1",
                                   "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
            "timestamp": now, "feedbackId": f"{hex_id(8)}-{uuid.uuid4()}-000000",
            "reportingMTA": f"dsn; {_MTA}",
        }}]
    if outcome is Outcome.COMPLAINT:
        return [delivery, {"eventType": "Complaint", "mail": mail, "complaint": {
            "complainedRecipients": [{"emailAddress": address}], "timestamp": now,
            "feedbackId": f"{hex_id(8)}-{uuid.uuid4()}-000000",
            "userAgent": "Hermes sandbox feedback loop", "complaintFeedbackType": "abuse",
            "arrivalDate": now,
        }}]
    if outcome is Outcome.NO_RECEIPT:
        return []
    return [delivery]
