"""The sandbox's HTTP/1.1 core: ordering under pipelining, and bad input."""

from __future__ import annotations

import asyncio
import base64

import httpx

from hermes.sandbox import Sandbox
from hermes.sandbox.credentials import TWILIO
from hermes.sandbox.http import MAX_BODY

from .helpers import TWILIO_PATH


async def _exchange(sandbox: Sandbox, raw: bytes, until: bytes, within: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection(sandbox.host, sandbox.port)
    writer.write(raw)
    await writer.drain()
    data = b""
    async with asyncio.timeout(within):
        while until not in data:
            chunk = await reader.read(65536)
            if not chunk:
                break
            data += chunk
    writer.close()
    await writer.wait_closed()
    return data


async def test_pipelined_answers_keep_request_order(sandbox: Sandbox) -> None:
    sandbox.state.config.timeout_hold = 0.2  # the first request is held, then dropped
    auth = base64.b64encode(f"{TWILIO.account_sid}:{TWILIO.auth_token}".encode()).decode()
    body = b"To=%2B447400000006&From=%2B12015550100&Body=x"
    held = (f"POST {TWILIO_PATH} HTTP/1.1\r\nhost: x\r\nauthorization: Basic {auth}\r\n"
            f"content-type: application/x-www-form-urlencoded\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body
    health = b"GET /_sandbox/health HTTP/1.1\r\nhost: x\r\n\r\n"
    data = await _exchange(sandbox, held + health, b"never")
    # The held request is dropped without an answer, so the health answer queued
    # behind it is never written out of order: the connection closes with nothing.
    assert data == b""


async def test_two_pipelined_requests_are_answered_in_order(sandbox: Sandbox) -> None:
    first = b"GET /_sandbox/config HTTP/1.1\r\nhost: x\r\n\r\n"
    second = b"GET /_sandbox/health HTTP/1.1\r\nhost: x\r\n\r\n"
    data = await _exchange(sandbox, first + second, b'"status":"ok"')
    assert data.index(b"receipt_delay_ms") < data.index(b'"status":"ok"')


async def test_malformed_request_is_400(sandbox: Sandbox) -> None:
    data = await _exchange(sandbox, b"NONSENSE\r\n\r\n", b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 ")


async def test_oversized_body_is_413(sandbox: Sandbox) -> None:
    head = (f"POST /v1/omnimessage HTTP/1.1\r\nhost: x\r\n"
            f"content-length: {MAX_BODY + 10}\r\n\r\n").encode()
    data = await _exchange(sandbox, head + b"x" * (MAX_BODY + 10), b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 413 ")


async def test_unknown_path_is_404_and_wrong_method_405(http: httpx.AsyncClient) -> None:
    assert (await http.get("/nowhere")).status_code == 404
    assert (await http.get("/v1/omnimessage")).status_code == 405
