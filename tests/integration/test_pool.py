"""The service's PostgreSQL connections plan each statement for its own parameters."""

from __future__ import annotations

from hermes.bootstrap import Container


async def test_pool_connections_use_custom_plans(container: Container) -> None:
    # Every connection of the pool, not only the first: hold several at once.
    conns = [await container.pool.getconn() for _ in range(2)]
    try:
        for conn in conns:
            cur = await conn.execute("SHOW plan_cache_mode")
            assert await cur.fetchone() == ("force_custom_plan",)
    finally:
        for conn in conns:
            await container.pool.putconn(conn)
