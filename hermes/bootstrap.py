"""The one composition root: the API, the worker, the dev stack and the tests build here."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from hermes.delivery.google_oauth import GoogleTokens
from hermes.infra.http.client import ProviderHttp
from hermes.infra.http.ssrf import TargetPolicy
from hermes.infra.nats.connection import NatsConnection
from hermes.infra.nats.publisher import StartPublisher
from hermes.infra.postgres.attempts import PostgresAttemptStore
from hermes.infra.postgres.contacts import PostgresContactStore
from hermes.infra.postgres.messages import GroupCommitWriter
from hermes.infra.postgres.pool import make_pool
from hermes.infra.postgres.suppressions import PostgresSuppressionStore
from hermes.infra.postgres.tenants import PostgresTenantStore
from hermes.infra.redis.client import make_redis
from hermes.infra.redis.queue_delay import QueueDelayMeter, QueueDelayView
from hermes.infra.redis.ratelimit import RedisLimiter
from hermes.observability import metrics
from hermes.ports import Limiter, Probe, TenantStore
from hermes.providers.accounts import AccountDirectory
from hermes.providers.callbacks import CallbackIntake
from hermes.providers.deploy import AdapterSync
from hermes.providers.registry import AdapterRegistry, cache_dir
from hermes.providers.secrets import KeyRing, KeyRingError
from hermes.providers.sns import SnsVerifier
from hermes.settings import Settings

# Default of the fields `open_container` always sets (unit-test fakes leave them None).
_SET_AT_OPEN: Any = None


class ConfigurationError(RuntimeError):
    pass


def load_keyring(settings: Settings) -> KeyRing:
    """The master keys sealing provider credentials. Without one no process starts: an
    unencrypted credential must never be written (`hermes dev` makes a key file itself)."""
    try:
        ring = KeyRing.from_config(settings.master_keys, settings.master_key_file)
    except KeyRingError as exc:
        raise ConfigurationError(str(exc)) from None
    if ring is None:
        raise ConfigurationError(
            "no master key: set HERMES_MASTER_KEYS (`id:base64key`, from `hermes secrets "
            "new-key`) or HERMES_MASTER_KEY_FILE; provider credentials are stored encrypted "
            "under it")
    return ring


def target_policy(settings: Settings) -> TargetPolicy:
    """The SSRF rules: the operator's allowlist, and the sandbox, which the operator set."""
    return TargetPolicy.parse(settings.allow_private_targets, trusted_urls=[settings.sandbox_url])


@dataclass
class Container:
    """Everything a process needs, opened once at start and closed at stop."""

    settings: Settings
    pool: AsyncConnectionPool
    nats: NatsConnection
    redis: Redis
    tenants: TenantStore
    contacts: PostgresContactStore
    writer: GroupCommitWriter
    publisher: StartPublisher
    probes: list[Probe] = field(default_factory=list)
    # Provider accounts and routing, the WASM adapters, the pooled provider HTTP client,
    # Google OAuth tokens and the attempts table. Unset (None) only in unit-test fakes.
    accounts: AccountDirectory = _SET_AT_OPEN
    adapters: AdapterRegistry = _SET_AT_OPEN
    http: ProviderHttp = _SET_AT_OPEN
    google_tokens: GoogleTokens = _SET_AT_OPEN
    attempts: PostgresAttemptStore = _SET_AT_OPEN
    callbacks: CallbackIntake = _SET_AT_OPEN
    # Rate limits and quotas (validation layer 8, and provider accounts' send rates).
    limiter: Limiter | None = None
    # The master keys for provider credentials, and the SSRF rules for outbound URLs.
    keyring: KeyRing = _SET_AT_OPEN
    targets: TargetPolicy = field(default_factory=TargetPolicy)
    # Hot deploy: converges the registry on the active versions (started by the process).
    deploys: AdapterSync = _SET_AT_OPEN
    # Validation layer 7's facts (suppressed addresses, quiet hours), many lookups a query.
    layer7: PostgresSuppressionStore = _SET_AT_OPEN
    # Load shedding: the worker's wait meter, and the API's view of every worker's report.
    queue_meter: QueueDelayMeter = field(default_factory=QueueDelayMeter)
    queue_view: QueueDelayView | None = None

    async def close(self) -> None:
        if self.deploys is not None:
            await self.deploys.stop()
        if self.attempts is not None:
            await self.attempts.close()
        if self.queue_view is not None:
            await self.queue_view.close()
        if self.http is not None:
            await self.http.close()
        await self.publisher.stop()
        await self.writer.stop()
        await self.nats.close()
        await self.redis.aclose()
        await self.pool.close()


