"""AWS Signature Version 4 verification, as AWS does it for a JSON service.

Rebuilds the canonical request from what arrived (method, path, query, the
signed headers, the payload hash), derives the signing key from the known
secret of the access key, and compares signatures in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import parse_qsl, quote

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)


class SigV4Error(Exception):
    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


@lru_cache(maxsize=64)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _parse_amz_date(value: str) -> datetime:
    """20261127T195328Z; by hand, as strptime costs more than the whole signature check."""
    if len(value) != 16 or value[8] != "T" or value[15] != "Z":
        raise ValueError(value)
    return datetime(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]),
                    int(value[11:13]), int(value[13:15]), tzinfo=UTC)


def _canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(pairs)
    )


def _parse_authorization(header: str) -> dict[str, str]:
    algorithm, _, rest = header.partition(" ")
    if algorithm != ALGORITHM:
        raise SigV4Error(400, "IncompleteSignatureException",
                         f"Unsupported AWS 'algorithm': '{algorithm}'")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if sep:
            fields[name] = value
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
    if missing:
        raise SigV4Error(400, "IncompleteSignatureException",
                         f"Authorization header requires '{missing[0]}' parameter.")
    return fields


def verify(
    method: str, path: str, query: str, headers: dict[str, str], body: bytes,
    secrets: dict[str, str], service: str, now: datetime | None = None,
) -> str:
    """Check the request's SigV4 signature; return the access key id or raise."""
    header = headers.get("authorization")
    if not header:
        raise SigV4Error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    fields = _parse_authorization(header)
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise SigV4Error(400, "IncompleteSignatureException",
                         "Credential should be scoped to a valid region.")
    access_key, date, region, scope_service, _ = scope
    secret = secrets.get(access_key)
    if secret is None:
        raise SigV4Error(403, "UnrecognizedClientException",
                         "The security token included in the request is invalid.")
    if scope_service != service:
        raise SigV4Error(403, "SignatureDoesNotMatch",
                         f"Credential should be scoped to correct service: '{service}'.")
    amz_date = headers.get("x-amz-date", "")
    try:
        signed_at = _parse_amz_date(amz_date)
    except ValueError:
        raise SigV4Error(400, "IncompleteSignatureException",
                         "Authorization header requires existence of either a 'X-Amz-Date' "
                         "or a 'Date' header.") from None
    current = now or datetime.now(UTC)
    if abs(current - signed_at) > MAX_SKEW or not amz_date.startswith(date):
        raise SigV4Error(403, "InvalidSignatureException",
                         f"Signature expired: {amz_date} is now earlier than "
                         f"{(current - MAX_SKEW):%Y%m%dT%H%M%SZ}.")
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed:
        raise SigV4Error(403, "SignatureDoesNotMatch", "'Host' must be a 'SignedHeader' in the "
                         "AWS Authorization.")
    canonical_headers = "".join(
        f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed
    )
    payload_hash = headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
    canonical = "\n".join((
        method, quote(path, safe="/~"), _canonical_query(query), canonical_headers,
        fields["SignedHeaders"], payload_hash,
    ))
    string_to_sign = "\n".join((
        ALGORITHM, amz_date, "/".join(scope[1:]), hashlib.sha256(canonical.encode()).hexdigest(),
    ))
    key = _signing_key(secret, date, region, service)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["Signature"]):
        raise SigV4Error(403, "SignatureDoesNotMatch",
                         "The request signature we calculated does not match the signature "
                         "you provided. Check your AWS Secret Access Key and signing method. "
                         "Consult the service documentation for details.")
    if headers.get("x-amz-content-sha256") and payload_hash != hashlib.sha256(body).hexdigest():
        raise SigV4Error(400, "XAmzContentSHA256Mismatch",
                         "The provided 'x-amz-content-sha256' header does not match what was "
                         "computed.")
    return access_key
