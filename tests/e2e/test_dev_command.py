"""`hermes dev` from nothing: ready, credentials written, and no process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from hermes.devstack.services import free_port
from hermes.tenancy.devcreds import read_env_file


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class Dev:
    def __init__(self, cwd: Path, port: int) -> None:
        self.cwd = cwd
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def log(self) -> IO[bytes]:
        if self._log is None:
            self._log = open(self.cwd / "dev-output.log", "ab")
        return self._log

    def start(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hermes", "dev", "--port", str(self.port), *args],
            cwd=self.cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.output()
            env_file = self.cwd / ".hermes" / "dev.env"
            try:
                if env_file.exists() and _get(f"http://127.0.0.1:{self.port}/readyz")[0] == 200:
                    return read_env_file(env_file)
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"hermes dev not ready in {timeout}s:\n{self.output()}")

    def stop(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=45)

    def output(self) -> str:
        self.log.flush()
        return (self.cwd / "dev-output.log").read_text(errors="replace")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._log is not None:
            self._log.close()


@pytest.fixture
def dev(service_dir: Path) -> Iterator[Dev]:
    d = Dev(service_dir, free_port())
    yield d
    d.close()


def _wait_all_gone(pids: set[int], timeout: float = 15) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = {p for p in pids if _alive(p)}
        if not alive:
            return set()
        time.sleep(0.1)
    return {p for p in pids if _alive(p)}


@pytest.mark.timeout(240)
def test_dev_runs_everything_and_leaves_nothing_behind(dev: Dev) -> None:
    dev.start()
    creds = dev.wait_ready()
    assert creds["HERMES_URL"] == f"http://127.0.0.1:{dev.port}"
    assert creds["HERMES_API_KEY"].startswith("hk_test_")
    assert creds["HERMES_ADMIN_TOKEN"]
    status, body = _get(f"{creds['HERMES_URL']}/v1/account",
                        {"Authorization": f"Bearer {creds['HERMES_API_KEY']}"})
    assert status == 200 and body["mode"] == "test" and body["tenant_name"] == "dev"

    # A newcomer's first message goes through the sandbox and is delivered.
    auth = {"Authorization": f"Bearer {creds['HERMES_API_KEY']}",
            "Content-Type": "application/json"}
    req = urllib.request.Request(
        f"{creds['HERMES_URL']}/v1/messages", method="POST", headers=auth,
        data=json.dumps({"to": {"phone": "+4520120001"}, "body": "hello"}).encode())
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 202
        mid = json.loads(resp.read())["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, msg = _get(f"{creds['HERMES_URL']}/v1/messages/{mid}", auth)
        if msg.get("status") == "delivered":
            break
        time.sleep(0.2)
    assert msg["status"] == "delivered", msg

    assert dev.proc is not None
    started = _descendants(dev.proc.pid)
    assert len(started) >= 5  # postgres, nats-server, redis-server, api, worker
    assert dev.stop(signal.SIGTERM) == 0
    assert _wait_all_gone(started) == set()
    out = dev.output()
    assert "curl" in out and creds["HERMES_API_KEY"] in out

    # Data is kept between runs: the same credentials still work.
    dev.start()
    assert dev.wait_ready()["HERMES_API_KEY"] == creds["HERMES_API_KEY"]
    started = _descendants(dev.proc.pid)
    # Even a supervisor killed outright takes its children with it.
    dev.stop(signal.SIGKILL)
    assert _wait_all_gone(started) == set()

    # --reset wipes the data: new credentials; Ctrl-C stops it.
    dev.start("--reset")
    fresh = dev.wait_ready()
    assert fresh["HERMES_API_KEY"] != creds["HERMES_API_KEY"]
    started = _descendants(dev.proc.pid)
    assert dev.stop(signal.SIGINT) in (0, 130)
    assert _wait_all_gone(started) == set()
