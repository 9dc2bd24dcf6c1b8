"""The web side of the Celery baseline: `python -m benches.harness.celery_web --port N`.

A Litestar app served as `hermes api` serves Hermes (`hermes.api.server.serve_options`,
one process):

- `POST /v1/messages` takes the body Hermes takes for these runs (`to`, `body`, `steps`
  with `channel` and `timeout`), records the cascade in Redis, queues `send_step` for its
  first step and answers 202 `{"id", "status"}`. It checks the shape only, not the
  addresses or content as Hermes's validation does.
- `POST /twilio/{id}/{step}`: Twilio status callbacks, `X-Twilio-Signature` checked.
- `POST /sns`: SNS notifications of SES events, the signature checked against the
  certificate at `SigningCertURL` (fetched once).

A `delivered` receipt closes its step (unless its timeout did first) and queues the final
webhook; `undelivered` or a bounce closes the step and falls through at once.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx
import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from litestar import Litestar, Request, post
from litestar.exceptions import PermissionDeniedException

from benches.harness import celery_cascade as cc
from hermes.sandbox.credentials import TWILIO


class _Step(msgspec.Struct):
    channel: str
    timeout: str


class _To(msgspec.Struct):
    phone: str | None = None
    email: str | None = None


class _Create(msgspec.Struct):
    to: _To
    body: str
    steps: list[_Step]


_decode_create = msgspec.json.Decoder(_Create)
_certs: dict[str, rsa.RSAPublicKey] = {}
_SNS_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")


def _seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


@post("/v1/messages", status_code=202, sync_to_thread=False)
def create(body: bytes) -> dict[str, Any]:
    spec = _decode_create.decode(body)
    mid = str(uuid.uuid4())
    plan = {"to": msgspec.to_builtins(spec.to), "body": spec.body,
            "steps": [{"channel": s.channel, "timeout_s": _seconds(s.timeout)}
                      for s in spec.steps]}
    cc.save_plan(mid, plan)
    cc.send_step.delay(mid, plan, 0)
    return {"id": mid, "object": "message", "status": "queued"}


def _twilio_signature(url: str, params: dict[str, str]) -> str:
    payload = url + "".join(k + params[k] for k in sorted(params))
    mac = hmac.new(TWILIO.auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def _receipt(mid: str, step: int, delivered: bool) -> None:
    if not cc.close_step(mid, step):
        return  # the step's timeout came first: a late receipt
    if delivered:
        cc.notify.delay(mid, "delivered")
    else:
        cc.advance(mid, cc.load_plan(mid), step)


@post("/twilio/{mid:str}/{step:int}", status_code=204)
async def twilio(request: Request[Any, Any, Any], mid: str, step: int) -> None:
    form = {k: str(v) for k, v in (await request.form()).items()}
    if request.headers.get("x-twilio-signature") != _twilio_signature(str(request.url), form):
        raise PermissionDeniedException("bad signature")
    status = form.get("MessageStatus")
    if status in ("delivered", "undelivered", "failed"):
        _receipt(mid, step, status == "delivered")


def _sns_key(url: str) -> rsa.RSAPublicKey:
    if url not in _certs:
        key = x509.load_pem_x509_certificate(httpx.get(url, timeout=10).content).public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        _certs[url] = key
    return _certs[url]


@post("/sns", status_code=204, sync_to_thread=False)
def sns(body: bytes) -> None:
    note = json.loads(body)
    signed = "".join(f"{k}\n{note[k]}\n" for k in _SNS_FIELDS if k in note).encode()
    try:
        _sns_key(note["SigningCertURL"]).verify(base64.b64decode(note["Signature"]), signed,
                                                padding.PKCS1v15(), hashes.SHA256())
    except Exception as exc:  # any failure to verify refuses the notification
        raise PermissionDeniedException("bad signature") from exc
    event = json.loads(note["Message"])
    owner = cc._redis().get(f"cc:ses:{event['mail']['messageId']}")
    if owner is not None and event["eventType"] in ("Delivery", "Bounce"):
        mid, _, step = owner.decode().partition(":")
        _receipt(mid, int(step), event["eventType"] == "Delivery")


def create_app() -> Litestar:
    return Litestar(route_handlers=[create, twilio, sns], debug=False)


def main() -> int:
    import uvicorn

    from hermes.api.server import serve_options

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # As hermes.cli.cmd_api runs the API (and benches.harness.trivial its baseline).
    uvicorn.run(create_app(), **serve_options(args.host, args.port, "warning"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
