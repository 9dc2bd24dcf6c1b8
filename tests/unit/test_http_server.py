"""How the API is served: `hermes.api.server`'s held writes, on their own and under a real
uvicorn server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from hermes.api.server import FLUSH_AT, HeldWrites, OneWritePerPass, serve_options


class Recorder:
    """The part of an asyncio transport `HeldWrites` uses, recording what reaches it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.calls: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.calls.append("write")

    def close(self) -> None:
        self.closing = True
        self.calls.append("close")

    def abort(self) -> None:
        self.closing = True
        self.calls.append("abort")

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def held() -> tuple[HeldWrites, Recorder]:
    real = Recorder()
    return HeldWrites(real, asyncio.get_running_loop()), real  # type: ignore[arg-type]


async def one_pass() -> None:
    # A callback scheduled now runs in the loop's next pass; two sleeps leave room for it.
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_the_writes_of_one_pass_go_out_as_one_in_order() -> None:
    t, real = held()
    t.write(b"HTTP/1.1 202 Accepted\r\n\r\n")
    t.write(b"{}")
    assert real.writes == []  # nothing is sent during the pass that wrote it
    assert t.get_write_buffer_size() == len(b"HTTP/1.1 202 Accepted\r\n\r\n{}")
    await one_pass()
    assert real.writes == [b"HTTP/1.1 202 Accepted\r\n\r\n{}"]
    t.write(b"next")
    await one_pass()
    assert real.writes[1:] == [b"next"]


async def test_a_large_body_is_sent_at_once_with_what_was_held_before_it() -> None:
    t, real = held()
    t.write(b"head")
    big = b"x" * FLUSH_AT
    t.write(big)
    # Within the same pass: the socket's flow control must see a large body now.
    assert real.writes == [b"head" + big]
    assert t.get_write_buffer_size() == 0
    t.write(b"tail")
    await one_pass()
    assert real.writes[1:] == [b"tail"]


async def test_a_close_sends_what_is_held_first() -> None:
    t, real = held()
    t.write(b"last words")
    t.close()
    assert real.calls == ["write", "close"]
    assert real.writes == [b"last words"]
    await one_pass()
    assert real.writes == [b"last words"]  # the scheduled pass finds nothing left


async def test_an_abort_drops_what_is_held_and_a_closed_peer_gets_nothing() -> None:
    t, real = held()
    t.write(b"never")
    t.abort()
    await one_pass()
    assert real.calls == ["abort"]

    t, real = held()
    t.write(b"too late")
    real.closing = True  # the client went away before the pass ended
    await one_pass()
    assert real.writes == []


async def test_a_buffer_changed_after_the_write_is_sent_as_it_was() -> None:
    t, real = held()
    buf = bytearray(b"before")
    t.write(buf)
    t.write(b"")  # an empty write schedules and holds nothing
    buf[:] = b"AFTER!"
    await one_pass()
    assert real.writes == [b"before"]
    assert t.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the real one's


class Counted(OneWritePerPass):
    """The served protocol, with the real transport's writes counted."""

    sends: list[bytes] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        real_write = transport.write

        def write(data: Any) -> None:
            Counted.sends.append(bytes(data))
            real_write(data)

        transport.write = write  # type: ignore[method-assign]
        super().connection_made(transport)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    body = b'{"status":"queued"}' if scope["path"] != "/big" else b"y" * (4 * FLUSH_AT) + b"end"
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    options = serve_options("127.0.0.1", 0, "warning") | {"http": Counted, "lifespan": "off"}
    options.pop("port"), options.pop("host")
    server = uvicorn.Server(uvicorn.Config(app, **options))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(20):
            while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
                await asyncio.sleep(0.02)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def exchange(port: int, request: bytes, until: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        got = b""
        async with asyncio.timeout(10):
            while not got.endswith(until):
                chunk = await reader.read(65536)
                assert chunk, got
                got += chunk
        return got
    finally:
        writer.close()


def test_the_api_is_served_by_the_protocol_that_writes_once_per_pass() -> None:
    assert serve_options("127.0.0.1", 8000, "info")["http"] is OneWritePerPass


async def test_an_answer_leaves_in_one_send_under_uvicorn(port: int) -> None:
    Counted.sends.clear()
    got = await exchange(port, b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n"
                               b"content-length: 2\r\n\r\n{}", b'{"status":"queued"}')
    assert got.startswith(b"HTTP/1.1 202 Accepted\r\n")
    # Head and body in one send: uvicorn's own protocol makes two.
    assert len(Counted.sends) == 1
    assert Counted.sends[0] == got


async def test_pipelined_head_and_streamed_answers_arrive_whole_and_in_order(
        port: int) -> None:
    Counted.sends.clear()
    # A HEAD answer has no body write at all: its head must still go out.
    got = await exchange(port, b"HEAD /v1/messages HTTP/1.1\r\nhost: x\r\n\r\n"
                               b"GET /v1/messages HTTP/1.1\r\nhost: x\r\n\r\n",
                         b'{"status":"queued"}')
    first, _, second = got.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 202 Accepted")
    assert second.startswith(b"HTTP/1.1 202 Accepted")
    assert second.endswith(b'\r\n\r\n{"status":"queued"}')

    streamed = await exchange(port, b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n",
                              b"0\r\n\r\n")
    assert b"transfer-encoding: chunked" in streamed
    assert streamed.endswith(b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n")


async def test_a_body_larger_than_what_is_held_arrives_whole(port: int) -> None:
    got = await exchange(port, b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n", b"end")
    head, _, body = got.partition(b"\r\n\r\n")
    assert f"content-length: {4 * FLUSH_AT + 3}".encode() in head
    assert body == b"y" * (4 * FLUSH_AT) + b"end"
