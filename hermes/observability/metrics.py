"""Prometheus metrics: one registry per process, a few helpers for the hot paths.

Each process (api, worker, sandbox) has its own registry and exposes it on its
own `/metrics`. Label children are cached by the helpers below, so counting a
message costs a dict lookup and an `inc()` (well under a microsecond), not the
`labels(...)` call's string work.

Cardinality: `tenant` is the tenant id, so `hermes_messages_*` has one series
per tenant, mode/channel/provider/outcome. That is what an operator of a few
hundred tenants wants; a deployment with very many tenants should drop the
label at scrape time (`metric_relabel_configs`) rather than here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from uuid import UUID

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger("hermes.metrics")

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Latency buckets: provider calls and cascades span milliseconds to minutes.
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_CASCADE = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# A WASM adapter call takes microseconds; its deadline is 50 ms.
_ADAPTER = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
            0.01, 0.025, 0.05)
_HTTP = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

MESSAGES_ACCEPTED = Counter(
    "hermes_messages_accepted", "Messages accepted (committed) by the API",
    ["tenant", "mode"], registry=REGISTRY)
MESSAGES_REFUSED_OVERLOADED = Counter(
    "hermes_messages_refused_overloaded",
    "Messages refused with 503 service.overloaded while the workers were behind",
    registry=REGISTRY)
QUEUE_DELAY = Gauge(
    "hermes_queue_delay_seconds",
    "How long work waited in JetStream before a worker took it: in a worker, its own longest "
    "wait of the last second; in the API, the longest any worker reported",
    registry=REGISTRY)
MESSAGES_FINISHED = Counter(
    "hermes_messages_finished", "Cascades that reached a final outcome; channel and provider "
    "of the last attempt (none when no attempt was sent by this engine)",
    ["tenant", "channel", "provider", "outcome"], registry=REGISTRY)
CASCADE_SECONDS = Histogram(
    "hermes_cascade_duration_seconds", "From accepted to final outcome",
    ["outcome"], buckets=_CASCADE, registry=REGISTRY)
ATTEMPTS = Counter(
    "hermes_attempts", "Provider send attempts by result (accepted, rejected, provider_error)",
    ["channel", "provider", "result"], registry=REGISTRY)
ATTEMPT_SECONDS = Histogram(
    "hermes_attempt_duration_seconds", "One send attempt: adapter, provider HTTP and parsing",
    ["channel", "provider"], buckets=_LATENCY, registry=REGISTRY)
DUPLICATE_SENDS = Counter(
    "hermes_duplicate_sends", "Attempts interrupted between the provider call and its record "
    "(the provider may have the message twice; guarantee 5's window)", registry=REGISTRY)
RECEIPTS = Counter(
    "hermes_receipts", "Verified delivery receipts applied, by provider and status",
    ["provider", "status"], registry=REGISTRY)
ADAPTER_SECONDS = Histogram(
    "hermes_adapter_call_seconds", "Time in one WASM adapter call",
    ["adapter", "version", "op"], buckets=_ADAPTER, registry=REGISTRY)
WEBHOOK_DELIVERIES = Counter(
    "hermes_webhook_deliveries", "Webhook delivery attempts by result "
    "(delivered, retry, failed, abandoned)", ["result"], registry=REGISTRY)
WEBHOOK_SECONDS = Histogram(
    "hermes_webhook_delivery_duration_seconds", "One webhook POST",
    buckets=_LATENCY, registry=REGISTRY)
ENGINE_TURN_SECONDS = Histogram(
    "hermes_engine_turn_seconds", "One engine turn: decode, apply, persist, publish, ack",
    buckets=_HTTP, registry=REGISTRY)
HTTP_REQUESTS = Counter(
    "hermes_http_requests", "API requests by route template and status",
    ["method", "route", "status"], registry=REGISTRY)
HTTP_SECONDS = Histogram(
    "hermes_http_request_duration_seconds", "API request latency by route template",
    ["method", "route"], buckets=_HTTP, registry=REGISTRY)

# -- hot-path helpers (label children cached) ----------------------------------

_accepted: dict[tuple[UUID, str], Any] = {}
_finished: dict[tuple[UUID, str, str, str], Any] = {}
_cascade: dict[str, Any] = {}
_attempts: dict[tuple[str, str, str], Any] = {}
_attempt_seconds: dict[tuple[str, str], Any] = {}
_adapter: dict[tuple[str, str, str], Any] = {}
_receipts: dict[tuple[str, str], Any] = {}
_webhooks: dict[str, Any] = {}
_http: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def message_accepted(tenant_id: UUID, mode: str, n: int = 1) -> None:
    key = (tenant_id, mode)
    child = _accepted.get(key)
    if child is None:
        child = _accepted[key] = MESSAGES_ACCEPTED.labels(str(tenant_id), mode)
    child.inc(n)


def message_finished(message_id: UUID, tenant_id: UUID, channel: str, provider: str,
                     outcome: str, now_ms: int) -> None:
    key = (tenant_id, channel, provider, outcome)
    child = _finished.get(key)
    if child is None:
        child = _finished[key] = MESSAGES_FINISHED.labels(str(tenant_id), channel, provider,
                                                          outcome)
    child.inc()
    if message_id.version == 7:  # the API's ids carry the accept time (ms) in their top bits
        hist = _cascade.get(outcome)
        if hist is None:
            hist = _cascade[outcome] = CASCADE_SECONDS.labels(outcome)
        hist.observe(max(0, now_ms - (message_id.int >> 80)) / 1000)


def attempt(channel: str, provider: str, result: str, seconds: float | None) -> None:
    key = (channel, provider, result)
    child = _attempts.get(key)
    if child is None:
        child = _attempts[key] = ATTEMPTS.labels(channel, provider, result)
    child.inc()
    if seconds is not None:
        hk = (channel, provider)
        hist = _attempt_seconds.get(hk)
        if hist is None:
            hist = _attempt_seconds[hk] = ATTEMPT_SECONDS.labels(channel, provider)
        hist.observe(seconds)


def adapter_call(name: str, version: str, op: str, seconds: float) -> None:
    key = (name, version, op)
    hist = _adapter.get(key)
    if hist is None:
        hist = _adapter[key] = ADAPTER_SECONDS.labels(name, version, op)
    hist.observe(seconds)


def receipt(provider: str, status: str) -> None:
    key = (provider, status)
    child = _receipts.get(key)
    if child is None:
        child = _receipts[key] = RECEIPTS.labels(provider, status)
    child.inc()


_WEBHOOK_RESULT = {"pending": "retry"}


def webhook_delivery(status: str, seconds: float | None) -> None:
    result = _WEBHOOK_RESULT.get(status, status)
    child = _webhooks.get(result)
    if child is None:
        child = _webhooks[result] = WEBHOOK_DELIVERIES.labels(result)
    child.inc()
    if seconds is not None:
        WEBHOOK_SECONDS.observe(seconds)


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    pair = _http.get(key)
    if pair is None:
        pair = _http[key] = (HTTP_REQUESTS.labels(method, route, str(status)),
                             HTTP_SECONDS.labels(method, route))
    pair[0].inc()
    pair[1].observe(seconds)


def duplicate_send() -> None:
    DUPLICATE_SENDS.inc()


# -- the provider sandbox (`hermes sandbox --metrics-port`) ---------------------------

SANDBOX_REQUESTS = Counter(
    "hermes_sandbox_requests", "Requests the provider sandbox answered, by provider and status",
    ["provider", "status"], registry=REGISTRY)
SANDBOX_RECEIPTS = Counter(
    "hermes_sandbox_receipts", "Receipt callbacks the sandbox sent, by provider and the HTTP "
    "status they got (none: no answer)", ["provider", "status"], registry=REGISTRY)
_sandbox: dict[tuple[str, str, int | None], Any] = {}


def sandbox_request(provider: str, status: int) -> None:
    _sandbox_count(SANDBOX_REQUESTS, "request", provider, status)


def sandbox_receipt(provider: str, status: int | None) -> None:
    _sandbox_count(SANDBOX_RECEIPTS, "receipt", provider, status)


def _sandbox_count(counter: Counter, kind: str, provider: str, status: int | None) -> None:
    key = (kind, provider, status)
    child = _sandbox.get(key)
    if child is None:
        child = _sandbox[key] = counter.labels(provider, "none" if status is None else str(status))
    child.inc()


# -- values read when scraped -----------------------------------------------------

ENGINE_TIMERS = Gauge("hermes_engine_pending_timers",
                      "Pending cascade timers in this worker's wheel", registry=REGISTRY)
ENGINE_CASCADES = Gauge("hermes_engine_active_cascades",
                        "Live cascades held by this worker's engine", registry=REGISTRY)


def watch_engine(runner: Any) -> None:
    """Report `runner.engine` (re-read on each scrape: a rebuild replaces it). One engine per
    worker; the latest watched wins."""
    ENGINE_TIMERS.set_function(lambda: float(runner.engine.timers))
    ENGINE_CASCADES.set_function(lambda: float(len(runner.engine)))


class AdapterTotals(Collector):
    """`hermes_adapter_calls_total`, `..._call_failures_total` and `..._fuel_total` per
    loaded adapter version: running totals the core keeps for each version, read at
    scrape time (in memory, no round trip)."""

    def __init__(self) -> None:
        self.runtime: Any = None

    def collect(self) -> Iterable[Metric]:
        labels = ["adapter", "version"]
        calls = CounterMetricFamily("hermes_adapter_calls",
                                    "Adapter entry-point calls, by loaded version", labels=labels)
        failures = CounterMetricFamily(
            "hermes_adapter_call_failures",
            "Adapter calls that ended in an adapter error (trap, limit, bad output)",
            labels=labels)
        fuel = CounterMetricFamily("hermes_adapter_fuel",
                                   "Fuel (wasm instructions) the adapter's calls consumed",
                                   labels=labels)
        for s in self.runtime.stats() if self.runtime is not None else ():
            key = [s["name"], s["version"]]
            calls.add_metric(key, float(s["calls"]))
            failures.add_metric(key, float(s["failures"]))
            fuel.add_metric(key, float(s["fuel"]))
        return [calls, failures, fuel]


ADAPTERS = AdapterTotals()
REGISTRY.register(ADAPTERS)


def watch_adapters(runtime: Any) -> None:
    """Report the totals of this process's adapter runtime (one per process)."""
    ADAPTERS.runtime = runtime


