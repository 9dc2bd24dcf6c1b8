"""A lean pooled HTTP/1.1 POST client for receipts.

httpx costs more CPU per request than the whole send path of the sandbox, so
receipts at benchmark rates would starve the send endpoints. This client keeps
idle keep-alive connections per origin, writes one pre-serialised request and
parses the status line with httptools; it does nothing else (no redirects, no
cookies, no compression), which is all a webhook sender needs.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import cast
from urllib.parse import urlsplit

import httptools

MAX_IDLE_PER_ORIGIN = 64


class PostError(Exception):
    pass


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(PostError(f"bad response: {exc}"))

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(PostError("connection closed before the response"))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()
        self.closed = True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.closed = True


def _expire(waiter: asyncio.Future[int]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no response in time"))


class HttpPoster:
    def __init__(self, timeout: float = 5.0) -> None:
        self._timeout = timeout
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._tls = ssl.create_default_context()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST and return the response status; raise PostError or OSError on failure."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PostError(f"unsupported URL {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        origin = (parts.scheme, parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [f"POST {target} HTTP/1.1", f"host: {parts.netloc}",
                f"content-length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        reused = self._take_idle(origin)
        if reused is not None:
            try:
                return await self._exchange(origin, reused, request)
            except PostError:
                pass  # the server dropped an idle keep-alive connection: one fresh try
        return await self._exchange(origin, await self._connect(origin), request)

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    def _take_idle(self, origin: tuple[str, str, int]) -> _Connection | None:
        pool = self._idle.get(origin)
        while pool:
            connection = pool.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        _, connection = await asyncio.wait_for(
            loop.create_connection(_Connection, host, port,
                                   ssl=self._tls if scheme == "https" else None),
            self._timeout,
        )
        return connection

    async def _exchange(self, origin: tuple[str, str, int], connection: _Connection,
                        request: bytes) -> int:
        assert connection.transport is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[int] = loop.create_future()
        connection.waiter = waiter
        connection.transport.write(request)
        # A plain timer, not asyncio.wait_for: it costs a task per call on 3.11.
        timer = loop.call_later(self._timeout, _expire, waiter)
        try:
            status = await waiter
        except TimeoutError:
            connection.close()
            raise
        finally:
            timer.cancel()
        connection.waiter = None
        if connection.keep_alive and not connection.closed:
            pool = self._idle.setdefault(origin, [])
            if len(pool) < MAX_IDLE_PER_ORIGIN:
                pool.append(connection)
                return status
        connection.close()
        return status
