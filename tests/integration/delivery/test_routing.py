"""Choosing a provider account: test mode stays on the sandbox, live never reaches it,
failover skips the accounts that failed, and the choice is deterministic per seed."""

from __future__ import annotations

import time
import uuid

from hermes.providers.accounts import AccountDirectory, ProviderAccount, upsert_accounts
from tests.integration.delivery.support import MESSENTE, TWILIO, World


def now() -> int:
    return int(time.time() * 1000)


def tenant_account(world: World, name: str, mode: str, base_url: str | None, *,
                   priority: int = 1, weight: int = 1, channel: str = "sms") -> ProviderAccount:
    return ProviderAccount(
        id=uuid.uuid4(), tenant_id=world.tenant_id, name=name, channel=channel,
        adapter="twilio_sms", mode=mode,  # type: ignore[arg-type]
        credentials={"account_sid": "AC" + "1" * 32, "auth_token": "t"},
        config={"from": "+12015550100"}, base_url=base_url, priority=priority, weight=weight)


async def test_test_mode_uses_the_sandbox_and_fails_over_in_priority_order(world: World) -> None:
    d = world.directory
    first = await d.choose(world.tenant_id, "test", "sms", seed=1, now_ms=now())
    assert first is not None and first.id == TWILIO and first.adapter == "twilio_sms"
    second = await d.choose(world.tenant_id, "test", "sms", exclude=[TWILIO], seed=1,
                            now_ms=now())
    assert second is not None and second.id == MESSENTE
    assert await d.choose(world.tenant_id, "test", "sms", exclude=[TWILIO, MESSENTE], seed=1,
                          now_ms=now()) is None
    for channel, adapter in (("email", "ses_email"), ("push", "fcm_push"),
                             ("whatsapp", "whatsapp_cloud")):
        chosen = await d.choose(world.tenant_id, "test", channel, seed=1, now_ms=now())
        assert chosen is not None and chosen.adapter == adapter
        assert chosen.base_url and chosen.base_url.startswith(world.sandbox.url)


async def test_test_mode_never_gets_a_live_account_and_live_never_the_sandbox(
    world: World,
) -> None:
    live = tenant_account(world, "live twilio", "live", None)
    test_real = tenant_account(world, "test-mode but a real host", "test",
                               "https://api.twilio.com")
    live_sandbox = tenant_account(world, "live pointing at the sandbox", "live",
                                  world.sandbox.url)
    await upsert_accounts(world.container.pool, [live, test_real, live_sandbox],
                          world.container.keyring)
    d = AccountDirectory(world.container.pool, sandbox_url=world.sandbox.url,
                         keyring=world.container.keyring)

    seen_test, seen_live = set(), set()
    for seed in range(50):
        exclude: list[uuid.UUID] = []
        while (a := await d.choose(world.tenant_id, "test", "sms", exclude=exclude, seed=seed,
                                   now_ms=now())) is not None:
            seen_test.add(a.id)
            exclude.append(a.id)
        exclude = []
        while (a := await d.choose(world.tenant_id, "live", "sms", exclude=exclude, seed=seed,
                                   now_ms=now())) is not None:
            seen_live.add(a.id)
            exclude.append(a.id)
    assert seen_test == {TWILIO, MESSENTE}
    assert seen_live == {live.id}
    # Even asked for by name, the wrong mode's account is not handed out.
    assert (await d.choose(world.tenant_id, "test", "sms", preferred=live.id, seed=0,
                           now_ms=now())).id == TWILIO  # type: ignore[union-attr]
    assert (await d.choose(world.tenant_id, "live", "sms", preferred=TWILIO, seed=0,
                           now_ms=now())).id == live.id  # type: ignore[union-attr]


async def test_the_tenants_accounts_come_before_the_platforms(world: World) -> None:
    own = tenant_account(world, "own sandbox twilio", "test", world.sandbox.url, priority=50)
    await upsert_accounts(world.container.pool, [own], world.container.keyring)
    d = AccountDirectory(world.container.pool, sandbox_url=world.sandbox.url,
                         keyring=world.container.keyring)
    chosen = await d.choose(world.tenant_id, "test", "sms", seed=3, now_ms=now())
    assert chosen is not None and chosen.id == own.id
    # Failover leaves the tenant's accounts for the platform's defaults.
    chosen = await d.choose(world.tenant_id, "test", "sms", exclude=[own.id], seed=3,
                            now_ms=now())
    assert chosen is not None and chosen.id == TWILIO
    # Another tenant never gets this tenant's account.
    other = await d.choose(uuid.uuid4(), "test", "sms", preferred=own.id, seed=3, now_ms=now())
    assert other is not None and other.id == TWILIO


