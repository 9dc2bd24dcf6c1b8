"""A tenant's webhook endpoint, in its own process: `python -m benches.harness.receiver --port N`.

Answers every POST with 204 and records, per message, the time its first
`message.finished` event arrived (webhooks are at-least-once, so repeats are
counted once) and its outcome and channels tried. Only `message.finished` bodies are
parsed; other events are counted by a substring test, to keep the receiver cheap.
`GET /stats` reports the counts (`?full=1`: and the arrival time and outcome of each
message);
`POST /reset` forgets them.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import msgspec

from hermes.sandbox.http import Request, Response, Router, json_response, start_server

_FINISHED = b'"message.finished"'


class _Attempt(msgspec.Struct):
    channel: str | None = None


class _Data(msgspec.Struct):
    message_id: str
    outcome: str | None = None
    attempts: list[_Attempt] = []


class _Event(msgspec.Struct):
    type: str
    data: _Data


class Receiver:
    def __init__(self) -> None:
        self.reset(None)

    def reset(self, _: Request | None) -> Response:
        self.events = 0
        self.finished: dict[str, float] = {}
        self.outcome_by_id: dict[str, str] = {}
        self.outcomes: dict[str, int] = {}
        return json_response(200, {"ok": True})

    def hook(self, request: Request) -> Response:
        self.events += 1
        if _FINISHED in request.body:
            e = msgspec.json.decode(request.body, type=_Event)
            if e.type == "message.finished" and e.data.message_id not in self.finished:
                self.finished[e.data.message_id] = time.time()
                key = f"{e.data.outcome} via {'+'.join(a.channel or '?' for a in e.data.attempts)}"
                self.outcomes[key] = self.outcomes.get(key, 0) + 1
                self.outcome_by_id[e.data.message_id] = key
        return Response(204, b"", "text/plain")

    def stats(self, request: Request) -> Response:
        body: dict[str, Any] = {"events": self.events, "finished": len(self.finished),
                                "outcomes": self.outcomes}
        if request.query_params().get("full"):
            body.update(times=sorted(self.finished.values()), by_id=self.finished,
                        outcome_by_id=self.outcome_by_id)
        return json_response(200, body)


async def serve(host: str, port: int) -> None:
    r = Receiver()
    router = Router()
    router.add("POST", "/hook", r.hook)
    router.add("GET", "/stats", r.stats)
    router.add("POST", "/reset", r.reset)
    await start_server(router, host, port)
    await asyncio.Event().wait()


def main() -> int:
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
