"""The service's PostgreSQL connections plan each statement for its parameters."""

from __future__ import annotations

from hermes.bootstrap import Container


async def test_statements_are_not_prepared_unless_asked(container: Container) -> None:
    # Every connection of the pool, not only the first: hold several at once.
    conns = [await container.pool.getconn() for _ in range(2)]
    try:
        for conn in conns:
            await conn.execute("DEALLOCATE ALL")
            for _ in range(8):  # psycopg's default would prepare it after the fifth
                await conn.execute("SELECT count(*) FROM messages WHERE id = ANY(%s::uuid[])",
                                   ("{}",))
            cur = await conn.execute("SELECT count(*) FROM pg_prepared_statements")
            assert await cur.fetchone() == (0,)
            await conn.execute("SELECT 1 WHERE %s::int > 0", (1,), prepare=True)
            cur = await conn.execute("SELECT count(*) FROM pg_prepared_statements")
            assert await cur.fetchone() == (1,)
    finally:
        for conn in conns:
            await conn.execute("DEALLOCATE ALL")
            await container.pool.putconn(conn)
