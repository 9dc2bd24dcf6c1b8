"""OpenTelemetry traces: one trace per message, across the api, the engine, delivery,
provider calls, callbacks and webhooks.

Off unless configured (`HERMES_TRACE_FILE`, or the standard `OTEL_TRACES_EXPORTER=otlp`
/ `OTEL_EXPORTER_OTLP_ENDPOINT`); then every helper here returns at once on one
module flag, and no header is built.

A message's trace id is its id (both are 128 bits), and the accept span's id is
the id's low 64 bits, so any process that knows the message id can join its trace
even when nothing carried the context: the recovery sweep's re-publish, a timer
that fires after a restart, the webhook dispatcher (which reads deliveries from
PostgreSQL), and the provider's receipt callback, whose span is the child of the
attempt span (also an id derived from the attempt id). Where a NATS message does
carry a W3C `traceparent` header (start commands, delivery jobs, attempt results,
receipt notices) the consumer's span is the child of the publisher's.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from uuid import UUID

import msgspec
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import hermes

TRACEPARENT = "traceparent"
_MASK64 = (1 << 64) - 1
_PROPAGATOR = TraceContextTextMapPropagator()
_FORCED: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "hermes_forced_ids", default=None)

ENABLED = False
_tracer: trace.Tracer = trace.NoOpTracer()
_provider: TracerProvider | None = None
_NOOP = contextlib.nullcontext(None)


class _Ids(RandomIdGenerator):
    """Random ids, except where a span must have the id other processes derive."""

    def generate_span_id(self) -> int:
        forced = _FORCED.get()
        return forced[1] if forced is not None else super().generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _FORCED.get()
        return forced[0] if forced is not None else super().generate_trace_id()

    def is_trace_id_random(self) -> bool:
        return False  # message ids (uuid7) start with a timestamp


class JsonLinesExporter(SpanExporter):
    """One JSON object per finished span, appended to a file several processes may share
    (each span is one `write` on an O_APPEND descriptor)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = b"".join(msgspec.json.encode(span_dict(s)) + b"\n" for s in spans)
        with self._lock:
            os.write(self._fd, lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def span_dict(s: ReadableSpan) -> dict[str, Any]:
    ctx = s.get_span_context()
    assert ctx is not None
    return {
        "name": s.name, "kind": s.kind.name,
        "trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}",
        "parent_span_id": f"{s.parent.span_id:016x}" if s.parent else None,
        "start_ns": s.start_time, "end_ns": s.end_time,
        "status": s.status.status_code.name,
        "attributes": dict(s.attributes or {}),
        "links": [{"trace_id": f"{lk.context.trace_id:032x}",
                   "span_id": f"{lk.context.span_id:016x}"} for lk in s.links],
        "resource": dict(s.resource.attributes),
    }


class MessageRatioSampler(Sampler):
    """`traceidratio` for trace ids that are message ids. The SDK's sampler compares the low
    64 bits, whose top two are a uuid's fixed variant bits (so it would keep every trace
    or none); this one decides on the 62 random bits below them, as deterministically:
    every process makes the same decision for a message."""

    def __init__(self, rate: float) -> None:
        self.rate = min(max(rate, 0.0), 1.0)
        self.bound = round(self.rate * _BOUND)

    def should_sample(self, parent_context: otel_context.Context | None, trace_id: int,
                      name: str, kind: SpanKind | None = None,
                      attributes: Any = None, links: Any = None,
                      trace_state: Any = None) -> SamplingResult:
        sampled = (trace_id & (_BOUND - 1)) < self.bound
        return SamplingResult(Decision.RECORD_AND_SAMPLE if sampled else Decision.DROP,
                              attributes if sampled else None,
                              trace.get_current_span(parent_context).get_span_context()
                              .trace_state)

    def get_description(self) -> str:
        return f"MessageRatioSampler{{{self.rate}}}"


_BOUND = 1 << 62


def _sampler(env: Mapping[str, str]) -> Sampler | None:
    """The ratio samplers of `OTEL_TRACES_SAMPLER`, made to work on message ids; None leaves
    the choice to the SDK (which reads the same variable)."""
    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if name not in {"traceidratio", "parentbased_traceidratio"}:
        return None
    try:
        rate = float(env.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
    except ValueError:
        rate = 1.0
    ratio = MessageRatioSampler(rate)
    return ratio if name == "traceidratio" else ParentBased(ratio)


def _processors(trace_file: str | None, env: Mapping[str, str]) -> list[SpanProcessor]:
    out: list[SpanProcessor] = []
    if trace_file:
        # Simple (synchronous) export: a file is for debugging and tests, which read
        # spans as soon as they end.
        out.append(SimpleSpanProcessor(JsonLinesExporter(trace_file)))
    exporters = [e.strip() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()]
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT")
    if "otlp" in exporters or (endpoint and not exporters):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        out.append(BatchSpanProcessor(OTLPSpanExporter()))
    return out


def setup(service: str, trace_file: str | None = None,
          env: Mapping[str, str] | None = None) -> bool:
    """Turn tracing on for this process if anything is configured; whether it is on."""
    global ENABLED, _tracer, _provider
    env = os.environ if env is None else env
    processors = _processors(trace_file, env)
    if not processors:
        return False
    attrs: dict[str, Any] = {"service.version": hermes.__version__, "process.pid": os.getpid(),
                             "hermes.process": service}
    if not env.get("OTEL_SERVICE_NAME"):
        attrs["service.name"] = f"hermes-{service}"
    provider = TracerProvider(resource=Resource.create(attrs), id_generator=_Ids(),
                              sampler=_sampler(env))
    for p in processors:
        provider.add_span_processor(p)
    _provider, _tracer, ENABLED = provider, provider.get_tracer("hermes", hermes.__version__), True
    return True


def shutdown() -> None:
    """Flush and stop (end of process, or a test that enabled tracing)."""
    global ENABLED, _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _provider, _tracer, ENABLED = None, trace.NoOpTracer(), False


# -- ids every process can derive ---------------------------------------------------

def _flags(trace_id: int) -> TraceFlags:
    """Whether the message's trace is sampled: the sampler's decision for its root, which
    every process makes alike from the trace id."""
    if _provider is None:
        return TraceFlags(TraceFlags.DEFAULT)
    decision = _provider.sampler.should_sample(None, trace_id, "message").decision
    sampled = decision == Decision.RECORD_AND_SAMPLE
    return TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)


def message_root(message_id: UUID) -> SpanContext:
    """The accept span of a message, as a remote parent."""
    return SpanContext(message_id.int, (message_id.int & _MASK64) or 1, is_remote=True,
                       trace_flags=_flags(message_id.int))


def attempt_context(message_id: UUID, attempt_id: UUID) -> SpanContext:
    """The span of a delivery attempt, as a remote parent (the receipt callback's)."""
    return SpanContext(message_id.int, (attempt_id.int & _MASK64) or 1, is_remote=True,
                       trace_flags=_flags(message_id.int))


def _as_parent(ctx: SpanContext) -> otel_context.Context:
    return trace.set_span_in_context(trace.NonRecordingSpan(ctx))


def parent_from(headers: Mapping[str, str] | None, message_id: UUID) -> otel_context.Context:
    """The publisher's span from a `traceparent` header, else the message's accept span."""
    if headers:
        tp = headers.get(TRACEPARENT)
        if tp:
            ctx = _PROPAGATOR.extract({TRACEPARENT: tp})
            if trace.get_current_span(ctx).get_span_context().is_valid:
                return ctx
    return _as_parent(message_root(message_id))


def headers(base: dict[str, str], span: Span | None = None) -> dict[str, str]:
    """`base` plus the `traceparent` of `span` (or the current span) when tracing is on."""
    if not ENABLED:
        return base
    ctx = trace.set_span_in_context(span) if span is not None else None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx)
    if TRACEPARENT in carrier:
        base[TRACEPARENT] = carrier[TRACEPARENT]
    return base


