"""API keys and admin tokens: random, shown once, stored only as digests."""

from __future__ import annotations

import hashlib
import secrets
import string

from hermes.domain.tenancy import KeyMode

_ALPHABET = string.ascii_letters + string.digits
_SECRET_LEN = 32  # 32 base62 characters: about 190 bits
PREFIX_LEN = 12  # what listings show: "hk_test_3fA9"


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def new_api_key(mode: KeyMode) -> str:
    return f"hk_{mode}_{_random(_SECRET_LEN)}"


def new_admin_token() -> str:
    return f"hadm_{_random(_SECRET_LEN)}"


def digest(secret: str) -> bytes:
    # The secrets are long and uniformly random, so a plain SHA-256 cannot be
    # brute-forced; a slow password hash would only slow every request.
    return hashlib.sha256(secret.encode()).digest()


def key_mode(key: str) -> KeyMode | None:
    if key.startswith("hk_test_"):
        return "test"
    if key.startswith("hk_live_"):
        return "live"
    return None


def display_prefix(secret: str) -> str:
    return secret[:PREFIX_LEN]
