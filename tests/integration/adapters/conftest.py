"""A provider sandbox and a callback receiver for the adapter round trips."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hermes.sandbox import Sandbox
from tests.integration.sandbox.conftest import CallbackReceiver


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(receipt_delay=0.05, timeout_hold=2.0) as running:
        yield running


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[CallbackReceiver]:
    running = await CallbackReceiver().start()
    yield running
    await running.stop()
