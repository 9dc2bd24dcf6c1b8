"""`/admin/v1/`: the platform operator's API (tenants and their API keys).

Authenticated by an admin token (`hermes admin-token`), never by a tenant key.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from msgspec import UNSET, UnsetType

from hermes.bootstrap import Container
from hermes.domain.compliance import QuietHours, check_window
from hermes.domain.errors import Code, FieldError, HermesError
from hermes.domain.tenancy import SCOPES, ApiKeyInfo, KeyMode, Tenant
from hermes.infra.postgres.suppressions import PostgresSuppressionStore
from hermes.tenancy.secrets import digest, display_prefix, new_api_key


class TenantCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class LimitsUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Merged into the tenant's limits: a field left out stays, null returns it to the
    platform default, 0 turns the rate limit or the quota off for this tenant."""

    rate_per_s: Annotated[float, msgspec.Meta(ge=0)] | msgspec.UnsetType | None = msgspec.UNSET
    burst: Annotated[int, msgspec.Meta(ge=1)] | msgspec.UnsetType | None = msgspec.UNSET
    daily_quota: Annotated[int, msgspec.Meta(ge=0)] | msgspec.UnsetType | None = msgspec.UNSET


class TenantUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    status: Literal["active", "suspended"] | None = None
    # Messages per second, burst and daily quota (test and live keys each have their own
    # bucket and count); every API process applies a change within 5 s.
    limits: LimitsUpdate | None = None
    # A daily window in which sends wait (null: none); absent leaves it as it is.
    quiet_hours: QuietHours | UnsetType | None = UNSET


class TenantList(msgspec.Struct):
    data: list[Tenant]
    has_more: bool
    next_cursor: str | None
    object: str = "list"


class ApiKeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    mode: KeyMode
    scopes: list[str] = msgspec.field(default_factory=lambda: list(SCOPES))


class ApiKeyCreated(msgspec.Struct):
    """The key itself appears here once and never again."""

    id: UUID
    key: str
    prefix: str
    mode: str
    scopes: list[str]


class ApiKeyList(msgspec.Struct):
    data: list[ApiKeyInfo]
    object: str = "list"


def _uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise HermesError(Code.REQUEST_NOT_FOUND, f"no such {what}") from None


async def _with_quiet_hours(container: Container, tenant: Tenant) -> Tenant:
    """The tenant with its quiet hours (kept by the layer-7 store)."""
    found = await PostgresSuppressionStore(container.pool).quiet_hours([tenant.id])
    raw = found.get(tenant.id)
    return msgspec.structs.replace(
        tenant, quiet_hours=None if raw is None else msgspec.convert(raw, QuietHours))


