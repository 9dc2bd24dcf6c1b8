"""Cascade scenarios end to end: failover inside a step, late receipts, expiry and scheduling.

As in test_cascade_e2e.py, Hermes runs as `hermes api`, `hermes worker` and
`hermes sandbox` processes against the session's PostgreSQL, NATS and Redis;
outcomes are chosen with the sandbox's control API (outages, scripted
outcomes) and what the providers received is read from its inspection API.
Each test uses recipients of its own, so the sandbox's record of one test
never answers for another.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from hermes.sandbox.outcomes import normalise_phone
from tests.e2e.conftest import Receiver


def phone(suffix: str) -> str:
    """A UK mobile number of this test's own whose last four digits pick the sandbox outcome."""
    while True:
        number = f"+4474{random.randrange(10_000):04d}{suffix}"
        if normalise_phone(number) == number:
            return number


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def sent_to(sandbox: str, provider: str, address: str) -> list[dict[str, Any]]:
    """The requests `provider` received that name `address`."""
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{sandbox}/_sandbox/requests", params={"provider": provider})
    r.raise_for_status()
    return [q for q in r.json()["requests"] if address in json.dumps(q["body"])]


@pytest.fixture
async def api(clean_streams: None, hermes_procs: dict[str, str], tenant: dict[str, str],
              receiver: tuple[Receiver, str]) -> AsyncIterator[httpx.AsyncClient]:
    """The tenant's API client, with the receiver subscribed to its webhooks."""
    async with httpx.AsyncClient(base_url=hermes_procs["api"], timeout=10,
                                 headers={"Authorization": tenant["auth"]}) as client:
        r = await client.post("/v1/webhooks/endpoints", json={"url": receiver[1]})
        assert r.status_code == 201, r.text
        yield client


