"""Google OAuth 2.0 access tokens for adapters whose manifest asks for one (FCM).

The adapter never sees the service-account key: the host signs an RS256 JWT
assertion with it, trades it at the account's `token_uri` for a bearer token,
and caches the token until shortly before it expires.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hermes.infra.http.client import ProviderHttp, ProviderHttpError

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Renew this long before the token's stated expiry, so no send carries a stale token.
EXPIRY_MARGIN_S = 120.0


class TokenError(Exception):
    """The token could not be minted; `code` is a catalogue code."""

    def __init__(self, code: str, detail: str, *, retryable: bool) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.retryable = retryable


@dataclass
class _Cached:
    token: str
    expires_at: float


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class GoogleTokens:
    def __init__(self, http: ProviderHttp) -> None:
        self.http = http
        self._cache: dict[tuple[str, str, str], _Cached] = {}
        self._keys: dict[str, rsa.RSAPrivateKey] = {}
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    async def token(self, service_account: dict[str, Any], scopes: list[str], *,
                    base_url: str | None) -> str:
        """A bearer token for `service_account`; `base_url` is the account's configured endpoint,
        the only other origin its `token_uri` may name (the sandbox in test mode)."""
        email = str(service_account.get("client_email") or "")
        token_uri = str(service_account.get("token_uri") or GOOGLE_TOKEN_URI)
        pem = service_account.get("private_key")
        if not email or not isinstance(pem, str):
            raise TokenError("adapter.bad_input", "the service account lacks client_email or "
                             "private_key", retryable=False)
        if not _allowed_token_uri(token_uri, base_url):
            raise TokenError("adapter.host_not_allowed",
                             f"token_uri {token_uri} is not Google's nor the account's base URL",
                             retryable=False)
        key = (email, token_uri, " ".join(scopes))
        cached = self._cache.get(key)
        if cached is not None and cached.expires_at > time.time():
            return cached.token
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._cache.get(key)
            if cached is not None and cached.expires_at > time.time():
                return cached.token
            fresh = await self._mint(service_account, email, token_uri, scopes, pem)
            self._cache[key] = fresh
            return fresh.token

    async def _mint(self, sa: dict[str, Any], email: str, token_uri: str, scopes: list[str],
                    pem: str) -> _Cached:
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT"}
        if sa.get("private_key_id"):
            header["kid"] = str(sa["private_key_id"])
        claims = {"iss": email, "scope": " ".join(scopes), "aud": token_uri,
                  "iat": now, "exp": now + 3600}
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        try:
            key = self._key(pem)
        except (ValueError, TypeError) as exc:
            raise TokenError("adapter.bad_input", f"the service account key: {exc}",
                             retryable=False) from exc
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        body = urlencode({"grant_type": GRANT_TYPE,
                          "assertion": signing_input + "." + _b64url(signature)})
        try:
            answer = await self.http.request(
                "POST", token_uri,
                [["Content-Type", "application/x-www-form-urlencoded"]], body)
        except ProviderHttpError as exc:
            raise TokenError("provider.unavailable", f"token endpoint: {exc.detail}",
                             retryable=True) from exc
        if answer.status >= 500 or answer.status == 429:
            raise TokenError("provider.unavailable", f"token endpoint answered {answer.status}",
                             retryable=True)
        try:
            data = json.loads(answer.body)
            token = str(data["access_token"])
            expires_in = float(data.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenError("provider.auth_failed",
                             f"token endpoint answered {answer.status}: {answer.body[:200]}",
                             retryable=False) from exc
        return _Cached(token, time.time() + max(expires_in - EXPIRY_MARGIN_S, 1.0))

    def _key(self, pem: str) -> rsa.RSAPrivateKey:
        key = self._keys.get(pem)
        if key is None:
            loaded = serialization.load_pem_private_key(pem.encode(), None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise TokenError("adapter.bad_input", "the service account key is not RSA",
                                 retryable=False)
            key = self._keys[pem] = loaded
        return key


def _allowed_token_uri(token_uri: str, base_url: str | None) -> bool:
    if token_uri == GOOGLE_TOKEN_URI:
        return True
    if not base_url:
        return False
    a, b = urlsplit(token_uri), urlsplit(base_url)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)
