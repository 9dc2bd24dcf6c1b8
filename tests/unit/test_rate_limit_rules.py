"""Layer 8's pure parts: the RateLimit headers, 429 problems, provider accounts' rates."""

from __future__ import annotations

import random
import uuid

import pytest

from hermes.api.limits import Refused, headers, limits_for
from hermes.delivery.throttle import MAX_DELAY_S, account_limits, delay
from hermes.domain.limits import Decision, Limits, day_of, whole_seconds
from hermes.domain.tenancy import Principal, TenantLimits
from hermes.settings import Settings


def _decision(limits: Limits, **changes: object) -> Decision:
    base: dict[str, object] = dict(allowed=True, refused_by=None, limits=limits, remaining=7,
                                   full_in_s=0.3, retry_after_s=0.0, quota_used=40,
                                   quota_reset_s=3600.2)
    return Decision(**{**base, **changes})  # type: ignore[arg-type]


def test_headers_name_both_policies_in_the_draft_syntax() -> None:
    h = headers(_decision(Limits(rate_per_s=10, burst=25, daily_quota=100)))
    assert h == {"RateLimit-Policy": '"rate";q=25;w=3, "daily";q=100;w=86400',
                 "RateLimit": '"rate";r=7;t=1, "daily";r=60;t=3601'}


def test_headers_leave_out_what_is_not_limited_and_what_was_not_checked() -> None:
    assert headers(_decision(Limits(rate_per_s=0, burst=1, daily_quota=5))) == {
        "RateLimit-Policy": '"daily";q=5;w=86400', "RateLimit": '"daily";r=0;t=3601'}
    assert headers(_decision(Limits(rate_per_s=5, burst=5), degraded=True)) == {}
    assert headers(None) == {}


def test_a_refusal_carries_retry_after_in_whole_seconds() -> None:
    limits = Limits(rate_per_s=10, burst=20)
    refused = Refused(_decision(limits, allowed=False, refused_by="rate", remaining=0,
                                retry_after_s=0.05), cost=1)
    assert refused.code == "rate_limit.exceeded" and refused.status == 429
    assert refused.headers["Retry-After"] == "1"  # never 0
    assert refused.extra == {"retry_after": 1, "violated-policies": ["rate"]}
    quota = Refused(_decision(Limits(0, 1, 10), allowed=False, refused_by="quota",
                              quota_used=10, quota_reset_s=7199.5), cost=3)
    assert quota.code == "quota.exceeded" and quota.headers["Retry-After"] == "7200"
    assert quota.extra["violated-policies"] == ["daily"]


def test_a_tenants_own_limits_override_the_settings_one_by_one() -> None:
    settings = Settings(rate_limit_per_s=100, rate_limit_burst=200, daily_quota=0)
    principal = Principal(tenant_id=uuid.uuid4(), tenant_name="t", key_id=uuid.uuid4(),
                          mode="live", scopes=("send",),
                          limits=TenantLimits(burst=5, daily_quota=1000))
    assert limits_for(principal, settings) == Limits(rate_per_s=100, burst=5, daily_quota=1000)


def test_utc_days_and_whole_seconds() -> None:
    assert day_of(86_400 * 3 - 1) == ("19700103", 86_400 * 3)
    assert day_of(86_400 * 3) == ("19700104", 86_400 * 4)
    assert [whole_seconds(s) for s in (0, 0.001, 1.0, 1.01)] == [1, 1, 1, 2]


@pytest.mark.parametrize(("config", "expected"), [
    ({}, None),
    ({"rate_limit_per_s": 0}, None),
    ({"rate_limit_per_s": "10"}, None),
    ({"rate_limit_per_s": True}, None),
    ({"rate_limit_per_s": 0.5}, Limits(rate_per_s=0.5, burst=1)),
    ({"rate_limit_per_s": 30}, Limits(rate_per_s=30.0, burst=30)),
    ({"rate_limit_per_s": 30, "rate_limit_burst": 5}, Limits(rate_per_s=30.0, burst=5)),
    ({"rate_limit_per_s": 30, "rate_limit_burst": 0}, Limits(rate_per_s=30.0, burst=30)),
])
def test_an_accounts_rate_comes_from_its_config(config: dict[str, object],
                                                 expected: Limits | None) -> None:
    assert account_limits(config) == expected


def test_a_throttled_job_waits_longer_each_time_up_to_a_bound() -> None:
    rng = random.Random(7)
    first = [delay(0.2, 1, rng) for _ in range(50)]
    assert all(0.2 <= d <= 0.3 for d in first)
    third = [delay(0.2, 3, rng) for _ in range(50)]
    assert all(0.8 <= d <= 1.2 for d in third)
    assert all(d <= MAX_DELAY_S * 1.5 for d in (delay(0.2, n, rng) for n in range(1, 40)))
    assert delay(0.0, 1, rng) >= 0.05  # never a zero delay that would spin
