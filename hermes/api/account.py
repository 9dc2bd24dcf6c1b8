"""`/v1/account`: who the API key acts for."""

from __future__ import annotations

from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency

from hermes.domain.tenancy import Principal


class Account(msgspec.Struct):
    tenant_id: UUID
    tenant_name: str
    key_id: UUID
    mode: str
    scopes: list[str]


class AccountController(Controller):
    path = "/v1/account"
    tags = ["account"]

    @get("/", summary="The tenant and mode of the API key used")
    async def account(self, principal: NamedDependency[Principal]) -> Account:
        return Account(
            tenant_id=principal.tenant_id,
            tenant_name=principal.tenant_name,
            key_id=principal.key_id,
            mode=principal.mode,
            scopes=list(principal.scopes),
        )
