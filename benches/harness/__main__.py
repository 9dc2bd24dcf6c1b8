"""`python -m benches.harness ingest|single|e2e|e2e-first|e2e-fallthrough [options]`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from benches.harness import scenarios
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
    else:
        for kind, k in result["kinds"].items():
            lines.append(f"e2e/{kind}: {k['cascades_per_s']:,.0f} cascades/s accepted-to-final "
                         f"({k['finished']:,} of {k['accepted']:,} finished, last final webhook "
                         f"{k['last_final_after_load_s']:.1f} s after the load stopped); "
                         f"{k['cascades_per_s_during_load']:,.0f}/s final webhooks during the "
                         f"load; API accepted {k['accepted_per_s']:,.0f}/s, "
                         f"{_lat(k['api_latency_ms'])}")
            if k["accepted_to_final_ms"]:
                lines.append(f"  accepted to final webhook: {_lat(k['accepted_to_final_ms'])}")
            if k.get("rate"):
                lines.append(f"  open loop at {k['rate']:,.0f}/s: "
                             + ("sustained" if k["sustained"] else "NOT sustained"))
            lines.append(f"  outcomes: {k['outcomes']}; webhook events {k['webhook_events']:,}")
            if k["delivered"] != k["finished"]:
                lines.append(f"  WARNING: only {k['delivered']:,} of {k['finished']:,} ended "
                             f"{k['expected_outcome']!r} ({k['delivered_per_s']:,.0f}/s)")
            lines.append(f"  PostgreSQL per cascade: {k['postgres_per_cascade']}")
            lines.append("  CPU during the load:")
            lines.append(_cpu_table(k["cpu_load_window"], k["cpu_window_s"]))
            lines.append("  CPU from the first request until drained:")
            lines.append(_cpu_table(k["cpu_until_drained"], k["wall_until_drained_s"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benches.harness", description=__doc__)
    p.add_argument("scenario",
                   choices=["ingest", "single", "e2e", "e2e-first", "e2e-fallthrough"])
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--clients", type=int, default=None, help="concurrent clients")
    p.add_argument("--batch", type=int, default=None,
                   help="messages per batch (ingest: 500; e2e: 0 = single endpoint)")
    p.add_argument("--rounds", type=int, default=2, help="single: alternating rounds")
    p.add_argument("--rate", type=str, default=None,
                   help="e2e: open loop at this many requests/s instead of a closed loop; "
                        "a comma-separated list runs each rate in turn (a sweep)")
    p.add_argument("--worker-loop", choices=["asyncio", "uvloop"], default="asyncio",
                   help="e2e: the worker's event loop (`hermes worker` uses asyncio's)")
    p.add_argument("--json", type=Path, default=None, help="write the full results here")
    p.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    p.add_argument("--profile", type=Path, default=None,
                   help="record py-spy flame graphs of the Hermes processes into this directory")
    args = p.parse_args(argv)
    # SIGTERM ends the run like Ctrl-C: every process it started is stopped in order.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    load_before = load_average()
    common: dict[str, Any] = {"keep_logs": args.keep_logs, "profile": args.profile}
    if args.clients:
        common["clients"] = args.clients
    if args.scenario == "ingest":
        result = scenarios.ingest(args.seconds, batch=args.batch or 500, **common)
    elif args.scenario == "single":
        result = scenarios.single(args.seconds, rounds=args.rounds, **common)
    else:
        kinds = {"e2e": ("first", "fallthrough"), "e2e-first": ("first",),
                 "e2e-fallthrough": ("fallthrough",)}[args.scenario]
        rates = tuple(float(r) for r in args.rate.split(",")) if args.rate else ()
        result = scenarios.e2e(args.seconds, kinds=kinds, batch=args.batch or 0,
                               rate=rates[0] if len(rates) == 1 else None,
                               rates=rates if len(rates) > 1 else (),
                               worker_loop=args.worker_loop, **common)
    result["machine"] = {"cpus": os.cpu_count(), "load_before": load_before,
                         "load_after": load_average(), "started": started,
                         "argv": sys.argv[1:]}
    print(summary(result))
    print(f"load average before {load_before[0]:.2f}, after {load_average()[0]:.2f} "
          f"({os.cpu_count()} cores)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
