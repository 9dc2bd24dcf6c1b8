"""Crash tests: Deployment processes killed with SIGKILL, NATS and PostgreSQL restarted mid-run.

The module runs its own PostgreSQL, NATS and Redis (`hermes.devstack.Stack` in
a temporary directory) and its own `hermes api`, `hermes worker` and
`hermes sandbox` processes, so killing and restarting them disturbs no other
test. Every test ends with the same check (DESIGN.md §3):

* none lost: every id the API answered 202 for is in PostgreSQL;
* exactly one final state: within a bound, no message is left unfinished, each
  has an outcome and exactly one `finished` entry in its timeline;
* duplicates bounded and counted: a provider received at most one request per
  attempt Deployment claimed, more requests than the cascade's answered attempts
  only where an attempt was interrupted between the provider call and its
  record (the duplicate window), every such attempt is marked in PostgreSQL and
  logged by the worker that closed it, and nothing is sent for a message after
  its final state.

Each message has a phone number and an email address of its own, so what the
sandbox received is attributed to messages by recipient.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from hermes.bootstrap import open_container
from hermes.cascade.leases import SHARD_LOCKS
from hermes.delivery.worker import ACK_WAIT_S as DELIVERY_ACK_WAIT_S
from hermes.devstack import Stack
from hermes.devstack.procs import ChildProcess, wait_until
from hermes.devstack.services import free_port
from hermes.infra.postgres.attempts import INTERRUPTED
from hermes.infra.postgres.migrate import migrate
from hermes.providers.secrets import new_key_entry
from hermes.settings import Settings
from hermes.tenancy.secrets import digest, display_prefix, new_api_key

# How long after the last disturbance every accepted message must be final. The
# engine's JetStream consumers redeliver what a killed worker had fetched after
# 30 s (their ack wait); the recovery sweep re-drives unstarted messages after 5 s.
SETTLE_S = 60.0
# The deployment's master key for provider credentials, shared by its processes.
MASTER_KEYS = new_key_entry("crash")

_PHONE = re.compile(r"\+4474\d{8}")
_EMAIL = re.compile(r"crash-\d+@example\.com")
_WINDOW_LOG = re.compile(r"attempt (\S+) was interrupted mid-send \(duplicate window\)")
_numbers = itertools.count(1)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Deployment:
    """The module's private deployment: services, processes, a tenant."""

    stack: Stack
    database_url: str
    api_url: str
    sandbox_url: str
    api: ChildProcess
    worker: ChildProcess
    sandbox: ChildProcess
    logs: Path
    auth: str = ""
    accepted: set[str] = field(default_factory=set)

    def restart_worker(self) -> None:
        self.worker.start()

    def start_api(self) -> None:
        self.api.start()
        wait_until(lambda: _ok(f"{self.api_url}/healthz"), timeout=60, what="api",
                   child=self.api)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    root = Path(tempfile.mkdtemp(prefix="hermes-test-"))  # PostgreSQL's user must traverse it
    stack = Stack(root)
    procs: list[ChildProcess] = []
    try:
        urls = stack.start(Settings())
        migrate(urls.database_url)
        logs = root / "procs"
        api_port, sandbox_port = free_port(), free_port()
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_")}
        env.update(HERMES_DATABASE_URL=urls.database_url, HERMES_NATS_URL=urls.nats_url,
                   HERMES_REDIS_URL=urls.redis_url, HERMES_SANDBOX_URL=sandbox_url,
                   HERMES_API_PORT=str(api_port), HERMES_MASTER_KEYS=MASTER_KEYS,
                   HERMES_ALLOW_PRIVATE_TARGETS="127.0.0.0/8,::1")
        py = sys.executable
        sandbox = ChildProcess("sandbox", [py, "-m", "hermes", "sandbox", "--port",
                                           str(sandbox_port), "--receipt-delay-ms", "50",
                                           "--timeout-hold-ms", "3000"],
                               log_path=logs / "sandbox.log", env=env)
        api = ChildProcess("api", [py, "-m", "hermes", "api"], log_path=logs / "api.log",
                           env=env)
        worker = ChildProcess("worker", [py, "-m", "hermes", "worker"],
                              log_path=logs / "worker.log", env=env)
        procs += [sandbox, api, worker]
        sandbox.start()
        wait_until(lambda: _ok(f"{sandbox_url}/_sandbox/health"), timeout=30, what="sandbox",
                   child=sandbox)
        api.start()
        worker.start()
        api_url = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: _ok(f"{api_url}/readyz"), timeout=60, what="api", child=api)
        yield Deployment(stack, urls.database_url, api_url, sandbox_url, api, worker, sandbox, logs)
    finally:
        for p in reversed(procs):
            p.stop(timeout=15)
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
async def tenant(deployment: Deployment) -> Deployment:
    settings = Settings(database_url=deployment.database_url,
                        nats_url=deployment.stack.service("nats").url,
                        redis_url=deployment.stack.service("redis").url,
                        master_keys=MASTER_KEYS)
    container = await open_container(settings, name="crash-test")
    try:
        await container.pool.wait(timeout=10)
        t = await container.tenants.create_tenant(f"crash-{uuid.uuid4().hex[:6]}")
        key = new_api_key("test")
        await container.tenants.add_api_key(t.id, prefix=display_prefix(key),
                                            key_hash=digest(key), mode="test",
                                            scopes=["send", "read"])
    finally:
        await container.close()
    deployment.auth = f"Bearer {key}"
    return deployment


