"""`POST /v1/messages` requests in flight together, taken through the durable path as one.

Each request checks its key's scope, decodes its body and resolves a named contact
itself; then it joins the requests that arrived in the same turn of the event loop.
Together they make one call into the core for layers 3-6, one layer 7 lookup per
tenant, one admission check, one layer 8 take per tenant, one group commit and one
publish batch. Each request still gets the answer it would have had alone: its own
problem, its own replay, and its tenant's RateLimit state.

Layer 8 takes a tenant's requests of one turn together, all or nothing: whenever the
bucket and the quota cover them all, that is what taking them one after another would
give. When they do not, the requests fall back to one take each, in arrival order, so
the ones the bucket covers still pass.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from uuid import UUID

from hermes.api import admission, compliance
from hermes.api import batch as batching
from hermes.api import limits as layer8
from hermes.api.ingest import Accepted, accepted, new_row, validate_many
from hermes.bootstrap import Container
from hermes.domain.errors import Code, HermesError
from hermes.domain.limits import Decision
from hermes.domain.messages import MessageCreate, MessageSpec
from hermes.domain.plan import Contact
from hermes.domain.tenancy import Principal
from hermes.infra.postgres.message_reads import PostgresMessageReader
from hermes.infra.postgres.messages import Inserted, NewMessage
from hermes.observability import hooks

Answered = tuple[Accepted, dict[str, str]]

# Turns whose database and Redis round trips may overlap. While they are out, new requests
# wait and go together in the next turn: the group commit's pattern, one level up.
TURNS_IN_FLIGHT = 2


@dataclass(slots=True)
class Single:
    """One request's message, from its decoded body to its answer."""

    principal: Principal
    key: str | None
    body_hash: bytes | None
    req: MessageCreate
    contact: Contact | None
    now_ms: int
    future: asyncio.Future[Answered]
    spec: MessageSpec | None = None
    row: NewMessage | None = None
    took: bool = False
    # The RateLimit headers of its tenant's take (shared by the requests of the take).
    limit_headers: dict[str, str] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return not self.future.done()

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)

    def answer(self, answer: Accepted, headers: dict[str, str]) -> None:
        if not self.future.done():
            self.future.set_result((answer, headers))


@dataclass(slots=True)
class _Tenant:
    """One tenant and mode's requests of a turn."""

    principal: Principal
    items: list[Single] = field(default_factory=list)
    # Layer 8's answer to the take ahead of layer 7, if it refused.
    refused: HermesError | None = None

    @property
    def valid(self) -> int:
        """How many of its requests passed layers 1-6 (the take ahead asked for these)."""
        return sum(1 for i in self.items if i.spec is not None)

    def with_rows(self) -> list[Single]:
        return [i for i in self.items if i.row is not None and i.live]


