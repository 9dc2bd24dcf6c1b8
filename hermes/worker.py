"""The worker process: the cascade engine and the delivery consumers."""

from __future__ import annotations

import asyncio
import logging
import signal

from hermes.bootstrap import open_container
from hermes.infra.nats.streams import ensure_streams
from hermes.settings import Settings

log = logging.getLogger("hermes.worker")


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or _stop_on_signals()
    container = await open_container(settings, name="worker")
    try:
        connected = asyncio.ensure_future(container.nats.wait_connected())
        stopping = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({connected, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if connected in done:
            streams = await ensure_streams(container.nats.jetstream())
            log.info("worker ready; streams %s", ", ".join(streams))
        else:
            connected.cancel()
        await stopping
        log.info("worker stopping")
    finally:
        await container.close()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
