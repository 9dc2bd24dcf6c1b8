"""Accepting a message: layers 1 and 3-6 and 9 of validation, then a durable commit.

Layer 1 (wire size, schema) is msgspec; layer 2 (the key) is done before this
runs; 3-6 are one call into the core; 9 is the idempotency key, enforced by a
unique index so concurrent duplicates cannot both commit.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from hermes import _core
from hermes.domain.errors import Code, FieldError, HermesError
from hermes.domain.ids import shard_of, uuid7
from hermes.domain.messages import Address, MessageCreate, MessageSpec
from hermes.domain.plan import Contact, Draft, draft, spec_from
from hermes.domain.tenancy import Principal
from hermes.infra.postgres.messages import Inserted, NewMessage

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
DECODER = msgspec.json.Decoder(MessageCreate)
_ENCODER = msgspec.json.Encoder()
MAX_IDEMPOTENCY_KEY = 255


def decode_create(body: bytes) -> MessageCreate:
    """Layer 1: the body is JSON of the right shape, else a problem naming the field."""
    try:
        return DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise HermesError(Code.REQUEST_INVALID, str(exc),
                          errors=[FieldError(Code.REQUEST_INVALID, error_path(str(exc)),
                                             str(exc))]) from None
    except msgspec.DecodeError as exc:
        raise HermesError(Code.REQUEST_MALFORMED, str(exc)) from None


def error_path(message: str) -> str | None:
    m = _AT.search(message)
    if not m:
        return None
    return m.group("path").lstrip(".") or None


@dataclass(frozen=True)
class Accepted:
    id: str
    status: str
    created_at: datetime
    replayed: bool = False
    send_at: datetime | None = None


Validated = tuple[MessageCreate, MessageSpec] | HermesError


def validate_many(items: list[tuple[MessageCreate, Contact | None]], now_ms: int,
                  policy: dict[str, Any] | None = None) -> list[Validated]:
    """Layers 3-6 for many messages in one core call: per message, the request as
    reshaped for the core and its normalised spec, or its problem."""
    out: list[Validated | None] = [None] * len(items)
    drafts: list[tuple[int, MessageCreate, Draft, Contact | None]] = []
    for i, (req, contact) in enumerate(items):
        try:
            shaped, d = predraft(req, contact)
        except HermesError as exc:
            out[i] = exc
            continue
        drafts.append((i, shaped, d, contact))
    if drafts:
        results = _core.validate_batch([d.core_input for _, _, d, _ in drafts], policy, now_ms)
        for (i, shaped, d, contact), result in zip(drafts, results, strict=True):
            try:
                out[i] = (shaped, conclude(shaped, d, result, contact))
            except HermesError as exc:
                out[i] = exc
    return [r for r in out if r is not None]  # every item has its result by now


def predraft(req: MessageCreate, contact: Contact | None) -> tuple[MessageCreate, Draft]:
    """The request reshaped for the core (a batch validates all drafts in one call)."""
    if isinstance(req.to, str) and contact is None:
        req = _literal_recipient(req)
    req = _with_default_subject(req)
    return req, draft(req, contact)


def conclude(req: MessageCreate, d: Draft, result: _core.ValidationResult,
             contact: Contact | None) -> MessageSpec:
    """The normalised spec, or a problem with every violation the draft and the core found."""
    errors = list(d.errors)
    errors += [FieldError(v["code"], v["field"], v["detail"]) for v in result.violations]
    if errors:
        first = errors[0]
        detail = first.detail if len(errors) == 1 else f"{len(errors)} problems; see errors"
        raise HermesError(first.code, detail, errors=errors)
    return spec_from(req, d, result.to_dict(), contact)


def _literal_recipient(req: MessageCreate) -> MessageCreate:
    """A string `to` that is no contact may still be a phone number or an email address."""
    assert isinstance(req.to, str)
    to = req.to.strip()
    if to.startswith("+"):
        return msgspec.structs.replace(req, to=Address(phone=to))
    if "@" in to:
        return msgspec.structs.replace(req, to=Address(email=to))
    raise HermesError(Code.RECIPIENT_UNKNOWN_CONTACT, f"no contact {to!r}",
                      errors=[FieldError(Code.RECIPIENT_UNKNOWN_CONTACT, "to", None)])


def _with_default_subject(req: MessageCreate) -> MessageCreate:
    """An email step without a subject takes the body's first line, as a mail client would."""
    channels = [s.channel for s in req.steps] if req.steps is not None else (req.cascade or [])
    if req.subject is not None or "email" not in channels or not req.body:
        return req
    first = req.body.strip().splitlines()[0] if req.body.strip() else ""
    subject = first if len(first) <= 78 else first[:77] + "…"
    return msgspec.structs.replace(req, subject=subject or None)


def request_hash(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


def new_row(principal: Principal, spec: MessageSpec, req: MessageCreate, *, shard_count: int,
            idempotency_key: str | None, body_hash: bytes | None, now_ms: int) -> NewMessage:
    mid = uuid7(now_ms)
    send_at = _dt(spec.send_at_ms)
    scheduled = spec.send_at_ms is not None and spec.send_at_ms > now_ms
    return NewMessage(
        id=mid,
        tenant_id=principal.tenant_id,
        mode=principal.mode,
        status="scheduled" if scheduled else "queued",
        shard=shard_of(mid, shard_count),
        spec_json=_ENCODER.encode(spec).decode(),
        metadata_json=_ENCODER.encode(req.metadata or {}).decode(),
        idempotency_key=idempotency_key,
        idempotency_hash=body_hash if idempotency_key else None,
        send_at=send_at,
        expires_at=_dt(spec.expires_at_ms),
        next_deadline=send_at if scheduled else _dt(now_ms),
        event_json=_ENCODER.encode({"status": "scheduled" if scheduled else "queued"}).decode(),
        created_at=datetime.fromtimestamp(now_ms / 1000, tz=UTC),
    )


def accepted(row: NewMessage, result: Inserted, body_hash: bytes | None) -> Accepted:
    if result.existing is None:
        return Accepted(str(row.id), row.status, row.created_at, send_at=row.send_at)
    prior = result.existing
    if prior.idempotency_hash != body_hash:
        raise HermesError(Code.IDEMPOTENCY_CONFLICT,
                          "this Idempotency-Key was first used with a different request body")
    # Replay the first answer: the status the message had when it was accepted.
    return Accepted(str(prior.id), prior.initial_status, prior.created_at, replayed=True,
                    send_at=prior.send_at)


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise HermesError(Code.REQUEST_INVALID,
                          f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters",
                          errors=[FieldError(Code.REQUEST_INVALID, "Idempotency-Key", None)])
    return key


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)
