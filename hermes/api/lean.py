"""A lean path for the hottest endpoints: sending a message and provider callbacks.

Litestar's handler call (dependency injection, the signature model, building the
response) costs about 70 µs of CPU per request on these endpoints, more than the work
the request asks for: measured with uvicorn on this project's machine, a handler taking
the request, two dependencies and a header parameter served 10,400 requests/s, and the
same constant answer from a route middleware 40,400/s.

A route declared with `middleware=[lean.serve(fn)]` keeps everything else Litestar
gives it: it is routed and listed in the OpenAPI document, the app's middleware (request
id, metrics) wraps it, and an exception it raises becomes problem+json through the app's
exception handlers, answered inside that middleware as a handler's error is. Only the
handler call is replaced: `fn` gets the raw scope and the body (bounded by
`HERMES_MAX_BODY_BYTES`, as Litestar bounds it) and answers bytes. The declared handler
function documents the route and is never called.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from litestar import Request
from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send

from hermes.api.problems import exception_handlers
from hermes.bootstrap import Container
from hermes.domain.errors import Code, HermesError


@dataclass(slots=True)
class LeanRequest:
    scope: Scope
    body: bytes
    container: Container

    @property
    def method(self) -> str:
        return cast("HTTPScope", self.scope)["method"]

    def header(self, name: bytes) -> str | None:
        """The first value of a header (`name` in lower case), or None."""
        for key, value in self.scope["headers"]:
            if key == name:
                return str(value.decode("latin-1"))
        return None

    @property
    def app_state(self) -> Any:
        return self.scope["litestar_app"].state


@dataclass(slots=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] | None = None
    media_type: str = "application/json"


Serve = Callable[[LeanRequest], Awaitable[Answer]]


def serve(fn: Serve) -> Callable[[ASGIApp], ASGIApp]:
    """Route middleware that answers the route with `fn` instead of its handler."""

    def middleware_factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            container: Container = scope["litestar_app"].state.container
            try:
                body = await read_body(scope, receive, container.settings.max_body_bytes)
                answer = await fn(LeanRequest(scope, body, container))
            except Exception as exc:
                # Answered here, inside the app's middleware, as a handler's error would be.
                await _problem(exc, scope, receive, send)
                return
            await respond(send, answer)

        return middleware

    return middleware_factory


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, or 413 `request.too_large` past `limit` bytes."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            if value.isdigit() and int(value) > limit:
                _too_large(limit)
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        event = await receive()
        if event["type"] != "http.request":  # the client went away
            raise HermesError(Code.REQUEST_MALFORMED, "the request body was cut off")
        chunk = event.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                _too_large(limit)
            chunks.append(chunk)
        if not event.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _problem(exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
    request: Request[Any, Any, Any] = Request(scope, receive)
    handler = next(exception_handlers[t] for t in type(exc).__mro__ if t in exception_handlers)
    response = handler(request, exc)
    await response.to_asgi_response(None, request)(scope, receive, send)


def _too_large(limit: int) -> NoReturn:
    raise HermesError(Code.REQUEST_TOO_LARGE, f"the request body is over {limit} bytes")


async def respond(send: Send, answer: Answer) -> None:
    headers = [(b"content-type", answer.media_type.encode("latin-1")),
               (b"content-length", str(len(answer.body)).encode("latin-1"))]
    if answer.headers:
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in answer.headers.items()]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body, "more_body": False})
