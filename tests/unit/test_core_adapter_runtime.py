"""The adapter sandbox in `hermes._core`: shipped adapters, hostile modules, limits, caching.

Hostile modules are written in WAT and compiled with the `wasmtime` package's
`wat2wasm`. After every hostile load or call, a good call on the same runtime
must still succeed: a contained failure leaves the process serving.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from hermes._core import AdapterError, AdapterInfo, AdapterRuntime
from tests.unit.adapters.wasm import BUILTIN, adapter

MANIFEST = {
    "name": "wat_adapter",
    "version": "1.0.0",
    "abi": 1,
    "channels": ["sms"],
    "allowed_hosts": ["api.example.com"],
    "credentials": [],
    "callback_auth": "none",
    "token": None,
}
ECHO = "(call $ok (local.get $p) (local.get $n))"
GOOD_REQUEST = json.dumps(
    {
        "method": "POST",
        "url": "https://api.example.com/v1/send",
        "headers": [["Content-Type", "application/json"]],
        "body": '{"to": "+15550100"}',
    }
).encode()
NOT_JSON = b"not json at all"
NOT_UTF8 = b"\xff\xfe\xfd"


def packed(ptr: int, length: int) -> str:
    """`(i64.const ...)` returning `length` bytes at `ptr` (the ABI's packing)."""
    value = (ptr << 32) | length
    return f"(i64.const {value - (1 << 64) if value >= 1 << 63 else value})"


def wat_string(data: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in data)


def module(
    *,
    build: str = ECHO,
    parse_response: str = ECHO,
    abi: int = 1,
    pages: int = 2,
    imports: str = "",
    extra: str = "",
    manifest: dict[str, Any] | None = None,
    omit: str | None = None,
) -> bytes:
    """An ABI v1 module whose entries echo their input as `{"ok": <input>}`,
    with a bump allocator that traps when memory cannot grow."""
    man = json.dumps(manifest or MANIFEST, separators=(",", ":")).encode()

    def export(name: str) -> str:
        return "" if name == omit else f'(export "{name}")'

    text = f"""(module
  {imports}
  (memory {export("memory")} {pages})
  (global $heap (mut i32) (i32.const 65536))
  (global $counter (mut i32) (i32.const 0))
  (data (i32.const 16) "{{\\"ok\\":")
  (data (i32.const 128) "{wat_string(NOT_JSON)}")
  (data (i32.const 160) "{wat_string(NOT_UTF8)}")
  (data (i32.const 1024) "{wat_string(man)}")
  (func {export("hermes_abi_version")} (result i32) (i32.const {abi}))
  (func $alloc {export("hermes_alloc")} (param $len i32) (result i32)
    (local $p i32) (local $end i32)
    (local.set $p (global.get $heap))
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    (block $done
      (loop $grow
        (br_if $done (i32.le_u (local.get $end) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
    (global.set $heap (local.get $end))
    (local.get $p))
  (func $pack (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $n))))
  (func $ok (param $p i32) (param $n i32) (result i64)
    (local $out i32)
    (local.set $out (call $alloc (i32.add (local.get $n) (i32.const 7))))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 6))
    (memory.copy (i32.add (local.get $out) (i32.const 6)) (local.get $p) (local.get $n))
    (i32.store8 (i32.add (i32.add (local.get $out) (i32.const 6)) (local.get $n)) (i32.const 125))
    (call $pack (local.get $out) (i32.add (local.get $n) (i32.const 7))))
  (func {export("hermes_manifest")} (result i64) {packed(1024, len(man))})
  (func {export("hermes_build_request")} (param $p i32) (param $n i32) (result i64) {build})
  (func {export("hermes_parse_response")} (param $p i32) (param $n i32) (result i64)
    {parse_response})
  (func {export("hermes_parse_callback")} (param $p i32) (param $n i32) (result i64) {ECHO})
  {extra}
)"""
    return bytes(wasmtime.wat2wasm(text))


GOOD = module()
LOOP = "(loop $l (br $l)) (unreachable)"


@pytest.fixture(scope="module")
def rt() -> AdapterRuntime:
    return AdapterRuntime()


def assert_serving(rt: AdapterRuntime) -> None:
    sha = rt.load(GOOD).sha256
    assert rt.build_request(sha, GOOD_REQUEST) == GOOD_REQUEST


def call_error(rt: AdapterRuntime, wasm: bytes, **limits: int) -> AdapterError:
    runtime = AdapterRuntime(None, **limits) if limits else rt
    sha = runtime.load(wasm).sha256
    with pytest.raises(AdapterError) as caught:
        runtime.build_request(sha, GOOD_REQUEST)
    assert_serving(runtime)
    assert_serving(rt)
    return caught.value


def load_error(rt: AdapterRuntime, wasm: bytes) -> AdapterError:
    with pytest.raises(AdapterError) as caught:
        rt.load(wasm)
    assert_serving(rt)
    return caught.value


# --- The shipped adapters -------------------------------------------------------------


def test_echo_adapter_round_trips_through_the_core(rt: AdapterRuntime) -> None:
    adapter("echo")  # (re)builds hermes/providers/builtin/echo.wasm if its sources changed
    info = rt.load((BUILTIN / "echo.wasm").read_bytes())
    assert isinstance(info, AdapterInfo)
    assert (info.name, json.loads(info.manifest_json)["abi"]) == ("echo", 1)
    assert len(info.sha256) == 64 and info.sha256 in rt.loaded()
    payload = {
        "message": {"id": "m1", "channel": "sms", "to": "+15005550006", "body": "héllo 😀 \"q\""},
        "credentials": {},
        "config": {},
        "now": 1_700_000_000_000,
        "attempt_id": "att_1",
    }
    request = json.loads(rt.build_request(info.sha256, json.dumps(payload).encode()))
    assert request["echo"] == payload
    assert request["url"] == "https://echo.hermes.invalid/echo"


def test_twilio_request_matches_the_straightforward_wasmtime_run(rt: AdapterRuntime) -> None:
    twilio = adapter("twilio_sms")
    sha = rt.load(twilio.path.read_bytes()).sha256
    payload = {
        "message": {"id": "m1", "channel": "sms", "to": "+14155550100", "body": "Grüße 😀 a+b&c"},
        "credentials": {"account_sid": "AC0123", "auth_token": "secret"},
        "config": {"from": "+14155550199", "callback_url": "https://h.example/cb"},
        "now": 1_767_225_600_000,
        "attempt_id": "att_1",
    }
    core = json.loads(rt.build_request(sha, json.dumps(payload).encode()))
    assert core == twilio.build_request(payload)
    assert core["url"].startswith("https://api.twilio.com/2010-04-01/Accounts/AC0123/")


def test_every_shipped_adapter_passes_the_hosts_checks(rt: AdapterRuntime) -> None:
    shipped = sorted(BUILTIN.glob("*.wasm"))
    assert {p.stem for p in shipped} >= {"echo", "twilio_sms"}
    for path in shipped:
        info = rt.load(path.read_bytes())
        manifest = json.loads(info.manifest_json)
        assert (info.name, info.allowed_hosts) == (path.stem, manifest["allowed_hosts"])


def test_adapter_errors_carry_the_adapters_code(rt: AdapterRuntime) -> None:
    sha = rt.load(adapter("twilio_sms").path.read_bytes()).sha256
    with pytest.raises(AdapterError) as caught:
        rt.build_request(sha, b'{"message": {}, "credentials": {}, "config": {}, "now": 0}')
    assert caught.value.code == "adapter.bad_input"
    assert caught.value.args == (caught.value.code, caught.value.message)


# --- Hostile modules, contained at call -----------------------------------------------


def test_an_infinite_loop_runs_out_of_fuel(rt: AdapterRuntime) -> None:
    # 5 M fuel burns in a few ms, well inside the 50 ms deadline even on a busy box.
    assert call_error(rt, module(build=LOOP), fuel=5_000_000).code == "adapter.out_of_fuel"


def test_an_infinite_loop_with_unbounded_fuel_hits_the_deadline(rt: AdapterRuntime) -> None:
    started = time.perf_counter()
    error = call_error(rt, module(build=LOOP), fuel=2**63, timeout_ms=20)
    assert error.code == "adapter.timeout"
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(
    "body",
    [
        # Grows until refused, then traps, as a bump allocator does.
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (unreachable)",
        # Ignores the refusal and keeps asking.
        "(loop $l (drop (memory.grow (i32.const 1))) (br $l)) (unreachable)",
    ],
    ids=["trap-when-refused", "ignore-refusal"],
)
def test_a_memory_bomb_hits_the_memory_cap(rt: AdapterRuntime, body: str) -> None:
    assert call_error(rt, module(build=body)).code == "adapter.memory_exceeded"


def test_deep_recursion_traps(rt: AdapterRuntime) -> None:
    wasm = module(
        build="(drop (call $deep (i32.const 0))) (unreachable)",
        extra="(func $deep (param i32) (result i32) "
        "(call $deep (i32.add (local.get 0) (i32.const 1))))",
    )
    error = call_error(rt, wasm)
    assert error.code == "adapter.trap"
    assert "stack overflow" in error.message


def test_an_out_of_bounds_load_traps(rt: AdapterRuntime) -> None:
    error = call_error(rt, module(build="(drop (i32.load (i32.const -4))) (unreachable)"))
    assert (error.code, "out of bounds" in error.message) == ("adapter.trap", True)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (packed(0, 2 << 20), "over the"),
        (packed(0xFFFF0000, 16), "outside"),
        (packed(40 * 65536 - 16, 255), "outside"),
        (packed(128, len(NOT_JSON)), "not a JSON object"),
        (packed(160, len(NOT_UTF8)), "not UTF-8"),
    ],
    ids=["huge", "pointer-out-of-bounds", "length-out-of-bounds", "not-json", "not-utf8"],
)
def test_malformed_output_is_bad_output(rt: AdapterRuntime, body: str, needle: str) -> None:
    error = call_error(rt, module(build=body, pages=40))
    assert error.code == "adapter.bad_output"
    assert needle in error.message


