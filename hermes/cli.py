"""`hermes ...`: the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

from hermes.observability.setup import setup_process
from hermes.settings import Settings, SettingsError, load_settings


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(config_file=args.config, **overrides)


def cmd_dev(args: argparse.Namespace) -> int:
    from hermes.devstack.dev import run_dev

    settings = _settings(args, api_port=args.port, api_host=args.host)
    return run_dev(settings, reset=args.reset)


def _require_master_key(settings: Settings) -> None:
    """Refuse to start without a master key, before anything is opened."""
    from hermes.bootstrap import ConfigurationError, load_keyring

    try:
        load_keyring(settings)
    except ConfigurationError as exc:
        raise SettingsError(str(exc)) from None


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from hermes.api.app import create_app
    from hermes.api.server import serve_options

    settings = _settings(args, api_port=args.port, api_host=args.host)
    _require_master_key(settings)
    setup_process("api", settings)
    # uvicorn's loggers go through ours (text or JSON): log_config=None.
    uvicorn.run(create_app(settings), log_config=None,
                **serve_options(settings.api_host, settings.api_port, settings.log_level.lower()))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from hermes.worker import run_worker

    settings = _settings(args)
    _require_master_key(settings)
    setup_process("worker", settings)
    asyncio.run(run_worker(settings))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from hermes.infra.postgres.migrate import migrate

    settings = _settings(args)
    if not settings.database_url:
        print("hermes migrate: HERMES_DATABASE_URL is not set", file=sys.stderr)
        return 2
    applied = migrate(settings.database_url)
    for m in applied:
        print(f"applied {m.version:04d}_{m.name}")
    if not applied:
        print("database is up to date")
    return 0


def cmd_admin_token(args: argparse.Namespace) -> int:
    from hermes.infra.postgres.migrate import migrate
    from hermes.tenancy.admin import create_admin_token

    settings = _settings(args)
    if not settings.database_url:
        print("hermes admin-token: HERMES_DATABASE_URL is not set", file=sys.stderr)
        return 2
    migrate(settings.database_url)
    token = create_admin_token(settings.database_url)
    print(token)
    print("Shown once: store it now. Use it as `Authorization: Bearer <token>` on /admin/v1/.",
          file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hermes", description=__doc__)
    parser.add_argument("--config",
                        help="TOML settings file (default: $HERMES_CONFIG or ./hermes.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser("dev", help="run everything locally: services, migrations, API, worker")
    dev.add_argument("--reset", action="store_true", help="wipe .hermes/ data first")
    dev.add_argument("--host", default=None, help="API host (default 127.0.0.1)")
    dev.add_argument("--port", type=int, default=None, help="API port (default 8080)")
    dev.set_defaults(func=cmd_dev)

    api = sub.add_parser("api", help="run the HTTP API")
    api.add_argument("--host", default=None)
    api.add_argument("--port", type=int, default=None)
    api.set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="run a worker (cascade engine and delivery)")
    worker.set_defaults(func=cmd_worker)

    # Listed for --help; main() hands `hermes sandbox ...` to the sandbox's own parser.
    sub.add_parser("sandbox", help="run the provider sandbox alone (see `hermes sandbox --help`)")
    # Listed for --help; main() hands `hermes bench ...` to the harness's own parser.
    sub.add_parser("bench", help="throughput harness from a checkout (see `hermes bench --help`)")

    tok = sub.add_parser("admin-token", help="create an admin token for /admin/v1/ (shown once)")
    tok.set_defaults(func=cmd_admin_token)

    mig = sub.add_parser("migrate", help="apply database migrations")
    mig.set_defaults(func=cmd_migrate)

    from hermes.adapter_cli import add_parser as add_adapter_parser
    from hermes.secrets_cli import add_parser as add_secrets_parser

    add_adapter_parser(sub)
    add_secrets_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sandbox"]:
        # The sandbox has its own options; hand them over untouched.
        from hermes.sandbox.server import main as sandbox_main

        return sandbox_main(argv[1:])
    if argv[:1] == ["bench"]:
        from hermes.bench_cli import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"hermes: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
