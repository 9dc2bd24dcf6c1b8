"""A NATS connection that keeps trying in the background.

The API and worker start even while NATS is down; readiness says so until the
connection is up, and nats-py reconnects by itself after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from hermes.infra.tasks import cancel_and_wait

log = logging.getLogger("hermes.nats")


class NatsConnection:
    def __init__(self, url: str, *, name: str) -> None:
        self.url = url
        self.name = name
        self._nc: Client | None = None
        self._js: tuple[Client, JetStreamContext] | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name="nats-connect")

    async def _connect_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                self._nc = await nats.connect(
                    self.url,
                    name=self.name,
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    drain_timeout=5,
                    error_cb=self._on_error,
                )
            except Exception as exc:  # any failure to reach the server: try again
                log.warning("nats connect to %s failed: %s", self.url, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            else:
                self._connected.set()
                return

    async def _on_error(self, exc: Exception) -> None:
        log.debug("nats: %s", exc)

    async def wait_connected(self, timeout: float | None = None) -> Client:
        await asyncio.wait_for(self._connected.wait(), timeout)
        assert self._nc is not None
        return self._nc

    @property
    def client(self) -> Client | None:
        return self._nc

    def jetstream(self) -> JetStreamContext:
        if self._nc is None:
            raise ConnectionError("not connected to NATS")
        # One context per client: building one costs more than a publish (it makes an
        # email header parser), and it holds no state of its own beyond the client.
        if self._js is None or self._js[0] is not self._nc:
            self._js = (self._nc, self._nc.jetstream())
        return self._js[1]

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            await cancel_and_wait(self._task)
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.drain()
