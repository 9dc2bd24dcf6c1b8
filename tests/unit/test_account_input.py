"""The rules a provider account written through the API must follow (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from hermes.domain.errors import HermesError
from hermes.providers import account_input as rules

TWILIO = {"channels": ["sms"], "credentials": ["account_sid", "auth_token", "api_key_sid"]}
ECHO = {"channels": ["sms", "email"], "credentials": []}


def field_of(call: Any, *args: Any) -> str | None:
    with pytest.raises(HermesError) as info:
        call(*args)
    assert info.value.code == "account.invalid" and info.value.status == 422
    return info.value.errors[0].field


def test_hint_is_the_last_four_of_the_main_secret() -> None:
    assert rules.credentials_hint({"account_sid": "AC123", "auth_token": "0123456789a1b2"}) \
        == "…a1b2"
    # A short secret shows nothing of itself.
    assert rules.credentials_hint({"password": "hunter2"}) == "…"
    sa = {"service_account": {"private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END",
                              "client_email": "bot@project.iam.gserviceaccount.com"}}
    assert rules.credentials_hint(sa) == "….com"
    assert rules.credentials_hint({}) == "…"


def test_adapter_must_be_loaded_and_serve_the_channel() -> None:
    loaded = {"twilio_sms": TWILIO}
    rules.check_adapter("twilio_sms", "sms", loaded)
    assert field_of(rules.check_adapter, "nope", "sms", loaded) == "adapter"
    assert field_of(rules.check_adapter, "twilio_sms", "email", loaded) == "channel"


def test_credentials_are_fields_the_adapter_reads() -> None:
    rules.check_credentials({"account_sid": "a", "auth_token": "b"}, "twilio_sms", TWILIO)
    assert field_of(rules.check_credentials, {"account_sid": "a", "pasword": "b"},
                    "twilio_sms", TWILIO) == "credentials.pasword"
    assert field_of(rules.check_credentials, {}, "twilio_sms", TWILIO) == "credentials"
    rules.check_credentials({"anything": "x"}, "echo", ECHO)  # the manifest names none


@pytest.mark.parametrize("version", ["1.0.0", "2.10.3-rc.1", "1.0.0+build.5"])
def test_pinned_versions_are_semver(version: str) -> None:
    rules.check_version(version)


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "latest", ""])
def test_other_versions_are_refused(version: str) -> None:
    assert field_of(rules.check_version, version) == "adapter_version"


def test_config_cannot_shadow_what_hermes_sets() -> None:
    rules.check_config({"from": "+4520000000", "region": "eu-west-1"})
    assert field_of(rules.check_config, {"base_url": "https://x"}) == "config.base_url"
    assert field_of(rules.check_config, {"callback_url": "https://x"}) == "config.callback_url"


def test_cost_keys_are_countries_or_default() -> None:
    rules.check_cost({"default": 0.05, "DK": 0.04, "SE": None})
    assert field_of(rules.check_cost, {"dk": 0.04}) == "cost.dk"


@pytest.mark.parametrize("url", ["http://api.example.com", "ftp://x.example", "https://",
                                 "https://u:p@api.example.com", "https://api.example.com/#x",
                                 "https://api.example.com/?a=1", "https://a b.example"])
def test_base_urls_are_plain_https(url: str) -> None:
    assert field_of(rules.check_base_url, url) == "base_url"


def test_a_good_base_url_is_kept() -> None:
    assert rules.check_base_url(" https://api.eu.example.com/v2 ") == \
        "https://api.eu.example.com/v2"
