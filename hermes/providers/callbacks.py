"""Provider delivery-receipt callbacks: verify, record, and tell the engine.

The account's adapter checks the provider's signature and parses the receipts;
checks it cannot do alone (SNS certificates) are done here. An unverified
callback changes nothing. Each verified receipt moves its attempt forward
(never back: `delivered` does not become `sent`) and is published to the engine
as a `ReceiptNotice` with Nats-Msg-Id `<attempt id>:<status>`, so a provider's
retry of the same callback is harmless. STOP replies, hard bounces and complaints
also feed the tenant's suppression list (`opt_outs`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from hermes import _core
from hermes.domain.jobs import ENCODER, RECEIPT_STATUS, ReceiptNotice, events_subject
from hermes.infra.nats.publisher import AckedPublisher
from hermes.infra.postgres.attempts import STATUS_RANK, AttemptRow, PostgresAttemptStore
from hermes.infra.postgres.suppressions import PostgresSuppressionStore
from hermes.observability import hooks, tracing
from hermes.observability.hooks import adapter_call
from hermes.providers.accounts import ProviderAccount
from hermes.providers.opt_outs import OptOuts
from hermes.providers.quarantine import TrapMonitor
from hermes.providers.registry import AdapterRegistry
from hermes.providers.sns import SnsVerifier

log = logging.getLogger("hermes.callbacks")

# A receipt can overtake the delivery worker's record of the provider's answer;
# look for its attempt a few times before calling it unknown.
LOOKUP_RETRIES_S = (0.05, 0.2, 0.5)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    content_type: str = "text/plain"
    body: bytes = b""


class Unverified(Exception):
    """The callback's authenticity was not established; nothing was changed."""


@dataclass
class IntakeResult:
    reply: Reply
    published: list[ReceiptNotice]
    unknown: list[str]


class CallbackIntake:
    def __init__(self, registry: AdapterRegistry, attempts: PostgresAttemptStore,
                 sns: SnsVerifier, opt_outs: OptOuts | None = None) -> None:
        self.registry = registry
        self.attempts = attempts
        self.sns = sns
        self.opt_outs = opt_outs or OptOuts(PostgresSuppressionStore(attempts.pool))
        # Counts parse_callback's traps toward quarantining a version (set by bootstrap).
        self.traps: TrapMonitor | None = None

    async def receive(self, account: ProviderAccount, method: str, url: str,
                      headers: list[list[str]], body: bytes,
                      publisher: AckedPublisher) -> IntakeResult:
        """Verify and apply one callback; `Unverified` (nothing changed) if not genuine."""
        adapter = self.registry.get(account.adapter, account.adapter_version)
        credentials = {k: v for k, v in account.credentials.items() if k != "service_account"}
        payload = {"method": method, "url": url, "headers": headers,
                   "body": body.decode("utf-8", "replace"), "credentials": credentials}
        try:
            out = json.loads(adapter_call(adapter, "parse_callback",
                                          self.registry.runtime.parse_callback,
                                          adapter.sha256, msgspec.json.encode(payload)))
        except _core.AdapterError as exc:
            if self.traps is not None:
                self.traps.record(adapter, uuid.uuid4(), exc.code)
            raise Unverified(f"{exc.code}: {exc.message}") from exc
        if self.traps is not None:
            self.traps.record(adapter, uuid.uuid4(), None)

        check = out.get("verify")
        if check is None:
            verified = out.get("verified") is True
        elif isinstance(check, dict) and check.get("kind") == "sns":
            verified = await self.sns.verify(check, credentials)
            subscribe = check.get("subscribe_url")
            if verified and isinstance(subscribe, str):
                if not await self.sns.confirm(subscribe, credentials):
                    raise ConnectionError("the SNS subscription could not be confirmed")
                log.info("confirmed the SNS subscription of account %s", account.id)
        else:
            verified = False  # a verify kind this host does not know
        if not verified:
            raise Unverified("the callback's signature did not verify")

        receipts = out.get("receipts") or []
        published, unknown = await self._apply(account, receipts, publisher)
        await self.opt_outs.apply(account, receipts, out.get("inbound") or [])
        reply = out.get("reply")
        if isinstance(reply, dict):
            r = Reply(int(reply.get("status", 200)),
                      str(reply.get("content_type") or "text/plain"),
                      str(reply.get("body") or "").encode())
        else:
            r = Reply()
        return IntakeResult(r, published, unknown)

    async def _apply(self, account: ProviderAccount, receipts: list[dict[str, Any]],
                     publisher: AckedPublisher) -> tuple[list[ReceiptNotice], list[str]]:
        wanted = [(str(r["provider_message_id"]), status, r) for r in receipts
                  if r.get("provider_message_id") is not None
                  and (status := RECEIPT_STATUS.get(str(r.get("status")))) is not None]
        if not wanted:
            return [], []
        ids = sorted({pmid for pmid, _, _ in wanted})
        rows = await self.attempts.by_provider_ids(account.id, ids)
        for delay in LOOKUP_RETRIES_S:
            missing = [i for i in ids if i not in rows]
            if not missing:
                break
            await asyncio.sleep(delay)
            rows.update(await self.attempts.by_provider_ids(account.id, missing))

        published: list[ReceiptNotice] = []
        unknown: list[str] = []
        for pmid, status, receipt in wanted:
            row = rows.get(pmid)
            if row is None:
                unknown.append(pmid)
                continue
            at_ms = receipt.get("timestamp")
            at_ms = at_ms if isinstance(at_ms, int) else int(time.time() * 1000)
            if STATUS_RANK.get(status, 0) < STATUS_RANK.get(row.status, 0):
                continue  # an older status arriving late: the attempt is already further on
            if await self.attempts.advance(row, status, datetime.fromtimestamp(at_ms / 1000, UTC),
                                           receipt.get("provider_error_code")):
                rows[pmid] = dataclasses.replace(row, status=status)
            notice = _notice(row, account, status, receipt, at_ms)
            # Published also when the row did not move (same status again): a provider
            # retrying after we recorded but failed to publish must still reach the engine.
            with hooks.receipt(row, account.adapter, status):
                await publisher.publish(
                    events_subject(row.shard), ENCODER.encode(notice),
                    tracing.headers({"Nats-Msg-Id": f"{row.id}:{status}"}))
            published.append(notice)
        if unknown:
            log.info("receipts for unknown provider message ids on account %s: %s",
                     account.id, ", ".join(unknown[:10]))
        return published, unknown


def _notice(row: AttemptRow, account: ProviderAccount, status: str, receipt: dict[str, Any],
            at_ms: int) -> ReceiptNotice:
    code = receipt.get("provider_error_code")
    return ReceiptNotice(
        message_id=row.message_id, attempt_id=row.id, step=row.step, attempt=row.attempt,
        account_id=account.id, status=status,  # type: ignore[arg-type]
        provider_message_id=row.provider_message_id,
        provider_error_code=None if code is None else str(code), at_ms=at_ms,
    )
