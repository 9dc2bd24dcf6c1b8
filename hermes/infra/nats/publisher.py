"""Publishing cascade start commands after commit, off the request path.

The API answers 202 once PostgreSQL has the message; the start command is
published right after, in the background. If the publish fails (NATS down, the
process killed), the recovery sweep finds the message still unstarted and
publishes it again; `Nats-Msg-Id` makes the repeat harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

import msgspec

from hermes.domain.jobs import StartCommand, cascade_subject
from hermes.infra.nats.connection import NatsConnection

log = logging.getLogger("hermes.publisher")


def start_msg_id(message_id: UUID) -> str:
    return f"{message_id}:start"


_ENC = msgspec.json.Encoder()


class StartPublisher:
    def __init__(self, nats: NatsConnection, *, concurrency: int = 256) -> None:
        self.nats = nats
        self.queue: asyncio.Queue[tuple[int, StartCommand]] = asyncio.Queue()
        self.concurrency = concurrency
        self.task: asyncio.Task[None] | None = None
        self.published = 0
        self.failed = 0

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="start-publisher")

    def submit(self, shard: int, command: StartCommand) -> None:
        self.queue.put_nowait((shard, command))

    async def stop(self, drain_timeout: float = 5.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), drain_timeout)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.concurrency and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            await asyncio.gather(*(self._publish(shard, cmd) for shard, cmd in batch))
            for _ in batch:
                self.queue.task_done()

    async def _publish(self, shard: int, cmd: StartCommand) -> None:
        try:
            js = self.nats.jetstream()
            await js.publish(cascade_subject(shard), _ENC.encode(cmd),
                             headers={"Nats-Msg-Id": start_msg_id(cmd.id)}, timeout=5)
            self.published += 1
        except Exception as exc:
            # Not lost: the message is committed and unstarted; the sweep re-publishes it.
            self.failed += 1
            log.warning("publish of %s failed (the recovery sweep will retry): %s", cmd.id, exc)
