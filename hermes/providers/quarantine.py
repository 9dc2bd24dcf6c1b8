"""Counting adapter traps, to quarantine a version that keeps trapping.

Rule (per process, per adapter version, over the last `WINDOW_S` seconds): a
version is quarantined when it trapped on at least `MIN_ATTEMPTS` distinct
attempts and traps are more than `MIN_SHARE` of its calls. Distinct attempts,
so one message that trips an adapter bug, retried, cannot take down a version
that serves everyone else; a share of calls, so a rare trap under heavy load
does not either. A bad deploy under load crosses both within milliseconds.

Traps are the host's verdicts on the module itself: `adapter.trap`,
`adapter.out_of_fuel`, `adapter.memory_exceeded`, `adapter.bad_output`
(`adapter.bad_input` and `adapter.timeout` can come from the input or a
loaded machine, so they do not count).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

from hermes.providers.registry import ActiveAdapter

log = logging.getLogger("hermes.adapters")

TRAP_CODES = frozenset({"adapter.trap", "adapter.out_of_fuel", "adapter.memory_exceeded",
                        "adapter.bad_output"})
WINDOW_S = 60.0
MIN_ATTEMPTS = 3
MIN_SHARE = 0.5


@dataclass
class _Counts:
    calls: deque[float] = field(default_factory=deque)
    traps: deque[tuple[float, UUID]] = field(default_factory=deque)

    def prune(self, before: float) -> None:
        while self.calls and self.calls[0] < before:
            self.calls.popleft()
        while self.traps and self.traps[0][0] < before:
            self.traps.popleft()


class TrapMonitor:
    """Feed it every adapter call's outcome; it calls `on_quarantine(adapter, reason)` once
    for a version that crosses the rule."""

    def __init__(self, on_quarantine: Callable[[ActiveAdapter, str], Awaitable[None]], *,
                 window_s: float = WINDOW_S, min_attempts: int = MIN_ATTEMPTS,
                 min_share: float = MIN_SHARE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.on_quarantine = on_quarantine
        self.window_s, self.min_attempts, self.min_share = window_s, min_attempts, min_share
        self.clock = clock
        self._counts: dict[str, _Counts] = {}
        self._tripped: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, adapter: ActiveAdapter, attempt_id: UUID, code: str | None) -> bool:
        """Count one call; True when this call tripped the quarantine."""
        now = self.clock()
        counts = self._counts.setdefault(adapter.sha256, _Counts())
        counts.prune(now - self.window_s)
        counts.calls.append(now)
        if code not in TRAP_CODES:
            return False
        counts.traps.append((now, attempt_id))
        if adapter.sha256 in self._tripped:
            return False
        attempts = {a for _, a in counts.traps}
        share = len(counts.traps) / len(counts.calls)
        if len(attempts) < self.min_attempts or share <= self.min_share:
            return False
        self._tripped.add(adapter.sha256)
        reason = (f"{len(counts.traps)} traps ({code}) on {len(attempts)} attempts in "
                  f"{len(counts.calls)} calls within {self.window_s:g} s")
        log.error("adapter %s %s (%s) keeps trapping: %s", adapter.name, adapter.version,
                  adapter.sha256[:12], reason)
        task = asyncio.get_running_loop().create_task(self._quarantine(adapter, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _quarantine(self, adapter: ActiveAdapter, reason: str) -> None:
        try:
            await self.on_quarantine(adapter, reason)
        except Exception:
            log.exception("quarantining %s %s failed; will try again on its next trap",
                          adapter.name, adapter.version)
            self._tripped.discard(adapter.sha256)

    def tripped(self, sha256: str) -> bool:
        return sha256 in self._tripped

    def reset(self, sha256: str) -> None:
        """Start counting a version afresh (it was activated again, by force)."""
        self._tripped.discard(sha256)
        self._counts.pop(sha256, None)
