"""Hot deploy under load: `python -m benches.hot_deploy [--rate 150] [--seconds 30] [--json F]`.

A private deployment (API, worker and provider sandbox as processes, as the
harness runs them) takes open-loop load from the harness's load generator: one-step
SMS cascades to numbers the sandbox delivers, at `--rate` messages/s (about half the
end-to-end maximum in BENCHMARKS.md). While the load runs:

1. a new `twilio_sms` version, uploaded through the admin API (golden vectors and
   the sandbox smoke test), is activated; measured: from the activation request to
   every process (API and worker) having swapped it in (each process reports the
   wall-clock time of its swap), and to the first attempt answered with it;
2. a version whose `build_request` traps is stored and activated; measured: from
   that activation to its quarantine, and to every process having the previous
   version back.

After the load, every accepted message must reach a final state, delivered, and no
attempt may have been answered by the trapping version.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from benches.harness import payloads
from benches.harness.deploy import Deployment, run_loadgen
from hermes import _core
from hermes.tenancy.admin import create_admin_token
from tests.adapter_variants import build_variant

GOLDEN = Path(__file__).resolve().parents[1] / "adapters_wasm" / "twilio_sms" / "golden.json"
ROLES = {"api", "worker"}


def _live(admin: httpx.Client) -> list[dict[str, Any]]:
    body = admin.get("/admin/v1/adapters").json()
    return next(a for a in body["data"] if a["name"] == "twilio_sms")["live"]


def wait_live(admin: httpx.Client, sha: str, after: float, timeout: float = 30,
              *, swapped: bool = True) -> float:
    """Wall-clock time at which the last process (of each role) swapped `sha` in after
    `after`. With `swapped=False`, a process that kept `sha` all along (it never took the
    version in between) counts as having it from `after`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = _live(admin)
        mine = [p for p in live if p["sha256"] == sha
                and (not swapped or (p["since"] or 0) >= after)]
        if {p["role"] for p in mine} >= ROLES and len(mine) == len(live):
            return max(max(p["since"] or 0, after) for p in mine)
        time.sleep(0.005)
    raise RuntimeError(f"{sha} not live everywhere within {timeout} s: {_live(admin)}")


def _store_directly(db: str, wasm: bytes) -> str:
    """A release the gate would refuse, stored as if it had passed (it traps in production)."""
    info = _core.AdapterRuntime().load(wasm)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO adapter_versions (sha256, name, version, wasm, manifest, size)"
                     " VALUES (%s, %s, %s, %s, %s::jsonb, %s)",
                     (info.sha256, info.name, info.version, wasm, info.manifest_json, len(wasm)))
    return info.sha256


