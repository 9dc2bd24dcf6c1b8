"""Typed stub of the Rust extension `hermes._core` (the crate `hermes_core_rs`).

The core does no I/O and reads no clock: time is always an argument.
"""

from typing import TypedDict

__version__: str

class ErrorCodeInfo(TypedDict):
    code: str
    status: int
    title: str
    retryable: bool

def error_codes() -> list[ErrorCodeInfo]:
    """The error catalogue: every stable code with its HTTP status, title and retryability."""