def message(sms_timeout: str = "1s") -> dict[str, Any]:
    """A cascade of its own recipients: SMS delivered (unless a crash delays it), then email."""
    n = next(_numbers)
    # Numbers ending 0002-0007 have outcomes of their own in the sandbox: skip them.
    while f"{n:04d}"[-4:] in {"0002", "0003", "0004", "0005", "0006", "0007"}:
        n = next(_numbers)
    return {"to": {"phone": f"+4474{n:08d}", "email": f"crash-{n}@example.com"},
            "body": f"Crash test {n}",
            "steps": [{"channel": "sms", "timeout": sms_timeout},
                      {"channel": "email", "timeout": "2s"}]}


class Sender:
    """Clients posting messages concurrently; remembers every id answered 202."""

    def __init__(self, h: Deployment, *, concurrency: int = 8) -> None:
        self.h = h
        self.concurrency = concurrency
        self.statuses: Counter[int | str] = Counter()
        self.problems: list[tuple[int, str, dict[str, Any]]] = []
        self.accepted_at: list[float] = []  # time.monotonic() of each 202 answer

    async def post(self, client: httpx.AsyncClient) -> None:
        try:
            r = await client.post("/v1/messages", json=message())
        except httpx.HTTPError as exc:
            self.statuses[type(exc).__name__] += 1
            return
        self.statuses[r.status_code] += 1
        if r.status_code == 202:
            self.h.accepted.add(r.json()["id"])
            self.accepted_at.append(time.monotonic())
        else:
            self.problems.append((r.status_code, r.headers.get("content-type", ""), r.json()))

    async def burst(self, count: int) -> None:
        async with self._client() as client:
            sem = asyncio.Semaphore(self.concurrency)

            async def one() -> None:
                async with sem:
                    await self.post(client)

            await asyncio.gather(*(one() for _ in range(count)))

    async def until(self, stop: asyncio.Event, pause: float = 0.08) -> None:
        """Post continuously, `concurrency` at a time, until `stop` is set.

        The pause keeps the rate near 100 messages/s on any machine, so a module run
        stays well inside the sandbox's record of the last 10,000 requests."""
        async with self._client() as client:
            async def loop() -> None:
                while not stop.is_set():
                    await self.post(client)
                    if pause:
                        await asyncio.sleep(pause)

            await asyncio.gather(*(loop() for _ in range(self.concurrency)))

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.h.api_url, timeout=10,
                                 headers={"Authorization": self.h.auth})

    @property
    def accepted(self) -> int:
        return self.statuses[202]


