"""The Redis client (redis-py, asyncio)."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

# Connections per process. When all are busy a command waits (up to POOL_WAIT_S) for one
# instead of failing: under a burst of requests the rate limiter must queue, not conclude
# that Redis is down.
MAX_CONNECTIONS = 64
POOL_WAIT_S = 2.0


def make_redis(url: str) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_S,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=10,
        decode_responses=False,
    )
    return Redis.from_pool(pool)
