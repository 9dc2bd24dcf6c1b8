"""Provider accounts: loading them, keeping test mode on the sandbox, and choosing one per send.

The directory holds every active account in memory (reloaded every few seconds,
or at once with `refresh()`) and registers them with the core `Router`, which
picks by priority, weight, cost and circuit-breaker health, deterministically
for a given seed.

Test mode is enforced here, where every route is chosen: a test-mode send only
ever gets a `mode='test'` account whose base URL is the provider sandbox, and a
live send only a `mode='live'` account that does not point at the sandbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

import msgspec
from psycopg_pool import AsyncConnectionPool

from hermes import _core
from hermes.providers.secrets import CredentialsUnreadable, KeyRing, seal, unseal
from hermes.sandbox.credentials import provider_accounts

log = logging.getLogger("hermes.accounts")

Mode = Literal["test", "live"]

# The platform's sandbox accounts have fixed ids, so upserting them is idempotent.
SANDBOX_NAMESPACE = uuid.UUID("6d1f3c2a-8f3e-4b7e-9a51-2f0c5e7d9b10")
PLATFORM = "platform"
# With no account to route to, reload at most this often before giving up.
NO_ROUTE_REFRESH_S = 0.5


class ProviderAccount(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    tenant_id: UUID | None
    name: str
    channel: str
    adapter: str
    adapter_version: str | None = None
    mode: Mode
    credentials: dict[str, Any]
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    base_url: str | None = None
    priority: int = 100
    weight: int = 1
    cost: dict[str, Any] = msgspec.field(default_factory=dict)


def sandbox_account_id(name: str) -> UUID:
    return uuid.uuid5(SANDBOX_NAMESPACE, name)


def _origin(url: str | None) -> tuple[str, str] | None:
    if not url:
        return None
    parts = urlsplit(url)
    return (parts.scheme.lower(), parts.netloc.lower())


_COLUMNS = """id, tenant_id, name, channel, adapter, adapter_version, mode, credentials, config,
              base_url, priority, weight, cost"""


def _from_row(row: tuple[Any, ...], keyring: KeyRing) -> ProviderAccount | None:
    """The account in a row; None (logged) when its credentials cannot be read, which
    makes the account unusable rather than every other account with it."""
    (id_, tenant_id, name, channel, adapter, version, mode, creds, config, base_url, priority,
     weight, cost) = row
    try:
        credentials = unseal(bytes(creds), id_, keyring)
    except CredentialsUnreadable as exc:
        # The detail names the key id and the reason, never any part of the value.
        log.error("provider account %s: %s: %s; skipped", id_, exc.code, exc.detail)
        return None
    return ProviderAccount(
        id=id_, tenant_id=tenant_id, name=name, channel=channel, adapter=adapter,
        adapter_version=version, mode=mode, credentials=credentials, config=config or {},
        base_url=base_url, priority=priority, weight=weight, cost=cost or {},
    )


class AccountDirectory:
    """Every active provider account, and the router that chooses among them."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        sandbox_url: str | None,
        keyring: KeyRing,
        refresh_s: float = 5.0,
        router: _core.Router | None = None,
    ) -> None:
        self.pool = pool
        self.keyring = keyring
        self.sandbox_origin = _origin(sandbox_url)
        self.refresh_s = refresh_s
        self.router = router or _core.Router()
        self._accounts: dict[UUID, ProviderAccount] = {}
        # Router membership: ids registered under each key that are no longer routable
        # (the core Router has no removal) are passed as exclusions.
        self._registered: dict[str, set[str]] = {}
        self._routable: set[str] = set()
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    # --- loading ---

    async def refresh(self) -> None:
        async with self._lock:
            await self._load()

    async def _maybe_refresh(self) -> None:
        if self._stale_after(self.refresh_s):
            async with self._lock:
                if self._stale_after(self.refresh_s):
                    await self._load()

    async def _load(self) -> None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM provider_accounts WHERE status = 'active'")
            rows = await cur.fetchall()
        loaded = (_from_row(row, self.keyring) for row in rows)
        accounts = {a.id: a for a in loaded if a is not None}
        routable: set[str] = set()
        for account in accounts.values():
            if not self.allowed(account, account.mode):
                continue
            key = self._key(account.tenant_id, account.mode)
            default = account.cost.get("default", 0.0)
            self.router.add_account(
                str(account.id), key, account.channel,
                priority=account.priority, weight=account.weight,
                default_cost=None if default is None else float(default),
                costs={k: float(v) for k, v in account.cost.items()
                       if k != "default" and v is not None},
            )
            self._registered.setdefault(key, set()).add(str(account.id))
            routable.add(str(account.id))
        self._accounts = accounts
        self._routable = routable
        self._loaded_at = time.monotonic()

    @staticmethod
    def _key(tenant_id: UUID | None, mode: str) -> str:
        return f"{tenant_id or PLATFORM}/{mode}"

    # --- the test-mode rule ---

    def is_sandbox(self, account: ProviderAccount) -> bool:
        return self.sandbox_origin is not None and _origin(account.base_url) == self.sandbox_origin

    def allowed(self, account: ProviderAccount, mode: str) -> bool:
        """May a send in `mode` go through `account`? Test mode: only the sandbox; live: never."""
        if account.mode != mode:
            return False
        return self.is_sandbox(account) if mode == "test" else not self.is_sandbox(account)

    # --- queries ---

    async def get(self, account_id: UUID) -> ProviderAccount | None:
        """The account with this id (active or not), from the cache or PostgreSQL."""
        await self._maybe_refresh()
        found = self._accounts.get(account_id)
        if found is not None:
            return found
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM provider_accounts WHERE id = %s", (account_id,))
            row = await cur.fetchone()
        return None if row is None else _from_row(row, self.keyring)

    async def choose(
        self,
        tenant_id: UUID,
        mode: str,
        channel: str,
        *,
        preferred: UUID | None = None,
        exclude: Sequence[UUID] = (),
        seed: int = 0,
        now_ms: int,
        country: str | None = None,
    ) -> ProviderAccount | None:
        """The account for one send, or None (`routing.no_provider`).

        The tenant's own accounts of `mode` come first, then the platform's defaults.
        `preferred` (the step's provider) wins when it is routable here, not excluded and
        its breaker is not open. `exclude` holds the accounts that already failed this step.
        """
        await self._maybe_refresh()
        chosen = self._choose(tenant_id, mode, channel, preferred, exclude, seed, now_ms, country)
        if chosen is None and self._stale_after(NO_ROUTE_REFRESH_S):
            # Nothing to route to: an account added a moment ago (the sandbox's, at start)
            # may not be loaded yet. Look once more before answering routing.no_provider.
            await self.refresh()
            chosen = self._choose(tenant_id, mode, channel, preferred, exclude, seed, now_ms,
                                  country)
        return chosen

    def _stale_after(self, seconds: float) -> bool:
        return self._loaded_at is None or time.monotonic() - self._loaded_at > seconds

    def _choose(self, tenant_id: UUID, mode: str, channel: str, preferred: UUID | None,
                exclude: Sequence[UUID], seed: int, now_ms: int,
                country: str | None) -> ProviderAccount | None:
        excluded = {str(e) for e in exclude}
        if preferred is not None and str(preferred) not in excluded:
            account = self._accounts.get(preferred)
            if (account is not None and str(account.id) in self._routable
                    and account.channel == channel and account.mode == mode
                    and account.tenant_id in (None, tenant_id)
                    and self.router.health(str(account.id), now_ms)["breaker"] != "open"):
                return account
        for key in (self._key(tenant_id, mode), self._key(None, mode)):
            registered = self._registered.get(key)
            if not registered:
                continue
            skip = excluded | (registered - self._routable)
            chosen = self.router.select(key, channel, country, now_ms, exclude=sorted(skip),
                                        seed=str(seed), attempt=len(excluded))
            if chosen is not None:
                return self._accounts[UUID(chosen)]
        return None

    def record(self, account_id: UUID, success: bool, latency_ms: float | None,
               now_ms: int) -> None:
        """Feed a send's outcome into the account's health (breaker, EWMAs)."""
        try:
            self.router.record_outcome(str(account_id), success, now_ms, latency_ms)
        except KeyError:
            pass  # not routable in this process (deleted, or live/test mismatch): nothing to learn