class Singles:
    """Gathers the requests of one event-loop turn and sends them as one."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self._waiting: list[Single] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, principal: Principal, key: str | None, body_hash: bytes | None,
                   req: MessageCreate, contact: Contact | None, now_ms: int) -> Answered:
        """Send one message: its answer and the headers to answer with, or its problem."""
        loop = asyncio.get_running_loop()
        item = Single(principal, key, body_hash, req, contact, now_ms, loop.create_future())
        self._waiting.append(item)
        self._schedule()
        return await item.future

    def _schedule(self) -> None:
        if not self._scheduled and self._waiting and len(self._tasks) < TURNS_IN_FLIGHT:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        items, self._waiting = self._waiting, []
        task = asyncio.get_running_loop().create_task(self._run(items), name="singles")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._schedule()

    async def close(self) -> None:
        """Cancel the turns in flight; their requests fail (nothing half-written stays:
        a turn commits in one transaction)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, items: list[Single]) -> None:
        try:
            await self._send(items)
        except BaseException as exc:
            for item in items:
                item.fail(exc)
            if not isinstance(exc, Exception):
                raise

    async def _send(self, items: list[Single]) -> None:
        tenants: dict[tuple[UUID, str], _Tenant] = {}
        for item in items:
            p = item.principal
            tenants.setdefault((p.tenant_id, p.mode), _Tenant(p)).items.append(item)
        groups = list(tenants.values())
        _validate(items)
        # Layer 8's take for each tenant goes out with layer 7's lookup rather than after it:
        # one round trip fewer per turn. A request layer 7 then refuses gives its token
        # back (`_commit`), and a take the bucket refuses is retried one by one after
        # layer 7, so the outcome is what layer 8 after layer 7 would give.
        outcomes = await asyncio.gather(self._layer7(groups),
                                        *(self._take_ahead(g) for g in groups),
                                        return_exceptions=True)
        failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failed is not None:
            await self._give_back_all(groups)
            raise failed
        ready = [i for i in items if i.row is not None and i.live]
        excess = await admission.excess(self.container) if ready else None
        if excess is not None:
            await self._give_back_all(groups)
            await asyncio.gather(*(
                self._replay_or_fail(i, admission.Overloaded(*excess, 1), {}) for i in ready))
            return
        await asyncio.gather(*(self._take_rest(g) for g in groups))
        await self._commit(groups)

    async def _layer7(self, groups: list[_Tenant]) -> None:
        """Layer 7 for the turn, one lookup for all its tenants; the rows of what passes."""
        live = [(g, [i for i in g.items if i.spec is not None and i.live]) for g in groups]
        live = [(g, items) for g, items in live if items]
        if not live:
            return
        results = await compliance.check_groups(
            self.container,
            [(g.principal, [(i.req, i.spec, i.contact) for i in items if i.spec is not None])
             for g, items in live],
            live[0][1][0].now_ms)
        shards = self.container.settings.shard_count
        refused = []
        for (_, items), checked in zip(live, results, strict=True):
            for item, result in zip(items, checked, strict=True):
                if isinstance(result, HermesError):
                    # A retry of a request accepted before its address was suppressed
                    # replays the first answer, as every retry does.
                    refused.append(self._replay_or_fail(item, result, {}))
                    continue
                item.row = new_row(item.principal, result.spec, item.req, shard_count=shards,
                                   idempotency_key=item.key, body_hash=item.body_hash,
                                   now_ms=item.now_ms)
                compliance.annotate(item.row, result)
        await asyncio.gather(*refused)

    async def _take_ahead(self, group: _Tenant) -> None:
        """One take for the tenant's valid requests of the turn; a refusal takes nothing."""
        items = [i for i in group.items if i.spec is not None and i.live]
        if not items:
            return
        try:
            decision = await layer8.admit(self.container, group.principal, len(items))
        except HermesError as exc:
            group.refused = exc
            return
        _took(items, decision)

    async def _take_rest(self, group: _Tenant) -> None:
        """After a refused take: one take each for the requests layer 7 passed, in order."""
        if group.refused is None:
            return
        items = group.with_rows()
        if len(items) == 1 and group.valid == 1 and isinstance(group.refused, layer8.Refused):
            # The refused take was this request's own: it stands.
            refused = group.refused
            await self._replay_or_fail(items[0], refused, layer8.headers(refused.decision))
            return
        for item in items:
            await self._admit_one(group.principal, item)

    async def _give_back_all(self, groups: list[_Tenant]) -> None:
        await asyncio.gather(*(self._give_back(g, [(i, None) for i in g.items if i.took])
                               for g in groups))
        for g in groups:
            for item in g.items:
                item.took = False

    async def _admit_one(self, principal: Principal, item: Single) -> None:
        try:
            decision = await layer8.admit(self.container, principal, 1)
        except layer8.Refused as refused:
            await self._replay_or_fail(item, refused, layer8.headers(refused.decision))
            return
        except HermesError as exc:
            item.fail(exc)
            return
        _took([item], decision)

    async def _commit(self, groups: list[_Tenant]) -> None:
        per_group = [(g, g.with_rows()) for g in groups]
        rows = [i.row for _, items in per_group for i in items if i.row is not None]
        # A request whose client went away after its take commits nothing: its token goes
        # back with the others of its tenant.
        gone: list[list[tuple[Single, Accepted | None]]] = [
            [(i, None) for i in g.items if i.took and not i.live] for g in groups]
        try:
            results = iter(await self.container.writer.insert_many(rows))
        except Exception as exc:
            # Nothing was committed: the tokens go back.
            await self._give_back_all(groups)
            for _, items in per_group:
                for item in items:
                    item.fail(exc)
            return
        await asyncio.gather(*(self._finish(g, [(i, next(results)) for i in items], left)
                               for (g, items), left in zip(per_group, gone, strict=True)))

    async def _finish(self, group: _Tenant, committed: list[tuple[Single, Inserted]],
                      back: list[tuple[Single, Accepted | None]]) -> None:
        """Answer each committed request and start its cascade; a replay's token goes back."""
        for item, result in committed:
            assert item.row is not None
            try:
                answer = accepted(item.row, result, item.body_hash)
            except HermesError as exc:  # the key was first used with another body
                item.fail(exc)
                if item.took:
                    back.append((item, None))
                continue
            if not answer.replayed:
                with hooks.accepting(item.row.id, item.principal.tenant_id,
                                     item.row.created_at):
                    self.container.publisher.submit(
                        item.row.shard, batching.start_command(item.principal, item.row))
                item.answer(answer, item.limit_headers)
            elif item.took:
                back.append((item, answer))
            else:
                item.answer(answer, item.limit_headers)
        await self._give_back(group, back)

    async def _give_back(self, group: _Tenant, items: list[tuple[Single, Accepted | None]]
                         ) -> None:
        """Return the tokens of requests that committed nothing; answer the replays among
        them with the state after the return."""
        if not items:
            return
        decision = await layer8.give_back(self.container, group.principal, len(items))
        for item, answer in items:
            if answer is not None:
                item.answer(answer, layer8.headers(decision))

    async def _replay_or_fail(self, item: Single, exc: HermesError,
                              headers: dict[str, str]) -> None:
        """A request refused after validation that carries a committed Idempotency-Key gets
        its first answer; any other gets `exc`."""
        try:
            replay = await replay_of(self.container, item.principal, item.key,
                                     item.body_hash) if item.key else None
        except HermesError as conflict:
            item.fail(conflict)
            return
        if replay is None:
            item.fail(exc)
        else:
            item.answer(replay, headers)


