"""In-process baselines, measured in the harness's own process between the deployments:

- adapter: `twilio_sms.wasm` building one Twilio request per message, the core's
  `AdapterRuntime.build_requests` (batches of 100, a fresh pooled instance per message,
  limits and output checks) against the `wasmtime` PyPI package hosting the same module
  the straightforward way (a fresh Store and Instance per call), as in
  `benches/test_adapter_runtime.py`;
- timers: the core's `Wheel` (batched and one call per timer) against asyncio's
  `loop.call_later` on the same workload, as in `benches/test_wheel_py.py`, and the seed
  cascade through the core's `CascadeEngine` (start, accepted, step timeout by `tick`,
  delivered).

Figures are per CPU-second of this process (`time.process_time`, best round), so other
load on the machine does not skew them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benches.harness.progress import Bar


def _best_cpu(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def adapter(rounds: int = 5) -> dict[str, Any]:
    import wasmtime

    from benches.test_adapter_runtime import ADAPTER, BATCH, INPUT, _baseline_call
    from hermes._core import AdapterRuntime

    runtime = AdapterRuntime()
    sha = runtime.load(ADAPTER.read_bytes()).sha256
    inputs = [INPUT] * BATCH * 20
    assert isinstance(runtime.build_requests(sha, inputs[:1])[0], bytes)
    core = _best_cpu(lambda: runtime.build_requests(sha, inputs), rounds) / len(inputs)
    engine = wasmtime.Engine()
    call = _baseline_call(engine, wasmtime.Module(engine, ADAPTER.read_bytes()))
    n = 200
    py = _best_cpu(lambda: [call() for _ in range(n)], rounds) / n
    return {"adapter": ADAPTER.name, "core_us": core * 1e6, "wasmtime_py_us": py * 1e6,
            "core_per_cpu_s": 1 / core, "wasmtime_py_per_cpu_s": 1 / py, "ratio": py / core}


def timers(rounds: int = 3) -> dict[str, Any]:
    from benches.test_wheel_py import IMPLEMENTATIONS, cpu_ops_per_second, engine_round

    ops = {name: cpu_ops_per_second(fn, rounds) for name, fn in IMPLEMENTATIONS.items()}
    aio = ops["asyncio loop.call_later"]
    best = float("inf")
    events = 0
    for _ in range(rounds):
        started = time.process_time()
        events, _ = engine_round()
        best = min(best, time.process_time() - started)
    return {"operations_per_cpu_s": ops, "vs_asyncio": {k: v / aio for k, v in ops.items()},
            "engine_events_per_cpu_s": events / best}


def run(rounds: int = 3) -> dict[str, Any]:
    bar = Bar("in-process baselines", 2, "parts")
    out: dict[str, Any] = {"scenario": "baselines"}
    out["adapter"] = adapter(rounds + 2)
    bar.update(1)
    out["timers"] = timers(rounds)
    bar.close()
    return out