def _pg(db: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


def run(rate: float, seconds: float, clients: int, keep_logs: bool) -> dict[str, Any]:
    stamp = time.strftime("%H%M%S")
    good_version, bad_version = f"1.1.1-bench{stamp}", f"1.1.2-trap{stamp}"
    good_wasm = build_variant("twilio_sms", good_version)
    bad_wasm = build_variant("twilio_sms", bad_version, trap=True)
    good = hashlib.sha256(good_wasm).hexdigest()
    out: dict[str, Any] = {"scenario": "hot_deploy", "rate": rate, "seconds": seconds,
                           "clients": clients}
    with Deployment(keep_logs=keep_logs) as d, contextlib.ExitStack() as cleanup:
        # The worker's readiness is read from its log ("worker ready", at info), and the
        # swaps and the quarantine are logged at info and error.
        d.env["HERMES_LOG_LEVEL"] = "info"
        d.start_sandbox()
        api = d.start_api()
        d.start_worker()
        db = d.env["HERMES_DATABASE_URL"]
        tenant = d.new_tenant()
        admin = httpx.Client(base_url=api, timeout=30, headers={
            "Authorization": f"Bearer {create_admin_token(db)}"})
        cleanup.callback(admin.close)
        r = admin.post("/admin/v1/adapters", files={
            "module": ("twilio_sms.wasm", good_wasm, "application/wasm"),
            "golden": ("golden.json", GOLDEN.read_bytes(), "application/json")})
        r.raise_for_status()
        out["upload"] = {k: r.json()[k] for k in ("version", "sha256", "golden", "smoke")}
        bad = _store_directly(db, bad_wasm)

        window = threading.Event()
        result: dict[str, Any] = {}

        def load() -> None:
            result.update(run_loadgen(
                {"url": f"{api}/v1/messages", "bodies": payloads.singles("first"),
                 "headers": {"authorization": tenant["auth"]}, "clients": clients,
                 "seconds": seconds, "rate": rate, "warmup": 2.0,
                 "label": f"hot deploy @{rate:g}/s"},
                d.pids(), on_window=lambda what: window.set() if what == "start" else None))

        loader = threading.Thread(target=load)
        loader.start()
        window.wait(120)
        time.sleep(seconds * 0.2)

        # 1. A new version goes live.
        t0 = time.time()
        r = admin.post("/admin/v1/adapters/twilio_sms/activate", json={"version": good_version})
        r.raise_for_status()
        answered = time.time()
        live_at = wait_live(admin, good, t0)
        time.sleep(1.0)
        first = _pg(db, "SELECT min(answered_at) FROM attempts WHERE adapter_sha256 = %s",
                    good)[0][0]
        out["activate"] = {
            "request_s": answered - t0,
            "live_everywhere_s": live_at - t0,
            "first_attempt_s": None if first is None else first.timestamp() - t0,
        }
        time.sleep(seconds * 0.3)

        # 2. A version that traps: quarantined, the previous one back.
        t1 = time.time()
        admin.post("/admin/v1/adapters/twilio_sms/activate",
                   json={"version": bad_version}).raise_for_status()
        deadline = time.monotonic() + 30
        while _pg(db, "SELECT status FROM adapter_versions WHERE sha256 = %s",
                  bad)[0][0] != "quarantined" and time.monotonic() < deadline:
            time.sleep(0.005)
        restored_at = wait_live(admin, good, t1, swapped=False)
        row = _pg(db, "SELECT status, quarantined_at, quarantine_reason FROM adapter_versions"
                  " WHERE sha256 = %s", bad)[0]
        out["trap"] = {"status": row[0], "reason": row[2],
                       "quarantined_s": None if row[1] is None else row[1].timestamp() - t1,
                       "restored_everywhere_s": restored_at - t1}
        loader.join()

        # Every accepted message final and delivered; none answered by the trapping version.
        accepted = result["ok"] if "ok" in result else result.get("run", {}).get("ok")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            open_ = _pg(db, "SELECT count(*) FROM messages WHERE tenant_id = %s"
                        " AND finished_at IS NULL", tenant["id"])[0][0]
            if open_ == 0:
                break
            time.sleep(0.5)
        outcomes = dict(_pg(db, "SELECT coalesce(outcome, status), count(*) FROM messages"
                            " WHERE tenant_id = %s GROUP BY 1", tenant["id"]))
        versions = dict(_pg(db, "SELECT coalesce(adapter_version, '-'), count(*) FROM attempts"
                            " WHERE tenant_id = %s GROUP BY 1", tenant["id"]))
        out["messages"] = {"accepted_in_window": accepted, "stored": sum(outcomes.values()),
                           "outcomes": outcomes, "attempts_by_version": versions,
                           "errors": result.get("errors")}
        out["load"] = {k: result.get(k) for k in ("ok", "errors", "window_s", "latencies_ms",
                                                  "cpu")}
        out["ok"] = (set(outcomes) == {"delivered"} and bad_version not in versions
                     and out["trap"]["status"] == "quarantined" and not result.get("errors"))
    return out


def summary(r: dict[str, Any]) -> str:
    a, t, m = r["activate"], r["trap"], r["messages"]
    first = "-" if a["first_attempt_s"] is None else f"{a['first_attempt_s']:.3f} s"
    quarantined = "-" if t["quarantined_s"] is None else f"{t['quarantined_s']:.3f} s"
    return "\n".join([
        f"hot deploy under {r['rate']:g} messages/s for {r['seconds']:g} s:",
        f"  new twilio_sms live on every process {a['live_everywhere_s']:.3f} s after the "
        f"activation request (request answered in {a['request_s']:.3f} s); first attempt "
        f"with it {first}",
        f"  trapping version quarantined {quarantined} after activation, previous version "
        f"live everywhere again {t['restored_everywhere_s']:.3f} s after it ({t['reason']})",
        f"  messages: {m['stored']} stored, outcomes {m['outcomes']}, attempts by version "
        f"{m['attempts_by_version']}, load errors {m['errors']}",
        f"  verdict: {'no message failed or lost' if r['ok'] else 'FAILED'}",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=150.0, help="messages/s, open loop")
    p.add_argument("--seconds", type=float, default=30.0, help="measured seconds of load")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--json", type=Path, default=None, help="write the full results here")
    p.add_argument("--keep-logs", action="store_true")
    args = p.parse_args(argv)
    result = run(args.rate, args.seconds, args.clients, args.keep_logs)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    print(summary(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
