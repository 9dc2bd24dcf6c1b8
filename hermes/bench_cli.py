"""`hermes bench SCENARIO [options]`: the throughput harness.

The harness (`benches/harness/`) lives in the repository, not in the installed package:
it starts Hermes's processes, its own load generator, a webhook receiver and the Celery
baseline from source. This command finds a checkout (the working directory, or the
directory the `hermes` package was installed from in development mode) and runs the
harness from it; `python -m benches.harness` in a checkout is the same thing.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

_MISSING = """hermes bench: the benchmark harness is not part of the installed package.
It lives in benches/harness/ of a Hermes checkout: run `hermes bench` from the repository
root (or `python -m benches.harness ...` there), with the bench extra installed:
    pip install -e '.[embedded,test,bench]'"""


def find_checkout() -> Path | None:
    """The first of the working directory and the package's parent directory that holds
    the harness."""
    package_parent = Path(__file__).resolve().parents[1]
    for root in (Path.cwd(), package_parent):
        if (root / "benches" / "harness" / "__main__.py").is_file():
            return root
    return None


def main(argv: Sequence[str]) -> int:
    root = find_checkout()
    if root is None:
        print(_MISSING, file=sys.stderr)
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        harness = importlib.import_module("benches.harness.__main__")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("hdrh", "celery", "botocore", "wasmtime"):
            print(f"hermes bench: {exc.name} is missing; install the bench extra: "
                  "pip install -e '.[embedded,test,bench]'", file=sys.stderr)
            return 2
        raise
    return int(harness.main(list(argv), prog="hermes bench"))
