"""Typed stub of the Rust extension `hermes._core` (the crate `hermes_core_rs`).

The core does no I/O and reads no clock: time is always an argument.
"""

from typing import TypedDict

__version__: str
# Mirrors the export list of the `#[pymodule]` in hermes_core_rs/src/lib.rs.
__all__ = [
    "__version__",
    "error_codes",
]

class _ErrorCodeInfo(TypedDict):
    code: str
    status: int
    title: str
    retryable: bool

def error_codes() -> list[_ErrorCodeInfo]:
    """The error catalogue: every stable code with its HTTP status, title and retryability."""
