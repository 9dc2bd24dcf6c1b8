"""`/v1/messages`: send, read, list and cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter

from hermes.api.ingest import (
    Accepted,
    accepted,
    check_idempotency_key,
    decode_create,
    new_row,
    now_ms,
    prepare,
    request_hash,
)
from hermes.bootstrap import Container
from hermes.domain.errors import Code, HermesError
from hermes.domain.jobs import StartCommand
from hermes.domain.tenancy import Principal


class MessageLinks(msgspec.Struct):
    self: str


class MessageAccepted(msgspec.Struct):
    id: str
    object: str
    status: str
    created_at: datetime
    links: MessageLinks


def _accepted_body(a: Accepted) -> MessageAccepted:
    return MessageAccepted(id=a.id, object="message", status=a.status, created_at=a.created_at,
                           links=MessageLinks(self=f"/v1/messages/{a.id}"))


class MessagesController(Controller):
    path = "/v1/messages"
    tags = ["messages"]

    @post("/", status_code=202, summary="Send a message (with a cascade of fallbacks)")
    async def create(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        container: NamedDependency[Container],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
    ) -> Response[MessageAccepted]:
        if not principal.allows("send"):
            raise HermesError(Code.AUTH_FORBIDDEN, "this API key may not send messages")
        key = check_idempotency_key(idempotency_key)
        body = await request.body()
        req = decode_create(body)
        now = now_ms()
        contact = None
        if isinstance(req.to, str):
            contact = await container.contacts.resolve(principal.tenant_id, req.to)
        spec = prepare(req, contact, now)
        body_hash = request_hash(body) if key else None
        row = new_row(principal, spec, req, shard_count=container.settings.shard_count,
                      idempotency_key=key, body_hash=body_hash, now_ms=now)
        result = await container.writer.insert(row)
        answer = accepted(row, result, body_hash)
        if not answer.replayed:
            container.publisher.submit(row.shard, StartCommand(
                id=row.id, tenant_id=principal.tenant_id, mode=principal.mode,
                spec=msgspec.Raw(row.spec_json.encode())))
        headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
        return Response(_accepted_body(answer), status_code=202, headers=headers)

