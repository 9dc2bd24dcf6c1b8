"""The /_sandbox control and inspection API."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import httpx

from hermes.sandbox import Sandbox, serve
from hermes.sandbox.credentials import TWILIO

from .helpers import messente_send, twilio_send


async def test_scripted_outcomes_are_consumed_in_order(http: httpx.AsyncClient) -> None:
    answer = await http.post("/_sandbox/outcomes", json={
        "recipient": "+447400123456", "outcomes": ["server_error", "rate_limited"],
    })
    assert answer.status_code == 200
    first = await twilio_send(http, "+447400123456")
    second = await twilio_send(http, "+447400123456")
    third = await twilio_send(http, "+447400123456")
    assert [first.status_code, second.status_code, third.status_code] == [500, 429, 201]


async def test_unknown_outcome_is_a_400(http: httpx.AsyncClient) -> None:
    answer = await http.post("/_sandbox/outcomes", json={"recipient": "+447400123456",
                                                          "outcomes": ["exploded"]})
    assert answer.status_code == 400


async def test_outage_hits_one_provider_until_cleared(http: httpx.AsyncClient) -> None:
    assert (await http.put("/_sandbox/outages/twilio", json={"mode": "error"})).status_code == 200
    assert (await twilio_send(http, "+447400123456")).status_code == 500
    assert (await messente_send(http, "+447400123456")).status_code == 201
    assert (await http.get("/_sandbox/outages")).json()["outages"]["twilio"]["mode"] == (
        "server_error")
    assert (await http.delete("/_sandbox/outages/twilio")).status_code == 200
    assert (await twilio_send(http, "+447400123456")).status_code == 201


async def test_outage_with_duration_ends_by_itself(http: httpx.AsyncClient) -> None:
    await http.put("/_sandbox/outages/messente", json={"mode": "error", "duration_ms": 1})
    await asyncio.sleep(0.01)
    assert (await messente_send(http, "+447400123456")).status_code == 201


async def test_inspection_lists_parsed_bodies_and_headers_by_provider(
    http: httpx.AsyncClient,
) -> None:
    await twilio_send(http, "+447400123456")
    await messente_send(http, "+447400123456")
    answer = await http.get("/_sandbox/requests", params={"provider": "twilio"})
    [request] = answer.json()["requests"]
    assert request["body"]["To"] == "+447400123456"
    assert request["headers"]["authorization"].startswith("Basic ")
    assert request["path"] == f"/2010-04-01/Accounts/{TWILIO.account_sid}/Messages.json"
    assert (request["status"], request["outcome"]) == (201, "delivered")
    everything = (await http.get("/_sandbox/requests")).json()["requests"]
    assert {r["provider"] for r in everything} == {"twilio", "messente"}


async def test_reset_forgets_traffic_and_scripts(http: httpx.AsyncClient) -> None:
    await twilio_send(http, "+447400123456")
    await http.post("/_sandbox/outcomes", json={"recipient": "+447400123456",
                                                "outcomes": ["server_error"]})
    await http.post("/_sandbox/reset")
    assert (await http.get("/_sandbox/requests")).json()["requests"] == []
    assert (await twilio_send(http, "+447400123456")).status_code == 201


async def test_config_sets_receipt_delay(sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    answer = await http.put("/_sandbox/config", json={"receipt_delay_ms": 250})
    assert answer.json()["receipt_delay_ms"] == 250
    assert sandbox.state.config.receipt_delay == 0.25


async def test_credentials_endpoint_gives_base_urls(sandbox: Sandbox,
                                                    http: httpx.AsyncClient) -> None:
    accounts = (await http.get("/_sandbox/credentials")).json()
    assert accounts["twilio"]["account_sid"] == TWILIO.account_sid
    assert accounts["messente"]["base_url"] == sandbox.url + "/v1"
    assert accounts["fcm"]["service_account"]["token_uri"] == sandbox.url + "/token"


async def test_serve_runs_until_cancelled() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = asyncio.create_task(serve("127.0.0.1", port, handle_signals=False))
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    answer = await client.get(f"http://127.0.0.1:{port}/_sandbox/health")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.02)
        assert answer.json()["status"] == "ok"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
