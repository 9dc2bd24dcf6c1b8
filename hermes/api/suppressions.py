"""`/v1/suppressions`: the tenant's suppression list (validation layer 7).

An address is named by its kind (`phone`, `email`, `push`, `whatsapp`) and the
address itself, normalised exactly as a message's recipient is (the same core
call), so `+45 20 12 34 56` and `+4520123456` are one entry. Entries also come
from STOP replies, hard bounces and complaints; `reason` says which.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, Response, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from hermes.bootstrap import Container
from hermes.domain.compliance import KINDS, REASONS, normalise
from hermes.domain.errors import Code, FieldError, HermesError
from hermes.domain.tenancy import Principal
from hermes.infra.postgres.suppressions import PostgresSuppressionStore, Suppression

DEFAULT_PAGE = 50
MAX_PAGE = 200


class SuppressionView(msgspec.Struct):
    object: str
    kind: str
    address: str
    # stop, hard_bounce, complaint or manual
    reason: str
    # The message whose bounce or complaint added the entry, when there was one.
    message_id: UUID | None
    created_at: datetime


class SuppressionList(msgspec.Struct):
    object: str
    data: list[SuppressionView]
    has_more: bool
    next_cursor: str | None


def _view(s: Suppression) -> SuppressionView:
    return SuppressionView(object="suppression", kind=s.kind, address=s.address,
                           reason=s.reason, message_id=s.message_id, created_at=s.created_at)


def encode_cursor(s: Suppression) -> str:
    raw = json.dumps([s.created_at.isoformat(), s.kind, s.address]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, kind, address = json.loads(raw)
        return datetime.fromisoformat(at), str(kind), str(address)
    except (ValueError, TypeError, binascii.Error):
        raise HermesError(Code.REQUEST_INVALID, "the cursor is not one this API returned",
                          errors=[FieldError(Code.REQUEST_INVALID, "cursor", None)]) from None


def _require(principal: Principal, scope: str) -> None:
    if not principal.allows(scope):
        verb = "change" if scope == "manage" else "read"
        raise HermesError(Code.AUTH_FORBIDDEN, f"this API key may not {verb} suppressions")


def _not_found(kind: str, address: str) -> HermesError:
    return HermesError(Code.REQUEST_NOT_FOUND, f"{kind} {address} is not suppressed")


class SuppressionsController(Controller):
    path = "/v1/suppressions"
    tags = ["suppressions"]

    @put("/{kind:str}/{address:str}", summary="Suppress an address",
         description="201 when added, 200 when it was already suppressed (the entry keeps "
                     "its first reason). Messages to it skip the steps that would use it.")
    async def put_suppression(self, kind: FromPath[str], address: FromPath[str],
                              principal: NamedDependency[Principal],
                              container: NamedDependency[Container]
                              ) -> Response[SuppressionView]:
        _require(principal, "manage")
        normal = normalise(kind, address)
        entry, created = await PostgresSuppressionStore(container.pool).put(
            principal.tenant_id, kind, normal, "manual")
        return Response(_view(entry), status_code=201 if created else 200)

    @get("/", summary="The suppression list, newest first, cursor-paginated")
    async def list_suppressions(
        self,
        principal: NamedDependency[Principal],
        container: NamedDependency[Container],
        kind: Annotated[str | None, QueryParameter(
            description="only addresses of this kind: phone, email, push or whatsapp")] = None,
        reason: Annotated[str | None, QueryParameter(
            description="only entries added for this reason: stop, hard_bounce, complaint "
                        "or manual")] = None,
        cursor: Annotated[str | None, QueryParameter(
            description="`next_cursor` of the previous page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    ) -> SuppressionList:
        _require(principal, "read")
        if kind is not None and kind not in KINDS:
            raise HermesError(Code.REQUEST_INVALID, f"kind is one of {', '.join(KINDS)}",
                              errors=[FieldError(Code.REQUEST_INVALID, "kind", None)])
        if reason is not None and reason not in REASONS:
            raise HermesError(Code.REQUEST_INVALID, f"reason is one of {', '.join(REASONS)}",
                              errors=[FieldError(Code.REQUEST_INVALID, "reason", None)])
        after = decode_cursor(cursor) if cursor else None
        rows = await PostgresSuppressionStore(container.pool).page(
            principal.tenant_id, kind=kind, reason=reason, after=after, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        return SuppressionList(object="list", data=[_view(s) for s in page], has_more=more,
                               next_cursor=encode_cursor(page[-1]) if more else None)

    @get("/{kind:str}/{address:str}", summary="One suppressed address")
    async def get_suppression(self, kind: FromPath[str], address: FromPath[str],
                              principal: NamedDependency[Principal],
                              container: NamedDependency[Container]) -> SuppressionView:
        _require(principal, "read")
        normal = normalise(kind, address)
        entry = await PostgresSuppressionStore(container.pool).get(
            principal.tenant_id, kind, normal)
        if entry is None:
            raise _not_found(kind, normal)
        return _view(entry)

    @delete("/{kind:str}/{address:str}", status_code=204,
            summary="Remove an address from the suppression list")
    async def delete_suppression(self, kind: FromPath[str], address: FromPath[str],
                                 principal: NamedDependency[Principal],
                                 container: NamedDependency[Container]) -> None:
        _require(principal, "manage")
        normal = normalise(kind, address)
        if not await PostgresSuppressionStore(container.pool).delete(
                principal.tenant_id, kind, normal):
            raise _not_found(kind, normal)