def test_requests_to_other_hosts_are_refused(rt: AdapterRuntime) -> None:
    sha = rt.load(GOOD).sha256
    evil = b'{"method":"POST","url":"https://evil.example/x","headers":[],"body":""}'
    with pytest.raises(AdapterError) as caught:
        rt.build_request(sha, evil)
    assert caught.value.code == "adapter.host_not_allowed"
    local = b'{"method":"POST","url":"http://127.0.0.1:8900/x","headers":[],"body":""}'
    assert rt.build_request(sha, local, base_url="http://127.0.0.1:8900/twilio") == local


# --- Hostile modules, refused at load -------------------------------------------------


@pytest.mark.parametrize(
    ("wasm", "needle"),
    [
        (module(omit="hermes_parse_callback"), 'missing export "hermes_parse_callback"'),
        (module(omit="memory"), 'missing export "memory"'),
        (module(abi=2), "hermes_abi_version() is 2"),
        (module(imports='(import "env" "now" (func (result i64)))'), "imports env::now"),
        (
            module(imports='(import "wasi_snapshot_preview1" "fd_write" '
                   "(func (param i32 i32 i32 i32) (result i32)))"),
            "wasi_snapshot_preview1::fd_write",
        ),
        (module(manifest={**MANIFEST, "abi": 3}), "abi is 3"),
        (module(pages=1000), "memory starts at 1000 pages"),
        (b"\x00asm\x01\x00\x00\x00garbage", "not a valid WebAssembly module"),
        (b"(module)", "not a valid WebAssembly module"),
    ],
    ids=["missing-export", "missing-memory", "wrong-abi", "import", "wasi-import",
         "manifest-abi", "huge-memory", "garbage", "text"],
)
def test_modules_that_break_the_abi_are_refused(
    rt: AdapterRuntime, wasm: bytes, needle: str
) -> None:
    error = load_error(rt, wasm)
    assert error.code == "adapter.invalid_module"
    assert needle in error.message


