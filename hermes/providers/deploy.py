"""Hot deploy: every process converges on the adapter versions PostgreSQL marks active.

PostgreSQL (`adapter_versions`) says which version of each adapter is active.
A change is announced on the core NATS subject `hermes.adapters.control`; on
the announcement, and every `RECONCILE_S` seconds in case one was missed (a
process that was down or disconnected), each process reads what should be live,
fetches any module it lacks (built in, the local module cache, else PostgreSQL
by sha256), compiles it off the event loop and swaps its registry's mapping.
Calls in flight keep the version they started with; a replaced version is
unloaded `UNLOAD_GRACE_S` later, long after any provider call has finished.

Each process reports what it has live in Redis (`hermes:adapters:live:<process>`,
refreshed every `HEARTBEAT_S`, expiring after `LIVE_TTL_S`), which
`GET /admin/v1/adapters` shows per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from hermes import _core
from hermes.infra.nats.connection import NatsConnection
from hermes.infra.postgres.adapters import Change, DeployError, Module, PostgresAdapterStore
from hermes.providers.quarantine import TrapMonitor
from hermes.providers.registry import ActiveAdapter, AdapterRegistry

log = logging.getLogger("hermes.adapters")

CONTROL_SUBJECT = "hermes.adapters.control"
LIVE_PREFIX = "hermes:adapters:live:"
RECONCILE_S = 5.0
HEARTBEAT_S = 5.0
LIVE_TTL_S = 15
UNLOAD_GRACE_S = 120.0


class AdapterSync:
    def __init__(self, registry: AdapterRegistry, pool: AsyncConnectionPool,
                 nats: NatsConnection, redis: Redis, *, role: str, cache_dir: Path,
                 reconcile_s: float = RECONCILE_S, heartbeat_s: float = HEARTBEAT_S,
                 unload_grace_s: float = UNLOAD_GRACE_S) -> None:
        self.registry = registry
        self.store = PostgresAdapterStore(pool)
        self.nats = nats
        self.redis = redis
        self.role = role
        self.modules_dir = cache_dir / "modules"
        self.reconcile_s, self.heartbeat_s = reconcile_s, heartbeat_s
        self.unload_grace_s = unload_grace_s
        self.host = socket.gethostname()
        self.process_id = f"{role}@{self.host}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.since: dict[str, float] = {}
        self.monitor = TrapMonitor(self.quarantine)
        self._seeded = False
        self._subscribed = False
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unloads: set[asyncio.Task[None]] = set()
        self._last_beat = 0.0

    # --- lifecycle ---

    async def start(self) -> None:
        """Record the built-ins, converge once, then follow announcements in the background.

        Never fails for an unavailable dependency: the built-ins are already live, and the
        background loop keeps trying."""
        now = time.time()
        for name in self.registry.live():
            self.since.setdefault(name, now)
        self._subscribed = await self._subscribe()
        with contextlib.suppress(Exception):
            await self.sync()
        self._task = asyncio.create_task(self._run(), name="adapter-sync")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._unloads) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.redis.delete(LIVE_PREFIX + self.process_id), 2.0)

    def wake(self) -> None:
        """Converge now rather than at the next period."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            if not self._subscribed:
                self._subscribed = await self._subscribe()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.reconcile_s)
            self._wake.clear()
            try:
                await self.sync()
            except Exception as exc:  # PostgreSQL away: keep what is live, try again
                log.warning("adapter reconcile failed: %r", exc)

    async def _subscribe(self) -> bool:
        nc = self.nats.client
        if nc is None or not nc.is_connected:
            return False

        async def on_control(msg: Any) -> None:
            self.wake()

        try:
            await nc.subscribe(CONTROL_SUBJECT, cb=on_control)
        except Exception as exc:
            log.warning("cannot subscribe to %s: %r", CONTROL_SUBJECT, exc)
            return False
        return True

    # --- converging ---

    async def sync(self) -> list[ActiveAdapter]:
        """Seed (once), reconcile, report; the versions swapped in."""
        if not self._seeded:
            await self.seed()
        swapped = await self.reconcile()
        if swapped or time.monotonic() - self._last_beat >= self.heartbeat_s:
            await self.heartbeat()
        return swapped

    async def seed(self) -> None:
        """Record the built-in modules, so a rollback can return to them and listings show
        them; one becomes active where its adapter has none."""
        changes = []
        for sha, wasm in sorted(self.registry.builtin.items()):
            adapter = self.registry.loaded(sha)
            if adapter is None:
                continue
            change = await self.store.seed_builtin(Module(sha, adapter.name, adapter.version,
                                                          wasm, adapter.manifest))
            if change is not None:
                changes.append(change)
        self._seeded = True
        for change in changes:
            await self.announce(change)

    async def reconcile(self) -> list[ActiveAdapter]:
        async with self._lock:
            active, pins = await self.store.wanted()
            swapped = []
            for name, sha in sorted(active.items()):
                current = self.registry.live().get(name)
                if current is not None and current.sha256 == sha:
                    continue
                adapter = await self._ensure_loaded(sha)
                if adapter is None:
                    continue
                if adapter.name != name:
                    log.error("module %s is %s, not %s; not activated", sha, adapter.name, name)
                    continue
                self.registry.swap(adapter)
                self.since[name] = time.time()
                self.monitor.reset(sha)
                swapped.append(adapter)
                log.info("adapter %s %s (%s) is live", name, adapter.version, sha[:12])
                if current is not None:
                    self._unload_later(current.sha256)
            pinned = {}
            for key, sha in pins.items():
                found = await self._ensure_loaded(sha)
                if found is not None:
                    pinned[key] = found
            self.registry.set_pins(pinned)
            return swapped

    async def _ensure_loaded(self, sha: str) -> ActiveAdapter | None:
        loaded = self.registry.loaded(sha)
        if loaded is not None:
            return loaded
        wasm = self.registry.builtin.get(sha) or self._cached(sha)
        if wasm is None:
            wasm = await self.store.wasm(sha)
            if wasm is None:
                log.error("adapter module %s is not stored", sha)
                return None
            self._cache(sha, wasm)
        try:
            # Compiling takes milliseconds to a second: never on the event loop.
            return await asyncio.to_thread(self.registry.load, wasm)
        except _core.AdapterError as exc:
            log.error("adapter module %s does not load: %s", sha, exc)
            return None

    def _cached(self, sha: str) -> bytes | None:
        path = self.modules_dir / f"{sha}.wasm"
        try:
            wasm = path.read_bytes()
        except OSError:
            return None
        return wasm if hashlib.sha256(wasm).hexdigest() == sha else None

    def _cache(self, sha: str, wasm: bytes) -> None:
        try:
            self.modules_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.modules_dir / f".{sha}.{os.getpid()}.tmp"
            tmp.write_bytes(wasm)
            tmp.replace(self.modules_dir / f"{sha}.wasm")
        except OSError as exc:
            log.debug("cannot cache adapter module %s: %s", sha, exc)

    def _unload_later(self, sha: str) -> None:
        async def unload() -> None:
            await asyncio.sleep(self.unload_grace_s)
            self.registry.unload(sha)

        task = asyncio.create_task(unload())
        self._unloads.add(task)
        task.add_done_callback(self._unloads.discard)

    # --- telling the others ---

    async def announce(self, change: Change) -> None:
        """Tell every process to converge now (they also would within `RECONCILE_S`)."""
        self.wake()
        nc = self.nats.client
        if nc is None or not nc.is_connected:
            return
        body = json.dumps({"name": change.name, "sha256": change.sha256,
                           "version": change.version, "action": change.action}).encode()
        try:
            await nc.publish(CONTROL_SUBJECT, body)
            await nc.flush(timeout=1)
        except Exception as exc:  # the periodic reconcile still converges everyone
            log.warning("adapter announcement not sent: %r", exc)

    async def heartbeat(self) -> None:
        self._last_beat = time.monotonic()
        live = {name: {"sha256": a.sha256, "version": a.version,
                       "since": self.since.get(name)}
                for name, a in sorted(self.registry.live().items())}
        body = json.dumps({"process": self.process_id, "role": self.role, "host": self.host,
                           "pid": os.getpid(), "at": time.time(), "adapters": live})
        try:
            await self.redis.set(LIVE_PREFIX + self.process_id, body, ex=LIVE_TTL_S)
        except Exception as exc:
            log.debug("adapter heartbeat not written: %r", exc)

    # --- quarantine ---

    async def quarantine(self, adapter: ActiveAdapter, reason: str) -> None:
        """Quarantine a version that keeps trapping and restore the one before it."""
        try:
            change = await self.store.rollback(adapter.name, quarantine=adapter.sha256,
                                               reason=reason)
        except DeployError as exc:
            if exc.code == "request.invalid":
                log.error("%s %s keeps trapping but has no earlier version to restore; left "
                          "active", adapter.name, adapter.version)
                return
            # Not the active version (pinned, or already rolled back elsewhere).
            await self.store.quarantine_inactive(adapter.sha256, reason)
            self.wake()
            return
        log.error("quarantined %s %s (%s); %s restored", adapter.name, adapter.version,
                  adapter.sha256[:12], change.version)
        await self.announce(change)


async def live_processes(redis: Redis) -> list[dict[str, Any]]:
    """What each running process reports live, by process id."""
    keys = [key async for key in redis.scan_iter(match=LIVE_PREFIX + "*", count=500)]
    if not keys:
        return []
    out = []
    for raw in await redis.mget(keys):
        if raw is None:
            continue
        with contextlib.suppress(ValueError):
            out.append(json.loads(raw))
    return sorted(out, key=lambda p: (p.get("role", ""), p.get("process", "")))
