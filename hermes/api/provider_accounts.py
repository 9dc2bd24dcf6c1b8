"""Provider accounts: a tenant's own (`/v1/provider-accounts`) and the platform's defaults
(`/admin/v1/provider-accounts`).

Credentials go in and never come out: they are sealed under the master key
(`hermes.providers.secrets`) and answers carry only `credentials_hint` (the last four
characters of the main secret) and the names of the credential fields. A tenant's key
sees only its tenant's accounts of its own mode; any other id is `request.not_found`.

A test-mode key makes test-mode accounts, which always send to the provider sandbox
(their `base_url` is the sandbox's); the sandbox accepts only its published
credentials and answers any others as the provider would (`provider.auth_failed`).
A live key makes live accounts, which never send to the sandbox, and whose base URL,
if they have one, is https and passes the SSRF rules.

After a write, this process's account directory reloads at once; other processes
reload theirs within `AccountDirectory.refresh_s` (5 s).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from hermes.bootstrap import Container
from hermes.domain.errors import Code, HermesError
from hermes.domain.tenancy import Principal
from hermes.infra.postgres.provider_accounts import (
    Owner,
    PostgresProviderAccountStore,
    ProviderAccountRecord,
)
from hermes.providers import account_input as rules
from hermes.providers.secrets import seal
from hermes.webhooks.targets import check_target

Channel = Literal["sms", "email", "push", "whatsapp"]
Mode = Literal["test", "live"]
Status = Literal["active", "disabled"]
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_FieldName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
_Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=16_384)]
# A credential is a string, or an object of strings (a service-account key file).
Credentials = Annotated[dict[_FieldName, _Secret | dict[str, _Secret]],
                        msgspec.Meta(max_length=20)]
Config = Annotated[dict[_FieldName, Annotated[str, msgspec.Meta(max_length=1024)] | int | float
                        | bool | None], msgspec.Meta(max_length=50)]
Cost = Annotated[dict[str, Annotated[float, msgspec.Meta(ge=0, le=1000)] | None],
                 msgspec.Meta(max_length=300)]
Priority = Annotated[int, msgspec.Meta(ge=0, le=1000)]
Weight = Annotated[int, msgspec.Meta(ge=1, le=1000)]
Version = Annotated[str, msgspec.Meta(max_length=64)]


class ProviderAccountCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: _Name
    channel: Channel
    adapter: Annotated[str, msgspec.Meta(max_length=64)]
    # None: whichever version of the adapter is active.
    adapter_version: Version | None = None
    credentials: Credentials
    # Sender settings and other non-secret settings the adapter reads (`from`, `sender`,
    # `region`, `phone_number_id`, ...).
    config: Config = msgspec.field(default_factory=dict)
    base_url: str | None = None
    # Lower is tried first; among equals, by weight.
    priority: Priority = 100
    weight: Weight = 1
    # Price per message by country (ISO 3166) and `default` for the rest (0 when missing);
    # `"default": null` limits the account to the countries listed. Cheaper wins among equals.
    cost: Cost = msgspec.field(default_factory=dict)


class PlatformAccountCreate(ProviderAccountCreate, kw_only=True):
    mode: Mode


class ProviderAccountUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Only the fields given change; `credentials` replaces all of them."""

    name: _Name | msgspec.UnsetType = msgspec.UNSET
    adapter_version: Version | msgspec.UnsetType | None = msgspec.UNSET
    credentials: Credentials | msgspec.UnsetType = msgspec.UNSET
    config: Config | msgspec.UnsetType = msgspec.UNSET
    base_url: str | msgspec.UnsetType | None = msgspec.UNSET
    priority: Priority | msgspec.UnsetType = msgspec.UNSET
    weight: Weight | msgspec.UnsetType = msgspec.UNSET
    cost: Cost | msgspec.UnsetType = msgspec.UNSET
    status: Status | msgspec.UnsetType = msgspec.UNSET


class ProviderAccountView(msgspec.Struct):
    id: UUID
    object: str
    tenant_id: UUID | None
    name: str
    channel: str
    adapter: str
    adapter_version: str | None
    mode: str
    credentials_hint: str | None
    credential_keys: list[str]
    config: dict[str, Any]
    base_url: str | None
    priority: int
    weight: int
    cost: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime


class ProviderAccountList(msgspec.Struct):
    data: list[ProviderAccountView]
    has_more: bool
    next_cursor: str | None
    object: str = "list"


def _view(r: ProviderAccountRecord) -> ProviderAccountView:
    return ProviderAccountView(
        id=r.id, object="provider_account", tenant_id=r.tenant_id, name=r.name,
        channel=r.channel, adapter=r.adapter, adapter_version=r.adapter_version, mode=r.mode,
        credentials_hint=r.credentials_hint, credential_keys=r.credential_keys, config=r.config,
        base_url=r.base_url, priority=r.priority, weight=r.weight, cost=r.cost, status=r.status,
        created_at=r.created_at, updated_at=r.updated_at)


