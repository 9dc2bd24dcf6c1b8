"""The JetStream streams Hermes uses, declared once and created or updated idempotently."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

# How long JetStream remembers a Nats-Msg-Id to drop a re-published duplicate.
# The outbox sweep re-drives well inside this window.
DUPLICATE_WINDOW_S = 120.0

# The engine's commands (starts and cancels), one subject per shard.
CASCADE_STREAM = "HERMES_CASCADE"


def _work_queue(name: str, subject: str) -> StreamConfig:
    # Work-queue retention: a message is gone once its one consumer acks it.
    return StreamConfig(
        name=name,
        subjects=[subject],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        discard=DiscardPolicy.NEW,
    )


STREAMS: tuple[StreamConfig, ...] = (
    # Cascade commands for the engine, partitioned by shard: hermes.cascade.<shard>.
    _work_queue(CASCADE_STREAM, "hermes.cascade.>"),
    # Delivery jobs per channel: hermes.deliver.<channel>.
    _work_queue("HERMES_DELIVER", "hermes.deliver.>"),
    # Attempt results and receipts back to the engine: hermes.events.<shard>.
    _work_queue("HERMES_EVENTS", "hermes.events.>"),
)


async def ensure_streams(js: JetStreamContext) -> list[str]:
    """Create missing streams and bring existing ones to the declared config."""
    names = []
    for config in STREAMS:
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)
        names.append(config.name)
    return names
