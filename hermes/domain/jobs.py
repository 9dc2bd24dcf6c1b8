"""What travels on NATS between the engine and the delivery workers.

Subjects:
- `hermes.cascade.<shard>`: `StartCommand` / `CancelCommand` (API -> engine), Nats-Msg-Id
  `<message id>:start` / `<message id>:cancel`.
- `hermes.deliver.<channel>`: `DeliveryJob` (engine -> delivery), Nats-Msg-Id `<attempt id>`.
- `hermes.events.<shard>`: `AttemptResult` and `ReceiptNotice` (delivery / callbacks ->
  engine), Nats-Msg-Id `<attempt id>:result` and `<attempt id>:<status>` respectively.

All are msgspec JSON; events are a tagged union (`"type"`), so the engine decodes
`hermes.events.*` with one decoder.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

import msgspec

from hermes.domain.messages import Channel, Content


class StartCommand(msgspec.Struct, frozen=True, tag="start"):
    """Start the cascade of a committed message; `spec` is its `MessageSpec` as JSON."""

    id: UUID
    tenant_id: UUID
    mode: str
    shard: int
    spec: msgspec.Raw


class CancelCommand(msgspec.Struct, frozen=True, tag="cancel"):
    """Cancel a message's cascade (POST /v1/messages/{id}/cancel)."""

    id: UUID
    tenant_id: UUID


CascadeCommand = StartCommand | CancelCommand


class DeliveryJob(msgspec.Struct, frozen=True, omit_defaults=True):
    """Send attempt `attempt` of step `step` through `account_id`.

    The attempt row exists (status `pending`) before this is published; a
    delivery worker claims it (pending -> sending) before calling the provider,
    so a redelivered job for an attempt already sent is never sent again.
    """

    attempt_id: UUID
    message_id: UUID
    tenant_id: UUID
    mode: str
    shard: int
    step: int
    attempt: int
    channel: Channel
    account_id: UUID
    to: str
    content: Content
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class AttemptResult(msgspec.Struct, frozen=True, tag="result", omit_defaults=True):
    """How the provider answered (or failed to answer) one attempt."""

    message_id: UUID
    attempt_id: UUID
    step: int
    attempt: int
    account_id: UUID
    outcome: Literal["accepted", "rejected", "provider_error"]
    retryable: bool = False
    code: str | None = None
    provider_message_id: str | None = None
    retry_after_ms: int | None = None
    detail: str | None = None


class ReceiptNotice(msgspec.Struct, frozen=True, tag="receipt", omit_defaults=True):
    """A verified delivery receipt for one attempt."""

    message_id: UUID
    attempt_id: UUID
    step: int
    attempt: int
    account_id: UUID
    status: Literal["sent", "delivered", "read", "undelivered", "failed", "bounced"]
    provider_message_id: str | None = None
    provider_error_code: str | None = None
    at_ms: int | None = None


EngineEvent = AttemptResult | ReceiptNotice

# Receipt statuses as adapters report them, mapped onto the cascade's vocabulary;
# `accepted` says nothing the attempt result did not, and `complained` is a
# compliance signal (suppression), not a delivery state.
RECEIPT_STATUS: dict[str, str | None] = {
    "sent": "sent", "delivered": "delivered", "read": "read", "undelivered": "undelivered",
    "failed": "failed", "bounced": "bounced", "accepted": None, "complained": None,
}


def cancel_msg_id(message_id: UUID) -> str:
    """The `Nats-Msg-Id` of a message's cancel command (the API's and the sweep's)."""
    return f"{message_id}:cancel"


def cascade_subject(shard: int) -> str:
    return f"hermes.cascade.{shard}"


def deliver_subject(channel: str) -> str:
    return f"hermes.deliver.{channel}"


def events_subject(shard: int) -> str:
    return f"hermes.events.{shard}"


ENCODER = msgspec.json.Encoder()
EVENT_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(EngineEvent)
JOB_DECODER = msgspec.json.Decoder(DeliveryJob)
COMMAND_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(CascadeCommand)
