"""SSRF rules: which addresses Hermes refuses to call, and the operator's exceptions."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from hermes.domain.errors import HermesError
from hermes.infra.http.ssrf import (
    GuardedResolver,
    TargetPolicy,
    TargetRefused,
    check_url,
    literal_refusal,
)
from hermes.webhooks.targets import check_target

STRICT = TargetPolicy()
LOOPBACK = TargetPolicy.parse("127.0.0.0/8, ::1")
PRIVATE = TargetPolicy.parse("10.0.0.0/8,169.254.169.254,fc00::/7")

REFUSED = [
    "http://127.0.0.1/", "http://127.9.9.9:8080/x", "http://[::1]/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[::127.0.0.1]/",
    "http://2130706433/", "http://0x7f000001/", "http://0x7f.1/", "http://0177.0.0.1/",
    "http://127.1/", "http://0/",
    "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/",
    "http://[fd12:3456::1]/", "http://[fc00::1]/",
    "http://169.254.169.254/latest/meta-data/", "http://[::ffff:169.254.169.254]/",
    "http://[fe80::1]/", "http://[fe80::1%25eth0]/",
    "http://100.64.0.1/", "http://100.127.255.254/",
    "http://224.0.0.1/", "http://[ff02::1]/", "http://255.255.255.255/",
    "http://0.0.0.0/", "http://[::]/", "http://240.0.0.1/", "http://192.0.2.10/",
    "http://[2001:db8::1]/", "http://[64:ff9b::a00:1]/", "http://[2002:a00:1::]/",
]
PUBLIC = ["https://8.8.8.8/", "https://[2001:4860:4860::8888]/", "https://[::ffff:8.8.8.8]/",
          "https://100.128.0.1/", "https://172.32.0.1/", "https://hooks.example.com/x"]


@pytest.mark.parametrize("url", REFUSED)
def test_private_loopback_link_local_and_reserved_literals_are_refused(url: str) -> None:
    why = literal_refusal(url, STRICT)
    assert why is not None and "HERMES_ALLOW_PRIVATE_TARGETS" in why


@pytest.mark.parametrize("url", PUBLIC)
def test_public_addresses_and_names_pass_the_literal_check(url: str) -> None:
    assert literal_refusal(url, STRICT) is None


def test_the_allowlist_lets_through_only_what_it_names() -> None:
    for url in ("http://127.0.0.1:9/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
                "http://2130706433/"):
        assert literal_refusal(url, LOOPBACK) is None, url
    assert literal_refusal("http://10.0.0.1/", LOOPBACK) is not None
    assert literal_refusal("http://10.2.3.4/", PRIVATE) is None
    assert literal_refusal("http://169.254.169.254/", PRIVATE) is None
    assert literal_refusal("http://169.254.169.253/", PRIVATE) is not None
    assert literal_refusal("http://127.0.0.1/", PRIVATE) is not None


def test_trusted_origins_are_exact_host_and_port() -> None:
    policy = TargetPolicy.parse("", trusted_urls=["http://127.0.0.1:8025"])
    assert literal_refusal("http://127.0.0.1:8025/2010-04-01/x", policy) is None
    assert literal_refusal("http://127.0.0.1:8026/", policy) is not None


def test_bad_allowlist_entries_are_refused() -> None:
    with pytest.raises(ValueError, match="not a network"):
        TargetPolicy.parse("10.0.0.0/8, bad_host!")


async def test_names_resolving_to_loopback_are_refused_unless_allowed() -> None:
    with pytest.raises(TargetRefused) as info:
        await check_url("http://localhost:8080/hook", STRICT)
    # The refusal says what kind of address, never which: no internal DNS for tenants.
    assert str(info.value).startswith("localhost resolves to a loopback address")
    assert "127.0.0.1" not in str(info.value)
    await check_url("http://localhost:8080/hook", LOOPBACK)
    await check_url("http://localhost:8080/hook", TargetPolicy.parse("localhost"))
    # A name that does not resolve now passes; the call-time check covers it later.
    await check_url("https://nothing-here.invalid/hook", STRICT)


async def test_check_target_is_target_not_allowed_on_the_field() -> None:
    with pytest.raises(HermesError) as info:
        await check_target("https://10.0.0.1/x", STRICT, field="base_url")
    assert info.value.code == "target.not_allowed" and info.value.status == 422
    assert info.value.errors[0].field == "base_url"


class FixedResolver(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=a, port=port,
                              family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                              proto=0, flags=0) for a in self.addresses]

    async def close(self) -> None:
        pass


async def test_the_connector_resolver_drops_refused_addresses() -> None:
    """At call time: a name re-pointed at a private address (DNS rebinding) is refused."""
    rebound = GuardedResolver(STRICT, FixedResolver("169.254.169.254"))
    with pytest.raises(OSError, match="target not allowed") as info:
        await rebound.resolve("hooks.example.com", 443)
    assert "link-local" in str(info.value) and "169.254" not in str(info.value)
    mixed = GuardedResolver(STRICT, FixedResolver("10.0.0.1", "93.184.216.34"))
    assert [r["host"] for r in await mixed.resolve("hooks.example.com", 443)] == [
        "93.184.216.34"]
    allowed = GuardedResolver(LOOPBACK, FixedResolver("127.0.0.1"))
    assert len(await allowed.resolve("localhost", 80)) == 1
    sandbox = GuardedResolver(TargetPolicy.parse("", trusted_urls=["http://sandbox:8025"]),
                              FixedResolver("172.18.0.5"))
    assert len(await sandbox.resolve("sandbox", 8025)) == 1
    with pytest.raises(OSError):
        await sandbox.resolve("sandbox", 9000)
