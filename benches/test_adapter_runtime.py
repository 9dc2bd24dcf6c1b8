"""Adapter sandbox: the core's batched build_request against the straightforward
`wasmtime` PyPI run (fresh Store + Instance per call), measured in the same run,
and compiling a module against loading it from the cache.

Run: `.venv/bin/pytest benches/test_adapter_runtime.py --benchmark-columns=median,mean,stddev`
Each test stores its per-message figures in `extra_info` (see `--benchmark-json`)
and prints a one-line summary; BENCHMARKS.md ("Adapter sandbox") records them.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from hermes._core import AdapterRuntime

BUILTIN = Path(__file__).resolve().parents[1] / "hermes" / "providers" / "builtin"
# twilio_sms is the target adapter; echo stands in if it has not been built.
ADAPTER = next(p for p in (BUILTIN / "twilio_sms.wasm", BUILTIN / "echo.wasm") if p.exists())
BATCH = 100

INPUT = json.dumps(
    {
        "message": {
            "id": "msg_01HZX3",
            "channel": "sms",
            "to": "+14155550100",
            "body": "Your Hermes code is 123456. It expires in 10 minutes.",
            "metadata": {},
        },
        "credentials": {"account_sid": "AC" + "0" * 32, "auth_token": "f" * 32},
        "config": {
            "from": "+14155550199",
            "callback_url": "https://hermes.example.com/v1/callbacks/acc_123/twilio_sms",
        },
        "now": 1_767_225_600_000,
        "attempt_id": "att_01HZX3",
    }
).encode()

RESULTS: dict[str, float] = {}


def _median_seconds(benchmark: Any) -> float:
    # With --benchmark-disable (the smoke run) each body runs once and there are no stats.
    if benchmark.stats is None:
        return float("nan")
    return float(benchmark.stats.stats.median)


def _cpu_us_per_message(fn: Callable[[], object], messages: int, rounds: int = 10) -> float:
    """Best round's CPU time of the process (all threads) per message: per core, and
    unaffected by other load on the machine."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best / messages * 1e6


def _report(name: str, value: float, unit: str) -> None:
    RESULTS[name] = value
    print(f"\n[adapter sandbox] {ADAPTER.name}: {name} = {value:.2f} {unit}")


@pytest.fixture(scope="module")
def runtime() -> AdapterRuntime:
    return AdapterRuntime()


def test_core_build_request_batched(benchmark: Any, runtime: AdapterRuntime) -> None:
    sha = runtime.load(ADAPTER.read_bytes()).sha256
    inputs = [INPUT] * BATCH
    first = runtime.build_requests(sha, inputs[:1])[0]
    assert isinstance(first, bytes), first
    benchmark.pedantic(runtime.build_requests, args=(sha, inputs), rounds=300, warmup_rounds=10)
    per_message_us = _median_seconds(benchmark) / BATCH * 1e6
    benchmark.extra_info.update(adapter=ADAPTER.name, batch=BATCH, per_message_us=per_message_us)
    _report("core batched, median per message", per_message_us, "us")
    cpu_us = _cpu_us_per_message(lambda: runtime.build_requests(sha, inputs * 20), BATCH * 20)
    benchmark.extra_info["cpu_us_per_message"] = cpu_us
    _report("core batched, CPU per message", cpu_us, "us")


def _baseline_call(engine: wasmtime.Engine, module: wasmtime.Module) -> Callable[[], bytes]:
    def call() -> bytes:
        store = wasmtime.Store(engine)
        exports = wasmtime.Instance(store, module, []).exports(store)
        memory = exports["memory"]
        alloc, build = exports["hermes_alloc"], exports["hermes_build_request"]
        assert isinstance(memory, wasmtime.Memory)
        assert isinstance(alloc, wasmtime.Func) and isinstance(build, wasmtime.Func)
        ptr = alloc(store, len(INPUT))
        memory.write(store, INPUT, ptr)
        packed = build(store, ptr, len(INPUT)) & ((1 << 64) - 1)
        out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
        return bytes(memory.read(store, out_ptr, out_ptr + out_len))

    return call


def test_wasmtime_py_baseline_fresh_store_per_call(benchmark: Any) -> None:
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, ADAPTER.read_bytes())
    call = _baseline_call(engine, module)
    assert json.loads(call())["ok"]["url"]
    benchmark.pedantic(call, rounds=300, warmup_rounds=10)
    per_message_us = _median_seconds(benchmark) * 1e6
    benchmark.extra_info.update(adapter=ADAPTER.name, per_message_us=per_message_us)
    _report("wasmtime-py fresh Store per call, median", per_message_us, "us")
    cpu_us = _cpu_us_per_message(lambda: [call() for _ in range(200)], 200)
    benchmark.extra_info["cpu_us_per_message"] = cpu_us
    _report("wasmtime-py fresh Store per call, CPU per message", cpu_us, "us")
    if "core batched, median per message" in RESULTS:
        ratio = per_message_us / RESULTS["core batched, median per message"]
        cpu_ratio = cpu_us / RESULTS["core batched, CPU per message"]
        benchmark.extra_info.update(core_speedup=ratio, core_speedup_cpu=cpu_ratio)
        _report("core speed-up over wasmtime-py (median wall time)", ratio, "x")
        _report("core speed-up over wasmtime-py (CPU time)", cpu_ratio, "x")


def _unique(wasm: bytes, tag: str) -> bytes:
    """The same module with a custom section added, so its SHA-256 (and cache key) is new."""
    name = f"hermes-bench-{tag}".encode()
    payload = bytes([len(name)]) + name
    return wasm + b"\x00" + bytes([len(payload)]) + payload


def test_compile_vs_cache(benchmark: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="hermes-bench-cache-") as cache_dir:
        runtime = AdapterRuntime(cache_dir)
        compiled, from_disk, in_memory = [], [], []

        def load_three_ways() -> None:
            wasm = _unique(ADAPTER.read_bytes(), f"{os.getpid()}-{time.perf_counter_ns()}")
            first = runtime.load(wasm)
            assert first.source == "compiled"
            compiled.append(first.load_seconds)
            runtime.unload(first.sha256)
            again = runtime.load(wasm)
            assert again.source == "disk_cache"
            from_disk.append(again.load_seconds)
            other = AdapterRuntime(cache_dir)  # same process: the in-memory cache answers
            third = other.load(wasm)
            assert third.source == "memory_cache"
            in_memory.append(third.load_seconds)
            runtime.unload(first.sha256)
            other.unload(first.sha256)

        benchmark.pedantic(load_three_ways, rounds=10, warmup_rounds=1)

    def median(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2]

    compile_ms, disk_ms = median(compiled) * 1e3, median(from_disk) * 1e3
    memory_us = median(in_memory) * 1e6
    benchmark.extra_info.update(
        adapter=ADAPTER.name,
        compile_ms=compile_ms,
        disk_cache_ms=disk_ms,
        memory_cache_us=memory_us,
    )
    _report("compile, median", compile_ms, "ms")
    _report("load from disk cache, median", disk_ms, "ms")
    _report("load from memory cache, median", memory_us, "us")
    _report("compile / disk cache", compile_ms / disk_ms, "x")
