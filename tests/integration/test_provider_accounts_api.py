"""Provider accounts through the API: tenant-scoped, credentials sealed and never shown."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from hermes.api.app import create_app
from hermes.bootstrap import Container
from hermes.providers.accounts import AccountDirectory
from hermes.providers.secrets import key_id_of, unseal
from hermes.settings import Settings
from hermes.tenancy.admin import create_admin_token
from hermes.tenancy.secrets import digest, display_prefix, new_api_key

SANDBOX = "http://127.0.0.1:18025"
SECRET = "sk-live-7f3c9b1e5d2a4f60a1b2"
OTHER_SECRET = "rotated-0d9e8c7b6a5f4e3dz9y8"

Client = AsyncTestClient  # type: ignore[type-arg]


@dataclass
class Key:
    tenant_id: uuid.UUID
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings.with_overrides(sandbox_url=SANDBOX)


@pytest.fixture
async def client(app_settings: Settings) -> AsyncIterator[Client]:
    async with AsyncTestClient(create_app(app_settings)) as c:
        yield c


@pytest.fixture
def admin(settings: Settings) -> dict[str, str]:
    assert settings.database_url
    return {"Authorization": f"Bearer {create_admin_token(settings.database_url)}"}


async def make_key(container: Container, mode: str = "live",
                   scopes: tuple[str, ...] = ("send", "read", "manage"),
                   tenant_id: uuid.UUID | None = None) -> Key:
    if tenant_id is None:
        tenant_id = (await container.tenants.create_tenant(f"pa-{uuid.uuid4().hex[:6]}")).id
    key = new_api_key(mode)  # type: ignore[arg-type]
    await container.tenants.add_api_key(tenant_id, prefix=display_prefix(key),
                                        key_hash=digest(key), mode=mode,  # type: ignore[arg-type]
                                        scopes=list(scopes))
    return Key(tenant_id, key)


def twilio(**changes: Any) -> dict[str, Any]:
    body = {"name": "twilio main", "channel": "sms", "adapter": "twilio_sms",
            "credentials": {"account_sid": "AC0000000000000000", "auth_token": SECRET},
            "config": {"from": "+4520000000"}, "base_url": "https://api.twilio.example",
            "priority": 10, "weight": 3, "cost": {"default": 0.05, "DK": 0.04}}
    body.update(changes)
    return body


def problem(r: Any, status: int, code: str, field: str | None = None) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == code, body
    if field is not None:
        assert [e["field"] for e in body["errors"]] == [field], body


async def stored(container: Container, account_id: str) -> bytes:
    async with container.pool.connection() as conn:
        cur = await conn.execute("SELECT credentials FROM provider_accounts WHERE id = %s",
                                 (uuid.UUID(account_id),))
        row = await cur.fetchone()
    assert row is not None
    return bytes(row[0])


async def test_crud_never_shows_the_credentials(client: Client, container: Container,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    owner = await make_key(container)
    responses: list[str] = []

    r = await client.post("/v1/provider-accounts", json=twilio(), headers=owner.auth)
    assert r.status_code == 201, r.text
    responses.append(r.text)
    created = r.json()
    aid = created["id"]
    assert created["object"] == "provider_account" and created["mode"] == "live"
    assert created["tenant_id"] == str(owner.tenant_id) and created["status"] == "active"
    assert created["credentials_hint"] == "…" + SECRET[-4:]
    assert created["credential_keys"] == ["account_sid", "auth_token"]
    assert "credentials" not in created
    assert (created["priority"], created["weight"], created["cost"]) == (10, 3, {
        "default": 0.05, "DK": 0.04})
    assert created["base_url"] == "https://api.twilio.example"

    # At rest: sealed under the active key, bound to this account, readable by routing.
    raw = await stored(container, aid)
    assert SECRET.encode() not in raw and key_id_of(raw) == container.keyring.active_id
    assert unseal(raw, uuid.UUID(aid), container.keyring)["auth_token"] == SECRET
    directory = AccountDirectory(container.pool, sandbox_url=SANDBOX, keyring=container.keyring)
    loaded = await directory.get(uuid.UUID(aid))
    assert loaded is not None and loaded.credentials["auth_token"] == SECRET

    r = await client.get(f"/v1/provider-accounts/{aid}", headers=owner.auth)
    assert r.status_code == 200 and r.json() == created
    responses.append(r.text)
    r = await client.get("/v1/provider-accounts", headers=owner.auth)
    assert [a["id"] for a in r.json()["data"]] == [aid]
    responses.append(r.text)

    # Replacing the credentials: a new hint, the old secret gone from the row.
    r = await client.patch(f"/v1/provider-accounts/{aid}", headers=owner.auth, json={
        "credentials": {"account_sid": "AC0000000000000000", "auth_token": OTHER_SECRET},
        "priority": 5, "adapter_version": "1.0.0", "config": {"from": "+4520000001"}})
    assert r.status_code == 200, r.text
    responses.append(r.text)
    updated = r.json()
    assert updated["credentials_hint"] == "…" + OTHER_SECRET[-4:]
    assert (updated["priority"], updated["weight"], updated["adapter_version"]) == (5, 3, "1.0.0")
    assert updated["config"] == {"from": "+4520000001"} and updated["name"] == "twilio main"
    raw = await stored(container, aid)
    assert unseal(raw, uuid.UUID(aid), container.keyring)["auth_token"] == OTHER_SECRET

    # base_url can be cleared (the provider's own host); version unpinned.
    r = await client.patch(f"/v1/provider-accounts/{aid}", headers=owner.auth,
                           json={"base_url": None, "adapter_version": None})
    assert r.json()["base_url"] is None and r.json()["adapter_version"] is None

    r = await client.delete(f"/v1/provider-accounts/{aid}", headers=owner.auth)
    assert r.status_code == 204
    r = await client.get(f"/v1/provider-accounts/{aid}", headers=owner.auth)
    assert r.json()["status"] == "disabled"
    responses.append(r.text)
    r = await client.get("/v1/provider-accounts", params={"status": "active"}, headers=owner.auth)
    assert r.json()["data"] == []
    r = await client.patch(f"/v1/provider-accounts/{aid}", json={"status": "active"},
                           headers=owner.auth)
    assert r.json()["status"] == "active"

    # A request that fails validation, with the secret in it, logs no part of it either.
    r = await client.post("/v1/provider-accounts", headers=owner.auth, json=twilio(
        credentials={"account_sid": "AC1", "auth_tokn": SECRET}))
    problem(r, 422, "account.invalid", "credentials.auth_tokn")
    responses.append(r.text)

    for text in responses:
        assert SECRET not in text and OTHER_SECRET not in text
    logged = caplog.text + " ".join(str(rec.args) for rec in caplog.records)
    assert SECRET not in logged and OTHER_SECRET not in logged


async def test_tenants_see_only_their_own_accounts(client: Client, container: Container,
                                                   admin: dict[str, str]) -> None:
    a, b = await make_key(container), await make_key(container)
    aid = (await client.post("/v1/provider-accounts", json=twilio(), headers=a.auth)).json()["id"]
    for method, json in (("GET", None), ("PATCH", {"priority": 1}), ("DELETE", None)):
        r = await client.request(method, f"/v1/provider-accounts/{aid}", headers=b.auth,
                                 json=json)
        problem(r, 404, "request.not_found")
    assert (await client.get("/v1/provider-accounts", headers=b.auth)).json()["data"] == []
    r = await client.get(f"/v1/provider-accounts/{aid}", headers=a.auth)
    assert r.status_code == 200 and r.json()["priority"] == 10 and r.json()["status"] == "active"
    problem(await client.get("/v1/provider-accounts/not-an-id", headers=a.auth), 404,
            "request.not_found")

    # The same tenant's test-mode key does not see its live accounts.
    test_key = await make_key(container, "test", tenant_id=a.tenant_id)
    problem(await client.get(f"/v1/provider-accounts/{aid}", headers=test_key.auth), 404,
            "request.not_found")

    # Platform accounts are the operator's: not visible, not changeable by a tenant.
    r = await client.post("/admin/v1/provider-accounts", headers=admin,
                          json={**twilio(name="platform twilio"), "mode": "live"})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert r.json()["tenant_id"] is None and SECRET not in r.text
    problem(await client.get(f"/v1/provider-accounts/{pid}", headers=a.auth), 404,
            "request.not_found")
    problem(await client.patch(f"/v1/provider-accounts/{pid}", json={"priority": 1},
                               headers=a.auth), 404, "request.not_found")
    # ...and a tenant's account is not the platform's.
    problem(await client.get(f"/admin/v1/provider-accounts/{aid}", headers=admin), 404,
            "request.not_found")

    r = await client.get("/admin/v1/provider-accounts", params={"mode": "live", "limit": 200},
                         headers=admin)
    listed = r.json()["data"]
    assert pid in [x["id"] for x in listed] and aid not in [x["id"] for x in listed]
    assert all(x["tenant_id"] is None for x in listed) and SECRET not in r.text
    r = await client.patch(f"/admin/v1/provider-accounts/{pid}", headers=admin,
                           json={"weight": 7})
    assert r.json()["weight"] == 7
    assert (await client.delete(f"/admin/v1/provider-accounts/{pid}",
                                headers=admin)).status_code == 204


async def test_scopes_and_the_admin_boundary(client: Client, container: Container) -> None:
    reader = await make_key(container, scopes=("read",))
    problem(await client.post("/v1/provider-accounts", json=twilio(), headers=reader.auth), 403,
            "auth.forbidden")
    assert (await client.get("/v1/provider-accounts", headers=reader.auth)).status_code == 200
    sender = await make_key(container, scopes=("send",))
    problem(await client.get("/v1/provider-accounts", headers=sender.auth), 403,
            "auth.forbidden")
    manager = await make_key(container)
    for method in ("GET", "POST"):
        r = await client.request(method, "/admin/v1/provider-accounts", headers=manager.auth,
                                 json={**twilio(), "mode": "live"} if method == "POST" else None)
        problem(r, 403, "auth.forbidden")
    problem(await client.get("/v1/provider-accounts"), 401, "auth.missing")


async def test_test_mode_accounts_send_only_to_the_sandbox(client: Client,
                                                           container: Container) -> None:
    key = await make_key(container, "test")
    r = await client.post("/v1/provider-accounts", headers=key.auth,
                          json=twilio(base_url=None))
    assert r.status_code == 201, r.text
    assert r.json()["mode"] == "test" and r.json()["base_url"] == SANDBOX
    r = await client.post("/v1/provider-accounts", headers=key.auth,
                          json=twilio(base_url=SANDBOX + "/"))
    assert r.status_code == 201 and r.json()["base_url"] == SANDBOX
    problem(await client.post("/v1/provider-accounts", headers=key.auth, json=twilio()), 422,
            "account.invalid", "base_url")
    # The directory routes a test send through the tenant's own test account first.
    aid = uuid.UUID(r.json()["id"])
    await client.patch(f"/v1/provider-accounts/{aid}", json={"priority": 0}, headers=key.auth)
    directory = AccountDirectory(container.pool, sandbox_url=SANDBOX, keyring=container.keyring)
    chosen = await directory.choose(key.tenant_id, "test", "sms", now_ms=0, seed=1)
    assert chosen is not None and chosen.tenant_id == key.tenant_id

    live = await make_key(container, "live")
    problem(await client.post("/v1/provider-accounts", headers=live.auth,
                              json=twilio(base_url=SANDBOX)), 422, "account.invalid", "base_url")


async def test_test_mode_needs_a_sandbox(settings: Settings, container: Container) -> None:
    key = await make_key(container, "test")
    async with AsyncTestClient(create_app(settings.with_overrides(sandbox_url=None))) as c:
        r = await c.post("/v1/provider-accounts", headers=key.auth, json=twilio(base_url=None))
    problem(r, 422, "account.invalid", "base_url")
    assert "sandbox" in r.json()["detail"]


@pytest.mark.parametrize(("changes", "status", "code", "field"), [
    ({"adapter": "no_such_adapter"}, 422, "account.invalid", "adapter"),
    ({"channel": "email"}, 422, "account.invalid", "channel"),
    ({"credentials": {}}, 422, "account.invalid", "credentials"),
    ({"credentials": {"account_sid": "AC1", "password": "x"}}, 422, "account.invalid",
     "credentials.password"),
    ({"adapter_version": "latest"}, 422, "account.invalid", "adapter_version"),
    ({"config": {"base_url": "https://x.example"}}, 422, "account.invalid", "config.base_url"),
    ({"cost": {"denmark": 1}}, 422, "account.invalid", "cost.denmark"),
    ({"base_url": "http://api.twilio.example"}, 422, "account.invalid", "base_url"),
    ({"base_url": "https://10.0.0.1/"}, 422, "target.not_allowed", "base_url"),
    ({"base_url": "https://169.254.169.254/"}, 422, "target.not_allowed", "base_url"),
    ({"base_url": "https://[::ffff:10.1.2.3]/"}, 422, "target.not_allowed", "base_url"),
    ({"priority": -1}, 422, "request.invalid", None),
    ({"weight": 0}, 422, "request.invalid", None),
    ({"credentials": {"auth_token": 5}}, 422, "request.invalid", None),
    ({"channel": "fax"}, 422, "request.invalid", None),
    ({"mode": "test"}, 422, "request.invalid", None),
])
async def test_validation_errors(client: Client, container: Container, changes: dict[str, Any],
                                 status: int, code: str, field: str | None) -> None:
    key = await make_key(container)
    r = await client.post("/v1/provider-accounts", json=twilio(**changes), headers=key.auth)
    problem(r, status, code, field)
    assert SECRET not in r.text


async def test_patch_is_validated_too(client: Client, container: Container) -> None:
    key = await make_key(container)
    aid = (await client.post("/v1/provider-accounts", json=twilio(),
                             headers=key.auth)).json()["id"]
    for body, code, field in (
            ({"credentials": {"auth_tokn": "x"}}, "account.invalid", "credentials.auth_tokn"),
            ({"base_url": "https://192.168.0.10"}, "target.not_allowed", "base_url"),
            ({"channel": "sms"}, "request.invalid", None)):
        problem(await client.patch(f"/v1/provider-accounts/{aid}", json=body, headers=key.auth),
                422, code, field)
    r = await client.get(f"/v1/provider-accounts/{aid}", headers=key.auth)
    assert r.json()["base_url"] == "https://api.twilio.example"
    assert r.json()["credentials_hint"] == "…" + SECRET[-4:]


async def test_list_is_cursor_paginated_and_filtered(client: Client,
                                                     container: Container) -> None:
    key = await make_key(container)
    ids = []
    for i in range(3):
        r = await client.post("/v1/provider-accounts", json=twilio(name=f"a{i}"),
                              headers=key.auth)
        ids.append(r.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/provider-accounts", params=params,
                                 headers=key.auth)).json()
        seen += [a["id"] for a in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == sorted(ids)
    r = await client.get("/v1/provider-accounts", params={"channel": "email"}, headers=key.auth)
    assert r.json()["data"] == []
