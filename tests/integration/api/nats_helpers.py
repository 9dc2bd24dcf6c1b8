"""Reading what the API published on `hermes.cascade.<shard>`."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

from nats.errors import TimeoutError as NatsTimeout

from hermes.bootstrap import Container


async def cascade_commands(container: Container, shard: int, msg_id: str, *,
                           tries: int = 10) -> list[Any]:
    """The commands on the shard's subject whose Nats-Msg-Id is `msg_id` (consumed)."""
    js = container.nats.jetstream()
    durable = f"t{uuid.uuid4().hex[:12]}"
    sub = await js.pull_subscribe(f"hermes.cascade.{shard}", durable=durable,
                                  stream="HERMES_CASCADE")
    found: list[Any] = []
    try:
        for _ in range(tries):
            try:
                batch = await sub.fetch(100, timeout=1)
            except (NatsTimeout, TimeoutError):
                # nats-py raises either, depending on where the wait ran out.
                batch = []
            for msg in batch:
                if msg.headers and msg.headers.get("Nats-Msg-Id") == msg_id:
                    found.append(json.loads(msg.data))
                await msg.ack()
            if found:
                break
    finally:
        await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await js.delete_consumer("HERMES_CASCADE", durable)
    return found
