"""Provider credentials at rest: AES-256-GCM under a key ring, bound to the account id."""

from __future__ import annotations

import base64
import os
import stat
import uuid
from pathlib import Path

import pytest

from hermes.bootstrap import ConfigurationError, load_keyring
from hermes.providers.secrets import (
    FORMAT_V1,
    CredentialsUnreadable,
    KeyRing,
    KeyRingError,
    key_id_of,
    needs_reseal,
    new_key_entry,
    seal,
    unseal,
    write_key_file,
)
from hermes.settings import Settings

CREDS = {"account_sid": "AC0123456789", "auth_token": "tok-secret-a1b2",
         "service_account": {"private_key": "-----BEGIN PRIVATE KEY-----\nabc"}}


def ring(*ids: str) -> KeyRing:
    return KeyRing.parse([new_key_entry(i) for i in ids], "test")


def test_round_trip_and_the_stored_form() -> None:
    r, aid = ring("k1"), uuid.uuid4()
    stored = seal(CREDS, aid, r)
    assert stored[0] == FORMAT_V1 and key_id_of(stored) == "k1"
    assert b"tok-secret" not in stored and b"auth_token" not in stored
    assert unseal(stored, aid, r) == CREDS
    # A fresh nonce each time: the same credentials never seal to the same bytes.
    assert seal(CREDS, aid, r) != stored
    assert not needs_reseal(stored, r)


def test_a_flipped_byte_anywhere_is_refused() -> None:
    r, aid = ring("k1"), uuid.uuid4()
    stored = seal(CREDS, aid, r)
    for i in range(len(stored)):
        tampered = bytearray(stored)
        tampered[i] ^= 0x01
        with pytest.raises(CredentialsUnreadable) as info:
            unseal(bytes(tampered), aid, r)
        assert info.value.code == "account.credentials_unreadable"


def test_a_blob_moved_to_another_account_is_refused() -> None:
    r = ring("k1")
    stored = seal(CREDS, uuid.uuid4(), r)
    with pytest.raises(CredentialsUnreadable, match="another account"):
        unseal(stored, uuid.uuid4(), r)


def test_truncated_or_unknown_forms_are_refused() -> None:
    r, aid = ring("k1"), uuid.uuid4()
    stored = seal(CREDS, aid, r)
    for bad in (stored[:10], b"", b"\x02xyz", b"{not json"):
        with pytest.raises(CredentialsUnreadable):
            unseal(bad, aid, r)


def test_rotation_old_keys_open_new_key_seals() -> None:
    old = ring("k1")
    aid = uuid.uuid4()
    stored = seal(CREDS, aid, old)
    both = KeyRing(keys={"k2": ring("k2").keys["k2"], **old.keys}, active_id="k2")
    assert unseal(stored, aid, both) == CREDS and needs_reseal(stored, both)
    resealed = seal(unseal(stored, aid, both), aid, both)
    assert key_id_of(resealed) == "k2" and not needs_reseal(resealed, both)
    new_only = KeyRing(keys={"k2": both.keys["k2"]}, active_id="k2")
    assert unseal(resealed, aid, new_only) == CREDS
    with pytest.raises(CredentialsUnreadable, match="'k1', which is not configured"):
        unseal(stored, aid, new_only)


def test_legacy_plain_json_is_read_and_needs_sealing() -> None:
    r = ring("k1")
    legacy = b'{"auth_token": "plain"}'
    assert unseal(legacy, uuid.uuid4(), r) == {"auth_token": "plain"}
    assert needs_reseal(legacy, r)


def test_key_ring_configuration() -> None:
    a, b = new_key_entry("a"), new_key_entry("b")
    r = KeyRing.from_config(f"{a}, {b}", None)
    assert r is not None and r.active_id == "a" and list(r.keys) == ["a", "b"]
    assert a.split(":")[1] not in repr(r) and b.split(":")[1] not in repr(r)
    urlsafe = "u:" + base64.urlsafe_b64encode(os.urandom(32)).decode()
    assert KeyRing.from_config(urlsafe, None) is not None
    assert KeyRing.from_config(None, None) is None
    for bad, message in ((f"{a},{a}", "twice"), ("a:" + base64.b64encode(b"x" * 16).decode(),
                                                   "32 bytes"), ("a b:xyz", "entry 1"),
                         ("a:%%%", "not base64")):
        with pytest.raises(KeyRingError, match=message) as info:
            KeyRing.from_config(bad, None)
        assert a.split(":")[1] not in str(info.value)
    with pytest.raises(KeyRingError, match="not both"):
        KeyRing.from_config(a, "/some/file")


def test_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    write_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    write_key_file(path)  # reused, never replaced
    assert path.read_text() == first
    r = KeyRing.from_file(path)
    assert r.active_id == "dev-1"
    path.write_text("# comment\n\n" + new_key_entry("k9") + "\n" + first)
    assert KeyRing.from_file(path).active_id == "k9"
    with pytest.raises(KeyRingError, match="master key file"):
        KeyRing.from_file(tmp_path / "missing")


def test_no_key_no_start_and_settings_never_show_keys() -> None:
    with pytest.raises(ConfigurationError, match="no master key"):
        load_keyring(Settings())
    entry = new_key_entry("k1")
    settings = Settings(master_keys=entry)
    assert load_keyring(settings).active_id == "k1"
    assert entry.split(":")[1] not in repr(settings) and entry not in str(settings)


def test_hermes_dev_makes_a_key_file_once_and_allows_loopback(tmp_path: Path) -> None:
    from hermes.devstack.dev import dev_security

    first = dev_security(Settings(allow_private_targets="10.1.0.0/16"), tmp_path)
    key_file = tmp_path / "master.key"
    assert first.master_key_file == str(key_file) and load_keyring(first).active_id == "dev-1"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.allow_private_targets == "10.1.0.0/16,127.0.0.0/8,::1"
    ring = load_keyring(first)
    again = dev_security(Settings(), tmp_path)
    assert load_keyring(again).keys == ring.keys  # reused, so stored credentials stay readable
    configured = dev_security(Settings(master_keys=new_key_entry("ops")), tmp_path / "other")
    assert configured.master_key_file is None and not (tmp_path / "other" / "master.key").exists()
