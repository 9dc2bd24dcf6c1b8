"""Validation layer 7, the pure part: suppressed steps and quiet hours.

No I/O and no clock: the API looks up the suppression list and the tenant's
window once per request, and these functions decide. Quiet hours only ever
delay a send (to the end of the window, in the recipient's time zone); they
never drop one.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Literal

import msgspec

from hermes import _core
from hermes.domain.errors import Code, FieldError, HermesError
from hermes.domain.messages import MessageSpec, SkippedStep

Kind = Literal["phone", "email", "push", "whatsapp"]
Reason = Literal["stop", "hard_bounce", "complaint", "manual"]
KINDS: tuple[Kind, ...] = ("phone", "email", "push", "whatsapp")
REASONS: tuple[Reason, ...] = ("stop", "hard_bounce", "complaint", "manual")
# The kind of address each channel sends to: an SMS opt-out does not silence WhatsApp.
KIND_OF_CHANNEL: dict[str, Kind] = {
    "sms": "phone", "email": "email", "push": "push", "whatsapp": "whatsapp"}

# Twilio's default opt-out and opt-in keywords: the whole body, trimmed, any case.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT",
                        "OPTOUT", "REVOKE"})
START_WORDS = frozenset({"START", "UNSTOP"})

_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
MAX_ADDRESS = 4096
# The address field and step channel the core validates each kind as.
_FIELD = {"phone": ("phone", "sms"), "email": ("email", "email"),
          "push": ("push_token", "push"), "whatsapp": ("whatsapp", "whatsapp")}


class QuietHours(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A daily window in local time, e.g. 21:00-08:00 (a window may cross midnight).

    `timezone` is the zone used for recipients without one of their own; a contact's
    `timezone` always wins.
    """

    start: Annotated[str, msgspec.Meta(pattern=_HHMM)]
    end: Annotated[str, msgspec.Meta(pattern=_HHMM)]
    timezone: str | None = None


def check_window(window: QuietHours, field: str) -> None:
    """The errors msgspec's schema cannot see: an empty window, an unknown zone."""
    errors = []
    if window.start == window.end:
        errors.append(FieldError(Code.REQUEST_INVALID, f"{field}.end",
                                 "start and end are the same time; set the field to null "
                                 "for no quiet hours"))
    if window.timezone is not None and not is_zone(window.timezone):
        errors.append(FieldError(Code.REQUEST_INVALID, f"{field}.timezone",
                                 f"{window.timezone!r} is not an IANA time zone like "
                                 "'Europe/Copenhagen'"))
    if errors:
        raise HermesError(Code.REQUEST_INVALID, errors[0].detail, errors=errors)


def normalise(kind: str, address: str) -> str:
    """The address as messages store it, or the problem a message to it would get."""
    if kind not in KINDS:
        raise HermesError(Code.REQUEST_INVALID, f"the kind is one of {', '.join(KINDS)}",
                          errors=[FieldError(Code.REQUEST_INVALID, "kind",
                                             f"{kind!r} is not a kind of address")])
    if not address or len(address) > MAX_ADDRESS:
        raise HermesError(Code.REQUEST_INVALID, "the address is empty or too long",
                          errors=[FieldError(Code.REQUEST_INVALID, "address", None)])
    field, channel = _FIELD[kind]
    item = {field: address, "body": "x", "subject": "x", "push_title": "x",
            "steps": [{"channel": channel, "timeout_ms": 30_000}]}
    result = _core.validate_message(item, None, 0)
    if result.violations:
        v = result.violations[0]
        raise HermesError(v["code"], v["detail"],
                          errors=[FieldError(v["code"], "address", v["detail"])])
    if kind == "phone" and result.phone is not None:
        return result.phone["e164"]
    if kind == "whatsapp" and result.whatsapp is not None:
        return result.whatsapp["e164"]
    if kind == "push" and result.push_token is not None:
        return result.push_token["token"]
    if kind == "email" and result.email is not None:
        return result.email
    raise HermesError(Code.REQUEST_INVALID, "the address could not be read",
                      errors=[FieldError(Code.REQUEST_INVALID, "address", None)])


def is_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _clock(hhmm: str) -> time:
    h, _, m = hhmm.partition(":")
    return time(int(h), int(m))


