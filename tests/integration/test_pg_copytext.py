"""Rows formatted by `copytext` come out of a COPY as the same values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from hermes.bootstrap import Container
from hermes.infra.postgres import copytext

NASTY = ['plain', '', 'NULL', '\\N', ' padded ', 'tab\there', 'new\nline', 'cr\rhere',
         'back\\slash', '\\.', '\\n literally', 'ünïcødé ✓', "quote ' \" ", None]


async def test_awkward_values_survive_a_copy(container: Container) -> None:
    at = datetime(2026, 11, 28, 1, 2, 3, 456789, tzinfo=UTC)
    east = at.astimezone(timezone(timedelta(hours=5, minutes=30)))
    doc = '{"a": "quote \\" and back\\\\slash\\n", "b": [1, {"c": null}]}'
    rows = [(i, text, uuid.uuid4(), i % 2 == 0, at if i % 3 else east, doc,
             bytes(range(i * 7 % 256)))
            for i, text in enumerate(NASTY)]
    rows.append((len(NASTY), None, None, None, None, None, None))
    async with container.pool.connection() as conn:
        await conn.execute("CREATE TEMP TABLE copied (n int, t text, u uuid, b bool,"
                           " at timestamptz, j jsonb, raw bytea)")
        cur = conn.cursor()
        async with cur.copy("COPY copied FROM STDIN") as copy:
            await copy.write(copytext.rows(rows))
        got = await (await conn.execute(
            "SELECT n, t, u, b, at, j::text, raw FROM copied ORDER BY n")).fetchall()
        await conn.execute("DROP TABLE copied")
    assert [r[1] for r in got] == [*NASTY, None]
    assert [(r[0], r[2], r[3], r[4], r[6]) for r in got] == \
        [(r[0], r[2], r[3], r[4], r[6]) for r in rows]
    assert {r[5] for r in got[:-1]} == {'{"a": "quote \\" and back\\\\slash\\n", "b": [1, '
                                        '{"c": null}]}'}


def test_what_postgresql_cannot_hold_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="NUL"):
        copytext.rows([("a\0b",)])
    with pytest.raises(ValueError, match="naive"):
        copytext.rows([(datetime(2026, 1, 1),)])