async def open_container(settings: Settings, *, name: str) -> Container:
    missing = [
        env for env, value in (
            ("HERMES_DATABASE_URL", settings.database_url),
            ("HERMES_NATS_URL", settings.nats_url),
            ("HERMES_REDIS_URL", settings.redis_url),
        ) if not value
    ]
    if missing:
        raise ConfigurationError(
            f"{', '.join(missing)} not set; run `hermes dev` for an embedded stack"
        )
    assert settings.database_url and settings.nats_url and settings.redis_url
    keyring = load_keyring(settings)
    targets = target_policy(settings)
    pool = make_pool(settings.database_url, min_size=settings.db_pool_min,
                     max_size=settings.db_pool_max, name=f"hermes-{name}")
    await pool.open(wait=False)
    nats = NatsConnection(settings.nats_url, name=f"hermes-{name}")
    await nats.start()
    # Give NATS a moment so a healthy stack is ready at once; an outage does not block start.
    with contextlib.suppress(TimeoutError):
        await nats.wait_connected(timeout=2.0)
    redis = make_redis(settings.redis_url)
    container = Container(
        settings=settings,
        pool=pool,
        nats=nats,
        redis=redis,
        tenants=PostgresTenantStore(pool),
        contacts=PostgresContactStore(pool),
        writer=GroupCommitWriter(pool),
        publisher=StartPublisher(nats),
    )
    container.keyring = keyring
    container.targets = targets
    container.accounts = AccountDirectory(pool, sandbox_url=settings.sandbox_url, keyring=keyring)
    container.adapters = AdapterRegistry.from_settings(settings)
    metrics.watch_adapters(container.adapters.runtime)
    container.deploys = AdapterSync(container.adapters, pool, nats, redis, role=name,
                                    cache_dir=cache_dir(settings))
    container.http = ProviderHttp(targets=targets)
    container.google_tokens = GoogleTokens(container.http)
    container.attempts = PostgresAttemptStore(pool, linger_s=settings.batch_linger_ms / 1000)
    container.layer7 = PostgresSuppressionStore(pool)
    container.limiter = RedisLimiter(redis)
    container.queue_view = QueueDelayView(redis)
    container.callbacks = CallbackIntake(container.adapters, container.attempts,
                                         SnsVerifier(container.http))
    container.callbacks.traps = container.deploys.monitor
    container.writer.start()
    container.publisher.start()
    container.probes = [PostgresProbe(pool), NatsProbe(nats), RedisProbe(redis)]
    return container


class PostgresProbe:
    name = "postgres"

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def check(self) -> None:
        async with self.pool.connection(timeout=1.0) as conn:
            await conn.execute("SELECT 1")


class NatsProbe:
    name = "nats"

    def __init__(self, nats: NatsConnection) -> None:
        self.nats = nats

    async def check(self) -> None:
        nc = self.nats.client
        if nc is None or not nc.is_connected:
            raise ConnectionError("not connected")
        # A JetStream request proves the server answers and JetStream is enabled.
        await self.nats.jetstream().account_info()


class RedisProbe:
    name = "redis"

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def check(self) -> None:
        if not await self.redis.ping():
            raise ConnectionError("PING was not answered")


async def run_probes(probes: list[Probe], timeout: float) -> dict[str, dict[str, Any]]:
    async def one(probe: Probe) -> tuple[str, dict[str, Any]]:
        start = time.perf_counter()
        try:
            await asyncio.wait_for(probe.check(), timeout)
        except TimeoutError:
            return probe.name, {"ok": False, "error": f"no answer within {timeout:g}s"}
        except Exception as exc:
            return probe.name, {"ok": False, "error": f"{type(exc).__name__}: {exc}".strip()}
        ms = round((time.perf_counter() - start) * 1000, 2)
        return probe.name, {"ok": True, "latency_ms": ms}

    return dict(await asyncio.gather(*(one(p) for p in probes)))
