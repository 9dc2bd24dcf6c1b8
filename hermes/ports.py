"""The dependencies of the domain, as protocols. `infra/` has one implementation per port."""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

from hermes.domain.limits import Decision, Limits
from hermes.domain.tenancy import ApiKeyInfo, Principal, Tenant


class Probe(Protocol):
    """A dependency whose health `/readyz` reports."""

    name: str

    async def check(self) -> None:
        """Return if the dependency answers; raise with a reason otherwise."""


class TenantStore(Protocol):
    async def create_tenant(self, name: str) -> Tenant: ...

    async def get_tenant(self, tenant_id: UUID) -> Tenant | None: ...

    async def find_tenant_by_name(self, name: str) -> Tenant | None: ...

    async def add_api_key(
        self, tenant_id: UUID, *, prefix: str, key_hash: bytes, mode: str, scopes: list[str]
    ) -> UUID: ...

    async def principal_for_key(self, key_hash: bytes) -> Principal | None:
        """The tenant and scopes of an active, unrevoked key with this hash."""

    async def list_tenants(self, *, limit: int, after: UUID | None) -> list[Tenant]: ...

    async def update_tenant(self, tenant_id: UUID, *, name: str | None, status: str | None,
                            limits: dict[str, Any] | None = None) -> Tenant | None:
        """Rename, suspend or reactivate; `limits` is merged into the tenant's own limits
        (a null value puts that one back to the platform default)."""

    async def list_api_keys(self, tenant_id: UUID) -> list[ApiKeyInfo]: ...

    async def revoke_api_key(self, tenant_id: UUID, key_id: UUID) -> bool: ...

    async def add_admin_token(self, *, prefix: str, token_hash: bytes) -> UUID: ...

    async def admin_token_exists(self, token_hash: bytes) -> bool: ...


class Limiter(Protocol):
    """Token buckets and daily quotas shared by every process (validation layer 8, and
    providers' send rates)."""

    async def take(self, partition: str, limits: Limits, cost: int = 1) -> Decision:
        """Take `cost` from `partition`'s bucket and today's quota, all or none; cost 0
        only reads, a negative cost gives back."""
