"""`POST /v1/messages/batch`: many messages, one validation call, one group commit.

Each item is decoded and validated on its own, so a bad item is reported at its
index and the others still go through; the valid ones are committed together
(one `insert_many`) before the answer, exactly as the single endpoint commits one.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from hermes import _core
from hermes.api.ingest import conclude, decode_create, new_row, predraft
from hermes.api.problems import TYPE_PREFIX
from hermes.domain.errors import Code, FieldError, HermesError
from hermes.domain.messages import MessageCreate
from hermes.domain.plan import Contact, Draft
from hermes.domain.tenancy import Principal
from hermes.infra.postgres.messages import NewMessage

MAX_BATCH_ITEMS = 1000


class BatchCreate(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /v1/messages/batch`: each item has the shape of `POST /v1/messages`."""

    messages: list[msgspec.Raw]


class ItemProblem(msgspec.Struct, omit_defaults=True):
    """The RFC 9457 problem the item would have had as a single request."""

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    errors: list[FieldError] = msgspec.field(default_factory=list)


class BatchItem(msgspec.Struct, omit_defaults=True):
    """Accepted (`id`, `status`) or refused (`error`)."""

    index: int
    id: UUID | None = None
    status: str | None = None
    error: ItemProblem | None = None


class BatchResult(msgspec.Struct):
    object: str
    accepted: int
    rejected: int
    results: list[BatchItem]


_ENVELOPE = msgspec.json.Decoder(BatchCreate)


def decode_batch(body: bytes) -> list[msgspec.Raw]:
    try:
        items = _ENVELOPE.decode(body).messages
    except msgspec.ValidationError as exc:
        raise HermesError(Code.REQUEST_INVALID, str(exc), errors=[
            FieldError(Code.REQUEST_INVALID, "messages", str(exc))]) from None
    except msgspec.DecodeError as exc:
        raise HermesError(Code.REQUEST_MALFORMED, str(exc)) from None
    if not items:
        raise HermesError(Code.REQUEST_INVALID, "`messages` is empty", errors=[
            FieldError(Code.REQUEST_INVALID, "messages", "give 1 to 1000 messages")])
    if len(items) > MAX_BATCH_ITEMS:
        raise HermesError(Code.REQUEST_TOO_LARGE,
                          f"{len(items)} messages; a batch holds at most {MAX_BATCH_ITEMS}",
                          errors=[FieldError(Code.REQUEST_TOO_LARGE, "messages",
                                             "split the batch")])
    return items


def problem_of(exc: HermesError) -> ItemProblem:
    return ItemProblem(type=TYPE_PREFIX + exc.code, title=exc.title, status=exc.status,
                       code=exc.code, detail=exc.detail, errors=exc.errors)


class Decoded(msgspec.Struct):
    index: int
    req: MessageCreate


def decode_items(items: list[msgspec.Raw], errors: dict[int, ItemProblem]) -> list[Decoded]:
    out = []
    for i, raw in enumerate(items):
        try:
            out.append(Decoded(i, decode_create(bytes(raw))))
        except HermesError as exc:
            errors[i] = problem_of(exc)
    return out


def contact_keys(decoded: list[Decoded]) -> list[str]:
    return sorted({d.req.to for d in decoded if isinstance(d.req.to, str)})


def validate_items(principal: Principal, decoded: list[Decoded], contacts: dict[str, Contact],
                   errors: dict[int, ItemProblem], *, shard_count: int,
                   now_ms: int, policy: dict[str, Any] | None = None,
                   ) -> list[tuple[int, NewMessage]]:
    """Layers 3-6 for every item in one core call; the rows of the valid ones."""
    drafts: list[tuple[int, MessageCreate, Draft, Contact | None]] = []
    for d in decoded:
        contact = contacts.get(d.req.to) if isinstance(d.req.to, str) else None
        try:
            req, dr = predraft(d.req, contact)
        except HermesError as exc:
            errors[d.index] = problem_of(exc)
            continue
        drafts.append((d.index, req, dr, contact))
    if not drafts:
        return []
    results = _core.validate_batch([dr.core_input for _, _, dr, _ in drafts], policy, now_ms)
    rows: list[tuple[int, NewMessage]] = []
    for (index, req, dr, contact), result in zip(drafts, results, strict=True):
        try:
            spec = conclude(req, dr, result, contact)
        except HermesError as exc:
            errors[index] = problem_of(exc)
            continue
        rows.append((index, new_row(principal, spec, req, shard_count=shard_count,
                                    idempotency_key=None, body_hash=None, now_ms=now_ms)))
    return rows


def answer(total: int, rows: list[tuple[int, NewMessage]],
           errors: dict[int, ItemProblem]) -> BatchResult:
    items: list[BatchItem] = [BatchItem(index=i) for i in range(total)]
    for i, row in rows:
        items[i] = BatchItem(index=i, id=row.id, status=row.status)
    for i, problem in errors.items():
        items[i] = BatchItem(index=i, error=problem)
    return BatchResult(object="batch", accepted=len(rows), rejected=len(errors), results=items)
