"""Shared by the hot-deploy tests: unique versions of twilio_sms, and putting the built-in
version back afterwards so no other test in the session sees a deployed one."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hermes.bootstrap import Container
from hermes.infra.postgres.adapters import Change
from hermes.providers.deploy import AdapterSync
from hermes.providers.registry import AdapterRegistry
from hermes.settings import Settings
from tests.adapter_variants import build_variant

GOLDEN = Path(__file__).resolve().parents[3] / "adapters_wasm" / "twilio_sms" / "golden.json"


def unique_version(tag: str = "t") -> str:
    return f"1.1.1-{tag}{uuid.uuid4().hex[:8]}"


def twilio(version: str, *, trap: bool = False) -> bytes:
    return build_variant("twilio_sms", version, trap=trap)


def builtin_sha(container: Container, name: str = "twilio_sms") -> str:
    found = [sha for sha in container.adapters.builtin
             if (a := container.adapters.loaded(sha)) is not None and a.name == name]
    assert found, f"no built-in {name}"
    return found[0]


async def until(check: Callable[[], bool], within: float, what: str) -> float:
    """Wait for `check`; the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture
async def deploys(container: Container) -> AsyncIterator[AdapterSync]:
    """The test container's sync, started (built-ins recorded); twilio_sms back on the
    built-in version at the end."""
    sync = container.deploys
    await sync.start()
    try:
        yield sync
    finally:
        change = await sync.store.activate("twilio_sms", builtin_sha(container), force=True)
        if change is not None:
            await sync.announce(change)


@pytest.fixture
async def other_process(settings: Settings, container: Container
                        ) -> AsyncIterator[AdapterSync]:
    """A second process's registry and sync, as a worker has: its own runtime, following
    announcements over NATS."""
    registry = AdapterRegistry.from_settings(settings)
    sync = AdapterSync(registry, container.pool, container.nats, container.redis,
                       role="worker", cache_dir=Path(settings.data_dir) / "adapter-cache-2")
    await sync.start()
    try:
        yield sync
    finally:
        await sync.stop()


__all__ = ["Change", "deploys", "other_process"]
