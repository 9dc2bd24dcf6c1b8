"""`/v1/account`: who the API key acts for."""

from __future__ import annotations

from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency

from hermes.api.limits import limits_for
from hermes.bootstrap import Container
from hermes.domain.tenancy import Principal


class AccountLimits(msgspec.Struct):
    """The limits this key's requests are held to (0: none)."""

    rate_per_s: float
    burst: int
    daily_quota: int


class Account(msgspec.Struct):
    tenant_id: UUID
    tenant_name: str
    key_id: UUID
    mode: str
    scopes: list[str]
    limits: AccountLimits


class AccountController(Controller):
    path = "/v1/account"
    tags = ["account"]

    @get("/", summary="The tenant and mode of the API key used")
    async def account(self, principal: NamedDependency[Principal],
                      container: NamedDependency[Container]) -> Account:
        limits = limits_for(principal, container.settings)
        return Account(
            tenant_id=principal.tenant_id,
            tenant_name=principal.tenant_name,
            key_id=principal.key_id,
            mode=principal.mode,
            scopes=list(principal.scopes),
            limits=AccountLimits(rate_per_s=limits.rate_per_s, burst=limits.burst,
                                 daily_quota=limits.daily_quota),
        )