# -- spans ---------------------------------------------------------------------------

@contextlib.contextmanager
def _forced(trace_id: int, span_id: int) -> Iterator[None]:
    token = _FORCED.set((trace_id, span_id))
    try:
        yield
    finally:
        _FORCED.reset(token)


def start(name: str, *, parent: otel_context.Context | None, kind: SpanKind = SpanKind.INTERNAL,
          attributes: dict[str, Any] | None = None, ids: tuple[int, int] | None = None,
          links: Sequence[Link] = (), start_ns: int | None = None) -> Span:
    """A span (not made current); `ids` forces its (trace id, span id) when it has no parent."""
    if ids is None:
        return _tracer.start_span(name, context=parent, kind=kind, attributes=attributes,
                                  links=links, start_time=start_ns)
    with _forced(*ids):
        return _tracer.start_span(name, context=parent, kind=kind, attributes=attributes,
                                  links=links, start_time=start_ns)


@contextlib.contextmanager
def _current(span: Span) -> Iterator[Span]:
    with trace.use_span(span, end_on_exit=True, record_exception=True,
                        set_status_on_exception=True):
        yield span


def accept_span(message_id: UUID, tenant_id: UUID, route: str, start_ns: int | None = None
                ) -> contextlib.AbstractContextManager[Span | None]:
    """The root of a message's trace, current while the API commits and queues it."""
    if not ENABLED:
        return _NOOP
    root = message_root(message_id)
    # No parent: a new trace whose ids are the message's. The request's own trace (if the
    # client sent a traceparent) is linked rather than continued.
    incoming = trace.get_current_span().get_span_context()
    span = start(f"POST {route}", parent=otel_context.Context(), kind=SpanKind.SERVER,
                 ids=(root.trace_id, root.span_id), start_ns=start_ns,
                 links=[Link(incoming)] if incoming.is_valid else (),
                 attributes={"hermes.message_id": str(message_id),
                             "hermes.tenant_id": str(tenant_id), "http.route": route,
                             "http.request.method": "POST"})
    return _current(span)


