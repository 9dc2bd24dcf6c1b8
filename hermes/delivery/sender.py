"""One send: adapter `build_request` -> provider HTTP -> adapter `parse_response`.

Everything that can go wrong becomes an `Outcome` with a catalogue code; nothing
here raises for a provider's or an adapter's failure.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from uuid import UUID

import msgspec

from hermes import _core
from hermes.delivery.google_oauth import GoogleTokens, TokenError
from hermes.domain.errors import catalogue
from hermes.domain.jobs import DeliveryJob
from hermes.infra.http.client import ProviderHttp, ProviderHttpError
from hermes.observability.hooks import adapter_call, provider_call
from hermes.providers.accounts import ProviderAccount
from hermes.providers.registry import ActiveAdapter, AdapterNotLoaded, AdapterRegistry


@dataclass(frozen=True, slots=True)
class Outcome:
    outcome: Literal["accepted", "rejected", "provider_error"]
    retryable: bool = False
    code: str | None = None
    provider_message_id: str | None = None
    provider_error_code: str | None = None
    segments: int | None = None
    cost: Decimal | None = None
    retry_after_ms: int | None = None
    detail: str | None = None
    adapter: ActiveAdapter | None = None
    latency_ms: float | None = None
    # The adapter failed before anything was sent: the job can be retried without a
    # duplicate at the provider (a trapping version is rolled back meanwhile).
    before_send: bool = False


def failure(code: str, detail: str | None, adapter: ActiveAdapter | None = None) -> Outcome:
    """A send that got no usable provider answer; retryable as the catalogue says."""
    info = catalogue().get(code)
    return Outcome("provider_error", retryable=bool(info and info.retryable), code=code,
                   detail=detail, adapter=adapter)


def callback_url(public_url: str, account_id: UUID) -> str:
    return f"{public_url.rstrip('/')}/v1/callbacks/{account_id}"


class Sender:
    def __init__(self, registry: AdapterRegistry, http: ProviderHttp, tokens: GoogleTokens,
                 *, public_url: str) -> None:
        self.registry = registry
        self.http = http
        self.tokens = tokens
        self.public_url = public_url

    def adapter_for(self, account: ProviderAccount) -> ActiveAdapter | None:
        try:
            return self.registry.get(account.adapter, account.adapter_version)
        except AdapterNotLoaded:
            return None

    async def send(self, job: DeliveryJob, account: ProviderAccount,
                   adapter: ActiveAdapter) -> Outcome:
        credentials = dict(account.credentials)
        token: str | None = None
        spec = adapter.token
        if spec is not None:
            if spec.get("kind") != "google_oauth":
                return failure("adapter.invalid_module",
                               f"unknown token kind {spec.get('kind')!r}", adapter)
            service_account = credentials.pop("service_account", None)
            if not isinstance(service_account, dict):
                return failure("adapter.bad_input", "credentials.service_account is required",
                               adapter)
            try:
                token = await self.tokens.token(service_account, list(spec.get("scopes") or []),
                                                base_url=account.base_url)
            except TokenError as exc:
                if exc.code == "provider.auth_failed":
                    return Outcome("rejected", retryable=True, code=exc.code, detail=exc.detail,
                                   adapter=adapter)
                return failure(exc.code, exc.detail, adapter)

        content = job.content
        data = {
            "message": {
                "id": str(job.message_id), "channel": job.channel, "to": job.to,
                "body": content.body, "subject": content.subject, "html": content.html,
                "title": content.title, "data": content.data or {},
                "template": msgspec.to_builtins(content.template) if content.template else None,
                "metadata": job.metadata,
            },
            "credentials": credentials,
            "config": {**account.config, "base_url": account.base_url,
                       "callback_url": callback_url(self.public_url, account.id)},
            "now": int(time.time() * 1000),
            "attempt_id": str(job.attempt_id),
            "token": token,
        }
        try:
            raw = adapter_call(adapter, "build_request", self.registry.runtime.build_request,
                               adapter.sha256, msgspec.json.encode(data), account.base_url)
            request = json.loads(raw)
        except _core.AdapterError as exc:
            return dataclasses.replace(failure(exc.code, exc.message, adapter), before_send=True)

        started = time.perf_counter()
        try:
            answer = await provider_call(request["method"], request["url"], self.http.request(
                request["method"], request["url"], request.get("headers") or [],
                request.get("body")))
        except ProviderHttpError as exc:
            out = failure("provider.unavailable", exc.detail, adapter)
            return _with_latency(out, started)
        latency = (time.perf_counter() - started) * 1000

        try:
            parsed = json.loads(adapter_call(
                adapter, "parse_response", self.registry.runtime.parse_response,
                adapter.sha256, msgspec.json.encode(
                    {"status": answer.status, "headers": answer.headers, "body": answer.body})))
        except _core.AdapterError as exc:
            return _with_latency(failure(exc.code, exc.message, adapter), started)
        return _from_parsed(parsed, adapter, latency)


def _with_latency(out: Outcome, started: float) -> Outcome:
    return dataclasses.replace(out, latency_ms=(time.perf_counter() - started) * 1000)


def _from_parsed(parsed: dict[str, Any], adapter: ActiveAdapter, latency: float) -> Outcome:
    kind = parsed.get("outcome")
    provider_code = parsed.get("provider_code")
    provider_code = None if provider_code is None else str(provider_code)
    if kind == "accepted":
        return Outcome("accepted", provider_message_id=str(parsed["provider_message_id"]),
                       segments=_int(parsed.get("segments")), cost=_cost(parsed.get("cost")),
                       adapter=adapter, latency_ms=latency)
    code = str(parsed.get("code") or "provider.rejected")
    detail = parsed.get("message")
    if kind == "retryable":
        return Outcome("provider_error", retryable=True, code=code,
                       provider_error_code=provider_code,
                       retry_after_ms=_int(parsed.get("retry_after_ms")),
                       detail=detail, adapter=adapter, latency_ms=latency)
    # Rejected: retrying cannot help, except elsewhere when the account itself was refused.
    return Outcome("rejected", retryable=code == "provider.auth_failed", code=code,
                   provider_error_code=provider_code, detail=detail, adapter=adapter,
                   latency_ms=latency)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _cost(value: Any) -> Decimal | None:
    if not isinstance(value, dict) or value.get("amount") is None:
        return None
    try:
        return abs(Decimal(str(value["amount"])))
    except InvalidOperation:
        return None
