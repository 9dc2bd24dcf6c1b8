"""The PostgreSQL connection pool (psycopg 3, async)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

NEVER = 2**62


async def _configure(conn: AsyncConnection[Any]) -> None:
    # Plan every statement for its parameters, unless its call asks to be prepared.
    # The batch statements take their rows as arrays whose sizes vary from 1 to hundreds.
    # Prepared (psycopg does so after a statement's fifth use), PostgreSQL settles on a
    # generic plan made for no particular array, often while the tables are still small:
    # such a plan scans a whole table (in a benchmark sweep, attempts was read in full
    # about 4,000 times in 30 s, PostgreSQL's CPU per cascade growing with the table)
    # until statistics change, which a growing table may not trigger for minutes.
    # The API's two statements per turn of single sends, whose planning showed in that
    # endpoint's rate, pass `prepare=True`: the group commit's insert (no table to scan)
    # and the layer-7 lookup (the suppressions of a few addresses; a stale plan there is
    # corrected at the table's next autovacuum).
    # (None would also refuse `prepare=True`; no statement runs this often.)
    conn.prepare_threshold = NEVER


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