# --- Isolation, batches, the GIL ------------------------------------------------------


def test_every_call_gets_a_fresh_instance(rt: AdapterRuntime) -> None:
    fresh = b'{"ok":{"fresh":true}}'
    stale = b'{"ok":{"fresh":false}}'
    body = f"""
        (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
        (i32.store (i32.const 8) (i32.add (i32.load (i32.const 8)) (i32.const 1)))
        (if (result i64) (i32.and (i32.eq (global.get $counter) (i32.const 1))
                                  (i32.eq (i32.load (i32.const 8)) (i32.const 1)))
          (then {packed(2048, len(fresh))})
          (else {packed(2112, len(stale))}))"""
    extra = (
        f'(data (i32.const 2048) "{wat_string(fresh)}")'
        f'(data (i32.const 2112) "{wat_string(stale)}")'
    )
    sha = rt.load(module(parse_response=body, extra=extra)).sha256
    assert rt.parse_responses(sha, [b"{}"] * 50) == [b'{"fresh":true}'] * 50
    assert rt.parse_response(sha, b"{}") == b'{"fresh":true}'


def test_batches_report_each_message_in_place(rt: AdapterRuntime) -> None:
    sha = rt.load(GOOD).sha256
    evil = b'{"method":"GET","url":"https://evil.example/","headers":[]}'
    results = rt.build_requests(sha, [GOOD_REQUEST, evil, b"[1, 2]", GOOD_REQUEST])
    assert results[0] == results[3] == GOOD_REQUEST
    assert [r.code for r in results[1:3] if isinstance(r, AdapterError)] == [
        "adapter.host_not_allowed",
        "adapter.bad_output",
    ]
    assert rt.build_requests(sha, []) == []
    assert rt.parse_callbacks(sha, [b'{"a":1}']) == [b'{"a":1}']


