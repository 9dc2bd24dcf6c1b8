"""Counting a Batcher's flushes, to show concurrent callers shared a round trip."""

from __future__ import annotations

from typing import Any

from hermes.delivery.batching import Batcher


def count_flushes(batcher: Batcher[Any, Any]) -> list[int]:
    """Wrap `batcher`'s flush; the returned list gets each flush's batch size."""
    sizes: list[int] = []
    flush = batcher.flush

    async def counted(items: list[Any]) -> list[Any]:
        sizes.append(len(items))
        return await flush(items)

    batcher.flush = counted
    return sizes
