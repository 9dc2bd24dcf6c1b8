"""fcm_push against firebase-admin: the HTTP v1 request it sends (captured at the
transport) and the FCM error responses it maps."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import firebase_admin
import google.oauth2.credentials
import pytest
import requests
import requests.adapters
from firebase_admin import credentials, messaging

from tests.unit.adapters.wasm import AdapterError, adapter, header

PROJECT = "hermes-test-1a2b3"
ACCESS_TOKEN = "ya29.c.b0Aaekm1K-EXAMPLE-TOKEN"
DEVICE = "bk3RNwTe3H0:CI2k_HHwgIpoDKCIZvvDMExUdFQ3P1" + "x" * 100
NAME = f"projects/{PROJECT}/messages/0:1500415314455276%31bd1c9631bd1c96"


class StaticToken(credentials.Base):
    """A credential whose token is already minted, as the Hermes host mints it."""

    def get_credential(self) -> google.oauth2.credentials.Credentials:
        return google.oauth2.credentials.Credentials(token=ACCESS_TOKEN)


class RecordingAdapter(requests.adapters.BaseAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **_kw: Any) -> requests.Response:
        self.sent.append(request)
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps({"name": NAME}).encode()
        response.headers["Content-Type"] = "application/json"
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


_names = itertools.count()


@pytest.fixture
def fcm_app() -> Iterator[firebase_admin.App]:
    app = firebase_admin.initialize_app(
        StaticToken(), {"projectId": PROJECT}, name=f"hermes-test-{next(_names)}"
    )
    yield app
    firebase_admin.delete_app(app)


def sdk_request(app: firebase_admin.App, message: messaging.Message) -> requests.PreparedRequest:
    recorder = RecordingAdapter()
    service = messaging._get_messaging_service(app)
    service._client.session.mount("https://fcm.googleapis.com", recorder)
    assert messaging.send(message, app=app) == NAME
    (request,) = recorder.sent
    return request


def build(message: dict[str, Any], **config: Any) -> dict[str, Any]:
    return adapter("fcm_push").build_request(
        {
            "message": {"id": "msg_1", "channel": "push", **message},
            "credentials": {},
            "config": {"project_id": PROJECT, **config},
            "now": 1_767_225_600_000,
            "attempt_id": "att_1",
            "token": ACCESS_TOKEN,
        }
    )


def token_message(**kwargs: Any) -> messaging.Message:
    # The SDK now prefers installation ids; tokens still work and warn.
    with pytest.warns(DeprecationWarning, match="Message.token is deprecated"):
        return messaging.Message(token=DEVICE, **kwargs)


def assert_same(ours: dict[str, Any], sdk: requests.PreparedRequest) -> None:
    assert ours["method"] == sdk.method
    assert ours["url"] == sdk.url
    assert json.loads(ours["body"]) == json.loads(sdk.body)
    for name in ("Authorization", "Content-Type", "X-GOOG-API-FORMAT-VERSION"):
        assert header(ours, name) == sdk.headers[name], name


def test_notification_matches_firebase_admin(fcm_app: firebase_admin.App, body: str) -> None:
    title = "Título 😀 " + body[:20]
    ours = build({"to": DEVICE, "title": title, "body": body})
    sdk = sdk_request(
        fcm_app,
        token_message(notification=messaging.Notification(title=title, body=body)),
    )
    assert_same(ours, sdk)


def test_data_and_android_priority_match_firebase_admin(
    fcm_app: firebase_admin.App, body: str
) -> None:
    data = {"otp": "123456", "text": body, "ünï": '"quoted" \\ \n'}
    ours = build({"to": DEVICE, "body": body, "data": data}, android_priority="high")
    sdk = sdk_request(
        fcm_app,
        token_message(
            notification=messaging.Notification(body=body),
            data=data,
            android=messaging.AndroidConfig(priority="high"),
        ),
    )
    assert_same(ours, sdk)


def test_data_only_message_matches_firebase_admin(fcm_app: firebase_admin.App) -> None:
    ours = build({"to": DEVICE, "data": {"k": "v"}})
    sdk = sdk_request(fcm_app, token_message(data={"k": "v"}))
    assert_same(ours, sdk)


def test_installation_id_target_matches_firebase_admin(fcm_app: firebase_admin.App) -> None:
    fid = "cR1rkLm9S0uFSjh3YfmDiy"
    ours = build({"to": fid, "push_kind": "fid", "title": "t", "body": "b"})
    sdk = sdk_request(
        fcm_app,
        messaging.Message(fid=fid, notification=messaging.Notification(title="t", body="b")),
    )
    assert_same(ours, sdk)
    assert json.loads(ours["body"])["message"]["fid"] == fid


def test_manifest_asks_the_host_for_a_google_token() -> None:
    manifest = adapter("fcm_push").manifest()
    assert manifest["token"] == {
        "kind": "google_oauth",
        "scopes": ["https://www.googleapis.com/auth/firebase.messaging"],
    }
    assert manifest["callback_auth"] == "none"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"message": {"to": DEVICE, "body": "x"}, "config": {"project_id": PROJECT}}, "token"),
        ({"message": {"to": DEVICE, "body": "x"}, "config": {}, "token": "t"}, "config.project_id"),
        (
            {
                "message": {"to": DEVICE, "data": {"n": 1}},
                "config": {"project_id": PROJECT},
                "token": "t",
            },
            "message.data.n",
        ),
    ],
)
def test_bad_input(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(AdapterError) as exc:
        adapter("fcm_push").build_request({"credentials": {}, **payload})
    assert exc.value.code == "adapter.bad_input"
    assert field in exc.value.message


def test_sent_message_is_accepted() -> None:
    assert adapter("fcm_push").parse_response(200, {"name": NAME}) == {
        "outcome": "accepted",
        "provider_message_id": NAME,
    }


def fcm_error(http: int, status: str, message: str, error_code: str | None) -> dict[str, Any]:
    details = []
    if error_code:
        details.append(
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code,
            }
        )
    return {"error": {"code": http, "message": message, "status": status, "details": details}}


@pytest.mark.parametrize(
    ("http", "status", "error_code", "message", "outcome", "code", "retry_after_ms"),
    [
        (
            404,
            "NOT_FOUND",
            "UNREGISTERED",
            "Requested entity was not found.",
            "rejected",
            "provider.invalid_recipient",
            None,
        ),
        (
            400,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
            "rejected",
            "provider.invalid_recipient",
            None,
        ),
        (
            400,
            "INVALID_ARGUMENT",
            None,
            "Invalid value at 'message.data[0].value'",
            "rejected",
            "provider.rejected",
            None,
        ),
        (
            403,
            "PERMISSION_DENIED",
            "SENDER_ID_MISMATCH",
            "SenderId mismatch",
            "rejected",
            "provider.invalid_recipient",
            None,
        ),
        (
            401,
            "UNAUTHENTICATED",
            "THIRD_PARTY_AUTH_ERROR",
            "APNs auth",
            "rejected",
            "provider.auth_failed",
            None,
        ),
        (
            429,
            "RESOURCE_EXHAUSTED",
            "QUOTA_EXCEEDED",
            "Quota exceeded",
            "retryable",
            "provider.rate_limited",
            60_000,
        ),
        (
            503,
            "UNAVAILABLE",
            "UNAVAILABLE",
            "The service is currently unavailable.",
            "retryable",
            "provider.unavailable",
            None,
        ),
        (500, "INTERNAL", "INTERNAL", "Internal error", "retryable", "provider.unavailable", None),
    ],
)
def test_errors_are_mapped(
    http: int,
    status: str,
    error_code: str | None,
    message: str,
    outcome: str,
    code: str,
    retry_after_ms: int | None,
) -> None:
    out = adapter("fcm_push").parse_response(http, fcm_error(http, status, message, error_code))
    assert out["outcome"] == outcome
    assert out["code"] == code
    assert out["provider_code"] == (error_code or status)
    assert out["message"] == message
    assert out.get("retry_after_ms") == retry_after_ms


def test_retry_after_header_wins() -> None:
    out = adapter("fcm_push").parse_response(
        503, fcm_error(503, "UNAVAILABLE", "x", "UNAVAILABLE"), [["Retry-After", "30"]]
    )
    assert out["retry_after_ms"] == 30_000
    out = adapter("fcm_push").parse_response(
        429, fcm_error(429, "RESOURCE_EXHAUSTED", "x", "QUOTA_EXCEEDED"), [["Retry-After", "90"]]
    )
    assert out["retry_after_ms"] == 90_000


def test_non_json_gateway_error_is_unavailable() -> None:
    out = adapter("fcm_push").parse_response(502, "<html>502</html>")
    assert (out["outcome"], out["code"]) == ("retryable", "provider.unavailable")


def test_fcm_has_no_callbacks() -> None:
    out = adapter("fcm_push").parse_callback(
        {"method": "POST", "url": "https://h/cb", "headers": [], "body": "{}", "credentials": {}}
    )
    assert out == {"verified": False, "receipts": []}
