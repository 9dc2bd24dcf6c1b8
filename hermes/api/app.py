"""The Litestar app factory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

import hermes
from hermes.api.account import AccountController
from hermes.api.admin import AdminController
from hermes.api.admin_adapters import AdminAdaptersController
from hermes.api.auth import PrincipalCache, provide_admin, provide_principal
from hermes.api.callbacks import CallbacksController
from hermes.api.contacts import ContactsController
from hermes.api.health import HealthController
from hermes.api.messages import MessagesController
from hermes.api.metrics import MetricsController, http_metrics_middleware
from hermes.api.problems import exception_handlers
from hermes.api.provider_accounts import PlatformAccountsController, ProviderAccountsController
from hermes.api.singles import Singles
from hermes.api.suppressions import SuppressionsController
from hermes.api.webhooks import WebhooksController
from hermes.bootstrap import Container, open_container
from hermes.settings import Settings


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Give every request an id: echoed in `X-Request-Id` and used as problem `instance`."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        rid = f"req_{uuid.uuid4().hex}"
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await app(scope, receive, send_with_id)

    return middleware


def create_app(settings: Settings, container: Container | None = None) -> Litestar:
    """Build the API. Without `container`, it opens its own on startup and closes it on shutdown."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = container is None
        c = container or await open_container(settings, name="api")
        app.state.container = c
        app.state.singles = Singles(c)
        if owned:
            await c.deploys.start()  # this process's adapters follow hot deploys too
        try:
            yield
        finally:
            await app.state.singles.close()
            if owned:
                await c.close()

    def provide_container(state: State) -> Container:
        c: Container = state.container
        return c

    return Litestar(
        route_handlers=[MetricsController, HealthController, AccountController, MessagesController,
                        ContactsController,
                        CallbacksController, SuppressionsController,
                        WebhooksController, AdminController, AdminAdaptersController,
                        ProviderAccountsController, PlatformAccountsController],
        dependencies={
            "container": Provide(provide_container, sync_to_thread=False),
            "principal": Provide(provide_principal),
            "admin": Provide(provide_admin),
        },
        exception_handlers=exception_handlers,
        middleware=[request_id_middleware, http_metrics_middleware],
        lifespan=[lifespan],
        state=State({"principal_cache": PrincipalCache()}),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Hermes",
            version=hermes.__version__,
            description="Multi-channel message broker with cascading fallback.",
            path="/schema",
        ),
        logging_config=None,  # the process set up logging itself (hermes.observability)
        debug=False,
    )
