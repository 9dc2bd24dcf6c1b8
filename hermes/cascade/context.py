"""What the engine keeps beside each live cascade: who sent it and what to send."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from hermes.domain.messages import Address, MessageSpec

_SPEC = msgspec.json.Decoder(MessageSpec)


class MessageContext(msgspec.Struct):
    id: UUID
    tenant_id: UUID
    mode: str
    shard: int
    spec: MessageSpec
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    # Channel and provider adapter of the last attempt this engine dispatched (for metrics).
    served: tuple[str, str] = ("none", "none")

    @classmethod
    def from_json(cls, id: UUID, tenant_id: UUID, mode: str, shard: int, spec: bytes | str,
                  metadata: dict[str, str] | None = None) -> MessageContext:
        raw = spec.encode() if isinstance(spec, str) else spec
        return cls(id=id, tenant_id=tenant_id, mode=mode, shard=shard, spec=_SPEC.decode(raw),
                   metadata=metadata or {})

    def plan(self) -> dict[str, Any]:
        """The core's plan: steps, `send_at`, `expires_at` (ms)."""
        return {
            "steps": [
                {"channel": s.channel, "timeout_ms": s.timeout_ms, "success": s.success,
                 "provider": s.provider}
                for s in self.spec.steps
            ],
            "send_at": self.spec.send_at_ms,
            "expires_at": self.spec.expires_at_ms,
        }

    def address(self, channel: str) -> str | None:
        to: Address = self.spec.to
        return {"sms": to.phone, "email": to.email, "push": to.push_token,
                "whatsapp": to.whatsapp}.get(channel)
