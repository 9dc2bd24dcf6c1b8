"""One settings object, read from an optional TOML file and `HERMES_*` environment variables.

Precedence, lowest first: the defaults below, the TOML file (`HERMES_CONFIG`, or
`hermes.toml` in the working directory when it exists), then the environment.
Every field `foo_bar` is set by the variable `HERMES_FOO_BAR`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

ENV_PREFIX = "HERMES_"
DEFAULT_CONFIG_FILE = "hermes.toml"


DEFAULT_GC_GEN0_THRESHOLD = 50_000


class SettingsError(ValueError):
    """The configuration cannot be read; the message says which key and why."""


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    # External services. When unset, `hermes dev` starts an embedded one.
    database_url: str | None = None
    nats_url: str | None = None
    redis_url: str | None = None

    # The provider sandbox that test-mode keys send through; `hermes dev` starts one when unset.
    sandbox_url: str | None = None

    # The HTTP API.
    api_host: str = "127.0.0.1"
    api_port: int = msgspec.field(default=8080)
    # Largest request body the API reads, in bytes (validation layer 1).
    max_body_bytes: int = 4 * 1024 * 1024
    # The URL providers reach the API at (delivery-receipt callbacks); defaults to api_url.
    public_url: str | None = None

    # Where `hermes dev` keeps service data and `dev.env`, relative to the working directory.
    data_dir: str = ".hermes"
    # Cache of compiled adapter modules; defaults to `<data_dir>/adapter-cache`.
    adapter_cache_dir: str | None = None

    # Connection pools and timeouts.
    db_pool_min: int = 2
    db_pool_max: int = 16
    readiness_timeout_s: float = 1.0

    # Partitions of the cascade space; workers own shards by lease.
    shard_count: int = 16
    # Below full load, the worker's engine turns and the attempt writes (the worker's, and
    # the API's for receipts) wait this long for more work before they go to PostgreSQL,
    # so that one transaction carries many messages' changes: up to this much latency per
    # step for several times less CPU per message between idle and busy (0: at once).
    batch_linger_ms: float = 10.0

    # Validation layer 8, per tenant and per mode (test and live apart): a token bucket of
    # messages (`rate_limit_per_s` a second, at most `rate_limit_burst` at once; 0 turns it
    # off) and a daily quota of messages per UTC day (0: none). Tenants can be given their
    # own through the admin API.
    rate_limit_per_s: float = 1000.0
    rate_limit_burst: int = 2000
    daily_quota: int = 0

    # Load shedding: while a worker reports work that waited longer than this in JetStream
    # before it was taken, new messages are refused with 503 `service.overloaded` and a
    # Retry-After instead of joining a queue their steps' timers would run out in (0: off).
    max_queue_delay_s: float = 10.0

    # The garbage collector's first threshold in long-running processes (API, worker,
    # sandbox): a collection after this many net allocations (CPython's default is 700;
    # 0 keeps the defaults). See hermes.observability.setup.tune_gc.
    gc_gen0_threshold: int = DEFAULT_GC_GEN0_THRESHOLD

    log_level: str = "info"
    # `json` (one object per line), `text`, or `auto`: text on a terminal, JSON otherwise.
    log_format: str = "auto"

    # Observability. `/metrics` on the API port, and on worker_metrics_port (0: off) in the
    # worker; with metrics_token set, a scrape needs `Authorization: Bearer <token>`.
    metrics_token: str | None = None
    metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 0
    # Append every finished span as a JSON line to this file (OpenTelemetry's OTLP exporter
    # is configured by the standard OTEL_* variables instead).
    trace_file: str | None = None

    # Master keys sealing provider credentials (AES-256-GCM): `id:base64key`, comma
    # separated, the first active; or a file of such lines. One of them is required,
    # except under `hermes dev`, which makes a key file in data_dir.
    master_keys: str | None = None
    master_key_file: str | None = None
    # Private, loopback or link-local targets (CIDRs, addresses, host names; comma
    # separated) that webhooks and provider base URLs may nevertheless reach.
    allow_private_targets: str = ""

    def __repr__(self) -> str:
        # The master keys must never reach a log line through a printed settings object.
        shown = {f: ("<hidden>" if f == "master_keys" and getattr(self, f) else getattr(self, f))
                 for f in self.__struct_fields__}
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    def __post_init__(self) -> None:
        if not 0 < self.api_port < 65536:
            raise SettingsError(f"api_port must be 1..65535, got {self.api_port}")
        if self.db_pool_min < 1 or self.db_pool_max < self.db_pool_min:
            raise SettingsError("db_pool_min must be >= 1 and <= db_pool_max")
        if self.shard_count < 1:
            raise SettingsError("shard_count must be >= 1")
        if self.rate_limit_per_s < 0 or self.rate_limit_burst < 1 or self.daily_quota < 0:
            raise SettingsError("rate_limit_per_s and daily_quota must be >= 0, "
                                "rate_limit_burst >= 1")
        if self.gc_gen0_threshold < 0:
            raise SettingsError("gc_gen0_threshold must be >= 0 (0 keeps CPython's defaults)")
        if self.max_queue_delay_s < 0:
            raise SettingsError("max_queue_delay_s must be >= 0 (0 turns load shedding off)")
        if not 0 <= self.batch_linger_ms <= 1000:
            raise SettingsError("batch_linger_ms must be 0..1000 (0 writes at once)")
        if self.log_level.lower() not in {"debug", "info", "warning", "error"}:
            raise SettingsError(f"log_level must be debug|info|warning|error, got {self.log_level}")
        if self.log_format not in {"auto", "json", "text"}:
            raise SettingsError(f"log_format must be auto|json|text, got {self.log_format}")
        if not 0 <= self.worker_metrics_port < 65536:
            raise SettingsError("worker_metrics_port must be 0 (off) or 1..65535")
        from hermes.infra.http.ssrf import TargetPolicy
        from hermes.providers.secrets import KeyRing, KeyRingError

        try:
            TargetPolicy.parse(self.allow_private_targets)
        except ValueError as exc:
            raise SettingsError(f"allow_private_targets: {exc}") from None
        if self.master_keys:  # a key file is read when a process opens it
            try:
                KeyRing.from_config(self.master_keys, self.master_key_file)
            except KeyRingError as exc:
                raise SettingsError(str(exc)) from None

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def callback_base_url(self) -> str:
        """Where providers send receipts: `public_url`, else the API's own URL."""
        return (self.public_url or self.api_url).rstrip("/")

    def with_overrides(self, **changes: Any) -> Settings:
        return msgspec.structs.replace(self, **changes)


def field_names() -> tuple[str, ...]:
    return Settings.__struct_fields__


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def load_settings(
    env: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings from file, environment and explicit overrides (highest)."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}

    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None:
        raw.update(_read_toml(Path(path)))

    for name in field_names():
        value = env.get(env_name(name))
        if value is not None and value != "":
            raw[name] = value
    raw.update({k: v for k, v in overrides.items() if v is not None})

    try:
        # strict=False lets "8080" from the environment become an int.
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid configuration: {exc}") from exc


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SettingsError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    # Allow either top-level keys or a [hermes] table.
    table = data.get("hermes", data)
    if not isinstance(table, dict):
        raise SettingsError(f"config file {path}: [hermes] must be a table")
    return dict(table)
