"""Fixed, public, test-only credentials of the provider sandbox.

Every value here is published on purpose: the sandbox accepts exactly these
credentials and nothing else, so test mode, adapters and tests can use them
without any provider account. None of them works against a real provider.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


@dataclass(frozen=True, slots=True)
class TwilioCredentials:
    account_sid: str
    auth_token: str
    from_number: str
    messaging_service_sid: str


@dataclass(frozen=True, slots=True)
class MessenteCredentials:
    username: str
    password: str
    sender: str


@dataclass(frozen=True, slots=True)
class SesCredentials:
    access_key_id: str
    secret_access_key: str
    region: str
    account_id: str
    configuration_set: str
    from_address: str


@dataclass(frozen=True, slots=True)
class FcmCredentials:
    project_id: str
    client_email: str
    private_key_id: str
    private_key_pem: str

    def service_account_info(self, sandbox_url: str) -> dict[str, str]:
        """The service-account JSON, with `token_uri` pointing at the sandbox."""
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.private_key_id,
            "private_key": self.private_key_pem,
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": sandbox_url.rstrip("/") + "/token",
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "",
        }

    def public_key(self) -> rsa.RSAPublicKey:
        key = serialization.load_pem_private_key(self.private_key_pem.encode(), None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key.public_key()

    def assertion(self, token_uri: str, now: float | None = None) -> str:
        """A signed JWT-bearer assertion for the sandbox's OAuth token endpoint."""
        issued = int(time.time() if now is None else now)
        header = {"alg": "RS256", "typ": "JWT", "kid": self.private_key_id}
        claims = {
            "iss": self.client_email,
            "scope": "https://www.googleapis.com/auth/firebase.messaging",
            "aud": token_uri,
            "iat": issued,
            "exp": issued + 3600,
        }
        signing_input = _b64url_json(header) + b"." + _b64url_json(claims)
        key = serialization.load_pem_private_key(self.private_key_pem.encode(), None)
        assert isinstance(key, rsa.RSAPrivateKey)
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return (signing_input + b"." + _b64url(signature)).decode()


@dataclass(frozen=True, slots=True)
class WhatsAppCredentials:
    access_token: str
    app_secret: str
    phone_number_id: str
    business_account_id: str
    display_phone_number: str
    webhook_verify_token: str


