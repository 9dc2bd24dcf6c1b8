"""CPU time of processes (and their descendants) from /proc."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds of all threads) of one process."""
    try:
        rest = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / _TICK


def tree_cpu(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds per named root process, counting its live descendants.

    PostgreSQL runs a process per connection; the pools keep their connections, so
    the backends live for the whole run and their CPU is counted here.
    """
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            s = _stat(int(entry.name))
            if s is not None:
                stats[int(entry.name)] = s
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out = {}
    for name, root in roots.items():
        total, todo = 0.0, [root]
        while todo:
            pid = todo.pop()
            if pid in stats:
                total += stats[pid][1]
            todo.extend(children.get(pid, ()))
        out[name] = total
    return out


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen
