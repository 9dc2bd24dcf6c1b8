"""`/readyz` answers 200 only when PostgreSQL, NATS and Redis all answer, and says which failed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from hermes.api.app import create_app
from hermes.devstack import Stack
from hermes.providers.secrets import new_key_entry
from hermes.settings import Settings


async def test_ready_when_everything_answers(settings: Settings) -> None:
    async with AsyncTestClient(create_app(settings)) as client:
        await _eventually_ready(client)
        resp = await client.get("/readyz")
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/json"
        body = resp.json()
        assert body["status"] == "ready"
        assert {name: c["ok"] for name, c in body["checks"].items()} == {
            "postgres": True, "nats": True, "redis": True}
        assert (await client.get("/healthz")).json() == {"status": "ok"}


@pytest.fixture
def own_stack(service_dir: Path) -> Iterator[Stack]:
    """A private set of servers, so stopping one does not disturb other tests."""
    stack = Stack(service_dir)
    yield stack
    stack.stop()


@pytest.mark.parametrize("dependency", ["postgres", "nats", "redis"])
async def test_not_ready_names_the_dependency_that_is_down(
    own_stack: Stack, dependency: str
) -> None:
    urls = own_stack.start(Settings())
    settings = Settings(database_url=urls.database_url, nats_url=urls.nats_url,
                        redis_url=urls.redis_url, readiness_timeout_s=0.5,
                        master_keys=new_key_entry("readyz"))
    async with AsyncTestClient(create_app(settings)) as client:
        await _eventually_ready(client)
        own_stack.service(dependency).child.kill()

        resp = await client.get("/readyz")
        assert resp.status_code == 503
        assert resp.headers["content-type"].startswith("application/problem+json")
        body = resp.json()
        assert body["code"] == "internal.dependency_unavailable"
        assert body["failed"] == [dependency]
        assert body["checks"][dependency]["ok"] is False and body["checks"][dependency]["error"]
        others = {"postgres", "nats", "redis"} - {dependency}
        assert all(body["checks"][name]["ok"] for name in others)
        assert dependency in body["detail"]
        # Liveness is about the process, not its dependencies.
        assert (await client.get("/healthz")).status_code == 200


async def _eventually_ready(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    import asyncio

    for _ in range(100):
        if (await client.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("never became ready")
