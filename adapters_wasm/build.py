"""Build the provider adapters (Zig) to WebAssembly with the pinned `ziglang` wheel.

    python adapters_wasm/build.py [--out DIR] [--force] [NAME ...]

Every directory of `adapters_wasm/` holding a `main.zig` is an adapter, built to
`<out>/<name>.wasm` (default out: `hermes/providers/builtin/`). The support
library in `adapters_wasm/support/` is imported by adapters as the `hermes`
module.

Builds are cached: each adapter has a stamp keyed by a SHA-256 over its sources,
the support library's sources, the zig version and the compiler flags, plus the
output's own hash; nothing is rebuilt while those match. Standard library only,
so it runs before the project is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUPPORT = "support"
DEFAULT_OUT = HERE.parent / "hermes" / "providers" / "builtin"

# The ABI's exports (ABI.md); everything else stays internal to the module.
EXPORTS = (
    "hermes_alloc",
    "hermes_abi_version",
    "hermes_manifest",
    "hermes_build_request",
    "hermes_parse_response",
    "hermes_parse_callback",
)

FLAGS = (
    "-target",
    "wasm32-freestanding",
    # SIMD128 (on by default in wasmtime) lets the support library scan JSON
    # and form bodies 16 bytes per instruction; fuel is charged per instruction.
    "-mcpu=generic+simd128",
    "-O",
    "ReleaseSmall",
    "-fno-entry",
    "-fstrip",
    "-fsingle-threaded",
    # 256 KiB of shadow stack: JSON nesting is capped at 64 levels, and a small
    # initial memory keeps fresh instances cheap.
    "--stack",
    "262144",
    *(f"--export={name}" for name in EXPORTS),
)


def adapters(root: Path) -> list[str]:
    return sorted(p.parent.name for p in root.glob("*/main.zig") if p.parent.name != SUPPORT)


def _sources(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.zig") if p.is_file())


def _hash_tree(h: hashlib._Hash, directory: Path) -> None:
    for path in _sources(directory):
        h.update(path.relative_to(directory).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")


def zig_version() -> str:
    return importlib.metadata.version("ziglang")


def build_key(root: Path, name: str, version: str) -> str:
    h = hashlib.sha256()
    h.update(f"zig {version}\0".encode())
    h.update("\0".join(FLAGS).encode() + b"\0")
    h.update(b"adapter\0")
    _hash_tree(h, root / name)
    h.update(b"support\0")
    _hash_tree(h, root / SUPPORT)
    return h.hexdigest()


def _stamp_path(root: Path, name: str, out: Path) -> Path:
    # One stamp per (adapter, output directory), so building to a second
    # directory never makes the first one look stale or fresh by mistake.
    where = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    return root / ".build" / "stamps" / f"{name}-{where}"


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_up_to_date(root: Path, name: str, out: Path, key: str) -> bool:
    stamp = _stamp_path(root, name, out)
    wasm = out / f"{name}.wasm"
    if not stamp.is_file() or not wasm.is_file():
        return False
    recorded = stamp.read_text().split()
    return recorded == [key, _file_sha256(wasm)]


class BuildError(Exception):
    """An adapter failed to compile; carries the compiler's output."""

    def __init__(self, name: str, output: str) -> None:
        super().__init__(f"{name}: build failed\n{output}")
        self.name = name
        self.output = output


def compile_adapter(root: Path, name: str, out: Path) -> None:
    """Compile one adapter to `<out>/<name>.wasm`; raise BuildError on failure."""
    build_dir = root / ".build"
    build_dir.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{name}.", suffix=".wasm", dir=out)
    os.close(fd)
    cmd = [
        sys.executable,
        "-m",
        "ziglang",
        "build-exe",
        *FLAGS,
        "-j1",
        "--cache-dir",
        str(build_dir / "zig-cache"),
        "--name",
        name,
        f"-femit-bin={tmp}",
        "--dep",
        "hermes",
        f"-Mroot={root / name / 'main.zig'}",
        f"-Mhermes={root / SUPPORT / 'hermes.zig'}",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, check=False)
        if proc.returncode != 0:
            raise BuildError(name, proc.stdout + proc.stderr)
        os.replace(tmp, out / f"{name}.wasm")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build(
    root: Path = HERE,
    out: Path = DEFAULT_OUT,
    names: list[str] | None = None,
    force: bool = False,
    log=print,
) -> list[str]:
    """Build the named adapters (default: all); return the names rebuilt."""
    available = adapters(root)
    wanted = names or available
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        raise SystemExit(f"no such adapter: {', '.join(unknown)} (have: {', '.join(available)})")
    version = zig_version()
    rebuilt = []
    for name in wanted:
        key = build_key(root, name, version)
        if not force and is_up_to_date(root, name, out, key):
            log(f"{name}: up to date")
            continue
        compile_adapter(root, name, out)
        stamp = _stamp_path(root, name, out)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(f"{key} {_file_sha256(out / f'{name}.wasm')}\n")
        rebuilt.append(name)
        log(f"{name}: built {out / f'{name}.wasm'}")
    return rebuilt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="adapters to build (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    try:
        build(HERE, args.out, args.names, args.force)
    except BuildError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
