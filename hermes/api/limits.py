"""Validation layer 8: the tenant's rate limit and daily quota, and the headers that show them.

Each tenant has a token bucket of messages and a count of messages per UTC day,
in Redis, apart for its test and live keys (as Stripe keeps them): a load test in
test mode never slows production. A message costs one token and counts one; a
batch costs as many as it commits, all or nothing: if the bucket or the day's
quota cannot cover the whole batch, none of it is committed and the answer is
429. That keeps a retry simple: send the same request again after `Retry-After`.

Layer 8 runs after layers 1-7 (a request refused by them costs nothing) and
before the commit. The idempotency check (layer 9) is the commit's unique index,
so a replay is only known after the token was taken; it is then given back. A
request the limiter refuses that carries an `Idempotency-Key` already committed
is answered with its replay: a replay is never refused.

If Redis does not answer, requests are admitted without a check (fail open) and
without RateLimit headers, and a warning is logged: a limiter outage must not
stop message intake.
"""

from __future__ import annotations

import math

from hermes.bootstrap import Container
from hermes.domain.errors import Code, FieldError, HermesError
from hermes.domain.limits import DAY_S, Decision, Limits, whole_seconds
from hermes.domain.tenancy import Principal
from hermes.settings import Settings


class Refused(HermesError):
    """429: the bucket or the day's quota cannot cover the request."""

    def __init__(self, decision: Decision, cost: int) -> None:
        limits = decision.limits
        if decision.refused_by == "quota":
            code, retry, policy = Code.QUOTA_EXCEEDED, decision.quota_reset_s, "daily"
            detail = (f"the daily quota of {limits.daily_quota} messages is used up "
                      f"({decision.quota_remaining} left, this request needs {cost}); "
                      "it resets at 00:00 UTC")
        else:
            code, retry, policy = Code.RATE_LIMIT_EXCEEDED, decision.retry_after_s, "rate"
            detail = (f"more than {_rate(limits.rate_per_s)} messages per second (bursts up "
                      f"to {limits.burst}); this request needs {cost}, "
                      f"{decision.remaining} are available now")
        seconds = whole_seconds(retry)
        super().__init__(code, detail, headers={"Retry-After": str(seconds), **headers(decision)},
                         extra={"retry_after": seconds, "violated-policies": [policy]})
        self.decision = decision


def limits_for(principal: Principal, settings: Settings) -> Limits:
    """The tenant's own limits where it has them, else the platform's."""
    own = principal.limits
    return Limits(
        rate_per_s=settings.rate_limit_per_s if own.rate_per_s is None else own.rate_per_s,
        burst=settings.rate_limit_burst if own.burst is None else own.burst,
        daily_quota=settings.daily_quota if own.daily_quota is None else own.daily_quota,
    )


def partition(principal: Principal) -> str:
    return f"tenant:{principal.tenant_id}:{principal.mode}"


async def admit(container: Container, principal: Principal, cost: int) -> Decision | None:
    """Take `cost` messages from the tenant's bucket and quota, or raise `Refused` (429).

    None when there is no limiter (unit-test containers) or no limit. A request that
    could never pass (more than the burst or the whole quota) is `request.too_large`.
    """
    limits = limits_for(principal, container.settings)
    if container.limiter is None or limits.unlimited:
        return None
    _check_size(limits, cost)
    decision = await container.limiter.take(partition(principal), limits, cost)
    if not decision.allowed:
        raise Refused(decision, cost)
    return decision


async def give_back(container: Container, principal: Principal, cost: int) -> Decision | None:
    """Return `cost` messages taken for a request that did not commit them (a replay, an
    error); with cost 0, the current state, for the headers."""
    limits = limits_for(principal, container.settings)
    if container.limiter is None or limits.unlimited:
        return None
    return await container.limiter.take(partition(principal), limits, -cost)


def _check_size(limits: Limits, cost: int) -> None:
    if limits.rate_per_s > 0 and cost > limits.burst:
        cap, what = limits.burst, "burst"
    elif limits.daily_quota > 0 and cost > limits.daily_quota:
        cap, what = limits.daily_quota, "daily quota"
    else:
        return
    raise HermesError(Code.REQUEST_TOO_LARGE,
                      f"{cost} messages in one request; this tenant's {what} is {cap}",
                      errors=[FieldError(Code.REQUEST_TOO_LARGE, "messages",
                                         f"send at most {cap} messages per request")])


def headers(decision: Decision | None) -> dict[str, str]:
    """`RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).

    The policy "rate" is the bucket: `q` messages (the burst) per `w` seconds (the time
    the bucket takes to refill from empty), which is the sustained rate; "daily" is the
    quota per UTC day. In `RateLimit`, `r` is what is left and `t` the seconds until the
    bucket is full again, or until the day ends. No headers when nothing was checked.
    """
    if decision is None or decision.degraded:
        return {}
    limits = decision.limits
    policies, states = [], []
    if limits.rate_per_s > 0:
        window = whole_seconds(limits.burst / limits.rate_per_s)
        policies.append(f'"rate";q={limits.burst};w={window}')
        states.append(f'"rate";r={decision.remaining};t={math.ceil(decision.full_in_s)}')
    if limits.daily_quota > 0:
        policies.append(f'"daily";q={limits.daily_quota};w={DAY_S}')
        states.append(f'"daily";r={decision.quota_remaining};'
                      f't={whole_seconds(decision.quota_reset_s)}')
    if not policies:
        return {}
    return {"RateLimit-Policy": ", ".join(policies), "RateLimit": ", ".join(states)}


def _rate(rate_per_s: float) -> str:
    return f"{rate_per_s:g}"
