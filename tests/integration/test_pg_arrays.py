"""Array literals built in Python read back as the same values in PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from hermes.bootstrap import Container
from hermes.infra.postgres.arrays import literal

NASTY = ['plain', '', 'NULL', 'null', ' padded ', 'a,b', '{braces}', 'quote " inside',
         'back\\slash', '\\"both\\"', 'new\nline\ttab', 'ünïcødé ✓', "single ' quote", None]


async def _roundtrip(container: Container, cast: str, values: list[object]) -> list[object]:
    async with container.pool.connection() as conn:
        cur = await conn.execute(f"SELECT %s::{cast}", (literal(values),))
        row = await cur.fetchone()
    assert row is not None
    return list(row[0])


async def test_text_uuid_int_bool_bytea_and_empty_arrays_round_trip(container: Container) -> None:
    assert await _roundtrip(container, "text[]", NASTY) == NASTY
    ids = [uuid.uuid4(), None, uuid.uuid4()]
    assert await _roundtrip(container, "uuid[]", ids) == ids
    assert await _roundtrip(container, "int[]", [1, -2, None, 2**31 - 1]) == [1, -2, None,
                                                                              2**31 - 1]
    assert await _roundtrip(container, "bool[]", [True, False, None]) == [True, False, None]
    assert await _roundtrip(container, "text[]", []) == []
    blobs = [b"\x00\x01\xff", b"", None, bytes(range(256))]
    assert await _roundtrip(container, "bytea[]", blobs) == blobs


async def test_timestamps_keep_their_instant_and_json_its_structure(
        container: Container) -> None:
    at = datetime(2026, 11, 28, 1, 2, 3, 456789, tzinfo=UTC)
    east = at.astimezone(timezone(timedelta(hours=5, minutes=30)))
    got = await _roundtrip(container, "timestamptz[]", [at, east, None])
    assert got[:2] == [at, at] and got[2] is None
    docs = ['{"a": "quote \\" and back\\\\slash", "b": [1, {"c": null}]}', '[]', '"x"']
    async with container.pool.connection() as conn:
        cur = await conn.execute("SELECT array_agg(j::text) FROM unnest(%s::jsonb[]) AS j",
                                 (literal(docs),))
        row = await cur.fetchone()
    assert row is not None
    assert row[0] == ['{"a": "quote \\" and back\\\\slash", "b": [1, {"c": null}]}', '[]',
                      '"x"']


def test_what_postgresql_cannot_hold_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="NUL"):
        literal(["a\0b"])
    with pytest.raises(ValueError, match="naive"):
        literal([datetime(2026, 1, 1)])
