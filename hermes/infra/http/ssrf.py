"""Which addresses Hermes may call on a tenant's behalf (SSRF rules).

Tenant webhook URLs and provider account base URLs are resolved and refused when any
address they resolve to is loopback, private (RFC 1918, ULA), link-local (including
the cloud metadata address 169.254.169.254), shared (CGNAT 100.64/10), multicast,
unspecified or reserved, in IPv4 form or IPv4-mapped/-compatible IPv6 form. The
operator may allow some of them (`HERMES_ALLOW_PRIVATE_TARGETS`: networks, addresses
or host names); `hermes dev` and the tests allow loopback.

The check runs where a URL is registered (`check_url`) and again where it is called:
`GuardedResolver` filters what an aiohttp connector connects to, so a name that is
re-pointed at a private address after registration (DNS rebinding) is refused too,
and `literal_refusal` covers URLs whose host is an IP literal, which aiohttp does not
resolve.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# How long registration waits for DNS before it gives up on the check (the call-time
# check still applies).
RESOLVE_TIMEOUT_S = 3.0

# Each refused range and how a refusal names it. A refusal never shows the address a
# name resolved to: the tenant would learn this deployment's internal DNS from it.
_BLOCKED_V4 = [(ipaddress.IPv4Network(n), why) for n, why in (
    ("0.0.0.0/8", "an unspecified address"),
    ("10.0.0.0/8", "a private address (RFC 1918)"),
    ("100.64.0.0/10", "a shared address (CGNAT)"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address (cloud metadata)"),
    ("172.16.0.0/12", "a private address (RFC 1918)"),
    ("192.0.0.0/24", "a reserved address (IETF protocol assignments)"),
    ("192.0.2.0/24", "a reserved address (documentation)"),
    ("192.88.99.0/24", "a reserved address (6to4 relay)"),
    ("192.168.0.0/16", "a private address (RFC 1918)"),
    ("198.18.0.0/15", "a reserved address (benchmarking)"),
    ("198.51.100.0/24", "a reserved address (documentation)"),
    ("203.0.113.0/24", "a reserved address (documentation)"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address (or broadcast)"),
)]
_BLOCKED_V6 = [(ipaddress.IPv6Network(n), why) for n, why in (
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("64:ff9b:1::/48", "a reserved address (local-use NAT64)"),
    ("100::/64", "a reserved address (discard-only)"),
    ("2001::/23", "a reserved address (IETF protocol assignments)"),
    ("2001:db8::/32", "a reserved address (documentation)"),
    ("fc00::/7", "a private address (unique local)"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a reserved address (site-local)"),
    ("ff00::/8", "a multicast address"),
)]


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class TargetRefused(Exception):
    """The target is not one Hermes may call; the message says which address and why."""


def embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries: mapped (::ffff:a.b.c.d), compatible
    (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d) or 6to4 (2002:ab:cd::)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    packed = ip.packed
    if packed[:12] == bytes(12) and packed[12:] not in (bytes(4), b"\0\0\0\1"):
        return ipaddress.IPv4Address(packed[12:])
    if ip in _NAT64:
        return ipaddress.IPv4Address(packed[12:])
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why `ip` is refused by default, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "a scoped (link-local) address"
        inner = embedded_v4(ip)
        if inner is not None:
            return blocked_reason(inner)
        networks: Iterable[tuple[IPNetwork, str]] = _BLOCKED_V6
    else:
        networks = _BLOCKED_V4
    for net, why in networks:
        if ip in net:
            return why
    return None


class TargetPolicy:
    """The SSRF rules with the operator's exceptions.

    `networks` and `hosts` come from `HERMES_ALLOW_PRIVATE_TARGETS`; `origins` are
    (host, port) pairs the operator configured elsewhere and so trusts as they are
    (the provider sandbox), exempt from the address rules.
    """

    # A plain class, not a dataclass: Litestar builds a schema for the container's
    # dataclass fields, and a union of two ipaddress types has none.
    __slots__ = ("hosts", "networks", "origins")

    def __init__(self, networks: Iterable[IPNetwork] = (), hosts: Iterable[str] = (),
                 origins: Iterable[tuple[str, int]] = ()) -> None:
        self.networks = tuple(networks)
        self.hosts = frozenset(hosts)
        self.origins = frozenset(origins)

    def __repr__(self) -> str:
        return (f"TargetPolicy(networks={[str(n) for n in self.networks]}, "
                f"hosts={sorted(self.hosts)}, origins={sorted(self.origins)})")

    @classmethod
    def parse(cls, allow: str, *, trusted_urls: Iterable[str | None] = ()) -> TargetPolicy:
        """`allow` is comma- or space-separated networks, addresses and host names."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in allow.replace(",", " ").split():
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                name = entry.lower().rstrip(".")
                if not name or not all(p and len(p) < 64 and p.replace("-", "").isalnum()
                                       for p in name.split(".")):
                    raise ValueError(f"{entry!r} is not a network, an address or a host name"
                                     ) from None
                hosts.add(name)
        origins = set()
        for url in trusted_urls:
            if url:
                parts = urlsplit(url)
                if parts.hostname:
                    origins.add((parts.hostname.lower(), parts.port or _default_port(parts.scheme)))
        return cls(networks, hosts, origins)

    def refusal(self, ip: IPAddress) -> str | None:
        """Why a connection to `ip` is refused under this policy, or None."""
        why = blocked_reason(ip)
        if why is None:
            return None
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (inner := embedded_v4(ip)) is not None:
            candidates.append(inner)
        if any(c in net for c in candidates for net in self.networks if c.version == net.version):
            return None
        return why

    def host_allowed(self, host: str, port: int | None = None) -> bool:
        """Is `host` exempt by name (the allowlist) or as a trusted origin?"""
        name = host.lower().rstrip(".").strip("[]")
        return name in self.hosts or (port is not None and (name, port) in self.origins)

    def check_address(self, host: str, ip: IPAddress) -> None:
        why = self.refusal(ip)
        if why is not None:
            verb = "is" if parse_ip(host) is not None else "resolves to"
            raise TargetRefused(f"{host} {verb} {why}; Hermes does not call such addresses "
                                "unless HERMES_ALLOW_PRIVATE_TARGETS allows them")