def _b64url(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def _b64url_json(value: dict[str, Any]) -> bytes:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


TWILIO = TwilioCredentials(
    account_sid="AC" + "5a" * 16,
    auth_token="sandbox-twilio-auth-token-0001",
    from_number="+12015550100",
    messaging_service_sid="MG" + "5a" * 16,
)

MESSENTE = MessenteCredentials(
    username="sandbox-messente-user",
    password="sandbox-messente-password",
    sender="HermesTest",
)

SES = SesCredentials(
    access_key_id="AKIASANDBOXHERMES001",
    secret_access_key="sandbox/ses/secret/access/key/hermes0001",
    region="eu-west-1",
    account_id="000000000001",
    configuration_set="hermes-sandbox",
    from_address="sender@sandbox.hermes.test",
)

# A 2048-bit RSA key generated for this sandbox only. It is public and signs
# nothing but JWT assertions to the sandbox's own token endpoint.
FCM = FcmCredentials(
    project_id="hermes-sandbox",
    client_email="hermes-sandbox@hermes-sandbox.iam.gserviceaccount.com",
    private_key_id="5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
    private_key_pem="""-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCoQN7zKL/TqISd
ZijqC+1+/6fXpuEUv1dxEjdvrRVQdRSXvvqXExrlwdH629ez6SCABz41IrERmtzN
x2v1pz3MZQhErMWVd7s0Avm3QjF9H+lLMnOpTiaGetm3G4mUO+62ocMTaOsHSLyG
PBUTEWd5FWEACYOIaBW60ufgdCfVMd/TXOqyv3zsLatgctT4IEBbcqyHpcnPKt4p
kGnnQBKias3Ex1lHBK1y8wW2Umt9zYi9Qxs9GT0FkbOf4umhSgbv+7FCD+a0flF+
xQAD23vr6uCYjt05qWdjZdcDrP2pnR8WZnnwMqYNBorH1ezayHSklmZV5vg/zw4T
rXu3Ydg3AgMBAAECggEAAykMxwZ56/DbZNV5aUQGFv+YWH2i9q/NZatQ7UEUCGna
lCsbK+FI/Q3R8uNUPuXfHWiFa5wWNV1yTk8zoO6eQ4uWRyvzniYclxKDPET7Bv2l
dSsibwivwpDmLAFRaT5i8n1BW8j5uS5NlDvmrXADQIv9QXHsTZCe795sSpQD94Yr
f1pnjRof8RBs8DKTFCnOAGhCKLYXF+j4WgzWzXB8Oqc++2nQDRFAGl2EEKjh9z11
NcyNt+5CFPl+ZDMAdFr9+XS3WUX8c3LBvbnSZ0Tzda9U+ZKyCV0YMT8b2ZzP5jHH
qHP09LbKr75pmVvebiwfGOhMYdjESTT30f5w/+iekQKBgQDYkuTKKrYySpQUcLK7
lLDcNZaq46AqqR20v3ZfcqP0QJn46dxdFdXTU9AijHHIKc2uf9YkV8gfdn9ggbHr
YtpZfokvCScy6JF3fWQYHpjJ1EzCjbF8AsfE0tAczKrrM3bk4zdxh3F2v+W4MbK+
UacOrgNMrCxvGzPadWZMVkax/wKBgQDG4hNJL7hitybLa8vlPqZ3cbYKLGR+FTGA
IUaTPGaInxDAVn1LCMagzecc8LL25yXQ1AneDDXetMz/X54JZkWZzTjxsQpzB8ZW
47siUEloIkRZVMJtDk0+QbR8TOoM2F+nvzi41B1vqGcKyJMbz4O1MLiuUy+XFPTT
wZO3UCHpyQKBgBg8aAoPuY/rNKMM8ZN4UkpyXMgG7ReZEU/21SJdS+e7iv+F/DkW
hnU9vd7/5IPH2dKbT7WFdUnAEwUTvnte9pxpQqTW22IhEJZUm+zvD54WefiTrrb4
AK8QAGYYqU/k1HtMyhmUVKg7VVPFjAEsVguYgZoE8nwEiUr7NFV6mjK1AoGBAMKS
IrQTD5zj+fxBdbTNWia5BJNnYtlG+qqT42vgR5+ZntXMx79E0q43Qse5ZBzRftmS
2CR4Zat/zp54eTBQ8f7KG8+4mLR5Ar23BjlHusk53QxYM+5lc4RY265PwRrYBJ0k
IuYP/sxiQIz4NZObrQryo3tIvuJcCjmwxEcvCj6hAoGBAMXjS1trwgr3McT6OHni
sHMPyMS6vyumDAn2hfIhEl0SdFTglPxn2lE5iA9B+zyss810OcM6mJVtsVdkRYvW
mhugLIqu+Zn4yyVD77x4eg9erKYy6c3DnaGEmXpGtUvUbjVGpdfrVCd6rS7XrViw
joB1R/FKawDJLtSGdA0jmDVN
-----END PRIVATE KEY-----
""",
)

WHATSAPP = WhatsAppCredentials(
    access_token="EAASandboxHermesWhatsAppAccessToken0001",
    app_secret="sandbox-whatsapp-app-secret-0001",
    phone_number_id="100000000000001",
    business_account_id="200000000000001",
    display_phone_number="12015550199",
    webhook_verify_token="sandbox-whatsapp-verify-token-0001",
)

PROVIDERS = ("twilio", "messente", "ses", "fcm", "whatsapp")


def ses_topic_arn(configuration_set: str) -> str:
    """The SNS topic the sandbox publishes a configuration set's SES events on."""
    return f"arn:aws:sns:{SES.region}:{SES.account_id}:ses-{configuration_set}-events"


def base_urls(sandbox_url: str) -> dict[str, str]:
    """The base URL each provider's client uses when it talks to the sandbox.

    Each is what replaces the real host (and fixed prefix) in that provider's
    API: `https://api.twilio.com`, `https://api.messente.com/v1`,
    `https://email.<region>.amazonaws.com`, `https://fcm.googleapis.com`
    (plus `https://oauth2.googleapis.com/token`) and `https://graph.facebook.com`.
    """
    root = sandbox_url.rstrip("/")
    return {
        "twilio": root,
        "messente": root + "/v1",
        "ses": root,
        "fcm": root,
        "fcm_token_uri": root + "/token",
        "whatsapp": root,
    }


def provider_accounts(sandbox_url: str) -> dict[str, dict[str, Any]]:
    """Everything test mode needs per provider: base URL plus credentials."""
    urls = base_urls(sandbox_url)
    return {
        "twilio": {
            "base_url": urls["twilio"],
            "account_sid": TWILIO.account_sid,
            "auth_token": TWILIO.auth_token,
            "from": TWILIO.from_number,
            "messaging_service_sid": TWILIO.messaging_service_sid,
        },
        "messente": {
            "base_url": urls["messente"],
            "username": MESSENTE.username,
            "password": MESSENTE.password,
            "sender": MESSENTE.sender,
        },
        "ses": {
            "base_url": urls["ses"],
            "access_key_id": SES.access_key_id,
            "secret_access_key": SES.secret_access_key,
            "region": SES.region,
            "configuration_set": SES.configuration_set,
            "from": SES.from_address,
            # Events of the default configuration set come from this SNS topic,
            # signed with a certificate served under this URL prefix.
            "sns_topic_arn": ses_topic_arn(SES.configuration_set),
            "sns_cert_url_prefix": urls["ses"] + "/_sandbox/sns/",
        },
        "fcm": {
            "base_url": urls["fcm"],
            "project_id": FCM.project_id,
            "service_account": FCM.service_account_info(sandbox_url),
        },
        "whatsapp": {
            "base_url": urls["whatsapp"],
            "access_token": WHATSAPP.access_token,
            "app_secret": WHATSAPP.app_secret,
            "phone_number_id": WHATSAPP.phone_number_id,
            "business_account_id": WHATSAPP.business_account_id,
            "webhook_verify_token": WHATSAPP.webhook_verify_token,
        },
    }
