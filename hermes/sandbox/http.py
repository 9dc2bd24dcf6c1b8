"""A small HTTP/1.1 server on asyncio.Protocol and httptools.

The sandbox must answer well over 5,000 sends a second on one core, so it
skips any framework: requests are parsed by httptools, routed by a dict (exact
paths) or a short list of regexes (parameterised paths), and a handler returns
a `Response` directly, or an awaitable of one when it must wait (a held
"timeout" request). Pipelined requests are answered in order.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qsl

import httptools
import msgspec

_log = logging.getLogger(__name__)
MAX_BODY = 4 * 1024 * 1024  # bytes; larger request bodies are refused with 413
_json_encode = msgspec.json.Encoder().encode
_STATUS_LINES = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode("latin-1") for s in HTTPStatus
}


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    params: tuple[str, ...] = ()

    def query_params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query))

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False  # drop the connection without answering (a "timeout")


def json_response(
    status: int, value: Any, headers: list[tuple[str, str]] | None = None
) -> Response:
    return Response(status, _json_encode(value), "application/json", headers or [])


Handler = Callable[[Request], "Response | Awaitable[Response]"]


class Router:
    """Routes (method, path) to handlers; exact paths first, then patterns."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], Handler] = {}
        self._patterns: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, path: str, handler: Handler) -> None:
        if "{" not in path and "(" not in path:
            self._exact[(method, path)] = handler
            return
        pieces = re.split(r"\{\w+\}", path)
        regex = "([^/]+)".join(re.escape(piece) for piece in pieces)
        self._patterns.append((method, re.compile("^" + regex + "$"), handler))

    def resolve(self, method: str, path: str) -> tuple[Handler | None, tuple[str, ...], bool]:
        """Return (handler, path params, path exists for some other method)."""
        handler = self._exact.get((method, path))
        if handler is not None:
            return handler, (), True
        exists = any(p == path for _, p in self._exact)
        for m, pattern, h in self._patterns:
            match = pattern.match(path)
            if match:
                if m == method:
                    return h, match.groups(), True
                exists = True
        return None, (), exists


def _not_found(_: Request) -> Response:
    return json_response(404, {"error": "not_found"})


def _serialise(response: Response, keep_alive: bool) -> bytes:
    head = [_STATUS_LINES.get(response.status) or f"HTTP/1.1 {response.status} X\r\n".encode()]
    head.append(f"content-type: {response.content_type}\r\n".encode("latin-1"))
    head.append(f"content-length: {len(response.body)}\r\n".encode("latin-1"))
    for name, value in response.headers:
        head.append(f"{name}: {value}\r\n".encode("latin-1"))
    head.append(b"connection: keep-alive\r\n\r\n" if keep_alive else b"connection: close\r\n\r\n")
    head.append(response.body)
    return b"".join(head)


class _Connection(asyncio.Protocol):
    __slots__ = (
        "_body", "_body_size", "_headers", "_inflight", "_open", "_parser", "_router", "_tasks",
        "_transport", "_url",
    )

    def __init__(
        self, router: Router, tasks: set[asyncio.Task[Any]], open_: set[_Connection]
    ) -> None:
        self._router = router
        self._tasks = tasks
        self._open = open_
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0
        # Answers not yet written, in request order: bytes, or a task still running.
        self._inflight: deque[tuple[asyncio.Future[Response] | Response, bool]] = deque()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, hence the cast.
        self._transport = cast(asyncio.Transport, transport)
        self._open.add(self)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        for pending, _ in self._inflight:
            if isinstance(pending, asyncio.Future):
                pending.cancel()
        self._inflight.clear()
        self._transport = None
        self._open.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self._transport is not None:
                too_large = self._body_size > MAX_BODY
                answer = (Response(413, b"request body too large", "text/plain") if too_large
                          else Response(400, f"bad request: {exc}".encode(), "text/plain"))
                self._transport.write(_serialise(answer, False))
                self._transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else previous + ", " + text

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > MAX_BODY:
            # Providers cap request sizes too; the sandbox should not buffer without bound.
            raise httptools.HttpParserError("request body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        url = self._url.decode("latin-1")
        path, _, query = url.partition("?")
        method = self._parser.get_method().decode("latin-1")
        keep_alive = self._parser.should_keep_alive()
        handler, params, exists = self._router.resolve(method, path)
        request = Request(method, path, query, self._headers, b"".join(self._body), params)
        if handler is None:
            handler = _not_found if not exists else _method_not_allowed
        try:
            result = handler(request)
        except Exception:
            _log.exception("sandbox handler failed: %s %s", method, path)
            result = json_response(500, {"error": "sandbox_internal_error"})
        if isinstance(result, Response):
            if not self._inflight:
                self._write(result, keep_alive)
                return
            self._inflight.append((result, keep_alive))
            return
        task = asyncio.ensure_future(result)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        self._inflight.append((task, keep_alive))

    def _task_done(self, task: asyncio.Future[Response]) -> None:
        self._tasks.discard(task)
        self._flush()

    def _flush(self) -> None:
        while self._inflight:
            pending, keep_alive = self._inflight[0]
            if isinstance(pending, asyncio.Future):
                if not pending.done():
                    return
                if pending.cancelled():
                    return
                exc = pending.exception()
                response = (
                    json_response(500, {"error": "sandbox_internal_error"})
                    if exc is not None else pending.result()
                )
            else:
                response = pending
            self._inflight.popleft()
            self._write(response, keep_alive)
            if response.close or not keep_alive:
                self._inflight.clear()  # the connection is closing: nothing more goes out
                return

    def _write(self, response: Response, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        if response.close:
            transport.close()
            return
        transport.write(_serialise(response, keep_alive))
        if not keep_alive:
            transport.close()


def _method_not_allowed(_: Request) -> Response:
    return json_response(405, {"error": "method_not_allowed"})


class HttpServer:
    """A listening socket plus its open connections, so `close` leaves nothing behind."""

    def __init__(self, server: asyncio.Server, connections: set[_Connection],
                 tasks: set[asyncio.Task[Any]]) -> None:
        self._server = server
        self._connections = connections
        self._tasks = tasks
        self.port: int = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for connection in list(self._connections):
            connection.abort()
        await asyncio.sleep(0)  # let connection_lost run for the aborted transports
        await self._server.wait_closed()


async def start_server(router: Router, host: str, port: int) -> HttpServer:
    loop = asyncio.get_running_loop()
    connections: set[_Connection] = set()
    tasks: set[asyncio.Task[Any]] = set()
    server = await loop.create_server(
        lambda: _Connection(router, tasks, connections), host, port,
        reuse_address=True, backlog=2048,
    )
    return HttpServer(server, connections, tasks)
