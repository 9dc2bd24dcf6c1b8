"""`hermes secrets ...`: master keys for provider credentials.

To rotate: `hermes secrets new-key --id k2` prints an entry; put it first in
HERMES_MASTER_KEYS (or the key file) and restart the processes, which now seal
under it and still open what the old key sealed; `hermes secrets rotate`
re-encrypts every account under the new key; then the old key can be removed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

from hermes.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from hermes.infra.postgres.provider_accounts import RotationReport
    from hermes.providers.secrets import KeyRing


def cmd_new_key(args: argparse.Namespace) -> int:
    from hermes.providers.secrets import KeyRingError, new_key_entry

    try:
        print(new_key_entry(args.id))
    except KeyRingError as exc:
        raise SettingsError(str(exc)) from None
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    from hermes.bootstrap import ConfigurationError, load_keyring

    settings = load_settings(config_file=args.config)
    if not settings.database_url:
        print("hermes secrets rotate: HERMES_DATABASE_URL is not set", file=sys.stderr)
        return 2
    try:
        keyring = load_keyring(settings)
    except ConfigurationError as exc:
        raise SettingsError(str(exc)) from None
    report = asyncio.run(_rotate(settings, keyring, args.batch))
    print(f"re-encrypted {report.reencrypted} provider account(s) under key "
          f"{keyring.active_id!r}; {report.already_current} already were; "
          f"{report.unreadable} unreadable")
    return 1 if report.unreadable else 0


async def _rotate(settings: Settings, keyring: KeyRing, batch: int) -> RotationReport:
    from hermes.infra.postgres.pool import make_pool
    from hermes.infra.postgres.provider_accounts import PostgresProviderAccountStore

    assert settings.database_url
    pool = make_pool(settings.database_url, min_size=1, max_size=1, name="hermes-secrets")
    await pool.open(wait=True)
    try:
        return await PostgresProviderAccountStore(pool).reencrypt(keyring, batch=batch)
    finally:
        await pool.close()


def add_parser(sub: Any) -> None:
    secrets = sub.add_parser("secrets", help="master keys for provider credentials")
    inner = secrets.add_subparsers(dest="secrets_command", required=True, metavar="ACTION")
    new = inner.add_parser("new-key", help="print a new `id:base64key` master key entry")
    new.add_argument("--id", default="k1", help="the key's id (default k1)")
    new.set_defaults(func=cmd_new_key)
    rotate = inner.add_parser(
        "rotate", help="re-encrypt every provider account's credentials under the active key")
    rotate.add_argument("--batch", type=int, default=200, help="rows per transaction")
    rotate.set_defaults(func=cmd_rotate)
