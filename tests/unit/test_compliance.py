"""Validation layer 7's pure part: quiet-hours windows and dropping suppressed steps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hermes.domain.compliance import (
    QuietHours,
    defer_for_quiet_hours,
    drop_suppressed,
    normalise,
    window_end,
)
from hermes.domain.errors import HermesError
from hermes.domain.messages import Address, Content, MessageSpec, StepSpec
from hermes.providers.opt_outs import keyword, receipt_reason

NIGHT = QuietHours(start="21:00", end="08:00", timezone="Europe/Copenhagen")
LUNCH = QuietHours(start="12:00", end="14:00", timezone="Europe/Copenhagen")


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def iso(at_ms: int | None) -> str | None:
    if at_ms is None:
        return None
    return datetime.fromtimestamp(at_ms / 1000, UTC).isoformat()


@pytest.mark.parametrize(("at", "until"), [
    # Winter, CET (+01:00): 22:00 local is inside; the window ends at 08:00 the next morning.
    ("2026-01-14T22:00:00+01:00", "2026-01-15T07:00:00+00:00"),
    # After midnight, still inside: the same morning.
    ("2026-01-15T03:30:00+01:00", "2026-01-15T07:00:00+00:00"),
    # The window's first minute is inside, its end is not.
    ("2026-01-14T21:00:00+01:00", "2026-01-15T07:00:00+00:00"),
    ("2026-01-15T08:00:00+01:00", None),
    ("2026-01-15T12:00:00+01:00", None),
    # The night the clocks go forward (29 March 2026, 02:00 -> 03:00): 08:00 is CEST,
    # 06:00 UTC, not the 07:00 UTC that "ten hours later" would give.
    ("2026-03-28T22:00:00+01:00", "2026-03-29T06:00:00+00:00"),
    # The night they go back (25 October 2026): 08:00 CET is 07:00 UTC.
    ("2026-10-24T22:00:00+02:00", "2026-10-25T07:00:00+00:00"),
])
def test_a_window_across_midnight_ends_at_its_local_end(at: str, until: str | None) -> None:
    assert iso(window_end(ms(at), NIGHT, "Europe/Copenhagen")) == until


def test_a_same_day_window_and_another_zone() -> None:
    assert iso(window_end(ms("2026-06-01T12:30:00+02:00"), LUNCH, "Europe/Copenhagen")) == \
        "2026-06-01T12:00:00+00:00"
    assert window_end(ms("2026-06-01T14:00:00+02:00"), LUNCH, "Europe/Copenhagen") is None
    # 22:00 in Copenhagen is 13:00 in Los Angeles: outside the night window there.
    assert window_end(ms("2026-01-14T22:00:00+01:00"), NIGHT, "America/Los_Angeles") is None


def spec(send_at: int | None = None, expires_at: int | None = None) -> MessageSpec:
    return MessageSpec(
        to=Address(phone="+4520123456", email="ada@example.com"), content=Content(body="x"),
        steps=[StepSpec(channel="sms", timeout_ms=30_000, success="delivered"),
               StepSpec(channel="email", timeout_ms=30_000, success="delivered")],
        send_at_ms=send_at, expires_at_ms=expires_at)


def test_deferral_respects_a_later_send_at_and_refuses_to_expire_a_message_unsent() -> None:
    now = ms("2026-01-14T22:00:00+01:00")
    deferred, why = defer_for_quiet_hours(spec(), NIGHT, None, now)
    assert iso(deferred.send_at_ms) == "2026-01-15T07:00:00+00:00"
    assert why is not None and why.timezone == "Europe/Copenhagen"
    later = ms("2026-01-15T10:00:00+01:00")
    kept, why = defer_for_quiet_hours(spec(send_at=later), NIGHT, None, now)
    assert kept.send_at_ms == later and why is None
    with pytest.raises(HermesError) as exc:
        defer_for_quiet_hours(spec(expires_at=ms("2026-01-15T06:00:00+01:00")), NIGHT, None, now)
    assert exc.value.code == "cascade.expires_in_past"


def test_suppressed_steps_are_dropped_and_all_suppressed_is_refused() -> None:
    kept = drop_suppressed(spec(), {("phone", "+4520123456")})
    assert [s.channel for s in kept.steps] == ["email"]
    assert [(s.step, s.channel, s.reason) for s in kept.skipped] == [(0, "sms", "suppressed")]
    # A WhatsApp opt-out is not an SMS opt-out.
    assert drop_suppressed(spec(), {("whatsapp", "+4520123456")}) == spec()
    with pytest.raises(HermesError) as exc:
        drop_suppressed(spec(), {("phone", "+4520123456"), ("email", "ada@example.com")})
    assert exc.value.code == "compliance.suppressed" and exc.value.status == 422
    assert [e.field for e in exc.value.errors] == ["steps[0]", "steps[1]"]


def test_addresses_are_normalised_as_messages_are() -> None:
    assert normalise("phone", "+45 20 12 34 56") == "+4520123456"
    assert normalise("email", "Ada@Example.COM") == "Ada@example.com"
    with pytest.raises(HermesError) as exc:
        normalise("phone", "+4512345678")
    assert exc.value.code == "recipient.invalid_phone"
    with pytest.raises(HermesError):
        normalise("fax", "+4520123456")


@pytest.mark.parametrize(("body", "action"), [
    ("STOP", "stop"), (" stop\n", "stop"), ("StopAll", "stop"), ("unsubscribe", "stop"),
    ("cancel", "stop"), ("END", "stop"), ("quit", "stop"), ("START", "start"),
    ("unstop", "start"), ("stop please", None), ("Thanks!", None), ("", None),
])
def test_keywords_are_the_whole_trimmed_body_in_any_case(body: str, action: str | None) -> None:
    assert keyword(body) == action


@pytest.mark.parametrize(("receipt", "reason"), [
    ({"status": "bounced", "provider_error_code": "Permanent/General"}, "hard_bounce"),
    ({"status": "bounced", "provider_error_code": "Transient/MailboxFull"}, None),
    ({"status": "bounced", "provider_error_code": "Undetermined"}, None),
    ({"status": "complained", "provider_error_code": "abuse"}, "complaint"),
    ({"status": "delivered"}, None),
])
def test_only_permanent_bounces_and_complaints_suppress(receipt: dict[str, str],
                                                        reason: str | None) -> None:
    assert receipt_reason(receipt) == reason
