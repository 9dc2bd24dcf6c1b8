"""The worker's `/metrics` listener (the API serves its own on the API port)."""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from hermes.observability import metrics

if TYPE_CHECKING:
    from hermes.bootstrap import Container

log = logging.getLogger("hermes.metrics")


def token_ok(token: str, authorization: str | None) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


async def serve(host: str, port: int, stop: asyncio.Event, *, token: str | None = None) -> None:
    """Answer `GET /metrics` on host:port until `stop` is set."""

    async def scrape(request: web.Request) -> web.Response:
        if token and not token_ok(token, request.headers.get("Authorization")):
            return web.Response(status=401, text="a metrics scrape needs the metrics token\n")
        body = await metrics.render()
        return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("metrics on http://%s:%d/metrics", host, port)
        await stop.wait()
    finally:
        await runner.cleanup()


async def serve_worker_metrics(container: Container, stop: asyncio.Event) -> None:
    """The worker's metrics part: queue depths and the webhook backlog are read on scrape.
    With `worker_metrics_port` 0 it only waits for `stop` (a worker part must not end early)."""
    from hermes.infra.nats.streams import STREAMS

    settings = container.settings
    if not settings.worker_metrics_port:
        await stop.wait()
        return
    metrics.SCRAPED.sources["jetstream"] = metrics.jetstream_source(
        container.nats.jetstream, [s.name for s in STREAMS if s.name])
    metrics.SCRAPED.sources["webhooks"] = metrics.webhook_backlog_source(container.pool)
    await serve(settings.metrics_host, settings.worker_metrics_port, stop,
                token=settings.metrics_token)
