"""Rows in COPY's text format, built in bulk.

`AsyncCopy.write_row` formats each value through a dumper looked up per value, in
Python: for the group commit of the single endpoint that was more of the API's CPU than
the commit itself. Here a whole batch becomes one string: tab between columns, a newline
after each row, `\\N` for NULL, and `\\`, newline, carriage return and tab escaped in
text, which is COPY's rule for the text format. Pass it to `AsyncCopy.write`; the COPY
statement does not change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from uuid import UUID


def _field(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):  # before int: a bool is an int
        return "t" if value else "f"
    if isinstance(value, UUID | int):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime has no unambiguous timestamptz")
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\\\x" + bytes(value).hex()  # bytea's hex format, its backslash escaped
    text = str(value)
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "\n" in text or "\r" in text or "\t" in text:
        text = text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if "\0" in text:
        raise ValueError("PostgreSQL text cannot hold NUL")
    return text


def rows(values: Iterable[Sequence[object]]) -> bytes:
    """Rows as COPY text-format data, ready for `AsyncCopy.write`."""
    return "".join("\t".join(map(_field, row)) + "\n" for row in values).encode()
