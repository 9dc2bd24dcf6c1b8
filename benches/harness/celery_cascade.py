"""The baseline cascade: the same SMS-then-email fallback built the way a Python team
would build it without Hermes, on Celery with Redis.

    celery -A benches.harness.celery_cascade worker --pool prefork --concurrency 2

- `send_step` sends a step's message to the same provider sandbox over HTTP in the
  providers' wire formats (Twilio `Messages.json` with a `StatusCallback`; SES v2
  `SendEmail` signed with SigV4 by botocore, events through an SNS subscription), then
  schedules `check_step` with `countdown` = the step's timeout.
- The sandbox's receipts go to a small web app (`benches.harness.celery_web`), which checks
  their signatures and records the delivery in Redis.
- `check_step` runs when the step's timeout is up: if no receipt closed the step, it falls
  through to the next step, or the cascade ends `failed`.
- `notify` posts the final `message.finished` webhook (HMAC-SHA256 signed) to the same
  receiver Hermes reports to.

State lives in Redis only (a hash per cascade and a key per closed step): there is no
system of record such as Hermes's PostgreSQL, so this baseline does less durable work per
cascade than Hermes does. Settings come from the environment: `BENCH_CELERY_BROKER` (a
Redis URL), `BENCH_SANDBOX_URL`, `BENCH_CALLBACK_URL` (the web app) and
`BENCH_WEBHOOK_URL` (the final webhook).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from typing import Any

import httpx
import redis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from celery import Celery

from hermes.sandbox.credentials import SES, TWILIO

CONFIGURATION_SET = "celery-bench"
WEBHOOK_SECRET = b"celery-bench-webhook-secret"
# Redis keys live this long: long enough for any bench run.
TTL_S = 3600

app = Celery("celery_cascade", broker=os.environ.get("BENCH_CELERY_BROKER",
                                                    "redis://127.0.0.1:6379/1"))
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False,
                broker_connection_retry_on_startup=True, worker_send_task_events=False,
                broker_transport_options={"visibility_timeout": TTL_S})

_clients: dict[str, Any] = {}


def _redis() -> redis.Redis:
    if "redis" not in _clients:
        _clients["redis"] = redis.Redis.from_url(app.conf.broker_url)
    client: redis.Redis = _clients["redis"]
    return client


def _http() -> httpx.Client:
    if "http" not in _clients:
        _clients["http"] = httpx.Client(timeout=10)
    client: httpx.Client = _clients["http"]
    return client


def save_plan(mid: str, plan: dict[str, Any]) -> None:
    _redis().set(f"cc:{mid}:plan", json.dumps(plan), ex=TTL_S)


def load_plan(mid: str) -> dict[str, Any]:
    raw = _redis().get(f"cc:{mid}:plan")
    assert raw is not None, mid
    plan: dict[str, Any] = json.loads(raw)
    return plan


def close_step(mid: str, step: int) -> bool:
    """Close a step once: the first of its receipt and its timeout wins."""
    return bool(_redis().set(f"cc:{mid}:closed:{step}", b"1", nx=True, ex=TTL_S))


def _send_sms(mid: str, step: int, plan: dict[str, Any]) -> bool:
    sandbox, callback = os.environ["BENCH_SANDBOX_URL"], os.environ["BENCH_CALLBACK_URL"]
    r = _http().post(f"{sandbox}/2010-04-01/Accounts/{TWILIO.account_sid}/Messages.json",
                     data={"To": plan["to"]["phone"], "From": TWILIO.from_number,
                           "Body": plan["body"],
                           "StatusCallback": f"{callback}/twilio/{mid}/{step}"},
                     auth=(TWILIO.account_sid, TWILIO.auth_token))
    return r.status_code == 201


def _send_email(mid: str, step: int, plan: dict[str, Any]) -> bool:
    url = f"{os.environ['BENCH_SANDBOX_URL']}/v2/email/outbound-emails"
    body = json.dumps({
        "FromEmailAddress": SES.from_address,
        "Destination": {"ToAddresses": [plan["to"]["email"]]},
        "Content": {"Simple": {"Subject": {"Data": plan.get("subject") or plan["body"]},
                               "Body": {"Text": {"Data": plan["body"]}}}},
        "ConfigurationSetName": CONFIGURATION_SET,
    }).encode()
    request = AWSRequest("POST", url, data=body, headers={"content-type": "application/json"})
    SigV4Auth(Credentials(SES.access_key_id, SES.secret_access_key), "ses",
              SES.region).add_auth(request)
    r = _http().post(url, content=body, headers=dict(request.headers.items()))
    if r.status_code != 200:
        return False
    # The SNS event names the SES message id: remember which cascade step it belongs to.
    _redis().set(f"cc:ses:{r.json()['MessageId']}", f"{mid}:{step}", ex=TTL_S)
    return True


@app.task
def send_step(mid: str, plan: dict[str, Any], step: int) -> None:
    s = plan["steps"][step]
    _redis().rpush(f"cc:{mid}:channels", s["channel"])
    sent = (_send_sms if s["channel"] == "sms" else _send_email)(mid, step, plan)
    if not sent:
        # The provider refused or failed: the step ends now.
        if close_step(mid, step):
            advance(mid, plan, step)
        return
    check_step.apply_async((mid, plan, step), countdown=s["timeout_s"])


@app.task
def check_step(mid: str, plan: dict[str, Any], step: int) -> None:
    if close_step(mid, step):
        advance(mid, plan, step)


def advance(mid: str, plan: dict[str, Any], step: int) -> None:
    if step + 1 < len(plan["steps"]):
        send_step.delay(mid, plan, step + 1)
    else:
        notify.delay(mid, "failed")


@app.task
def notify(mid: str, outcome: str) -> None:
    channels = [c.decode() for c in _redis().lrange(f"cc:{mid}:channels", 0, -1)]
    body = json.dumps({"type": "message.finished", "timestamp": time.time(),
                       "data": {"message_id": mid, "outcome": outcome,
                                "attempts": [{"channel": c} for c in channels]}}).encode()
    wid, ts = f"msg_{mid}", str(int(time.time()))
    mac = hmac.new(WEBHOOK_SECRET, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()
    _http().post(os.environ["BENCH_WEBHOOK_URL"], content=body, headers={
        "content-type": "application/json", "webhook-id": wid, "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(mac).decode()})