def _not_found() -> HermesError:
    return HermesError(Code.REQUEST_NOT_FOUND, "no provider account with this id")


def _account_id(raw: str) -> UUID:
    # Another tenant's id and no id at all read the same: not found.
    try:
        return UUID(raw)
    except ValueError:
        raise _not_found() from None


def _manifests(container: Container) -> dict[str, dict[str, Any]]:
    return {n: container.adapters.get(n).manifest for n in container.adapters.names()}


async def _base_url(container: Container, mode: str, given: str | None) -> str | None:
    """Where the account sends: the sandbox in test mode; in live mode the base URL
    given (https, never the sandbox, SSRF-checked), or none for the provider's own."""
    sandbox = container.settings.sandbox_url
    if mode == "test":
        if not sandbox:
            raise rules.invalid("base_url", "test-mode accounts send to the provider sandbox, "
                                            "and this deployment has none (HERMES_SANDBOX_URL)")
        if given is not None and not rules.same_origin(given.strip(), sandbox):
            raise rules.invalid("base_url", "a test-mode account sends only to the provider "
                                            "sandbox; leave base_url out")
        return sandbox
    if given is None:
        return None
    url = rules.check_base_url(given)
    if sandbox and rules.same_origin(url, sandbox):
        raise rules.invalid("base_url", "live accounts never send to the provider sandbox")
    await check_target(url, container.targets, field="base_url")
    return url


def _sealed(container: Container, account_id: UUID, credentials: dict[str, Any]
            ) -> dict[str, Any]:
    return {"credentials": seal(credentials, account_id, container.keyring),
            "credentials_hint": rules.credentials_hint(credentials),
            "credential_keys": sorted(credentials)}


async def create_account(container: Container, tenant_id: UUID | None, mode: str,
                         data: ProviderAccountCreate) -> ProviderAccountView:
    manifests = _manifests(container)
    rules.check_adapter(data.adapter, data.channel, manifests)
    rules.check_version(data.adapter_version)
    rules.check_credentials(data.credentials, data.adapter, manifests[data.adapter])
    rules.check_config(data.config)
    rules.check_cost(data.cost)
    base_url = await _base_url(container, mode, data.base_url)
    account_id = uuid.uuid4()
    record = await PostgresProviderAccountStore(container.pool).create({
        "id": account_id, "tenant_id": tenant_id, "name": data.name, "channel": data.channel,
        "adapter": data.adapter, "adapter_version": data.adapter_version, "mode": mode,
        "config": data.config, "base_url": base_url, "priority": data.priority,
        "weight": data.weight, "cost": data.cost,
        **_sealed(container, account_id, data.credentials),
    })
    await container.accounts.refresh()
    return _view(record)


async def update_account(container: Container, owner: Owner, account_id: UUID,
                         data: ProviderAccountUpdate) -> ProviderAccountView:
    store = PostgresProviderAccountStore(container.pool)
    current = await store.get(owner, account_id)
    if current is None:
        raise _not_found()
    given = {f: getattr(data, f) for f in data.__struct_fields__
             if getattr(data, f) is not msgspec.UNSET}
    changes: dict[str, Any] = {k: v for k, v in given.items()
                               if k in ("name", "priority", "weight", "status")}
    if "adapter_version" in given:
        rules.check_version(given["adapter_version"])
        changes["adapter_version"] = given["adapter_version"]
    if "credentials" in given:
        manifest = _manifests(container).get(current.adapter, {})
        rules.check_credentials(given["credentials"], current.adapter, manifest)
        changes.update(_sealed(container, account_id, given["credentials"]))
    if "config" in given:
        rules.check_config(given["config"])
        changes["config"] = given["config"]
    if "cost" in given:
        rules.check_cost(given["cost"])
        changes["cost"] = given["cost"]
    if "base_url" in given:
        changes["base_url"] = await _base_url(container, current.mode, given["base_url"])
    if not changes:
        return _view(current)
    record = await store.update(owner, account_id, changes)
    if record is None:
        raise _not_found()
    await container.accounts.refresh()
    return _view(record)


async def disable_account(container: Container, owner: Owner, account_id: UUID) -> None:
    record = await PostgresProviderAccountStore(container.pool).update(
        owner, account_id, {"status": "disabled"})
    if record is None:
        raise _not_found()
    await container.accounts.refresh()


async def list_accounts(container: Container, owner: Owner, limit: int, cursor: str | None,
                        channel: str | None, status: str | None) -> ProviderAccountList:
    after = _account_id(cursor) if cursor else None
    rows = await PostgresProviderAccountStore(container.pool).list(
        owner, limit=limit + 1, after=after, channel=channel, status=status)
    page = rows[:limit]
    more = len(rows) > limit
    return ProviderAccountList(data=[_view(r) for r in page], has_more=more,
                               next_cursor=str(page[-1].id) if more and page else None)


