"""The events a tenant's webhook endpoints receive, and the Standard Webhooks payload."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, get_args
from uuid import UUID

import msgspec

EventType = Literal[
    # A provider accepted an attempt (data: step, channel, provider, provider_message_id).
    "message.sent",
    # A receipt confirmed delivery of the current step.
    "message.delivered",
    # The recipient read the message (where the channel reports it).
    "message.read",
    # A step failed or timed out and the cascade moved on to the next channel.
    "message.fallback",
    # A delivery receipt arrived for a step the cascade had already left.
    "message.late_delivered",
    # The final outcome (delivered, failed, expired or canceled) with the whole cascade:
    # steps tried, providers, receipt times, segments and cost.
    "message.finished",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)


class WebhookEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One thing that happened to a message, to be told to every enabled endpoint of its tenant."""

    tenant_id: UUID
    message_id: UUID
    type: EventType
    # The event's own fields; sent as the payload's `data` with `message_id` added.
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    # When it happened; None means when it is enqueued.
    at: datetime | None = None


def body_of(event: WebhookEvent, now: datetime) -> dict[str, Any]:
    """The Standard Webhooks payload: `{"type", "timestamp", "data"}`."""
    if event.type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event.type!r}")
    at = (event.at or now).astimezone(UTC)
    data = {"message_id": str(event.message_id), **event.payload}
    return {"type": event.type, "timestamp": at.isoformat().replace("+00:00", "Z"),
            "data": data}
