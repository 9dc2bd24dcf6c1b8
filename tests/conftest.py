"""Shared fixtures. Integration tests get real PostgreSQL, NATS JetStream and Redis.

The servers come from the same launcher as `hermes dev` (hermes.devstack.Stack),
on free ports with data in a temporary directory, started once per test session
and stopped at its end. Set HERMES_DATABASE_URL / HERMES_NATS_URL /
HERMES_REDIS_URL to run against servers of your own instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hermes.bootstrap import Container, open_container
from hermes.devstack import Stack
from hermes.infra.postgres.migrate import migrate
from hermes.providers.secrets import new_key_entry
from hermes.settings import Settings, load_settings


def _service_dir() -> Iterator[Path]:
    # Not under pytest's basetemp: when running as root, PostgreSQL runs as an
    # unprivileged user that must traverse the parents, and pytest resets its
    # base directory to 0700 whenever another pytest session starts.
    path = Path(tempfile.mkdtemp(prefix="hermes-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_root() -> Iterator[Path]:
    yield from _service_dir()


@pytest.fixture
def service_dir() -> Iterator[Path]:
    """A fresh directory for servers a test starts itself."""
    yield from _service_dir()


@pytest.fixture(scope="session")
def settings(stack_root: Path) -> Iterator[Settings]:
    base = load_settings(env={k: v for k, v in os.environ.items() if k.startswith("HERMES_")},
                         config_file=os.environ.get("HERMES_CONFIG"))
    stack = Stack(stack_root)
    urls = stack.start(base)
    try:
        migrate(urls.database_url)
        yield base.with_overrides(
            database_url=urls.database_url, nats_url=urls.nats_url, redis_url=urls.redis_url,
            data_dir=str(stack_root),
            # A master key for the session, unless one is configured; and, as under
            # `hermes dev`, webhooks and base URLs may reach this machine.
            master_keys=None if base.master_key_file else
            base.master_keys or new_key_entry("test-1"),
            allow_private_targets=",".join(filter(None, (base.allow_private_targets,
                                                         "127.0.0.0/8,::1"))),
        )
    finally:
        stack.stop()


async def reset_streams(nats_url: str) -> None:
    """Purge Hermes's streams and delete every consumer on them.

    Work-queue streams allow one consumer per subject, and durable consumers
    outlive the processes that made them, so a test that consumes a stream
    itself, or runs a worker, starts from here.
    """
    import nats

    from hermes.infra.nats.streams import STREAMS, ensure_streams

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        for s in STREAMS:
            assert s.name is not None
            for info in await js.consumers_info(s.name):
                await js.delete_consumer(s.name, info.name)
            await js.purge_stream(s.name)
    finally:
        await nc.close()


@pytest.fixture
async def clean_streams(settings: Settings) -> None:
    assert settings.nats_url
    await reset_streams(settings.nats_url)


@pytest.fixture
async def container(settings: Settings) -> AsyncIterator[Container]:
    c = await open_container(settings, name="test")
    try:
        await c.nats.wait_connected(timeout=10)
        await c.pool.wait(timeout=10)
        yield c
    finally:
        await c.close()
