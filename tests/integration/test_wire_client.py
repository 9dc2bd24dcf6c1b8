"""The lean HTTP/1.1 client every outbound call goes through, against a raw local server:
keep-alive reuse, chunked and truncated bodies, Connection: close, deadlines, dropped
connections, the per-origin connection cap, idle expiry, header injection, the resolve
hook and TLS verification."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hermes.infra.http.wire import WireClient, WireError


class Server:
    """Answers by path; remembers every request head and every connection."""

    def __init__(self) -> None:
        self.heads: list[str] = []
        self.bodies: list[bytes] = []
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, tls: ssl.SSLContext | None = None) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                self.heads.append(head)
                self.bodies.append(body)
                path = head.split(" ")[1]
                if not await self._answer(path, head, writer):
                    return
        finally:
            self.open_now -= 1
            writer.close()

    async def _answer(self, path: str, head: str, writer: asyncio.StreamWriter) -> bool:
        if path == "/drop":
            return False
        if path == "/slow":
            await asyncio.sleep(0.5)
        if path == "/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-kind: chunks\r\n\r\n"
                         b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n")
            await writer.drain()
            return True
        if path == "/half":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
            await writer.drain()
            return False
        body = {"/echo": head.encode(), "/big": b"x" * 100_000}.get(path, b"hello")
        status = b"503 Service Unavailable" if path == "/busy" else b"200 OK"
        close = b"connection: close\r\n" if path == "/close" else b""
        writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: " + str(len(body)).encode()
                     + b"\r\n" + close + b"\r\n" + body)
        await writer.drain()
        return not close


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = await Server().start()
    yield s
    await s.stop()


async def test_answers_are_read_and_one_connection_is_kept_alive(server: Server) -> None:
    client = WireClient()
    base = f"http://127.0.0.1:{server.port}"
    try:
        first = await client.request("POST", f"{base}/ok?x=1", [("X-Test", "1")], b"payload")
        assert (first.status, first.reason, first.body) == (200, "OK", b"hello")
        assert ("content-length", "5") in first.headers
        chunked = await client.request("GET", f"{base}/chunked")
        assert chunked.body == b"hello" and ("x-kind", "chunks") in chunked.headers
        busy = await client.request("GET", f"{base}/busy")
        assert (busy.status, busy.reason) == (503, "Service Unavailable")
        assert server.connections == 1  # all three on one keep-alive connection
        assert server.bodies[0] == b"payload"
        head = server.heads[0].lower()
        assert head.startswith("post /ok?x=1 http/1.1\r\n")
        assert f"host: 127.0.0.1:{server.port}\r\n" in head
        assert "user-agent: hermes\r\n" in head and "content-length: 7\r\n" in head
        assert "x-test: 1\r\n" in head
    finally:
        await client.aclose()


async def test_connection_close_and_idle_connections_are_not_reused(server: Server) -> None:
    client = WireClient(idle_s=0.2)
    base = f"http://127.0.0.1:{server.port}"
    try:
        await client.request("GET", f"{base}/close")
        await client.request("GET", f"{base}/ok")
        assert server.connections == 2  # the server said close
        await asyncio.sleep(0.3)
        await client.request("GET", f"{base}/ok")
        assert server.connections == 3  # idle longer than idle_s: a fresh one
    finally:
        await client.aclose()


async def test_a_body_past_the_limit_is_cut_and_its_connection_dropped(server: Server) -> None:
    client = WireClient()
    try:
        big = await client.request("GET", f"http://127.0.0.1:{server.port}/big", max_body=1000)
        assert big.truncated and big.body == b"x" * 1000
        await client.request("GET", f"http://127.0.0.1:{server.port}/ok")
        assert server.connections == 2
    finally:
        await client.aclose()


async def test_deadlines_drops_and_refused_connections_fail_cleanly(server: Server) -> None:
    client = WireClient(total_timeout=0.2)
    base = f"http://127.0.0.1:{server.port}"
    try:
        with pytest.raises(TimeoutError):
            await client.request("GET", f"{base}/slow")
        with pytest.raises(WireError, match="closed before the answer"):
            await client.request("GET", f"{base}/drop")
        with pytest.raises(WireError, match="closed before the answer"):
            await client.request("GET", f"{base}/half")
        assert (await client.request("GET", f"{base}/ok")).body == b"hello"
        with pytest.raises(WireError, match="cannot connect"):
            await client.request("GET", "http://127.0.0.1:1/ok")
        with pytest.raises(WireError, match="absolute"):
            await client.request("GET", "ftp://example.com/")
    finally:
        await client.aclose()


async def test_line_breaks_in_headers_are_refused_before_anything_is_sent(
        server: Server) -> None:
    client = WireClient()
    base = f"http://127.0.0.1:{server.port}"
    try:
        for headers in ([("X-A", "1\r\nX-Injected: 1")], [("X-A\n", "1")], [("X-A", "a\0")]):
            with pytest.raises(WireError, match="line break"):
                await client.request("GET", f"{base}/ok", headers)
        with pytest.raises(WireError):
            await client.request("GET", f"{base}/a b")
        assert server.heads == []
        # Host, Content-Length and friends are the client's own: a caller's are ignored.
        await client.request("POST", f"{base}/ok", [("Host", "evil"), ("Content-Length", "99")],
                             b"abc")
        head = server.heads[0].lower()
        assert "host: evil" not in head and "content-length: 99" not in head
        assert server.bodies[0] == b"abc"
    finally:
        await client.aclose()


async def test_at_most_max_per_origin_connections_are_open(server: Server) -> None:
    client = WireClient(max_per_origin=2)
    try:
        answers = await asyncio.gather(*(
            client.request("GET", f"http://127.0.0.1:{server.port}/slow") for _ in range(6)))
        assert [a.status for a in answers] == [200] * 6
        assert server.most_open == 2 and server.connections == 2
    finally:
        await client.aclose()


async def test_the_resolve_hook_picks_the_addresses_and_can_refuse(server: Server) -> None:
    asked: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        if host == "refused.example":
            raise OSError(13, "target not allowed: refused.example resolves to loopback")
        return ["127.0.0.1"]

    client = WireClient(resolve=resolve)
    try:
        answer = await client.request("GET", f"http://service.example:{server.port}/echo")
        assert f"host: service.example:{server.port}" in answer.body.decode().lower()
        with pytest.raises(WireError, match="target not allowed"):
            await client.request("GET", f"http://refused.example:{server.port}/ok")
        assert asked == [("service.example", server.port), ("refused.example", server.port)]
    finally:
        await client.aclose()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_https_verifies_the_certificate_against_the_host_name(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    server = await Server().start(tls=served)
    trusting = ssl.create_default_context(cafile=str(cert))
    try:
        client = WireClient(tls=trusting)
        answer = await client.request("GET", f"https://localhost:{server.port}/ok")
        assert answer.body == b"hello"
        await client.aclose()
        # The system's trust store does not know this certificate: refused.
        stranger = WireClient()
        with pytest.raises(WireError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
            await stranger.request("GET", f"https://localhost:{server.port}/ok")
        await stranger.aclose()
    finally:
        await server.stop()
