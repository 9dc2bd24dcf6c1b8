"""The summary table: one row per measured run, from any scenario's result.

Each row: what ran, messages (or requests, or cascades) per second, latency p50/p95/p99
and what it was measured from, and CPU (% of a core) and peak RSS per process.
"""

from __future__ import annotations

from typing import Any

from benches.harness import hdr

SHORT_UNITS = {"messages/s": "msg/s", "requests/s": "req/s", "cascades/s": "casc/s"}
KIND_NAMES = {"first": "e2e-first", "fallthrough": "e2e-fallthrough", "mix": "mix"}


def _cpu_pct(cpu: dict[str, float], window: float) -> dict[str, float]:
    return {k: 100 * v / max(1e-9, window) for k, v in cpu.items() if v >= 0.01}


def _rss(peaks: dict[str, dict[str, float]]) -> dict[str, float]:
    return {k: v["mib"] for k, v in peaks.items() if v.get("mib")}


def _e2e_rows(kinds: dict[str, Any], system: str, clients: int) -> list[dict[str, Any]]:
    rows = []
    for key, k in kinds.items():
        kind, _, _ = key.partition("@")
        rate = k["cascades_per_s_during_load"] if k.get("rate") else k["cascades_per_s"]
        load = (f"open loop {k['rate']:,.0f}/s" if k.get("rate")
                else f"{clients} clients, closed loop")
        notes = [f"{k['finished']:,} of {k['accepted']:,} finished"]
        if "delivered" in k and k["delivered"] != k["finished"]:
            notes.append(f"only {k['delivered']:,} as {k['expected_outcome']!r}")
        if k.get("rate"):
            notes.append("sustained" if k.get("sustained", k.get("as_expected")) else
                         "NOT sustained")
        if "as_expected" in k:
            notes.append("every class ended as expected" if k["as_expected"]
                         else "some classes did NOT end as expected")
        rows.append({"name": f"{system} {KIND_NAMES.get(kind, kind)}", "load": load,
                     "rate": rate, "unit": "cascades/s", "kind": kind, "system": system,
                     "offered": k.get("rate"), "sustained": k.get("sustained"),
                     "latency": k["accepted_to_final_ms"],
                     "latency_what": "accepted to final webhook",
                     "api_latency": k["api_latency_ms"],
                     "cpu": _cpu_pct(k["cpu_until_drained"], k["wall_until_drained_s"]),
                     "rss": _rss(k.get("peak_rss", {})), "note": "; ".join(notes)})
    return rows


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    s = result["scenario"]
    if s == "ingest":
        run = result["run"]
        return [{"name": "hermes ingest-batch",
                 "load": f"{result['batch']} per batch, {result['clients']} clients",
                 "rate": result["messages_per_s"], "unit": "messages/s",
                 "latency": run["latencies_ms"], "latency_what": "per batch request",
                 "cpu": _cpu_pct(result["cpu_until_published"],
                                 result["wall_until_published_s"]),
                 "rss": _rss(run.get("peak_rss", {})),
                 "note": f"{result['stored']:,} rows stored and published"}]
    if s == "single":
        out = []
        for name in ("trivial", "hermes"):
            runs = result["runs"][name]
            lat = (hdr.summary(hdr.merge(r["histogram"] for r in runs))
                   if all("histogram" in r for r in runs) else runs[-1]["latencies_ms"])
            cpu: dict[str, float] = {}
            for r in runs:
                for k, v in r["cpu"].items():
                    cpu[k] = cpu.get(k, 0.0) + v
            rss: dict[str, float] = {}
            for r in runs:
                for k, v in _rss(r.get("peak_rss", {})).items():
                    rss[k] = max(rss.get(k, 0.0), v)
            ratio = result["ratio"] if name == "hermes" else 1.0
            out.append({"name": ("trivial Litestar (baseline)" if name == "trivial"
                                 else "hermes ingest-single"),
                        "load": f"{result['clients']} clients, closed loop, "
                                f"{result['rounds']} rounds",
                        "rate": result["requests_per_s"][name], "unit": "requests/s",
                        "latency": lat, "latency_what": "per request",
                        "cpu": _cpu_pct(cpu, sum(r["cpu_window_s"] for r in runs)),
                        "rss": rss, "note": f"{ratio:.2f} of the trivial endpoint"})
        return out
    if s == "trivial":
        run = result["run"]
        return [{"name": "trivial Litestar (baseline)",
                 "load": f"{result['clients']} clients, closed loop",
                 "rate": result["requests_per_s"], "unit": "requests/s",
                 "latency": run["latencies_ms"], "latency_what": "per request",
                 "cpu": _cpu_pct(run["cpu"], run["cpu_window_s"]),
                 "rss": _rss(run.get("peak_rss", {})), "note": "the HTTP ceiling"}]
    if s in ("e2e", "mix"):
        out = _e2e_rows(result.get("kinds", {}), "hermes", result["clients"])
        return out + _e2e_rows(result.get("celery_kinds", {}), "celery", result["clients"])
    return []


def _procs(values: dict[str, float], fmt: str) -> str:
    return ", ".join(f"{k} {fmt.format(v)}" for k, v in sorted(values.items(),
                                                                key=lambda kv: -kv[1]))


def table(results: list[dict[str, Any]]) -> str:
    lines = [f"{'run':<28} {'load':<32} {'rate':>14} {'p50':>9} {'p95':>9} {'p99':>9}"]
    for result in results:
        for r in rows(result):
            lat = r["latency"] or {}
            cells = [f"{lat[q]:,.1f}" if q in lat else "-" for q in ("p50", "p95", "p99")]
            lines.append(f"{r['name']:<28} {r['load']:<32} "
                         f"{r['rate']:>8,.0f} {SHORT_UNITS[r['unit']]:<6}"
                         + " ".join(f"{c:>9}" for c in cells) + " ms")
            lines.append(f"    latency: {r['latency_what']}; {r['note']}")
            lines.append(f"    CPU % of a core: {_procs(r['cpu'], '{:.0f}%')}")
            lines.append(f"    peak RSS: {_procs(r['rss'], '{:.0f} MiB')}")
    for result in results:
        if result["scenario"] == "baselines":
            lines.extend(baseline_lines(result))
    return "\n".join(lines)


def baseline_lines(b: dict[str, Any]) -> list[str]:
    a, t = b["adapter"], b["timers"]
    out = [f"adapter {a['adapter']}: core {a['core_us']:.1f} µs CPU per message, wasmtime "
           f"PyPI package {a['wasmtime_py_us']:.1f} µs: core {a['ratio']:.1f}x"]
    for name, ops in t["operations_per_cpu_s"].items():
        out.append(f"timers, {name}: {ops:,.0f} operations per CPU-second "
                   f"({t['vs_asyncio'][name]:.1f}x asyncio)")
    out.append(f"CascadeEngine from Python: {t['engine_events_per_cpu_s']:,.0f} events per "
               "CPU-second")
    return out
