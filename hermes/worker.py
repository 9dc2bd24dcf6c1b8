"""The worker process: the cascade engine, the delivery consumers, webhooks and the sweep.

Each part runs until the stop event (SIGTERM or SIGINT) is set, then finishes
what it has in flight: the engine naks what it fetched but did not process,
delivery finishes its provider calls, the webhook dispatcher records its
sends. If any part fails, the others are stopped too and the process exits
non-zero, so a supervisor restarts it and the engine rebuilds from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine
from typing import Any

from hermes.bootstrap import Container, open_container
from hermes.cascade import notices
from hermes.cascade.leases import ShardLeases
from hermes.cascade.runner import CascadeRunner
from hermes.cascade.store import PostgresCascadeStore
from hermes.cascade.sweep import RecoverySweep
from hermes.delivery.worker import run_delivery
from hermes.infra.nats.streams import ensure_streams
from hermes.infra.redis.queue_delay import QueueDelayReporter
from hermes.observability.server import serve_worker_metrics
from hermes.settings import Settings
from hermes.webhooks.dispatcher import WebhookDispatcher

log = logging.getLogger("hermes.worker")


class WorkerFailed(RuntimeError):
    pass


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or _stop_on_signals()
    container = await open_container(settings, name="worker")
    try:
        connected = asyncio.ensure_future(container.nats.wait_connected())
        stopping = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({connected, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if connected not in done:
            connected.cancel()
            return
        streams = await ensure_streams(container.nats.jetstream())
        # Converge on the active adapter versions before taking any job.
        await container.deploys.start()
        if settings.sandbox_url:
            await subscribe_sandbox(settings)
        log.info("worker ready; streams %s", ", ".join(streams))
        await _run_parts(container, stop)
        log.info("worker stopped")
    finally:
        await container.close()


async def subscribe_sandbox(settings: Settings) -> None:
    """Point the sandbox's SES (SNS) and WhatsApp webhooks at this deployment's callbacks.

    Those providers have no per-message callback URL: the account is subscribed
    once, as an operator would in the AWS or Meta console.
    """
    import httpx

    from hermes.delivery.sender import callback_url
    from hermes.providers.accounts import sandbox_accounts
    from hermes.sandbox.credentials import SES

    assert settings.sandbox_url
    base = settings.sandbox_url.rstrip("/")
    by_adapter = {a.adapter: a for a in sandbox_accounts(settings.sandbox_url)}
    async with httpx.AsyncClient(timeout=5) as http:
        ses = by_adapter["ses_email"]
        r = await http.put(f"{base}/_sandbox/ses/configuration-sets/{SES.configuration_set}",
                           json={"endpoint": callback_url(settings.callback_base_url, ses.id)})
        r.raise_for_status()
        wa = by_adapter["whatsapp_cloud"]
        r = await http.put(f"{base}/_sandbox/whatsapp/webhook",
                           json={"url": callback_url(settings.callback_base_url, wa.id)})
        r.raise_for_status()


def engine_runner(container: Container, webhooks: WebhookDispatcher) -> CascadeRunner:
    """The cascade engine; the webhook deliveries it queues are handed to `webhooks`, the
    dispatcher in this process, as they commit (while it has room)."""
    store = PostgresCascadeStore(container.pool, notice_writer=notices.writer(webhooks))
    return CascadeRunner(container.nats, store, container.accounts,
                         notice_sink=notices.collect, queue_meter=container.queue_meter,
                         linger_s=container.settings.batch_linger_ms / 1000)


async def _run_parts(container: Container, stop: asyncio.Event) -> None:
    webhooks = WebhookDispatcher(container.pool, targets=container.targets)
    parts: dict[str, Coroutine[Any, Any, None]] = {
        "engine": engine_runner(container, webhooks).run(stop, leases=ShardLeases(
            container.settings.database_url or "", container.settings.shard_count)),
        "delivery": run_delivery(container, stop),
        "webhooks": webhooks.run(stop),
        "sweep": RecoverySweep(container.pool, container.nats.jetstream).run(stop),
        "metrics": serve_worker_metrics(container, stop),
        "queue-delay": QueueDelayReporter(container.redis, container.queue_meter,
                                          container.deploys.process_id).run(stop),
    }
    tasks = {asyncio.create_task(coro, name=name): name for name, coro in parts.items()}
    failed: list[str] = []
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t.exception() is not None:
                log.error("worker part %s failed", tasks[t], exc_info=t.exception())
                failed.append(tasks[t])
            stop.set()  # one part ending ends the worker: never run half a pipeline
    if failed:
        raise WorkerFailed(f"worker parts failed: {', '.join(failed)}")


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