class AdminController(Controller):
    path = "/admin/v1"
    tags = ["admin"]

    @post("/tenants", status_code=201, summary="Create a tenant")
    async def create_tenant(self, data: JSONBody[TenantCreate], admin: NamedDependency[str],
                            container: NamedDependency[Container]) -> Tenant:
        return await container.tenants.create_tenant(data.name)

    @get("/tenants", summary="Tenants, in id order, cursor-paginated")
    async def list_tenants(
        self, admin: NamedDependency[str], container: NamedDependency[Container],
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, QueryParameter()] = None,
    ) -> TenantList:
        after = _uuid(cursor, "cursor") if cursor else None
        rows = await container.tenants.list_tenants(limit=limit + 1, after=after)
        page = rows[:limit]
        more = len(rows) > limit
        return TenantList(data=page, has_more=more,
                          next_cursor=str(page[-1].id) if more and page else None)

    @get("/tenants/{tenant_id:str}", summary="One tenant")
    async def get_tenant(self, tenant_id: FromPath[str], admin: NamedDependency[str],
                         container: NamedDependency[Container]) -> Tenant:
        tenant = await container.tenants.get_tenant(_uuid(tenant_id, "tenant"))
        if tenant is None:
            raise HermesError(Code.REQUEST_NOT_FOUND, "no such tenant")
        return await _with_quiet_hours(container, tenant)

    @patch("/tenants/{tenant_id:str}",
           summary="Rename, suspend or reactivate a tenant; set its rate limit and quota")
    async def update_tenant(self, tenant_id: FromPath[str], data: JSONBody[TenantUpdate],
                            admin: NamedDependency[str],
                            container: NamedDependency[Container]) -> Tenant:
        tid = _uuid(tenant_id, "tenant")
        layer7 = PostgresSuppressionStore(container.pool)
        if not isinstance(data.quiet_hours, UnsetType):
            if data.quiet_hours is not None:
                check_window(data.quiet_hours, "quiet_hours")
                if data.quiet_hours.timezone is None:
                    raise HermesError(Code.REQUEST_INVALID, "a tenant's quiet hours need a "
                                      "timezone", errors=[FieldError(
                                          Code.REQUEST_INVALID, "quiet_hours.timezone",
                                          "an IANA time zone like 'Europe/Copenhagen'")])
            window = None if data.quiet_hours is None else msgspec.to_builtins(data.quiet_hours)
            if not await layer7.set_quiet_hours(tid, window):
                raise HermesError(Code.REQUEST_NOT_FOUND, "no such tenant")
        limits = None if data.limits is None else msgspec.to_builtins(data.limits)
        tenant = await container.tenants.update_tenant(tid, name=data.name, status=data.status,
                                                       limits=limits)
        if tenant is None:
            raise HermesError(Code.REQUEST_NOT_FOUND, "no such tenant")
        return await _with_quiet_hours(container, tenant)

    @post("/tenants/{tenant_id:str}/keys", status_code=201,
          summary="Create an API key; the key is shown in this answer only")
    async def create_key(self, tenant_id: FromPath[str], data: JSONBody[ApiKeyCreate],
                         admin: NamedDependency[str],
                         container: NamedDependency[Container]) -> ApiKeyCreated:
        tid = _uuid(tenant_id, "tenant")
        if await container.tenants.get_tenant(tid) is None:
            raise HermesError(Code.REQUEST_NOT_FOUND, "no such tenant")
        unknown = sorted(set(data.scopes) - set(SCOPES))
        if unknown or not data.scopes:
            raise HermesError(Code.REQUEST_INVALID, f"scopes are some of {', '.join(SCOPES)}",
                              errors=[FieldError(Code.REQUEST_INVALID, "scopes",
                                                 f"unknown: {', '.join(unknown)}" if unknown
                                                 else "at least one scope")])
        key = new_api_key(data.mode)
        scopes = sorted(set(data.scopes), key=SCOPES.index)
        key_id = await container.tenants.add_api_key(
            tid, prefix=display_prefix(key), key_hash=digest(key), mode=data.mode,
            scopes=scopes)
        return ApiKeyCreated(id=key_id, key=key, prefix=display_prefix(key), mode=data.mode,
                             scopes=scopes)

    @get("/tenants/{tenant_id:str}/keys", summary="A tenant's API keys, by prefix")
    async def list_keys(self, tenant_id: FromPath[str], admin: NamedDependency[str],
                        container: NamedDependency[Container]) -> ApiKeyList:
        tid = _uuid(tenant_id, "tenant")
        if await container.tenants.get_tenant(tid) is None:
            raise HermesError(Code.REQUEST_NOT_FOUND, "no such tenant")
        return ApiKeyList(data=await container.tenants.list_api_keys(tid))

    @post("/tenants/{tenant_id:str}/keys/{key_id:str}/revoke", status_code=200,
          summary="Revoke an API key")
    async def revoke_key(self, tenant_id: FromPath[str], key_id: FromPath[str],
                         admin: NamedDependency[str],
                         container: NamedDependency[Container]) -> Response[dict[str, object]]:
        revoked = await container.tenants.revoke_api_key(_uuid(tenant_id, "tenant"),
                                                         _uuid(key_id, "key"))
        if not revoked:
            raise HermesError(Code.REQUEST_NOT_FOUND, "no such key")
        return Response({"id": key_id, "revoked": True})
