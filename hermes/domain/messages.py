"""The message as the API takes it (`MessageCreate`) and as Hermes keeps it (`MessageSpec`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

import msgspec

Channel = Literal["sms", "email", "push", "whatsapp"]
SuccessCriterion = Literal["accepted", "delivered", "read"]
CHANNELS: tuple[Channel, ...] = ("sms", "email", "push", "whatsapp")

# A duration is "30s", "1500ms", "5m", "2h" or a number of seconds.
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, None: 1000}


class DurationError(ValueError):
    pass


def duration_ms(value: str | int | float) -> int:
    if isinstance(value, bool):
        raise DurationError("a duration is a number of seconds or a string like '30s'")
    if isinstance(value, int | float):
        if value < 0:
            raise DurationError("a duration cannot be negative")
        return round(value * 1000)
    m = _DURATION.match(value)
    if not m:
        raise DurationError(f"{value!r} is not a duration; use for example '30s', '5m', '1h'")
    return round(float(m.group(1)) * _UNIT_MS[m.group(2)])


class Address(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    phone: str | None = None
    email: str | None = None
    push_token: str | None = None
    whatsapp: str | None = None


class StepCreate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    channel: str
    timeout: str | int | float | None = None
    success: SuccessCriterion | None = None
    # A provider account id to try first in this step.
    provider: str | None = None


class Template(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A WhatsApp template message."""

    name: str
    language: str = "en_US"
    components: list[dict[str, Any]] = msgspec.field(default_factory=list)


class MessageCreate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """`POST /v1/messages`. `cascade` + `timeout_per_step` is shorthand for `steps`."""

    to: str | Address
    body: str | None = None
    cascade: list[str] | None = None
    timeout_per_step: str | int | float | None = None
    steps: list[StepCreate] | None = None
    subject: str | None = None
    html: str | None = None
    title: str | None = None
    data: dict[str, Any] | None = None
    template: Template | None = None
    send_at: datetime | None = None
    expires_at: datetime | None = None
    metadata: dict[str, str] | None = None
    # "ignore": send even inside the recipient's quiet hours (one-time codes, alerts).
    # By default a send that would start inside them waits for their end.
    quiet_hours: Literal["respect", "ignore"] = "respect"


class StepSpec(msgspec.Struct, frozen=True, omit_defaults=True):
    channel: Channel
    timeout_ms: int
    success: SuccessCriterion
    provider: str | None = None


class Content(msgspec.Struct, frozen=True, omit_defaults=True):
    body: str | None = None
    subject: str | None = None
    html: str | None = None
    title: str | None = None
    data: dict[str, Any] | None = None
    template: Template | None = None


class SmsInfo(msgspec.Struct, frozen=True):
    encoding: str
    segments: int
    characters: int


class SkippedStep(msgspec.Struct, frozen=True):
    """A step of the request left out of the plan (validation layer 7); `step` is its
    index in the request, `reason` is `suppressed`."""

    step: int
    channel: str
    reason: str


class MessageSpec(msgspec.Struct, frozen=True, omit_defaults=True):
    """What Hermes stores and the engine runs: validated and normalised."""

    to: Address
    content: Content
    steps: list[StepSpec]
    send_at_ms: int | None = None
    expires_at_ms: int | None = None
    contact: str | None = None
    country: str | None = None
    sms: SmsInfo | None = None
    skipped: list[SkippedStep] = msgspec.field(default_factory=list)


DEFAULT_SUCCESS: dict[str, SuccessCriterion] = {
    "sms": "delivered", "email": "delivered", "push": "accepted", "whatsapp": "delivered",
}
DEFAULT_TIMEOUT_MS = 30_000
