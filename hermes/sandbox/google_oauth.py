"""Google's OAuth 2.0 token endpoint, JWT-bearer grant only: `POST /token`.

A service account signs a JWT (RS256) with its private key; the endpoint
checks the signature against the sandbox service account's public key, the
issuer, audience and lifetime, then issues a short-lived Bearer token that the
FCM endpoint accepts.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from hermes.sandbox import credentials
from hermes.sandbox.common import Context
from hermes.sandbox.http import Request, Response, json_response

PROVIDER = "fcm"
PATH = "/token"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME = 3599  # seconds, as Google issues them
_REAL_AUDIENCE = "https://oauth2.googleapis.com/token"
_public_key = credentials.FCM.public_key()


def _oauth_error(code: str, description: str, status: int = 400) -> Response:
    return json_response(status, {"error": code, "error_description": description})


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _check_assertion(assertion: str, now: float) -> Response | None:
    try:
        header_b64, claims_b64, signature_b64 = assertion.split(".")
        header = json.loads(_b64decode(header_b64))
        claims: dict[str, Any] = json.loads(_b64decode(claims_b64))
        signature = _b64decode(signature_b64)
    except (ValueError, binascii.Error):
        return _oauth_error("invalid_grant", "Invalid JWT: malformed assertion.")
    if header.get("alg") != "RS256":
        return _oauth_error("invalid_grant", "Invalid JWT: unsupported algorithm.")
    if claims.get("iss") != credentials.FCM.client_email:
        return _oauth_error("invalid_grant", "Invalid grant: account not found")
    try:
        _public_key.verify(signature, f"{header_b64}.{claims_b64}".encode(),
                           padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return _oauth_error("invalid_grant", "Invalid JWT Signature.")
    audience = str(claims.get("aud", ""))
    if audience != _REAL_AUDIENCE and urlsplit(audience).path != PATH:
        return _oauth_error("invalid_grant", "Invalid JWT: Failed audience check.")
    issued, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(issued, int) or not isinstance(expires, int):
        return _oauth_error("invalid_grant", "Invalid JWT: iat and exp are required.")
    if expires - issued > 3600 or issued > now + 300 or expires < now - 300:
        return _oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token "
                            "(60 minutes) and in a reasonable timeframe. Check your iat and exp "
                            "values in the JWT claim.")
    return None


def install(ctx: Context) -> None:
    def token(request: Request) -> Response:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        if form.get("grant_type") != GRANT_TYPE:
            response = _oauth_error("unsupported_grant_type", "Invalid grant_type: "
                                    + form.get("grant_type", ""))
        else:
            now = time.time()
            response = _check_assertion(form.get("assertion", ""), now) or _issue(ctx, now)
        ctx.state.record(PROVIDER, request.method, request.path, request.headers,
                         {"grant_type": form.get("grant_type")}, response.status, None)
        return response

    ctx.router.add("POST", PATH, token)


def _issue(ctx: Context, now: float) -> Response:
    access_token = "ya29.sandbox." + secrets.token_urlsafe(32)
    tokens = ctx.state.fcm_access_tokens
    if len(tokens) > 10_000:  # forget expired ones now and then
        for stale in [t for t, exp in tokens.items() if exp < now]:
            del tokens[stale]
    tokens[access_token] = now + TOKEN_LIFETIME
    return json_response(200, {
        "access_token": access_token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer",
    })
