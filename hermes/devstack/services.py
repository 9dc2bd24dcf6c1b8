"""The three embedded services, each a `ChildProcess` with a readiness probe."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import stat
import subprocess
import urllib.request
from pathlib import Path

from hermes.devstack import binaries
from hermes.devstack.procs import ChildProcess, run_as, wait_until

# PostgreSQL refuses to run as root; when we are root it runs as this system user.
PG_SYSTEM_USER = "hermes"
DATABASE = "hermes"


def free_port(preferred: int | None = None) -> int:
    if preferred and port_is_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True



class Postgres:
    name = "postgres"

    def __init__(self, data_dir: Path, port: int, log_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = port
        self.bin = binaries.postgres_bin_dir()
        self.user = _ensure_pg_user() if os.geteuid() == 0 else None
        self.child = ChildProcess(
            "postgres",
            [
                str(self.bin / "postgres"),
                "-D", str(data_dir),
                "-p", str(port),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "unix_socket_directories=",
                "-c", "max_connections=200",
                "-c", "shared_buffers=128MB",
                "-c", "log_min_messages=warning",
            ],
            log_path=log_dir / "postgres.log",
            # SIGINT is PostgreSQL's "fast shutdown": abort sessions, checkpoint, exit.
            stop_signal=signal.SIGINT,
            user=self.user,
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def start(self, timeout: float = 30.0) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        # A crashed previous run may have left a stale pid file; postgres handles that itself.
        self.child.start()
        wait_until(self._accepting, timeout=timeout, what="postgres", child=self.child)
        self._ensure_database()

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            _grant_traversal(self.data_dir)
            _grant_traversal(self.bin / "postgres")
            entry = pwd.getpwnam(self.user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        user, group, extra_groups = run_as(self.user)
        result = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
             "--auth=trust", "-E", "UTF8", "--locale=C", "--no-instructions"],
            capture_output=True, text=True, check=False,
            user=user, group=group, extra_groups=extra_groups,
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def _accepting(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.admin_url, connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')


class Nats:
    name = "nats"

    def __init__(self, data_dir: Path, port: int, monitor_port: int, log_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = port
        self.monitor_port = monitor_port
        self.child = ChildProcess(
            "nats",
            [
                str(binaries.nats_server()),
                "--jetstream",
                "--store_dir", str(data_dir),
                "--addr", "127.0.0.1",
                "--port", str(port),
                "--http_port", str(monitor_port),
                "--server_name", "hermes-dev",
            ],
            log_path=log_dir / "nats.log",
            stop_signal=signal.SIGTERM,
        )

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.child.start()
        wait_until(self._healthy, timeout=timeout, what="nats-server", child=self.child)

    def _healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        try:
            with urllib.request.urlopen(url, timeout=0.5) as resp:
                return bool(json.loads(resp.read()).get("status") == "ok")
        except OSError:
            return False


class Redis:
    name = "redis"

    def __init__(self, data_dir: Path, port: int, log_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = port
        self.child = ChildProcess(
            "redis",
            [
                str(binaries.redis_server()),
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(data_dir),
                "--appendonly", "yes",
                "--save", "",
                "--daemonize", "no",
                "--protected-mode", "no",
            ],
            log_path=log_dir / "redis.log",
            stop_signal=signal.SIGTERM,
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.child.start()
        wait_until(self._pong, timeout=timeout, what="redis-server", child=self.child)

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def _ensure_pg_user() -> str:
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             PG_SYSTEM_USER],
            check=True, capture_output=True,
        )
    return PG_SYSTEM_USER


def _grant_traversal(path: Path) -> None:
    """Let the unprivileged PostgreSQL user reach `path`: o+x on every parent directory."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
