"""Tenants and the credentials that act for them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from hermes.domain.compliance import QuietHours

KeyMode = Literal["test", "live"]
SCOPES = ("send", "read", "manage")


class TenantLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A tenant's own rate limit and daily quota; an unset (null) field takes the
    platform's default (`HERMES_RATE_LIMIT_PER_S`, `_BURST`, `HERMES_DAILY_QUOTA`).

    `rate_per_s` 0 turns the rate limit off and `daily_quota` 0 the quota.
    """

    rate_per_s: Annotated[float, msgspec.Meta(ge=0)] | None = None
    burst: Annotated[int, msgspec.Meta(ge=1)] | None = None
    daily_quota: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Tenant(msgspec.Struct, frozen=True):
    id: UUID
    name: str
    status: Literal["active", "suspended"]
    created_at: datetime
    limits: TenantLimits = TenantLimits()
    # Sends that would start inside this daily window wait for its end (layer 7).
    quiet_hours: QuietHours | None = None


class ApiKeyInfo(msgspec.Struct, frozen=True):
    """An API key as listings show it: never the secret, only its first characters."""

    id: UUID
    prefix: str
    mode: KeyMode
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class Principal(msgspec.Struct, frozen=True):
    """Who a request acts as, once its API key is verified (validation layer 2)."""

    tenant_id: UUID
    tenant_name: str
    key_id: UUID
    mode: KeyMode
    scopes: tuple[str, ...]
    limits: TenantLimits = TenantLimits()

    def allows(self, scope: str) -> bool:
        return scope in self.scopes
