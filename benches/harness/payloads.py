"""Request bodies, built once before a run so the load generator only sends bytes."""

from __future__ import annotations

import json

import phonenumbers


def phones(suffix: str, count: int) -> list[str]:
    """Distinct valid Danish mobile numbers ending in `suffix` (the sandbox's magic digits)."""
    out = []
    for d in range(100, 1000):
        number = f"+452{d:03d}{suffix}"
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            out.append(number)
        if len(out) == count:
            break
    return out


def seed_message(phone: str, i: int) -> dict[str, object]:
    """The seed's shape: an SMS that falls back to email, then push."""
    return {"to": {"phone": phone, "email": f"user{i}@example.com",
                   "push_token": f"{i:08x}" * 8},
            "body": "Your order has shipped", "cascade": ["sms", "email", "push"],
            "timeout_per_step": "30s"}


def first_step_succeeds(phone: str, i: int) -> dict[str, object]:
    """One SMS step to a number the sandbox delivers (ends in 0001)."""
    return {"to": {"phone": phone}, "body": f"Your code is {i % 1_000_000:06d}",
            "steps": [{"channel": "sms", "timeout": "30s"}]}


def falls_through(phone: str, i: int) -> dict[str, object]:
    """SMS to a number never confirmed (ends in 0003) for 1 s, then an email delivered."""
    return {"to": {"phone": phone, "email": f"user{i}@example.com"},
            "body": "Your order has shipped",
            "steps": [{"channel": "sms", "timeout": "1s"}, {"channel": "email", "timeout": "20s"}]}


def singles(kind: str, count: int = 256) -> list[str]:
    build = {"seed": seed_message, "first": first_step_succeeds, "fallthrough": falls_through}[kind]
    suffix = "0003" if kind == "fallthrough" else "0001"
    nums = phones(suffix, 64)
    return [json.dumps(build(nums[i % len(nums)], i)) for i in range(count)]


def batches(kind: str, size: int, count: int = 8) -> list[str]:
    items = singles(kind, size * count)
    return ['{"messages":[' + ",".join(items[b * size:(b + 1) * size]) + "]}"
            for b in range(count)]
