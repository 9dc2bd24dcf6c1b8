"""The cascade machine and engine from Python, replayed in virtual time."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes._core import Cascade, CascadeEngine

SEED_PLAN = {
    "steps": [
        {"channel": "sms", "timeout_ms": 30_000},
        {"channel": "email", "timeout_ms": 30_000},
    ]
}


def of_type(actions: list[Any], kind: str) -> list[Any]:
    return [a for a in actions if a["type"] == kind]


def test_seed_cascade_replayed_in_virtual_time() -> None:
    """SMS never confirmed; after the 30 s timeout email goes out and is delivered."""
    mid = uuid.uuid4().bytes
    engine = CascadeEngine(0)

    actions = engine.apply([{"id": mid, "type": "start", "plan": SEED_PLAN}], 0)
    (sms,) = of_type(actions, "dispatch")
    assert (sms["step"], sms["attempt"], sms["channel"]) == (0, 1, "sms")
    assert of_type(actions, "set_timer") == [{"id": mid, "type": "set_timer", "deadline": 30_000}]

    # The provider accepted the SMS 400 ms in: the 30 s wait for a receipt starts then.
    accepted = {"id": mid, "type": "accepted", "step": 0, "attempt": 1, "account": "twilio"}
    actions = engine.apply([accepted], 400)
    assert [a["notice"] for a in of_type(actions, "notify")] == ["sent"]
    assert of_type(actions, "set_timer") == [{"id": mid, "type": "set_timer", "deadline": 30_400}]

    # A worker sleeps until next_deadline (a lower bound, exact within 64 ms)
    # and ticks: nothing happens before 30.4 s, and it wakes exactly then.
    wakeups = []
    actions = []
    while not actions:
        wake = engine.next_deadline()
        assert wake is not None and wake <= 30_400
        wakeups.append(wake)
        actions = engine.tick(wake)
    assert wakeups[-1] == 30_400
    assert len(wakeups) <= 4
    kinds = [a["kind"] for a in of_type(actions, "timeline")]
    assert kinds[:2] == ["step_timed_out", "fallback"]
    (email,) = of_type(actions, "dispatch")
    assert (email["step"], email["attempt"], email["channel"]) == (1, 2, "email")
    assert of_type(actions, "set_timer")[0]["deadline"] == 60_400

    delivered = {"id": mid, "type": "receipt", "step": 1, "attempt": 2, "status": "delivered"}
    actions = engine.apply([delivered], 34_500)
    assert of_type(actions, "finish") == [{"id": mid, "type": "finish", "outcome": "delivered"}]
    assert of_type(actions, "cancel_timer")
    assert len(engine) == 0
    assert engine.timers == 0
    assert engine.tick(60_400) == [], "the email step's timer was cancelled"


def test_late_sms_receipt_after_the_end_is_recorded_by_the_standalone_machine() -> None:
    mid = uuid.uuid4().bytes
    engine = CascadeEngine(0)
    engine.apply([{"id": mid, "type": "start", "plan": SEED_PLAN}], 0)
    engine.tick(30_000)
    state = engine.export([mid])[0]
    assert state is not None
    delivered = {"id": mid, "type": "receipt", "step": 1, "attempt": 2, "status": "delivered"}
    engine.apply([delivered], 31_000)

    # The engine dropped the finished cascade and says so.
    late = {"id": mid, "type": "receipt", "step": 0, "attempt": 1, "status": "delivered"}
    assert engine.apply([late], 40_000) == [{"id": mid, "type": "unknown"}]

    # The host rebuilds it from its stored state, replays the end, then the receipt.
    cascade = Cascade.from_bytes(state)
    cascade.handle({"type": "receipt", "step": 1, "attempt": 2, "status": "delivered"}, 31_000)
    assert (cascade.phase, cascade.outcome, cascade.step) == ("finished", "delivered", 1)
    actions = cascade.handle(late, 40_000)
    assert [a["type"] for a in actions] == ["timeline", "notify"]
    assert actions[0]["kind"] == "late_receipt"
    assert actions[1]["notice"] == "late_delivered"
    assert cascade.step_statuses == ["delivered", "delivered"]
    assert cascade.outcome == "delivered", "a late receipt does not re-open the cascade"


def test_provider_failover_then_fallback() -> None:
    cascade = Cascade()
    plan = {
        "steps": [
            {"channel": "sms", "timeout_ms": 30_000, "provider": "twilio", "max_attempts": 2},
            {"channel": "email", "timeout_ms": 30_000},
        ]
    }
    (first,) = of_type(cascade.handle({"type": "start", "plan": plan}, 0), "dispatch")
    assert (first["provider"], first["exclude"]) == ("twilio", [])
    error: dict[str, Any] = {"type": "provider_error", "step": 0, "attempt": 1, "retryable": True}
    error["account"] = "twilio"
    (second,) = of_type(cascade.handle(error, 50), "dispatch")
    assert (second["step"], second["attempt"], second["provider"], second["exclude"]) == (
        0,
        2,
        None,
        ["twilio"],
    )
    error = {**error, "attempt": 2, "account": "messente"}
    (third,) = of_type(cascade.handle(error, 80), "dispatch")
    assert (third["step"], third["channel"]) == (1, "email")


def test_send_at_and_expires_at() -> None:
    cascade = Cascade()
    plan = {**SEED_PLAN, "send_at": 5_000, "expires_at": 20_000}
    actions = cascade.handle({"type": "start", "plan": plan}, 0)
    assert of_type(actions, "dispatch") == []
    assert cascade.phase == "scheduled"
    assert cascade.timer == 5_000
    actions = cascade.handle({"type": "timer_fired", "deadline": 5_000}, 5_000)
    assert len(of_type(actions, "dispatch")) == 1
    assert cascade.timer == 20_000, "expiry comes before the step timeout"
    actions = cascade.handle({"type": "timer_fired", "deadline": 20_000}, 20_000)
    assert of_type(actions, "dispatch") == [], "an expired cascade never falls back"
    assert cascade.outcome == "expired"


def test_dump_and_load_rebuild_an_engine_that_carries_on() -> None:
    engine = CascadeEngine(1_000)
    ids = [uuid.uuid4().bytes for _ in range(50)]
    engine.apply([{"id": i, "type": "start", "plan": SEED_PLAN} for i in ids], 1_000)
    data = engine.dump()
    del engine

    rebuilt = CascadeEngine.load(data)
    assert len(rebuilt) == 50
    assert rebuilt.dump() == data
    actions = rebuilt.tick(31_000)
    assert {a["id"] for a in of_type(actions, "dispatch")} == set(ids)

    with pytest.raises(ValueError, match="truncated"):
        CascadeEngine.load(data[:-3])
    with pytest.raises(ValueError, match="magic"):
        CascadeEngine.load(b"junk")


def test_restore_single_cascades_fires_deadlines_missed_while_down() -> None:
    source = CascadeEngine(0)
    ids = [uuid.uuid4().bytes for _ in range(3)]
    source.apply([{"id": i, "type": "start", "plan": SEED_PLAN} for i in ids], 0)
    states = source.export(ids)
    assert all(s is not None for s in states)

    worker = CascadeEngine(90_000)
    worker.restore([(i, s) for i, s in zip(ids, states, strict=True) if s is not None])
    assert worker.next_deadline() == 90_000
    actions = worker.tick(90_000)
    assert len(of_type(actions, "dispatch")) == 3
    with pytest.raises(ValueError):
        worker.restore([(ids[0], b"HCS\x01")])


def test_bad_events_are_rejected_before_anything_changes() -> None:
    engine = CascadeEngine(0)
    mid = uuid.uuid4().bytes
    good = {"id": mid, "type": "start", "plan": SEED_PLAN}
    with pytest.raises(ValueError, match="unknown channel"):
        fax = {"steps": [{"channel": "fax", "timeout_ms": 1}]}
        engine.apply([good, {"id": mid, "type": "start", "plan": fax}], 0)
    with pytest.raises(KeyError):
        engine.apply([good, {"id": mid, "type": "receipt", "step": 0}], 0)
    assert len(engine) == 0, "a batch with a bad event applies nothing"


_STEP = st.fixed_dictionaries(
    {
        "channel": st.sampled_from(["sms", "email", "push", "whatsapp"]),
        "timeout_ms": st.integers(1_000, 60_000),
    },
    optional={
        "success": st.sampled_from(["accepted", "delivered", "read"]),
        "max_attempts": st.integers(1, 3),
    },
)
_EVENT = st.one_of(
    st.tuples(st.just("accepted"), st.integers(0, 20), st.booleans()),
    st.tuples(st.just("rejected"), st.integers(0, 20), st.booleans()),
    st.tuples(st.just("provider_error"), st.integers(0, 20), st.booleans()),
    st.tuples(
        st.just("receipt"),
        st.integers(0, 20),
        st.sampled_from(["sent", "delivered", "read", "undelivered", "failed", "bounced"]),
    ),
    st.tuples(st.just("tick"), st.integers(0, 90_000), st.none()),
    st.tuples(st.just("cancel"), st.none(), st.none()),
)


@settings(max_examples=100, deadline=None)
@given(
    steps=st.lists(_STEP, min_size=1, max_size=3),
    expires_in=st.one_of(st.none(), st.integers(1, 200_000)),
    script=st.lists(_EVENT, max_size=25),
)
def test_any_run_through_the_engine_ends_once_and_never_dispatches_after(
    steps: list[dict[str, Any]], expires_in: int | None, script: list[tuple[str, Any, Any]]
) -> None:
    mid = uuid.uuid4().bytes
    plan: dict[str, Any] = {"steps": steps}
    expires_at = None if expires_in is None else 1_000 + expires_in
    if expires_at is not None:
        plan["expires_at"] = expires_at
    engine = CascadeEngine(1_000)
    now = 1_000
    log: list[tuple[int, Any]] = []

    def record(actions: list[Any]) -> None:
        log.extend((now, a) for a in actions)

    record(engine.apply([{"id": mid, "type": "start", "plan": plan}], now))
    for kind, arg, extra in script:
        dispatched = [(a["step"], a["attempt"]) for _, a in log if a["type"] == "dispatch"]
        if kind == "tick":
            now += arg
            record(engine.tick(now))
        elif kind == "cancel":
            record(engine.apply([{"id": mid, "type": "cancel"}], now))
        elif dispatched:
            step, attempt = dispatched[arg % len(dispatched)]
            event: dict[str, Any] = {"id": mid, "type": kind, "step": step, "attempt": attempt}
            if kind == "receipt":
                event["status"] = extra
            elif kind != "accepted":
                event["retryable"] = extra
            record(engine.apply([event], now))
    # Left alone, its timers finish every cascade.
    for _ in range(10):
        if len(engine) == 0:
            break
        wake = engine.next_deadline()
        assert wake is not None, "a live cascade without a timer"
        now = max(now, wake)
        record(engine.tick(now))
    assert len(engine) == 0 and engine.timers == 0
    types = [a["type"] for _, a in log]
    assert types.count("finish") == 1
    after = types[types.index("finish") :]
    assert "dispatch" not in after and "set_timer" not in after
    if expires_at is not None:
        assert all(t < expires_at for t, a in log if a["type"] == "dispatch"), "sent after expiry"


def test_batches_may_be_any_sequence() -> None:
    engine = CascadeEngine(0)
    ids = (uuid.uuid4().bytes, uuid.uuid4().int)
    engine.apply(tuple({"id": i, "type": "start", "plan": SEED_PLAN} for i in ids), 0)
    states = engine.export(ids)
    fresh = CascadeEngine(0)
    fresh.restore(tuple(zip(ids, [s or b"" for s in states], strict=True)))
    assert len(fresh) == 2
