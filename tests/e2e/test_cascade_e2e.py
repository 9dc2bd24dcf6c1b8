"""The whole of Hermes as separate processes: API, worker and provider sandbox over HTTP.

PostgreSQL, NATS and Redis are the test session's; the API, the worker and the
sandbox run as `hermes api`, `hermes worker` and `hermes sandbox` processes,
and a webhook receiver in the test collects what the tenant would hear.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from standardwebhooks import Webhook

from tests.e2e.conftest import Receiver


@pytest.mark.timeout(180)
async def test_seed_sms_unconfirmed_then_email_delivered_reported_by_webhook(
    clean_streams: None, hermes_procs: dict[str, str], tenant: dict[str, str],
    receiver: tuple[Receiver, str],
) -> None:
    hook, hook_url = receiver
    headers = {"Authorization": tenant["auth"]}
    async with httpx.AsyncClient(base_url=hermes_procs["api"], headers=headers,
                                 timeout=10) as api:
        r = await api.post("/v1/webhooks/endpoints", json={"url": hook_url})
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        # Phone ending 0003: the SMS is accepted and never confirmed.
        r = await api.put("/v1/contacts/cust-1", json={"phone": "+4520120003",
                                                       "email": "ada@example.com"})
        assert r.status_code in (200, 201), r.text
        # The SMS step waits one second; the email step long enough for its SNS receipt.
        r = await api.post("/v1/messages", json={
            "to": "cust-1", "body": "Your order has shipped",
            "steps": [{"channel": "sms", "timeout": "1s"}, {"channel": "email", "timeout": "20s"}]})
        assert r.status_code == 202, r.text
        mid = r.json()["id"]

        final = await hook.wait_for(lambda e: e["type"] == "message.finished"
                                    and e["data"]["message_id"] == mid)
        assert final["data"]["outcome"] == "delivered"
        attempts = final["data"]["attempts"]
        assert [a["channel"] for a in attempts] == ["sms", "email"]
        assert attempts[0]["provider_message_id"] and attempts[1]["receipt_at"]
        assert any(e["type"] == "message.fallback" and e["data"]["message_id"] == mid
                   for e in hook.events)

        # Every webhook verifies with the Standard Webhooks reference implementation.
        wh = Webhook(secret)
        for hdrs, body in hook.raw:
            lower = {k.lower(): v for k, v in hdrs.items()}
            wh.verify(body, {"webhook-id": lower["webhook-id"],
                             "webhook-timestamp": lower["webhook-timestamp"],
                             "webhook-signature": lower["webhook-signature"]})

        r = await api.get(f"/v1/messages/{mid}")
        assert r.status_code == 200, r.text
        msg = r.json()
        assert msg["status"] == "delivered"
        kinds = [e["kind"] for e in msg["events"]]
        for k in ("accepted", "step_timed_out", "fallback", "receipt", "finished"):
            assert k in kinds, kinds


@pytest.mark.timeout(120)
async def test_sms_delivered_stops_the_cascade_and_email_is_never_sent(
    clean_streams: None, hermes_procs: dict[str, str], tenant: dict[str, str],
    receiver: tuple[Receiver, str],
) -> None:
    hook, hook_url = receiver
    email = f"stop-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(base_url=hermes_procs["api"],
                                 headers={"Authorization": tenant["auth"]}, timeout=10) as api:
        await api.post("/v1/webhooks/endpoints", json={"url": hook_url})
        r = await api.post("/v1/messages", json={
            "to": {"phone": "+4520120001", "email": email}, "body": "Hi",
            "cascade": ["sms", "email"], "timeout_per_step": "5s"})
        assert r.status_code == 202, r.text
        mid = r.json()["id"]
        final = await hook.wait_for(lambda e: e["type"] == "message.finished"
                                    and e["data"]["message_id"] == mid)
        assert final["data"]["outcome"] == "delivered"
        assert [a["channel"] for a in final["data"]["attempts"]] == ["sms"]
    await asyncio.sleep(6)  # past the step timeout: still nothing for the email provider
    async with httpx.AsyncClient(timeout=10) as http:
        seen = (await http.get(f"{hermes_procs['sandbox']}/_sandbox/requests",
                               params={"provider": "ses"})).json()
    assert email not in json.dumps(seen)