def _took(items: list[Single], decision: Decision | None) -> None:
    headers = layer8.headers(decision)
    took = decision is not None and not decision.degraded
    for item in items:
        item.took, item.limit_headers = took, headers


def _validate(items: list[Single]) -> None:
    """Layers 3-6 for the turn's messages in one core call; each valid one gets its spec.
    One clock for the turn: its requests arrived within the same turn of the loop."""
    live = [i for i in items if i.live]
    if not live:
        return
    results = validate_many([(i.req, i.contact) for i in live], live[0].now_ms)
    for item, result in zip(live, results, strict=True):
        if isinstance(result, HermesError):
            item.fail(result)
        else:
            item.req, item.spec = result


async def replay_of(container: Container, principal: Principal, key: str,
                    body_hash: bytes | None) -> Accepted | None:
    """The first answer to this Idempotency-Key, if it was committed (None otherwise)."""
    found = await PostgresMessageReader(container.pool).by_idempotency_keys(
        principal.tenant_id, principal.mode, [key])
    prior = found.get(key)
    if prior is None:
        return None
    if prior.idempotency_hash != body_hash:
        raise HermesError(Code.IDEMPOTENCY_CONFLICT,
                          "this Idempotency-Key was first used with a different request body")
    return Accepted(str(prior.id), prior.initial_status, prior.created_at, replayed=True,
                    send_at=prior.send_at)
