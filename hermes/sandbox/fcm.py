"""FCM HTTP v1: `POST /v1/projects/{project_id}/messages:send`.

Bearer token from the sandbox's OAuth endpoint, `{"message": {...}}` with
exactly one target, `{"name": "projects/.../messages/..."}` on success, and
Google API errors with an `FcmError` detail (`UNREGISTERED`, `QUOTA_EXCEEDED`,
`INVALID_ARGUMENT`, ...) as firebase-admin parses them. FCM sends no delivery
receipts; success for push is acceptance.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import msgspec

from hermes.sandbox import credentials, outcomes
from hermes.sandbox.common import Context, bearer_token, held
from hermes.sandbox.http import Request, Response, json_response
from hermes.sandbox.outcomes import Outcome

PROVIDER = "fcm"
PATH = "/v1/projects/{project}/messages:send"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_TOKEN = re.compile(r"^[A-Za-z0-9_:\-.]{8,4096}$")
_TARGETS = ("token", "fid", "topic", "condition")  # fid: Firebase installation ID


def error(status: int, grpc_status: str, message: str, fcm_code: str | None = None,
          headers: list[tuple[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"code": status, "message": message, "status": grpc_status}
    if fcm_code is not None:
        body["details"] = [{"@type": FCM_ERROR, "errorCode": fcm_code}]
    return json_response(status, {"error": body}, headers)


def install(ctx: Context) -> None:
    def send(request: Request) -> Any:
        token = bearer_token(request.headers.get("authorization"))
        expiry = ctx.state.fcm_access_tokens.get(token or "")
        if expiry is None or expiry < time.time():
            return error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                         "credentials. Expected OAuth 2 access token, login cookie or other "
                         "valid authentication credential.")
        project = request.params[0]
        if project != credentials.FCM.project_id:
            return error(403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' "
                         f"denied on resource '//cloudresourcemanager.googleapis.com/projects/"
                         f"{project}' (or it may not exist).", "SENDER_ID_MISMATCH")
        try:
            payload = request.json()
        except msgspec.DecodeError:
            return error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        outcome: Outcome | None = None
        response, target = _check(payload)
        if response is None:
            addressed = "token" in payload["message"] or "fid" in payload["message"]
            magic = outcomes.for_push_token(target) if addressed else Outcome.DELIVERED
            outcome, _ = ctx.state.resolve(PROVIDER, target, magic)
            response = _answer(ctx, project, outcome, payload.get("validate_only") is True)
        ctx.state.record(PROVIDER, request.method, request.path, request.headers, payload,
                         response.status if isinstance(response, Response) else 0, outcome)
        return response

    ctx.router.add("POST", PATH, send)


def _check(payload: Any) -> tuple[Response | None, str]:
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(message, dict):
        return error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                     "INVALID_ARGUMENT"), ""
    targets = [t for t in _TARGETS if t in message]
    if len(targets) != 1:
        return error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                     "INVALID_ARGUMENT"), ""
    target = message[targets[0]]
    if not isinstance(target, str) or (targets[0] in ("token", "fid")
                                       and not _TOKEN.match(target)):
        return error(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM "
                     "registration token", "INVALID_ARGUMENT"), ""
    data = message.get("data")
    if data is not None and not (
        isinstance(data, dict) and all(isinstance(v, str) for v in data.values())
    ):
        return error(400, "INVALID_ARGUMENT", "Invalid value at 'message.data': values must be "
                     "strings.", "INVALID_ARGUMENT"), ""
    return None, target


def _answer(ctx: Context, project: str, outcome: Outcome, validate_only: bool) -> Any:
    if outcome is Outcome.UNREGISTERED:
        return error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
    if outcome is Outcome.SERVER_ERROR:
        return error(500, "INTERNAL", "Internal error encountered.", "INTERNAL")
    if outcome is Outcome.RATE_LIMITED:
        return error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Send "
                     "requests'.", "QUOTA_EXCEEDED",
                     [("retry-after", str(ctx.state.config.retry_after))])
    if outcome is Outcome.TIMEOUT:
        return held(ctx)
    if validate_only:
        return json_response(200, {"name": f"projects/{project}/messages/fake_message_id"})
    message_id = f"0:{int(time.time() * 1_000_000)}%{secrets.token_hex(8)}"
    return json_response(200, {"name": f"projects/{project}/messages/{message_id}"})
