"""`/admin/v1/`: tenants and API keys, behind an admin token no tenant key can stand in for."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from hermes.api.app import create_app
from hermes.bootstrap import Container
from hermes.settings import Settings
from hermes.tenancy.admin import create_admin_token
from hermes.tenancy.secrets import digest, display_prefix, new_api_key


@pytest.fixture
def admin(settings: Settings) -> dict[str, str]:
    assert settings.database_url
    return {"Authorization": f"Bearer {create_admin_token(settings.database_url)}"}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    # The app opens its own connections on the test client's event loop.
    async with AsyncTestClient(create_app(settings)) as c:
        yield c


async def test_tenant_lifecycle_and_keys_shown_once(
    client: AsyncTestClient, admin: dict[str, str]  # type: ignore[type-arg]
) -> None:
    r = await client.post("/admin/v1/tenants", json={"name": "acme"}, headers=admin)
    assert r.status_code == 201, r.text
    tenant = r.json()
    assert tenant["status"] == "active"
    tid = tenant["id"]

    r = await client.post(f"/admin/v1/tenants/{tid}/keys",
                          json={"mode": "live", "scopes": ["read", "send"]}, headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["key"]
    assert key.startswith("hk_live_") and created["prefix"] == key[:12]
    assert created["scopes"] == ["send", "read"]

    listed = (await client.get(f"/admin/v1/tenants/{tid}/keys", headers=admin)).json()["data"]
    assert [k["prefix"] for k in listed] == [key[:12]]
    assert key not in str(listed)  # never shown again

    # The key works for its tenant...
    r = await client.get("/v1/account", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.json()["tenant_id"] == tid

    # ...not once the tenant is suspended, and again once it is active.
    r = await client.patch(f"/admin/v1/tenants/{tid}", json={"status": "suspended"},
                           headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    r = await client.patch(f"/admin/v1/tenants/{tid}", json={"status": "active",
                                                              "name": "acme inc"},
                           headers=admin)
    assert r.json() == {**tenant, "name": "acme inc"}

    r = await client.post(f"/admin/v1/tenants/{tid}/keys/{created['id']}/revoke",
                          headers=admin)
    assert r.status_code == 200 and r.json()["revoked"] is True
    listed = (await client.get(f"/admin/v1/tenants/{tid}/keys", headers=admin)).json()["data"]
    assert listed[0]["revoked_at"] is not None


async def test_revoked_key_is_401(client: AsyncTestClient, container: Container,  # type: ignore[type-arg]
                                  admin: dict[str, str]) -> None:
    t = await container.tenants.create_tenant(f"r-{uuid.uuid4().hex[:6]}")
    key = new_api_key("test")
    key_id = await container.tenants.add_api_key(t.id, prefix=display_prefix(key),
                                                 key_hash=digest(key), mode="test",
                                                 scopes=["read"])
    await container.tenants.revoke_api_key(t.id, key_id)
    # A fresh app: nothing cached from before the revocation.
    r = await client.get("/v1/account", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401 and r.json()["code"] == "auth.invalid"


async def test_tenant_keys_are_forbidden_on_admin_routes(
    client: AsyncTestClient, container: Container  # type: ignore[type-arg]
) -> None:
    t = await container.tenants.create_tenant(f"f-{uuid.uuid4().hex[:6]}")
    key = new_api_key("live")
    await container.tenants.add_api_key(t.id, prefix=display_prefix(key), key_hash=digest(key),
                                        mode="live", scopes=["send", "read", "manage"])
    for method, path in (("GET", "/admin/v1/tenants"), ("POST", "/admin/v1/tenants"),
                         ("GET", f"/admin/v1/tenants/{t.id}/keys")):
        r = await client.request(method, path, headers={"Authorization": f"Bearer {key}"},
                                 json={"name": "x"} if method == "POST" else None)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["code"] == "auth.forbidden"
    r = await client.get("/admin/v1/tenants")
    assert r.status_code == 401 and r.json()["code"] == "auth.missing"
    r = await client.get("/admin/v1/tenants", headers={"Authorization": "Bearer hadm_nope"})
    assert r.status_code == 401 and r.json()["code"] == "auth.invalid"


async def test_bad_input_is_a_problem(client: AsyncTestClient,  # type: ignore[type-arg]
                                      admin: dict[str, str]) -> None:
    r = await client.post("/admin/v1/tenants", json={"name": ""}, headers=admin)
    assert r.status_code in (400, 422) and r.headers["content-type"].startswith(
        "application/problem+json")
    tid = (await client.post("/admin/v1/tenants", json={"name": "b"}, headers=admin)).json()["id"]
    r = await client.post(f"/admin/v1/tenants/{tid}/keys",
                          json={"mode": "test", "scopes": ["everything"]}, headers=admin)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "scopes"
    r = await client.get(f"/admin/v1/tenants/{uuid.uuid4()}", headers=admin)
    assert r.status_code == 404 and r.json()["code"] == "request.not_found"
    r = await client.get("/admin/v1/tenants/not-a-uuid", headers=admin)
    assert r.status_code == 404


async def test_list_is_cursor_paginated(client: AsyncTestClient,  # type: ignore[type-arg]
                                        admin: dict[str, str]) -> None:
    for i in range(3):
        await client.post("/admin/v1/tenants", json={"name": f"p{i}"}, headers=admin)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/admin/v1/tenants", params=params, headers=admin)).json()
        seen += [t["id"] for t in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) >= 3 and seen == sorted(seen)


def test_admin_token_command_prints_a_working_token(settings: Settings) -> None:
    env = {**os.environ, "HERMES_DATABASE_URL": str(settings.database_url)}
    out = subprocess.run([sys.executable, "-m", "hermes", "admin-token"], env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    token = out.stdout.strip()
    assert token.startswith("hadm_") and "shown once" in out.stderr.lower()
    import psycopg

    with psycopg.connect(str(settings.database_url)) as conn:
        row = conn.execute("SELECT prefix FROM admin_tokens WHERE token_hash = %s",
                           (digest(token),)).fetchone()
    assert row is not None and row[0] == token[:12]
