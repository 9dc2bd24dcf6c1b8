"""The load generator, its own process: `python -m benches.harness.loadgen CONFIG.json OUT.json`.

N clients post pre-built bodies over keep-alive connections, one each: by default a
minimal HTTP/1.1 client (an asyncio.Protocol with httptools' parser, so the generator
costs less per request than the servers it measures), or aiohttp's pooled client
(`"client": "aiohttp"`). Closed loop by default (each client sends its next request when the
previous answer is in); with `rate` set, open loop at that many requests/s in total,
each latency measured from the request's scheduled time (corrected for coordinated
omission, see `benches.harness.hdr`); closed loop, from the moment each was sent.
Latencies go into HdrHistograms (the whole window, and one per second). Requests that
start inside the measured window count; the window opens after `warmup` seconds. It prints
`window-start` and `window-end` as the window opens and closes (so the harness can read
/proc CPU counters at those moments), `progress SECONDS OK ERRORS` twice a second while the
window is open, then writes the results, including its own CPU use, to OUT.json and prints
`done`.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from urllib.parse import urlsplit

import aiohttp
import httptools
import msgspec

from benches.harness import hdr


class Config(msgspec.Struct, kw_only=True):
    url: str
    bodies: list[str]
    headers: dict[str, str] = {}
    clients: int = 64
    seconds: float = 10.0
    warmup: float = 2.0
    rate: float | None = None
    # Count each answer's "accepted" (a batch's accepted items) instead of one per 2xx.
    count_accepted: bool = False
    # Keep (message id, wall-clock time of the answer) of each 202, to time what follows.
    record_ids: bool = False
    client: str = "raw"


class _Counted(msgspec.Struct):
    accepted: int = 0


class _Refusal(msgspec.Struct):
    code: str = ""
    retry_after: float = 1.0


class _Created(msgspec.Struct):
    id: str


class Result(msgspec.Struct):
    requests: int
    ok: int
    errors: int
    # 503 `service.overloaded` (load shedding): not an error; closed-loop clients wait the
    # answer's Retry-After before their next request, as a well-behaved client does.
    refused: int
    items: int
    statuses: dict[str, int]
    first_error: str | None
    window_s: float
    window_start: float
    window_end: float
    latencies_ms: dict[str, float]
    per_second: list[int]
    cpu_s: float
    accepted_at: dict[str, float]
    # Body index of each accepted message id (with record_ids): which kind it was.
    accepted_body: dict[str, int]
    # HdrHistogram of the window's latencies (compressed, base64), and p50/p99 per second.
    histogram: str
    latency_per_second: list[dict[str, float]]
    open_loop: bool
    latency_from: str


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with one request in flight."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        answer, self.body = b"".join(self.body), []
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), answer))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter


def _raw_requests(url: str, headers: dict[str, str], bodies: list[bytes]) -> list[bytes]:
    parts = urlsplit(url)
    head = [f"POST {parts.path or '/'} HTTP/1.1", f"host: {parts.netloc}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return [("\r\n".join([*head, f"content-length: {len(b)}"]) + "\r\n\r\n").encode() + b
            for b in bodies]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 ... p99.9, max and mean in ms of latencies given in seconds (HdrHistogram)."""
    return hdr.summary(hdr.from_seconds(values))


def _overloaded(decoder: msgspec.json.Decoder[_Refusal], status: int,
                answer: bytes) -> float | None:
    """The Retry-After seconds of a 503 `service.overloaded`; None for any other answer."""
    if status != 503:
        return None
    try:
        problem = decoder.decode(answer)
    except msgspec.DecodeError:
        return None
    return problem.retry_after if problem.code == "service.overloaded" else None


