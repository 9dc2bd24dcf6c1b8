"""The few calls the request, engine, delivery, callback and webhook code makes.

Each is one line at its call site; what they count, time and trace lives here.
With tracing off they do no more than bump a cached counter.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

import msgspec
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from hermes.observability import logging as logs
from hermes.observability import metrics, tracing

T = TypeVar("T")

_api_log = logging.getLogger("hermes.api")
_delivery_log = logging.getLogger("hermes.delivery")

# The headers of the delivery job a task is working on (set only when tracing is on).
_JOB_HEADERS: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "hermes_job_headers", default=None)


class _Adapter(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...


# -- API ---------------------------------------------------------------------------------

class accepting:  # a context manager on the hot path: a class, not a generator
    """Around queueing a committed message: the log ids bound, and the root span of the
    message's trace current (from `accepted_at`, when its validation began)."""

    __slots__ = ("_span",)

    def __init__(self, message_id: UUID, tenant_id: UUID, accepted_at: datetime) -> None:
        logs.bind(message_id, tenant_id)
        _api_log.debug("message accepted")
        self._span = None if not tracing.ENABLED else tracing.accept_span(
            message_id, tenant_id, "/v1/messages", int(accepted_at.timestamp() * 1e9))

    def __enter__(self) -> None:
        if self._span is not None:
            self._span.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self._span is not None:
            self._span.__exit__(*exc)


# -- delivery ----------------------------------------------------------------------------

def job_context(headers: Mapping[str, str] | None) -> contextvars.Context | None:
    """The context to run a delivery job's task in (None: the default copy)."""
    if not tracing.ENABLED or not headers:
        return None
    ctx = contextvars.copy_context()
    ctx.run(_JOB_HEADERS.set, headers)
    return ctx


class _Job(Protocol):
    @property
    def message_id(self) -> UUID: ...

    @property
    def tenant_id(self) -> UUID: ...

    @property
    def attempt_id(self) -> UUID: ...

    @property
    def channel(self) -> str: ...

    @property
    def step(self) -> int: ...

    @property
    def attempt(self) -> int: ...


class _Outcome(Protocol):
    @property
    def outcome(self) -> str: ...

    @property
    def code(self) -> str | None: ...


OutcomeT = TypeVar("OutcomeT", bound=_Outcome)


async def attempt(job: _Job, provider: str, send: Awaitable[OutcomeT]) -> OutcomeT:
    """One send attempt: counted and timed by channel, provider and result; traced as the
    child of the engine span that dispatched it."""
    logs.bind(job.message_id, job.tenant_id)
    begun = time.perf_counter()
    if not tracing.ENABLED:
        outcome = await send
    else:
        attrs = {"hermes.message_id": str(job.message_id), "hermes.attempt_id": str(job.attempt_id),
                 "hermes.channel": job.channel, "hermes.provider": provider,
                 "hermes.step": job.step, "hermes.attempt": job.attempt}
        with tracing.attempt_span(job.message_id, job.attempt_id, _JOB_HEADERS.get(),
                                  attrs) as span:
            outcome = await send
            if span is not None:
                span.set_attribute("hermes.result", outcome.outcome)
                if outcome.code:
                    span.set_attribute("hermes.error_code", outcome.code)
    seconds = time.perf_counter() - begun
    metrics.attempt(job.channel, provider, outcome.outcome, seconds)
    if _delivery_log.isEnabledFor(logging.DEBUG):
        _delivery_log.debug("attempt %s (%s via %s): %s %s in %.1f ms", job.attempt_id,
                            job.channel, provider, outcome.outcome, outcome.code or "",
                            seconds * 1000)
    return outcome


def result_headers(message_id: UUID, attempt_id: UUID, base: dict[str, str]) -> dict[str, str]:
    """An attempt result's headers: the attempt span is its publisher, wherever it is sent from."""
    if not tracing.ENABLED:
        return base
    return tracing.headers(base, trace.NonRecordingSpan(
        tracing.attempt_context(message_id, attempt_id)))