def test_the_gil_is_released_while_wasm_runs() -> None:
    runtime = AdapterRuntime(fuel=2**63, timeout_ms=300)
    sha = runtime.load(module(build=LOOP)).sha256
    ticks = 0
    done = threading.Event()

    def spin() -> None:
        try:
            runtime.build_request(sha, GOOD_REQUEST)
        except AdapterError:
            pass
        done.set()

    worker = threading.Thread(target=spin)
    worker.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    # Python kept running while the adapter spun for ~300 ms; with the GIL held
    # this thread could not have counted at all until the call returned.
    assert ticks > 10


# --- Loading, caching, limits ---------------------------------------------------------


def test_compiled_code_is_cached_on_disk_and_in_memory(tmp_path: Path) -> None:
    runtime = AdapterRuntime(tmp_path)
    wasm = module(extra=f'(data (i32.const 4096) "{tmp_path.name}")')  # unique bytes
    first = runtime.load(wasm)
    assert first.source == "compiled"
    assert runtime.load(wasm).source == "memory_cache"
    assert runtime.unload(first.sha256) is True
    assert runtime.unload(first.sha256) is False
    from_disk = runtime.load(wasm)
    assert from_disk.source == "disk_cache"
    assert from_disk.load_seconds < first.load_seconds
    assert runtime.build_request(from_disk.sha256, GOOD_REQUEST) == GOOD_REQUEST
    assert len(list(tmp_path.glob("*.cwasm"))) == 1


def test_unknown_versions_and_bad_arguments(rt: AdapterRuntime) -> None:
    with pytest.raises(AdapterError) as caught:
        rt.build_request("0" * 64, GOOD_REQUEST)
    assert caught.value.code == "request.not_found"
    with pytest.raises(AdapterError) as caught:
        rt.build_requests("not-a-sha", [GOOD_REQUEST])
    assert caught.value.code == "request.invalid"
    with pytest.raises(AdapterError) as caught:
        rt.build_request(rt.load(GOOD).sha256, GOOD_REQUEST, base_url="not a url")
    assert caught.value.code == "request.invalid"


def test_limits_have_documented_defaults_and_are_checked() -> None:
    runtime = AdapterRuntime()
    assert (runtime.fuel, runtime.timeout_ms, runtime.memory_bytes, runtime.output_bytes) == (
        50_000_000,
        50,
        16 << 20,
        1 << 20,
    )
    for bad in [{"fuel": 0}, {"timeout_ms": 0}, {"memory_bytes": 1 << 30}, {"output_bytes": 0}]:
        with pytest.raises(ValueError):
            AdapterRuntime(None, **bad)


def test_a_lower_memory_cap_applies_per_runtime() -> None:
    # 2 + 40 pages = 2.6 MiB; traps when refused, as a bump allocator does.
    grow = f"(if (i32.lt_s (memory.grow (i32.const 40)) (i32.const 0)) (then unreachable)) {ECHO}"
    small = AdapterRuntime(memory_bytes=2 << 20)
    assert call_error(small, module(build=grow)).code == "adapter.memory_exceeded"
    roomy = AdapterRuntime(memory_bytes=4 << 20)
    sha = roomy.load(module(build=grow)).sha256
    assert roomy.build_request(sha, GOOD_REQUEST) == GOOD_REQUEST


def test_a_forked_child_still_enforces_deadlines() -> None:
    # The epoch ticker is a thread, which fork() does not copy; the child's
    # first call must start its own, or the deadline would never fire.
    runtime = AdapterRuntime(fuel=2**63, timeout_ms=20)
    sha = runtime.load(module(build=LOOP)).sha256
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        signal.alarm(5)  # a child stuck in the loop dies instead of hanging the suite
        try:
            runtime.build_request(sha, GOOD_REQUEST)
            code = 2
        except AdapterError as e:
            code = 0 if e.code == "adapter.timeout" else 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
