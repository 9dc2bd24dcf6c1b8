"""The adapter build pipeline (adapters_wasm/build.py) and the ABI through `echo`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import wasmtime

from tests.unit.adapters.wasm import (
    ABI_EXPORTS,
    ADAPTERS_SRC,
    AdapterError,
    adapter,
    load_build_script,
)

build_script = load_build_script()


def test_echo_exports_exactly_the_abi_and_imports_nothing() -> None:
    echo = adapter("echo")
    assert {e.name for e in echo.module.exports} == ABI_EXPORTS
    assert list(echo.module.imports) == []
    assert echo.abi_version() == 1


def test_echo_manifest_describes_the_adapter() -> None:
    manifest = adapter("echo").manifest()
    assert manifest["name"] == "echo"
    assert manifest["abi"] == 1
    assert set(manifest) >= {
        "name",
        "version",
        "abi",
        "channels",
        "allowed_hosts",
        "credentials",
        "callback_auth",
        "token",
    }
    assert manifest["token"] is None


@pytest.mark.parametrize(
    "body",
    [
        "hello",
        "héllo wörld",
        "emoji 😀👍🏽",
        'quote " backslash \\ slash /',
        "ctl \x00\x01\x1f\x7f\n\t",
        "x" * 20_000,
        "",
    ],
)
def test_echo_returns_its_input(body: str) -> None:
    payload = {
        "message": {
            "id": "m1",
            "channel": "sms",
            "to": "+15005550006",
            "body": body,
            "data": {"n": [1, 2.5, -3e-7, True, False, None], "nested": {"k": "v"}},
        },
        "credentials": {},
        "config": {},
        "now": 1_700_000_000_000,
        "attempt_id": "att_1",
    }
    request = adapter("echo").build_request(payload)
    assert request["echo"] == payload
    assert json.loads(request["body"]) == payload["message"]
    assert request["method"] == "POST"
    assert request["url"] == "https://echo.hermes.invalid/echo"


def test_echo_reports_bad_input_as_a_typed_error() -> None:
    echo = adapter("echo")
    with pytest.raises(AdapterError) as exc:
        echo.build_request({"credentials": {}})
    assert exc.value.code == "adapter.bad_input"
    out = json.loads(echo.raw("hermes_build_request", b"{not json"))
    assert out["error"]["code"] == "adapter.bad_input"
    out = json.loads(echo.raw("hermes_build_request", b'"\xff"'))
    assert "error" in out


def test_echo_parses_responses_and_callbacks() -> None:
    echo = adapter("echo")
    assert echo.parse_response(200, "id-1") == {
        "outcome": "accepted",
        "provider_message_id": "id-1",
    }
    assert echo.parse_response(429, "", [["Retry-After", "7"]]) == {
        "outcome": "retryable",
        "code": "provider.rate_limited",
        "retry_after_ms": 7000,
    }
    assert echo.parse_response(503)["code"] == "provider.unavailable"
    assert echo.parse_response(400, "no")["outcome"] == "rejected"
    callback = echo.parse_callback(
        {
            "method": "POST",
            "url": "https://h/cb",
            "headers": [],
            "credentials": {},
            "body": json.dumps({"id": "id-1", "status": "delivered"}),
        }
    )
    assert callback == {
        "verified": True,
        "receipts": [{"provider_message_id": "id-1", "status": "delivered"}],
    }


def _copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "adapters_wasm"
    for sub in ("echo", "support"):
        shutil.copytree(ADAPTERS_SRC / sub, root / sub)
    return root


def test_build_is_cached_and_a_source_change_rebuilds(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    out = tmp_path / "out"
    lines: list[str] = []
    assert build_script.build(root, out, log=lines.append) == ["echo"]
    wasm = out / "echo.wasm"
    first = wasm.read_bytes()
    wasmtime.Module(wasmtime.Engine(), first)

    started = time.perf_counter()
    assert build_script.build(root, out, log=lines.append) == []
    assert time.perf_counter() - started < 1.0
    assert lines[-1] == "echo: up to date"

    # A change in the support library rebuilds every adapter that uses it.
    support = root / "support" / "abi.zig"
    support.write_text(support.read_text() + "\n// changed\n")
    assert build_script.build(root, out, log=lines.append) == ["echo"]
    assert build_script.build(root, out, log=lines.append) == []

    # A deleted or replaced output is noticed too.
    wasm.write_bytes(b"\0asm")
    assert build_script.build(root, out, log=lines.append) == ["echo"]
    assert wasm.read_bytes() == first


def test_build_failure_exits_non_zero_with_the_compiler_output(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    main = root / "echo" / "main.zig"
    main.write_text(main.read_text() + "\nconst broken: u8 = 300;\ncomptime { _ = broken; }\n")
    with pytest.raises(build_script.BuildError) as exc:
        build_script.build(root, tmp_path / "out", log=lambda _l: None)
    assert "echo" in str(exc.value)
    assert "main.zig" in exc.value.output


def test_command_line_reports_up_to_date_and_fails_loudly(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    shutil.copy(ADAPTERS_SRC / "build.py", root / "build.py")
    out = tmp_path / "out"
    cmd = [sys.executable, str(root / "build.py"), "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert "echo: built" in first.stdout
    again = subprocess.run([*cmd, "echo"], capture_output=True, text=True, check=False)
    assert (again.returncode, again.stdout.strip()) == (0, "echo: up to date")

    main = root / "echo" / "main.zig"
    main.write_text(main.read_text().replace("pub fn parseCallback", "pub fn parseCallbak"))
    failed = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert failed.returncode == 1
    assert "echo: build failed" in failed.stderr
    assert "parseCallback" in failed.stderr  # the compiler's own message comes through
    unknown = subprocess.run([*cmd, "nope"], capture_output=True, text=True, check=False)
    assert unknown.returncode != 0 and "no such adapter: nope" in unknown.stderr
