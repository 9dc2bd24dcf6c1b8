"""The API remembers a verified key for a few seconds, and only a verified one."""

from __future__ import annotations

import uuid

from litestar.testing import AsyncTestClient

from hermes.api.app import create_app
from hermes.api.auth import KEY_CACHE_TTL_S, PrincipalCache
from hermes.domain.tenancy import Principal
from hermes.tenancy.secrets import digest, new_api_key
from tests.fakes import FakeTenantStore, fake_container


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _principal() -> Principal:
    return Principal(tenant_id=uuid.uuid4(), tenant_name="t", key_id=uuid.uuid4(),
                     mode="test", scopes=("read",))


def test_entries_expire_after_the_ttl_and_the_size_is_bounded() -> None:
    clock = Clock()
    cache = PrincipalCache(ttl=5.0, max_entries=2, clock=clock)
    p = _principal()
    cache.put(b"a", p)
    assert cache.get(b"a") == p
    clock.t += 4.9
    assert cache.get(b"a") == p
    clock.t += 0.2
    assert cache.get(b"a") is None
    cache.put(b"x", p)
    cache.put(b"y", p)
    cache.put(b"z", p)  # over the bound: the cache starts again rather than grow
    assert len(cache._entries) <= 2


class CountingStore(FakeTenantStore):
    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    async def principal_for_key(self, key_hash: bytes) -> Principal | None:
        self.lookups += 1
        return await super().principal_for_key(key_hash)


async def test_a_verified_key_is_looked_up_once_per_ttl_and_unknown_keys_every_time() -> None:
    container = fake_container()
    store = CountingStore()
    container.tenants = store
    tenant = await store.create_tenant("acme")
    key = new_api_key("test")
    await store.add_api_key(tenant.id, prefix=key[:12], key_hash=digest(key), mode="test",
                            scopes=["read"])
    async with AsyncTestClient(create_app(container.settings, container)) as client:
        for _ in range(3):
            r = await client.get("/v1/account", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200
        assert store.lookups == 1
        unknown = new_api_key("test")
        for _ in range(2):
            r = await client.get("/v1/account", headers={"Authorization": f"Bearer {unknown}"})
            assert r.status_code == 401
        assert store.lookups == 3
    assert KEY_CACHE_TTL_S <= 5.0  # the revocation delay the README promises
