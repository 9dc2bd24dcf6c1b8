"""`hermes secrets rotate`: every account's credentials end up under the active key, in
batches, idempotently; afterwards the old key can go."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import uuid

import msgspec

from hermes.bootstrap import Container
from hermes.infra.postgres.provider_accounts import PostgresProviderAccountStore
from hermes.providers.secrets import KeyRing, key_id_of, new_key_entry, seal, unseal

CREDS = {"api_key": "rotate-me-5b4a3c2d1e0f"}


def entries(ring: KeyRing) -> list[str]:
    return [f"{k}:{base64.b64encode(v).decode()}" for k, v in ring.keys.items()]


def rotate_cli(container: Container, keys: list[str]) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_")}
    env.update(HERMES_DATABASE_URL=str(container.settings.database_url),
               HERMES_MASTER_KEYS=",".join(keys))
    out = subprocess.run([sys.executable, "-m", "hermes", "secrets", "rotate", "--batch", "2"],
                         env=env, capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout + out.stderr


def counts(output: str) -> tuple[int, int, int]:
    m = re.search(r"re-encrypted (\d+) .*; (\d+) already were; (\d+) unreadable", output)
    assert m, output
    return int(m[1]), int(m[2]), int(m[3])


async def insert(container: Container, account_id: uuid.UUID, stored: bytes) -> None:
    async with container.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO provider_accounts (id, name, channel, adapter, mode, credentials,"
            " status) VALUES (%s, 'rotation', 'sms', 'echo', 'live', %s, 'disabled')",
            (account_id, stored))


async def stored_of(container: Container, account_id: uuid.UUID) -> bytes:
    async with container.pool.connection() as conn:
        cur = await conn.execute("SELECT credentials FROM provider_accounts WHERE id = %s",
                                 (account_id,))
        row = await cur.fetchone()
    assert row is not None
    return bytes(row[0])


async def test_rotation_reencrypts_everything_and_the_old_key_can_go(
        container: Container) -> None:
    session = container.keyring
    old = KeyRing.parse([new_key_entry("old")], "test")
    new = KeyRing.parse([new_key_entry("new")], "test")
    legacy_id, old_id, lost_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await insert(container, legacy_id, msgspec.json.encode(CREDS))
    await insert(container, old_id, seal(CREDS, old_id, old))
    await insert(container, lost_id, seal(CREDS, lost_id, KeyRing.parse([new_key_entry("lost")],
                                                                        "test")))
    ring = entries(new) + entries(session) + entries(old)
    mine = (legacy_id, old_id)
    try:
        code, out = rotate_cli(container, ring)
        # The row under a key nobody has is reported and left alone; the command says so.
        assert code == 1 and counts(out)[2] == 1, out
        assert key_id_of(await stored_of(container, lost_id)) == "lost"
        assert CREDS["api_key"] not in out
        reencrypted, _, _ = counts(out)
        assert reencrypted >= 2
        new_only = KeyRing(keys=dict(new.keys), active_id="new")
        for account_id in mine:
            stored = await stored_of(container, account_id)
            assert key_id_of(stored) == "new"
            assert unseal(stored, account_id, new_only) == CREDS

        async with container.pool.connection() as conn:
            await conn.execute("DELETE FROM provider_accounts WHERE id = %s", (lost_id,))
        code, out = rotate_cli(container, ring)
        assert code == 0 and counts(out)[0] == 0, out  # nothing left to do
    finally:
        async with container.pool.connection() as conn:
            await conn.execute("DELETE FROM provider_accounts WHERE id = ANY(%s)",
                               ([legacy_id, old_id, lost_id],))
        # Put every row back under the session's key, for the tests that follow.
        back = KeyRing(keys={**session.keys, **new.keys}, active_id=session.active_id)
        await PostgresProviderAccountStore(container.pool).reencrypt(back)
