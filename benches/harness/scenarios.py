"""The issue 6 scenarios: durable batch ingest, the single endpoint against a trivial one, and
end to end (accepted to final webhook) with the provider sandbox."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from benches.harness import payloads
from benches.harness.deploy import Deployment, run_loadgen
from benches.harness.loadgen import percentiles
from benches.harness.procstat import tree_cpu


def _profile(d: Deployment, profile: Path | None, names: tuple[str, ...],
             tag: str) -> dict[str, Path] | None:
    if profile is None:
        return None
    profile.mkdir(parents=True, exist_ok=True)
    suffix = os.environ.get("BENCH_PROFILE_FORMAT", "svg")
    return {n: profile / f"{tag}-{n}.{suffix}" for n in names if n in d.procs}


def ingest(seconds: float, *, batch: int = 500, clients: int = 2,
           keep_logs: bool = False, profile: Path | None = None) -> dict[str, Any]:
    """`POST /v1/messages/batch` with only the API running: durable ingest (commit + publish)."""
    with Deployment(keep_logs=keep_logs) as d:
        api = d.start_api()
        tenant = d.new_tenant()
        in_stream: dict[str, int] = {}
        run = run_loadgen({
            "url": f"{api}/v1/messages/batch", "bodies": payloads.batches("seed", batch),
            "headers": {"authorization": tenant["auth"]}, "clients": clients,
            "seconds": seconds, "warmup": 2.0, "count_accepted": True}, d.pids(),
            _profile(d, profile, ("api",), "ingest"),
            on_window=lambda edge: in_stream.__setitem__(edge, d.published()))
        stored = d.count_messages(tenant["id"])
        # The start commands are published after the answer: how long after the load the
        # last one was in JetStream.
        published, publish_lag = d.wait_published(stored)
        cpu_published = tree_cpu(d.pids())
    if run["errors"]:
        raise RuntimeError(f"ingest: {run['errors']} failed requests; first: {run['first_error']}")
    if run["items"] != run["ok"] * batch:
        raise RuntimeError(f"ingest: {run['ok'] * batch - run['items']} items refused")
    # Every accepted message must be in PostgreSQL (the window's plus the warm-up's).
    if stored < run["items"]:
        raise RuntimeError(f"ingest: {run['items']} accepted but only {stored} stored")
    # 202 means committed; the start command follows in the background. A rate the
    # publisher cannot follow is not sustainable, so the headline figure counts the time
    # until the window's last start command was in JetStream.
    until_published = run["window_s"] + publish_lag
    cpu = {k: v - run["cpu_at_start"].get(k, 0.0) for k, v in cpu_published.items()}
    return {"scenario": "ingest", "batch": batch, "clients": clients, "seconds": seconds,
            "messages_per_s": run["items"] / until_published,
            "committed_per_s": run["items"] / run["window_s"],
            "published_in_window_per_s": (in_stream["end"] - in_stream["start"])
            / run["window_s"],
            "cpu_until_published": cpu, "wall_until_published_s": until_published,
            "messages_per_api_cpu_s": run["items"] / cpu["api"],
            "requests_per_s": run["ok"] / run["window_s"], "stored": stored,
            "published": published, "publish_lag_s": publish_lag, "run": run}


def single(seconds: float, *, clients: int = 64, rounds: int = 2,
           keep_logs: bool = False, profile: Path | None = None) -> dict[str, Any]:
    """`POST /v1/messages` against a trivial Litestar endpoint under the same uvicorn settings,
    in alternating rounds in the same run."""
    runs: dict[str, list[dict[str, Any]]] = {"trivial": [], "hermes": []}
    with Deployment(keep_logs=keep_logs) as d:
        urls = {"hermes": d.start_api(), "trivial": d.start_trivial()}
        tenant = d.new_tenant()
        bodies = payloads.singles("seed")
        for _ in range(rounds):
            for name in ("trivial", "hermes"):
                run = run_loadgen({
                    "url": f"{urls[name]}/v1/messages", "bodies": bodies,
                    "headers": {"authorization": tenant["auth"]}, "clients": clients,
                    "seconds": seconds, "warmup": 2.0}, d.pids(),
                    _profile(d, profile, ("api",) if name == "hermes" else (), "single"))
                if run["errors"]:
                    raise RuntimeError(f"single/{name}: {run['errors']} failed; "
                                       f"first: {run['first_error']}")
                runs[name].append(run)
    rate = {name: statistics.mean(r["ok"] / r["window_s"] for r in rs)
            for name, rs in runs.items()}
    # Requests per CPU-second of the server process: the per-core figure, which other load
    # on the machine does not skew.
    server = {"hermes": "api", "trivial": "trivial"}
    per_cpu = {name: sum(r["ok"] for r in rs) / sum(r["cpu"][server[name]] for r in rs)
               for name, rs in runs.items()}
    return {"scenario": "single", "clients": clients, "seconds": seconds, "rounds": rounds,
            "requests_per_s": rate, "ratio": rate["hermes"] / rate["trivial"],
            "requests_per_server_cpu_s": per_cpu,
            "ratio_per_cpu": per_cpu["hermes"] / per_cpu["trivial"], "runs": runs}


def e2e(seconds: float, *, kinds: tuple[str, ...] = ("first", "fallthrough"), clients: int = 32,
        batch: int = 0, rate: float | None = None, drain_s: float = 120.0,
        keep_logs: bool = False, profile: Path | None = None,
        worker_loop: str = "asyncio", rates: tuple[float, ...] = ()) -> dict[str, Any]:
    """Accepted to final webhook: API, worker, sandbox and a webhook receiver as processes.

    For each kind, a fresh tenant with a webhook endpoint at the receiver; the load runs for
    `seconds`, then the harness waits until every accepted message's `message.finished` has
    arrived (at most `drain_s`). Cascades/s: finished messages over the time from the first
    request to the last final webhook; also the rate of final webhooks while the load ran.

    With `rates`, each kind runs open loop at each rate in turn (same processes, a fresh
    tenant each); a rate is sustained when every cascade ended as expected, final webhooks
    came in at 90% of the offered rate or more while the load ran, and the last one arrived
    within 2 s of the shortest cascade after the load stopped (no backlog).
    """
    out: dict[str, Any] = {"scenario": "e2e", "clients": clients, "batch": batch, "rate": rate,
                           "seconds": seconds, "worker_loop": worker_loop, "kinds": {}}
    with Deployment(keep_logs=keep_logs) as d:
        d.start_sandbox()
        api = d.start_api()
        d.start_worker(worker_loop)
        receiver = d.start_receiver()
        plan = [(kind, r) for kind in kinds for r in (rates or (rate,))]
        for kind, rate in plan:
            tenant = d.new_tenant()
            headers = {"authorization": tenant["auth"]}
            r = httpx.post(f"{api}/v1/webhooks/endpoints", json={"url": f"{receiver}/hook"},
                           headers=headers, timeout=10)
            r.raise_for_status()
            httpx.post(f"{receiver}/reset", timeout=10).raise_for_status()
            if batch:
                config = {"url": f"{api}/v1/messages/batch",
                          "bodies": payloads.batches(kind, batch), "count_accepted": True}
            else:
                config = {"url": f"{api}/v1/messages", "bodies": payloads.singles(kind),
                          "record_ids": True}
            config.update(headers=headers, clients=clients, seconds=seconds, warmup=0.0,
                          rate=rate)
            cpu0, pg0 = tree_cpu(d.pids()), d.pg_activity()
            run = run_loadgen(config, d.pids(),
                              _profile(d, profile, ("api", "worker", "sandbox"), f"e2e-{kind}"))
            if run["errors"]:
                raise RuntimeError(f"e2e/{kind}: {run['errors']} failed; "
                                   f"first: {run['first_error']}")
            stats = _drain(receiver, run["items"], drain_s)
            cpu1 = tree_cpu(d.pids())
            time.sleep(0.6)  # PostgreSQL publishes its statistics every 0.5 s
            pg1 = d.pg_activity()
            figures = _e2e_figures(run, stats, cpu0, cpu1,
                                   settle=3.0 if kind == "fallthrough" else 1.0)
            # What each kind must end as; anything else (a step timer that ran out in a
            # backlog, say) is reported, and not counted as a delivered cascade.
            expected = EXPECTED_OUTCOME[kind]
            figures["expected_outcome"] = expected
            figures["delivered"] = stats["outcomes"].get(expected, 0)
            figures["delivered_per_s"] = (figures["cascades_per_s"] * figures["delivered"]
                                          / max(1, stats["finished"]))
            # PostgreSQL work per finished cascade (the whole database, so the webhook
            # deliveries and the sweep count too).
            figures["postgres_per_cascade"] = {
                k: round((v - pg0.get(k, 0)) / max(1, stats["finished"]), 2)
                for k, v in pg1.items() if v != pg0.get(k, 0)}
            figures["rate"] = rate
            min_latency = 1.0 if kind == "fallthrough" else 0.05
            figures["sustained"] = bool(
                rate and figures["delivered"] == run["items"]
                and figures["cascades_per_s_during_load"] >= 0.9 * rate
                and figures["last_final_after_load_s"] <= min_latency + 2.0)
            out["kinds"][f"{kind}@{rate:g}" if rates else kind] = figures
    return out


EXPECTED_OUTCOME = {"first": "delivered via sms", "fallthrough": "delivered via sms+email"}


def _drain(receiver: str, accepted: int, drain_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + drain_s
    while True:
        stats: dict[str, Any] = httpx.get(f"{receiver}/stats", timeout=30).json()
        if stats["finished"] >= accepted or time.monotonic() > deadline:
            full: dict[str, Any] = httpx.get(f"{receiver}/stats", params={"full": 1},
                                             timeout=30).json()
            return full
        time.sleep(0.5)


def _e2e_figures(run: dict[str, Any], stats: dict[str, Any], cpu0: dict[str, float],
                 cpu1: dict[str, float], settle: float) -> dict[str, Any]:
    times: list[float] = stats["times"]
    start, end = run["window_start"], run["window_end"]
    # Accepted (the API's answer) to final webhook, per message sent to the single endpoint.
    by_id: dict[str, float] = stats["by_id"]
    e2e_latency = [by_id[mid] - at for mid, at in run.pop("accepted_at", {}).items()
                   if mid in by_id]
    in_load = [t for t in times if start + settle <= t <= end]
    last = times[-1] if times else end
    return {
        "accepted": run["items"], "finished": stats["finished"],
        "unfinished": run["items"] - stats["finished"], "outcomes": stats["outcomes"],
        "webhook_events": stats["events"],
        "accepted_per_s": run["items"] / run["window_s"],
        "cascades_per_s": stats["finished"] / max(1e-9, last - start),
        "cascades_per_s_during_load": len(in_load) / max(1e-9, end - start - settle),
        "last_final_after_load_s": last - end,
        "api_latency_ms": run["latencies_ms"],
        "accepted_to_final_ms": percentiles(e2e_latency),
        "cpu_load_window": run["cpu"], "cpu_window_s": run["cpu_window_s"],
        "cpu_until_drained": {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1},
        "wall_until_drained_s": last - start, "run": run,
    }
