"""Fixtures: one sandbox for the session (state reset per test) and a callback receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from hermes.sandbox import Sandbox
from hermes.sandbox.http import HttpServer, Request, Response, Router, start_server

VERIFY_TOKEN = "let-me-in"


@dataclass
class Received:
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class CallbackReceiver:
    """A small HTTP server that accepts any POST and keeps it for the test to read."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._changed = asyncio.Event()
        self._server: HttpServer | None = None
        self.url = ""

    async def start(self) -> CallbackReceiver:
        router = Router()
        router.add("POST", "/{a}", self._accept)
        router.add("POST", "/{a}/{b}", self._accept)
        router.add("GET", "/{a}", self._verify)
        self._server = await start_server(router, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.port}"
        return self

    async def stop(self) -> None:
        assert self._server is not None
        await self._server.close()

    def _accept(self, request: Request) -> Response:
        self.received.append(Received(request.path, request.query, request.headers, request.body))
        self._changed.set()
        return Response(200, b"", "text/plain")

    def _verify(self, request: Request) -> Response:
        """A webhook verification endpoint as Meta expects one: echo hub.challenge."""
        query = request.query_params()
        if query.get("hub.mode") == "subscribe" and query.get("hub.verify_token") == VERIFY_TOKEN:
            return Response(200, query["hub.challenge"].encode(), "text/plain")
        return Response(403, b"", "text/plain")

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def wait_for(self, path: str, count: int, within: float = 5.0) -> list[Received]:
        async with asyncio.timeout(within):
            while len(self.at(path)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.at(path)


@pytest.fixture(scope="session")
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(receipt_delay=0.05, timeout_hold=2.0) as running:
        yield running


@pytest.fixture(autouse=True)
async def fresh_sandbox(sandbox: Sandbox) -> AsyncIterator[None]:
    sandbox.state.reset()
    sandbox.state.config.receipt_delay = 0.05
    sandbox.state.config.timeout_hold = 2.0
    yield
    await sandbox.drain()


@pytest.fixture(scope="session")
async def receiver() -> AsyncIterator[CallbackReceiver]:
    running = await CallbackReceiver().start()
    yield running
    await running.stop()


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=10.0) as client:
        yield client
