"""The realistic mix: every message is an SMS-then-email cascade (SMS step 2 s, email 3 s),
and the recipient decides, through the sandbox's magic numbers, how it goes:

| class | share | recipient | expected final outcome |
|---|---:|---|---|
| sms-delivered | 70% | phone ending 0001 | delivered by SMS |
| fallthrough-email | 15% | phone ending 0003 (never confirmed), any email | delivered by email |
| failover | 10% | own phone, scripted: HTTP 500 once | delivered by the 2nd SMS provider |
| never-confirmed | 5% | phone ending 0003, `noreceipt@` email | `accepted`: both steps timed out |

"Failover": the first SMS provider (Twilio) answers 500 and Hermes fails over to the
second (Messente) within the same step. Open loop at a fixed rate; each message's body is
built before the run (one per send, so every failover recipient is scripted for exactly
one 500).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import phonenumbers

from benches.harness import cascades, payloads
from benches.harness.deploy import Deployment

# Of each 20 messages: 14 SMS delivered, 3 fall through, 2 fail over, 1 never confirmed.
PATTERN = (["sms-delivered"] * 14 + ["fallthrough-email"] * 3 + ["failover"] * 2
           + ["never-confirmed"])
SHARES = {c: PATTERN.count(c) / len(PATTERN) for c in dict.fromkeys(PATTERN)}
# The outcome each class must end with, as the receiver names it (outcome via channels).
EXPECTED = {"sms-delivered": "delivered via sms", "fallthrough-email": "delivered via sms+email",
            "failover": "delivered via sms+sms", "never-confirmed": "accepted via sms+email"}
STEPS = [{"channel": "sms", "timeout": "2s"}, {"channel": "email", "timeout": "3s"}]


def unique_phones(count: int) -> list[str]:
    """Distinct valid Danish mobile numbers whose last four digits are no magic suffix."""
    out: list[str] = []
    if count == 0:
        return out
    for prefix in range(100, 1000):
        for last in range(1000, 10000):
            number = f"+452{prefix:03d}{last:04d}"
            if not phonenumbers.is_valid_number(phonenumbers.parse(number)):
                break  # validity goes by the leading digits: try the next prefix
            if len(out) == count:
                return out
            out.append(number)
    if len(out) == count:
        return out
    raise ValueError(f"only {len(out)} numbers")


def bodies(count: int) -> tuple[list[str], list[str], list[str]]:
    """(bodies, the class of each, the failover recipients to script)."""
    delivered, never = payloads.phones("0001", 64), payloads.phones("0003", 64)
    classes = [PATTERN[i % len(PATTERN)] for i in range(count)]
    failover = unique_phones(classes.count("failover"))
    out, used = [], 0
    for i, c in enumerate(classes):
        to: dict[str, str] = {"email": f"user{i}@example.com"}
        if c == "sms-delivered":
            to["phone"] = delivered[i % len(delivered)]
        elif c == "failover":
            to["phone"], used = failover[used], used + 1
        else:
            to["phone"] = never[i % len(never)]
            if c == "never-confirmed":
                to["email"] = f"noreceipt+{i}@example.com"
        out.append(json.dumps({"to": to, "body": f"Your code is {i % 1_000_000:06d}",
                               "steps": STEPS}))
    return out, classes, failover


def run(seconds: float, *, rate: float = 150.0, clients: int = 32, drain_s: float = 120.0,
        keep_logs: bool = False, profile: Path | None = None) -> dict[str, Any]:
    count = math.ceil(rate * seconds) + clients
    texts, classes, failover = bodies(count)
    with Deployment(keep_logs=keep_logs) as d:
        sandbox = d.start_sandbox()
        api = d.start_api()
        d.start_worker()
        receiver = d.start_receiver()
        with httpx.Client(timeout=10) as http:
            for phone in failover:
                http.post(f"{sandbox}/_sandbox/outcomes",
                          json={"recipient": phone, "outcomes": ["server_error"]}
                          ).raise_for_status()
        figures = cascades.measure(
            d, api, "mix", headers=cascades.hermes_tenant(d, receiver), clients=clients,
            seconds=seconds, rate=rate, drain_s=drain_s, bodies=texts, classes=classes,
            label=f"hermes mix @{rate:g}/s")
    checks = {}
    for c, expected in EXPECTED.items():
        got = figures["outcomes_by_class"].get(c, {})
        checks[c] = {"expected": expected, "sent": sum(got.values()),
                     "as_expected": got.get(expected, 0),
                     "otherwise": {k: v for k, v in got.items() if k != expected}}
    figures["checks"] = checks
    figures["as_expected"] = all(not v["otherwise"] for v in checks.values())
    # As for e2e: every class as expected, final webhooks at 90% of the offered rate while
    # the load ran, and no backlog (the longest class takes both timeouts, 5 s).
    figures["sustained"] = bool(
        figures["as_expected"] and figures["finished"] == figures["accepted"]
        and figures["cascades_per_s_during_load"] >= 0.9 * rate
        and figures["last_final_after_load_s"] <= 5.0 + 2.0)
    return {"scenario": "mix", "rate": rate, "clients": clients, "seconds": seconds,
            "shares": SHARES, "kinds": {"mix": figures}}
