"""The provider HTTP client applies the SSRF rules to every call; the sandbox stays reachable."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from hermes.infra.http.client import ProviderHttp, ProviderHttpError
from hermes.infra.http.ssrf import TargetPolicy


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[str]]]:
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield port, seen
    await runner.cleanup()


async def test_private_targets_are_refused_before_any_request(
        server: tuple[int, list[str]]) -> None:
    port, seen = server
    http = ProviderHttp(targets=TargetPolicy())
    try:
        for host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]"):
            with pytest.raises(ProviderHttpError, match="target not allowed"):
                await http.request("POST", f"http://{host}:{port}/send", [], "x")
        with pytest.raises(ProviderHttpError, match="target not allowed"):
            await http.get_bytes(f"http://127.0.0.1:{port}/cert.pem")
    finally:
        await http.close()
    assert seen == []


async def test_the_sandbox_origin_and_allowed_networks_are_reachable(
        server: tuple[int, list[str]]) -> None:
    port, seen = server
    sandbox = ProviderHttp(targets=TargetPolicy.parse(
        "", trusted_urls=[f"http://127.0.0.1:{port}"]))
    allowed = ProviderHttp(targets=TargetPolicy.parse("127.0.0.0/8"))
    try:
        assert (await sandbox.request("POST", f"http://127.0.0.1:{port}/a", [], "x")).status \
            == 200
        assert (await allowed.request("GET", f"http://localhost:{port}/b", [], None)).status \
            == 200
        # The exemption is the sandbox's own host and port, not the whole machine.
        with pytest.raises(ProviderHttpError, match="target not allowed"):
            await sandbox.request("POST", "http://localhost:9/c", [], "x")
    finally:
        await sandbox.close()
        await allowed.close()
    assert seen == ["/a", "/b"]
