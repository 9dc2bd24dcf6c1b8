"""What Litestar's handler call costs per request, against the paths around it.

Each variant answers `POST /v1/messages` with the same constant 202 body, served exactly as
`hermes api` serves Hermes (`hermes.api.server.serve_options`, one process, the same
collector tuning); the harness's load generator drives each in turn (64 keep-alive
clients, closed loop):

- `raw`: a bare ASGI app, no framework (uvicorn's own floor);
- `route-middleware`: a Litestar route whose middleware answers (`hermes.api.lean`'s path);
- `asgi-route`: a Litestar `@asgi` route;
- `trivial`: a Litestar handler without parameters (the harness's baseline);
- `request-only`: a handler taking the request and reading its body;
- `dependencies`: a handler taking the request, two dependencies and a header parameter,
  reading the body and answering a `Response` with a header (the shape Hermes's send
  handler had).

    python benches/litestar_paths.py [--seconds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, Response, asgi, post
from litestar.di import NamedDependency, Provide
from litestar.params import HeaderParameter
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Receive, Scope, Send

ROOT = Path(__file__).resolve().parents[1]
ANSWER = {"id": "019ac6f2-0000-7000-8000-000000000000", "object": "message",
          "status": "queued", "created_at": "2026-11-27T20:30:00.123000Z",
          "links": {"self": "/v1/messages/019ac6f2-0000-7000-8000-000000000000"}}
BODY = msgspec.json.encode(ANSWER)
VARIANTS = ["raw", "route-middleware", "asgi-route", "trivial", "request-only", "dependencies"]


async def _constant(scope: Any, receive: Any, send: Any) -> None:
    more = True
    while more:
        event = await receive()
        more = bool(event.get("more_body", False))
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})


async def _raw(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await _constant(scope, receive, send)


class _Principal(msgspec.Struct):
    token: str


async def _principal(request: Request[Any, Any, Any]) -> _Principal:
    return _Principal(request.headers.get("authorization", ""))


def _container() -> int:
    return 1


def app(variant: str) -> ASGIApp:
    if variant == "raw":
        return _raw
    if variant == "route-middleware":
        def answer(app: ASGIApp) -> ASGIApp:  # Litestar passes the route's app by name
            return _constant

        @post("/v1/messages", status_code=202, middleware=[answer])
        async def declared() -> None:
            raise NotImplementedError

        return Litestar([declared])
    if variant == "asgi-route":
        @asgi("/v1/messages", is_mount=False)
        async def route(scope: Scope, receive: Receive, send: Send) -> None:
            await _constant(scope, receive, send)

        return Litestar([route])
    if variant == "trivial":
        @post("/v1/messages", status_code=202)
        async def trivial() -> dict[str, Any]:
            return ANSWER

        return Litestar([trivial])
    if variant == "request-only":
        @post("/v1/messages", status_code=202)
        async def request_only(request: Request[Any, Any, Any]) -> ASGIResponse:
            await request.body()
            return ASGIResponse(body=BODY, status_code=202, media_type="application/json")

        return Litestar([request_only])
    if variant == "dependencies":
        @post("/v1/messages", status_code=202)
        async def handler(
            request: Request[Any, Any, Any], principal: NamedDependency[_Principal],
            container: NamedDependency[int],
            idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")]
            = None,
        ) -> Response[dict[str, Any]]:
            await request.body()
            return Response(ANSWER, status_code=202, headers={"X-Answered": "1"})

        return Litestar([handler], dependencies={
            "principal": Provide(_principal),
            "container": Provide(_container, sync_to_thread=False)})
    raise ValueError(variant)


def serve(variant: str, port: int) -> None:
    import uvicorn

    from hermes.api.server import serve_options
    from hermes.observability.setup import tune_gc
    from hermes.settings import DEFAULT_GC_GEN0_THRESHOLD

    tune_gc(DEFAULT_GC_GEN0_THRESHOLD)  # as hermes.cli.cmd_api does
    uvicorn.run(app(variant), **serve_options("127.0.0.1", port, "warning"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(variant: str, seconds: float) -> dict[str, float]:
    from benches.harness import payloads

    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", variant, "--port", str(port)],
                              cwd=ROOT)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as tmp:
            config, out = Path(tmp) / "config.json", Path(tmp) / "out.json"
            config.write_text(json.dumps({
                "url": f"http://127.0.0.1:{port}/v1/messages",
                "bodies": payloads.singles("seed")[:50],
                "headers": {"authorization": "Bearer hk_test_x"}, "clients": 64,
                "seconds": seconds, "warmup": 1.0}))
            loadgen = subprocess.Popen(
                [sys.executable, "-m", "benches.harness.loadgen", str(config), str(out)],
                cwd=ROOT, stdout=subprocess.PIPE, text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert loadgen.stdout is not None
            marks: dict[str, float] = {}
            for line in loadgen.stdout:  # the measured window's edges, as the harness reads
                if line.startswith(("window-start", "window-end")):
                    marks[line.split()[0]] = _cpu_s(server.pid)
            if loadgen.wait() != 0:
                raise RuntimeError(f"the load generator failed on {variant}")
            result = json.loads(out.read_text())
    finally:
        server.terminate()
        server.wait()
    cpu = marks["window-end"] - marks["window-start"]
    return {"requests_per_s": result["ok"] / result["window_s"],
            "server_cpu_share": cpu / result["window_s"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--serve", choices=VARIANTS)
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    print("| variant | requests/s | server CPU | µs of server CPU per request |")
    print("|---|---:|---:|---:|")
    for variant in VARIANTS:
        r = measure(variant, args.seconds)
        per = 1e6 * r["server_cpu_share"] / r["requests_per_s"]
        print(f"| {variant} | {r['requests_per_s']:,.0f} | {r['server_cpu_share']:.0%} | "
              f"{per:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
