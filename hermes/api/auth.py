"""Validation layer 2: the API key says which tenant a request acts for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from hermes.bootstrap import Container
from hermes.domain.errors import Code, HermesError
from hermes.domain.tenancy import Principal
from hermes.tenancy.secrets import digest, key_mode

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hermes"'}

# A verified key is remembered this long in each API process, so a busy client costs one
# PostgreSQL lookup per key per interval instead of one per request (about a third of the
# CPU of `POST /v1/messages`). The price: revoking a key or suspending its tenant takes
# effect in every API process within this many seconds. Unknown keys are never remembered.
KEY_CACHE_TTL_S = 5.0
KEY_CACHE_MAX = 10_000


class PrincipalCache:
    """Verified principals by key hash, each for `ttl` seconds."""

    def __init__(self, ttl: float = KEY_CACHE_TTL_S, max_entries: int = KEY_CACHE_MAX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.max_entries, self.clock = ttl, max_entries, clock
        self._entries: dict[bytes, tuple[Principal, float]] = {}

    def get(self, key_hash: bytes) -> Principal | None:
        hit = self._entries.get(key_hash)
        if hit is None:
            return None
        if self.clock() >= hit[1]:
            del self._entries[key_hash]
            return None
        return hit[0]

    def put(self, key_hash: bytes, principal: Principal) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # a crude bound; the next requests refill what is in use
        self._entries[key_hash] = (principal, self.clock() + self.ttl)


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def provide_principal(
    request: Request[Any, Any, Any], container: NamedDependency[Container]
) -> Principal:
    cache: PrincipalCache | None = getattr(request.app.state, "principal_cache", None)
    return await principal_for(request.headers.get("authorization"), cache, container)


async def principal_for(authorization: str | None, cache: PrincipalCache | None,
                        container: Container) -> Principal:
    """Layer 2: the principal an `Authorization` header names, or 401."""
    token = bearer_token(authorization)
    if token is None:
        raise HermesError(Code.AUTH_MISSING, "send the API key as `Authorization: Bearer hk_...`",
                          headers=_CHALLENGE)
    if key_mode(token) is None:
        raise HermesError(Code.AUTH_INVALID, "API keys start with hk_test_ or hk_live_",
                          headers=_CHALLENGE)
    key_hash = digest(token)
    principal = cache.get(key_hash) if cache is not None else None
    if principal is None:
        principal = await container.tenants.principal_for_key(key_hash)
        if principal is None:
            raise HermesError(Code.AUTH_INVALID, "unknown or revoked API key",
                              headers=_CHALLENGE)
        if cache is not None:
            cache.put(key_hash, principal)
    return principal


async def provide_admin(request: Request[Any, Any, Any],
                        container: NamedDependency[Container]) -> str:
    """The platform operator's credential (`hadm_…`, from `hermes admin-token`).

    A tenant's API key is refused with 403 whatever its scopes: tenant keys can
    never act on the admin API.
    """
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise HermesError(Code.AUTH_MISSING, "send the admin token as `Authorization: Bearer "
                          "hadm_...`", headers=_CHALLENGE)
    if key_mode(token) is not None:
        raise HermesError(Code.AUTH_FORBIDDEN, "tenant API keys cannot use the admin API")
    if not token.startswith("hadm_") or not await container.tenants.admin_token_exists(
            digest(token)):
        raise HermesError(Code.AUTH_INVALID, "unknown or revoked admin token",
                          headers=_CHALLENGE)
    return token
