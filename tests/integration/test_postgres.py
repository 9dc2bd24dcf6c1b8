"""Round trips through a real PostgreSQL: migrations, tenants, API keys."""

from __future__ import annotations

import psycopg
import pytest

from hermes.bootstrap import Container
from hermes.infra.postgres.migrate import MigrationError, available, migrate
from hermes.settings import Settings
from hermes.tenancy.secrets import digest, display_prefix, new_api_key


def test_migrations_are_recorded_and_safe_to_run_twice(settings: Settings) -> None:
    assert settings.database_url
    assert migrate(settings.database_url) == []  # the session fixture already applied them
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute("SELECT version, checksum FROM schema_migrations ORDER BY version")
        recorded = [(v, c) for v, c in rows]
    assert recorded == [(m.version, m.checksum) for m in available()]


def test_a_migration_changed_after_applying_is_refused(settings: Settings) -> None:
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
        try:
            with pytest.raises(MigrationError, match="changed after it was applied"):
                migrate(settings.database_url)
        finally:
            conn.execute("UPDATE schema_migrations SET checksum = %s WHERE version = 1",
                         (available()[0].checksum,))


async def test_tenant_and_key_round_trip(container: Container) -> None:
    tenant = await container.tenants.create_tenant("acme")
    assert (await container.tenants.get_tenant(tenant.id)) == tenant

    key = new_api_key("live")
    key_id = await container.tenants.add_api_key(
        tenant.id, prefix=display_prefix(key), key_hash=digest(key), mode="live",
        scopes=["send", "read"])
    principal = await container.tenants.principal_for_key(digest(key))
    assert principal is not None
    assert (principal.tenant_id, principal.key_id, principal.mode) == (tenant.id, key_id, "live")
    assert principal.scopes == ("send", "read")
    assert await container.tenants.principal_for_key(digest(key + "x")) is None

    # The secret itself is never stored.
    async with container.pool.connection() as conn:
        cur = await conn.execute("SELECT prefix, key_hash FROM api_keys WHERE id = %s", (key_id,))
        prefix, stored = await cur.fetchone()  # type: ignore[misc]
    assert prefix == key[:12] and bytes(stored) == digest(key) and key.encode() not in stored


async def test_revoked_key_and_suspended_tenant_do_not_authenticate(container: Container) -> None:
    tenant = await container.tenants.create_tenant("globex")
    key = new_api_key("test")
    key_id = await container.tenants.add_api_key(
        tenant.id, prefix=display_prefix(key), key_hash=digest(key), mode="test", scopes=["send"])
    assert await container.tenants.principal_for_key(digest(key)) is not None
    async with container.pool.connection() as conn:
        await conn.execute("UPDATE tenants SET status = 'suspended' WHERE id = %s", (tenant.id,))
    assert await container.tenants.principal_for_key(digest(key)) is None
    async with container.pool.connection() as conn:
        await conn.execute("UPDATE tenants SET status = 'active' WHERE id = %s", (tenant.id,))
        await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s", (key_id,))
    assert await container.tenants.principal_for_key(digest(key)) is None
