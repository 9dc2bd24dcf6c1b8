"""The PostgreSQL connection pool (psycopg 3, async)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool


async def _configure(conn: AsyncConnection[Any]) -> None:
    # Plan every statement for its parameters. The batch statements take their rows as
    # arrays whose sizes vary from 1 to hundreds, and psycopg prepares a statement after
    # its fifth use; PostgreSQL then settles on a generic plan made for no particular
    # array, often while the tables are still small. Such a plan scans a whole table (in a
    # benchmark sweep, attempts was read in full some 4,000 times in 30 s, PostgreSQL's CPU
    # per cascade growing with the table) until statistics change, which a growing table
    # may not trigger for minutes.
    await conn.execute("SET plan_cache_mode = force_custom_plan")


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
        configure=_configure,
    )