Refresh = Callable[[], Awaitable[Iterable[Metric]]]


class ScrapeCollector(Collector):
    """Metrics that cost a round trip (queue depths, the webhook backlog): fetched when
    `/metrics` is scraped, under a timeout, and served from that snapshot."""

    def __init__(self) -> None:
        self.sources: dict[str, Refresh] = {}
        self.snapshot: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return list(self.snapshot)

    async def refresh(self, timeout: float = 1.0) -> None:
        if not self.sources:
            return

        async def one(name: str, fetch: Refresh) -> list[Metric]:
            try:
                return list(await asyncio.wait_for(fetch(), timeout))
            except Exception as exc:  # a scrape must answer even when NATS or PG does not
                log.warning("metrics source %s unavailable: %r", name, exc)
                return []

        parts = await asyncio.gather(*(one(n, f) for n, f in self.sources.items()))
        self.snapshot = [m for part in parts for m in part]


SCRAPED = ScrapeCollector()
# The families the scrape-time sources below produce (the dashboard and its test use these).
SCRAPED_FAMILIES = ("hermes_jetstream_pending_messages", "hermes_jetstream_ack_pending_messages",
                    "hermes_webhook_backlog")
REGISTRY.register(SCRAPED)


def jetstream_source(js_factory: Callable[[], Any], streams: Iterable[str]) -> Refresh:
    """`hermes_jetstream_pending_messages` and `..._ack_pending_messages` per consumer."""
    names = list(streams)

    async def fetch() -> list[Metric]:
        js = js_factory()
        pending = GaugeMetricFamily(
            "hermes_jetstream_pending_messages",
            "Messages in a stream not yet delivered to the consumer", labels=["stream", "consumer"])
        acks = GaugeMetricFamily(
            "hermes_jetstream_ack_pending_messages",
            "Messages delivered to the consumer and not yet acknowledged",
            labels=["stream", "consumer"])
        for stream in names:
            for info in await js.consumers_info(stream):
                consumer = str(info.name)
                pending.add_metric([stream, consumer], float(info.num_pending or 0))
                acks.add_metric([stream, consumer], float(info.num_ack_pending or 0))
        return [pending, acks]

    return fetch


def webhook_backlog_source(pool: Any) -> Refresh:
    """`hermes_webhook_backlog`: deliveries pending (due now or waiting for a retry)."""

    async def fetch() -> list[Metric]:
        async with pool.connection(timeout=1.0) as conn:
            cur = await conn.execute(
                "SELECT count(*) FILTER (WHERE next_attempt_at <= now()), count(*)"
                " FROM webhook_deliveries WHERE status = 'pending'")
            row = await cur.fetchone()
        due, total = (row or (0, 0))
        backlog = GaugeMetricFamily("hermes_webhook_backlog",
                                    "Webhook deliveries pending, due now or awaiting a retry",
                                    labels=["state"])
        backlog.add_metric(["due"], float(due))
        backlog.add_metric(["waiting"], float(total - due))
        return [backlog]

    return fetch


async def render(timeout: float = 1.0) -> bytes:
    """The exposition text, after refreshing what is fetched on scrape."""
    await SCRAPED.refresh(timeout)
    return generate_latest(REGISTRY)