async def run(cfg: Config) -> Result:
    bodies = [b.encode() for b in cfg.bodies]
    headers = {"content-type": "application/json", **cfg.headers}
    counted = msgspec.json.Decoder(_Counted)
    created = msgspec.json.Decoder(_Created)
    refusal = msgspec.json.Decoder(_Refusal)
    accepted_at: dict[str, float] = {}
    accepted_body: dict[str, int] = {}
    latencies = hdr.new()
    by_second = [hdr.new(2) for _ in range(int(cfg.seconds) + 1)]
    statuses: dict[str, int] = {}
    per_second = [0] * (int(cfg.seconds) + 1)
    stats = {"requests": 0, "ok": 0, "errors": 0, "refused": 0, "items": 0}
    first_error: list[str] = []
    loop_start = time.perf_counter()
    win_start = loop_start + cfg.warmup
    win_end = win_start + cfg.seconds
    schedule = hdr.Schedule(loop_start, cfg.rate, cfg.clients) if cfg.rate else None
    wall: dict[str, float] = {}

    async def signal() -> None:
        await asyncio.sleep(max(0.0, win_start - time.perf_counter()))
        wall["start"], wall["cpu0"] = time.time(), _cpu()
        print("window-start", flush=True)
        while (left := win_end - time.perf_counter()) > 0:
            await asyncio.sleep(min(0.5, left))
            print(f"progress {time.perf_counter() - win_start:.2f} {stats['ok']} "
                  f"{stats['errors']}", flush=True)
        wall["end"], wall["cpu1"] = time.time(), _cpu()
        print("window-end", flush=True)

    raws = _raw_requests(cfg.url, headers, bodies)
    parts = urlsplit(cfg.url)

    async def client(session: aiohttp.ClientSession, n: int) -> None:
        conn: _Connection | None = None

        async def connect() -> _Connection:
            _, made = await asyncio.get_running_loop().create_connection(
                _Connection, parts.hostname, parts.port)
            return made

        if cfg.client == "raw":
            conn = await connect()
        k = 0
        while True:
            if schedule is not None:
                scheduled = schedule.at(n, k)
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                scheduled = time.perf_counter()
            if scheduled >= win_end:
                if conn is not None and conn.transport is not None:
                    conn.transport.close()
                return
            i = (n + k * cfg.clients) % len(bodies)
            k += 1
            try:
                if conn is not None:
                    if conn.lost:  # closed by the server while idle (after a Retry-After)
                        conn = await connect()
                    status, answer = await conn.request(raws[i])
                else:
                    async with session.post(cfg.url, data=bodies[i], headers=headers) as r:
                        answer = await r.read()
                        status = r.status
            except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
                status, answer = 0, repr(exc).encode()
            done = time.perf_counter()
            wait = _overloaded(refusal, status, answer)
            if wait is not None and schedule is None:
                await asyncio.sleep(max(0.0, min(wait, win_end - time.perf_counter())))
            if scheduled < win_start:
                continue
            stats["requests"] += 1
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if 200 <= status < 300:
                stats["ok"] += 1
                second = min(len(per_second) - 1, int(done - win_start))
                hdr.record_s(latencies, done - scheduled)
                hdr.record_s(by_second[second], done - scheduled)
                per_second[second] += 1
                if cfg.count_accepted:
                    stats["items"] += counted.decode(answer).accepted
                else:
                    stats["items"] += 1
                if cfg.record_ids:
                    mid = created.decode(answer).id
                    accepted_at[mid] = time.time()
                    accepted_body[mid] = i
            elif wait is not None:
                stats["refused"] += 1
            else:
                stats["errors"] += 1
                if not first_error:
                    first_error.append(f"{status}: {answer[:300].decode(errors='replace')}")

    # Bounded in time whatever the servers do: a hung request cannot keep this process alive.
    asyncio.get_running_loop().call_later(cfg.warmup + cfg.seconds + 60, os._exit, 3)
    connector = aiohttp.TCPConnector(limit=cfg.clients, limit_per_host=cfg.clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sig = asyncio.create_task(signal())
        await asyncio.gather(*(client(session, n) for n in range(cfg.clients)))
        await sig
    return Result(
        requests=stats["requests"], ok=stats["ok"], errors=stats["errors"],
        refused=stats["refused"], items=stats["items"],
        statuses=statuses, first_error=first_error[0] if first_error else None,
        window_s=cfg.seconds, window_start=wall["start"], window_end=wall["end"],
        latencies_ms=hdr.summary(latencies), per_second=per_second,
        cpu_s=wall["cpu1"] - wall["cpu0"], accepted_at=accepted_at,
        accepted_body=accepted_body, histogram=hdr.encode(latencies),
        latency_per_second=[{k: v for k, v in hdr.summary(h).items() if k in ("p50", "p99")}
                            for h in by_second],
        open_loop=schedule is not None,
        latency_from=("the scheduled send time (open loop: corrected for coordinated omission)"
                      if schedule is not None else "the send time (closed loop)"))


def main(argv: list[str]) -> int:
    import uvloop

    with open(argv[0], "rb") as f:
        cfg = msgspec.json.decode(f.read(), type=Config)
    result = uvloop.run(run(cfg))
    # To a file, not stdout: uvloop leaves stdout non-blocking, and a large write to a full
    # pipe would be cut short.
    with open(argv[1], "w") as f:
        json.dump(msgspec.to_builtins(result), f)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
