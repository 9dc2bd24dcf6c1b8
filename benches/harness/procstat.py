"""CPU time and peak memory of processes (and their descendants) from /proc."""

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


def _children() -> tuple[dict[int, tuple[int, float]], dict[int, list[int]]]:
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            s = _stat(int(entry.name))
            if s is not None:
                stats[int(entry.name)] = s
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    return stats, children


def _tree(root: int, children: dict[int, list[int]]) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _hwm_kib(pid: int) -> int:
    """VmHWM (peak resident set) of one process in KiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def tree_peak_rss(roots: dict[str, int]) -> dict[str, dict[str, float]]:
    """Peak resident memory per named root process, from each live process's VmHWM:
    `mib` the largest single process of the tree, `sum_mib` the sum over the tree (which
    counts memory shared between processes, such as PostgreSQL's buffers, once per
    process), `processes` how many there were."""
    _, children = _children()
    out = {}
    for name, root in roots.items():
        hwm = [_hwm_kib(pid) for pid in _tree(root, children)]
        hwm = [h for h in hwm if h]
        out[name] = {"mib": max(hwm, default=0) / 1024, "sum_mib": sum(hwm) / 1024,
                     "processes": float(len(hwm))}
    return out


def tree_cpu(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds per named root process, counting its live descendants.

    PostgreSQL runs a process per connection; the pools keep their connections, so
    the backends live for the whole run and their CPU is counted here.
    """
    stats, children = _children()
    return {name: sum(stats[pid][1] for pid in _tree(root, children) if pid in stats)
            for name, root in roots.items()}


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen
