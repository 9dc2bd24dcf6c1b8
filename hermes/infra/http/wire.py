"""A lean pooled HTTP/1.1 client: the one every outbound call of Hermes goes through.

Provider calls, tenant webhooks and the sandbox's receipts are plain requests to a
few origins, many times a second: a general client's per-request machinery (aiohttp
builds a request object, a payload object, a timer handle and a header multidict for
each) cost more CPU than the rest of a delivery. This client keeps idle keep-alive
connections per origin, writes one pre-serialised request, and parses the answer with
httptools (chunked and content-length bodies, keep-alive as the server says). It does
nothing else: no redirects, no cookies, no decompression, no proxies.

- At most `max_per_origin` connections per origin are open at once; further requests
  wait for one (the request's deadline still runs).
- `resolve`, when given, turns a host name into the addresses that may be dialled (the
  SSRF guard); it runs for every new connection, so a name re-pointed at a private
  address is refused at the next connection. IP literals are the caller's to check.
- A connection idle for `idle_s` is closed rather than reused, which stays inside the
  keep-alive timeouts servers commonly use (uvicorn's is 5 s), so a request is not
  written to a connection the server is closing. A request on a connection lost before
  any byte of the answer is not retried (it may have been received): it fails, and the
  caller's retry rules decide.
- Header names and values with CR, LF or NUL are refused (`WireError`), so nothing can
  smuggle a second request or header through a value an adapter built.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools

Resolve = Callable[[str, int], Awaitable[list[str]]]

_FORBIDDEN = frozenset("\r\n\0")
_MANAGED = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class WireError(Exception):
    """The request could not be made or had no complete answer (refused, reset, closed,
    malformed); `TimeoutError` is raised instead when the deadline passed."""


@dataclass(slots=True)
class WireAnswer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    # The body went past the caller's limit and was cut there.
    truncated: bool = False


@dataclass(slots=True)
class _Origin:
    scheme: str
    host: str
    port: int
    slots: asyncio.Semaphore
    idle: list[_Connection] = field(default_factory=list)


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[WireAnswer] | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset_answer(0)

    def _reset_answer(self, limit: int) -> None:
        self.limit = limit
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.truncated = False

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(WireError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(WireError(f"malformed answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is None:
            why = "the connection was closed before the answer was complete"
        else:
            why = f"the connection was lost: {type(exc).__name__}: {exc}"
        self._fail(WireError(why))

    # -- httptools callbacks

    def on_status(self, reason: bytes) -> None:
        self.reason += reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        room = self.limit - self.size
        if room <= 0:
            self.truncated = True
            return
        if len(body) > room:
            body, self.truncated = body[:room], True
        self.body.append(body)
        self.size += len(body)

    def on_message_complete(self) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        keep = self.parser.should_keep_alive() and not self.truncated
        status = self.parser.get_status_code()
        waiter.set_result(WireAnswer(status, self.reason, self.headers, b"".join(self.body),
                                     self.truncated))
        if not keep:
            self.close()

    # --

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[WireAnswer]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no answer in time"))


class WireClient:
    def __init__(self, *, connect_timeout: float = 5.0, total_timeout: float = 15.0,
                 max_per_origin: int = 64, idle_s: float = 4.0, user_agent: str = "hermes",
                 resolve: Resolve | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.max_per_origin = max_per_origin
        self.idle_s = idle_s
        self.user_agent = user_agent
        self.resolve = resolve
        self._tls = tls
        self._origins: dict[tuple[str, str, int], _Origin] = {}

    @property
    def tls(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    async def request(self, method: str, url: str,
                      headers: Iterable[tuple[str, str]] | Iterable[list[str]] = (),
                      body: bytes | None = None, *, max_body: int = 16 * 1024 * 1024,
                      timeout: float | None = None) -> WireAnswer:
        """Send one request and read its answer (at most `max_body` bytes of body are
        kept; past that the answer is `truncated` and its connection not reused)."""
        origin, raw = self._prepare(method, url, headers, body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.total_timeout if timeout is None else timeout)
        if origin.slots.locked():
            try:
                async with asyncio.timeout_at(deadline):
                    await origin.slots.acquire()
            except TimeoutError:
                raise TimeoutError(f"no free connection to {origin.host} in time") from None
        else:
            await origin.slots.acquire()
        try:
            connection = self._idle(origin) or await self._connect(origin, deadline)
            return await self._exchange(origin, connection, raw, max_body, deadline)
        finally:
            origin.slots.release()

    def _prepare(self, method: str, url: str,
                 headers: Iterable[tuple[str, str]] | Iterable[list[str]],
                 body: bytes | None) -> tuple[_Origin, bytes]:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise WireError(f"not an absolute http(s) URL: {url[:200]!r}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise WireError(f"bad port in URL: {exc}") from None
        key = (scheme, parts.hostname, port)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(scheme, parts.hostname, port,
                                                  asyncio.Semaphore(self.max_per_origin))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rpartition("@")[2]  # never send URL credentials as a host
        lines = [f"{method} {target} HTTP/1.1", f"Host: {netloc}"]
        agent = True
        for name, value in headers:
            if _FORBIDDEN.intersection(name) or _FORBIDDEN.intersection(value) or not name:
                raise WireError(f"header {name[:40]!r} has a line break or NUL in it")
            lower = name.lower()
            if lower in _MANAGED:
                continue
            if lower == "user-agent":
                agent = False
            lines.append(f"{name}: {value}")
        if agent:
            lines.append(f"User-Agent: {self.user_agent}")
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            lines.append(f"Content-Length: {len(body or b'')}")
        if _FORBIDDEN.intersection(lines[0]) or " " in target:
            raise WireError("the request line has a space, line break or NUL in it")
        return origin, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")

    def _idle(self, origin: _Origin) -> _Connection | None:
        now = time.monotonic()
        while origin.idle:
            connection = origin.idle.pop()
            if not connection.closed and now - connection.idle_since < self.idle_s:
                return connection
            connection.close()
        return None

    async def _connect(self, origin: _Origin, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        budget = min(self.connect_timeout, max(0.0, deadline - loop.time()))
        tls = self.tls if origin.scheme == "https" else None
        try:
            async with asyncio.timeout(budget):
                if self.resolve is None:
                    addresses = [origin.host]
                else:
                    addresses = await self.resolve(origin.host, origin.port)
                last: OSError | None = None
                for address in addresses:
                    try:
                        _, connection = await loop.create_connection(
                            _Connection, address, origin.port, ssl=tls,
                            server_hostname=origin.host if tls else None)
                        return connection
                    except OSError as exc:
                        last = exc
                raise last or OSError(f"{origin.host} has no address")
        except TimeoutError:
            raise TimeoutError(f"no connection to {origin.host} in {budget:g} s") from None
        except OSError as exc:
            raise WireError(f"cannot connect to {origin.host}: {exc.strerror or exc}") from None

    async def _exchange(self, origin: _Origin, connection: _Connection, raw: bytes,
                        max_body: int, deadline: float) -> WireAnswer:
        assert connection.transport is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[WireAnswer] = loop.create_future()
        connection.waiter = waiter
        connection._reset_answer(max_body)
        connection.transport.write(raw)
        # A plain timer, not asyncio.timeout: no task or context switch per request.
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            answer = await waiter
        except BaseException:
            connection.close()
            raise
        finally:
            timer.cancel()
            connection.waiter = None
        if not connection.closed and len(origin.idle) < self.max_per_origin:
            connection.idle_since = time.monotonic()
            origin.idle.append(connection)
        return answer

    async def aclose(self) -> None:
        for origin in self._origins.values():
            for connection in origin.idle:
                connection.close()
            origin.idle.clear()
        self._origins.clear()
        await asyncio.sleep(0)  # let the transports close

