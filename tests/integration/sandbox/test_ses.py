"""SES v2: botocore's sesv2 client against the sandbox (real SigV4), SNS events."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from hermes.sandbox import Sandbox
from hermes.sandbox.credentials import SES, provider_accounts

from .conftest import CallbackReceiver
from .sns_verify import verify_sns


def _client(sandbox: Sandbox, secret: str = SES.secret_access_key,
            read_timeout: float = 60) -> Any:
    return botocore.session.get_session().create_client(
        "sesv2", region_name=SES.region, endpoint_url=sandbox.url,
        aws_access_key_id=SES.access_key_id, aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=read_timeout),
    )


def _send(client: Any, to: str, **extra: Any) -> dict[str, Any]:
    return client.send_email(  # type: ignore[no-any-return]
        FromEmailAddress=SES.from_address,
        Destination={"ToAddresses": [to]},
        Content={"Simple": {"Subject": {"Data": "Hello"}, "Body": {"Text": {"Data": "Hi"}}}},
        **extra,
    )


async def test_sdk_send_gets_a_message_id(sandbox: Sandbox) -> None:
    result = await asyncio.to_thread(_send, _client(sandbox), "someone@example.com")
    assert result["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert result["MessageId"].endswith("-000000")


async def test_wrong_secret_fails_signature_check(sandbox: Sandbox) -> None:
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(_send, _client(sandbox, "not-the-secret"), "a@example.com")
    assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


async def test_unknown_configuration_set_is_not_found(sandbox: Sandbox) -> None:
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(_send, _client(sandbox), "a@example.com",
                                ConfigurationSetName="nope")
    assert caught.value.response["Error"]["Code"] == "NotFoundException"


async def test_invalid_recipient_is_bad_request(sandbox: Sandbox) -> None:
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(_send, _client(sandbox), "not-an-address")
    assert caught.value.response["Error"]["Code"] == "BadRequestException"


async def test_throttle_is_too_many_requests(sandbox: Sandbox) -> None:
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(_send, _client(sandbox), "throttle@example.com")
    assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


async def _events_for(sandbox: Sandbox, receiver: CallbackReceiver, http: Any, to: str,
                      count: int) -> tuple[str, list[dict[str, Any]]]:
    path = f"/ses-{uuid.uuid4().hex}"
    name = f"set-{uuid.uuid4().hex[:8]}"
    answer = await http.put(f"/_sandbox/ses/configuration-sets/{name}",
                            json={"endpoint": receiver.url + path})
    assert answer.status_code == 200
    result = await asyncio.to_thread(_send, _client(sandbox), to, ConfigurationSetName=name)
    posts = await receiver.wait_for(path, count)
    envelopes = []
    for post in posts:
        assert post.headers["x-amz-sns-message-type"] == "Notification"
        envelope = json.loads(post.body)
        assert await asyncio.to_thread(verify_sns, envelope)
        assert envelope["TopicArn"] == post.headers["x-amz-sns-topic-arn"]
        envelopes.append(envelope)
    return result["MessageId"], [json.loads(e["Message"]) for e in envelopes]


async def test_delivery_event_is_a_signed_sns_notification(
    sandbox: Sandbox, receiver: CallbackReceiver, http: Any,
) -> None:
    message_id, [event] = await _events_for(sandbox, receiver, http, "anyone@example.com", 1)
    assert event["eventType"] == "Delivery"
    assert event["mail"]["messageId"] == message_id
    assert event["delivery"]["recipients"] == ["anyone@example.com"]


async def test_tampered_sns_message_fails_verification(
    sandbox: Sandbox, receiver: CallbackReceiver, http: Any,
) -> None:
    path = f"/ses-{uuid.uuid4().hex}"
    await http.put(f"/_sandbox/ses/configuration-sets/{SES.configuration_set}",
                   json={"endpoint": receiver.url + path})
    await asyncio.to_thread(_send, _client(sandbox), "anyone@example.com")
    [post] = await receiver.wait_for(path, 1)
    envelope = json.loads(post.body)
    # What test mode hands the SES adapter to trust sandbox notifications.
    account = provider_accounts(sandbox.url)["ses"]
    assert envelope["SigningCertURL"].startswith(account["sns_cert_url_prefix"])
    assert envelope["TopicArn"] == account["sns_topic_arn"]
    envelope["Message"] = envelope["Message"].replace("Delivery", "Bounce")
    assert not await asyncio.to_thread(verify_sns, envelope)


async def test_subscription_must_be_confirmed_before_events_flow(
    sandbox: Sandbox, receiver: CallbackReceiver, http: Any,
) -> None:
    path = f"/ses-{uuid.uuid4().hex}"
    name = f"set-{uuid.uuid4().hex[:8]}"
    answer = await http.put(f"/_sandbox/ses/configuration-sets/{name}",
                            json={"endpoint": receiver.url + path, "confirm": True})
    assert answer.status_code == 202
    [post] = await receiver.wait_for(path, 1)
    assert post.headers["x-amz-sns-message-type"] == "SubscriptionConfirmation"
    confirmation = json.loads(post.body)
    assert await asyncio.to_thread(verify_sns, confirmation)
    # Unconfirmed: a send is accepted but publishes nothing.
    await asyncio.to_thread(_send, _client(sandbox), "first@example.com",
                            ConfigurationSetName=name)
    await asyncio.sleep(0.1)
    await sandbox.drain()
    assert len(receiver.at(path)) == 1
    confirmed = await http.get(confirmation["SubscribeURL"])
    assert confirmed.status_code == 200 and b"<SubscriptionArn>" in confirmed.content
    await asyncio.to_thread(_send, _client(sandbox), "second@example.com",
                            ConfigurationSetName=name)
    posts = await receiver.wait_for(path, 2)
    event = json.loads(json.loads(posts[1].body)["Message"])
    assert event["delivery"]["recipients"] == ["second@example.com"]


async def test_unsubscribe_url_stops_events(
    sandbox: Sandbox, receiver: CallbackReceiver, http: Any,
) -> None:
    path = f"/ses-{uuid.uuid4().hex}"
    name = f"set-{uuid.uuid4().hex[:8]}"
    await http.put(f"/_sandbox/ses/configuration-sets/{name}",
                   json={"endpoint": receiver.url + path})
    await asyncio.to_thread(_send, _client(sandbox), "a@example.com", ConfigurationSetName=name)
    [post] = await receiver.wait_for(path, 1)
    assert (await http.get(json.loads(post.body)["UnsubscribeURL"])).status_code == 200
    sets = (await http.get("/_sandbox/ses/configuration-sets")).json()["configuration_sets"]
    assert sets[name] is None
