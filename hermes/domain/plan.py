"""From `MessageCreate` to the core's validation input and, once valid, a `MessageSpec`.

Pure functions: no I/O, `now_ms` is an argument. The core validates (layers 3-6);
this module only reshapes, and reports the shape errors the core cannot see
(both `cascade` and `steps`, an unparsable duration).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

import msgspec

from hermes.domain.errors import FieldError
from hermes.domain.messages import (
    DEFAULT_SUCCESS,
    DEFAULT_TIMEOUT_MS,
    Address,
    Channel,
    Content,
    DurationError,
    MessageCreate,
    MessageSpec,
    SmsInfo,
    StepSpec,
    SuccessCriterion,
    duration_ms,
)


class Contact(msgspec.Struct, frozen=True):
    external_id: str
    phone: str | None = None
    email: str | None = None
    push_tokens: list[str] = msgspec.field(default_factory=list)
    whatsapp: str | None = None
    locale: str | None = None
    timezone: str | None = None
    # The contact's own quiet hours (`{"start", "end"[, "timezone"]}`), in place of the
    # tenant's; None: the tenant's apply.
    quiet_hours: dict[str, str] | None = None

    def address(self) -> Address:
        return Address(phone=self.phone, email=self.email,
                       push_token=self.push_tokens[0] if self.push_tokens else None,
                       whatsapp=self.whatsapp)


class Draft(msgspec.Struct, frozen=True):
    """A request reshaped for the core, with the errors found on the way."""

    core_input: dict[str, Any]
    steps: list[tuple[str, int | None, SuccessCriterion | None, str | None]]
    address: Address
    errors: list[FieldError]


def _ms(dt: datetime | None) -> int | None:
    return None if dt is None else int(dt.timestamp() * 1000)


def draft(req: MessageCreate, contact: Contact | None) -> Draft:
    errors: list[FieldError] = []
    address = contact.address() if contact is not None else (
        req.to if isinstance(req.to, Address) else Address())

    steps: list[tuple[str, int | None, SuccessCriterion | None, str | None]] = []
    if req.steps is not None and req.cascade is not None:
        errors.append(FieldError("request.invalid", "cascade",
                                 "give either `cascade` or `steps`, not both"))
    if req.steps is not None:
        for i, s in enumerate(req.steps):
            steps.append((s.channel, _timeout(s.timeout, f"steps[{i}].timeout", errors),
                          s.success, s.provider))
        if req.timeout_per_step is not None:
            errors.append(FieldError("request.invalid", "timeout_per_step",
                                     "`timeout_per_step` goes with `cascade`; give each step "
                                     "its own `timeout`"))
    else:
        per_step = _timeout(req.timeout_per_step, "timeout_per_step", errors)
        for channel in req.cascade or ["sms"]:
            steps.append((channel, per_step, None, None))

    data = None
    if req.data is not None:
        data = msgspec.json.encode(req.data).decode()
    core_input: dict[str, Any] = {
        "phone": address.phone,
        "email": address.email,
        "push_token": address.push_token,
        "whatsapp": address.whatsapp,
        "body": req.body,
        "subject": req.subject,
        "html": req.html,
        "push_title": req.title,
        "push_data": data,
        "steps": [{"channel": c, "timeout_ms": t if t is not None else DEFAULT_TIMEOUT_MS}
                  for c, t, _, _ in steps],
        "send_at_ms": _ms(req.send_at),
        "expires_at_ms": _ms(req.expires_at),
    }
    return Draft(core_input=core_input, steps=steps, address=address, errors=errors)


def _timeout(value: str | int | float | None, field: str, errors: list[FieldError]) -> int | None:
    if value is None:
        return None
    try:
        return duration_ms(value)
    except DurationError as exc:
        errors.append(FieldError("cascade.timeout_out_of_range", field, str(exc)))
        return None


def spec_from(req: MessageCreate, d: Draft, normalised: Mapping[str, Any],
              contact: Contact | None) -> MessageSpec:
    """Build the stored spec from a request the core found valid."""
    phone = cast("Mapping[str, Any] | None", normalised.get("phone"))
    whatsapp = cast("Mapping[str, Any] | None", normalised.get("whatsapp"))
    push = cast("Mapping[str, Any] | None", normalised.get("push_token"))
    sms = cast("Mapping[str, Any] | None", normalised.get("sms"))
    to = Address(
        phone=phone["e164"] if phone else None,
        email=cast("str | None", normalised.get("email")),
        push_token=push["token"] if push else None,
        whatsapp=whatsapp["e164"] if whatsapp else None,
    )
    steps = [
        StepSpec(channel=cast(Channel, c),
                 timeout_ms=t if t is not None else DEFAULT_TIMEOUT_MS,
                 success=s or DEFAULT_SUCCESS[c], provider=p)
        for c, t, s, p in d.steps
    ]
    return MessageSpec(
        to=to,
        content=Content(body=req.body, subject=req.subject, html=req.html, title=req.title,
                        data=req.data, template=req.template),
        steps=steps,
        send_at_ms=_ms(req.send_at),
        expires_at_ms=_ms(req.expires_at),
        contact=contact.external_id if contact else None,
        country=(phone or whatsapp or {}).get("country"),
        sms=SmsInfo(encoding=sms["encoding"], segments=sms["segments"],
                    characters=sms["characters"]) if sms else None,
    )
