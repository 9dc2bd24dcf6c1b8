"""BENCHMARKS.md's generated section, from the harness's JSON output.

    python -m benches.harness.markdown out.json [--write BENCHMARKS.md]

prints the section, or rewrites it in place: only the text between `START` and `END` is
replaced (the markers are added at the end of the file the first time), so the
hand-written sections around it stay as they are.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benches.harness import report

# The targets the issues set: end to end in cascades/s sustained.
TARGETS = {"first": 2000, "fallthrough": 1000}
START = "<!-- bench:harness:start -->"
END = "<!-- bench:harness:end -->"


def replace_section(text: str, section: str) -> str:
    """`text` with what lies between the markers (inclusive) replaced by `section`, which
    carries its own markers; appended when the markers are not there yet."""
    block = f"{START}\n{section.strip()}\n{END}"
    start, end = text.find(START), text.find(END)
    if start == -1 or end == -1 or end < start:
        return text.rstrip("\n") + "\n\n" + block + "\n"
    return text[:start] + block + text[end + len(END):]


def write_section(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(replace_section(path.read_text() if path.exists() else "", section(doc)))


def _ms(lat: dict[str, float], q: str) -> str:
    return f"{lat[q]:,.1f}" if q in lat else "-"


def _procs(values: dict[str, float], fmt: str) -> str:
    return ", ".join(f"{k} {fmt.format(v)}" for k, v in
                     sorted(values.items(), key=lambda kv: -kv[1]) if v >= 0.5)


def _load(result: dict[str, Any]) -> str:
    info = result.get("run_info") or {}
    if not info:
        return "-"
    return f"{info['load_before'][0]:.2f} → {info['load_after'][0]:.2f}"


def summary_table(results: list[dict[str, Any]]) -> list[str]:
    """The table, then the commands its last column refers to."""
    out = ["| run | load | rate | p50 | p95 | p99 | latency from | CPU (% of a core) "
           "| peak RSS | load average | reproduce |",
           "|---|---|---:|---:|---:|---:|---|---|---|---|---|"]
    commands: list[str] = []
    for result in results:
        for r in report.rows(result):
            lat = r["latency"] or {}
            kind = report.KIND_NAMES.get(r.get("kind", ""), "")
            cmd = result.get("reproduce", "").format(kind=kind)
            if cmd not in commands:
                commands.append(cmd)
            # Peak RSS of the processes that worked in this run (and the load generator).
            rss = {k: v for k, v in r["rss"].items() if r["cpu"].get(k, 0) >= 0.5
                   or k == "loadgen"}
            out.append(f"| {r['name']} | {r['load']}; {r['note']} "
                       f"| {r['rate']:,.0f} {r['unit']} "
                       f"| {_ms(lat, 'p50')} | {_ms(lat, 'p95')} | {_ms(lat, 'p99')} ms "
                       f"| {r['latency_what']} | {_procs(r['cpu'], '{:.0f}%')} "
                       f"| {_procs(rss, '{:.0f} MiB')} | {_load(result)} "
                       f"| [{commands.index(cmd) + 1}] |")
    out += ["", "Reproduce:", ""]
    out += [f"{i}. `{cmd}`" for i, cmd in enumerate(commands, 1)]
    return out


def ratio_lines(results: list[dict[str, Any]]) -> list[str]:
    """Every figure against its baseline from the same invocation."""
    out = []
    for result in results:
        s = result["scenario"]
        if s == "ingest":
            rate = result["messages_per_s"]
            out.append(f"- Durable ingest: {rate:,.0f} messages/s, **{rate / 10_000:.2f}x** the "
                       f"target of 10,000/s ({'met' if rate >= 10_000 else 'not met'}). "
                       f"`{result.get('reproduce', '')}`")
        elif s == "single":
            out.append(f"- `POST /v1/messages` against the trivial Litestar endpoint (the HTTP "
                       f"ceiling): **{result['ratio']:.2f}x** in requests/s "
                       f"({result['requests_per_s']['hermes']:,.0f} against "
                       f"{result['requests_per_s']['trivial']:,.0f}); per server CPU-second "
                       f"{result['ratio_per_cpu']:.2f}x; the target of 0.70x is "
                       f"{'met' if result['ratio'] >= 0.70 else 'not met'}. "
                       f"`{result.get('reproduce', '')}`")
        elif s == "e2e" and result.get("celery_kinds"):
            out.extend(_celery_ratios(result))
        elif s == "mix":
            k = result["kinds"]["mix"]
            parts = [f"{c} {v['as_expected']:,} of {v['sent']:,} as {v['expected']!r}"
                     for c, v in k["checks"].items()]
            verdict = ("every class ended as expected" if k["as_expected"]
                       else "**not every class ended as expected**")
            out.append(f"- Mix at {result['rate']:,.0f}/s: {verdict} ({'; '.join(parts)}); "
                       + ("sustained." if k["sustained"] else "**not sustained**.")
                       + f" `{result.get('reproduce', '')}`")
        elif s == "baselines":
            a, t = result["adapter"], result["timers"]
            out.append(f"- Adapter `{a['adapter']}`: the core {a['core_us']:.1f} µs of CPU per "
                       f"message against {a['wasmtime_py_us']:.1f} µs with the `wasmtime` PyPI "
                       f"package (fresh Store per call): **{a['ratio']:.1f}x**. "
                       "`hermes bench baselines` (in-process part; "
                       "`.venv/bin/pytest benches/test_adapter_runtime.py -s` has medians too)")
            batched = next(k for k in t["vs_asyncio"] if k.startswith("Wheel, batched"))
            single = next(k for k in t["vs_asyncio"] if k.startswith("Wheel, one call"))
            out.append(f"- Timers: the core's wheel, batched, **{t['vs_asyncio'][batched]:.1f}x**"
                       f" asyncio `call_later` in operations per CPU-second "
                       f"({t['operations_per_cpu_s'][batched]:,.0f} against "
                       f"{t['operations_per_cpu_s']['asyncio loop.call_later']:,.0f}); one call "
                       f"per timer {t['vs_asyncio'][single]:.1f}x. `CascadeEngine` from Python: "
                       f"{t['engine_events_per_cpu_s']:,.0f} events per CPU-second. "
                       "`hermes bench baselines` (in-process part; "
                       "`.venv/bin/python benches/test_wheel_py.py` prints the same table)")
    return out


def _celery_ratios(result: dict[str, Any]) -> list[str]:
    out = []
    hermes, celery = result["kinds"], result["celery_kinds"]
    for kind in ("first", "fallthrough"):
        keys = [k for k in hermes if k.partition("@")[0] == kind]
        if not keys:
            continue
        best = {}
        for name, runs in (("hermes", hermes), ("celery", celery)):
            sustained = [runs[k]["rate"] for k in keys if k in runs and runs[k].get("sustained")]
            best[name] = max(sustained, default=0.0)
        name = report.KIND_NAMES[kind]
        tried = ", ".join(f"{hermes[k]['rate']:,.0f}" for k in keys)

        top = max(hermes[k]["rate"] for k in keys)

        def verdict(rate: float, top: float = top) -> str:
            # The highest rate tried bounds what a sweep can show.
            return ("none" if not rate else
                    f"{rate:,.0f}/s or more (the highest tried)" if rate == top
                    else f"{rate:,.0f}/s")

        line = (f"- {name} against the Celery + Redis cascade, highest rate sustained (of "
                f"{tried}/s): Hermes {verdict(best['hermes'])}, Celery "
                f"{verdict(best['celery'])}")
        if best["celery"] and best["hermes"]:
            at_least = "at least " if best["hermes"] == top else ""
            line += f" ({at_least}**{best['hermes'] / best['celery']:.2f}x**)"
        target = TARGETS[kind]
        line += (f"; Hermes's target of {target:,}/s is "
                 + ("met" if best["hermes"] >= target else
                    f"not met ({best['hermes'] / target:.2f}x"
                    + (", as far as the rates tried show)" if best["hermes"] == top
                       else ")")))
        lats = []
        for k in keys:
            if k in celery and hermes[k]["accepted_to_final_ms"] and \
                    celery[k]["accepted_to_final_ms"]:
                h, c = hermes[k]["accepted_to_final_ms"], celery[k]["accepted_to_final_ms"]
                lats.append(f"at {hermes[k]['rate']:,.0f}/s p50 {h['p50']:,.0f} against "
                            f"{c['p50']:,.0f} ms, p99 {h['p99']:,.0f} against {c['p99']:,.0f} ms")
        if lats:
            line += "; accepted to final webhook, Hermes against Celery: " + "; ".join(lats)
        out.append(line + f". `{result.get('reproduce', '').format(kind=name)}`")
    return out


def _celery_note(results: list[dict[str, Any]]) -> list[str]:
    pools = [r["celery_pool"] for r in results if r.get("celery_pool")]
    if not pools:
        return []
    pool = pools[0]
    return [
        "The Celery baseline (`benches/harness/celery_cascade.py`, `celery_web.py`) is the same "
        "cascade built the way a Python team would build it without Hermes: a Litestar "
        "endpoint queues a `send_step` task; the task sends through the same sandbox in the "
        "same wire formats (Twilio `Messages.json`, SES v2 signed by botocore) and schedules "
        "a `check_step` task with `countdown` = the step's timeout; the receipts come back "
        "to the web app, which checks their signatures and records the delivery in Redis; "
        "`check_step` falls through to email when no receipt closed the step; a `notify` "
        "task posts the signed final webhook to the same receiver. Broker: the stack's "
        f"Redis. Worker: the {pool['pool']} pool with {pool['concurrency']} "
        f"{'processes' if pool['pool'] == 'prefork' else 'workers'}. It keeps its state in "
        "Redis only and validates only the request's shape, so it does less work per "
        "cascade than Hermes (no PostgreSQL system of record, no JetStream, no address "
        "validation). Its runs follow Hermes's in the same deployment, with Hermes's API "
        "and worker stopped.",
        "",
    ]


def section(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(m["started"]))
    lines = [
        "## Harness (`hermes bench`)",
        "",
        f"Generated from the harness's JSON output by `{doc['command']}` "
        "(or `python -m benches.harness.markdown out.json --write BENCHMARKS.md` from a "
        "`--json` file); the text between the `bench:harness` markers is rewritten on each "
        "run, the rest of this file is written by hand.",
        "",
        f"Measured {when} at commit `{m.get('commit', '?')}` on {m['cpus']} cores "
        f"({m.get('cpu_model', '?')}), Python {m.get('python', '?')}; load average "
        f"(1 min) {m['load_before'][0]:.2f} at the start and "
        f"{m.get('load_after', m['load_before'])[0]:.2f} at the end, per run below. Every "
        "process (Hermes's, PostgreSQL, NATS, Redis, the sandbox, the receiver, the load "
        "generator, the Celery baseline's) shares these cores.",
        "",
        "How it measures: each scenario starts a private PostgreSQL, NATS JetStream and "
        "Redis, Hermes's processes, the provider sandbox (receipts 50 ms after a send) and a "
        "webhook receiver; the load generator is a process of its own (keep-alive "
        "connections, one request in flight on each, bodies built in advance). Latencies go "
        "into HdrHistograms (1 µs to 1 h, 3 significant digits). In open loop every request "
        "has a scheduled send time fixed in advance and its latency is measured from that "
        "time, so a stall that delays sending shows in the figures (corrected for "
        "coordinated omission); closed-loop latencies are measured from the send. End to "
        "end, latency is from the API's answer to the `message.finished` webhook at the "
        "receiver, and a rate is *sustained* when every cascade ended as expected, final "
        "webhooks kept up with 90% of the offered rate and none lagged more than 2 s behind "
        "the load. CPU is CPU seconds per process (PostgreSQL's backends and Celery's pool "
        "counted with their parent) over wall seconds; peak RSS is the largest VmHWM among "
        "a process and its children.",
        "",
        *_celery_note(doc["results"]),
        *summary_table(doc["results"]),
        "",
        "Against the baselines measured in the same invocation:",
        "",
        *ratio_lines(doc["results"]),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benches.harness.markdown",
                                description=__doc__.splitlines()[0])
    p.add_argument("json", type=Path, help="the harness's --json output")
    p.add_argument("--write", type=Path, default=None, help="rewrite this file's section")
    args = p.parse_args(argv)
    doc = json.loads(args.json.read_text())
    if "results" not in doc:
        raise SystemExit(f"{args.json}: not the output of `hermes bench --json`")
    if args.write:
        write_section(args.write, doc)
    else:
        sys.stdout.write(section(doc) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
