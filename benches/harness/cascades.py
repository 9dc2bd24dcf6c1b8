"""One end-to-end measurement: load on a system's send endpoint, then wait for every final
webhook at the receiver and work out cascades/s, latencies, outcomes and CPU.

The system is Hermes (`hermes api` + `hermes worker`) or the Celery baseline
(`benches.harness.celery_web` + a Celery worker); both send through the same provider
sandbox and report to the same webhook receiver, so the figures compare like with like.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from benches.harness import hdr, payloads
from benches.harness.deploy import Deployment, run_loadgen
from benches.harness.loadgen import percentiles
from benches.harness.procstat import tree_cpu
from benches.harness.progress import Bar

EXPECTED_OUTCOME = {"first": "delivered via sms", "fallthrough": "delivered via sms+email"}
# The shortest possible cascade of each kind, for "the backlog drained in time".
MIN_LATENCY_S = {"first": 0.05, "fallthrough": 1.0}


def hermes_tenant(d: Deployment, receiver: str) -> dict[str, str]:
    """A fresh tenant whose webhook endpoint is the receiver; its request headers."""
    tenant = d.new_tenant()
    headers = {"authorization": tenant["auth"]}
    httpx.post(f"{d.urls['api']}/v1/webhooks/endpoints", json={"url": f"{receiver}/hook"},
               headers=headers, timeout=10).raise_for_status()
    return headers


def warm_up(url: str, receiver: str, body: str, timeout: float = 60.0) -> None:
    """One cascade through a freshly started system, to know it is consuming its queues."""
    httpx.post(f"{receiver}/reset", timeout=10).raise_for_status()
    httpx.post(f"{url}/v1/messages", content=body, timeout=10,
               headers={"content-type": "application/json"}).raise_for_status()
    deadline = time.monotonic() + timeout
    while httpx.get(f"{receiver}/stats", timeout=10).json()["finished"] < 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: the warm-up cascade did not finish in {timeout:.0f} s")
        time.sleep(0.2)


def measure(d: Deployment, url: str, kind: str, *, headers: dict[str, str], clients: int,
            seconds: float, rate: float | None, batch: int = 0, drain_s: float = 120.0,
            bodies: list[str] | None = None, label: str = "",
            classes: list[str] | None = None,
            profile: dict[str, Any] | None = None) -> dict[str, Any]:
    """`classes` names the class of each body (the mix): outcomes are then counted per
    class in `outcomes_by_class`."""
    receiver = d.urls["receiver"]
    httpx.post(f"{receiver}/reset", timeout=10).raise_for_status()
    if batch:
        config: dict[str, Any] = {"url": f"{url}/v1/messages/batch",
                                  "bodies": payloads.batches(kind, batch),
                                  "count_accepted": True}
    else:
        config = {"url": f"{url}/v1/messages", "bodies": bodies or payloads.singles(kind),
                  "record_ids": True}
    config.update(headers=headers, clients=clients, seconds=seconds, warmup=0.0, rate=rate,
                  label=label or kind)
    hermes = "api" in d.procs and url == d.urls.get("api")
    cpu0 = tree_cpu(d.pids())
    pg0 = d.pg_activity() if hermes else {}
    run = run_loadgen(config, d.pids(), profile)
    if run["errors"]:
        raise RuntimeError(f"{label or kind}: {run['errors']} failed; first: {run['first_error']}")
    stats = drain(receiver, run["items"], drain_s)
    cpu1 = tree_cpu(d.pids())
    figures = e2e_figures(run, stats, cpu0, cpu1, settle=3.0 if kind != "first" else 1.0)
    figures["rate"] = rate
    by_body: dict[str, int] = run.pop("accepted_body", {})
    if classes is not None:
        by_class: dict[str, dict[str, int]] = {}
        for mid, i in by_body.items():
            outcome = stats["outcome_by_id"].get(mid, "unfinished")
            counts = by_class.setdefault(classes[i], {})
            counts[outcome] = counts.get(outcome, 0) + 1
        figures["outcomes_by_class"] = by_class
    if hermes:
        time.sleep(0.6)  # PostgreSQL publishes its statistics every 0.5 s
        pg1 = d.pg_activity()
        # PostgreSQL work per finished cascade (the whole database, so the webhook
        # deliveries and the sweep count too).
        figures["postgres_per_cascade"] = {
            k: round((v - pg0.get(k, 0)) / max(1, stats["finished"]), 2)
            for k, v in pg1.items() if v != pg0.get(k, 0)}
    if kind in EXPECTED_OUTCOME:
        # What each kind must end as; anything else (a step timer that ran out in a
        # backlog, say) is reported, and not counted as a delivered cascade.
        expected = EXPECTED_OUTCOME[kind]
        figures["expected_outcome"] = expected
        figures["delivered"] = stats["outcomes"].get(expected, 0)
        figures["delivered_per_s"] = (figures["cascades_per_s"] * figures["delivered"]
                                      / max(1, stats["finished"]))
        figures["sustained"] = bool(
            rate and figures["delivered"] == run["items"]
            and figures["cascades_per_s_during_load"] >= 0.9 * rate
            and figures["last_final_after_load_s"] <= MIN_LATENCY_S[kind] + 2.0)
    return figures


def drain(receiver: str, accepted: int, drain_s: float) -> dict[str, Any]:
    """Wait until `accepted` final webhooks have arrived (at most `drain_s`); the
    receiver's full record."""
    deadline = time.monotonic() + drain_s
    bar = Bar("waiting for final webhooks", accepted, "cascades")
    while True:
        stats: dict[str, Any] = httpx.get(f"{receiver}/stats", timeout=30).json()
        bar.update(stats["finished"])
        if stats["finished"] >= accepted or time.monotonic() > deadline:
            bar.close(f"{stats['finished']:,} of {accepted:,}")
            full: dict[str, Any] = httpx.get(f"{receiver}/stats", params={"full": 1},
                                             timeout=30).json()
            return full
        time.sleep(0.5)


