"""The hand-written stub `hermes/_core.pyi` matches what the extension exports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_stubtest_finds_no_difference() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "hermes._core"],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )
    assert result.returncode == 0, result.stdout + result.stderr
