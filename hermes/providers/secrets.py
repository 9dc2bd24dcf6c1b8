"""Provider account credentials as stored in `provider_accounts.credentials` (bytea).

Every read and write of the column goes through `seal` and `unseal`. A stored value is
AES-256-GCM ciphertext under one of the operator's master keys:

    byte 0       FORMAT_V1 (0x01)
    byte 1       n, the length of the key id (1-64)
    bytes 2..    the key id (ASCII), then a 12-byte random nonce, then ciphertext + 16-byte tag

The associated data is the header (format, key id) and the account id, so a blob copied
onto another row, or relabelled with another key id, fails to decrypt. Values written
before encryption existed are plain JSON objects (they start with `{`, never 0x01);
they are still read, and `hermes secrets rotate` encrypts them.

The key ring comes from `HERMES_MASTER_KEYS` (`id:base64key`, comma separated) or
`HERMES_MASTER_KEY_FILE` (one `id:base64key` per line); the first key is the active one,
which seals, and every key unseals, so a new key can be put first while rows sealed under
the old one stay readable until `hermes secrets rotate` has re-encrypted them.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hermes.domain.errors import Code, HermesError

FORMAT_V1 = 0x01
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_AAD_LABEL = b"hermes/provider_account.credentials/"

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(dict[str, Any])


class KeyRingError(ValueError):
    """The configured master keys cannot be used; the message names the entry, never the key."""


class CredentialsUnreadable(HermesError):
    """A stored value no configured key opens, or that is not a value this module wrote."""

    def __init__(self, detail: str) -> None:
        super().__init__(Code.ACCOUNT_CREDENTIALS_UNREADABLE, detail)


@dataclass(frozen=True)
class KeyRing:
    """Master keys by id; `active_id` seals, all of them unseal."""

    keys: dict[str, bytes]
    active_id: str

    def __post_init__(self) -> None:
        assert self.active_id in self.keys
        assert all(len(k) == KEY_BYTES for k in self.keys.values())

    def __repr__(self) -> str:  # never the key material
        return f"KeyRing(ids={list(self.keys)}, active={self.active_id!r})"

    @classmethod
    def parse(cls, entries: Sequence[str], source: str) -> KeyRing:
        """`id:base64key` entries, the first active. `source` names them in errors."""
        keys: dict[str, bytes] = {}
        for n, entry in enumerate(entries, 1):
            key_id, sep, encoded = entry.strip().partition(":")
            if not sep or not _KEY_ID.match(key_id):
                raise KeyRingError(f"{source}: entry {n} is not `id:base64key` with an id of "
                                   "1-64 letters, digits, '.', '_' or '-'")
            if key_id in keys:
                raise KeyRingError(f"{source}: key id {key_id!r} appears twice")
            keys[key_id] = _decode_key(encoded.strip(), f"{source}: key {key_id!r}")
        if not keys:
            raise KeyRingError(f"{source}: no master key")
        return cls(keys=keys, active_id=next(iter(keys)))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KeyRing:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise KeyRingError(f"master key file {path}: {exc.strerror or exc}") from None
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        return cls.parse(lines, f"master key file {path}")

    @classmethod
    def from_config(cls, master_keys: str | None, master_key_file: str | None) -> KeyRing | None:
        """The ring the settings name; None when they name none."""
        if master_keys and master_key_file:
            raise KeyRingError("set HERMES_MASTER_KEYS or HERMES_MASTER_KEY_FILE, not both")
        if master_keys:
            return cls.parse([e for e in master_keys.split(",") if e.strip()],
                             "HERMES_MASTER_KEYS")
        if master_key_file:
            return cls.from_file(master_key_file)
        return None


def _decode_key(encoded: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise KeyRingError(f"{what} is not base64") from None
    if len(raw) != KEY_BYTES:
        raise KeyRingError(f"{what} must be {KEY_BYTES} bytes (AES-256), not {len(raw)}")
    return raw


def new_key_entry(key_id: str) -> str:
    """A fresh `id:base64key` entry for the key ring."""
    if not _KEY_ID.match(key_id):
        raise KeyRingError(f"key id {key_id!r}: 1-64 letters, digits, '.', '_' or '-'")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def write_key_file(path: Path) -> None:
    """Create `path` (mode 0600) holding one new key; an existing file is left as it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as f:
        f.write("# Hermes master keys, `id:base64key`, the first active. Keep this file secret.\n")
        f.write(new_key_entry("dev-1") + "\n")


def _header(key_id: str) -> bytes:
    raw = key_id.encode("ascii")
    return bytes([FORMAT_V1, len(raw)]) + raw


def _aad(header: bytes, account_id: UUID) -> bytes:
    return _AAD_LABEL + account_id.bytes + header


def seal(credentials: dict[str, Any], account_id: UUID, ring: KeyRing) -> bytes:
    """The column value for `credentials` of the account `account_id`."""
    header = _header(ring.active_id)
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(ring.keys[ring.active_id]).encrypt(
        nonce, _ENCODER.encode(credentials), _aad(header, account_id))
    return header + nonce + sealed


def key_id_of(stored: bytes) -> str | None:
    """The id of the key a value is sealed under; None for a legacy plain-JSON value."""
    if not stored or stored[0] != FORMAT_V1:
        return None
    n = stored[1] if len(stored) > 1 else 0
    return stored[2:2 + n].decode("ascii", "replace")


def unseal(stored: bytes, account_id: UUID, ring: KeyRing) -> dict[str, Any]:
    """The credentials a column value holds; `CredentialsUnreadable` if it cannot be opened."""
    if stored[:1] == b"{":
        # Written before encryption at rest; `hermes secrets rotate` seals it.
        try:
            return _DECODER.decode(stored)
        except msgspec.DecodeError:
            raise CredentialsUnreadable("the stored credentials are not valid JSON") from None
    if len(stored) < 2 or stored[0] != FORMAT_V1:
        raise CredentialsUnreadable("the stored credentials are in an unknown format")
    n = stored[1]
    body_at = 2 + n
    if n == 0 or len(stored) < body_at + NONCE_BYTES + TAG_BYTES:
        raise CredentialsUnreadable("the stored credentials are truncated")
    key_id = stored[2:body_at].decode("ascii", "replace")
    key = ring.keys.get(key_id)
    if key is None:
        raise CredentialsUnreadable(f"sealed under master key {key_id!r}, which is not configured")
    nonce = stored[body_at:body_at + NONCE_BYTES]
    try:
        plain = AESGCM(key).decrypt(nonce, stored[body_at + NONCE_BYTES:],
                                    _aad(stored[:body_at], account_id))
        return _DECODER.decode(plain)
    except InvalidTag:
        raise CredentialsUnreadable(
            f"the stored credentials do not verify under master key {key_id!r} for this "
            "account (altered, or copied from another account)") from None
    except msgspec.DecodeError:
        raise CredentialsUnreadable("the decrypted credentials are not a JSON object") from None


def needs_reseal(stored: bytes, ring: KeyRing) -> bool:
    """Is this value plain JSON, or sealed under a key other than the active one?"""
    return key_id_of(stored) != ring.active_id
