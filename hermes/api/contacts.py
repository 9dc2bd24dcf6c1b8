"""`/v1/contacts/{external_id}`: the tenant's contact book, addresses stored normalised.

Addresses go through the same core validation as a message's recipient (one
`validate_batch` call for the phone, email, WhatsApp number and every push token),
so a contact that is stored can always be sent to, and a string `to` that names it
resolves to exactly what a literal address would have become.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Response, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from hermes import _core
from hermes.api.ingest import now_ms
from hermes.bootstrap import Container
from hermes.domain.compliance import QuietHours, check_window
from hermes.domain.errors import Code, FieldError, HermesError
from hermes.domain.plan import Contact
from hermes.domain.tenancy import Principal
from hermes.infra.postgres.contacts import ContactRecord

MAX_EXTERNAL_ID = 255
MAX_PUSH_TOKENS = 20
# BCP 47 in the shape browsers and CLDR use: language, then optional script/region/variants.
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|\d{3}))?"
                     r"(?:-(?:[A-Za-z\d]{5,8}|\d[A-Za-z\d]{3}))*$")


class ContactPut(msgspec.Struct, forbid_unknown_fields=True):
    """A contact's addresses and preferences; a PUT replaces all of them."""

    phone: str | None = None
    email: str | None = None
    push_tokens: list[str] = msgspec.field(default_factory=list)
    whatsapp: str | None = None
    locale: str | None = None
    timezone: str | None = None
    # The contact's own quiet hours, in place of the tenant's (`timezone` optional: the
    # contact's `timezone` applies first).
    quiet_hours: QuietHours | None = None


class ContactView(msgspec.Struct):
    external_id: str
    object: str
    phone: str | None
    email: str | None
    push_tokens: list[str]
    whatsapp: str | None
    locale: str | None
    timezone: str | None
    quiet_hours: QuietHours | None
    created_at: datetime
    updated_at: datetime


# A dummy content and one step per address, so the core checks just the addresses.
_STEP = {"phone": "sms", "email": "email", "push_token": "push", "whatsapp": "whatsapp"}


def _view(r: ContactRecord) -> ContactView:
    c = r.contact
    return ContactView(external_id=c.external_id, object="contact", phone=c.phone,
                       email=c.email, push_tokens=list(c.push_tokens), whatsapp=c.whatsapp,
                       locale=c.locale, timezone=c.timezone,
                       quiet_hours=None if c.quiet_hours is None
                       else msgspec.convert(c.quiet_hours, QuietHours),
                       created_at=r.created_at, updated_at=r.updated_at)


def _check_external_id(external_id: str) -> None:
    if not external_id or len(external_id) > MAX_EXTERNAL_ID or not external_id.isprintable():
        raise HermesError(Code.REQUEST_INVALID,
                          f"an external id is 1-{MAX_EXTERNAL_ID} printable characters",
                          errors=[FieldError(Code.REQUEST_INVALID, "external_id", None)])


def _core_item(**address: str) -> dict[str, Any]:
    steps = [{"channel": _STEP[k], "timeout_ms": 30_000} for k in address]
    return {**address, "body": "x", "subject": "x", "push_title": "x", "steps": steps}


def normalise(external_id: str, body: ContactPut) -> Contact:
    """The contact with E.164 numbers, a punycode lowercase email domain and checked tokens."""
    errors: list[FieldError] = []
    if len(body.push_tokens) > MAX_PUSH_TOKENS:
        errors.append(FieldError(Code.REQUEST_INVALID, "push_tokens",
                                 f"at most {MAX_PUSH_TOKENS} push tokens"))
    main = {k: v for k, v in (("phone", body.phone), ("email", body.email),
                              ("whatsapp", body.whatsapp)) if v is not None}
    items = [_core_item(**main)] + [_core_item(push_token=t) for t in body.push_tokens]
    results = _core.validate_batch(items, None, now_ms())
    for i, result in enumerate(results):
        for v in result.violations:
            name = v["field"].removeprefix("to.")
            if name == "push_token" and i > 0:
                errors.append(FieldError(v["code"], f"push_tokens[{i - 1}]", v["detail"]))
            elif name in main:
                errors.append(FieldError(v["code"], name, v["detail"]))
    if body.locale is not None and not _LOCALE.match(body.locale):
        errors.append(FieldError(Code.REQUEST_INVALID, "locale",
                                 f"{body.locale!r} is not a BCP 47 language tag like 'da-DK'"))
    if body.timezone is not None and not _is_zone(body.timezone):
        errors.append(FieldError(Code.REQUEST_INVALID, "timezone",
                                 f"{body.timezone!r} is not an IANA time zone like "
                                 "'Europe/Copenhagen'"))
    if body.quiet_hours is not None:
        try:
            check_window(body.quiet_hours, "quiet_hours")
        except HermesError as exc:
            errors += exc.errors
    if errors:
        detail = errors[0].detail if len(errors) == 1 else f"{len(errors)} problems; see errors"
        raise HermesError(errors[0].code, detail, errors=errors)
    first = results[0]
    tokens = [r.push_token["token"] for r in results[1:] if r.push_token is not None]
    return Contact(
        external_id=external_id,
        phone=first.phone["e164"] if first.phone else None,
        email=first.email,
        push_tokens=list(dict.fromkeys(tokens)),
        whatsapp=first.whatsapp["e164"] if first.whatsapp else None,
        locale=body.locale,
        timezone=body.timezone,
        quiet_hours=None if body.quiet_hours is None else msgspec.to_builtins(body.quiet_hours),
    )


def _is_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _not_found(external_id: str) -> HermesError:
    return HermesError(Code.REQUEST_NOT_FOUND, f"no contact {external_id!r}")


class ContactsController(Controller):
    path = "/v1/contacts"
    tags = ["contacts"]

    @put("/{external_id:str}", summary="Create or replace a contact",
         description="201 when created, 200 when replaced. Addresses are stored normalised.")
    async def put_contact(self, external_id: FromPath[str], data: JSONBody[ContactPut],
                          principal: NamedDependency[Principal],
                          container: NamedDependency[Container]) -> Response[ContactView]:
        _require(principal, "send")
        _check_external_id(external_id)
        contact = normalise(external_id, data)
        record = await container.contacts.put_record(principal.tenant_id, contact)
        return Response(_view(record), status_code=201 if record.created else 200)

    @get("/{external_id:str}", summary="A contact")
    async def get_contact(self, external_id: FromPath[str],
                          principal: NamedDependency[Principal],
                          container: NamedDependency[Container]) -> ContactView:
        _require(principal, "read")
        record = await container.contacts.get_record(principal.tenant_id, external_id)
        if record is None:
            raise _not_found(external_id)
        return _view(record)

    @delete("/{external_id:str}", status_code=204, summary="Delete a contact")
    async def delete_contact(self, external_id: FromPath[str],
                             principal: NamedDependency[Principal],
                             container: NamedDependency[Container]) -> None:
        _require(principal, "send")
        if not await container.contacts.delete(principal.tenant_id, external_id):
            raise _not_found(external_id)


def _require(principal: Principal, scope: str) -> None:
    if not principal.allows(scope):
        verb = "change" if scope == "send" else "read"
        raise HermesError(Code.AUTH_FORBIDDEN, f"this API key may not {verb} contacts")