def _default_port(scheme: str) -> int:
    return 443 if scheme.lower() == "https" else 80


def parse_ip(host: str) -> IPAddress | None:
    """The address a URL host spells, in any form the resolver would accept for IPv4
    (decimal `2130706433`, hex `0x7f.1`, octal `0177.0.0.1`, short `127.1`), or None
    for a name."""
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text)  # IPv6 keeps its scope id (`fe80::1%eth0`)
    except ValueError:
        pass
    if text and all(c in "0123456789abcdefxABCDEFX." for c in text) and text[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def literal_refusal(url: str, policy: TargetPolicy) -> str | None:
    """Why the URL's host, when it is an IP literal, is refused; None otherwise.

    Cheap and synchronous: used before every call, since aiohttp connects to literals
    without asking a resolver."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return "the URL has no host"
    port = parts.port or _default_port(parts.scheme)
    if policy.host_allowed(host, port):
        return None
    ip = parse_ip(host)
    if ip is None:
        return None
    try:
        policy.check_address(host, ip)
    except TargetRefused as exc:
        return str(exc)
    return None


async def check_url(url: str, policy: TargetPolicy) -> None:
    """Refuse `url` (`TargetRefused`) when its host is, or resolves to, an address the
    policy refuses. A name that does not resolve now is let through: the call-time
    check applies when it does."""
    why = literal_refusal(url, policy)
    if why is not None:
        raise TargetRefused(why)
    parts = urlsplit(url)
    host = parts.hostname
    assert host is not None
    port = parts.port or _default_port(parts.scheme)
    if parse_ip(host) is not None or policy.host_allowed(host, port):
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S)
    except (OSError, TimeoutError, UnicodeError):
        return
    for info in infos:
        policy.check_address(host, ipaddress.ip_address(_sockaddr_host(info[4])))


def _sockaddr_host(sockaddr: tuple[Any, ...]) -> str:
    host = str(sockaddr[0])
    if len(sockaddr) == 4 and sockaddr[3]:  # IPv6 with a scope id
        return f"{host.split('%', 1)[0]}%{sockaddr[3]}"
    return host


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that drops the addresses the policy refuses.

    A name with no allowed address fails like a name that does not resolve, so the
    request fails with a connection error and is never sent.
    """

    def __init__(self, policy: TargetPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        if self.policy.host_allowed(host, port):
            return found
        allowed = [r for r in found
                   if self.policy.refusal(ipaddress.ip_address(r["host"].split("%", 1)[0]))
                   is None]
        if found and not allowed:
            why = self.policy.refusal(ipaddress.ip_address(found[0]["host"].split("%", 1)[0]))
            # (errno, strerror): aiohttp shows the strerror in its connection error, which
            # the tenant sees as the delivery's last error: no address in it.
            raise OSError(errno.EACCES, f"target not allowed: {host} resolves to {why}")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


def guarded_resolve(policy: TargetPolicy) -> Callable[[str, int], Awaitable[list[str]]]:
    """`GuardedResolver` for `hermes.infra.http.wire`: a name's allowed addresses (an
    `OSError` "target not allowed" when it has none)."""
    resolver = GuardedResolver(policy)

    async def resolve(host: str, port: int) -> list[str]:
        found = await resolver.resolve(host, port, socket.AF_UNSPEC)
        return [r["host"] for r in found]

    return resolve
