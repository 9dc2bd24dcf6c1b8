"""`hermes dev`: the whole of Hermes on this machine, with nothing installed by hand."""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from hermes.bootstrap import open_container
from hermes.devstack.procs import ChildProcess, wait_until
from hermes.devstack.services import free_port
from hermes.devstack.stack import DEV_PORTS, Stack, StackUrls
from hermes.infra.postgres.migrate import migrate
from hermes.providers.secrets import write_key_file
from hermes.settings import Settings, env_name, field_names
from hermes.tenancy.devcreds import DevCredentials, ensure_dev_credentials, write_env_file

SANDBOX_PORT = 8025


class DevError(RuntimeError):
    pass


def run_dev(settings: Settings, *, reset: bool = False) -> int:
    root = settings.data_path.resolve()
    root.mkdir(parents=True, exist_ok=True)
    lock = _single_instance(root)
    started = time.monotonic()
    if reset:
        _reset(root)
    settings = dev_security(settings, root)
    stack = Stack(root, preferred_ports=DEV_PORTS)
    children: list[ChildProcess] = []
    stop = _StopFlag()
    try:
        _say("starting PostgreSQL, NATS JetStream and Redis" +
             (" (using the ones configured)" if _external(settings) else "") + " ...")
        urls = stack.start(settings)
        applied = migrate(urls.database_url)
        if applied:
            _say(f"applied migrations: {', '.join(f'{m.version:04d}_{m.name}' for m in applied)}")
        resolved = settings.with_overrides(
            database_url=urls.database_url, nats_url=urls.nats_url, redis_url=urls.redis_url
        )
        creds = asyncio.run(_credentials(resolved, root / "dev.env"))
        if not resolved.sandbox_url:
            port = free_port(SANDBOX_PORT)
            sandbox = ChildProcess(
                "sandbox", [sys.executable, "-m", "hermes", "sandbox", "--port", str(port)],
                log_path=root / "logs" / "sandbox.log")
            sandbox.start()
            children.append(sandbox)
            resolved = resolved.with_overrides(sandbox_url=f"http://127.0.0.1:{port}")
            wait_until(lambda: _http_ok(f"{resolved.sandbox_url}/_sandbox/health"), timeout=30,
                       what="provider sandbox", child=sandbox)
        env = _child_env(resolved)
        for role in ("api", "worker"):
            child = ChildProcess(role, [sys.executable, "-m", "hermes", role],
                                 log_path=root / "logs" / f"{role}.log", env=env)
            child.start()
            children.append(child)
        ready_url = f"{settings.api_url}/readyz"
        api = next(c for c in children if c.name == "api")
        wait_until(lambda: _http_ok(ready_url), timeout=60, what="hermes api", child=api)
        _banner(resolved, urls, creds, root, time.monotonic() - started)
        stop.running = True
        while not stop.is_set():
            for child in children:
                if not child.running():
                    raise DevError(f"hermes {child.name} exited unexpectedly; see "
                                   f"{child.log_path}\n{child.log_tail()}")
            stop.wait(0.5)
        _say("stopping ...")
        return 0
    except _Interrupted:
        _say("interrupted; stopping ...")
        return 130
    except (DevError, RuntimeError, TimeoutError, OSError) as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        for child in reversed(children):
            child.stop(timeout=10)
        stack.stop()
        lock.close()


class _Interrupted(Exception):
    pass


class _StopFlag:
    """SIGINT or SIGTERM: while starting, abort the start; once running, stop the main loop."""

    def __init__(self) -> None:
        self._set = False
        self.running = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self._set = True
        if not self.running:
            raise _Interrupted

    def is_set(self) -> bool:
        return self._set

    def wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._set and time.monotonic() < end:
            time.sleep(0.05)


def _single_instance(root: Path) -> IO[str]:
    handle = open(root / "dev.lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"hermes dev is already running on {root}") from None
    return handle


def _reset(root: Path) -> None:
    for sub in ("postgres", "nats", "redis", "logs", "adapter-cache"):
        shutil.rmtree(root / sub, ignore_errors=True)
    (root / "dev.env").unlink(missing_ok=True)
    _say(f"reset: wiped {root}")


# What `hermes dev` lets tenants' URLs reach: this machine (local webhook receivers).
DEV_ALLOWED_TARGETS = ("127.0.0.0/8", "::1")
DEV_KEY_FILE = "master.key"


def dev_security(settings: Settings, root: Path) -> Settings:
    """A master key file in the data directory (made once, mode 0600, then reused) unless
    keys are configured, and loopback added to the targets webhooks may reach."""
    changes: dict[str, str] = {}
    if not settings.master_keys and not settings.master_key_file:
        path = root / DEV_KEY_FILE
        write_key_file(path)
        changes["master_key_file"] = str(path)
    allowed = settings.allow_private_targets.replace(",", " ").split()
    allowed += [t for t in DEV_ALLOWED_TARGETS if t not in allowed]
    changes["allow_private_targets"] = ",".join(allowed)
    return settings.with_overrides(**changes)


def _external(settings: Settings) -> bool:
    return any((settings.database_url, settings.nats_url, settings.redis_url))


async def _credentials(settings: Settings, env_file: Path) -> DevCredentials:
    container = await open_container(settings, name="dev")
    try:
        return await ensure_dev_credentials(container, env_file)
    finally:
        await container.close()


def _child_env(settings: Settings) -> dict[str, str]:
    """The children get every resolved setting explicitly, whatever its source was."""
    env = dict(os.environ)
    for name in field_names():
        value = getattr(settings, name)
        if value is not None:
            env[env_name(name)] = str(value)
    if settings.log_format == "auto":
        env[env_name("log_format")] = "text"  # its log files are read by people, not collectors
    return env


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _banner(settings: Settings, urls: StackUrls, creds: DevCredentials, root: Path,
            took: float) -> None:
    url = settings.api_url
    write_env_file(root / "dev.env", url, creds)
    print(
        f"""
Hermes is running at {url}   (ready in {took:.1f}s)

  API docs     {url}/schema
  PostgreSQL   {urls.database_url}
  NATS         {urls.nats_url}
  Redis        {urls.redis_url}
  sandbox      {settings.sandbox_url}   (fake providers for test-mode keys)
  logs         {root / 'logs'}
  credentials  {root / 'dev.env'}   (HERMES_URL, HERMES_API_KEY, HERMES_ADMIN_TOKEN)

Try it (a test-mode key: everything goes to the sandbox; +4520120001 is delivered,
+4520120003 never confirmed, so that cascade falls back to email after 30 s):

  curl -s {url}/v1/messages -H "Authorization: Bearer {creds.api_key}" \\
    -H 'Content-Type: application/json' \\
    -d '{{"to": {{"phone": "+4520120003", "email": "ada@example.com"}},
         "body": "Your order has shipped", "cascade": ["sms", "email"],
         "timeout_per_step": "30s"}}'
  curl -s {url}/v1/messages -H "Authorization: Bearer {creds.api_key}"

Ctrl-C stops everything.
""",
        flush=True,
    )


def _say(text: str) -> None:
    print(f"hermes dev: {text}", flush=True)
