"""One short run of `benches/hot_deploy.py` (a private stack and processes, about 12 s):
a new twilio_sms version goes live on every process and a trapping one is quarantined and
rolled back while messages flow, and every message is delivered. Times are printed, never
asserted; `python -m benches.hot_deploy` is the measured run (BENCHMARKS.md)."""

from __future__ import annotations

import pytest

from benches import hot_deploy


@pytest.mark.timeout(180)
def test_hot_deploy_under_a_little_load() -> None:
    result = hot_deploy.run(rate=50, seconds=3, clients=8, keep_logs=False)
    print("\n" + hot_deploy.summary(result))
    assert result["trap"]["status"] == "quarantined"
    assert result["messages"]["outcomes"] == {"delivered": result["messages"]["stored"]}
    assert result["ok"]