async def test_a_preferred_account_wins_unless_excluded_or_broken(world: World) -> None:
    d = world.directory
    chosen = await d.choose(world.tenant_id, "test", "sms", preferred=MESSENTE, seed=0,
                            now_ms=now())
    assert chosen is not None and chosen.id == MESSENTE
    chosen = await d.choose(world.tenant_id, "test", "sms", preferred=MESSENTE,
                            exclude=[MESSENTE], seed=0, now_ms=now())
    assert chosen is not None and chosen.id == TWILIO


async def test_failures_open_the_breaker_and_routing_moves_on(world: World) -> None:
    d = AccountDirectory(world.container.pool, sandbox_url=world.sandbox.url,
                         keyring=world.container.keyring)
    t = now()
    assert (await d.choose(world.tenant_id, "test", "sms", seed=0, now_ms=t)).id == TWILIO  # type: ignore[union-attr]
    for i in range(10):
        d.record(TWILIO, False, 20.0, t + i)
    chosen = await d.choose(world.tenant_id, "test", "sms", seed=0, now_ms=t + 20)
    assert chosen is not None and chosen.id == MESSENTE
    assert d.router.health(str(TWILIO), t + 20)["breaker"] == "open"


async def test_the_choice_is_deterministic_per_seed(world: World) -> None:
    a = tenant_account(world, "a", "test", world.sandbox.url, weight=1)
    b = tenant_account(world, "b", "test", world.sandbox.url, weight=1)
    await upsert_accounts(world.container.pool, [a, b], world.container.keyring)
    d1 = AccountDirectory(world.container.pool, sandbox_url=world.sandbox.url,
                          keyring=world.container.keyring)
    d2 = AccountDirectory(world.container.pool, sandbox_url=world.sandbox.url,
                          keyring=world.container.keyring)
    t = now()
    picks1 = [(await d1.choose(world.tenant_id, "test", "sms", seed=s, now_ms=t)).id  # type: ignore[union-attr]
              for s in range(40)]
    picks2 = [(await d2.choose(world.tenant_id, "test", "sms", seed=s, now_ms=t)).id  # type: ignore[union-attr]
              for s in range(40)]
    assert picks1 == picks2
    assert set(picks1) == {a.id, b.id}  # equal weights: both get traffic


async def test_a_disabled_account_is_no_longer_chosen_after_a_refresh(world: World) -> None:
    own = tenant_account(world, "own", "test", world.sandbox.url)
    await upsert_accounts(world.container.pool, [own], world.container.keyring)
    d = AccountDirectory(world.container.pool, sandbox_url=world.sandbox.url,
                         keyring=world.container.keyring)
    assert (await d.choose(world.tenant_id, "test", "sms", seed=0, now_ms=now())).id == own.id  # type: ignore[union-attr]
    async with world.container.pool.connection() as conn:
        await conn.execute("UPDATE provider_accounts SET status = 'disabled' WHERE id = %s",
                           (own.id,))
    await d.refresh()
    assert (await d.choose(world.tenant_id, "test", "sms", seed=0, now_ms=now())).id == TWILIO  # type: ignore[union-attr]
    # Still known by id: a late receipt for it can be matched.
    assert (await d.get(own.id)) is not None


async def test_sandbox_credentials_round_trip_through_the_store(world: World) -> None:
    got = await world.directory.get(TWILIO)
    assert got is not None and got.mode == "test" and got.tenant_id is None
    assert got.credentials["auth_token"] == "sandbox-twilio-auth-token-0001"
    async with world.container.pool.connection() as conn:
        cur = await conn.execute("SELECT credentials FROM provider_accounts WHERE id = %s",
                                 (TWILIO,))
        (raw,) = await cur.fetchone()  # type: ignore[misc]
    assert isinstance(raw, bytes)


async def test_an_account_with_unreadable_credentials_does_not_break_routing(
    world: World,
) -> None:
    broken = uuid.uuid4()
    async with world.container.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO provider_accounts (id, tenant_id, name, channel, adapter, mode,"
            " credentials) VALUES (%s, %s, 'broken', 'sms', 'twilio_sms', 'test', '\\x00')",
            (broken, world.tenant_id))
    try:
        d = AccountDirectory(world.container.pool, sandbox_url=world.sandbox.url,
                             keyring=world.container.keyring)
        chosen = await d.choose(world.tenant_id, "test", "sms", seed=0, now_ms=now())
        assert chosen is not None and chosen.id == TWILIO
    finally:  # an unreadable row would be reported by every later `hermes secrets rotate`
        async with world.container.pool.connection() as conn:
            await conn.execute("DELETE FROM provider_accounts WHERE id = %s", (broken,))
