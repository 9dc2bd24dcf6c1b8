"""Adapter versions for hot-deploy tests and the benchmark, built from the shipped sources.

`build_variant("twilio_sms", "1.1.1-test")` is the shipped adapter under another
manifest version; with `trap=True` its `build_request` traps on every call (the
`@trap()` builtin, a WebAssembly `unreachable`), as a broken release would.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

from hermes.adapter_cli import REPO_ADAPTERS, build_adapter

BUILD_REQUEST = "pub fn buildRequest(in: h.Value, w: *h.Writer) h.Error!void {"


@functools.cache
def build_variant(name: str, version: str, *, trap: bool = False) -> bytes:
    with tempfile.TemporaryDirectory(prefix="hermes-variant-") as tmp:
        src = Path(tmp) / name
        shutil.copytree(REPO_ADAPTERS / name, src)
        if trap:
            main = (src / "main.zig").read_text()
            assert BUILD_REQUEST in main, "the adapter's build_request changed shape"
            trap_line = "\n    if (w.bytes().len < 1 << 30) @trap();"
            main = main.replace(BUILD_REQUEST, BUILD_REQUEST + trap_line, 1)
            (src / "main.zig").write_text(main)
        path = build_adapter(str(src), version=version, out=Path(tmp) / "out")
        return path.read_bytes()
