"""SNS signature verification as AWS documents it, written independently of the sandbox."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def verify_sns(message: dict[str, Any]) -> bool:
    """Build the string to sign, fetch the SigningCertURL, verify SHA256withRSA."""
    if message["Type"] == "Notification":
        keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:  # SubscriptionConfirmation / UnsubscribeConfirmation
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    signed = "".join(f"{k}\n{message[k]}\n" for k in keys if k in message).encode()
    assert message["SignatureVersion"] == "2"
    pem = httpx.get(message["SigningCertURL"]).content
    key = x509.load_pem_x509_certificate(pem).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    try:
        key.verify(base64.b64decode(message["Signature"]), signed, padding.PKCS1v15(),
                   hashes.SHA256())
    except Exception:
        return False
    return True