# --- the check every test ends with ---------------------------------------------------------


def _db(h: Deployment, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(h.database_url, connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


async def _sandbox_requests(h: Deployment) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(f"{h.sandbox_url}/_sandbox/requests")
    r.raise_for_status()
    return list(r.json()["requests"])


async def settle(h: Deployment, *, bound: float = SETTLE_S) -> None:
    """Wait until no accepted message is unfinished; fail after `bound` seconds."""
    deadline = time.monotonic() + bound
    while True:
        (open_,) = _db(h, "SELECT count(*) FROM messages WHERE finished_at IS NULL")[0]
        if open_ == 0:
            return
        if time.monotonic() > deadline:
            rows = _db(h, "SELECT id, status, started_at, next_deadline FROM messages"
                          " WHERE finished_at IS NULL LIMIT 5")
            raise AssertionError(f"{open_} messages still unfinished after {bound:.0f}s: {rows}"
                                 f"\nworker running: {h.worker.running()}\n"
                                 f"{h.worker.log_tail(30)}")
        await asyncio.sleep(0.5)


async def check_outcomes(h: Deployment, *, window_bound: int) -> dict[str, int]:
    """The end-of-test check (see the module docstring); returns the counts it saw."""
    ids = list(h.accepted)
    found = _db(h, "SELECT id::text, status, outcome, finished_at FROM messages"
                   " WHERE id = ANY(%s::uuid[])", (ids,))
    assert len(found) == len(ids), f"{len(ids) - len(found)} accepted messages are missing"
    for mid, status, outcome, finished_at in found:
        assert finished_at is not None and outcome is not None and status == outcome, mid
    # Exactly one final state, for every message there is (accepted or not answered).
    counts = _db(h, "SELECT m.id::text, m.outcome, count(e.id) FILTER (WHERE e.kind = 'finished')"
                    " FROM messages m LEFT JOIN message_events e ON e.message_id = m.id"
                    " GROUP BY m.id, m.outcome")
    for mid, outcome, finishes in counts:
        timeline = _db(h, "SELECT at, kind, data FROM message_events WHERE message_id = %s"
                          " ORDER BY id", (mid,)) if finishes != 1 else []
        if outcome is None or finishes != 1:
            lines = "\n".join(f"  {at.isoformat()} {kind} {data}" for at, kind, data in timeline)
            raise AssertionError(f"message {mid}: outcome {outcome}, {finishes} finishes\n{lines}")

    # Attempts per recipient address, and what the providers received for each.
    attempts = _db(h, """
        SELECT a.id::text, a.message_id::text, a.channel, a.status, a.sent_at IS NOT NULL,
               a.provider_error_code, a.sent_at > m.finished_at + interval '1 second',
               m.spec->'to'->>'phone', m.spec->'to'->>'email'
        FROM attempts a JOIN messages m ON m.id = a.message_id""")
    claimed: Counter[str] = Counter()  # address -> attempts claimed for a provider call
    answered: Counter[str] = Counter()  # address -> attempts whose provider answer is recorded
    interrupted: set[str] = set()
    for aid, _mid, channel, status, was_claimed, provider_code, after_final, ph, em in attempts:
        address = ph if channel == "sms" else em
        assert status != "sending", f"attempt {aid} still in the duplicate window"
        assert not after_final, f"attempt {aid} was sent after its message's final state"
        if was_claimed:
            claimed[address] += 1
        if provider_code == INTERRUPTED:
            interrupted.add(aid)
        elif was_claimed:
            answered[address] += 1
    requests: Counter[str] = Counter()
    for q in await _sandbox_requests(h):
        text = json.dumps(q["body"])
        for address in set(_PHONE.findall(text)) | set(_EMAIL.findall(text)):
            requests[address] += 1
    duplicates = 0
    for address, n in requests.items():
        # Every provider request is an attempt Deployment claimed first, at most once.
        assert n <= claimed[address], (address, n, claimed[address])
        duplicates += max(0, n - answered[address])
    # Requests beyond the recorded answers come only from interrupted attempts...
    assert duplicates <= len(interrupted), (duplicates, interrupted)
    # ...which are bounded, marked in PostgreSQL, and each logged by the worker that closed it.
    assert len(interrupted) <= window_bound, interrupted
    logged = {aid for path in h.logs.glob("worker*.log")
              for aid in _WINDOW_LOG.findall(path.read_text(errors="replace"))}
    assert interrupted <= logged, interrupted - logged
    return {"messages": len(counts), "accepted": len(ids), "attempts": len(attempts),
            "requests": sum(requests.values()), "interrupted": len(interrupted),
            "duplicates": duplicates}


async def wait_window_closed(h: Deployment, bound: float) -> None:
    """Attempts left `sending` by a killed worker are closed when their job is redelivered."""
    deadline = time.monotonic() + bound
    while _db(h, "SELECT count(*) FROM attempts WHERE status IN ('pending', 'sending')")[0][0]:
        if time.monotonic() > deadline:
            rows = _db(h, "SELECT id, status, sent_at FROM attempts"
                          " WHERE status IN ('pending', 'sending') LIMIT 5")
            raise AssertionError(f"attempts not closed after {bound:.0f}s: {rows}")
        await asyncio.sleep(0.5)


# --- the tests -------------------------------------------------------------------------------


@pytest.mark.timeout(180)
async def test_worker_killed_mid_burst_loses_nothing(tenant: Deployment) -> None:
    h = tenant
    sender = Sender(h, concurrency=16)
    burst = asyncio.create_task(sender.burst(200))
    # Kill once provider calls are under way for part of the burst.
    deadline = time.monotonic() + 30
    while _db(h, "SELECT count(*) FROM attempts WHERE sent_at IS NOT NULL")[0][0] < 20:
        assert time.monotonic() < deadline, "no provider calls within 30 s"
        await asyncio.sleep(0.05)
    h.worker.kill()
    await burst
    assert sender.accepted == 200, sender.statuses
    h.restart_worker()
    await settle(h)
    await wait_window_closed(h, DELIVERY_ACK_WAIT_S + 15)
    counts = await check_outcomes(h, window_bound=256)  # at most the jobs a worker runs at once
    print("worker kill:", counts)


async def _send_for(sender: Sender, seconds: float) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """Start posting in the background; wait `seconds`, leave it running."""
    stop = asyncio.Event()
    task = asyncio.create_task(sender.until(stop))
    await asyncio.sleep(seconds)
    return stop, task


@pytest.mark.timeout(120)
async def test_api_killed_under_load_every_accepted_message_finishes(tenant: Deployment) -> None:
    h = tenant
    sender = Sender(h)
    stop, task = await _send_for(sender, 2.0)
    before = sender.accepted
    h.api.kill()  # some answered 202, committed, their start commands not yet published
    await asyncio.sleep(1.0)
    h.start_api()
    await asyncio.sleep(2.0)
    stop.set()
    await task
    assert before > 0 and sender.accepted > before, sender.statuses
    assert set(sender.statuses) <= {202, "ConnectError", "ReadError", "RemoteProtocolError"}, (
        sender.statuses)
    await settle(h)
    print("api kill:", sender.statuses, await check_outcomes(h, window_bound=256))


@pytest.mark.timeout(120)
async def test_nats_restarted_mid_run_every_accepted_message_finishes(tenant: Deployment) -> None:
    h = tenant
    nats = h.stack.service("nats")
    sender = Sender(h)
    stop, task = await _send_for(sender, 1.5)
    nats.child.kill()
    await asyncio.sleep(3.0)  # still sending: the API commits, the sweep publishes later
    nats.start()  # same port, same store directory
    await asyncio.sleep(2.0)
    stop.set()
    await task
    assert sender.statuses[202] > 0, sender.statuses
    await settle(h)
    assert h.worker.running(), h.worker.log_tail()
    print("nats restart:", sender.statuses, await check_outcomes(h, window_bound=256))


@pytest.mark.timeout(120)
async def test_postgres_restarted_mid_run_no_202_without_a_commit(tenant: Deployment) -> None:
    h = tenant
    pg = h.stack.service("postgres")
    sender = Sender(h)
    stop, task = await _send_for(sender, 1.5)
    pg.child.kill()
    killed = time.monotonic()
    sender.problems.clear()
    # Longer than the API's wait for a database connection (5 s), so requests get answers.
    await asyncio.sleep(6.5)
    down = list(sender.problems)
    restarting = time.monotonic()
    pg.start()  # crash recovery on the same data directory
    await asyncio.sleep(2.0)
    stop.set()
    await task
    # While PostgreSQL was down nothing was accepted (a second's grace for answers to
    # requests committed just before the kill)...
    assert not [t for t in sender.accepted_at if killed + 1.0 < t < restarting], sender.statuses
    # ...but refused as a retryable problem.
    assert down, sender.statuses
    for status, content_type, body in down:
        assert status == 503 and content_type.startswith("application/problem+json"), (
            status, content_type, body)
        assert body["code"] == "internal.dependency_unavailable", body
    # The worker waited the outage out: nothing had to restart it.
    assert h.worker.running(), h.worker.log_tail(30)
    await settle(h)
    print("postgres restart:", sender.statuses, await check_outcomes(h, window_bound=256))


def _shard_holders(h: Deployment) -> dict[int, int]:
    """Worker backend pid -> shards it holds a lease on."""
    rows = _db(h, "SELECT pid, count(*) FROM pg_locks WHERE locktype = 'advisory'"
                  " AND classid::bigint = %s AND granted GROUP BY pid", (SHARD_LOCKS,))
    return {int(pid): int(n) for pid, n in rows}


def _logs(*procs: ChildProcess) -> str:
    return "\n".join(f"--- {p.name} (running: {p.running()})\n{p.log_tail(40)}" for p in procs)


@pytest.mark.timeout(180)
async def test_a_second_worker_takes_over_when_one_is_killed(tenant: Deployment) -> None:
    h = tenant
    second = ChildProcess("worker2", h.worker.argv, log_path=h.logs / "worker2.log",
                          env=h.worker.env)
    second.start()
    try:
        # The two workers split the 16 shards between them.
        deadline = time.monotonic() + 30
        while sorted(_shard_holders(h).values()) != [8, 8]:
            assert time.monotonic() < deadline, (_shard_holders(h), _logs(h.worker, second))
            await asyncio.sleep(0.2)
        sender = Sender(h, concurrency=16)
        burst = asyncio.create_task(sender.burst(200))
        deadline = time.monotonic() + 30
        while _db(h, "SELECT count(*) FROM attempts WHERE sent_at IS NOT NULL")[0][0] < 20:
            assert time.monotonic() < deadline, "no provider calls within 30 s"
            await asyncio.sleep(0.05)
        h.worker.kill()  # not restarted: the second worker must finish everything
        await burst
        assert sender.accepted == 200, sender.statuses
        deadline = time.monotonic() + 15
        while list(_shard_holders(h).values()) != [16]:
            assert time.monotonic() < deadline, (_shard_holders(h), _logs(h.worker, second))
            await asyncio.sleep(0.2)
        await settle(h)
        await wait_window_closed(h, DELIVERY_ACK_WAIT_S + 15)
        print("worker kill with a second worker:", await check_outcomes(h, window_bound=256))
    finally:
        second.stop(timeout=15)
        if not h.worker.running():
            h.restart_worker()
