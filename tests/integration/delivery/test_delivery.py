"""Delivery workers against the provider sandbox: each channel, each failure mode, and
the guarantee that a redelivered job for an answered attempt is never sent twice."""

from __future__ import annotations

import asyncio
import json
import uuid

import msgspec
import pytest

from hermes.delivery.sender import Sender
from hermes.domain.messages import Content
from hermes.infra.http.client import ProviderHttp
from tests.integration.delivery.support import FCM, MESSENTE, SES, TWILIO, WHATSAPP, World

CHANNELS = [
    ("sms", "+447400000001", TWILIO, "twilio"),
    ("email", "delivered@example.com", SES, "ses"),
    ("push", "device-token-0001", FCM, "fcm"),
    ("whatsapp", "+447400000001", WHATSAPP, "whatsapp"),
    ("sms", "+4520120001", MESSENTE, "messente"),
]


@pytest.mark.parametrize(("channel", "to", "account", "provider"), CHANNELS,
                         ids=[c[3] for c in CHANNELS])
async def test_a_job_for_each_channel_reaches_the_sandbox_and_is_accepted(
    world: World, channel: str, to: str, account: uuid.UUID, provider: str,
) -> None:
    job = await world.job(channel, to, account)
    result = await world.deliver(job)

    assert result.outcome == "accepted", result
    assert result.provider_message_id
    assert (result.attempt_id, result.message_id, result.account_id) == (
        job.attempt_id, job.message_id, account)
    sent = world.sandbox_requests(provider)
    assert len(sent) == 1 and sent[0]["status"] in (200, 201, 202)
    # The engine hears it on the message's shard, under the attempt's result id.
    ((msg_id, event),) = await world.events.wait_for(1)
    assert msg_id == f"{job.attempt_id}:result" and event == result
    row = await world.attempt(job.attempt_id)
    assert row["status"] == "accepted" and row["provider_message_id"] == result.provider_message_id
    assert row["sent"] and row["answered"] and row["adapter_sha256"]


async def test_the_callback_url_names_the_account_under_the_public_url(world: World) -> None:
    job = await world.job("sms", "+447400000003", TWILIO)
    await world.deliver(job)
    (sent,) = world.sandbox_requests("twilio")
    assert sent["body"]["StatusCallback"] == f"{world.receiver.url}/v1/callbacks/{TWILIO}"


async def test_a_provider_500_is_a_retryable_provider_error(world: World) -> None:
    job = await world.job("sms", "+447400000004", TWILIO)
    result = await world.deliver(job)
    assert (result.outcome, result.retryable, result.code) == (
        "provider_error", True, "provider.unavailable")
    assert (await world.attempt(job.attempt_id))["status"] == "failed"


async def test_a_rate_limit_is_retryable_with_the_providers_hint(world: World) -> None:
    job = await world.job("sms", "+447400000005", TWILIO)
    result = await world.deliver(job)
    assert (result.outcome, result.retryable, result.code) == (
        "provider_error", True, "provider.rate_limited")
    assert result.retry_after_ms == 1000


async def test_an_invalid_recipient_is_rejected_for_good(world: World) -> None:
    job = await world.job("sms", "+447700900123", TWILIO)  # the UK drama range
    result = await world.deliver(job)
    assert (result.outcome, result.retryable, result.code) == (
        "rejected", False, "provider.invalid_recipient")
    row = await world.attempt(job.attempt_id)
    assert row["status"] == "rejected" and row["provider_error_code"] == "21211"


async def test_a_provider_that_never_answers_is_a_retryable_timeout(world: World) -> None:
    http = ProviderHttp(total_timeout=0.3)
    world.worker.sender = Sender(world.container.adapters, http, world.container.google_tokens,
                                 public_url=world.receiver.url)
    try:
        job = await world.job("sms", "+447400000006", TWILIO)
        result = await world.deliver(job)
    finally:
        await http.close()
    assert (result.outcome, result.retryable, result.code) == (
        "provider_error", True, "provider.unavailable")
    assert result.detail and "in time" in result.detail