async def get_account(container: Container, owner: Owner, raw_id: str) -> ProviderAccountView:
    found = await PostgresProviderAccountStore(container.pool).get(owner, _account_id(raw_id))
    if found is None:
        raise _not_found()
    return _view(found)


def _require(principal: Principal, scope: str) -> Owner:
    if not principal.allows(scope):
        raise HermesError(Code.AUTH_FORBIDDEN, f"this API key lacks the `{scope}` scope")
    return Owner(principal.tenant_id, principal.mode)


_Limit = Annotated[int, QueryParameter(ge=1, le=200)]
_Cursor = Annotated[str | None, QueryParameter(description="`next_cursor` of the previous page")]
_ChannelQ = Annotated[Channel | None, QueryParameter()]
_StatusQ = Annotated[Status | None, QueryParameter()]


class ProviderAccountsController(Controller):
    path = "/v1/provider-accounts"
    tags = ["provider accounts"]

    @post("/", status_code=201, summary="Add a provider account of the key's mode")
    async def create(self, data: JSONBody[ProviderAccountCreate],
                     principal: NamedDependency[Principal],
                     container: NamedDependency[Container]) -> ProviderAccountView:
        owner = _require(principal, "manage")
        return await create_account(container, owner.tenant_id, principal.mode, data)

    @get("/", summary="The tenant's provider accounts of the key's mode, in id order")
    async def list_all(self, principal: NamedDependency[Principal],
                       container: NamedDependency[Container], limit: _Limit = 50,
                       cursor: _Cursor = None, channel: _ChannelQ = None,
                       status: _StatusQ = None) -> ProviderAccountList:
        return await list_accounts(container, _require(principal, "read"), limit, cursor,
                                   channel, status)

    @get("/{account_id:str}", summary="One provider account (never its credentials)")
    async def get_one(self, account_id: FromPath[str], principal: NamedDependency[Principal],
                      container: NamedDependency[Container]) -> ProviderAccountView:
        return await get_account(container, _require(principal, "read"), account_id)

    @patch("/{account_id:str}", summary="Change settings or replace the credentials")
    async def update(self, account_id: FromPath[str], data: JSONBody[ProviderAccountUpdate],
                     principal: NamedDependency[Principal],
                     container: NamedDependency[Container]) -> ProviderAccountView:
        return await update_account(container, _require(principal, "manage"),
                                    _account_id(account_id), data)

    @delete("/{account_id:str}", status_code=204,
            summary="Disable an account (its attempts keep pointing at it)")
    async def disable(self, account_id: FromPath[str], principal: NamedDependency[Principal],
                      container: NamedDependency[Container]) -> Response[None]:
        await disable_account(container, _require(principal, "manage"),
                              _account_id(account_id))
        return Response(None, status_code=204)


_PLATFORM = Owner(None)


class PlatformAccountsController(Controller):
    path = "/admin/v1/provider-accounts"
    tags = ["admin"]

    @post("/", status_code=201, summary="Add a platform-wide default provider account")
    async def create(self, data: JSONBody[PlatformAccountCreate], admin: NamedDependency[str],
                     container: NamedDependency[Container]) -> ProviderAccountView:
        return await create_account(container, None, data.mode, data)

    @get("/", summary="The platform's default accounts, in id order")
    async def list_all(self, admin: NamedDependency[str], container: NamedDependency[Container],
                       limit: _Limit = 50, cursor: _Cursor = None,
                       mode: Annotated[Mode | None, QueryParameter()] = None,
                       channel: _ChannelQ = None,
                       status: _StatusQ = None) -> ProviderAccountList:
        return await list_accounts(container, Owner(None, mode), limit, cursor, channel, status)

    @get("/{account_id:str}", summary="One platform account (never its credentials)")
    async def get_one(self, account_id: FromPath[str], admin: NamedDependency[str],
                      container: NamedDependency[Container]) -> ProviderAccountView:
        return await get_account(container, _PLATFORM, account_id)

    @patch("/{account_id:str}", summary="Change a platform account")
    async def update(self, account_id: FromPath[str], data: JSONBody[ProviderAccountUpdate],
                     admin: NamedDependency[str],
                     container: NamedDependency[Container]) -> ProviderAccountView:
        return await update_account(container, _PLATFORM, _account_id(account_id), data)

    @delete("/{account_id:str}", status_code=204, summary="Disable a platform account")
    async def disable(self, account_id: FromPath[str], admin: NamedDependency[str],
                      container: NamedDependency[Container]) -> Response[None]:
        await disable_account(container, _PLATFORM, _account_id(account_id))
        return Response(None, status_code=204)
