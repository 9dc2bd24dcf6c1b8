"""The Standard Webhooks retry schedule, with jitter.

Attempt 1 goes out immediately; after the n-th failed attempt the next one waits
`RETRY_SCHEDULE_S[n]` seconds, ±10%. After the 8th failure the delivery is failed.
"""

from __future__ import annotations

import random

# Delay before each attempt, in seconds: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
RETRY_SCHEDULE_S: tuple[int, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(RETRY_SCHEDULE_S)
JITTER = 0.10


def retry_delay(attempts_made: int, rng: random.Random) -> float | None:
    """Seconds to wait after `attempts_made` failed attempts; None when none is left."""
    assert attempts_made >= 1
    if attempts_made >= MAX_ATTEMPTS:
        return None
    base = RETRY_SCHEDULE_S[attempts_made]
    return base * rng.uniform(1 - JITTER, 1 + JITTER)