# --- the platform's sandbox accounts ---

def sandbox_accounts(sandbox_url: str) -> list[ProviderAccount]:
    """The platform-level test-mode accounts that route every channel to the sandbox."""
    p = provider_accounts(sandbox_url)
    tw, ms, ses, fcm, wa = p["twilio"], p["messente"], p["ses"], p["fcm"], p["whatsapp"]

    def account(name: str, channel: str, adapter: str, priority: int, base_url: str,
                credentials: dict[str, Any], config: dict[str, Any]) -> ProviderAccount:
        return ProviderAccount(
            id=sandbox_account_id(name), tenant_id=None, name=name, channel=channel,
            adapter=adapter, mode="test", credentials=credentials, config=config,
            base_url=base_url, priority=priority, weight=1, cost={},
        )

    return [
        account("sandbox-twilio-sms", "sms", "twilio_sms", 1, tw["base_url"],
                {"account_sid": tw["account_sid"], "auth_token": tw["auth_token"]},
                {"from": tw["from"]}),
        account("sandbox-messente-sms", "sms", "messente_sms", 2, ms["base_url"],
                {"username": ms["username"], "password": ms["password"]},
                {"sender": ms["sender"]}),
        account("sandbox-ses-email", "email", "ses_email", 1, ses["base_url"],
                {"access_key_id": ses["access_key_id"],
                 "secret_access_key": ses["secret_access_key"],
                 "sns_topic_arn": ses["sns_topic_arn"],
                 "sns_cert_url_prefix": ses["sns_cert_url_prefix"]},
                {"region": ses["region"], "from": ses["from"],
                 "configuration_set": ses["configuration_set"]}),
        account("sandbox-fcm-push", "push", "fcm_push", 1, fcm["base_url"],
                {"service_account": fcm["service_account"]},
                {"project_id": fcm["project_id"]}),
        account("sandbox-whatsapp-cloud", "whatsapp", "whatsapp_cloud", 1, wa["base_url"],
                {"access_token": wa["access_token"], "app_secret": wa["app_secret"],
                 "webhook_verify_token": wa["webhook_verify_token"]},
                {"phone_number_id": wa["phone_number_id"],
                 "business_account_id": wa["business_account_id"]}),
    ]


