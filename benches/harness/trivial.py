"""The HTTP ceiling: a trivial Litestar endpoint served exactly as `hermes api` serves Hermes.

    python -m benches.harness.trivial --port N

`POST /v1/messages` answers 202 with a constant JSON body: no auth, no body read, no
I/O. `serve` passes uvicorn the same arguments `hermes.cli.cmd_api` does
(`hermes.api.server.serve_options`: one process, uvicorn's automatic choice of event loop,
the HTTP protocol that sends each answer in one write, no access log; and the same
garbage-collector tuning), so the ratio
against the real endpoint measures Hermes's work per request, not server settings.
"""

from __future__ import annotations

import argparse
from typing import Any

from litestar import Litestar, post

ANSWER = {"id": "019ac6f2-0000-7000-8000-000000000000", "object": "message",
          "status": "queued", "created_at": "2026-11-27T20:30:00.123000Z",
          "links": {"self": "/v1/messages/019ac6f2-0000-7000-8000-000000000000"}}


@post("/v1/messages", status_code=202)
async def create() -> dict[str, Any]:
    return ANSWER


def create_app() -> Litestar:
    return Litestar(route_handlers=[create], debug=False)


def serve(host: str, port: int, log_level: str = "info") -> None:
    import uvicorn

    from hermes.api.server import serve_options
    from hermes.observability.setup import tune_gc
    from hermes.settings import DEFAULT_GC_GEN0_THRESHOLD

    # Keep in step with hermes.cli.cmd_api, the garbage collector's tuning included.
    tune_gc(DEFAULT_GC_GEN0_THRESHOLD)
    uvicorn.run(create_app(), **serve_options(host, port, log_level))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    serve(args.host, args.port, args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
