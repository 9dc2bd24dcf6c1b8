"""`GET /metrics` (Prometheus) and the per-route request metrics.

No API key: a scraper is not a tenant. With `HERMES_METRICS_TOKEN` set a scrape
must bring `Authorization: Bearer <token>`; without it the endpoint is open, for a
private network (compose) or a proxy that keeps `/metrics` off the public side.
"""

from __future__ import annotations

import time
from typing import Annotated

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.params import HeaderParameter
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from hermes.bootstrap import Container
from hermes.domain.errors import Code, HermesError
from hermes.observability import metrics
from hermes.observability.server import token_ok


class MetricsController(Controller):
    path = "/metrics"
    include_in_schema = False

    @get("/", summary="Prometheus metrics of this API process")
    async def scrape(
        self,
        container: NamedDependency[Container],
        authorization: Annotated[str | None, HeaderParameter(name="Authorization")] = None,
    ) -> Response[bytes]:
        token = container.settings.metrics_token
        if token and not token_ok(token, authorization):
            code = Code.AUTH_MISSING if authorization is None else Code.AUTH_INVALID
            raise HermesError(code, "a metrics scrape needs the metrics token")
        return Response(await metrics.render(), media_type=metrics.CONTENT_TYPE)


def http_metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Count and time each request by method, route template and status."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        begun = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_status)
        finally:
            metrics.http_request(scope["method"], scope.get("path_template") or "unmatched",
                                 status, time.perf_counter() - begun)

    return middleware
