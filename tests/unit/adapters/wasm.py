"""Run adapter modules through the `wasmtime` PyPI package, a fresh Store per call.

The Rust host in `hermes._core` is the production runtime; this helper speaks the
same ABI (adapters_wasm/ABI.md) so the adapters can be tested on their own.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

import wasmtime

REPO = Path(__file__).resolve().parents[3]
ADAPTERS_SRC = REPO / "adapters_wasm"
BUILTIN = REPO / "hermes" / "providers" / "builtin"

ABI_EXPORTS = {
    "memory",
    "hermes_alloc",
    "hermes_abi_version",
    "hermes_manifest",
    "hermes_build_request",
    "hermes_parse_response",
    "hermes_parse_callback",
}


def load_build_script() -> Any:
    spec = importlib.util.spec_from_file_location("hermes_adapter_build", ADAPTERS_SRC / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class AdapterError(Exception):
    """The adapter answered `{"error": {...}}`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Adapter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.engine = wasmtime.Engine()
        self.module = wasmtime.Module.from_file(self.engine, str(path))

    def raw(self, fn: str, payload: bytes | None = None) -> bytes:
        """Call an export in a fresh instance; return the output bytes."""
        store = wasmtime.Store(self.engine)
        exports = wasmtime.Instance(store, self.module, []).exports(store)
        memory = exports["memory"]
        if payload is None:
            packed = exports[fn](store)
        else:
            ptr = exports["hermes_alloc"](store, len(payload))
            if payload:
                memory.write(store, payload, ptr)
            packed = exports[fn](store, ptr, len(payload))
        packed &= (1 << 64) - 1
        ptr, length = packed >> 32, packed & 0xFFFFFFFF
        return bytes(memory.read(store, ptr, ptr + length))

    def call(self, fn: str, payload: Any = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        out = self.raw(fn, data)
        result = json.loads(out.decode("utf-8"))
        assert isinstance(result, dict) and len(result) == 1, result
        if "error" in result:
            raise AdapterError(result["error"]["code"], result["error"]["message"])
        return result["ok"]

    def abi_version(self) -> int:
        store = wasmtime.Store(self.engine)
        exports = wasmtime.Instance(store, self.module, []).exports(store)
        return exports["hermes_abi_version"](store)

    def manifest(self) -> dict[str, Any]:
        return self.call("hermes_manifest")

    def build_request(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.call("hermes_build_request", payload)

    def parse_response(
        self, status: int, body: str | dict[str, Any] = "", headers: list[list[str]] | None = None
    ) -> dict[str, Any]:
        text = body if isinstance(body, str) else json.dumps(body)
        return self.call(
            "hermes_parse_response", {"status": status, "headers": headers or [], "body": text}
        )

    def parse_callback(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.call("hermes_parse_callback", payload)


@functools.cache
def adapter(name: str) -> Adapter:
    """The built adapter `name`, (re)built first if its sources changed."""
    load_build_script().build(out=BUILTIN, names=[name], log=lambda _line: None)
    return Adapter(BUILTIN / f"{name}.wasm")


def header(request: dict[str, Any], name: str) -> str | None:
    for key, value in request["headers"]:
        if key.lower() == name.lower():
            return value
    return None
