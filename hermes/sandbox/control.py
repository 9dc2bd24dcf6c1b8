"""The control and inspection API under `/_sandbox/` (see README.md)."""

from __future__ import annotations

import functools
import secrets
import time
from typing import Any
from urllib.parse import unquote

import httpx
import msgspec

from hermes.sandbox import credentials, ses
from hermes.sandbox.common import Context
from hermes.sandbox.http import Request, Response, json_response
from hermes.sandbox.outcomes import Outcome
from hermes.sandbox.sns import (
    CERT_PATH,
    CONFIRM_PATH,
    UNSUBSCRIBE_PATH,
    SnsSigner,
    subscription_arn_for,
)
from hermes.sandbox.state import Outage, ScriptedOutcome

_OUTAGE_MODES = {"error": Outcome.SERVER_ERROR, "timeout": Outcome.TIMEOUT,
                 "rate_limited": Outcome.RATE_LIMITED}


def _bad(message: str) -> Response:
    return json_response(400, {"error": message})


def _body(request: Request) -> dict[str, Any]:
    if not request.body:
        return {}
    value = request.json()
    if not isinstance(value, dict):
        raise ValueError("body must be a JSON object")
    return value


def install(ctx: Context, signer: SnsSigner) -> None:
    state = ctx.state
    add = ctx.router.add

    def guarded(handler: Any) -> Any:
        def run(request: Request) -> Response:
            try:
                return handler(request)  # type: ignore[no-any-return]
            except (ValueError, KeyError, TypeError, msgspec.DecodeError) as exc:
                return _bad(f"{type(exc).__name__}: {exc}")
        return run

    def health(_: Request) -> Response:
        return json_response(200, {"status": "ok", "pending_receipts": ctx.receipts.pending})

    def reset(_: Request) -> Response:
        state.reset()
        return json_response(200, {"status": "reset"})

    def requests(request: Request) -> Response:
        query = request.query_params()
        provider = query.get("provider")
        items = [r for r in state.requests if provider is None or r["provider"] == provider]
        limit = int(query.get("limit", "0"))
        return json_response(200, {"requests": items[-limit:] if limit else items})

    def receipts(request: Request) -> Response:
        provider = request.query_params().get("provider")
        items = [r for r in state.receipts if provider is None or r["provider"] == provider]
        return json_response(200, {"receipts": items, "pending": ctx.receipts.pending})

    def script(request: Request) -> Response:
        body = _body(request)
        recipient = str(body["recipient"])
        delay_ms = body.get("delay_ms")
        delay = None if delay_ms is None else float(delay_ms) / 1000
        steps = [ScriptedOutcome(Outcome(o), delay) for o in body["outcomes"]]
        if steps:
            state.script(recipient, steps)
        else:
            state.scripts.pop(recipient, None)
        return json_response(200, {"recipient": recipient, "outcomes": body["outcomes"]})

    def config(request: Request) -> Response:
        cfg = state.config
        if request.method == "PUT":
            body = _body(request)
            if "receipt_delay_ms" in body:
                cfg.receipt_delay = float(body["receipt_delay_ms"]) / 1000
            if "timeout_hold_ms" in body:
                cfg.timeout_hold = float(body["timeout_hold_ms"]) / 1000
            if "retry_after_s" in body:
                cfg.retry_after = int(body["retry_after_s"])
        return json_response(200, {"receipt_delay_ms": cfg.receipt_delay * 1000,
                                   "timeout_hold_ms": cfg.timeout_hold * 1000,
                                   "retry_after_s": cfg.retry_after})

    def outages(_: Request) -> Response:
        return json_response(200, {"outages": {
            p: {"mode": o.mode.value, "remaining_ms": None if o.until is None
                else max(0.0, (o.until - time.monotonic()) * 1000)}
            for p, o in state.outages.items()}})

    def outage(request: Request) -> Response:
        provider = request.params[0]
        if provider not in credentials.PROVIDERS:
            return json_response(404, {"error": f"unknown provider {provider}"})
        if request.method == "DELETE":
            state.outages.pop(provider, None)
            return json_response(200, {"provider": provider, "outage": None})
        body = _body(request)
        mode = _OUTAGE_MODES[body.get("mode", "error")]
        duration = body.get("duration_ms")
        until = None if duration is None else time.monotonic() + float(duration) / 1000
        state.outages[provider] = Outage(mode, until)
        return json_response(200, {"provider": provider, "outage": mode.value})

    def ses_configuration_set(request: Request) -> Response:
        name = unquote(request.params[0])
        if request.method == "DELETE":
            state.ses_configuration_sets.pop(name, None)
            return json_response(200, {"configuration_set": name, "deleted": True})
        body = _body(request)
        endpoint = body.get("endpoint")
        if endpoint and body.get("confirm"):
            # As SNS does: post a SubscriptionConfirmation; events flow once the
            # endpoint has fetched the SubscribeURL.
            token = secrets.token_hex(32)
            state.ses_configuration_sets.setdefault(name, None)
            state.ses_pending_subscriptions[token] = (name, endpoint)
            ctx.receipts.send_later(0.0, [functools.partial(
                signer.subscription_confirmation, ctx.base_url, endpoint, ses.topic_arn(name),
                token, "ses")])
            return json_response(202, {"configuration_set": name, "endpoint": endpoint,
                                       "pending_confirmation": True})
        state.ses_configuration_sets[name] = endpoint
        return json_response(200, {"configuration_set": name, "endpoint": endpoint})

    def confirm(request: Request) -> Response:
        pending = state.ses_pending_subscriptions.pop(request.query_params().get("Token", ""),
                                                      None)
        if pending is None:
            return Response(404, b"<ErrorResponse><Error><Type>Sender</Type><Code>NotFound"
                            b"</Code><Message>Token not found</Message></Error></ErrorResponse>",
                            "text/xml")
        name, endpoint = pending
        state.ses_configuration_sets[name] = endpoint
        arn = subscription_arn_for(ses.topic_arn(name), endpoint)
        return Response(200, (
            "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>"
            f"{arn}</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>"
        ).encode(), "text/xml")

    def ses_configuration_sets(_: Request) -> Response:
        return json_response(200, {"configuration_sets": state.ses_configuration_sets})

    def unsubscribe(request: Request) -> Response:
        arn = request.query_params().get("SubscriptionArn", "")
        for name, endpoint in list(state.ses_configuration_sets.items()):
            if endpoint and arn == subscription_arn_for(ses.topic_arn(name), endpoint):
                state.ses_configuration_sets[name] = None
        return Response(200, b"<UnsubscribeResponse/>", "text/xml")

    def whatsapp_webhook(request: Request) -> Any:
        if request.method == "PUT":
            body = _body(request)
            if body.get("url") and body.get("verify_token"):
                return _verify_whatsapp_webhook(str(body["url"]), str(body["verify_token"]))
            state.whatsapp_webhook = body.get("url")
        return json_response(200, {"url": state.whatsapp_webhook})

    async def _verify_whatsapp_webhook(url: str, verify_token: str) -> Response:
        # Meta's "Verify and save": GET with hub.* parameters; the endpoint must
        # answer 200 with the challenge echoed, or the webhook is not set.
        challenge = str(secrets.randbelow(10**9))
        params = {"hub.mode": "subscribe", "hub.challenge": challenge,
                  "hub.verify_token": verify_token}
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                answer = await client.get(url, params=params)
        except httpx.HTTPError as exc:
            return json_response(400, {"error": f"webhook verification failed: {exc}"})
        if answer.status_code != 200 or answer.text.strip() != challenge:
            return json_response(400, {"error": "webhook verification failed: the challenge "
                                       "was not echoed", "status": answer.status_code})
        state.whatsapp_webhook = url
        return json_response(200, {"url": url, "verified": True})

    def sandbox_credentials(_: Request) -> Response:
        return json_response(200, credentials.provider_accounts(ctx.base_url))

    add("GET", "/_sandbox/health", health)
    add("POST", "/_sandbox/reset", reset)
    add("GET", "/_sandbox/requests", guarded(requests))
    add("GET", "/_sandbox/receipts", receipts)
    add("POST", "/_sandbox/outcomes", guarded(script))
    add("GET", "/_sandbox/config", config)
    add("PUT", "/_sandbox/config", guarded(config))
    add("GET", "/_sandbox/outages", outages)
    add("PUT", "/_sandbox/outages/{provider}", guarded(outage))
    add("DELETE", "/_sandbox/outages/{provider}", guarded(outage))
    add("GET", "/_sandbox/ses/configuration-sets", ses_configuration_sets)
    add("PUT", "/_sandbox/ses/configuration-sets/{name}", guarded(ses_configuration_set))
    add("DELETE", "/_sandbox/ses/configuration-sets/{name}", guarded(ses_configuration_set))
    add("GET", UNSUBSCRIBE_PATH, unsubscribe)
    add("GET", CONFIRM_PATH, confirm)
    add("GET", "/_sandbox/whatsapp/webhook", whatsapp_webhook)
    add("PUT", "/_sandbox/whatsapp/webhook", guarded(whatsapp_webhook))
    add("GET", "/_sandbox/credentials", sandbox_credentials)
    add("GET", CERT_PATH, signer.serve_certificate)
