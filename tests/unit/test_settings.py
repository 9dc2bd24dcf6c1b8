from __future__ import annotations

from pathlib import Path

import pytest

from hermes.settings import Settings, SettingsError, env_name, field_names, load_settings


def test_defaults() -> None:
    s = load_settings(env={}, config_file=None)
    assert s == Settings()
    assert s.api_url == "http://127.0.0.1:8080"
    assert s.database_url is None


def test_environment_overrides_file_and_overrides_win(tmp_path: Path) -> None:
    cfg = tmp_path / "hermes.toml"
    cfg.write_text('[hermes]\napi_port = 9000\nlog_level = "debug"\nshard_count = 4\n')
    s = load_settings(env={"HERMES_API_PORT": "9100"}, config_file=cfg)
    assert (s.api_port, s.log_level, s.shard_count) == (9100, "debug", 4)
    s = load_settings(env={"HERMES_API_PORT": "9100"}, config_file=cfg, api_port=9200)
    assert s.api_port == 9200


def test_config_file_from_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "x.toml"
    cfg.write_text('redis_url = "redis://example:6379/1"\n')
    s = load_settings(env={"HERMES_CONFIG": str(cfg)})
    assert s.redis_url == "redis://example:6379/1"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HERMES_API_PORT": "eighty"}, "api_port"),
        ({"HERMES_API_PORT": "70000"}, "api_port"),
        ({"HERMES_LOG_LEVEL": "loud"}, "log_level"),
        ({"HERMES_MASTER_KEYS": "k1:c2hvcnQ="}, "32 bytes"),
        ({"HERMES_MASTER_KEYS": "no-colon"}, "entry 1"),
        ({"HERMES_ALLOW_PRIVATE_TARGETS": "10.0.0.0/8,not a_host!"}, "allow_private_targets"),
        ({"HERMES_MAX_QUEUE_DELAY_S": "-1"}, "max_queue_delay_s"),
        ({"HERMES_GC_GEN0_THRESHOLD": "-5"}, "gc_gen0_threshold"),
        ({"HERMES_BATCH_LINGER_MS": "-1"}, "batch_linger_ms"),
        ({"HERMES_BATCH_LINGER_MS": "5000"}, "batch_linger_ms"),
    ],
)
def test_bad_values_are_reported_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env=env, config_file=None)


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "hermes.toml"
    cfg.write_text("api_prot = 1\n")
    with pytest.raises(SettingsError, match="api_prot"):
        load_settings(env={}, config_file=cfg)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("api_port = [\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(env={}, config_file=bad)
    with pytest.raises(SettingsError, match="not found"):
        load_settings(env={}, config_file=tmp_path / "nope.toml")


def test_every_field_has_an_environment_variable() -> None:
    for name in field_names():
        s = load_settings(env={env_name(name): _sample(name)}, config_file=None)
        assert str(getattr(s, name)) == _sample(name)


def _sample(name: str) -> str:
    samples = {"api_port": "8123", "max_body_bytes": "1024", "db_pool_min": "1",
               "db_pool_max": "3", "shard_count": "2", "readiness_timeout_s": "0.5",
               "batch_linger_ms": "2.5",
               "rate_limit_per_s": "2.5", "rate_limit_burst": "5", "daily_quota": "100",
               "max_queue_delay_s": "2.5", "gc_gen0_threshold": "1000",
               "log_level": "debug", "log_format": "json", "worker_metrics_port": "9465",
               "master_keys": "k1:" + "A" * 43 + "=",
               "allow_private_targets": "10.0.0.0/8,internal.example"}
    return samples.get(name, f"value-of-{name}")
