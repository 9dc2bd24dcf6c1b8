"""Delivery's metrics against the provider sandbox, read from the process's registry."""

from __future__ import annotations

from hermes.observability.metrics import REGISTRY
from tests.integration.delivery.support import TWILIO, World


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def attempts(result: str) -> float:
    return sample("hermes_attempts_total", channel="sms", provider="twilio_sms", result=result)


def sandbox_requests(provider: str) -> float:
    return sum(s.value for m in REGISTRY.collect() if m.name == "hermes_sandbox_requests"
               for s in m.samples if s.name.endswith("_total")
               and s.labels["provider"] == provider)


def adapter_calls(op: str) -> float:
    return sum(s.value for m in REGISTRY.collect() if m.name == "hermes_adapter_call_seconds"
               for s in m.samples if s.name.endswith("_count")
               and s.labels["adapter"] == "twilio_sms" and s.labels["op"] == op)


async def test_an_accepted_send_counts_one_attempt_its_time_and_two_adapter_calls(
        world: World) -> None:
    before = (attempts("accepted"), attempts("provider_error"),
              sample("hermes_attempt_duration_seconds_count", channel="sms",
                     provider="twilio_sms"),
              adapter_calls("build_request"), adapter_calls("parse_response"),
              sandbox_requests("twilio"))
    result = await world.deliver(await world.job("sms", "+447400000001", TWILIO))
    assert result.outcome == "accepted"
    assert attempts("accepted") == before[0] + 1
    assert attempts("provider_error") == before[1]
    assert sample("hermes_attempt_duration_seconds_count", channel="sms",
                  provider="twilio_sms") == before[2] + 1
    assert adapter_calls("build_request") == before[3] + 1
    assert adapter_calls("parse_response") == before[4] + 1
    assert sandbox_requests("twilio") == before[5] + 1  # the sandbox counts what it answered


async def test_a_provider_500_counts_as_a_provider_error(world: World) -> None:
    before = attempts("provider_error")
    result = await world.deliver(await world.job("sms", "+447400000004", TWILIO))
    assert result.outcome == "provider_error"
    assert attempts("provider_error") == before + 1


async def test_an_attempt_interrupted_mid_send_counts_as_a_possible_duplicate(
        world: World) -> None:
    job = await world.job("sms", "+447400000001", TWILIO)
    # A worker claimed it and died before recording the provider's answer.
    assert await world.container.attempts.claim(job.attempt_id)
    before = (sample("hermes_duplicate_sends_total"), attempts("accepted"))
    result = await world.worker.process(job)
    assert result is not None and result.code == "provider.unavailable"
    assert sample("hermes_duplicate_sends_total") == before[0] + 1
    assert attempts("accepted") == before[1]  # nothing was sent again
    assert world.sandbox_requests("twilio") == []
