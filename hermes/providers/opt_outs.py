"""Verified callbacks that feed the suppression list.

- An inbound SMS (or WhatsApp message) whose whole body is an opt-out keyword
  (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT, REVOKE; trimmed, any
  case) suppresses the sender for the tenant that owns the provider account;
  START or UNSTOP removes an entry a STOP made (never a manual one or a bounce).
  A platform-wide account has no single owner, so its inbound messages are only
  logged; the provider itself refuses sends to a number that opted out there.
- A permanent bounce or a complaint on an email attempt suppresses the address
  the message went to, for the message's tenant. The engine still sees the bounce
  as the step's failure, as before.
"""

from __future__ import annotations

import logging
from typing import Any

from hermes.domain.compliance import KIND_OF_CHANNEL, START_WORDS, STOP_WORDS, normalise
from hermes.domain.errors import HermesError
from hermes.infra.postgres.suppressions import PostgresSuppressionStore
from hermes.providers.accounts import ProviderAccount

log = logging.getLogger("hermes.callbacks")


def receipt_reason(receipt: dict[str, Any]) -> str | None:
    """`hard_bounce` or `complaint` when a receipt means the address must not be mailed again.

    Only a permanent bounce counts: SES reports `Permanent/<subtype>`, while a transient
    one (mailbox full) or an undetermined one may succeed later.
    """
    status = receipt.get("status")
    if status == "complained":
        return "complaint"
    code = str(receipt.get("provider_error_code") or "")
    if status == "bounced" and code.split("/", 1)[0].lower() == "permanent":
        return "hard_bounce"
    return None


def keyword(body: Any) -> str | None:
    """`stop` or `start` when the whole message is one of the provider's keywords."""
    word = str(body or "").strip().upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    return None


class OptOuts:
    def __init__(self, store: PostgresSuppressionStore) -> None:
        self.store = store

    async def apply(self, account: ProviderAccount, receipts: list[dict[str, Any]],
                    inbound: list[dict[str, Any]]) -> None:
        hard = [(str(r["provider_message_id"]), reason) for r in receipts
                if r.get("provider_message_id") is not None
                and (reason := receipt_reason(r)) is not None]
        if hard:
            added = await self.store.from_receipts(account.id, hard)
            if added:
                log.info("suppressed %d email addresses after bounces or complaints on "
                         "account %s", len(added), account.id)
        for message in inbound:
            await self._inbound(account, message)

    async def _inbound(self, account: ProviderAccount, message: dict[str, Any]) -> None:
        action = keyword(message.get("body"))
        if action is None:
            return
        kind = KIND_OF_CHANNEL.get(str(message.get("channel") or account.channel))
        if kind is None or kind not in ("phone", "whatsapp"):
            return
        if account.tenant_id is None:
            log.info("%s reply on platform account %s not attributed to a tenant",
                     action.upper(), account.id)
            return
        try:
            sender = normalise(kind, str(message.get("from") or ""))
        except HermesError as exc:
            log.warning("%s reply on account %s from an unreadable number: %s",
                        action.upper(), account.id, exc.detail)
            return
        if action == "stop":
            _, created = await self.store.put(account.tenant_id, kind, sender, "stop")
            if created:
                log.info("suppressed %s %s for tenant %s after a STOP reply", kind, sender,
                         account.tenant_id)
        elif await self.store.delete(account.tenant_id, kind, sender, reasons=("stop",)):
            log.info("%s %s opted back in for tenant %s", kind, sender, account.tenant_id)
