"""How `hermes api` serves HTTP: uvicorn's arguments, and one socket write per answer.

uvicorn's httptools protocol writes an answer's status line and headers when the app
sends `http.response.start`, and its body when the app sends `http.response.body`. On
uvloop each `write` is a `send` system call at once, and on a loopback or a busy host a
send costs several microseconds (the receiver's TCP path runs inside it): a quarter of
the API's CPU on the single-send path went to the two sends of each answer.

`OneWritePerPass` gives uvicorn's protocol a transport that holds what is written during
one pass of the event loop and sends it as one write at the start of the next pass, so
an answer's head and body go out together (and the answers of pipelined requests, too).
Nothing is reordered, a close sends what is held first, and once 64 KiB are held they are
sent at once, so a large or streamed body still meets the socket's flow control.
`serve_options` is the one place that decides how uvicorn is run, for the API and for the
benchmark's trivial endpoint alike, so the two are always served the same way.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Held writes that reach this many bytes are sent at once rather than at the next pass.
FLUSH_AT = 64 * 1024


class HeldWrites:
    """An `asyncio.Transport` in front of another: writes of one loop pass go out as one."""

    __slots__ = ("_held", "_loop", "_size", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        # A bytearray or memoryview may change after the call returns: keep a copy.
        self._held.append(data if isinstance(data, bytes) else bytes(data))
        self._size += len(data)
        if self._size >= FLUSH_AT:
            # A large or streamed body goes out now, so that the real transport's flow
            # control (pause_writing, then uvicorn's drain) sees it within this pass.
            self.flush()

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Send what is held now (a no-op when nothing is)."""
        held, self._held, self._size = self._held, [], 0
        if not held or self.transport.is_closing():
            return
        self.transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self._held, self._size = [], 0
        self.transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() + self._size

    def __getattr__(self, name: str) -> Any:
        # Everything else (get_extra_info, pause_reading, resume_reading, set_protocol, ...)
        # is the real transport's.
        return getattr(self.transport, name)


class OneWritePerPass(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through `HeldWrites`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        held: Any = HeldWrites(transport, self.loop)
        super().connection_made(held)


def serve_options(host: str, port: int, log_level: str) -> dict[str, Any]:
    """uvicorn.run's keyword arguments for one API process on `host:port`."""
    return {
        "host": host,
        "port": port,
        "log_level": log_level,
        "http": OneWritePerPass,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }
