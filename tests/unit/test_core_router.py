"""The provider router through `hermes._core.Router`."""

from __future__ import annotations

from collections import Counter

import pytest

from hermes import _core

NOW = 1_000_000


def router() -> _core.Router:
    r = _core.Router(consecutive_failures=3, cooldown_ms=10_000, probe_timeout_ms=5_000)
    r.add_account("twilio", "t1", "sms", priority=1, weight=3, default_cost=0.0079)
    r.add_account("messente", "t1", "sms", priority=1, weight=1, costs={"EE": 0.03, "GB": 0.04},
                  default_cost=None)
    r.add_account("backup", "t1", "sms", priority=2, weight=1, default_cost=0.05)
    return r


def test_selection_is_deterministic_per_message_and_weighted_across_messages() -> None:
    r = router()
    picks: Counter[str | None] = Counter()
    for i in range(2_000):
        first = r.select("t1", "sms", "GB", NOW, seed=f"msg_{i}")
        assert r.select("t1", "sms", "GB", NOW, seed=f"msg_{i}") == first
        picks[first] += 1
    assert set(picks) == {"twilio", "messente"}
    assert 0.68 < picks["twilio"] / 2_000 < 0.82


def test_accounts_that_do_not_serve_the_country_and_excluded_ones_are_skipped() -> None:
    r = router()
    assert r.select("t1", "sms", "US", NOW, seed="m") == "twilio"
    assert r.select("t1", "sms", "US", NOW, exclude=["twilio"], seed="m") == "backup"
    assert r.select("t1", "sms", "US", NOW, exclude=["twilio", "backup"], seed="m") is None
    assert r.select("t2", "sms", "US", NOW) is None
    assert r.select("t1", "email", "US", NOW) is None


def test_explain_gives_every_candidate_a_verdict() -> None:
    r = router()
    e = r.explain("t1", "sms", "US", NOW, exclude=["backup"], seed="m")
    verdicts = {c["account_id"]: c["verdict"] for c in e["candidates"]}
    assert e["chosen"] == "twilio"
    assert verdicts == {"twilio": "chosen", "messente": "no_route_to_country", "backup": "excluded"}
    twilio = next(c for c in e["candidates"] if c["account_id"] == "twilio")
    assert (twilio["cost"], twilio["breaker"], twilio["priority"]) == (0.0079, "closed", 1)


def test_circuit_breaker_opens_half_opens_and_closes_with_virtual_time() -> None:
    r = router()
    for t in range(3):
        r.record_outcome("twilio", False, NOW + t, latency_ms=2_000.0)
    assert r.health("twilio", NOW + 3)["breaker"] == "open"
    e = r.explain("t1", "sms", "US", NOW + 3, seed="m")
    assert e["chosen"] == "backup"
    assert e["candidates"][0]["retry_at_ms"] == NOW + 2 + 10_000

    later = NOW + 2 + 10_000
    assert r.health("twilio", later)["breaker"] == "half_open"
    assert r.select("t1", "sms", "US", later, seed="m") == "twilio"       # the probe
    assert r.select("t1", "sms", "US", later + 1, seed="m") == "backup"   # one probe at a time
    r.record_outcome("twilio", True, later + 100, latency_ms=300.0)
    h = r.health("twilio", later + 100)
    assert h["breaker"] == "closed" and h["consecutive_failures"] == 0
    assert r.select("t1", "sms", "US", later + 200, seed="m") == "twilio"


def test_a_failed_probe_reopens_for_another_cooldown() -> None:
    r = router()
    for t in range(3):
        r.record_outcome("twilio", False, NOW + t)
    probe_at = NOW + 20_000
    assert r.select("t1", "sms", "US", probe_at) == "twilio"
    r.record_outcome("twilio", False, probe_at + 10)
    assert r.health("twilio", probe_at + 10)["reopens_at_ms"] == probe_at + 10 + 10_000


def test_bad_arguments_raise() -> None:
    r = router()
    with pytest.raises(KeyError):
        r.record_outcome("nope", True, NOW)
    with pytest.raises(ValueError):
        r.select("t1", "fax", "US", NOW)
    with pytest.raises(ValueError):
        r.select("t1", "sms", "USA", NOW)
    with pytest.raises(ValueError):
        _core.Router(ewma_alpha=0.0)
    for window in (0, 65):
        with pytest.raises(ValueError, match="failure_window"):
            _core.Router(failure_window=window)
    assert len(r) == 3


def test_a_busy_account_failing_one_send_in_ten_keeps_its_breaker_closed() -> None:
    # The defaults: five failures in a row, or half of the last 20 outcomes. Failures one
    # in ten, in runs of four (the old failure-rate EWMA, weight 0.2, passed 50% on each).
    r = _core.Router()
    r.add_account("a", "t1", "sms")
    for i in range(3_000):
        r.record_outcome("a", i % 40 < 36, NOW + i)
        assert r.health("a", NOW + i)["breaker"] == "closed", (i, r.health("a", NOW + i))
    health = r.health("a", NOW + 3_000)
    assert 1.0 - health["success_ewma"] >= 0.5  # just after a run: the EWMA alone would trip
    assert health["failure_rate"] == pytest.approx(4 / 20)
    # Half of the last 20 failing opens it.
    for i in range(20):
        r.record_outcome("a", i % 2 == 0, NOW + 4_000 + i)
    assert r.health("a", NOW + 4_020)["breaker"] == "open"
