"""Fakes for unit tests: in-memory implementations of the ports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from hermes.bootstrap import Container
from hermes.domain.tenancy import Principal, Tenant
from hermes.settings import Settings


class FakeTenantStore:
    def __init__(self) -> None:
        self.tenants: dict[UUID, Tenant] = {}
        self.keys: dict[bytes, tuple[UUID, UUID, str, list[str]]] = {}
        self.admin: set[bytes] = set()

    async def create_tenant(self, name: str) -> Tenant:
        t = Tenant(id=uuid.uuid4(), name=name, status="active", created_at=datetime.now(UTC))
        self.tenants[t.id] = t
        return t

    async def get_tenant(self, tenant_id: UUID) -> Tenant | None:
        return self.tenants.get(tenant_id)

    async def find_tenant_by_name(self, name: str) -> Tenant | None:
        return next((t for t in self.tenants.values() if t.name == name), None)

    async def add_api_key(self, tenant_id: UUID, *, prefix: str, key_hash: bytes, mode: str,
                          scopes: list[str]) -> UUID:
        key_id = uuid.uuid4()
        self.keys[key_hash] = (tenant_id, key_id, mode, scopes)
        return key_id

    async def principal_for_key(self, key_hash: bytes) -> Principal | None:
        if key_hash not in self.keys:
            return None
        tenant_id, key_id, mode, scopes = self.keys[key_hash]
        tenant = self.tenants[tenant_id]
        if tenant.status != "active":
            return None
        return Principal(tenant_id=tenant_id, tenant_name=tenant.name, key_id=key_id,
                         mode=mode, scopes=tuple(scopes))  # type: ignore[arg-type]

    async def add_admin_token(self, *, prefix: str, token_hash: bytes) -> UUID:
        self.admin.add(token_hash)
        return uuid.uuid4()

    async def admin_token_exists(self, token_hash: bytes) -> bool:
        return token_hash in self.admin


class FakeProbe:
    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name = name
        self.error = error

    async def check(self) -> None:
        if self.error is not None:
            raise self.error


class _Closable:
    async def close(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def fake_container(**settings: Any) -> Container:
    return Container(
        settings=Settings(**settings),
        pool=_Closable(),  # type: ignore[arg-type]
        nats=_Closable(),  # type: ignore[arg-type]
        redis=_Closable(),  # type: ignore[arg-type]
        tenants=FakeTenantStore(),
        contacts=None,  # type: ignore[arg-type]
        writer=_Closable(),  # type: ignore[arg-type]
        publisher=_Closable(),  # type: ignore[arg-type]
        probes=[FakeProbe("postgres"), FakeProbe("nats"), FakeProbe("redis")],
    )
