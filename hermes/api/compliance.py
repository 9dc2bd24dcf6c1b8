"""Validation layer 7 at ingest: the suppression list and quiet hours.

Runs after layers 3-6 (so addresses are normalised) and before rate limits and the
commit. One PostgreSQL query answers which addresses are suppressed and the tenant's
quiet hours: per batch, and for all the single sends in flight together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from hermes.bootstrap import Container
from hermes.domain.compliance import (
    Deferral,
    QuietHours,
    defer_for_quiet_hours,
    drop_suppressed,
    step_addresses,
)
from hermes.domain.errors import HermesError
from hermes.domain.messages import MessageCreate, MessageSpec
from hermes.domain.plan import Contact
from hermes.domain.tenancy import Principal
from hermes.infra.postgres.messages import NewMessage

_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True)
class Checked:
    """A message that passed layer 7: its plan without suppressed steps, and any delay."""

    spec: MessageSpec
    deferral: Deferral | None = None


Item = tuple[MessageCreate, MessageSpec, Contact | None]


async def check(container: Container, principal: Principal, items: list[Item],
                now_ms: int) -> list[Checked | HermesError]:
    """Layer 7 for every item of one tenant: each item's result or its problem."""
    (results,) = await check_groups(container, [(principal, items)], now_ms)
    return results


async def check_groups(container: Container, groups: list[tuple[Principal, list[Item]]],
                       now_ms: int) -> list[list[Checked | HermesError]]:
    """Layer 7 for the items of several tenants, with one lookup."""
    facts = await container.layer7.layer7_many([
        (principal.tenant_id,
         sorted({t for _, spec, _ in items for t in step_addresses(spec) if t is not None}))
        for principal, items in groups])
    out: list[list[Checked | HermesError]] = []
    for (_, items), fact in zip(groups, facts, strict=True):
        tenant_window = _window(fact.quiet_hours)
        results: list[Checked | HermesError] = []
        for req, spec, contact in items:
            try:
                results.append(_one(req, spec, contact, fact.suppressed, tenant_window, now_ms))
            except HermesError as exc:
                results.append(exc)
        out.append(results)
    return out


def _one(req: MessageCreate, spec: MessageSpec, contact: Contact | None,
         suppressed: set[tuple[str, str]], tenant_window: QuietHours | None,
         now_ms: int) -> Checked:
    spec = drop_suppressed(spec, suppressed)
    if req.quiet_hours == "ignore":
        return Checked(spec)
    # The contact's own window if it has one, else the tenant's; the contact's time
    # zone, else the window's.
    window = _window(contact.quiet_hours if contact is not None else None) or tenant_window
    zone = (contact.timezone if contact is not None else None) or \
        (window.timezone if window is not None else None) or \
        (tenant_window.timezone if tenant_window is not None else None)
    spec, deferral = defer_for_quiet_hours(spec, window, zone, now_ms)
    return Checked(spec, deferral)


def _window(raw: Any) -> QuietHours | None:
    if not raw:
        return None
    return msgspec.convert(raw, QuietHours)


def annotate(row: NewMessage, checked: Checked) -> None:
    """Record on the message's `accepted` event what layer 7 did to it."""
    if not checked.spec.skipped and checked.deferral is None:
        return
    data: dict[str, Any] = msgspec.json.decode(row.event_json)
    if checked.spec.skipped:
        data["skipped"] = checked.spec.skipped
    if checked.deferral is not None:
        data["quiet_hours"] = checked.deferral
    row.event_json = _ENCODER.encode(data).decode()
