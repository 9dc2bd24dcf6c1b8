"""The quarantine rule: traps on at least 3 distinct attempts, and more than half the calls,
within 60 s."""

from __future__ import annotations

import asyncio
import uuid

from hermes.providers.quarantine import TrapMonitor
from hermes.providers.registry import ActiveAdapter

V1 = ActiveAdapter("twilio_sms", "1.0.0", "a" * 64, {})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def monitor(clock: Clock) -> tuple[TrapMonitor, list[tuple[str, str]]]:
    calls: list[tuple[str, str]] = []

    async def quarantine(adapter: ActiveAdapter, reason: str) -> None:
        calls.append((adapter.sha256, reason))

    return TrapMonitor(quarantine, clock=clock), calls


async def test_a_version_that_traps_on_most_calls_is_quarantined_once() -> None:
    clock = Clock()
    m, calls = monitor(clock)
    tripped = [m.record(V1, uuid.uuid4(), "adapter.trap") for _ in range(5)]
    assert tripped == [False, False, True, False, False]
    await asyncio.sleep(0)
    assert len(calls) == 1 and calls[0][0] == V1.sha256 and "adapter.trap" in calls[0][1]


async def test_one_message_retried_cannot_trip_it() -> None:
    m, calls = monitor(Clock())
    attempt = uuid.uuid4()
    assert not any(m.record(V1, attempt, "adapter.out_of_fuel") for _ in range(20))
    assert not any(m.record(V1, uuid.uuid4(), "adapter.trap") for _ in range(1))
    await asyncio.sleep(0)
    assert calls == []


async def test_rare_traps_under_load_do_not_trip_it() -> None:
    m, calls = monitor(Clock())
    for i in range(100):
        code = "adapter.trap" if i % 10 == 0 else None
        assert not m.record(V1, uuid.uuid4(), code)
    await asyncio.sleep(0)
    assert calls == []


async def test_traps_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    m, _ = monitor(clock)
    m.record(V1, uuid.uuid4(), "adapter.trap")
    m.record(V1, uuid.uuid4(), "adapter.trap")
    clock.now += 61
    assert not m.record(V1, uuid.uuid4(), "adapter.trap")
    # Errors that are not the module's fault never count.
    for code in ("adapter.bad_input", "adapter.timeout", "provider.unavailable"):
        assert not m.record(V1, uuid.uuid4(), code)


async def test_a_version_activated_again_is_counted_afresh() -> None:
    m, calls = monitor(Clock())
    for _ in range(3):
        m.record(V1, uuid.uuid4(), "adapter.trap")
    assert m.tripped(V1.sha256)
    m.reset(V1.sha256)
    assert not m.tripped(V1.sha256)
    assert [m.record(V1, uuid.uuid4(), "adapter.trap") for _ in range(3)] == [False, False, True]
    await asyncio.sleep(0)
    assert len(calls) == 2
