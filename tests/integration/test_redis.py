"""Round trips through a real Redis."""

from __future__ import annotations

import uuid

from hermes.bootstrap import Container


async def test_set_get_incr_and_expiry(container: Container) -> None:
    r = container.redis
    key = f"test:{uuid.uuid4().hex}"
    assert await r.set(key, b"v1", px=60_000)
    assert await r.get(key) == b"v1"
    assert 0 < await r.pttl(key) <= 60_000
    assert await r.incr(key + ":n") == 1
    assert await r.incr(key + ":n") == 2
    assert await r.delete(key, key + ":n") == 2
    assert await r.get(key) is None