def provider_call(method: str, url: str, call: Coroutine[Any, Any, T]) -> Awaitable[T]:
    """The provider HTTP call, as a client span inside the attempt span."""
    if not tracing.ENABLED:
        return call
    return _traced_call(method, url, call)


async def _traced_call(method: str, url: str, call: Coroutine[Any, Any, T]) -> T:
    host = url.split("/", 3)[2] if "://" in url else url
    with tracing.child_span(f"provider {method}", SpanKind.CLIENT,
                            {"http.request.method": method, "server.address": host}):
        return await call


def adapter_call(adapter: _Adapter, op: str, fn: Callable[..., T], *args: Any) -> T:
    """A call into a WASM adapter, timed by adapter, version and operation."""
    begun = time.perf_counter()
    try:
        return fn(*args)
    finally:
        metrics.adapter_call(adapter.name, adapter.version, op, time.perf_counter() - begun)


# -- callbacks -----------------------------------------------------------------------------

class _AttemptRow(Protocol):
    @property
    def id(self) -> UUID: ...

    @property
    def message_id(self) -> UUID: ...


@contextmanager
def receipt(row: _AttemptRow, provider: str, status: str) -> Iterator[None]:
    """A verified receipt being passed to the engine: counted; traced as the child of the
    attempt it reports on (a provider's callback cannot carry our trace context)."""
    metrics.receipt(provider, status)
    logs.MESSAGE_ID.set(row.message_id)
    if not tracing.ENABLED:
        yield
        return
    with tracing.linked_span("callback receipt", tracing.attempt_context(row.message_id, row.id),
                             SpanKind.SERVER,
                             {"hermes.message_id": str(row.message_id),
                              "hermes.attempt_id": str(row.id), "hermes.provider": provider,
                              "hermes.receipt_status": status}):
        yield


# -- webhooks ------------------------------------------------------------------------------

class _Claimed(Protocol):
    @property
    def id(self) -> UUID: ...

    @property
    def body(self) -> bytes: ...


class _WebhookOutcome(Protocol):
    @property
    def status(self) -> str: ...

    @property
    def http_status(self) -> int | None: ...


class _Event(msgspec.Struct):
    type: str = ""
    data: dict[str, Any] = msgspec.field(default_factory=dict)


_EVENT = msgspec.json.Decoder(_Event)
W = TypeVar("W", bound=_WebhookOutcome)
S = TypeVar("S")


def webhook_attempt(
        fn: Callable[[S, Any], Awaitable[W]]) -> Callable[[S, Any], Coroutine[Any, Any, W]]:
    """Decorates the dispatcher's one-delivery method: counted by result, timed, and traced
    in the message's trace (the delivery names its message)."""

    @functools.wraps(fn)
    async def wrapper(self: S, c: Any) -> W:
        begun = time.perf_counter()
        if not tracing.ENABLED:
            outcome = await fn(self, c)
        else:
            outcome = await _traced_webhook(fn, self, c)
        metrics.webhook_delivery(outcome.status, time.perf_counter() - begun)
        return outcome

    return wrapper


async def _traced_webhook(fn: Callable[[S, Any], Awaitable[W]], self: S, c: _Claimed) -> W:
    try:
        event = _EVENT.decode(c.body)
        message_id = UUID(str(event.data["message_id"]))
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, ValueError):
        return await fn(self, c)
    with tracing.linked_span("webhook deliver", tracing.message_root(message_id), SpanKind.CLIENT,
                             {"hermes.message_id": str(message_id),
                              "hermes.webhook_id": str(c.id),
                              "hermes.event_type": event.type}) as span:
        outcome = await fn(self, c)
        if span is not None:
            span.set_attribute("hermes.result", outcome.status)
            if outcome.http_status is not None:
                span.set_attribute("http.response.status_code", outcome.http_status)
        return outcome
