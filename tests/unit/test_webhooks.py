"""Webhook signing, schedule, payload and URL rules, without I/O."""

from __future__ import annotations

import base64
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook

from hermes.domain.errors import HermesError
from hermes.webhooks import EVENT_TYPES, MAX_ATTEMPTS, RETRY_SCHEDULE_S, WebhookEvent, new_secret
from hermes.webhooks.delivery import classify
from hermes.webhooks.events import body_of
from hermes.webhooks.schedule import retry_delay
from hermes.webhooks.signing import secret_key, sign
from hermes.webhooks.targets import validate_url


def test_secrets_are_whsec_base64_of_enough_random_bytes() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("whsec_")
    assert len(base64.b64decode(a.removeprefix("whsec_"))) >= 24
    assert secret_key(a) == base64.b64decode(a[6:])
    with pytest.raises(ValueError):
        secret_key("not-a-secret")


@pytest.mark.parametrize("body", [b'{"type":"message.sent"}',
                                  '{"x": "\u00e6\u00f8\u00e5"}'.encode()])
def test_signature_matches_the_reference_library(body: bytes) -> None:
    secret = new_secret()
    msg_id = str(uuid.uuid4())
    ts = 1_700_000_000
    ours = sign(secret, msg_id, ts, body)
    theirs = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body.decode())
    assert ours == theirs and ours.startswith("v1,")
    assert sign(secret, msg_id, ts + 1, body) != ours
    assert sign(secret, msg_id, ts, body + b" ") != ours


def test_schedule_is_the_standard_one_with_ten_percent_jitter() -> None:
    assert RETRY_SCHEDULE_S == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert MAX_ATTEMPTS == 8
    rng = random.Random(1)
    for made in range(1, MAX_ATTEMPTS):
        delays = [retry_delay(made, rng) for _ in range(200)]
        base = RETRY_SCHEDULE_S[made]
        assert all(d is not None and base * 0.9 <= d <= base * 1.1 for d in delays)
        assert len(set(delays)) > 100  # jittered, not constant
    assert retry_delay(MAX_ATTEMPTS, rng) is None


def test_payload_is_type_timestamp_and_data() -> None:
    mid = uuid.uuid4()
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    ev = WebhookEvent(tenant_id=uuid.uuid4(), message_id=mid, type="message.fallback",
                      payload={"from": "sms", "to": "email"}, at=at)
    body = body_of(ev, datetime.now(UTC))
    assert body == {"type": "message.fallback", "timestamp": "2026-01-02T01:04:05Z",
                    "data": {"message_id": str(mid), "from": "sms", "to": "email"}}
    assert "message.finished" in EVENT_TYPES and "message.late_delivered" in EVENT_TYPES
    bogus = WebhookEvent(tenant_id=uuid.uuid4(), message_id=mid,
                         type="message.exploded")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        body_of(bogus, datetime.now(UTC))


@pytest.mark.parametrize("url", [
    "https://example.com/hooks", "http://127.0.0.1:8080/x?y=1", "HTTPS://Example.COM",
    "http://[::1]:9000/", "http://10.0.0.7/the-ssrf-check-is-separate", " https://t.example/ ",
])
def test_good_urls_are_kept(url: str) -> None:
    assert validate_url(url) == url.strip()


@pytest.mark.parametrize("url", ["ftp://x.example", "x.example", "https://", "http://:80/",
                                 "https://a:b@x.example", "https://x.example:0/",
                                 "https://x.example/#f", "https://x .example"])
def test_bad_urls_are_webhook_invalid_url(url: str) -> None:
    with pytest.raises(HermesError) as info:
        validate_url(url)
    assert info.value.code == "webhook.invalid_url"
    assert info.value.errors[0].field == "url"


def test_answers_are_classified_as_the_schedule_says() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rng = random.Random(3)
    ok = classify(1, 204, "HTTP 204", now, rng)
    assert ok.status == "delivered" and ok.delivered_at == now and ok.error is None
    gone = classify(1, 410, "HTTP 410 Gone", now, rng)
    assert gone.status == "abandoned" and gone.disable_endpoint
    retry = classify(2, 503, "HTTP 503 Service Unavailable", now, rng)
    assert retry.status == "pending" and retry.http_status == 503 and retry.next_at is not None
    assert 270 <= (retry.next_at - now).total_seconds() <= 330
    silent = classify(1, None, "no answer within 10 s", now, rng)
    assert silent.status == "pending" and silent.http_status is None
    assert silent.error == "no answer within 10 s"
    last = classify(MAX_ATTEMPTS, 500, "x" * 2000, now, rng)
    assert last.status == "failed" and last.next_at is None and len(last.error or "") == 500
    redirect = classify(1, 301, "HTTP 301 Moved Permanently", now, rng)
    assert redirect.status == "pending"  # redirects are not followed
