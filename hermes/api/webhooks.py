"""`/v1/webhooks`: a tenant's endpoints (signing secret shown once) and its delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from hermes.bootstrap import Container
from hermes.domain.errors import Code, FieldError, HermesError
from hermes.domain.tenancy import Principal
from hermes.webhooks.store import DELIVERY_STATUSES, Delivery, Endpoint, PostgresWebhookStore
from hermes.webhooks.targets import check_target, validate_url


class EndpointCreate(msgspec.Struct, forbid_unknown_fields=True):
    url: str


class EndpointView(msgspec.Struct):
    id: UUID
    object: str
    url: str
    enabled: bool
    disabled_reason: str | None
    created_at: datetime


class EndpointCreated(EndpointView):
    # The Standard Webhooks signing secret. Shown in this answer only.
    secret: str


class EndpointList(msgspec.Struct):
    object: str
    data: list[EndpointView]


class DeliveryView(msgspec.Struct):
    id: UUID
    object: str
    endpoint_id: UUID
    message_id: UUID | None
    event_type: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryList(msgspec.Struct):
    object: str
    data: list[DeliveryView]
    has_more: bool
    next_cursor: str | None


def _endpoint_view(e: Endpoint) -> EndpointView:
    return EndpointView(id=e.id, object="webhook_endpoint", url=e.url, enabled=e.enabled,
                        disabled_reason=e.disabled_reason, created_at=e.created_at)


def _delivery_view(d: Delivery) -> DeliveryView:
    return DeliveryView(id=d.id, object="webhook_delivery", endpoint_id=d.endpoint_id,
                        message_id=d.message_id, event_type=d.event_type, status=d.status,
                        attempts=d.attempts, last_status=d.last_status, last_error=d.last_error,
                        next_attempt_at=d.next_attempt_at, created_at=d.created_at,
                        delivered_at=d.delivered_at)


def _require(principal: Principal, scope: str) -> None:
    if not principal.allows(scope):
        raise HermesError(Code.AUTH_FORBIDDEN, f"this API key lacks the `{scope}` scope")


def _not_found() -> HermesError:
    return HermesError(Code.REQUEST_NOT_FOUND, "no webhook endpoint with this id")


def _endpoint_id(raw: str) -> UUID:
    # Someone else's id and no id at all read the same: not found.
    try:
        return UUID(raw)
    except ValueError:
        raise _not_found() from None


def _invalid_query(name: str, detail: str) -> HermesError:
    return HermesError(Code.REQUEST_INVALID, detail,
                       errors=[FieldError(code=Code.REQUEST_INVALID, field=name, detail=detail)])


class WebhooksController(Controller):
    path = "/v1/webhooks"
    tags = ["webhooks"]

    @post("/endpoints", status_code=201, summary="Add an endpoint; its secret is shown once")
    async def create_endpoint(
        self, data: JSONBody[EndpointCreate], principal: NamedDependency[Principal],
        container: NamedDependency[Container],
    ) -> EndpointCreated:
        _require(principal, "manage")
        url = validate_url(data.url)
        await check_target(url, container.targets)
        endpoint, secret = await PostgresWebhookStore(container.pool).create_endpoint(
            principal.tenant_id, url)
        view = _endpoint_view(endpoint)
        return EndpointCreated(**msgspec.structs.asdict(view), secret=secret)

    @get("/endpoints", summary="The tenant's endpoints (never their secrets)")
    async def list_endpoints(
        self, principal: NamedDependency[Principal], container: NamedDependency[Container],
    ) -> EndpointList:
        _require(principal, "manage")
        rows = await PostgresWebhookStore(container.pool).list_endpoints(principal.tenant_id)
        return EndpointList(object="list", data=[_endpoint_view(e) for e in rows])

    @get("/endpoints/{endpoint_id:str}", summary="One endpoint (never its secret)")
    async def get_endpoint(
        self, endpoint_id: FromPath[str], principal: NamedDependency[Principal],
        container: NamedDependency[Container],
    ) -> EndpointView:
        _require(principal, "manage")
        found = await PostgresWebhookStore(container.pool).get_endpoint(
            principal.tenant_id, _endpoint_id(endpoint_id))
        if found is None:
            raise _not_found()
        return _endpoint_view(found)

    @delete("/endpoints/{endpoint_id:str}", status_code=204,
            summary="Delete an endpoint; its pending deliveries are abandoned")
    async def delete_endpoint(
        self, endpoint_id: FromPath[str], principal: NamedDependency[Principal],
        container: NamedDependency[Container],
    ) -> Response[None]:
        _require(principal, "manage")
        deleted = await PostgresWebhookStore(container.pool).delete_endpoint(
            principal.tenant_id, _endpoint_id(endpoint_id))
        if not deleted:
            raise _not_found()
        return Response(None, status_code=204)

    @get("/deliveries", summary="Webhook deliveries, newest first, cursor-paginated")
    async def list_deliveries(
        self,
        principal: NamedDependency[Principal],
        container: NamedDependency[Container],
        status: Annotated[str | None, QueryParameter(
            description="only deliveries with this status: pending, delivered, failed or"
                        " abandoned")] = None,
        message_id: Annotated[str | None, QueryParameter(
            description="only deliveries about this message")] = None,
        cursor: Annotated[str | None, QueryParameter(
            description="`next_cursor` of the previous page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
    ) -> DeliveryList:
        _require(principal, "read")
        if status is not None and status not in DELIVERY_STATUSES:
            raise _invalid_query("status", f"status must be one of {', '.join(DELIVERY_STATUSES)}")
        mid = None
        if message_id is not None:
            try:
                mid = UUID(message_id)
            except ValueError:
                raise _invalid_query("message_id", "message_id is not a message id") from None
        page = await PostgresWebhookStore(container.pool).list_deliveries(
            principal.tenant_id, limit=limit, cursor=cursor, status=status, message_id=mid)
        return DeliveryList(object="list", data=[_delivery_view(d) for d in page.data],
                            has_more=page.next_cursor is not None, next_cursor=page.next_cursor)
