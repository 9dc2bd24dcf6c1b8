"""Metrics helpers, the log formats and trace propagation, without I/O."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hermes.domain.ids import uuid7
from hermes.observability import hooks, metrics, tracing
from hermes.observability import logging as logs
from hermes.observability.engine import EngineTrace
from hermes.observability.server import token_ok


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


# -- metrics ----------------------------------------------------------------------------

def test_accepted_and_finished_count_by_their_labels() -> None:
    tenant = uuid.uuid4()
    metrics.message_accepted(tenant, "test")
    metrics.message_accepted(tenant, "test", 2)
    assert sample("hermes_messages_accepted_total", tenant=str(tenant), mode="test") == 3
    assert sample("hermes_messages_accepted_total", tenant=str(tenant), mode="live") == 0

    accepted_at = 1_764_000_000_000
    mid = uuid7(accepted_at)
    before = sample("hermes_cascade_duration_seconds_count", outcome="expired")
    metrics.message_finished(mid, tenant, "sms", "twilio_sms", "expired", accepted_at + 3000)
    assert sample("hermes_messages_finished_total", tenant=str(tenant), channel="sms",
                  provider="twilio_sms", outcome="expired") == 1
    assert sample("hermes_cascade_duration_seconds_count", outcome="expired") == before + 1
    # 3 s from accept (the time in the id) to the outcome: in the 5 s bucket, not the 2.5 s one.
    le5 = sample("hermes_cascade_duration_seconds_bucket", outcome="expired", le="5.0")
    le25 = sample("hermes_cascade_duration_seconds_bucket", outcome="expired", le="2.5")
    assert le5 - le25 >= 1


def test_webhook_results_name_a_pending_outcome_a_retry() -> None:
    before = sample("hermes_webhook_deliveries_total", result="retry")
    metrics.webhook_delivery("pending", 0.01)
    assert sample("hermes_webhook_deliveries_total", result="retry") == before + 1


def test_exposition_parses_and_scrape_sources_fail_soft() -> None:
    async def broken() -> list[Any]:
        raise ConnectionError("NATS is away")

    async def depth() -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily

        g = GaugeMetricFamily("hermes_test_depth", "a test gauge", labels=["q"])
        g.add_metric(["a"], 7.0)
        return [g]

    metrics.SCRAPED.sources.update(broken=broken, depth=depth)
    try:
        text = asyncio.run(metrics.render()).decode()
    finally:
        del metrics.SCRAPED.sources["broken"], metrics.SCRAPED.sources["depth"]
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["hermes_test_depth"].samples[0].value == 7.0
    assert {"hermes_messages_accepted", "hermes_attempts", "hermes_attempt_duration_seconds",
            "hermes_adapter_call_seconds", "process_cpu_seconds"} <= set(families)


def test_adapter_calls_failures_and_fuel_are_the_cores_totals(tmp_path: Path) -> None:
    from hermes import _core
    from hermes.providers.registry import BUILTIN_DIR

    runtime = _core.AdapterRuntime(tmp_path)
    info = runtime.load((BUILTIN_DIR / "twilio_sms.wasm").read_bytes())
    previous = metrics.ADAPTERS.runtime
    metrics.watch_adapters(runtime)
    try:
        with pytest.raises(_core.AdapterError):
            runtime.build_request(info.sha256, b"{}")  # no message: the adapter refuses it
        text = asyncio.run(metrics.render()).decode()
    finally:
        metrics.watch_adapters(previous)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    labels = {"adapter": "twilio_sms", "version": info.version}

    def value(family: str) -> float:
        (sample,) = [s for s in families[family].samples if s.labels == labels]
        return sample.value

    assert value("hermes_adapter_calls") == 1.0
    assert value("hermes_adapter_call_failures") == 1.0
    fuel = value("hermes_adapter_fuel")
    assert fuel == runtime.stats()[0]["fuel"] > 0


def test_metrics_token_needs_the_bearer_scheme_and_the_exact_token() -> None:
    assert token_ok("s3cret", "Bearer s3cret")
    assert token_ok("s3cret", "bearer s3cret")
    assert not token_ok("s3cret", None)
    assert not token_ok("s3cret", "Bearer s3cre")
    assert not token_ok("s3cret", "Basic s3cret")


# -- logs --------------------------------------------------------------------------------

def _record(msg: str = "sent %s", *args: Any) -> logging.LogRecord:
    return logging.LogRecord("hermes.delivery", logging.INFO, __file__, 1, msg, args or ("x",),
                             None)


def test_json_lines_carry_the_bound_message_and_tenant() -> None:
    mid, tid = uuid.uuid4(), uuid.uuid4()

    def formatted() -> dict[str, Any]:
        out: dict[str, Any] = json.loads(logs.JsonFormatter().format(_record()))
        return out

    ctx = contextvars.copy_context()
    ctx.run(logs.bind, mid, tid)
    line = ctx.run(formatted)
    assert line["msg"] == "sent x" and line["level"] == "info"
    assert line["logger"] == "hermes.delivery" and line["time"].endswith("Z")
    assert line["message_id"] == str(mid) and line["tenant_id"] == str(tid)
    assert "trace_id" not in line  # tracing is off
    assert "message_id" not in formatted()  # another context: nothing bound


def test_text_lines_append_the_ids_and_auto_means_json_off_a_terminal() -> None:
    mid = uuid.uuid4()
    ctx = contextvars.copy_context()
    ctx.run(logs.bind, mid, None)
    line = ctx.run(logs.TextFormatter().format, _record())
    assert line.endswith(f"hermes.delivery: sent x message={mid}")
    assert logs.resolve_format("auto") == "json"  # pytest's stderr is not a terminal
    with pytest.raises(ValueError):
        logs.resolve_format("xml")


# -- traces ------------------------------------------------------------------------------

@pytest.fixture
def spans(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "spans.jsonl"
    assert tracing.setup("test", str(path), env={})
    try:
        yield path
    finally:
        tracing.shutdown()


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tracing_is_off_unless_configured() -> None:
    assert not tracing.setup("test", None, env={"OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.ENABLED
    base = {"Nats-Msg-Id": "x"}
    assert tracing.headers(base) == {"Nats-Msg-Id": "x"}
    assert hooks.job_context({"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}) is None
    with hooks.accepting(uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)):
        assert tracing.current_trace_id() is None


def test_a_message_trace_is_rooted_at_its_accept_span_and_carried_in_headers(
        spans: Path) -> None:
    mid, tid = uuid7(1_764_000_000_000), uuid.uuid4()
    with hooks.accepting(mid, tid, datetime.now(UTC)):
        carried = tracing.headers({"Nats-Msg-Id": f"{mid}:start"})
    assert carried["traceparent"] == f"00-{mid.hex}-{mid.hex[16:]}-01"

    trace = EngineTrace()
    trace.consumed(mid, "start", carried)
    job = trace.job_headers(mid, {})
    trace.finished(mid, "delivered")
    trace.end()
    # A timer-driven turn for the same message, with nothing carried, joins the same trace.
    later = EngineTrace()
    later.span(mid)
    later.end()

    by_name = {s["name"]: s for s in _read(spans)}
    accept, start = by_name["POST /v1/messages"], by_name["engine start"]
    assert accept["trace_id"] == mid.hex and accept["parent_span_id"] is None
    assert accept["resource"]["service.name"] == "hermes-test"
    assert start["parent_span_id"] == accept["span_id"]
    assert job["traceparent"].split("-")[2] == start["span_id"]
    assert by_name["engine finish"]["parent_span_id"] == start["span_id"]
    assert by_name["engine timer"]["trace_id"] == mid.hex
    assert by_name["engine timer"]["parent_span_id"] == accept["span_id"]


def test_the_receipt_callback_is_the_child_of_the_attempt_it_reports(spans: Path) -> None:
    mid, attempt_id = uuid7(1_764_000_000_000), uuid.uuid4()

    job = SimpleNamespace(message_id=mid, tenant_id=uuid.uuid4(), attempt_id=attempt_id,
                          channel="sms", step=0, attempt=0)
    sent = SimpleNamespace(outcome="accepted", code=None)

    async def send() -> SimpleNamespace:
        async def provider() -> SimpleNamespace:
            return sent
        return await hooks.provider_call("POST", "https://api.example.com/send", provider())

    asyncio.run(hooks.attempt(job, "twilio_sms", send()))

    with hooks.receipt(SimpleNamespace(id=attempt_id, message_id=mid), "twilio_sms",
                       "delivered"):
        notice = tracing.headers({})
    result = hooks.result_headers(mid, attempt_id, {})

    by_name = {s["name"]: s for s in _read(spans)}
    deliver, call, receipt = by_name["deliver"], by_name["provider POST"], by_name[
        "callback receipt"]
    assert call["parent_span_id"] == deliver["span_id"]
    assert receipt["parent_span_id"] == deliver["span_id"]
    assert result["traceparent"].split("-")[2] == deliver["span_id"]
    assert notice["traceparent"].split("-")[2] == receipt["span_id"]
    assert {s["trace_id"] for s in by_name.values()} == {mid.hex}
    assert call["attributes"]["server.address"] == "api.example.com"


def test_a_batch_item_gets_a_root_span_of_its_own(spans: Path) -> None:
    mid, tid = uuid7(1_764_000_000_000), uuid.uuid4()
    tp = tracing.start_traceparent(mid, tid)
    (root,) = _read(spans)
    assert root["name"] == "POST /v1/messages/batch" and root["parent_span_id"] is None
    assert (root["trace_id"], root["span_id"]) == (mid.hex, mid.hex[16:])
    assert tp == f"00-{mid.hex}-{mid.hex[16:]}-01"
    # Under a single message's accept span, that span is carried and none is made.
    with hooks.accepting(mid, tid, datetime.now(UTC)):
        assert tracing.start_traceparent(mid, tid) == tp
    assert [s["name"] for s in _read(spans)] == ["POST /v1/messages/batch", "POST /v1/messages"]


def test_otlp_is_configured_by_the_standard_variables() -> None:
    try:
        assert tracing.setup("test", None, env={"OTEL_TRACES_EXPORTER": "otlp"})
        assert tracing.ENABLED
    finally:
        tracing.shutdown()
    try:
        assert tracing.setup("test", None, env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    finally:
        tracing.shutdown()
    assert not tracing.setup("test", None, env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.ENABLED


def test_ratio_sampling_keeps_a_share_of_messages_and_decides_alike_everywhere(
        tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    ids = [uuid7(1_764_000_000_000 + i) for i in range(2000)]
    # The SDK's ratio sampler reads bits a uuid fixes: it would keep every message or none.
    sdk = TraceIdRatioBased(0.25)
    assert not any(sdk.should_sample(None, m.int, "x").decision.is_sampled() for m in ids)
    kept = [m for m in ids if tracing.MessageRatioSampler(0.25).should_sample(
        None, m.int, "x").decision == tracing.Decision.RECORD_AND_SAMPLE]
    assert 350 < len(kept) < 650

    path = tmp_path / "spans.jsonl"
    assert tracing.setup("test", str(path), env={"OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                                                 "OTEL_TRACES_SAMPLER_ARG": "0.25"})
    try:
        for m in ids[:200]:
            with hooks.accepting(m, uuid.uuid4(), datetime.now(UTC)):
                pass
            # A span another process makes from the message id alone follows the same choice.
            trace = EngineTrace()
            trace.span(m)
            trace.end()
    finally:
        tracing.shutdown()
    recorded = _read(path)
    roots = {s["trace_id"] for s in recorded if s["name"] == "POST /v1/messages"}
    timers = {s["trace_id"] for s in recorded if s["name"] == "engine timer"}
    assert roots == timers == {m.hex for m in kept if m in ids[:200]}
    assert 0 < len(roots) < 200


def test_tune_gc_raises_the_young_threshold_and_freezes_what_is_loaded() -> None:
    import gc

    from hermes.observability.setup import tune_gc

    before = gc.get_threshold()
    try:
        tune_gc(0)
        assert gc.get_threshold() == before
        tune_gc(50_000)
        assert gc.get_threshold() == (50_000, before[1], before[2])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