async def send(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    r = await api.post("/v1/messages", json=body)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def finished(hook: Receiver, mid: str, timeout: float = 30) -> dict[str, Any]:
    return await hook.wait_for(lambda e: e["type"] == "message.finished"
                               and e["data"]["message_id"] == mid, timeout=timeout)


@pytest.mark.timeout(120)
async def test_primary_sms_provider_failing_fails_over_to_the_second_in_the_same_step(
    api: httpx.AsyncClient, hermes_procs: dict[str, str], receiver: tuple[Receiver, str],
) -> None:
    hook, _ = receiver
    sandbox = hermes_procs["sandbox"]
    to = phone("0001")
    email = f"failover-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(base_url=sandbox, timeout=10) as control:
        r = await control.put("/_sandbox/outages/twilio", json={"mode": "error"})
        assert r.status_code == 200, r.text
        try:
            mid = await send(api, {"to": {"phone": to, "email": email}, "body": "Failover",
                                   "cascade": ["sms", "email"], "timeout_per_step": "10s"})
            final = await finished(hook, mid)
        finally:
            await control.delete("/_sandbox/outages/twilio")

    assert final["data"]["outcome"] == "delivered"
    attempts = final["data"]["attempts"]
    assert [(a["step"], a["channel"]) for a in attempts] == [(0, "sms"), (0, "sms")]
    first, second = attempts
    assert first["provider"] != second["provider"]
    assert first["provider_account_id"] != second["provider_account_id"]
    assert first["status"] == "failed" and first["error_code"] == "provider.unavailable"
    assert second["status"] == "delivered" and second["receipt_at"]

    # The providers saw exactly that: a 500 from Twilio, then Messente took it.
    twilio = await sent_to(sandbox, "twilio", to)
    messente = await sent_to(sandbox, "messente", to)
    assert [q["status"] for q in twilio] == [500]
    assert len(messente) == 1 and messente[0]["outcome"] == "delivered"
    assert await sent_to(sandbox, "ses", email) == []

    r = await api.get(f"/v1/messages/{mid}")
    kinds = [e["kind"] for e in r.json()["events"]]
    assert "failover" in kinds and "fallback" not in kinds, kinds
    assert not any(e["type"] == "message.fallback" and e["data"]["message_id"] == mid
                   for e in hook.events)


@pytest.mark.timeout(120)
async def test_sms_receipt_after_the_move_to_email_is_recorded_late_and_reported(
    api: httpx.AsyncClient, hermes_procs: dict[str, str], receiver: tuple[Receiver, str],
) -> None:
    hook, _ = receiver
    sandbox = hermes_procs["sandbox"]
    to = phone("1234")
    email = f"late-{uuid.uuid4().hex[:8]}@example.com"
    # The SMS is delivered, but its receipt comes 3 s after the send: the SMS step
    # (1 s) has timed out by then and the email has been delivered.
    async with httpx.AsyncClient(base_url=sandbox, timeout=10) as control:
        r = await control.post("/_sandbox/outcomes", json={
            "recipient": to, "outcomes": ["delivered"], "delay_ms": 3000})
        assert r.status_code == 200, r.text
    mid = await send(api, {"to": {"phone": to, "email": email}, "body": "Late",
                           "steps": [{"channel": "sms", "timeout": "1s"},
                                     {"channel": "email", "timeout": "20s"}]})
    final = await finished(hook, mid)
    assert final["data"]["outcome"] == "delivered"
    assert [a["channel"] for a in final["data"]["attempts"]] == ["sms", "email"]

    late = await hook.wait_for(lambda e: e["type"] == "message.late_delivered"
                               and e["data"]["message_id"] == mid, timeout=20)
    assert late["data"]["channel"] == "sms" and late["data"]["step"] == 0
    assert late["data"]["late"] is True

    r = await api.get(f"/v1/messages/{mid}")
    msg = r.json()
    assert msg["status"] == "delivered"  # the outcome stands; the late receipt is news only
    kinds = [e["kind"] for e in msg["events"]]
    assert kinds.index("fallback") < kinds.index("finished") < kinds.index("late_receipt"), kinds
    late_events = [e["data"] for e in msg["events"] if e["kind"] == "late_receipt"]
    assert {"step": 0, "attempt": 1, "status": "delivered"} in late_events, late_events
    sms = next(a for a in msg["attempts"] if a["channel"] == "sms")
    assert sms["status"] == "delivered"
    assert len(await sent_to(sandbox, "twilio", to) + await sent_to(sandbox, "messente", to)) == 1


@pytest.mark.timeout(120)
async def test_sms_receipt_while_the_email_step_runs_ends_the_cascade_delivered(
    api: httpx.AsyncClient, hermes_procs: dict[str, str], receiver: tuple[Receiver, str],
) -> None:
    hook, _ = receiver
    sandbox = hermes_procs["sandbox"]
    to = phone("1234")
    email = f"noreceipt+{uuid.uuid4().hex[:8]}@example.com"  # the email is never confirmed
    async with httpx.AsyncClient(base_url=sandbox, timeout=10) as control:
        r = await control.post("/_sandbox/outcomes", json={
            "recipient": to, "outcomes": ["delivered"], "delay_ms": 2500})
        assert r.status_code == 200, r.text
    started = time.monotonic()
    mid = await send(api, {"to": {"phone": to, "email": email}, "body": "Late, still running",
                           "steps": [{"channel": "sms", "timeout": "1s"},
                                     {"channel": "email", "timeout": "30s"}]})
    late = await hook.wait_for(lambda e: e["type"] == "message.late_delivered"
                               and e["data"]["message_id"] == mid, timeout=20)
    assert late["data"]["channel"] == "sms"
    final = await finished(hook, mid, timeout=20)
    assert time.monotonic() - started < 20  # well before the email step's 30 s
    assert final["data"]["outcome"] == "delivered"
    msg = (await api.get(f"/v1/messages/{mid}")).json()
    kinds = [e["kind"] for e in msg["events"]]
    assert kinds.index("fallback") < kinds.index("late_receipt") < kinds.index("finished"), kinds
    assert len(await sent_to(sandbox, "ses", email)) == 1


@pytest.mark.timeout(120)
async def test_expiry_ends_the_cascade_expired_and_nothing_more_is_sent(
    api: httpx.AsyncClient, hermes_procs: dict[str, str], receiver: tuple[Receiver, str],
) -> None:
    hook, _ = receiver
    sandbox = hermes_procs["sandbox"]
    to = phone("0003")  # accepted, never confirmed
    email = f"expiry-{uuid.uuid4().hex[:8]}@example.com"
    expires = datetime.now(UTC) + timedelta(seconds=2)
    mid = await send(api, {"to": {"phone": to, "email": email}, "body": "OTP 123456",
                           "steps": [{"channel": "sms", "timeout": "4s"},
                                     {"channel": "email", "timeout": "10s"}],
                           "expires_at": iso(expires)})
    final = await finished(hook, mid)
    assert final["data"]["outcome"] == "expired"
    assert datetime.now(UTC) >= expires
    assert [a["channel"] for a in final["data"]["attempts"]] == ["sms"]

    # Past the moment the SMS step would have timed out: the email never goes.
    await asyncio.sleep(max(0.0, (expires + timedelta(seconds=3) - datetime.now(UTC))
                            .total_seconds()))
    assert await sent_to(sandbox, "ses", email) == []
    assert len(await sent_to(sandbox, "twilio", to) + await sent_to(sandbox, "messente", to)) == 1
    msg = (await api.get(f"/v1/messages/{mid}")).json()
    assert msg["status"] == "expired" and msg["outcome"] == "expired"
    assert [a["channel"] for a in msg["attempts"]] == ["sms"]
    kinds = [e["kind"] for e in msg["events"]]
    assert "fallback" not in kinds and kinds[-1] == "finished", kinds
    assert not any(e["type"] == "message.fallback" and e["data"]["message_id"] == mid
                   for e in hook.events)


@pytest.mark.timeout(120)
async def test_send_at_in_the_future_sends_nothing_before_it_then_sends(
    api: httpx.AsyncClient, hermes_procs: dict[str, str], receiver: tuple[Receiver, str],
) -> None:
    hook, _ = receiver
    sandbox = hermes_procs["sandbox"]
    to = phone("0001")
    send_at = datetime.now(UTC) + timedelta(seconds=3)
    mid = await send(api, {"to": {"phone": to}, "body": "Later", "cascade": ["sms"],
                           "timeout_per_step": "10s", "send_at": iso(send_at)})
    msg = (await api.get(f"/v1/messages/{mid}")).json()
    assert msg["send_at"] is not None
    assert datetime.fromisoformat(msg["send_at"]) == send_at.replace(
        microsecond=send_at.microsecond // 1000 * 1000)

    assert msg["status"] == "scheduled" and msg["attempts"] == [], msg

    # Until the time comes the providers have nothing: whatever the sandbox has
    # received for this number (its clock is this machine's) came at send_at or later.
    seen: list[dict[str, Any]] = []
    while not seen and datetime.now(UTC) < send_at + timedelta(seconds=2):
        seen = await sent_to(sandbox, "twilio", to) + await sent_to(sandbox, "messente", to)
        assert all(q["received_at"] >= send_at.timestamp() for q in seen), (seen, send_at)
        if datetime.now(UTC) < send_at - timedelta(seconds=1):
            msg = (await api.get(f"/v1/messages/{mid}")).json()
            assert msg["status"] == "scheduled" and msg["attempts"] == [], msg
        await asyncio.sleep(0.1)

    final = await finished(hook, mid)
    assert final["data"]["outcome"] == "delivered"
    requests = await sent_to(sandbox, "twilio", to) + await sent_to(sandbox, "messente", to)
    assert len(requests) == 1
    assert requests[0]["received_at"] >= send_at.timestamp()
    msg = (await api.get(f"/v1/messages/{mid}")).json()
    kinds = [e["kind"] for e in msg["events"]]
    assert kinds.index("scheduled") < kinds.index("step_started"), kinds
    sent = datetime.fromisoformat(msg["attempts"][0]["sent_at"])
    assert sent >= send_at
