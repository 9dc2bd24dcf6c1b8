"""Publishing to JetStream with batched acknowledgements, and the cascade start commands
the API publishes after commit, off the request path.

`AckedPublisher`: each message is a JetStream publish, a plain NATS publish to the
stream's subject whose reply subject receives the stream's acknowledgement. It sends a
whole batch, then waits for the batch's acknowledgements on one subscription of its
own, instead of one request (a reply future, a timer, a task) per message as
`JetStreamContext.publish` does. The engine's jobs, delivery results and receipt notices
go through it: for those, the acknowledgement is what lets the sender consider the
message handed over.

`StartPublisher`: the API answers 202 once PostgreSQL has the message; the start command
is published right after, in the background, without asking for an acknowledgement.
An acknowledgement would add nothing to the guarantee: if the command never reaches the
stream (NATS down, the process killed, the stream refusing it), the recovery sweep finds
the message still unstarted within seconds and publishes it again, and `Nats-Msg-Id`
makes a repeat harmless. The sweep's check is end to end (the engine started the
message), which an acknowledgement is not. Not asking saves the API the
acknowledgement's handling for every message, and NATS sending it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from uuid import UUID

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from hermes.domain.jobs import StartCommand, cascade_subject
from hermes.infra.nats.connection import NatsConnection
from hermes.infra.tasks import cancel_and_wait
from hermes.observability import metrics, tracing

log = logging.getLogger("hermes.publisher")

# How long a batch waits for its acknowledgements (what `js.publish(timeout=5)` waited).
ACK_TIMEOUT_S = 5.0
# A batch takes whatever is queued, up to `concurrency` commands, so a backlog is worked
# off in few ack round trips; the event loop gets a turn every this many publishes.
_YIELD_EVERY = 256


def start_msg_id(message_id: UUID) -> str:
    return f"{message_id}:start"


_ENC = msgspec.json.Encoder()


class _PubAck(msgspec.Struct):
    """JetStream's answer to a publish: `{"stream": ..., "seq": ...}` or `{"error": {...}}`."""

    stream: str | None = None
    error: dict[str, object] | None = None


_ACK = msgspec.json.Decoder(_PubAck)


class PublishRefused(Exception):
    """JetStream did not store the message (no stream for the subject, a full stream)."""


