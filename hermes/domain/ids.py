"""Time-ordered identifiers (UUIDv7, RFC 9562), so new rows land at the end of indexes."""

from __future__ import annotations

import os
import time
from uuid import UUID


def uuid7(now_ms: int | None = None) -> UUID:
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 68) & 0xFFF) << 64  # 12 bits rand_a
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # 62 bits rand_b
    return UUID(int=value)


def shard_of(message_id: UUID, shard_count: int) -> int:
    # The low bits are random, so shards are even whatever the arrival rate.
    return message_id.int % shard_count
