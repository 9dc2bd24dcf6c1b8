"""The core's PostgreSQL array literals against a straightforward Python reference.

`tests/integration/test_pg_arrays.py` checks that PostgreSQL reads the literals back as
the same values; here every kind of element, and random mixtures of them, must come out
exactly as the reference writes them.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hermes._core import pg_array


def _reference_element(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, uuid.UUID | int):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return '"\\\\x' + bytes(value).hex() + '"'
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive")
        return f'"{value.isoformat()}"'
    text = str(value)
    if "\0" in text:
        raise ValueError("NUL")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _reference(values: list[object]) -> str:
    return "{" + ",".join(map(_reference_element, values)) + "}"


class _Name(str, enum.Enum):  # noqa: UP042 (a str subclass whose str() is not its value)
    A = "a"


class _Small(enum.IntEnum):
    B = 2


class _Tagged(uuid.UUID):
    def __str__(self) -> str:
        return "tagged"


EVERY_KIND: list[object] = [
    "plain", "", 'quote " inside', "back\\slash", '\\"both\\"', "ünïcødé ✓ {a,b}", "NULL",
    None, True, False, 0, -5, 2**63 - 1, -(2**63), 2**70, -(2**70),
    uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.uuid4(), _Tagged(int=7),
    b"\x00\x01\xff", b"", bytearray(b"ab"), memoryview(b"xy"),
    datetime(2026, 11, 28, 1, 2, 3, 456789, tzinfo=UTC),
    datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    _Name.A, _Small.B, 1.5, {"k": 1},
]


def test_every_kind_of_element_is_written_as_the_reference_writes_it() -> None:
    for value in EVERY_KIND:
        assert pg_array([value]) == _reference([value]), value
    assert pg_array(EVERY_KIND) == _reference(EVERY_KIND)


def test_any_iterable_and_the_empty_array() -> None:
    assert pg_array([]) == "{}"
    assert pg_array(iter(["a", None])) == '{"a",NULL}'
    assert pg_array(("x",)) == '{"x"}'
    assert pg_array({7}) == "{7}"


def test_what_postgresql_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        pg_array(["ok", "a\0b"])
    with pytest.raises(ValueError, match="naive"):
        pg_array([datetime(2026, 1, 1)])
    with pytest.raises(TypeError):
        pg_array(5)  # type: ignore[arg-type]


_ELEMENTS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(), st.binary(),
    st.uuids(), st.datetimes(timezones=st.timezones()).filter(lambda d: d.tzinfo is not None),
)


@given(st.lists(_ELEMENTS, max_size=20))
def test_random_arrays_match_the_reference(values: list[object]) -> None:
    try:
        expected = _reference(values)
    except ValueError:
        with pytest.raises(ValueError):
            pg_array(values)
        return
    assert pg_array(values) == expected