_UPSERT = """
INSERT INTO provider_accounts (id, tenant_id, name, channel, adapter, adapter_version, mode,
                               credentials, credentials_hint, credential_keys, config,
                               base_url, priority, weight, cost, status)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s::jsonb, 'active')
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, channel = EXCLUDED.channel, adapter = EXCLUDED.adapter,
    adapter_version = EXCLUDED.adapter_version, mode = EXCLUDED.mode,
    credentials = EXCLUDED.credentials, credentials_hint = EXCLUDED.credentials_hint,
    credential_keys = EXCLUDED.credential_keys,
    config = EXCLUDED.config, base_url = EXCLUDED.base_url, priority = EXCLUDED.priority,
    weight = EXCLUDED.weight, cost = EXCLUDED.cost, status = 'active', updated_at = now()
"""


async def upsert_accounts(pool: AsyncConnectionPool, accounts: Sequence[ProviderAccount],
                          keyring: KeyRing) -> None:
    """Insert or replace whole accounts (the platform's own: sandbox, tests), sealed."""
    enc = msgspec.json.encode
    async with pool.connection() as conn, conn.transaction():
        async with conn.cursor() as cur:
            await cur.executemany(_UPSERT, [
                (a.id, a.tenant_id, a.name, a.channel, a.adapter, a.adapter_version, a.mode,
                 seal(a.credentials, a.id, keyring), "sandbox" if a.mode == "test" else None,
                 sorted(a.credentials),
                 enc(a.config).decode(), a.base_url, a.priority, a.weight,
                 enc(a.cost).decode())
                for a in accounts
            ])


async def ensure_sandbox_accounts(pool: AsyncConnectionPool, sandbox_url: str,
                                  keyring: KeyRing) -> list[ProviderAccount]:
    """Upsert the platform's test-mode accounts for the sandbox at `sandbox_url`."""
    accounts = sandbox_accounts(sandbox_url)
    await upsert_accounts(pool, accounts, keyring)
    return accounts
