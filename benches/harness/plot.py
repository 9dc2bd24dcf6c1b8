"""`--plot out.png`: throughput and latency per second over each run (matplotlib, optional:
`pip install -e '.[plot]'`).

Top: answers per second from the load generator (for end-to-end runs, final webhooks per
second as well, dotted); bottom: p50 and p99 of the latency per second, log scale (end to
end: accepted to final webhook, by the second the webhook came). A column per kind of run
(HTTP ingest, each end-to-end kind, the mix), a colour per run, time from the start of its
measured window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benches.harness import report


def series(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-second data of every loadgen run in the results: label, answers/s, finals/s,
    p50 and p99 per second (ms)."""
    out = []
    for result in doc["results"]:
        s = result["scenario"]
        runs: list[tuple[str, str, dict[str, Any], list[int] | None]] = []
        if s in ("ingest", "trivial"):
            runs.append(("HTTP ingest", s, result["run"], None))
        elif s == "single":
            for name, rs in result["runs"].items():
                runs += [("HTTP ingest", f"single {name} #{i + 1}", r, None)
                         for i, r in enumerate(rs)]
        elif s in ("e2e", "mix"):
            for system in ("kinds", "celery_kinds"):
                for key, k in result.get(system, {}).items():
                    kind, _, rate = key.partition("@")
                    label = (f"{'celery' if system == 'celery_kinds' else 'hermes'} "
                             f"{report.KIND_NAMES.get(kind, kind)}" + (f" @{rate}" if rate
                                                                      else ""))
                    runs.append((report.KIND_NAMES.get(kind, kind), label,
                                 {**k["run"], "final_latency_per_second": k.get(
                                     "final_latency_per_second")},
                                 k.get("finished_per_second")))
        for group, label, run, finals in runs:
            # The load generator's last bucket holds the answers that came after the window.
            seconds = int(run.get("window_s", len(run["per_second"])))
            # End to end: the latency that matters is accepted to final webhook.
            per_s = run.get("final_latency_per_second") or run.get("latency_per_second") or []
            out.append({"group": group, "label": label,
                        "answers": run["per_second"][:seconds],
                        "finals": finals, "p50": [x.get("p50") for x in per_s],
                        "p99": [x.get("p99") for x in per_s]})
    return out


def plot(doc: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib
    except ModuleNotFoundError as exc:
        raise SystemExit("--plot needs matplotlib: pip install -e '.[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = series(doc)
    groups = list(dict.fromkeys(d["group"] for d in data)) or ["(no runs)"]
    fig, axes = plt.subplots(2, len(groups), figsize=(6 * len(groups), 8), squeeze=False)
    for col, group in enumerate(groups):
        top, bottom = axes[0][col], axes[1][col]
        for d in (d for d in data if d["group"] == group):
            xs = range(len(d["answers"]))
            line = top.plot(xs, d["answers"], label=f"{d['label']}: answers")[0]
            if d["finals"]:
                top.plot(range(len(d["finals"])), d["finals"], linestyle=":",
                         color=line.get_color(), label=f"{d['label']}: final webhooks")
            for q, style in (("p50", "-"), ("p99", "--")):
                points = [(x, y) for x, y in enumerate(d[q]) if y]
                if points:
                    bottom.plot([x for x, _ in points], [y for _, y in points],
                                linestyle=style, color=line.get_color(),
                                label=f"{d['label']} {q}")
        top.set_title(group)
        top.set_ylabel("per second")
        bottom.set_ylabel("latency (ms), per second")
        bottom.set_yscale("log")
        bottom.set_xlabel("seconds since the measured window opened")
        for ax in (top, bottom):
            ax.grid(True, alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=6)
    fig.suptitle(f"hermes bench: {doc.get('command', '')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
