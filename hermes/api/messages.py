"""`/v1/messages`: send, send many, read, list and cancel."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from hermes.api import batch as batching
from hermes.api import lean
from hermes.api.auth import principal_for
from hermes.api.ingest import (
    Accepted,
    check_idempotency_key,
    decode_create,
    now_ms,
    request_hash,
)
from hermes.api.message_views import (
    MessageDetail,
    MessageLinks,
    MessageList,
    decode_cursor,
    detail,
    encode_cursor,
    summary,
)
from hermes.api.singles import Singles
from hermes.bootstrap import Container
from hermes.domain.errors import Code, HermesError
from hermes.domain.jobs import CancelCommand, cancel_msg_id, cascade_subject
from hermes.domain.messages import MessageCreate
from hermes.domain.tenancy import Principal
from hermes.infra.postgres.message_reads import PostgresMessageReader

log = logging.getLogger("hermes.api")

DEFAULT_PAGE = 50
MAX_PAGE = 200
_ENC = msgspec.json.Encoder()


class MessageAccepted(msgspec.Struct, omit_defaults=True):
    id: str
    object: str
    status: str
    created_at: datetime
    links: MessageLinks
    # When the first step will start, if later than now (`send_at`, or quiet hours).
    send_at: datetime | None = None


def _accepted_body(a: Accepted) -> MessageAccepted:
    return MessageAccepted(id=a.id, object="message", status=a.status, created_at=a.created_at,
                           links=MessageLinks(self=f"/v1/messages/{a.id}"),
                           send_at=a.send_at if a.status == "scheduled" else None)


def _require(principal: Principal, scope: str) -> None:
    if not principal.allows(scope):
        verb = "send or cancel" if scope == "send" else "read"
        raise HermesError(Code.AUTH_FORBIDDEN, f"this API key may not {verb} messages")


def _not_found(message_id: UUID) -> HermesError:
    return HermesError(Code.REQUEST_NOT_FOUND, f"no message {message_id}")


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


async def _serve_create(req: lean.LeanRequest) -> lean.Answer:
    """`POST /v1/messages`, on the lean path (`hermes.api.lean`): layers 1-2 and the named
    contact here, the rest with the other requests of this turn (`hermes.api.singles`)."""
    container = req.container
    state = req.app_state
    principal = await principal_for(req.header(b"authorization"), state.principal_cache,
                                    container)
    _require(principal, "send")
    key = check_idempotency_key(req.header(b"idempotency-key"))
    message = decode_create(req.body)
    now = now_ms()
    contact = None
    if isinstance(message.to, str):
        contact = await container.contacts.resolve(principal.tenant_id, message.to)
    body_hash = request_hash(req.body) if key else None
    singles: Singles = state.singles
    answer, headers = await singles.send(principal, key, body_hash, message, contact, now)
    if answer.replayed:
        headers = {**headers, "Idempotent-Replayed": "true"}
    return lean.Answer(202, _ENC.encode(_accepted_body(answer)), headers)


class MessagesController(Controller):
    path = "/v1/messages"
    tags = ["messages"]

    @post("/", status_code=202, summary="Send a message (with a cascade of fallbacks)",
          middleware=[lean.serve(_serve_create)])
    async def create(
        self,
        data: JSONBody[MessageCreate],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
    ) -> Response[MessageAccepted]:
        """Declares the route for OpenAPI; `_serve_create` answers it (`hermes.api.lean`)."""
        raise NotImplementedError

    @post("/batch", status_code=200,
          summary="Send up to 1,000 messages; a result per item",
          description="200 whenever the envelope is valid: each item is accepted (`id`, "
                      "`status`) or refused (`error`, the problem it would have had alone). "
                      "Accepted items are committed before the answer. With an "
                      "`Idempotency-Key`, a retry of the same body replays the first answer "
                      "(`Idempotent-Replayed: true`); another body is `idempotency.conflict`.")
    async def create_batch(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        container: NamedDependency[Container],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
    ) -> Response[batching.BatchResult]:
        _require(principal, "send")
        key = check_idempotency_key(idempotency_key)
        result, replayed, headers = await batching.send(container, principal,
                                                        await request.body(), key, now_ms())
        if replayed:
            headers = {**headers, "Idempotent-Replayed": "true"}
        return Response(result, status_code=200, headers=headers or None)

    @get("/{message_id:uuid}", summary="A message: status, steps, attempts and timeline")
    async def read(self, message_id: FromPath[UUID], principal: NamedDependency[Principal],
                   container: NamedDependency[Container]) -> MessageDetail:
        _require(principal, "read")
        row = await PostgresMessageReader(container.pool).get(
            principal.tenant_id, principal.mode, message_id)
        if row is None:
            raise _not_found(message_id)
        return detail(row)

    @get("/", summary="Messages, newest first, cursor-paginated")
    async def list_messages(
        self,
        principal: NamedDependency[Principal],
        container: NamedDependency[Container],
        status: Annotated[list[str] | None, QueryParameter(
            description="only messages with this status (repeat for several)")] = None,
        created_after: Annotated[datetime | None, QueryParameter(
            description="only messages created after this time (exclusive)")] = None,
        created_before: Annotated[datetime | None, QueryParameter(
            description="only messages created before this time (exclusive)")] = None,
        cursor: Annotated[str | None, QueryParameter(
            description="`next_cursor` of the previous page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    ) -> MessageList:
        _require(principal, "read")
        position = decode_cursor(cursor) if cursor else None
        page = await PostgresMessageReader(container.pool).page(
            principal.tenant_id, principal.mode, statuses=status, created_after=_utc(created_after),
            created_before=_utc(created_before), cursor=position, limit=limit)
        last = page.rows[-1] if page.rows and page.has_more else None
        return MessageList(object="list", data=[summary(r) for r in page.rows],
                           has_more=page.has_more,
                           next_cursor=encode_cursor(last.created_at, last.id) if last else None)

    @post("/{message_id:uuid}/cancel", status_code=202,
          summary="Cancel a message's cascade if it has not finished")
    async def cancel(self, message_id: FromPath[UUID], principal: NamedDependency[Principal],
                     container: NamedDependency[Container]) -> Response[MessageAccepted]:
        _require(principal, "send")
        row = await PostgresMessageReader(container.pool).request_cancel(
            principal.tenant_id, principal.mode, message_id)
        if row is None:
            raise _not_found(message_id)
        if row.final:
            raise HermesError(Code.MESSAGE_ALREADY_FINAL,
                              f"message {message_id} has finished ({row.status})",
                              extra={"message_status": row.status})
        command = CancelCommand(id=message_id, tenant_id=principal.tenant_id)
        try:
            await container.nats.jetstream().publish(
                cascade_subject(row.shard), _ENC.encode(command),
                headers={"Nats-Msg-Id": cancel_msg_id(message_id)}, timeout=5)
        except Exception as exc:
            log.warning("cancel of %s not published: %s", message_id, exc)
            raise HermesError(Code.DEPENDENCY_UNAVAILABLE,
                              "the cancel could not be queued; try again") from None
        body = MessageAccepted(id=str(message_id), object="message", status=row.status,
                               created_at=row.created_at,
                               links=MessageLinks(self=f"/v1/messages/{message_id}"))
        return Response(body, status_code=202)
