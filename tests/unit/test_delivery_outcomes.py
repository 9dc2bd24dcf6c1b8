"""How provider answers, adapter failures and stored attempts become results; which
SNS URLs the host trusts; the group-commit helper. No I/O."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from hermes.delivery.batching import Batcher
from hermes.delivery.sender import _from_parsed, callback_url, failure
from hermes.delivery.worker import _recorded_result
from hermes.domain.jobs import DeliveryJob
from hermes.domain.messages import Content
from hermes.infra.postgres.attempts import AttemptRow
from hermes.providers.registry import ActiveAdapter
from hermes.providers.sns import trusted_cert_url, trusted_subscribe_url

ADAPTER = ActiveAdapter("twilio_sms", "1.0.0", "ab" * 32, {})
JOB = DeliveryJob(attempt_id=uuid.uuid4(), message_id=uuid.uuid4(), tenant_id=uuid.uuid4(),
                  mode="test", shard=1, step=0, attempt=0, channel="sms",
                  account_id=uuid.uuid4(), to="+447400000001", content=Content(body="x"))


def test_an_accepted_answer_keeps_id_segments_and_cost() -> None:
    out = _from_parsed({"outcome": "accepted", "provider_message_id": "SM1", "segments": 2,
                        "cost": {"amount": "-0.0150", "currency": "USD"}}, ADAPTER, 12.0)
    assert (out.outcome, out.provider_message_id, out.segments, out.cost) == (
        "accepted", "SM1", 2, Decimal("0.0150"))


def test_a_retryable_answer_is_a_provider_error_with_the_hint() -> None:
    out = _from_parsed({"outcome": "retryable", "code": "provider.rate_limited",
                        "provider_code": 20429, "retry_after_ms": 2000}, ADAPTER, 1.0)
    assert (out.outcome, out.retryable, out.code, out.provider_error_code,
            out.retry_after_ms) == ("provider_error", True, "provider.rate_limited", "20429", 2000)


@pytest.mark.parametrize(("code", "retryable"), [
    ("provider.invalid_recipient", False), ("provider.rejected", False),
    ("provider.auth_failed", True),  # another account may hold good credentials
])
def test_a_rejection_fails_over_only_when_the_account_was_refused(code: str,
                                                                  retryable: bool) -> None:
    out = _from_parsed({"outcome": "rejected", "code": code}, ADAPTER, 1.0)
    assert (out.outcome, out.retryable) == ("rejected", retryable)


@pytest.mark.parametrize(("code", "retryable"), [
    ("adapter.trap", False), ("adapter.timeout", True), ("adapter.bad_input", False),
    ("provider.unavailable", True), ("routing.no_provider", True), ("no.such_code", False),
])
def test_failures_are_retryable_as_the_catalogue_says(code: str, retryable: bool) -> None:
    out = failure(code, "detail")
    assert (out.outcome, out.retryable, out.code) == ("provider_error", retryable, code)


def test_a_stored_attempt_replays_its_result() -> None:
    def row(status: str, pmid: str | None, code: str | None) -> AttemptRow:
        return AttemptRow(JOB.attempt_id, JOB.message_id, 0, 0, status, JOB.account_id, pmid,
                          code, 1)

    assert _recorded_result(JOB, row("delivered", "SM1", None)).outcome == "accepted"
    # A receipt status of `failed` on an accepted attempt is still an accepted send.
    assert _recorded_result(JOB, row("failed", "SM1", None)).provider_message_id == "SM1"
    rejected = _recorded_result(JOB, row("rejected", None, "provider.invalid_recipient"))
    assert (rejected.outcome, rejected.retryable) == ("rejected", False)
    failed = _recorded_result(JOB, row("failed", None, "provider.unavailable"))
    assert (failed.outcome, failed.retryable) == ("provider_error", True)


def test_the_callback_url_is_under_the_public_url() -> None:
    aid = uuid.uuid4()
    assert callback_url("https://hermes.example.com/", aid) == (
        f"https://hermes.example.com/v1/callbacks/{aid}")


@pytest.mark.parametrize(("url", "prefix", "trusted"), [
    ("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem", None, True),
    ("https://sns.cn-north-1.amazonaws.com.cn/x.pem", None, True),
    ("http://sns.eu-west-1.amazonaws.com/x.pem", None, False),
    ("https://sns.eu-west-1.amazonaws.com.evil.com/x.pem", None, False),
    ("https://evil.com/sns.eu-west-1.amazonaws.com/x.pem", None, False),
    ("https://sns.eu-west-1.amazonaws.com/x.pem?a=b", None, False),
    ("http://127.0.0.1:8025/_sandbox/sns/c.pem", "http://127.0.0.1:8025/_sandbox/sns/", True),
    ("http://127.0.0.1:8025/other/c.pem", "http://127.0.0.1:8025/_sandbox/sns/", False),
])
def test_only_sns_hosts_or_the_accounts_prefix_are_trusted(url: str, prefix: str | None,
                                                           trusted: bool) -> None:
    assert trusted_cert_url(url, prefix) is trusted


def test_subscribe_urls_follow_the_same_rule() -> None:
    assert trusted_subscribe_url("https://sns.us-east-1.amazonaws.com/?Action=Confirm", None)
    assert not trusted_subscribe_url("https://example.com/?Action=Confirm", None)


async def test_the_batcher_answers_each_caller_and_shares_a_failure() -> None:
    sizes: list[int] = []

    async def double(items: list[int]) -> list[int]:
        sizes.append(len(items))
        if -1 in items:
            raise RuntimeError("bad batch")
        return [i * 2 for i in items]

    batcher: Batcher[int, int] = Batcher(double, max_batch=10)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(25))) == [
        i * 2 for i in range(25)]
    assert max(sizes) <= 10 and len(sizes) < 25  # calls were grouped
    with pytest.raises(RuntimeError):
        await batcher.submit(-1)
    assert await batcher.submit(4) == 8  # the helper keeps working after a failed batch
    await batcher.close()


async def test_a_lingering_batcher_gathers_callers_that_arrive_within_its_linger() -> None:
    sizes: list[int] = []

    async def echo(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    async def staggered(batcher: Batcher[int, int]) -> list[int]:
        async def late(i: int) -> int:
            await asyncio.sleep(0.005 * i)  # one caller every 5 ms
            return await batcher.submit(i)
        try:
            return list(await asyncio.gather(*(late(i) for i in range(4))))
        finally:
            await batcher.close()

    # At once: each caller that arrives alone gets a flush of its own.
    assert await staggered(Batcher(echo, max_batch=100)) == [0, 1, 2, 3]
    assert sizes == [1, 1, 1, 1]
    sizes.clear()
    # Lingering 100 ms: the four arrive within it and share one flush.
    assert await staggered(Batcher(echo, max_batch=100, linger_s=0.1)) == [0, 1, 2, 3]
    assert sizes == [4]
    sizes.clear()
    # With enough queued already (an eighth of max_batch), it does not wait.
    busy: Batcher[int, int] = Batcher(echo, max_batch=8, linger_s=10.0)
    async with asyncio.timeout(2):
        assert await asyncio.gather(*(busy.submit(i) for i in range(3))) == [0, 1, 2]
    await busy.close()
    assert sizes == [3]
