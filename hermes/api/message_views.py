"""What `GET /v1/messages[/{id}]` answers, and the opaque list cursor."""

from __future__ import annotations

import base64
import binascii
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from hermes import _core
from hermes.domain.errors import Code, FieldError, HermesError
from hermes.domain.messages import Address, Content, MessageSpec
from hermes.infra.postgres.message_reads import MessageDetailRow, MessageRow


class MessageLinks(msgspec.Struct):
    self: str


class StepView(msgspec.Struct):
    index: int
    channel: str
    timeout_ms: int
    success: str
    provider: str | None
    # pending, in_flight, accepted, delivered, read, failed or timed_out, once the engine
    # has run the message; null before.
    status: str | None


class AttemptView(msgspec.Struct):
    id: UUID
    step: int
    attempt: int
    channel: str
    provider_account_id: UUID | None
    adapter: str | None
    adapter_version: str | None
    status: str
    provider_message_id: str | None
    error_code: str | None
    provider_error_code: str | None
    segments: int | None
    # A decimal string, exact as the provider reported it.
    cost: str | None
    created_at: datetime
    sent_at: datetime | None
    answered_at: datetime | None
    receipt_at: datetime | None


class EventView(msgspec.Struct):
    id: int
    at: datetime
    kind: str
    data: dict[str, Any]


class MessageSummary(msgspec.Struct):
    id: UUID
    object: str
    status: str
    outcome: str | None
    mode: str
    to: Address
    contact: str | None
    channels: list[str]
    metadata: dict[str, str]
    send_at: datetime | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    links: MessageLinks


class MessageDetail(msgspec.Struct):
    id: UUID
    object: str
    status: str
    outcome: str | None
    mode: str
    to: Address
    contact: str | None
    country: str | None
    content: Content
    steps: list[StepView]
    attempts: list[AttemptView]
    events: list[EventView]
    metadata: dict[str, str]
    send_at: datetime | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    links: MessageLinks


class MessageList(msgspec.Struct):
    object: str
    data: list[MessageSummary]
    has_more: bool
    next_cursor: str | None


_SPEC = msgspec.json.Decoder(MessageSpec)
_META = msgspec.json.Decoder(dict[str, str])
_ATTEMPTS = msgspec.json.Decoder(list[AttemptView])
_EVENTS = msgspec.json.Decoder(list[EventView])


def summary(row: MessageRow) -> MessageSummary:
    spec = _SPEC.decode(row.spec_json)
    return MessageSummary(
        id=row.id, object="message", status=row.status, outcome=row.outcome, mode=row.mode,
        to=spec.to, contact=spec.contact, channels=[s.channel for s in spec.steps],
        metadata=_META.decode(row.metadata_json), send_at=row.send_at,
        expires_at=row.expires_at, created_at=row.created_at, updated_at=row.updated_at,
        finished_at=row.finished_at, links=MessageLinks(self=f"/v1/messages/{row.id}"))


def detail(row: MessageDetailRow) -> MessageDetail:
    spec = _SPEC.decode(row.spec_json)
    statuses = _step_statuses(row.engine_state)
    steps = [StepView(index=i, channel=s.channel, timeout_ms=s.timeout_ms, success=s.success,
                      provider=s.provider, status=statuses[i] if i < len(statuses) else None)
             for i, s in enumerate(spec.steps)]
    return MessageDetail(
        id=row.id, object="message", status=row.status, outcome=row.outcome, mode=row.mode,
        to=spec.to, contact=spec.contact, country=spec.country, content=spec.content,
        steps=steps, attempts=_ATTEMPTS.decode(row.attempts_json),
        events=_EVENTS.decode(row.events_json), metadata=_META.decode(row.metadata_json),
        send_at=row.send_at, expires_at=row.expires_at, created_at=row.created_at,
        updated_at=row.updated_at, finished_at=row.finished_at,
        links=MessageLinks(self=f"/v1/messages/{row.id}"))


def _step_statuses(engine_state: bytes | None) -> list[str]:
    """Per-step status from the engine's stored state; none while it has not run the message."""
    if not engine_state:
        return []
    # The state is the engine's to write; a format this build cannot read only hides
    # the per-step status, it never fails the read.
    with contextlib.suppress(ValueError):
        return _core.Cascade.from_bytes(engine_state).step_statuses
    return []


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(created_at: datetime, message_id: UUID) -> str:
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    raw = micros.to_bytes(8, "big", signed=True) + message_id.bytes
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        if len(raw) != 24:
            raise ValueError("wrong length")
        micros = int.from_bytes(raw[:8], "big", signed=True)
        return _EPOCH + timedelta(microseconds=micros), UUID(bytes=raw[8:])
    except (ValueError, binascii.Error, OverflowError):
        raise HermesError(Code.REQUEST_INVALID, "the cursor is not one this API returned",
                          errors=[FieldError(Code.REQUEST_INVALID, "cursor", None)]) from None
