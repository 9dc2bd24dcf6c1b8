"""The throughput harness's own logic: percentiles, the open-loop latency correction, the
mix's classes, BENCHMARKS.md's generated section, and one short run of `hermes bench`.

Run: `.venv/bin/pytest benches/test_harness.py` (the smoke run starts a private stack and
takes about 10 s).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from benches.harness import hdr, markdown, mix


def test_percentiles_of_a_uniform_spread() -> None:
    h = hdr.from_seconds(ms / 1000 for ms in range(1, 1001))
    s = hdr.summary(h)
    assert s["count"] == 1000
    # Three significant digits: each value within 0.1% of the exact percentile.
    for key, exact in (("p50", 500), ("p90", 900), ("p95", 950), ("p99", 990), ("p999", 999),
                       ("max", 1000)):
        assert s[key] == pytest.approx(exact, rel=1e-3), key
    assert s["mean"] == pytest.approx(500.5, rel=1e-3)
    assert hdr.summary(hdr.new()) == {}


def test_histograms_survive_encoding_and_merge() -> None:
    a = hdr.from_seconds([0.001] * 99)
    b = hdr.from_seconds([2.0])
    merged = hdr.summary(hdr.merge([hdr.encode(a), hdr.encode(b)]))
    assert merged["count"] == 100
    assert merged["p50"] == pytest.approx(1.0, rel=1e-3)
    assert merged["max"] == pytest.approx(2000, rel=1e-3)


def test_a_stall_shows_in_the_open_loop_tail() -> None:
    """1,000 requests/s on one connection, 0.1 ms each, one answer stalled for 1 s. Timed
    from the send (closed-loop style) the stall is a single slow request and p99 stays at
    0.1 ms; timed from the scheduled send times, the ~1,000 requests that queued behind it
    carry their wait, as HdrHistogram's own correction for the same stall says."""
    n, interval = 10_000, 0.001
    service = [0.0001] * n
    service[100] = 1.0
    latencies = hdr.replay(hdr.Schedule(0.0, rate=1 / interval, clients=1), 0, service)

    naive = hdr.summary(hdr.from_seconds(service))
    corrected = hdr.summary(hdr.from_seconds(latencies))
    assert naive["p99"] < 1.0  # ms
    assert corrected["p99"] > 850
    assert corrected["p50"] < 1.0  # most requests never met the stall
    assert corrected["max"] == pytest.approx(1000, rel=1e-2)

    reference = hdr.new()
    for s in service:
        reference.record_corrected_value(round(s * 1e6), round(interval * 1e6))
    expected = hdr.summary(reference)
    assert corrected["p99"] == pytest.approx(expected["p99"], rel=0.05)
    # Behind the stall the queue drains by 0.9 ms a request (1 ms apart, 0.1 ms each), so
    # the 500th worst of 10,000 waited 1,000 - 500 * 0.9 = 550 ms. (HdrHistogram's
    # correction instead adds the ~1,000 requests the stall kept from being sent.)
    assert corrected["p95"] == pytest.approx(550, rel=0.01)


def test_schedule_spreads_clients_evenly() -> None:
    s = hdr.Schedule(10.0, rate=100, clients=4)
    times = sorted(s.at(c, k) for c in range(4) for k in range(25))
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {0.01} and times[0] == 10.0


def test_mix_classes_and_failover_recipients() -> None:
    bodies, classes, failover = mix.bodies(2000)
    assert {c: classes.count(c) / len(classes) for c in mix.EXPECTED} == {
        "sms-delivered": 0.70, "fallthrough-email": 0.15, "failover": 0.10,
        "never-confirmed": 0.05}
    # One recipient per failover message, so each is scripted for exactly one HTTP 500.
    assert len(failover) == len(set(failover)) == classes.count("failover")
    phones = [json.loads(b)["to"]["phone"] for b, c in zip(bodies, classes, strict=True)
              if c == "failover"]
    assert phones == failover
    assert all(p[-4:] not in ("0001", "0002", "0003", "0004", "0005", "0006", "0007")
               for p in failover)
    never = [json.loads(b)["to"] for b, c in zip(bodies, classes, strict=True)
             if c == "never-confirmed"]
    assert all(t["phone"].endswith("0003") and t["email"].startswith("noreceipt")
               for t in never)


HAND_WRITTEN = """# Benchmarks

## Timer wheel

Hand-written figures.

{block}
## Cascade pipeline (issue 6)

More hand-written text.
"""


def test_only_the_generated_section_is_replaced() -> None:
    old = f"{markdown.START}\nold table\n{markdown.END}\n"
    text = HAND_WRITTEN.format(block=old)
    new = markdown.replace_section(text, "## Harness\n\nnew table")
    assert new == HAND_WRITTEN.format(
        block=f"{markdown.START}\n## Harness\n\nnew table\n{markdown.END}\n")
    assert markdown.replace_section(new, "## Harness\n\nnew table") == new


def test_the_section_is_appended_the_first_time() -> None:
    text = HAND_WRITTEN.format(block="")
    new = markdown.replace_section(text, "generated")
    assert new.startswith(text.rstrip("\n"))
    assert new.endswith(f"{markdown.START}\ngenerated\n{markdown.END}\n")


def test_hermes_bench_smoke(tmp_path: Path) -> None:
    """One short scenario through the whole harness: deployment, load generator process,
    summary, JSON, and the Markdown section written into a copy of a hand-written file."""
    from benches.harness.__main__ import main

    doc_path = tmp_path / "BENCHMARKS.md"
    doc_path.write_text(HAND_WRITTEN.format(block=""))
    out = tmp_path / "out.json"
    assert main(["ingest-batch", "--seconds", "1", "--batch", "100", "--no-progress",
                 "--json", str(out), "--write", str(doc_path)], prog="hermes bench") == 0
    doc = json.loads(out.read_text())
    (result,) = doc["results"]
    assert result["scenario"] == "ingest" and result["messages_per_s"] > 0
    assert result["run"]["latencies_ms"]["count"] == result["run"]["ok"]
    assert result["run"]["peak_rss"]["api"]["mib"] > 0
    text = doc_path.read_text()
    assert "Hand-written figures." in text and "More hand-written text." in text
    assert "| hermes ingest-batch |" in text
    assert "`hermes bench ingest-batch --seconds 1 --batch 100`" in text


def test_hermes_bench_outside_a_checkout_says_where_the_harness_is(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from hermes import bench_cli

    monkeypatch.setattr(bench_cli, "find_checkout", lambda: None)
    assert bench_cli.main(["all"]) == 2
    assert "benches/harness/ of a Hermes checkout" in capsys.readouterr().err


def test_hermes_bench_finds_the_checkout() -> None:
    from hermes import bench_cli

    root = bench_cli.find_checkout()
    assert root is not None and (root / "benches" / "harness" / "__main__.py").is_file()
