"""`POST /v1/messages/batch`: many messages, one validation call, one group commit.

Each item is decoded and validated on its own, so a bad item is reported at its
index and the others still go through; the valid ones are committed together
(one `insert_many`) before the answer, exactly as the single endpoint commits one.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from hermes.api import admission, compliance
from hermes.api import limits as layer8
from hermes.api.compliance import Checked
from hermes.api.ingest import accepted, decode_create, new_row, request_hash, validate_many
from hermes.api.problems import TYPE_PREFIX
from hermes.bootstrap import Container
from hermes.domain.errors import Code, FieldError, HermesError
from hermes.domain.jobs import StartCommand
from hermes.domain.messages import MessageCreate, MessageSpec
from hermes.domain.plan import Contact
from hermes.domain.tenancy import Principal
from hermes.infra.postgres.message_reads import PostgresMessageReader
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


def item_key(key: str, index: int) -> str:
    """The idempotency key of one item of a keyed batch. A request's own key is printable,
    so the separator keeps these apart from any single message's key."""
    return f"{key}\x1f{index}"


def validate_items(principal: Principal, decoded: list[Decoded], contacts: dict[str, Contact],
                   errors: dict[int, ItemProblem], *, shard_count: int,
                   now_ms: int, policy: dict[str, Any] | None = None,
                   idempotency_key: str | None = None, body_hash: bytes | None = None,
                   ) -> list[tuple[int, NewMessage]]:
    """Layers 3-6 for every item in one core call; the rows of the valid ones."""
    valid = validate_specs(decoded, contacts, errors, now_ms=now_ms, policy=policy)
    return make_rows(principal, [(i, req, Checked(spec)) for i, req, spec, _ in valid],
                     shard_count=shard_count, now_ms=now_ms, idempotency_key=idempotency_key,
                     body_hash=body_hash)


Valid = tuple[int, MessageCreate, MessageSpec, Contact | None]


def validate_specs(decoded: list[Decoded], contacts: dict[str, Contact],
                   errors: dict[int, ItemProblem], *, now_ms: int,
                   policy: dict[str, Any] | None = None) -> list[Valid]:
    """Layers 3-6 for every item in one core call; the specs of the valid ones."""
    items = [(d.req, contacts.get(d.req.to) if isinstance(d.req.to, str) else None)
             for d in decoded]
    valid: list[Valid] = []
    for d, (_, contact), result in zip(decoded, items,
                                       validate_many(items, now_ms, policy), strict=True):
        if isinstance(result, HermesError):
            errors[d.index] = problem_of(result)
        else:
            valid.append((d.index, result[0], result[1], contact))
    return valid


async def check_compliance(container: Container, principal: Principal, valid: list[Valid],
                           errors: dict[int, ItemProblem],
                           now_ms: int) -> list[tuple[int, MessageCreate, Checked]]:
    """Layer 7 for the whole batch with one lookup; the items that pass it."""
    if not valid:
        return []
    results = await compliance.check(container, principal,
                                     [(req, spec, contact) for _, req, spec, contact in valid],
                                     now_ms)
    passed = []
    for (index, req, _, _), result in zip(valid, results, strict=True):
        if isinstance(result, HermesError):
            errors[index] = problem_of(result)
        else:
            passed.append((index, req, result))
    return passed


def make_rows(principal: Principal, checked: list[tuple[int, MessageCreate, Checked]], *,
              shard_count: int, now_ms: int, idempotency_key: str | None = None,
              body_hash: bytes | None = None) -> list[tuple[int, NewMessage]]:
    rows: list[tuple[int, NewMessage]] = []
    for index, req, c in checked:
        key = item_key(idempotency_key, index) if idempotency_key else None
        row = new_row(principal, c.spec, req, shard_count=shard_count,
                      idempotency_key=key, body_hash=body_hash, now_ms=now_ms)
        compliance.annotate(row, c)
        rows.append((index, row))
    return rows


def answer(total: int, accepted: dict[int, tuple[UUID, str]],
           errors: dict[int, ItemProblem]) -> BatchResult:
    items: list[BatchItem] = [BatchItem(index=i) for i in range(total)]
    for i, (mid, status) in accepted.items():
        items[i] = BatchItem(index=i, id=mid, status=status)
    for i, problem in errors.items():
        items[i] = BatchItem(index=i, error=problem)
    return BatchResult(object="batch", accepted=len(accepted), rejected=len(errors),
                       results=items)


async def send(container: Container, principal: Principal, body: bytes, key: str | None,
               now_ms: int) -> tuple[BatchResult, bool, dict[str, str]]:
    """Validate, commit and start a batch; the answer, whether it replays an earlier one,
    and the RateLimit headers.

    Layer 8 takes one token per item about to be committed, all or none (429 otherwise);
    items an earlier attempt committed cost nothing, and neither do items found committed
    concurrently (their tokens are given back).

    With an Idempotency-Key every item is committed under its own derived key, so a
    retry finds what the first attempt committed (even if it was cut short) and only
    commits the rest: the answer names the same ids.
    """
    items = decode_batch(body)
    body_hash = request_hash(body) if key else None
    prior = {}
    if key:
        keys = [item_key(key, i) for i in range(len(items))]
        found = await PostgresMessageReader(container.pool).by_idempotency_keys(
            principal.tenant_id, principal.mode, keys)
        if any(p.idempotency_hash != body_hash for p in found.values()):
            raise HermesError(Code.IDEMPOTENCY_CONFLICT,
                              "this Idempotency-Key was first used with a different batch")
        prior = {i: found[k] for i, k in enumerate(keys) if k in found}
    errors: dict[int, ItemProblem] = {}
    decoded = [d for d in decode_items(items, errors) if d.index not in prior]
    contacts = await container.contacts.resolve_many(principal.tenant_id, contact_keys(decoded))
    valid = validate_specs(decoded, contacts, errors, now_ms=now_ms)
    checked = await check_compliance(container, principal, valid, errors, now_ms)
    rows = make_rows(principal, checked, shard_count=container.settings.shard_count,
                     now_ms=now_ms, idempotency_key=key, body_hash=body_hash)
    done = {i: (p.id, p.initial_status) for i, p in prior.items()}
    if not rows:
        limit = await layer8.give_back(container, principal, 0)  # nothing to take: the state
        return answer(len(items), done, errors), bool(prior), layer8.headers(limit)
    await admission.check(container, len(rows))
    limit = await layer8.admit(container, principal, len(rows))
    took = len(rows) if limit is not None and not limit.degraded else 0
    try:
        results = await container.writer.insert_many([r for _, r in rows])
    except Exception:
        if took:  # nothing was committed: the tokens go back
            await layer8.give_back(container, principal, took)
        raise
    replays = 0
    for (index, row), result in zip(rows, results, strict=True):
        a = accepted(row, result, body_hash)
        done[index] = (UUID(a.id), a.status)
        if a.replayed:
            replays += 1
        else:
            container.publisher.submit(row.shard, start_command(principal, row))
    if replays and took:
        limit = await layer8.give_back(container, principal, replays)
    return answer(len(items), done, errors), bool(prior), layer8.headers(limit)


def start_command(principal: Principal, row: NewMessage) -> StartCommand:
    return StartCommand(id=row.id, tenant_id=principal.tenant_id, mode=principal.mode,
                        shard=row.shard, spec=msgspec.Raw(row.spec_json.encode()))
