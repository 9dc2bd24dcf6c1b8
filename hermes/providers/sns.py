"""Amazon SNS message verification, the host's half of the adapter's `verify: {"kind": "sns"}`.

The adapter extracts the string to sign, the signature and the certificate URL;
the host fetches the certificate (only from SNS's own HTTPS hosts, or from the
account's `sns_cert_url_prefix`, which is how test mode trusts the sandbox),
caches it, and checks the RSA signature: SHA1 for SignatureVersion 1, SHA256 for 2.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hermes.infra.http.client import ProviderHttp, ProviderHttpError

log = logging.getLogger("hermes.callbacks")

_SNS_CERT = re.compile(r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[^?#]*\.pem$")
_SNS_HOST = re.compile(r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/")
MAX_CACHED = 64


def trusted_cert_url(url: str, prefix: str | None) -> bool:
    return bool(_SNS_CERT.match(url)) or bool(prefix and url.startswith(prefix))


def trusted_subscribe_url(url: str, prefix: str | None) -> bool:
    return bool(_SNS_HOST.match(url)) or bool(prefix and url.startswith(prefix))


class SnsVerifier:
    def __init__(self, http: ProviderHttp) -> None:
        self.http = http
        self._keys: dict[str, rsa.RSAPublicKey] = {}

    async def verify(self, check: dict[str, Any], credentials: dict[str, Any]) -> bool:
        """Does the adapter's `verify` object check out? Never raises for a bad message."""
        prefix = credentials.get("sns_cert_url_prefix")
        prefix = prefix if isinstance(prefix, str) and prefix else None
        url = str(check.get("cert_url") or "")
        version = str(check.get("signature_version") or "1")
        if version not in ("1", "2") or not trusted_cert_url(url, prefix):
            return False
        try:
            signature = base64.b64decode(str(check.get("signature") or ""), validate=True)
        except (binascii.Error, ValueError):
            return False
        key = await self._key(url)
        if key is None:
            return False
        digest = hashes.SHA256() if version == "2" else hashes.SHA1()
        try:
            key.verify(signature, str(check.get("string_to_sign") or "").encode(),
                       padding.PKCS1v15(), digest)
        except InvalidSignature:
            return False
        return True

    async def confirm(self, subscribe_url: str, credentials: dict[str, Any]) -> bool:
        """Confirm an SNS subscription by fetching its SubscribeURL (trusted hosts only)."""
        prefix = credentials.get("sns_cert_url_prefix")
        if not trusted_subscribe_url(subscribe_url, prefix if isinstance(prefix, str) else None):
            return False
        try:
            status, _ = await self.http.get_bytes(subscribe_url)
        except ProviderHttpError as exc:
            log.warning("SNS subscription confirmation failed: %s", exc)
            return False
        return 200 <= status < 300

    async def _key(self, url: str) -> rsa.RSAPublicKey | None:
        key = self._keys.get(url)
        if key is not None:
            return key
        try:
            status, pem = await self.http.get_bytes(url)
        except ProviderHttpError as exc:
            log.warning("SNS certificate %s not fetched: %s", url, exc)
            return None
        if status != 200:
            return None
        try:
            public = x509.load_pem_x509_certificate(pem).public_key()
        except ValueError:
            return None
        if not isinstance(public, rsa.RSAPublicKey):
            return None
        if len(self._keys) >= MAX_CACHED:
            self._keys.pop(next(iter(self._keys)))
        self._keys[url] = public
        return public
