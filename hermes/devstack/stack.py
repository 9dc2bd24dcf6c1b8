"""Start the services Hermes needs, unless the settings already point at running ones."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hermes.devstack.procs import ChildProcess
from hermes.devstack.services import Nats, Postgres, Redis, free_port
from hermes.settings import Settings

# Ports `hermes dev` prefers, so URLs stay the same between runs;
# a port already taken falls back to a free one.
DEV_PORTS = {"postgres": 54329, "nats": 42229, "nats_monitor": 48229, "redis": 63799}


class _Service(Protocol):
    name: str
    child: ChildProcess

    @property
    def url(self) -> str: ...

    def start(self, timeout: float = 30.0) -> None: ...


@dataclass(frozen=True)
class StackUrls:
    database_url: str
    nats_url: str
    redis_url: str


class Stack:
    """The embedded services under one directory.

    `Stack(root).start(settings)` starts every service whose URL the settings leave
    unset and returns the URLs to use; `stop()` stops what it started, in reverse order.
    """

    def __init__(self, root: Path, *, preferred_ports: dict[str, int] | None = None) -> None:
        self.root = root
        self.ports = preferred_ports or {}
        self.services: list[_Service] = []

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def reset(self) -> None:
        """Delete all service data (the caller makes sure nothing runs on it)."""
        for sub in ("postgres", "nats", "redis", "logs"):
            shutil.rmtree(self.root / sub, ignore_errors=True)

    def start(self, settings: Settings | None = None) -> StackUrls:
        settings = settings or Settings()
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            db = settings.database_url or self._start(
                Postgres(self.root / "postgres", self._port("postgres"), self.log_dir))
            nats = settings.nats_url or self._start(
                Nats(self.root / "nats", self._port("nats"), self._port("nats_monitor"),
                     self.log_dir))
            redis = settings.redis_url or self._start(
                Redis(self.root / "redis", self._port("redis"), self.log_dir))
        except BaseException:
            self.stop()
            raise
        return StackUrls(database_url=db, nats_url=nats, redis_url=redis)

    def _port(self, key: str) -> int:
        return free_port(self.ports.get(key))

    def _start(self, service: _Service) -> str:
        self.services.append(service)
        service.start()
        return service.url

    def service(self, name: str) -> _Service:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    def pids(self) -> list[int]:
        return [s.child.pid for s in self.services if s.child.pid is not None]

    def stop(self) -> None:
        for service in reversed(self.services):
            service.child.stop()
        self.services.clear()