class AckedPublisher:
    """JetStream publishes whose acknowledgements come back on one subscription.

    `JetStreamContext.publish` makes a request per message: a reply future, a timeout
    task and a fresh token each. Here a batch of messages is published with reply
    subjects under one inbox this process subscribed to once, and one timer covers the
    batch's acknowledgements: about a quarter of the CPU per message.
    """

    def __init__(self, nats: NatsConnection, *, timeout: float = ACK_TIMEOUT_S) -> None:
        self.nats = nats
        self.timeout = timeout
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._tokens = itertools.count()
        self._acks: tuple[Client, str, Subscription] | None = None

    async def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        """Publish one message and wait for JetStream to store it (raises otherwise)."""
        failed = (await self.publish_many([(subject, data, headers)]))[0]
        if failed is not None:
            raise failed

    async def publish_many(self, items: list[tuple[str, bytes, dict[str, str]]],
                           ) -> list[BaseException | None]:
        """Publish each (subject, data, headers); per item, None once JetStream stored it,
        or why not (refused, not acknowledged in time, not connected)."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        pending: list[tuple[str, asyncio.Future[None]]] = []
        results: list[BaseException | None] = [None] * len(items)
        try:
            nc, prefix = await self._ack_inbox()
            for n, (subject, data, headers) in enumerate(items):
                token = f"{prefix}.{next(self._tokens)}"
                future: asyncio.Future[None] = loop.create_future()
                # Registered first: the acknowledgement may come while publish awaits.
                self._waiting[token] = future
                try:
                    await nc.publish(subject, data, reply=token, headers=headers)
                except BaseException:
                    del self._waiting[token]
                    raise
                pending.append((token, future))
                if n % _YIELD_EVERY == _YIELD_EVERY - 1:
                    await asyncio.sleep(0)  # let other work in between the parts of a big batch
        except Exception as exc:
            for i in range(len(pending), len(items)):
                results[i] = exc  # never sent
        timer = loop.call_later(self.timeout, _expire, [f for _, f in pending])
        try:
            for i, (_, future) in enumerate(pending):
                try:
                    await future
                except Exception as exc:
                    results[i] = exc
        finally:
            timer.cancel()
            for token, _ in pending:
                self._waiting.pop(token, None)
        return results

    async def _ack_inbox(self) -> tuple[Client, str]:
        nc = self.nats.client
        # While nats-py reconnects it buffers publishes, and the acks may still come in time.
        if nc is None or nc.is_closed:
            raise ConnectionError("not connected to NATS")
        if self._acks is None or self._acks[0] is not nc:
            prefix = nc.new_inbox()
            sub = await nc.subscribe(f"{prefix}.*", cb=self._on_ack)
            self._acks = (nc, prefix, sub)
        return nc, self._acks[1]

    async def _on_ack(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject, None)
        if future is None or future.done():
            return  # late, after its batch gave up on it
        try:
            ack = _ACK.decode(msg.data)
        except msgspec.DecodeError:
            ack = _PubAck()  # e.g. a 503 "no responders" status: no stream took it
        if ack.stream is not None and ack.error is None:
            future.set_result(None)
        else:
            why = ack.error or msg.headers
            future.set_exception(PublishRefused(f"JetStream refused it: {why}"))

    async def close(self) -> None:
        if self._acks is not None:
            with contextlib.suppress(Exception):
                await self._acks[2].unsubscribe()
            self._acks = None


def _expire(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(TimeoutError("no acknowledgement from JetStream"))


class StartPublisher:
    def __init__(self, nats: NatsConnection, *, concurrency: int = 2048) -> None:
        self.nats = nats
        # (shard, command, traceparent of the accept span or None)
        self.queue: asyncio.Queue[tuple[int, StartCommand, str | None]] = asyncio.Queue()
        self.concurrency = concurrency
        self.task: asyncio.Task[None] | None = None
        self.published = 0
        self.failed = 0
        self.acked = AckedPublisher(nats)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="start-publisher")

    def submit(self, shard: int, command: StartCommand) -> None:
        """Queue the start of a message just committed (and counted here as accepted)."""
        metrics.message_accepted(command.tenant_id, command.mode)
        tp = tracing.start_traceparent(command.id, command.tenant_id) if tracing.ENABLED else None
        self.queue.put_nowait((shard, command, tp))

    async def stop(self, drain_timeout: float = 5.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), drain_timeout)
        nc = self.nats.client
        if nc is not None and nc.is_connected:
            # Out of nats-py's buffer and through the server before the process goes.
            with contextlib.suppress(Exception):
                await nc.flush(timeout=max(1, round(drain_timeout)))
        await cancel_and_wait(self.task)
        await self.acked.close()

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.concurrency and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self._publish(batch)
            except Exception as exc:
                self._fail([cmd.id for _, cmd, _ in batch], exc)
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def _publish(self, batch: list[tuple[int, StartCommand, str | None]]) -> None:
        nc = self.nats.client
        # While nats-py reconnects it buffers publishes and sends them once it is back.
        if nc is None or nc.is_closed:
            raise ConnectionError("not connected to NATS")
        for n, (shard, cmd, tp) in enumerate(batch):
            headers = {"Nats-Msg-Id": start_msg_id(cmd.id)}
            if tp is not None:
                headers[tracing.TRACEPARENT] = tp
            try:
                await nc.publish(cascade_subject(shard), _ENC.encode(cmd), headers=headers)
            except Exception as exc:
                # Not lost: the message is committed and unstarted; the sweep re-publishes it.
                self._fail([c.id for _, c, _ in batch[n:]], exc)
                return
            self.published += 1

    def _fail(self, ids: list[UUID], exc: BaseException) -> None:
        self.failed += len(ids)
        for mid in ids:
            log.warning("publish of %s failed (the recovery sweep will retry): %s", mid, exc)