def window_end(at_ms: int, window: QuietHours, zone: str) -> int | None:
    """When the quiet window containing `at_ms` ends (Unix ms), or None if `at_ms` is outside.

    Local times are taken in `zone` on the day in question, so a DST change between
    the start and the end is handled: the end is that day's `end` on the wall clock.
    """
    tz = zoneinfo.ZoneInfo(zone)
    local = datetime.fromtimestamp(at_ms / 1000, tz)
    now = local.time().replace(tzinfo=None)
    start, end = _clock(window.start), _clock(window.end)
    if start < end:  # the same day, e.g. 12:00-14:00
        if not start <= now < end:
            return None
        day = local.date()
    else:  # across midnight, e.g. 21:00-08:00
        if end <= now < start:
            return None
        day = local.date() + timedelta(days=1) if now >= start else local.date()
    # A wall-clock time skipped by a DST jump resolves to the instant just after the jump.
    until = datetime.combine(day, end, tzinfo=tz)
    until_ms = int(until.astimezone(UTC).timestamp() * 1000)
    return until_ms if until_ms > at_ms else None


class Deferral(msgspec.Struct, frozen=True):
    """Why and until when a send waits: recorded on the message's timeline."""

    until: datetime
    timezone: str
    window: str


def defer_for_quiet_hours(spec: MessageSpec, window: QuietHours | None, zone: str | None,
                          now_ms: int) -> tuple[MessageSpec, Deferral | None]:
    """The spec with `send_at` moved to the end of the quiet window it would start in.

    A later explicit `send_at` is kept (unless it too falls inside a window). A message
    whose `expires_at` comes before the window ends is refused rather than left to expire
    unsent: the sender can mark it `"quiet_hours": "ignore"` or give it more time.
    """
    if window is None:
        return spec, None
    zone = zone or window.timezone or "UTC"
    start = max(now_ms, spec.send_at_ms or now_ms)
    until = window_end(start, window, zone)
    if until is None:
        return spec, None
    deferral = Deferral(until=datetime.fromtimestamp(until / 1000, UTC), timezone=zone,
                        window=f"{window.start}-{window.end}")
    if spec.expires_at_ms is not None and spec.expires_at_ms <= until:
        raise HermesError(
            Code.CASCADE_EXPIRES_IN_PAST,
            f"quiet hours ({deferral.window} {zone}) hold this message until "
            f"{deferral.until.isoformat()}, after its expires_at; send it with "
            '"quiet_hours": "ignore" or a later expires_at',
            errors=[FieldError(Code.CASCADE_EXPIRES_IN_PAST, "expires_at",
                               "before the end of the recipient's quiet hours")])
    return msgspec.structs.replace(spec, send_at_ms=until), deferral


def step_addresses(spec: MessageSpec) -> list[tuple[Kind, str] | None]:
    """The (kind, address) each step sends to, in step order."""
    to = spec.to
    by_channel = {"sms": to.phone, "email": to.email, "push": to.push_token,
                  "whatsapp": to.whatsapp}
    out: list[tuple[Kind, str] | None] = []
    for s in spec.steps:
        address = by_channel.get(s.channel)
        out.append((KIND_OF_CHANNEL[s.channel], address) if address else None)
    return out


def drop_suppressed(spec: MessageSpec, suppressed: set[tuple[str, str]]) -> MessageSpec:
    """The spec without the steps whose address is suppressed, noting each in `skipped`.

    Every step suppressed is `compliance.suppressed`, naming each step.
    """
    if not suppressed:
        return spec
    keep = []
    skipped = []
    for i, (step, target) in enumerate(zip(spec.steps, step_addresses(spec), strict=True)):
        if target is not None and target in suppressed:
            skipped.append(SkippedStep(step=i, channel=step.channel, reason="suppressed"))
        else:
            keep.append(step)
    if not skipped:
        return spec
    if not keep:
        errors = [FieldError(Code.COMPLIANCE_SUPPRESSED, f"steps[{s.step}]",
                             f"the {KIND_OF_CHANNEL[s.channel]} address of this {s.channel} "
                             "step is on the suppression list") for s in skipped]
        detail = errors[0].detail if len(errors) == 1 else \
            f"all {len(errors)} steps go to suppressed addresses; see errors"
        raise HermesError(Code.COMPLIANCE_SUPPRESSED, detail, errors=errors)
    return msgspec.structs.replace(spec, steps=keep, skipped=skipped)

