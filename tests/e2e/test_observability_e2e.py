"""Metrics, traces and logs of a cascade that runs through `hermes api`, `hermes worker`
and `hermes sandbox` processes.

The processes write their spans to one JSON-lines file (`HERMES_TRACE_FILE`) and log
JSON at debug level; the worker serves `/metrics` on a port of its own. One message
falls back from an unconfirmed SMS to an email that is delivered; the test then
reads the trace, both scrapes and the logs.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hermes.devstack.services import free_port
from tests.e2e.conftest import Receiver

WORKER_METRICS_PORT = free_port()


def proc_env(logs: Path) -> dict[str, str]:
    """What `hermes_procs` adds to the environment of the api, worker and sandbox."""
    return {"HERMES_TRACE_FILE": str(logs / "spans.jsonl"), "HERMES_LOG_FORMAT": "json",
            "HERMES_LOG_LEVEL": "debug", "HERMES_WORKER_METRICS_PORT": str(WORKER_METRICS_PORT)}


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a scrape (parsing it proves the exposition format)."""
    return [(s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text) for s in family.samples]


def value(scrape: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels`."""
    return sum(v for n, lb, v in scrape if n == name and labels.items() <= lb.items())


def spans_of(path: Path, trace_id: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [s for line in path.read_text().splitlines() if line.strip()
            for s in [json.loads(line)] if s["trace_id"] == trace_id]


@pytest.fixture
async def cascade(clean_streams: None, hermes_procs: dict[str, str], tenant: dict[str, str],
                  receiver: tuple[Receiver, str]) -> dict[str, Any]:
    """One message: SMS accepted but never confirmed (1 s step), then email delivered."""
    hook, hook_url = receiver
    async with httpx.AsyncClient(base_url=hermes_procs["api"], timeout=10,
                                 headers={"Authorization": tenant["auth"]}) as api:
        r = await api.post("/v1/webhooks/endpoints", json={"url": hook_url})
        assert r.status_code == 201, r.text
        r = await api.post("/v1/messages", json={
            "to": {"phone": "+4520120003", "email": "ada@example.com"}, "body": "Shipped",
            "steps": [{"channel": "sms", "timeout": "1s"}, {"channel": "email", "timeout": "20s"}]})
        assert r.status_code == 202, r.text
        mid = r.json()["id"]
    final = await hook.wait_for(lambda e: e["type"] == "message.finished"
                                and e["data"]["message_id"] == mid)
    assert final["data"]["outcome"] == "delivered"
    webhooks = [e for e in hook.events if e["data"]["message_id"] == mid]
    return {"id": mid, "tenant": tenant["id"], "webhooks": len(webhooks),
            "logs": Path(hermes_procs["logs"])}


@pytest.mark.timeout(180)
async def test_one_trace_spans_api_engine_delivery_provider_callback_and_webhook(
    cascade: dict[str, Any],
) -> None:
    trace_id = cascade["id"].replace("-", "")  # a message's trace id is its id
    path = cascade["logs"] / "spans.jsonl"
    wanted = {"POST /v1/messages", "engine start", "deliver", "provider POST",
              "callback receipt", "engine receipt", "engine timer", "engine finish",
              "webhook deliver"}
    deadline = time.monotonic() + 15
    spans = spans_of(path, trace_id)
    while not wanted <= {s["name"] for s in spans} and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        spans = spans_of(path, trace_id)
    names = sorted(s["name"] for s in spans)
    assert wanted <= set(names), names

    by_id = {s["span_id"]: s for s in spans}

    def one(name: str, **attrs: Any) -> dict[str, Any]:
        found = [s for s in spans if s["name"] == name
                 and attrs.items() <= s["attributes"].items()]
        assert len(found) == 1, (name, attrs, names)
        return found[0]

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        assert span["parent_span_id"] in by_id, (span["name"], "has no parent in the trace")
        return by_id[span["parent_span_id"]]

    accept = one("POST /v1/messages")
    assert accept["parent_span_id"] is None
    assert accept["attributes"]["hermes.tenant_id"] == cascade["tenant"]
    assert parent(one("engine start"))["span_id"] == accept["span_id"]

    sms = one("deliver", **{"hermes.channel": "sms"})
    email = one("deliver", **{"hermes.channel": "email"})
    assert parent(sms)["name"] == "engine start"   # dispatched when the cascade started
    assert parent(email)["name"] == "engine timer"  # dispatched when the SMS step timed out
    assert parent(parent(email))["span_id"] == accept["span_id"]
    calls = [s for s in spans if s["name"] == "provider POST"]
    assert {parent(c)["span_id"] for c in calls} == {sms["span_id"], email["span_id"]}

    # The SES receipt, through the API's callback, back to the engine, which finishes.
    receipt = one("callback receipt", **{"hermes.receipt_status": "delivered"})
    assert parent(receipt)["span_id"] == email["span_id"]
    applied = [s for s in spans if s["name"] == "engine receipt"]
    assert receipt["span_id"] in {parent(s)["span_id"] for s in applied}
    finish = one("engine finish")
    assert finish["attributes"]["hermes.outcome"] == "delivered"
    hooks = [s for s in spans if s["name"] == "webhook deliver"]
    assert len(hooks) == cascade["webhooks"]
    assert all(parent(h)["span_id"] == accept["span_id"] for h in hooks)

    # Spans from two processes: the API's and the worker's, told apart by their resource.
    services = {s["name"]: (s["resource"]["service.name"], s["resource"]["process.pid"])
                for s in spans}
    api, worker = services["POST /v1/messages"], services["deliver"]
    assert api[0] == "hermes-api" and worker[0] == "hermes-worker" and api[1] != worker[1]
    assert services["callback receipt"] == api
    for name in ("engine start", "engine timer", "engine receipt", "provider POST",
                 "webhook deliver"):
        assert services[name] == worker, name


@pytest.mark.timeout(180)
async def test_metrics_of_api_and_worker_move_with_the_message(
    cascade: dict[str, Any], hermes_procs: dict[str, str],
) -> None:
    tenant = cascade["tenant"]
    async with httpx.AsyncClient(timeout=10) as http:
        api = samples((await http.get(f"{hermes_procs['api']}/metrics")).text)
        r = await http.get(f"http://127.0.0.1:{WORKER_METRICS_PORT}/metrics")
        assert r.status_code == 200
        worker = samples(r.text)

    # The API: one message accepted for this tenant, the request, the SES receipt.
    assert value(api, "hermes_messages_accepted_total", tenant=tenant, mode="test") == 1
    assert value(api, "hermes_http_requests_total", method="POST", route="/v1/messages",
                 status="202") >= 1
    assert value(api, "hermes_http_request_duration_seconds_count", method="POST",
                 route="/v1/messages") >= 1
    assert value(api, "hermes_receipts_total", provider="ses_email", status="delivered") >= 1
    assert value(api, "hermes_adapter_call_seconds_count", adapter="ses_email",
                 op="parse_callback") >= 1

    # The worker: finished by the email, one attempt per channel, the cascade's duration.
    assert value(worker, "hermes_messages_finished_total", tenant=tenant, channel="email",
                 provider="ses_email", outcome="delivered") == 1
    assert value(worker, "hermes_messages_finished_total", tenant=tenant) == 1
    assert value(worker, "hermes_attempts_total", channel="sms", result="accepted") >= 1
    assert value(worker, "hermes_attempts_total", channel="email", provider="ses_email",
                 result="accepted") >= 1
    assert value(worker, "hermes_attempt_duration_seconds_count", channel="email",
                 provider="ses_email") >= 1
    assert value(worker, "hermes_adapter_call_seconds_count", adapter="ses_email",
                 op="build_request") >= 1
    took = value(worker, "hermes_cascade_duration_seconds_sum", outcome="delivered")
    assert took >= 1.0  # it waited out the one-second SMS step
    assert value(worker, "hermes_webhook_deliveries_total", result="delivered") >= \
        cascade["webhooks"]
    # Read on scrape: queue depths per consumer, the webhook backlog, the engine's wheel.
    streams = {lb["stream"] for n, lb, _ in worker if n == "hermes_jetstream_pending_messages"}
    assert {"HERMES_CASCADE", "HERMES_EVENTS", "HERMES_DELIVER"} <= streams, streams
    (delivery,) = [v for n, lb, v in worker if n == "hermes_jetstream_pending_messages"
                   and lb == {"stream": "HERMES_DELIVER", "consumer": "delivery"}]
    assert delivery == 0  # the worker kept up: no job waits
    assert any(n == "hermes_webhook_backlog" for n, _, _ in worker)
    names = {n for n, _, _ in worker}
    assert {"hermes_engine_pending_timers", "hermes_engine_active_cascades"} <= names


@pytest.mark.timeout(180)
async def test_json_log_lines_carry_the_message_and_tenant(cascade: dict[str, Any]) -> None:
    def lines(name: str) -> list[dict[str, Any]]:
        text = (cascade["logs"] / name).read_text()
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    worker = [r for r in lines("worker.log") if r.get("message_id") == cascade["id"]]
    assert worker, "no worker log line names the message"
    attempt = next(r for r in worker if r["logger"] == "hermes.delivery")
    assert attempt["tenant_id"] == cascade["tenant"]
    assert attempt["trace_id"] == cascade["id"].replace("-", "")
    assert {"time", "level", "logger", "msg"} <= attempt.keys()
    api = [r for r in lines("api.log") if r.get("message_id") == cascade["id"]]
    assert api and api[0]["tenant_id"] == cascade["tenant"]
