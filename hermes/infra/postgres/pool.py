"""The PostgreSQL connection pool (psycopg 3, async)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool


def make_pool(url: str, *, min_size: int, max_size: int, name: str) -> AsyncConnectionPool:
    # Opened lazily by `open(wait=False)` so a process starts even while PostgreSQL is down.
    return AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        timeout=5.0,
        reconnect_timeout=0,  # keep trying for ever; readiness reports the outage
        kwargs={"autocommit": True, "application_name": name},
    )
