"""Credentials at send time: opened from their sealed form, never logged, and an account
whose credentials cannot be opened is skipped (the others keep working)."""

from __future__ import annotations

import logging
import uuid

import msgspec
import pytest

from hermes.providers.accounts import AccountDirectory, ProviderAccount, upsert_accounts
from hermes.providers.secrets import KeyRing, new_key_entry, seal
from hermes.sandbox.credentials import TWILIO as SANDBOX_TWILIO
from tests.integration.delivery.support import World

WRONG_TOKEN = "wrong-token-3e8d1c6b9a7f"


def tenant_twilio(world: World, auth_token: str) -> ProviderAccount:
    return ProviderAccount(
        id=uuid.uuid4(), tenant_id=world.tenant_id, name="own sandbox twilio", channel="sms",
        adapter="twilio_sms", mode="test",
        credentials={"account_sid": SANDBOX_TWILIO.account_sid, "auth_token": auth_token},
        config={"from": SANDBOX_TWILIO.from_number}, base_url=world.sandbox.url, priority=0)


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return caplog.text + " ".join(f"{r.msg} {r.args}" for r in caplog.records)


async def test_sends_use_the_sealed_credentials_and_log_none_of_them(
    world: World, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    good, bad = tenant_twilio(world, SANDBOX_TWILIO.auth_token), tenant_twilio(world, WRONG_TOKEN)
    await upsert_accounts(world.container.pool, [good, bad], world.container.keyring)
    await world.directory.refresh()

    ok = await world.deliver(await world.job("sms", "+447400000001", good.id))
    assert ok.outcome == "accepted", ok
    refused = await world.deliver(await world.job("sms", "+447400000001", bad.id))
    assert (refused.outcome, refused.code) == ("rejected", "provider.auth_failed"), refused

    text = logged(caplog)
    assert WRONG_TOKEN not in text and SANDBOX_TWILIO.auth_token not in text
    for result in (ok, refused):
        assert WRONG_TOKEN not in msgspec.json.encode(result).decode()


async def test_unreadable_credentials_skip_the_account_and_say_so_without_secrets(
    world: World, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    account = tenant_twilio(world, WRONG_TOKEN)
    await upsert_accounts(world.container.pool, [account], world.container.keyring)
    elsewhere = KeyRing.parse([new_key_entry("gone")], "test")
    legacy = tenant_twilio(world, "legacy-plain-token-0f1e")
    await upsert_accounts(world.container.pool, [legacy], world.container.keyring)
    async with world.container.pool.connection() as conn:
        # One row sealed under a key this deployment does not have; one written before
        # encryption existed, as plain JSON.
        await conn.execute("UPDATE provider_accounts SET credentials = %s WHERE id = %s",
                           (seal(account.credentials, account.id, elsewhere), account.id))
        await conn.execute("UPDATE provider_accounts SET credentials = %s WHERE id = %s",
                           (msgspec.json.encode(legacy.credentials), legacy.id))
    try:
        d = AccountDirectory(world.container.pool, sandbox_url=world.sandbox.url,
                             keyring=world.container.keyring)
        assert await d.get(account.id) is None
        found = await d.get(legacy.id)
        assert found is not None and found.credentials == legacy.credentials
        chosen = await d.choose(world.tenant_id, "test", "sms", now_ms=0, seed=1)
        assert chosen is not None and chosen.id == legacy.id
        unreadable = [r for r in caplog.records if "account.credentials_unreadable"
                      in r.getMessage() and str(account.id) in r.getMessage()]
        assert unreadable and "'gone'" in unreadable[0].getMessage()
        assert WRONG_TOKEN not in logged(caplog)
    finally:
        async with world.container.pool.connection() as conn:
            await conn.execute("DELETE FROM provider_accounts WHERE id = ANY(%s)",
                               ([account.id, legacy.id],))
