"""Markdown tables from harness results: `python -m benches.harness.markdown RESULT.json ...`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _cpu(cpu: dict[str, float], window: float) -> str:
    top = sorted(cpu.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{name} {100 * sec / window:.0f}%" for name, sec in top if sec >= 0.01)


def _ratio(k: dict[str, Any], rate: float, target: int) -> str:
    if k["delivered"] == k["finished"]:
        return f"{rate / target:.2f}x of target"
    delivered = rate * k["delivered"] / max(1, k["finished"])
    return f"{delivered / target:.2f}x of target, counting the delivered only"


def rows(result: dict[str, Any]) -> list[str]:
    s = result["scenario"]
    out = []
    if s == "ingest":
        run = result["run"]
        lat = run["latencies_ms"]
        out.append(f"| durable ingest, `POST /v1/messages/batch` ({result['batch']} per batch, "
                   f"{result['clients']} clients) | {result['messages_per_s']:,.0f} messages/s "
                   f"| ≥ 10,000/s | {result['messages_per_s'] / 10_000:.2f}x of target "
                   f"| {lat['p50']:.0f} / {lat['p99']:.0f} ms per batch "
                   f"| {_cpu(result['cpu_until_published'], result['wall_until_published_s'])} |")
    elif s == "single":
        rate, per_cpu = result["requests_per_s"], result["requests_per_server_cpu_s"]
        runs = result["runs"]
        for name in ("trivial", "hermes"):
            last = runs[name][-1]
            lat = last["latencies_ms"]
            what = ("trivial Litestar endpoint (baseline)" if name == "trivial"
                    else "`POST /v1/messages`")
            ratio = "1.00" if name == "trivial" else (
                f"{result['ratio']:.2f} (per server CPU-second: {result['ratio_per_cpu']:.2f})")
            out.append(f"| {what}, {result['clients']} clients | {rate[name]:,.0f} requests/s "
                       f"({per_cpu[name]:,.0f} per server CPU-second) "
                       f"| {'' if name == 'trivial' else '≥ 0.70 of baseline'} | {ratio} "
                       f"| {lat['p50']:.1f} / {lat['p99']:.1f} ms "
                       f"| {_cpu(last['cpu'], last['cpu_window_s'])} |")
    else:
        targets = {"first": 2000, "fallthrough": 1000}
        names = {"first": "first step succeeds (SMS to …0001)",
                 "fallthrough": "falls through (SMS to …0003, 1 s; then email delivered)"}
        load = (f"open loop at {result['rate']:,.0f} requests/s" if result.get("rate")
                else f"{result['clients']} clients")
        for key, k in result["kinds"].items():
            kind = key.partition("@")[0]
            label = load
            if k.get("rate"):
                label = (f"open loop at {k['rate']:,.0f}/s, "
                         + ("sustained" if k.get("sustained") else "**not sustained**"))
            lat = k["api_latency_ms"]
            e2e = k.get("accepted_to_final_ms") or {}
            then = (f"; accepted to final webhook p50 {e2e['p50']:,.0f} ms, "
                    f"p99 {e2e['p99']:,.0f} ms" if e2e else "")
            short = "" if k["delivered"] == k["finished"] else (
                f", only {k['delivered']:,} as {k['expected_outcome']!r}")
            rate = k["cascades_per_s_during_load"] if k.get("rate") else k["cascades_per_s"]
            out.append(f"| end to end, {names[kind]}, {label} "
                       f"| {rate:,.0f} cascades/s "
                       f"({k['finished']:,} of {k['accepted']:,} finished{short}{then}) "
                       f"| ≥ {targets[kind]:,}/s | {_ratio(k, rate, targets[kind])} "
                       f"| {lat['p50']:.0f} / {lat['p99']:.0f} ms "
                       f"| {_cpu(k['cpu_until_drained'], k['wall_until_drained_s'])} |")
    return out


def main(paths: list[str]) -> int:
    print("| scenario | measured | target | ratio | API latency p50 / p99 "
          "| CPU per process (% of a core) |")
    print("|---|---:|---:|---:|---:|---|")
    for p in paths:
        for line in rows(json.loads(Path(p).read_text())):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
