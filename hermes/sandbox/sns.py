"""SNS HTTP notifications, signed (SignatureVersion 2, SHA256withRSA) as SNS signs them.

The sandbox makes its own RSA key and self-signed certificate at start and
serves the certificate at the `SigningCertURL` it puts in every message, so a
receiver verifies sandbox notifications exactly as it verifies real ones.
"""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from hermes.sandbox.common import iso_millis, utc_now
from hermes.sandbox.http import Request, Response
from hermes.sandbox.receipts import Receipt

CERT_PATH = "/_sandbox/sns/SimpleNotificationService-sandbox.pem"
UNSUBSCRIBE_PATH = "/_sandbox/sns/unsubscribe"
CONFIRM_PATH = "/_sandbox/sns/confirm"
_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}
_encode = msgspec.json.Encoder().encode


def string_to_sign(message: dict[str, str]) -> bytes:
    """The documented string to sign: each present field's name and value, one per line."""
    lines = []
    for name in _SIGNED_FIELDS[message["Type"]]:
        if name in message:
            lines.append(f"{name}\n{message[name]}\n")
    return "".join(lines).encode()


class SnsSigner:
    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, "sns.sandbox.hermes.test"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hermes provider sandbox (test only)"),
        ])
        now = utc_now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .sign(self._key, hashes.SHA256())
        )
        self.certificate_pem = cert.public_bytes(serialization.Encoding.PEM)

    def serve_certificate(self, _: Request) -> Response:
        return Response(200, self.certificate_pem, "application/x-pem-file")

    def notification(
        self, base_url: str, endpoint: str, topic_arn: str, message: str, provider: str,
    ) -> Receipt:
        subscription_arn = subscription_arn_for(topic_arn, endpoint)
        return self._signed(base_url, endpoint, topic_arn, provider, {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Message": message,
            "Timestamp": iso_millis(utc_now()),
        }, {"UnsubscribeURL": f"{base_url}{UNSUBSCRIBE_PATH}?SubscriptionArn={subscription_arn}"},
            subscription_arn)

    def subscription_confirmation(
        self, base_url: str, endpoint: str, topic_arn: str, token: str, provider: str,
    ) -> Receipt:
        subscribe_url = (f"{base_url}{CONFIRM_PATH}?Action=ConfirmSubscription"
                         f"&TopicArn={topic_arn}&Token={token}")
        return self._signed(base_url, endpoint, topic_arn, provider, {
            "Type": "SubscriptionConfirmation",
            "MessageId": str(uuid.uuid4()),
            "Token": token,
            "TopicArn": topic_arn,
            "Message": f"You have chosen to subscribe to the topic {topic_arn}.\nTo confirm the "
                       "subscription, visit the SubscribeURL included in this message.",
            "SubscribeURL": subscribe_url,
            "Timestamp": iso_millis(utc_now()),
        }, {}, None)

    def _signed(self, base_url: str, endpoint: str, topic_arn: str, provider: str,
                envelope: dict[str, str], extra: dict[str, str],
                subscription_arn: str | None) -> Receipt:
        signature = self._key.sign(string_to_sign(envelope), padding.PKCS1v15(), hashes.SHA256())
        envelope.update({
            "SignatureVersion": "2",
            "Signature": base64.b64encode(signature).decode(),
            "SigningCertURL": base_url + CERT_PATH,
            **extra,
        })
        headers = {
            "content-type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": envelope["Type"],
            "x-amz-sns-message-id": envelope["MessageId"],
            "x-amz-sns-topic-arn": topic_arn,
            "user-agent": "Amazon Simple Notification Service Agent",
        }
        if subscription_arn is not None:
            headers["x-amz-sns-subscription-arn"] = subscription_arn
        return Receipt(provider, endpoint, _encode(envelope), headers)


def subscription_arn_for(topic_arn: str, endpoint: str) -> str:
    return f"{topic_arn}:{uuid.uuid5(uuid.NAMESPACE_URL, endpoint)}"
