"""Run-time state of the sandbox: what it received, scripted outcomes, outages."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from hermes.observability import metrics
from hermes.sandbox.outcomes import Outcome

RECORD_LIMIT = 10_000  # requests and receipts kept for inspection, oldest dropped
MESSAGE_LIMIT = 50_000  # Twilio messages kept for GET (about 1 KiB each), oldest dropped


@dataclass(slots=True)
class ScriptedOutcome:
    outcome: Outcome
    delay: float | None  # receipt delay in seconds; None: the sandbox default


@dataclass(slots=True)
class Outage:
    mode: Outcome  # SERVER_ERROR or TIMEOUT
    until: float | None  # time.monotonic() deadline, None: until cleared


@dataclass(slots=True)
class SandboxConfig:
    receipt_delay: float = 0.1  # seconds between the send and its receipt
    timeout_hold: float = 30.0  # how long a "timeout" send is held before the drop
    retry_after: int = 1  # seconds, in the Retry-After of a 429


@dataclass
class SandboxState:
    config: SandboxConfig = field(default_factory=SandboxConfig)
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECORD_LIMIT))
    receipts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECORD_LIMIT))
    scripts: dict[str, deque[ScriptedOutcome]] = field(default_factory=dict)
    outages: dict[str, Outage] = field(default_factory=dict)
    # SES configuration set name -> SNS HTTP subscription endpoint (None: no subscriber).
    ses_configuration_sets: dict[str, str | None] = field(default_factory=dict)
    # SNS subscriptions awaiting confirmation: token -> (configuration set, endpoint).
    ses_pending_subscriptions: dict[str, tuple[str, str]] = field(default_factory=dict)
    whatsapp_webhook: str | None = None
    fcm_access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry
    # Twilio Message resources for GET: sid -> (resource, monotonic due time, final status).
    twilio_messages: OrderedDict[str, tuple[dict[str, Any], float, str | None]] = field(
        default_factory=OrderedDict)
    _sequence: int = 0

    def reset(self) -> None:
        """Forget traffic, scripts and outages; keep endpoints and the config."""
        self.requests.clear()
        self.receipts.clear()
        self.scripts.clear()
        self.outages.clear()
        self.twilio_messages.clear()

    def record(
        self, provider: str, method: str, path: str, headers: dict[str, str],
        body: Any, status: int, outcome: Outcome | None,
    ) -> None:
        self._sequence += 1
        metrics.sandbox_request(provider, status)
        self.requests.append({
            "id": self._sequence,
            "provider": provider,
            "received_at": time.time(),
            "method": method,
            "path": path,
            "headers": headers,
            "body": body,
            "status": status,
            "outcome": outcome.value if outcome is not None else None,
        })

    def remember_twilio_message(self, message: dict[str, Any], due: float,
                                final: str | None) -> None:
        self.twilio_messages[message["sid"]] = (message, due, final)
        if len(self.twilio_messages) > MESSAGE_LIMIT:
            self.twilio_messages.popitem(last=False)

    def script(self, recipient: str, outcomes: list[ScriptedOutcome]) -> None:
        self.scripts[recipient] = deque(outcomes)

    def resolve(
        self, provider: str, recipient: str, magic: Outcome
    ) -> tuple[Outcome, float]:
        """The outcome of one send and its receipt delay.

        An outage of the provider wins, then the next scripted outcome for the
        recipient (each send consumes one), then the magic-recipient rule.
        """
        delay = self.config.receipt_delay
        outage = self.outages.get(provider)
        if outage is not None:
            if outage.until is None or time.monotonic() < outage.until:
                return outage.mode, delay
            del self.outages[provider]
        queue = self.scripts.get(recipient)
        if queue:
            step = queue.popleft()
            if not queue:
                del self.scripts[recipient]
            return step.outcome, delay if step.delay is None else step.delay
        return magic, delay
