"""Tenants and the credentials that act for them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import msgspec

KeyMode = Literal["test", "live"]
SCOPES = ("send", "read", "manage")


class Tenant(msgspec.Struct, frozen=True):
    id: UUID
    name: str
    status: Literal["active", "suspended"]
    created_at: datetime


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

    def allows(self, scope: str) -> bool:
        return scope in self.scopes
