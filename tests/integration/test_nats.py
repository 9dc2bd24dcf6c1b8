"""Round trips through a real NATS JetStream: streams, Nats-Msg-Id dedup, pull consumers."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import pytest

from hermes.bootstrap import Container
from hermes.domain.jobs import StartCommand
from hermes.infra.nats.publisher import (
    AckedPublisher,
    PublishRefused,
    StartPublisher,
    start_msg_id,
)
from hermes.infra.nats.streams import STREAMS, ensure_streams


async def test_streams_are_created_and_ensure_is_idempotent(container: Container) -> None:
    js = container.nats.jetstream()
    first = await ensure_streams(js)
    second = await ensure_streams(js)
    assert first == second == [s.name for s in STREAMS]
    info = await js.stream_info("HERMES_CASCADE")
    assert info.config.subjects == ["hermes.cascade.>"]
    assert info.config.duplicate_window == pytest.approx(120.0)


async def test_publish_with_msg_id_dedups_and_pull_consumer_acks(
    container: Container, clean_streams: None
) -> None:
    js = container.nats.jetstream()
    await ensure_streams(js)
    shard = f"t{uuid.uuid4().hex[:8]}"
    subject = f"hermes.cascade.{shard}"
    msg_id = str(uuid.uuid4())

    first = await js.publish(subject, b"job-1", headers={"Nats-Msg-Id": msg_id})
    again = await js.publish(subject, b"job-1", headers={"Nats-Msg-Id": msg_id})
    assert not first.duplicate
    assert again.duplicate and again.seq == first.seq  # the re-publish was dropped

    sub = await js.pull_subscribe(subject, durable=f"test-{shard}", stream="HERMES_CASCADE")
    msgs = await sub.fetch(10, timeout=2)
    assert [m.data for m in msgs] == [b"job-1"]
    assert msgs[0].headers and msgs[0].headers["Nats-Msg-Id"] == msg_id
    await msgs[0].ack_sync()

    # Acked on a work queue: nothing is redelivered.
    with pytest.raises(TimeoutError):  # nats-py raises its own subclass or asyncio's
        await sub.fetch(1, timeout=0.5)
    await sub.unsubscribe()
    # Work-queue streams allow one consumer per subject: leave none behind.
    await js.delete_consumer("HERMES_CASCADE", f"test-{shard}")


async def test_unacked_message_is_redelivered(container: Container, clean_streams: None) -> None:
    js = container.nats.jetstream()
    await ensure_streams(js)
    shard = f"r{uuid.uuid4().hex[:8]}"
    subject = f"hermes.deliver.{shard}"
    await js.publish(subject, b"payload", headers={"Nats-Msg-Id": str(uuid.uuid4())})
    sub = await js.pull_subscribe(subject, durable=f"redo-{shard}", stream="HERMES_DELIVER")
    (msg,) = await sub.fetch(1, timeout=2)
    await msg.nak()
    (again,) = await sub.fetch(1, timeout=2)
    assert again.data == b"payload" and again.metadata.num_delivered == 2
    await again.ack_sync()
    await sub.unsubscribe()
    await js.delete_consumer("HERMES_DELIVER", f"redo-{shard}")


async def test_acked_publishes_report_each_message_stored_refused_or_unanswered(
    container: Container, clean_streams: None
) -> None:
    # One batch, three fates: stored by the stream; no stream for the subject (JetStream
    # answers "no responders"); a plain subscriber that never acknowledges (timeout).
    js = container.nats.jetstream()
    await ensure_streams(js)
    nc = await container.nats.wait_connected()
    silent_subject = f"test.silent.{uuid.uuid4().hex[:8]}"
    silent = await nc.subscribe(silent_subject)
    stored = f"hermes.cascade.t{uuid.uuid4().hex[:8]}"
    publisher = AckedPublisher(container.nats, timeout=0.5)
    try:
        results = await publisher.publish_many([
            (stored, b"kept", {"Nats-Msg-Id": str(uuid.uuid4())}),
            (f"test.nowhere.{uuid.uuid4().hex[:8]}", b"lost", {}),
            (silent_subject, b"unanswered", {}),
        ])
        assert results[0] is None
        assert isinstance(results[1], PublishRefused)
        assert isinstance(results[2], TimeoutError)
        with pytest.raises(PublishRefused):
            await publisher.publish(f"test.nowhere.{uuid.uuid4().hex[:8]}", b"x", {})
        msg = await js.get_last_msg("HERMES_CASCADE", stored)
        assert msg.data == b"kept"
    finally:
        await silent.unsubscribe()
        await publisher.close()


async def test_a_publish_that_fails_mid_batch_is_reported_at_once() -> None:
    # The connection breaks on the second message: it and the third were never sent, so
    # they fail with that error at once instead of waiting out the acknowledgement timer.
    class Client:
        is_closed = False
        sent: list[str] = []

        def new_inbox(self) -> str:
            return "_INBOX.test"

        async def subscribe(self, subject: str, cb: Any) -> Any:
            return self

        async def unsubscribe(self) -> None:
            pass

        async def publish(self, subject: str, data: bytes, reply: str, headers: Any) -> None:
            if self.sent:
                raise ConnectionError("connection reset")
            self.sent.append(subject)

    class Nats:
        client = Client()

    publisher = AckedPublisher(Nats(), timeout=0.2)  # type: ignore[arg-type]
    results = await publisher.publish_many([("a", b"", {}), ("b", b"", {}), ("c", b"", {})])
    assert isinstance(results[0], TimeoutError)  # sent, never acknowledged
    assert isinstance(results[1], ConnectionError) and isinstance(results[2], ConnectionError)
    assert publisher._waiting == {}


async def _msg_ids(container: Container, subject: str, n: int) -> list[str]:
    """The `Nats-Msg-Id` of the first `n` messages on `subject` (consumed)."""
    js = container.nats.jetstream()
    sub = await js.pull_subscribe(subject, durable=f"t{uuid.uuid4().hex[:12]}",
                                  stream="HERMES_CASCADE")
    ids: list[str] = []
    try:
        for _ in range(10):
            for msg in await sub.fetch(n - len(ids), timeout=1):
                ids.append((msg.headers or {}).get("Nats-Msg-Id", ""))
                await msg.ack()
            if len(ids) >= n:
                break
    finally:
        await sub.unsubscribe()
    return ids


def _start(shard: int = 0) -> StartCommand:
    return StartCommand(id=uuid.uuid4(), tenant_id=uuid.uuid4(), mode="test", shard=shard,
                        spec=msgspec.Raw(b"{}"))


async def test_start_commands_reach_the_stream_without_waiting_for_acknowledgements(
        container: Container, clean_streams: None) -> None:
    await ensure_streams(container.nats.jetstream())
    nc = container.nats.client
    assert nc is not None
    seen: list[Any] = []

    async def watched(msg: Any) -> None:
        seen.append(msg)

    watch = await nc.subscribe("hermes.cascade.0", cb=watched)
    publisher = StartPublisher(container.nats)
    publisher.start()
    commands = [_start() for _ in range(50)]
    for command in commands:
        publisher.submit(0, command)
    await publisher.stop()  # drains the queue and flushes nats-py's buffer
    assert publisher.published == 50 and publisher.failed == 0
    await nc.flush()
    await watch.unsubscribe()
    # Plain publishes: no reply subject, so JetStream sends no acknowledgement.
    assert len(seen) == 50 and {m.reply for m in seen} == {""}
    # The server's PONG to the flush means it has them; JetStream stores them just after.
    stored = 0
    for _ in range(50):
        stored = (await container.nats.jetstream().stream_info("HERMES_CASCADE")).state.messages
        if stored >= 50:
            break
        await asyncio.sleep(0.1)
    assert stored == 50
    # Each under its start's Nats-Msg-Id, so a repeat by the recovery sweep is dropped.
    assert sorted(await _msg_ids(container, "hermes.cascade.0", 50)) == sorted(
        start_msg_id(c.id) for c in commands)


async def test_start_commands_without_a_connection_are_counted_failed_for_the_sweep() -> None:
    class Nats:
        client = None

    publisher = StartPublisher(Nats())  # type: ignore[arg-type]
    publisher.start()
    for _ in range(3):
        publisher.submit(0, _start())
    await publisher.stop()
    assert publisher.published == 0 and publisher.failed == 3
