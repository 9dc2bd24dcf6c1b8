"""The issue 6 scenarios: durable batch ingest, the single endpoint against a trivial one, and
end to end (accepted to final webhook) with the provider sandbox."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from benches.harness import cascades, payloads
from benches.harness.deploy import Deployment, run_loadgen
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
            "seconds": seconds, "warmup": 2.0, "count_accepted": True,
            "label": "hermes ingest-batch"}, d.pids(),
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
        for i in range(rounds):
            for name in ("trivial", "hermes"):
                run = run_loadgen({
                    "url": f"{urls[name]}/v1/messages", "bodies": bodies,
                    "headers": {"authorization": tenant["auth"]}, "clients": clients,
                    "seconds": seconds, "warmup": 2.0,
                    "label": f"{name} ingest-single #{i + 1}"}, d.pids(),
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


def trivial(seconds: float, *, clients: int = 64, keep_logs: bool = False,
            profile: Path | None = None) -> dict[str, Any]:
    """The trivial Litestar endpoint alone (the HTTP ceiling)."""
    with Deployment(keep_logs=keep_logs) as d:
        url = d.start_trivial()
        run = run_loadgen({"url": f"{url}/v1/messages", "bodies": payloads.singles("seed"),
                           "clients": clients, "seconds": seconds, "warmup": 2.0,
                           "label": "trivial Litestar"}, d.pids())
    if run["errors"]:
        raise RuntimeError(f"trivial: {run['errors']} failed; first: {run['first_error']}")
    return {"scenario": "trivial", "clients": clients, "seconds": seconds,
            "requests_per_s": run["ok"] / run["window_s"], "run": run}


def e2e(seconds: float, *, kinds: tuple[str, ...] = ("first", "fallthrough"), clients: int = 32,
        batch: int = 0, rate: float | None = None, drain_s: float = 120.0,
        keep_logs: bool = False, profile: Path | None = None,
        worker_loop: str = "asyncio", rates: tuple[float, ...] = (),
        celery: bool = False, hermes: bool = True,
        celery_pool: tuple[str, int] = ("prefork", 2)) -> dict[str, Any]:
    """Accepted to final webhook: API, worker, sandbox and a webhook receiver as processes.

    For each kind, a fresh tenant with a webhook endpoint at the receiver; the load runs for
    `seconds`, then the harness waits until every accepted message's `message.finished` has
    arrived (at most `drain_s`). Cascades/s: finished messages over the time from the first
    request to the last final webhook; also the rate of final webhooks while the load ran.

    With `rates`, each kind runs open loop at each rate in turn (same processes, a fresh
    tenant each); a rate is sustained when every cascade ended as expected, final webhooks
    came in at 90% of the offered rate or more while the load ran, and the last one arrived
    within 2 s of the shortest cascade after the load stopped (no backlog).

    With `celery`, the same kinds and rates then run against the Celery baseline
    (`benches.harness.celery_cascade`) in the same deployment, Hermes's API and worker
    stopped first so that the two never share the cores; results under `celery_kinds`.
    `hermes=False` runs the Celery baseline alone.
    """
    out: dict[str, Any] = {"scenario": "e2e", "clients": clients, "batch": batch, "rate": rate,
                           "seconds": seconds, "worker_loop": worker_loop, "kinds": {}}
    with Deployment(keep_logs=keep_logs) as d:
        d.start_sandbox()
        receiver = d.start_receiver()
        plan = [(kind, r) for kind in kinds for r in (rates or (rate,))]
        if hermes:
            api = d.start_api()
            d.start_worker(worker_loop)
        for kind, r in plan if hermes else ():
            figures = cascades.measure(
                d, api, kind, headers=cascades.hermes_tenant(d, receiver), clients=clients,
                seconds=seconds, rate=r, batch=batch, drain_s=drain_s,
                label=f"hermes e2e-{kind}" + (f" @{r:g}/s" if r else ""),
                profile=_profile(d, profile, ("api", "worker", "sandbox"), f"e2e-{kind}"))
            out["kinds"][f"{kind}@{r:g}" if rates else kind] = figures
        if celery:
            d.stop("worker", "api")
            web = d.start_celery(receiver, *celery_pool)
            out["celery_pool"] = {"pool": celery_pool[0], "concurrency": celery_pool[1]}
            cascades.warm_up(web, receiver, payloads.singles("first", 1)[0])
            out["celery_kinds"] = {}
            for kind, r in plan:
                figures = cascades.measure(
                    d, web, kind, headers={}, clients=clients, seconds=seconds, rate=r,
                    drain_s=drain_s,
                    label=f"celery e2e-{kind}" + (f" @{r:g}/s" if r else ""))
                out["celery_kinds"][f"{kind}@{r:g}" if rates else kind] = figures
    return out
