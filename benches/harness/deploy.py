"""A private Hermes deployment for one harness run: the stack, a tenant, the processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from hermes.devstack import Stack
from hermes.devstack.procs import ChildProcess, wait_until
from hermes.devstack.services import free_port
from hermes.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# HERMES_* variables of the caller that reach the processes of a deployment.
PASSED_SETTINGS = frozenset({"HERMES_GC_GEN0_THRESHOLD"})

class Deployment:
    """Start with `with Deployment() as d:`; every process stops at the end, in reverse order."""

    def __init__(self, *, keep_logs: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hermes-bench-"))
        self.keep_logs = keep_logs
        self.stack = Stack(self.root)
        self.procs: dict[str, ChildProcess] = {}
        self.env: dict[str, str] = {}
        self.urls: dict[str, str] = {}

    def __enter__(self) -> Deployment:
        from hermes.infra.postgres.migrate import migrate
        from hermes.providers.secrets import new_key_entry

        urls = self.stack.start(Settings())
        migrate(urls.database_url)
        # The stack's own settings, not the caller's HERMES_* ones, except those meant to be
        # compared between runs (HERMES_GC_GEN0_THRESHOLD=0: the collector's defaults).
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("HERMES_") or k in PASSED_SETTINGS}
        self.env.update(HERMES_DATABASE_URL=urls.database_url, HERMES_NATS_URL=urls.nats_url,
                        HERMES_REDIS_URL=urls.redis_url, HERMES_LOG_LEVEL="warning",
                        HERMES_DATA_DIR=str(self.root), PYTHONPATH=str(ROOT),
                        # The bench tenant sends far above the default per-tenant limit.
                        HERMES_RATE_LIMIT_PER_S="0",
                        # A key for this run's provider credentials; the webhook
                        # receiver listens on this machine.
                        HERMES_MASTER_KEYS=new_key_entry("bench"),
                        HERMES_ALLOW_PRIVATE_TARGETS="127.0.0.0/8,::1")
        asyncio.run(_ensure_streams(urls.nats_url))
        return self

    def __exit__(self, *exc: object) -> None:
        for p in reversed(list(self.procs.values())):
            p.stop(timeout=15)
        self.stack.stop()
        if self.keep_logs:
            print(f"logs kept in {self.root / 'logs'}", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def _start(self, name: str, argv: list[str], ready: str, timeout: float = 60) -> str:
        child = ChildProcess(name, argv, log_path=self.root / "logs" / f"{name}.log",
                             env=self.env, cwd=ROOT)
        self.procs[name] = child
        child.start()
        wait_until(lambda: _ok(ready), timeout=timeout, what=name, child=child)
        return ready

    def start_sandbox(self) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        self._start("sandbox", [sys.executable, "-m", "hermes", "sandbox", "--port", str(port),
                                "--receipt-delay-ms", "50"], f"{url}/_sandbox/health")
        self.env["HERMES_SANDBOX_URL"] = url
        self.urls["sandbox"] = url
        return url

    def start_api(self) -> str:
        port = free_port()
        self.env["HERMES_API_PORT"] = str(port)
        url = f"http://127.0.0.1:{port}"
        self._start("api", [sys.executable, "-m", "hermes", "api"], f"{url}/readyz")
        self.urls["api"] = url
        return url

    def start_worker(self, loop: str = "asyncio") -> None:
        argv = ([sys.executable, "-m", "benches.harness.uvloop_worker"] if loop == "uvloop"
                else [sys.executable, "-m", "hermes", "worker"])
        # At info level the worker says "worker ready" (it logs little else at that level).
        child = ChildProcess("worker", argv, log_path=self.root / "logs" / "worker.log",
                             env={**self.env, "HERMES_LOG_LEVEL": "info"}, cwd=ROOT)
        self.procs["worker"] = child
        child.start()
        log = self.root / "logs" / "worker.log"
        wait_until(lambda: log.exists() and "worker ready" in log.read_text(errors="replace"),
                   timeout=60, what="worker", child=child)

    def start_trivial(self) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        self._start("trivial", [sys.executable, "-m", "benches.harness.trivial", "--port",
                                str(port), "--log-level", "warning"], url + "/schema/openapi.json")
        self.urls["trivial"] = url
        return url

    def start_receiver(self) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        self._start("receiver", [sys.executable, "-m", "benches.harness.receiver", "--port",
                                 str(port)], url + "/stats")
        self.urls["receiver"] = url
        return url

    def start_celery(self, receiver: str, pool: str = "prefork", concurrency: int = 2) -> str:
        """The Celery baseline (`benches.harness.celery_cascade`): its web app and a worker
        (by default the prefork pool with one process per core, Celery's default here), with
        the stack's Redis (database 1) as broker, sending through the same sandbox and
        reporting to the same webhook receiver as Hermes. Returns the web app's URL."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        broker = self.env["HERMES_REDIS_URL"].rstrip("/").rsplit("/", 1)
        broker_url = (broker[0] if broker[1].isdigit() else "/".join(broker)) + "/1"
        self.env.update(BENCH_CELERY_BROKER=broker_url, BENCH_SANDBOX_URL=self.urls["sandbox"],
                        BENCH_CALLBACK_URL=url, BENCH_WEBHOOK_URL=f"{receiver}/hook")
        self._start("celery-web", [sys.executable, "-m", "benches.harness.celery_web",
                                   "--port", str(port)], url + "/schema/openapi.json")
        child = ChildProcess("celery", [sys.executable, "-m", "celery", "-A",
                                        "benches.harness.celery_cascade", "worker",
                                        "--pool", pool, "--concurrency", str(concurrency),
                                        "--loglevel", "WARNING", "--without-gossip",
                                        "--without-mingle", "--without-heartbeat"],
                             log_path=self.root / "logs" / "celery.log", env=self.env, cwd=ROOT)
        self.procs["celery"] = child
        child.start()
        httpx.put(f"{self.urls['sandbox']}/_sandbox/ses/configuration-sets/celery-bench",
                  json={"endpoint": f"{url}/sns"}, timeout=10).raise_for_status()
        self.urls["celery"] = url
        return url

    def stop(self, *names: str) -> None:
        for name in names:
            proc = self.procs.pop(name, None)
            if proc is not None:
                proc.stop(timeout=15)

    def pids(self) -> dict[str, int]:
        out = {s.name: s.child.pid for s in self.stack.services if s.child.pid is not None}
        out.update({n: p.pid for n, p in self.procs.items() if p.pid is not None})
        return out

    def new_tenant(self) -> dict[str, str]:
        return asyncio.run(_new_tenant(self.env["HERMES_DATABASE_URL"]))

    def pg_activity(self) -> dict[str, int]:
        """Counters of PostgreSQL work so far: commits, and rows inserted/updated per table
        (`.hot`: updates that were heap-only, writing no index entry)."""
        import psycopg

        with psycopg.connect(self.env["HERMES_DATABASE_URL"], autocommit=True) as conn:
            db = conn.execute("SELECT xact_commit, tup_inserted, tup_updated, tup_deleted"
                              " FROM pg_stat_database WHERE datname = current_database()"
                              ).fetchone()
            tables = conn.execute("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del,"
                                  " n_tup_hot_upd FROM pg_stat_user_tables").fetchall()
        assert db is not None
        out = {"commits": db[0], "inserted": db[1], "updated": db[2], "deleted": db[3]}
        for name, ins, upd, dele, hot in tables:
            for what, n in (("ins", ins), ("upd", upd), ("del", dele), ("hot", hot)):
                if n:
                    out[f"{name}.{what}"] = n
        return out

    def published(self) -> int:
        """How many start commands the cascade stream holds."""
        return asyncio.run(_wait_published(self.env["HERMES_NATS_URL"], 0, 0))[0]

    def wait_published(self, count: int, timeout: float = 120.0) -> tuple[int, float]:
        """Wait until the cascade stream holds `count` messages (the start commands of what
        was accepted); how many it holds and how long that took."""
        return asyncio.run(_wait_published(self.env["HERMES_NATS_URL"], count, timeout))

    def count_messages(self, tenant_id: str) -> int:
        import psycopg

        with psycopg.connect(self.env["HERMES_DATABASE_URL"], autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM messages WHERE tenant_id = %s",
                               (tenant_id,)).fetchone()
        assert row is not None
        return int(row[0])


async def _ensure_streams(nats_url: str) -> None:
    """Create the JetStream streams, as a worker does at start (ingest runs without one)."""
    import nats

    from hermes.infra.nats.streams import ensure_streams

    nc = await nats.connect(nats_url)
    try:
        await ensure_streams(nc.jetstream())
    finally:
        await nc.close()


async def _wait_published(nats_url: str, count: int, timeout: float) -> tuple[int, float]:
    import nats

    nc = await nats.connect(nats_url)
    start = time.monotonic()
    try:
        while True:
            info = await nc.jetstream().stream_info("HERMES_CASCADE")
            held = int(info.state.messages)
            if held >= count or time.monotonic() - start > timeout:
                return held, time.monotonic() - start
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


async def _new_tenant(database_url: str) -> dict[str, str]:
    from hermes.infra.postgres.pool import make_pool
    from hermes.infra.postgres.tenants import PostgresTenantStore
    from hermes.tenancy.secrets import digest, display_prefix, new_api_key

    pool = make_pool(database_url, min_size=1, max_size=1, name="bench-setup")
    await pool.open(wait=True)
    try:
        store = PostgresTenantStore(pool)
        t = await store.create_tenant(f"bench-{uuid.uuid4().hex[:6]}")
        key = new_api_key("test")
        await store.add_api_key(t.id, prefix=display_prefix(key), key_hash=digest(key),
                                mode="test", scopes=["send", "read", "manage"])
    finally:
        await pool.close()
    return {"id": str(t.id), "auth": f"Bearer {key}"}


def run_loadgen(config: dict[str, Any], pids: dict[str, int],
                profile: dict[str, Path] | None = None,
                on_window: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the load generator in its own process; its results plus CPU seconds per process
    over the measured window (the load generator's own included, as `loadgen`).

    `profile` maps process names to SVG paths: py-spy records those processes for the
    measured window (sampling costs them a little CPU). `on_window` is called with "start"
    and "end" as the window opens and closes."""
    import json

    from benches.harness.procstat import tree_cpu, tree_peak_rss
    from benches.harness.progress import Bar

    path = Path(tempfile.mkstemp(prefix="loadgen-", suffix=".json")[1])
    path.write_text(json.dumps(config))
    out = path.with_suffix(".out.json")
    proc = subprocess.Popen([sys.executable, "-m", "benches.harness.loadgen", str(path),
                             str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        watched = {**pids, "loadgen": proc.pid}
        before: dict[str, float] = {}
        after: dict[str, float] = {}
        t0 = t1 = 0.0
        spies: list[subprocess.Popen[bytes]] = []
        result: dict[str, Any] = {}
        rss: dict[str, dict[str, float]] = {}
        # The bar starts with the window (after the warm-up).
        bar = Bar(config.get("label", config["url"].rsplit("/", 2)[-1]), config["seconds"])
        for line in proc.stdout:
            line = line.strip()
            if line.startswith("progress "):
                _, at, ok, errors = line.split()
                rate = int(ok) / max(1e-9, float(at))
                bar.update(float(at), f"{int(ok):,} ok ({rate:,.0f}/s), {int(errors):,} errors")
            elif line == "window-start":
                before, t0 = tree_cpu(watched), time.monotonic()
                bar.started = time.monotonic()
                if on_window is not None:
                    on_window("start")
                spies = [_py_spy(pids[name], svg, config["seconds"])
                         for name, svg in (profile or {}).items()]
            elif line == "window-end":
                after, t1 = tree_cpu(watched), time.monotonic()
                rss = tree_peak_rss(watched)
                bar.close()
                if on_window is not None:
                    on_window("end")
            elif line == "done":
                result = json.loads(out.read_text())
                # The servers' peaks may have grown while the last answers came in.
                for name, peak in tree_peak_rss(pids).items():
                    if peak["mib"] >= rss.get(name, {}).get("mib", 0.0):
                        rss[name] = peak
        for spy in spies:
            spy.wait(timeout=60)
        if proc.wait(timeout=120) != 0 or not result:
            raise RuntimeError(f"load generator failed ({proc.returncode})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        path.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    result["cpu"] = {name: after[name] - before[name] for name in before}
    result["peak_rss"] = rss
    result["cpu_at_start"] = before
    result["cpu_window_s"] = t1 - t0
    return result


def _py_spy(pid: int, svg: Path, seconds: float) -> subprocess.Popen[bytes]:
    spy = Path(sys.executable).with_name("py-spy")
    # A .txt path asks for collapsed stacks (flamegraph.pl's input) instead of an SVG.
    fmt = "raw" if svg.suffix == ".txt" else "flamegraph"
    return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--duration",
                             str(max(1, int(seconds))), "--rate", "200", "--nonblocking",
                             "--format", fmt, "-o", str(svg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
