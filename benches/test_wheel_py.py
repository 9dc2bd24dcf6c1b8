"""The timer wheel from Python, batched, against asyncio's `loop.call_later` and a
`heapq` scheduler, measured in the same run.

Workload per round: schedule 100,000 timers with random message ids (UUID bytes)
and deadlines over 20 ms, cancel every other one, then run time forward until
the rest have fired. Each timer counts as two operations (schedule, then cancel
or fire), so a round is 200,000 operations.

Run: `.venv/bin/python benches/test_wheel_py.py` (prints the table for
BENCHMARKS.md, figures per CPU-second of the process, best of 7 rounds) or
`.venv/bin/pytest benches/test_wheel_py.py` (pytest-benchmark timings of the
same rounds). Target: at least 1 M operations/s on one core, batched.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from hermes._core import CascadeEngine, Wheel

N = 100_000
SPREAD_MS = 20
START_MS = 1_764_000_000_000


def workload(seed: int = 1) -> tuple[list[bytes], list[int]]:
    rng = random.Random(seed)
    ids = [uuid.UUID(int=rng.getrandbits(128)).bytes for _ in range(N)]
    deadlines = [START_MS + 1 + rng.randrange(SPREAD_MS) for _ in range(N)]
    return ids, deadlines


def run_wheel_batched(ids: list[bytes], deadlines: list[int]) -> int:
    wheel = Wheel(START_MS)
    wheel.insert_many(b"".join(ids), deadlines)
    wheel.cancel_many(b"".join(ids[::2]))
    fired = 0
    for now in range(START_MS + 1, START_MS + SPREAD_MS + 1):
        packed, _ = wheel.advance_packed(now)
        fired += len(packed) // 16
    return fired


def run_wheel_per_call(ids: list[bytes], deadlines: list[int]) -> int:
    wheel = Wheel(START_MS)
    for i, d in zip(ids, deadlines, strict=True):
        wheel.insert(i, d)
    for i in ids[::2]:
        wheel.cancel(i)
    fired = 0
    for now in range(START_MS + 1, START_MS + SPREAD_MS + 1):
        fired += len(wheel.advance(now))
    return fired


def run_heapq(ids: list[bytes], deadlines: list[int]) -> int:
    """A plain scheduler: a heap of (deadline, seq, id) with lazy cancellation."""
    heap: list[tuple[int, int, bytes]] = []
    live: dict[bytes, int] = {}
    for seq, (i, d) in enumerate(zip(ids, deadlines, strict=True)):
        heapq.heappush(heap, (d, seq, i))
        live[i] = seq
    for i in ids[::2]:
        live.pop(i, None)
    fired = 0
    for now in range(START_MS + 1, START_MS + SPREAD_MS + 1):
        while heap and heap[0][0] <= now:
            _, seq, i = heapq.heappop(heap)
            if live.get(i) == seq:
                del live[i]
                fired += 1
    return fired


def run_asyncio(ids: list[bytes], deadlines: list[int]) -> int:
    """asyncio's own timers: `call_later`, `TimerHandle.cancel`, the loop firing them."""
    loop = asyncio.new_event_loop()
    fired = 0

    def on_timer() -> None:
        nonlocal fired
        fired += 1

    try:
        handles = [loop.call_later((d - START_MS) / 1000, on_timer) for d in deadlines]
        for h in handles[::2]:
            h.cancel()
        loop.run_until_complete(asyncio.sleep((SPREAD_MS + 2) / 1000))
    finally:
        loop.close()
    return fired


IMPLEMENTATIONS: dict[str, Callable[[list[bytes], list[int]], int]] = {
    "Wheel, batched (insert_many, cancel_many, advance_packed)": run_wheel_batched,
    "Wheel, one call per timer": run_wheel_per_call,
    "heapq scheduler (pure Python)": run_heapq,
    "asyncio loop.call_later": run_asyncio,
}


def cpu_ops_per_second(fn: Callable[[list[bytes], list[int]], int], rounds: int = 7) -> float:
    """Best round's operations per CPU-second of the process: per core, and
    unaffected by other load (and by asyncio's sleeping until its deadlines)."""
    ids, deadlines = workload()
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        fired = fn(ids, deadlines)
        best = min(best, time.process_time() - start)
        assert fired == N // 2
    return 2 * N / best


@pytest.mark.parametrize("name", list(IMPLEMENTATIONS))
def test_timers(benchmark: Any, name: str) -> None:
    ids, deadlines = workload()
    fired = benchmark.pedantic(IMPLEMENTATIONS[name], args=(ids, deadlines), rounds=5)
    assert fired == N // 2, "every uncancelled timer fires exactly once"
    benchmark.extra_info["operations_per_round"] = 2 * N


def engine_round(n: int = 50_000) -> tuple[int, int]:
    """The seed cascade for `n` messages through CascadeEngine from Python: start,
    SMS accepted, the 30 s step timeout (from the acceptance) via tick, email delivered. Returns
    (events, actions)."""
    ids = [uuid.uuid4().bytes for _ in range(n)]
    plan = {
        "steps": [
            {"channel": "sms", "timeout_ms": 30_000},
            {"channel": "email", "timeout_ms": 30_000},
        ]
    }
    engine = CascadeEngine(0)
    actions = engine.apply([{"id": i, "type": "start", "plan": plan} for i in ids], 0)
    accepted = [{"id": i, "type": "accepted", "step": 0, "attempt": 1, "account": "t"} for i in ids]
    actions += engine.apply(accepted, 100)
    actions += engine.tick(30_100)  # the step's 30 s count from the provider's acceptance
    delivered = [
        {"id": i, "type": "receipt", "step": 1, "attempt": 2, "status": "delivered"} for i in ids
    ]
    actions += engine.apply(delivered, 31_000)
    assert len(engine) == 0
    return 4 * n, len(actions)


def test_engine_seed_cascades(benchmark: Any) -> None:
    events, actions = benchmark.pedantic(engine_round, rounds=3)
    assert actions > events, "every event yields its actions"


def main() -> None:
    figures = {name: cpu_ops_per_second(fn) for name, fn in IMPLEMENTATIONS.items()}
    heap = figures["heapq scheduler (pure Python)"]
    aio = figures["asyncio loop.call_later"]
    print("| implementation | operations per CPU-second | vs. heapq | vs. asyncio |")
    print("|---|---:|---:|---:|")
    for name, ops in figures.items():
        print(f"| {name} | {ops:,.0f} | {ops / heap:.1f}x | {ops / aio:.1f}x |")
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        events, actions = engine_round()
        best = min(best, time.process_time() - start)
    print(
        f"\nCascadeEngine from Python (seed cascade, event dicts built in Python): "
        f"{events / best:,.0f} events and {actions / best:,.0f} action dicts per CPU-second"
    )


if __name__ == "__main__":
    main()