def start_traceparent(message_id: UUID, tenant_id: UUID) -> str | None:
    """The `traceparent` a start command carries: the current span's (a single message's
    accept span), else a root span made now for the message (an item of a batch)."""
    if not ENABLED:
        return None
    if not trace.get_current_span().get_span_context().is_valid:
        root = message_root(message_id)
        span = start("POST /v1/messages/batch", parent=otel_context.Context(),
                     kind=SpanKind.SERVER, ids=(root.trace_id, root.span_id),
                     attributes={"hermes.message_id": str(message_id),
                                 "hermes.tenant_id": str(tenant_id),
                                 "http.route": "/v1/messages/batch"})
        span.end()
        return headers({}, span).get(TRACEPARENT)
    return headers({}).get(TRACEPARENT)


def attempt_span(message_id: UUID, attempt_id: UUID, job_headers: Mapping[str, str] | None,
                 attributes: dict[str, Any]) -> contextlib.AbstractContextManager[Span | None]:
    """A delivery attempt, the child of the engine span that dispatched it; its id is derived
    from the attempt id so the provider's receipt can be parented to it."""
    if not ENABLED:
        return _NOOP
    parent = parent_from(job_headers, message_id)
    ids = attempt_context(message_id, attempt_id)
    span = start("deliver", parent=parent, kind=SpanKind.CONSUMER,
                 ids=(ids.trace_id, ids.span_id), attributes=attributes)
    return _current(span)


def child_span(name: str, kind: SpanKind = SpanKind.INTERNAL,
               attributes: dict[str, Any] | None = None
               ) -> contextlib.AbstractContextManager[Span | None]:
    """A child of the current span (a provider call inside an attempt), if there is one."""
    if not ENABLED or not trace.get_current_span().get_span_context().is_valid:
        return _NOOP
    return _current(start(name, parent=None, kind=kind, attributes=attributes))


def linked_span(name: str, parent: SpanContext, kind: SpanKind,
                attributes: dict[str, Any] | None = None
                ) -> contextlib.AbstractContextManager[Span | None]:
    """A span whose parent is derived (not carried): a receipt callback, a webhook."""
    if not ENABLED:
        return _NOOP
    return _current(start(name, parent=_as_parent(parent), kind=kind, attributes=attributes))


def current_trace_id() -> str | None:
    """The current span's trace id in hex, for log lines."""
    if not ENABLED:
        return None
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None
