"""A provider account's send rate: a token bucket the delivery worker takes from per send.

An account's `config` may set `rate_limit_per_s` (sends per second, any positive
number) and `rate_limit_burst` (how many may go at once; default one second's
worth, at least 1). The bucket is in Redis, shared by every worker, so the rate
holds for the account whatever the number of workers.

A job whose account has no token left is not failed and does not hold a worker's
slot: it goes back to JetStream with a delay (`nak(delay)`) before its attempt is
claimed, and meanwhile the worker takes other jobs, other accounts' included. The
delay is the bucket's wait for the next token, doubled for each earlier delivery
of the job (up to MAX_DELAY_S) and jittered, so a backlog of throttled jobs does not
come back all at once to find one token.
"""

from __future__ import annotations

import math
import random
from typing import Any

from hermes.domain.limits import Limits

MIN_DELAY_S = 0.05
MAX_DELAY_S = 5.0


class Throttled(Exception):
    """The account's send rate is used up: put the job back for `wait_s` seconds."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"account send rate used up; next token in {wait_s:.3f}s")
        self.wait_s = wait_s


def account_limits(config: dict[str, Any]) -> Limits | None:
    """The bucket `config` asks for, or None when the account sets no rate (or a bad one)."""
    rate = config.get("rate_limit_per_s")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
        return None
    burst = config.get("rate_limit_burst")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        burst = max(1, math.floor(rate))
    return Limits(rate_per_s=float(rate), burst=burst)


def partition(account_id: object) -> str:
    return f"account:{account_id}"


def delay(wait_s: float, deliveries: int, rng: random.Random | None = None) -> float:
    """How long to put a throttled job back for (its `deliveries`-th time here)."""
    base = max(MIN_DELAY_S, wait_s) * (1 << min(max(deliveries - 1, 0), 7))
    jitter = rng.uniform(1.0, 1.5) if rng is not None else random.uniform(1.0, 1.5)
    return min(MAX_DELAY_S, base) * jitter
