"""Rate limits and daily quotas: what a limit is and what a take of it decided.

Validation layer 8 (tenants, at the API) and providers' send rates (delivery) use
these; `ports.Limiter` takes from a limit, `infra/redis/ratelimit.py` in Redis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class Limits:
    """A bucket (`rate_per_s` tokens a second, at most `burst`) and a daily quota.

    `rate_per_s` 0 means no bucket; `daily_quota` 0 means no quota.
    """

    rate_per_s: float
    burst: int
    daily_quota: int = 0

    @property
    def unlimited(self) -> bool:
        return self.rate_per_s <= 0 and self.daily_quota <= 0


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    # Why not: the bucket ("rate") or the day's quota ("quota"); None when allowed.
    refused_by: Literal["rate", "quota"] | None
    limits: Limits
    remaining: int  # whole tokens left in the bucket
    full_in_s: float  # until the bucket is full again
    retry_after_s: float  # when refused: the wait until this take could succeed
    quota_used: int  # counted today (0 without a quota)
    quota_reset_s: float  # until the quota's day ends
    degraded: bool = False  # Redis did not answer: admitted without a check

    @property
    def quota_remaining(self) -> int:
        return max(0, self.limits.daily_quota - self.quota_used)


def day_of(ts: float) -> tuple[str, int]:
    """The UTC day of Unix time `ts` as `YYYYMMDD`, and the Unix second it ends at."""
    day = datetime.fromtimestamp(ts, tz=UTC).date()
    end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    return day.strftime("%Y%m%d"), int(end.timestamp())


def whole_seconds(seconds: float) -> int:
    """A delay as HTTP gives it (`Retry-After`, `t=`): whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds))
