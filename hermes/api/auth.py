"""Validation layer 2: the API key says which tenant a request acts for."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from hermes.bootstrap import Container
from hermes.domain.errors import Code, HermesError
from hermes.domain.tenancy import Principal
from hermes.tenancy.secrets import digest, key_mode

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hermes"'}


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def provide_principal(
    request: Request[Any, Any, Any], container: NamedDependency[Container]
) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise HermesError(Code.AUTH_MISSING, "send the API key as `Authorization: Bearer hk_...`",
                          headers=_CHALLENGE)
    if key_mode(token) is None:
        raise HermesError(Code.AUTH_INVALID, "API keys start with hk_test_ or hk_live_",
                          headers=_CHALLENGE)
    principal = await container.tenants.principal_for_key(digest(token))
    if principal is None:
        raise HermesError(Code.AUTH_INVALID, "unknown or revoked API key", headers=_CHALLENGE)
    return principal
