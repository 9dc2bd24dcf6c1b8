"""FCM: firebase-admin against the sandbox, with the sandbox's OAuth token endpoint."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import firebase_admin
import httpx
import pytest
from firebase_admin import credentials as fb_credentials
from firebase_admin import messaging

from hermes.sandbox import Sandbox
from hermes.sandbox.credentials import FCM


@pytest.fixture
def app(sandbox: Sandbox) -> Iterator[firebase_admin.App]:
    # The service account's token_uri points at the sandbox, so google-auth fetches
    # its Bearer token there; firebase-admin has no public setting for the FCM host,
    # so the messaging service's URL is pointed at the sandbox after creation.
    cert = fb_credentials.Certificate(FCM.service_account_info(sandbox.url))
    app = firebase_admin.initialize_app(cert, name=f"sandbox-{uuid.uuid4().hex}")
    service = messaging._get_messaging_service(app)
    service._fcm_url = f"{sandbox.url}/v1/projects/{FCM.project_id}/messages:send"
    yield app
    firebase_admin.delete_app(app)


def _message(fid: str) -> messaging.Message:
    # firebase-admin 7 deprecates `token` for `fid` (Firebase installation ID).
    return messaging.Message(
        fid=fid, notification=messaging.Notification(title="Code", body="123456"),
        data={"kind": "otp"},
    )


async def test_sdk_send_returns_message_name(app: firebase_admin.App) -> None:
    name = await asyncio.to_thread(messaging.send, _message("device-token-abc123"), app=app)
    assert name.startswith(f"projects/{FCM.project_id}/messages/0:")


async def test_sdk_unregistered_token_raises_unregistered_error(app: firebase_admin.App) -> None:
    with pytest.raises(messaging.UnregisteredError) as caught:
        await asyncio.to_thread(messaging.send, _message("unregistered-device-1"), app=app)
    assert caught.value.http_response.status_code == 404


async def test_token_endpoint_rejects_a_forged_assertion(http: httpx.AsyncClient) -> None:
    good = FCM.assertion(str(http.base_url) + "/token")
    header, claims, signature = good.split(".")
    forged = f"{header}.{claims}.{signature[:-4]}AAAA"
    answer = await http.post("/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": forged,
    })
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_grant",
                             "error_description": "Invalid JWT Signature."}


async def test_send_without_token_is_unauthenticated(http: httpx.AsyncClient) -> None:
    answer = await http.post(f"/v1/projects/{FCM.project_id}/messages:send",
                             json={"message": {"token": "device-token-abc123"}})
    assert answer.status_code == 401
    assert answer.json()["error"]["status"] == "UNAUTHENTICATED"


async def _bearer(http: httpx.AsyncClient) -> dict[str, str]:
    answer = await http.post("/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": FCM.assertion(str(http.base_url) + "/token"),
    })
    body: dict[str, Any] = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    return {"authorization": f"Bearer {body['access_token']}"}


async def test_two_targets_are_invalid_argument(http: httpx.AsyncClient) -> None:
    answer = await http.post(f"/v1/projects/{FCM.project_id}/messages:send",
                             headers=await _bearer(http),
                             json={"message": {"token": "device-token-abc123", "topic": "news"}})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["errorCode"] == "INVALID_ARGUMENT"