def e2e_figures(run: dict[str, Any], stats: dict[str, Any], cpu0: dict[str, float],
                cpu1: dict[str, float], settle: float) -> dict[str, Any]:
    times: list[float] = stats["times"]
    start, end = run["window_start"], run["window_end"]
    # Accepted (the API's answer) to final webhook, per message sent to the single endpoint.
    by_id: dict[str, float] = stats["by_id"]
    accepted_at: dict[str, float] = run.pop("accepted_at", {})
    e2e_latency = [by_id[mid] - at for mid, at in accepted_at.items() if mid in by_id]
    # Final webhooks per second of wall-clock time from the window's start, and the
    # accepted-to-final latency of the cascades that finished in each second.
    per_second = [0] * (int((times[-1] if times else end) - start) + 1)
    for t in times:
        per_second[max(0, int(t - start))] += 1
    by_second = [hdr.new(2) for _ in per_second]
    for mid, at in accepted_at.items():
        if mid in by_id:
            second = min(len(by_second) - 1, max(0, int(by_id[mid] - start)))
            hdr.record_s(by_second[second], by_id[mid] - at)
    in_load = [t for t in times if start + settle <= t <= end]
    last = times[-1] if times else end
    return {
        "accepted": run["items"], "finished": stats["finished"],
        "unfinished": run["items"] - stats["finished"], "outcomes": stats["outcomes"],
        "webhook_events": stats["events"],
        "accepted_per_s": run["items"] / run["window_s"],
        # Sends refused with 503 service.overloaded (load shedding), not accepted.
        "refused": run.get("refused", 0),
        "cascades_per_s": stats["finished"] / max(1e-9, last - start),
        "cascades_per_s_during_load": len(in_load) / max(1e-9, end - start - settle),
        "last_final_after_load_s": last - end,
        "api_latency_ms": run["latencies_ms"],
        "accepted_to_final_ms": percentiles(e2e_latency),
        "finished_per_second": per_second,
        "final_latency_per_second": [
            {k: v for k, v in hdr.summary(h).items() if k in ("p50", "p99")} for h in by_second],
        "cpu_load_window": run["cpu"], "cpu_window_s": run["cpu_window_s"],
        "cpu_until_drained": {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1},
        "wall_until_drained_s": last - start, "peak_rss": run.get("peak_rss", {}),
        "run": run,
    }
