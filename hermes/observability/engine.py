"""The engine's spans: one per message a turn touches, ended when the turn is done.

A message consumed with a `traceparent` (start command, attempt result, receipt)
gets a child span of its publisher's; a message the turn touches only through a
timer (a step timeout, `send_at`, expiry) gets an `engine timer` span under the
message's accept span. Delivery jobs carry the span of the turn that dispatched them.
Only built when tracing is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from hermes.observability import tracing


class EngineTrace:
    def __init__(self) -> None:
        self.spans: dict[UUID, Span] = {}

    def consumed(self, message_id: UUID, kind: str, headers: Mapping[str, str] | None) -> None:
        if message_id in self.spans:
            return
        self.spans[message_id] = tracing.start(
            f"engine {kind}", parent=tracing.parent_from(headers, message_id),
            kind=SpanKind.CONSUMER, attributes={"hermes.message_id": str(message_id)})

    def consumed_obj(self, obj: Any, headers: Mapping[str, str] | None) -> None:
        """A decoded start or cancel command, attempt result or receipt notice."""
        message_id = getattr(obj, "message_id", None) or obj.id
        self.consumed(message_id, type(obj).__struct_config__.tag or "event", headers)

    def span(self, message_id: UUID) -> Span:
        span = self.spans.get(message_id)
        if span is None:
            span = self.spans[message_id] = tracing.start(
                "engine timer", parent=tracing.parent_from(None, message_id),
                attributes={"hermes.message_id": str(message_id)})
        return span

    def job_headers(self, message_id: UUID, base: dict[str, str]) -> dict[str, str]:
        return tracing.headers(base, self.span(message_id))

    def dispatched(self, message_id: UUID, step: int, channel: str, provider: str) -> None:
        self.span(message_id).add_event("dispatch", {"hermes.step": step,
                                                     "hermes.channel": channel,
                                                     "hermes.provider": provider})

    def finished(self, message_id: UUID, outcome: str) -> None:
        parent = self.span(message_id)
        parent.set_attribute("hermes.outcome", outcome)
        tracing.start("engine finish", parent=trace.set_span_in_context(parent),
                      attributes={"hermes.message_id": str(message_id),
                                  "hermes.outcome": outcome}).end()

    def end(self, failed: bool = False) -> None:
        for span in self.spans.values():
            if failed:
                span.set_status(trace.StatusCode.ERROR, "engine turn failed")
            span.end()
        self.spans.clear()
