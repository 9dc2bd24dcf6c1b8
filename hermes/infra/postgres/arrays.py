"""Array parameters as one literal string.

The batch statements pass their rows as arrays (`unnest(%s::uuid[], %s::text[], ...)`).
psycopg dumps a list parameter element by element in Python, through a dumper looked
up per element: on the engine's and the callbacks' hot paths that was more CPU than
building the statement. Here a whole array becomes one PostgreSQL array literal
(`{"a","b",NULL}`), which psycopg passes as a single text value and the server parses;
the statement and its plan do not change (cast the parameter: `%s::uuid[]`).

Every element is double-quoted, with `\\` and `"` escaped, which is PostgreSQL's rule for
any element text (bytes in bytea's hex format); None is NULL. Only one-dimensional arrays.
The core builds the literal (`hermes_core_rs/src/pgarray.rs`): in Python it was a tenth
of the API's CPU on the single-send path.
"""

from __future__ import annotations

from hermes._core import pg_array as literal

__all__ = ["literal"]
