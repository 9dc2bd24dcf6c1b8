"""A one-line progress bar on stderr while a run's window is open (or a drain waits).

Shown when stderr is a terminal, or when `ENABLED` is set to True (`--progress`);
False turns it off. A carriage return redraws the line, so it costs nothing to log files.
"""

from __future__ import annotations

import sys
import time

ENABLED: bool | None = None
WIDTH = 30


def enabled() -> bool:
    return sys.stderr.isatty() if ENABLED is None else ENABLED


class Bar:
    def __init__(self, label: str, total: float, unit: str = "s") -> None:
        self.label, self.total, self.unit = label, max(total, 1e-9), unit
        self.started = time.monotonic()
        self.shown = enabled()

    def update(self, done: float, note: str = "") -> None:
        if not self.shown:
            return
        frac = min(1.0, max(0.0, done / self.total))
        filled = int(frac * WIDTH)
        bar = "#" * filled + "." * (WIDTH - filled)
        amount = (f"{done:5.1f}/{self.total:.0f} s" if self.unit == "s"
                  else f"{done:,.0f}/{self.total:,.0f} {self.unit}")
        sys.stderr.write(f"\r  {self.label:<28} [{bar}] {amount} {note}\x1b[K")
        sys.stderr.flush()

    def close(self, note: str = "") -> None:
        if not self.shown:
            return
        took = time.monotonic() - self.started
        sys.stderr.write(f"\r  {self.label:<28} done in {took:.1f} s {note}\x1b[K\n")
        sys.stderr.flush()
