"""Array parameters as one literal string.

The batch statements pass their rows as arrays (`unnest(%s::uuid[], %s::text[], ...)`).
psycopg dumps a list parameter element by element in Python, through a dumper looked
up per element: on the engine's and the callbacks' hot paths that was more CPU than
building the statement. Here a whole array becomes one PostgreSQL array literal
(`{"a","b",NULL}`), which psycopg passes as a single text value and the server parses;
the statement and its plan do not change (cast the parameter: `%s::uuid[]`).

Every element is double-quoted, with `\\` and `"` escaped, which is PostgreSQL's rule for
any element text (bytes in bytea's hex format); None is NULL. Only one-dimensional arrays.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID


def _element(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):  # before int: a bool is an int
        return "t" if value else "f"
    if isinstance(value, UUID | int):
        return str(value)  # no character that needs quoting
    if isinstance(value, bytes | bytearray | memoryview):
        return '"\\\\x' + bytes(value).hex() + '"'  # bytea's hex format, backslash escaped
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime has no unambiguous timestamptz")
        return f'"{value.isoformat()}"'
    text = str(value)
    if "\0" in text:
        raise ValueError("PostgreSQL text cannot hold NUL")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(values: Iterable[object]) -> str:
    """`values` as a PostgreSQL array literal (pass it with a cast: `%s::text[]`)."""
    return "{" + ",".join(map(_element, values)) + "}"