async def test_a_redelivered_job_for_an_answered_attempt_is_not_sent_again(world: World) -> None:
    job = await world.job("sms", "+447400000001", TWILIO)
    first = await world.deliver(job)
    again = await world.deliver(job)  # JetStream redelivers: the ack was lost

    assert again == first
    assert len(world.sandbox_requests("twilio")) == 1
    assert world.metrics.sent == 1 and world.metrics.redelivered_answered == 1
    events = await world.events.wait_for(1)
    await asyncio.sleep(0.1)
    # Both publishes carry the same Nats-Msg-Id; JetStream stores the result once.
    assert {msg_id for msg_id, _ in events} == {f"{job.attempt_id}:result"}


async def test_a_redelivered_rejection_is_replayed_not_resent(world: World) -> None:
    job = await world.job("sms", "+447700900123", TWILIO)
    first = await world.deliver(job)
    again = await world.deliver(job)
    # The replay is rebuilt from the attempt row, which keeps codes but not free text.
    assert again == msgspec.structs.replace(first, detail=None) and again.outcome == "rejected"
    assert len(world.sandbox_requests("twilio")) == 1


async def test_an_attempt_stuck_in_sending_is_a_counted_duplicate_window_hit(
    world: World,
) -> None:
    job = await world.job("sms", "+447400000001", TWILIO)
    async with world.container.pool.connection() as conn:  # a crash after the provider call
        await conn.execute("UPDATE attempts SET status = 'sending', sent_at = now() WHERE id = %s",
                           (job.attempt_id,))
    result = await world.deliver(job)

    assert (result.outcome, result.retryable, result.code) == (
        "provider_error", True, "provider.unavailable")
    assert world.metrics.duplicate_window_hits == 1
    assert world.sandbox_requests("twilio") == []  # not sent again
    row = await world.attempt(job.attempt_id)
    assert (row["status"], row["provider_error_code"]) == ("failed", "hermes.interrupted")
    # Redelivered once more: the recorded answer, no second hit.
    assert await world.deliver(job) == msgspec.structs.replace(result, detail=None)
    assert world.metrics.duplicate_window_hits == 1


async def test_a_live_job_is_never_sent_through_a_sandbox_account(world: World) -> None:
    job = await world.job("sms", "+447400000001", TWILIO, mode="live")
    result = await world.deliver(job)
    assert (result.outcome, result.code) == ("provider_error", "routing.no_provider")
    assert world.sandbox_requests("twilio") == []


async def test_fcm_tokens_are_minted_once_and_reused(world: World) -> None:
    for _ in range(2):
        job = await world.job("push", "device-token-0001", FCM)
        assert (await world.deliver(job)).outcome == "accepted"
    tokens = [r for r in world.sandbox.state.requests if r["path"] == "/token"]
    assert len(tokens) <= 1  # none when an earlier test's token is still cached
    assert len(world.sandbox_requests("fcm")) == 2


async def test_an_unregistered_push_token_is_rejected(world: World) -> None:
    job = await world.job("push", "unregistered-token-1", FCM,
                          content=Content(title="Hi", body="x"))
    result = await world.deliver(job)
    assert (result.outcome, result.code) == ("rejected", "provider.invalid_recipient")


async def test_a_bounced_email_is_undeliverable_through_ses(world: World) -> None:
    job = await world.job("email", "error500@example.com", SES)
    result = await world.deliver(job)
    assert (result.outcome, result.retryable) == ("provider_error", True)


async def test_an_undelivered_sms_through_messente_reports_back(world: World) -> None:
    job = await world.job("sms", "+4520120002", MESSENTE)
    result = await world.deliver(job)
    assert result.outcome == "accepted"
    (got,) = await world.receiver.wait_for(1)
    assert got.path == f"/v1/callbacks/{MESSENTE}"
    body = json.loads(got.body)
    assert body["status"] == "UNDELIV" and body["message_id"] == result.provider_message_id
