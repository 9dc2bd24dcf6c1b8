"""Provider account credentials as stored in `provider_accounts.credentials` (bytea).

Stored as JSON bytes for now. Encryption at rest with a master key replaces these
two functions and nothing else: every read and write of the column goes through here.
"""

from __future__ import annotations

from typing import Any

import msgspec

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(dict[str, Any])


def seal(credentials: dict[str, Any]) -> bytes:
    """The column value for `credentials`."""
    return _ENCODER.encode(credentials)


def unseal(stored: bytes) -> dict[str, Any]:
    """The credentials a column value holds."""
    return _DECODER.decode(stored)
