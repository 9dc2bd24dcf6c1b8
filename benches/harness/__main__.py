"""`hermes bench SCENARIO [options]` (or `python -m benches.harness SCENARIO [options]`).

Scenarios, each on a private stack started for it:
  ingest-single    POST /v1/messages, alternating rounds with a trivial Litestar endpoint
  ingest-batch     POST /v1/messages/batch (500 per batch): durable ingest
  e2e-first        accepted to final webhook, the first step (SMS) delivered; open-loop
                   sweep (--rate), then the same against the Celery + Redis baseline
  e2e-fallthrough  the same, SMS never confirmed (1 s), then email delivered
  mix              70% SMS delivered, 15% fall through to email, 10% provider 500 with
                   failover to the second SMS provider, 5% never confirmed
  baselines        trivial Litestar alone, the Celery cascade alone, wasmtime PyPI against
                   the core's adapter runtime, asyncio timers against the core's wheel
  all              ingest-batch, ingest-single, e2e (both kinds, with Celery), mix and the
                   in-process baselines

Open-loop latencies are measured from each request's scheduled send time (corrected for
coordinated omission); closed-loop ones from the moment each was sent.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from benches.harness import baselines, mix, progress, report, scenarios
from benches.harness.procstat import load_average


def _cpu_table(cpu: dict[str, float], window: float) -> str:
    rows = [f"    {name:<10} {sec:7.2f} CPU-s  {100 * sec / window:5.0f}% of a core"
            for name, sec in sorted(cpu.items(), key=lambda kv: -kv[1])]
    if cpu.get("loadgen", 0.0) > 0.9 * window:
        rows.append("    WARNING: the load generator saturated a core; figures are its limit")
    return "\n".join(rows)


def _lat(lat: dict[str, float]) -> str:
    return f"p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms"


def summary(result: dict[str, Any]) -> str:
    s = result["scenario"]
    lines = []
    if s == "ingest":
        run = result["run"]
        lines.append(f"ingest: {result['messages_per_s']:,.0f} messages/s committed and "
                     f"published (committed {result['committed_per_s']:,.0f}/s, into "
                     f"JetStream during the load {result['published_in_window_per_s']:,.0f}/s; "
                     f"{result['requests_per_s']:,.1f} batches of {result['batch']}/s, "
                     f"{result['clients']} clients); batch latency {_lat(run['latencies_ms'])}; "
                     f"{result['stored']:,} rows stored; "
                     f"{result['messages_per_api_cpu_s']:,.0f} messages per API CPU-second; "
                     f"{result['published']:,} start commands in JetStream "
                     f"{result['publish_lag_s']:.1f} s after the load")
        lines.append("  CPU from the window's start until its last start command was published:")
        lines.append(_cpu_table(result["cpu_until_published"], result["wall_until_published_s"]))
    elif s == "single":
        rate = result["requests_per_s"]
        lines.append(f"single: hermes {rate['hermes']:,.0f} requests/s, trivial "
                     f"{rate['trivial']:,.0f} requests/s, ratio {result['ratio']:.0%} "
                     f"({result['clients']} clients, {result['rounds']} rounds each)")
        per_cpu = result["requests_per_server_cpu_s"]
        lines.append(f"  per server CPU-second: hermes {per_cpu['hermes']:,.0f}, trivial "
                     f"{per_cpu['trivial']:,.0f}, ratio {result['ratio_per_cpu']:.0%}")
        for name, runs in result["runs"].items():
            for i, run in enumerate(runs):
                lines.append(f"  {name} round {i + 1}: {run['ok'] / run['window_s']:,.0f}/s, "
                             f"{_lat(run['latencies_ms'])}")
                lines.append(_cpu_table(run["cpu"], run["cpu_window_s"]))
    elif s == "baselines":
        lines.extend(report.baseline_lines(result))
    elif s == "trivial":
        run = result["run"]
        lines.append(f"trivial Litestar endpoint: {run['ok'] / run['window_s']:,.0f} requests/s "
                     f"({result['clients']} clients), {_lat(run['latencies_ms'])}")
    else:
        every = {**result["kinds"], **{f"celery {k}": v
                                       for k, v in result.get("celery_kinds", {}).items()}}
        for kind, k in every.items():
            lines.append(f"e2e/{kind}: {k['cascades_per_s']:,.0f} cascades/s accepted-to-final "
                         f"({k['finished']:,} of {k['accepted']:,} finished, last final webhook "
                         f"{k['last_final_after_load_s']:.1f} s after the load stopped); "
                         f"{k['cascades_per_s_during_load']:,.0f}/s final webhooks during the "
                         f"load; API accepted {k['accepted_per_s']:,.0f}/s, "
                         f"{_lat(k['api_latency_ms'])}"
                         + (f"; {k['refused']:,} sends refused as overloaded (503)"
                            if k.get("refused") else ""))
            if k["accepted_to_final_ms"]:
                lines.append(f"  accepted to final webhook: {_lat(k['accepted_to_final_ms'])}")
            if k.get("rate"):
                lines.append(f"  open loop at {k['rate']:,.0f}/s: "
                             + ("sustained" if k["sustained"] else "NOT sustained"))
            lines.append(f"  outcomes: {k['outcomes']}; webhook events {k['webhook_events']:,}")
            for c, check in k.get("checks", {}).items():
                lines.append(f"  {c}: {check['as_expected']:,} of {check['sent']:,} ended "
                             f"{check['expected']!r}"
                             + (f"; otherwise {check['otherwise']}" if check["otherwise"] else ""))
            if k.get("delivered", k["finished"]) != k["finished"]:
                lines.append(f"  WARNING: only {k['delivered']:,} of {k['finished']:,} ended "
                             f"{k['expected_outcome']!r} ({k['delivered_per_s']:,.0f}/s)")
            if "postgres_per_cascade" in k:
                lines.append(f"  PostgreSQL per cascade: {k['postgres_per_cascade']}")
            lines.append("  CPU during the load:")
            lines.append(_cpu_table(k["cpu_load_window"], k["cpu_window_s"]))
            lines.append("  CPU from the first request until drained:")
            lines.append(_cpu_table(k["cpu_until_drained"], k["wall_until_drained_s"]))
    return "\n".join(lines)


SCENARIOS = ("ingest-single", "ingest-batch", "e2e-first", "e2e-fallthrough", "mix",
             "baselines", "all")
# The names the harness had before `hermes bench`.
ALIASES = {"ingest": "ingest-batch", "single": "ingest-single", "e2e": "e2e"}
DEFAULT_RATES = "100,200,300"


def _rates(text: str) -> tuple[float, ...]:
    """"closed" (closed loop), one rate, or a comma-separated sweep."""
    return () if text == "closed" else tuple(float(r) for r in text.split(","))


def run_one(name: str, args: argparse.Namespace, common: dict[str, Any]) -> dict[str, Any]:
    seconds = args.seconds
    if name == "ingest-batch":
        return scenarios.ingest(seconds, batch=args.batch or 500, **common)
    if name == "ingest-single":
        return scenarios.single(seconds, rounds=args.rounds, **common)
    if name == "mix":
        return mix.run(seconds, rate=args.mix_rate, **common)
    if name == "trivial":
        return scenarios.trivial(seconds, **common)
    if name == "baselines":
        return baselines.run()
    kinds = {"e2e": ("first", "fallthrough"), "e2e-first": ("first",),
             "e2e-fallthrough": ("fallthrough",), "celery": ("first", "fallthrough")}[name]
    rates = _rates(args.rate)
    return scenarios.e2e(seconds, kinds=kinds, batch=args.batch or 0,
                         rate=rates[0] if len(rates) == 1 else None,
                         rates=rates if len(rates) > 1 else (), worker_loop=args.worker_loop,
                         celery=not args.no_celery, hermes=name != "celery",
                         celery_pool=(args.celery_pool, args.celery_concurrency), **common)


def reproduce(step: str, args: argparse.Namespace) -> str:
    """The command that measures this step again (`{kind}`: the e2e kind's scenario)."""
    opts = f"--seconds {args.seconds:g}" + (f" --clients {args.clients}" if args.clients else "")
    if step == "ingest-batch":
        return f"hermes bench ingest-batch {opts}" + (f" --batch {args.batch}" if args.batch
                                                       else "")
    if step == "ingest-single":
        return f"hermes bench ingest-single {opts} --rounds {args.rounds}"
    if step == "mix":
        return f"hermes bench mix {opts} --mix-rate {args.mix_rate:g}"
    if step in ("trivial", "celery"):
        return (f"hermes bench baselines {opts} --rate {args.rate} --celery-pool "
                f"{args.celery_pool} --celery-concurrency {args.celery_concurrency}")
    if step == "baselines":
        return "hermes bench baselines"
    celery = (" --no-celery" if args.no_celery else
              f" --celery-pool {args.celery_pool} --celery-concurrency {args.celery_concurrency}")
    return f"hermes bench {{kind}} {opts} --rate {args.rate}{celery}"


def plan(scenario: str) -> list[str]:
    if scenario == "all":
        # Hermes's single endpoint alternates with the trivial endpoint, and e2e runs the
        # Celery cascade after Hermes's: every baseline is in the same invocation.
        return ["ingest-batch", "ingest-single", "e2e", "mix", "baselines"]
    if scenario == "baselines":
        return ["trivial", "celery", "baselines"]
    return [scenario]


def main(argv: list[str] | None = None, prog: str = "python -m benches.harness") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=[*SCENARIOS, *ALIASES])
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--clients", type=int, default=None, help="concurrent clients")
    p.add_argument("--batch", type=int, default=None,
                   help="messages per batch (ingest-batch: 500; e2e: 0 = single endpoint)")
    p.add_argument("--rounds", type=int, default=2, help="ingest-single: alternating rounds")
    p.add_argument("--rate", default=DEFAULT_RATES,
                   help="e2e: open loop at these requests/s (comma-separated: each in turn), "
                        f"or 'closed' for a closed loop (default {DEFAULT_RATES})")
    p.add_argument("--mix-rate", type=float, default=150.0,
                   help="mix: open loop at this many messages/s (default 150)")
    p.add_argument("--no-celery", action="store_true",
                   help="e2e: skip the Celery + Redis baseline cascade")
    p.add_argument("--celery-pool", choices=["prefork", "threads", "solo"], default="prefork",
                   help="the Celery baseline's worker pool (default prefork)")
    p.add_argument("--celery-concurrency", type=int, default=2,
                   help="the Celery worker's pool size (default 2: a process per core)")
    p.add_argument("--worker-loop", choices=["asyncio", "uvloop"], default="asyncio",
                   help="e2e: the worker's event loop (`hermes worker` uses asyncio's)")
    p.add_argument("--json", type=Path, default=None, help="write the full results here")
    p.add_argument("--plot", type=Path, default=None,
                   help="draw throughput and latency per second into this PNG (matplotlib)")
    p.add_argument("--write", type=Path, default=None,
                   help="rewrite the generated section of this Markdown file (BENCHMARKS.md)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    p.add_argument("--profile", type=Path, default=None,
                   help="record py-spy flame graphs of the Hermes processes into this directory")
    args = p.parse_args(argv)
    progress.ENABLED = args.progress
    # SIGTERM ends the run like Ctrl-C: every process it started is stopped in order.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    name = ALIASES.get(args.scenario, args.scenario)
    common: dict[str, Any] = {"keep_logs": args.keep_logs, "profile": args.profile}
    if args.clients:
        common["clients"] = args.clients
    command = " ".join([prog, *(sys.argv[1:] if argv is None else argv)])
    doc: dict[str, Any] = {"harness": 2, "command": command, "machine": machine(),
                           "results": []}
    for step in plan(name):
        print(f"== {step}", file=sys.stderr, flush=True)
        extra = {} if step == "baselines" else common
        load_before, started = load_average(), time.time()
        result = run_one(step, args, extra)
        result["reproduce"] = reproduce(step, args)
        result["run_info"] = {"started": started, "finished": time.time(),
                              "load_before": load_before, "load_after": load_average()}
        doc["results"].append(result)
        print(summary(result))
        print(f"load average before {load_before[0]:.2f}, after {load_average()[0]:.2f} "
              f"({os.cpu_count()} cores)")
        if args.json:  # after each step, so a long run keeps what it measured
            args.json.write_text(json.dumps(doc, indent=1))
    doc["machine"]["load_after"] = load_average()
    print()
    print(report.table(doc["results"]))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1))
    if args.plot:
        from benches.harness.plot import plot

        plot(doc, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    if args.write:
        from benches.harness.markdown import write_section

        write_section(args.write, doc)
        print(f"{args.write}: generated section rewritten", file=sys.stderr)
    return 0


def machine() -> dict[str, Any]:
    import platform
    import subprocess

    from benches.harness.deploy import ROOT

    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu_model": model, "load_before": load_average(),
            "started": time.time(), "commit": commit, "python": platform.python_version()}


if __name__ == "__main__":
    raise SystemExit(main())
