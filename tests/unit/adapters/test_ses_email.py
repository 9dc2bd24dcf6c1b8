"""ses_email against botocore: the SendEmail request and its SigV4 signature
must be identical for the same time and keys; SES events arrive through SNS,
whose signature the host checks from the adapter's `verify` request."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import botocore.auth
import botocore.session
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSRequest, AWSResponse
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.unit.adapters.wasm import AdapterError, adapter, header

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=="
NOW = datetime.datetime(2026, 3, 7, 23, 59, 58)
NOW_MS = int(NOW.replace(tzinfo=datetime.UTC).timestamp() * 1000)
MESSAGE_ID = "0100019b1a2b3c4d-5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9-000000"


class _Raw:
    def stream(self, **_kw: Any) -> Any:
        yield json.dumps({"MessageId": MESSAGE_ID}).encode()


def sdk_request(
    monkeypatch: pytest.MonkeyPatch, region: str, token: str | None, **params: Any
) -> AWSPreparedRequest:
    """The request botocore sends for SendEmail at NOW, captured before it leaves."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda remove_tzinfo=True: NOW)
    captured: list[AWSPreparedRequest] = []

    def before_send(request: AWSPreparedRequest, **_kw: Any) -> AWSResponse:
        captured.append(request)
        return AWSResponse(request.url, 200, {}, _Raw())

    client = botocore.session.get_session().create_client(
        "sesv2",
        region_name=region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        aws_session_token=token,
    )
    client.meta.events.register("before-send.sesv2.SendEmail", before_send)
    client.send_email(**params)
    return captured[0]


def build(message: dict[str, Any], token: str | None = None, **config: Any) -> dict[str, Any]:
    credentials = {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}
    if token:
        credentials["session_token"] = token
    return adapter("ses_email").build_request(
        {
            "message": {"id": "msg_1", "channel": "email", **message},
            "credentials": credentials,
            "config": config,
            "now": NOW_MS,
            "attempt_id": "att_1",
        }
    )


def sdk_header(request: AWSPreparedRequest, name: str) -> str | None:
    value = request.headers.get(name)
    return value.decode() if isinstance(value, bytes) else value


def assert_identical(ours: dict[str, Any], sdk: AWSPreparedRequest) -> None:
    assert ours["method"] == sdk.method
    assert ours["url"] == sdk.url
    assert ours["body"].encode() == sdk.body
    for name in ("Authorization", "X-Amz-Date", "Content-Type", "X-Amz-Security-Token"):
        assert header(ours, name) == sdk_header(sdk, name), name


def test_text_email_signature_is_identical_to_botocore(
    monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    subject = "Betreff: " + body[:40]
    ours = build(
        {"to": "recipient@example.com", "subject": subject, "body": body},
        region="eu-west-1",
        **{"from": "Hermes <sender@example.com>"},
    )
    sdk = sdk_request(
        monkeypatch,
        "eu-west-1",
        None,
        FromEmailAddress="Hermes <sender@example.com>",
        Destination={"ToAddresses": ["recipient@example.com"]},
        Content={
            "Simple": {
                "Subject": {"Data": subject, "Charset": "UTF-8"},
                "Body": {"Text": {"Data": body, "Charset": "UTF-8"}},
            }
        },
    )
    assert_identical(ours, sdk)


def test_html_email_with_session_token_reply_to_and_configuration_set(
    monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    html = f'<p>{body}</p><a href="https://example.com/?a=1&b=2">ü</a>'
    ours = build(
        {"to": "ünïcode@exämple.com", "subject": "Hello 😀", "body": body, "html": html},
        token=SESSION_TOKEN,
        region="ap-southeast-2",
        reply_to="support@example.com",
        configuration_set="hermes-events",
        **{"from": "sender@example.com"},
    )
    sdk = sdk_request(
        monkeypatch,
        "ap-southeast-2",
        SESSION_TOKEN,
        FromEmailAddress="sender@example.com",
        Destination={"ToAddresses": ["ünïcode@exämple.com"]},
        ReplyToAddresses=["support@example.com"],
        Content={
            "Simple": {
                "Subject": {"Data": "Hello 😀", "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": body, "Charset": "UTF-8"},
                    "Html": {"Data": html, "Charset": "UTF-8"},
                },
            }
        },
        ConfigurationSetName="hermes-events",
    )
    assert_identical(ours, sdk)
    assert "x-amz-security-token" in header(ours, "Authorization")


def test_signing_a_request_to_a_base_url_override(monkeypatch: pytest.MonkeyPatch) -> None:
    ours = build(
        {"to": "r@example.com", "subject": "s", "body": "b"},
        region="us-east-1",
        base_url="http://127.0.0.1:8025/ses",
        **{"from": "s@example.com"},
    )
    assert ours["url"] == "http://127.0.0.1:8025/ses/v2/email/outbound-emails"
    assert header(ours, "Host") == "127.0.0.1:8025"
    # botocore signs the same request (with an endpoint override) identically.
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda remove_tzinfo=True: NOW)
    request = AWSRequest(
        "POST",
        ours["url"],
        data=ours["body"].encode(),
        headers={"Content-Type": "application/json"},
    )
    botocore.auth.SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "ses", "us-east-1").add_auth(
        request
    )
    assert header(ours, "Authorization") == request.headers["Authorization"]


@pytest.mark.parametrize(
    ("message", "config", "field"),
    [
        (
            {"to": "r@example.com", "body": "b"},
            {"region": "us-east-1", "from": "s@e.com"},
            "message.subject",
        ),
        (
            {"to": "r@example.com", "subject": "s"},
            {"region": "us-east-1", "from": "s@e.com"},
            "message.body",
        ),
        (
            {"to": "r@example.com", "subject": "s", "body": "b"},
            {"from": "s@e.com"},
            "config.region",
        ),
    ],
)
def test_missing_fields_are_bad_input(message: dict, config: dict, field: str) -> None:
    with pytest.raises(AdapterError) as exc:
        build(message, **config)
    assert exc.value.code == "adapter.bad_input"
    assert field in exc.value.message


def test_sent_email_is_accepted() -> None:
    assert adapter("ses_email").parse_response(200, {"MessageId": MESSAGE_ID}) == {
        "outcome": "accepted",
        "provider_message_id": MESSAGE_ID,
    }


@pytest.mark.parametrize(
    ("status", "error_type", "message", "outcome", "code"),
    [
        (
            429,
            "TooManyRequestsException",
            "Maximum sending rate exceeded.",
            "retryable",
            "provider.rate_limited",
        ),
        (
            400,
            "LimitExceededException",
            "Daily message quota exceeded.",
            "retryable",
            "provider.rate_limited",
        ),
        (400, "MessageRejected", "Email address is not verified.", "rejected", "provider.rejected"),
        (400, "BadRequestException", "Illegal address", "rejected", "provider.invalid_recipient"),
        (400, "AccountSuspendedException", "Sending suspended", "rejected", "provider.rejected"),
        (
            403,
            "SignatureDoesNotMatch",
            "The request signature ...",
            "rejected",
            "provider.auth_failed",
        ),
        (403, "UnrecognizedClientException", "invalid token", "rejected", "provider.auth_failed"),
        (500, "InternalFailure", "oops", "retryable", "provider.unavailable"),
        (503, "ServiceUnavailable", "later", "retryable", "provider.unavailable"),
    ],
)
def test_errors_are_mapped(
    status: int, error_type: str, message: str, outcome: str, code: str
) -> None:
    headers = [["x-amzn-ErrorType", f"{error_type}:http://internal.amazon.com/coral/"]]
    out = adapter("ses_email").parse_response(status, {"message": message}, headers)
    assert (out["outcome"], out["code"], out["provider_code"], out["message"]) == (
        outcome,
        code,
        error_type,
        message,
    )


def test_error_type_from_the_body_when_no_header() -> None:
    out = adapter("ses_email").parse_response(
        400, {"__type": "com.amazonaws.ses#NotFoundException", "message": "no config set"}
    )
    assert (out["code"], out["provider_code"]) == ("provider.rejected", "NotFoundException")


# ---- SES events through SNS ----------------------------------------------------------

CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"


@pytest.fixture(scope="module")
def signer() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def sns_string_to_sign(env: dict[str, str]) -> str:
    """Written from the SNS developer guide, independently of the adapter."""
    if env["Type"] == "Notification":
        keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{k}\n{env[k]}\n" for k in keys if k in env)


def sns_envelope(key: rsa.RSAPrivateKey, event: dict[str, Any] | str, **extra: str) -> dict:
    env = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Subject": "Amazon SES Email Event Notification",
        "Message": event if isinstance(event, str) else json.dumps(event),
        "Timestamp": "2026-03-08T00:00:02.123Z",
        "SignatureVersion": "2",
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&x=1",
        **extra,
    }
    digest = hashes.SHA256() if env["SignatureVersion"] == "2" else hashes.SHA1()
    sig = key.sign(sns_string_to_sign(env).encode(), padding.PKCS1v15(), digest)
    env["Signature"] = base64.b64encode(sig).decode()
    return env


def host_check(verify: dict[str, str], cert: x509.Certificate) -> bool:
    """What the host does with a `verify: {kind: sns}` request."""
    digest = hashes.SHA256() if verify["signature_version"] == "2" else hashes.SHA1()
    try:
        cert.public_key().verify(
            base64.b64decode(verify["signature"]),
            verify["string_to_sign"].encode(),
            padding.PKCS1v15(),
            digest,
        )
    except Exception:
        return False
    return True


def callback(env: dict[str, Any] | str, **credentials: str) -> dict[str, Any]:
    return adapter("ses_email").parse_callback(
        {
            "method": "POST",
            "url": "https://hermes.example.com/v1/callbacks/acc_1/ses_email",
            "headers": [
                ["x-amz-sns-message-type", "Notification"],
                ["Content-Type", "text/plain; charset=UTF-8"],
            ],
            "body": env if isinstance(env, str) else json.dumps(env),
            "credentials": {
                "access_key_id": ACCESS_KEY,
                "secret_access_key": SECRET_KEY,
                **credentials,
            },
        }
    )


MAIL = {
    "timestamp": "2026-03-08T00:00:00.012Z",
    "source": "Sender Name <sender@example.com>",
    "sourceArn": "arn:aws:ses:eu-west-1:123456789012:identity/sender@example.com",
    "sendingAccountId": "123456789012",
    "messageId": MESSAGE_ID,
    "destination": ["recipient@example.com"],
    "headersTruncated": False,
    "tags": {"ses:configuration-set": ["hermes-events"]},
}

EVENTS = {
    "delivery": (
        {
            "eventType": "Delivery",
            "mail": MAIL,
            "delivery": {
                "timestamp": "2026-03-08T00:00:01.500Z",
                "processingTimeMillis": 1488,
                "recipients": ["recipient@example.com"],
                "smtpResponse": "250 2.6.0 Message received",
                "reportingMTA": "a8-70.smtp-out.amazonses.com",
            },
        },
        {"status": "delivered", "timestamp": 1772928001500},
    ),
    "bounce": (
        {
            "eventType": "Bounce",
            "mail": MAIL,
            "bounce": {
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {
                        "emailAddress": "recipient@example.com",
                        "action": "failed",
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    }
                ],
                "timestamp": "2026-03-08T00:00:01.669Z",
                "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
                "reportingMTA": "dsn; mta.example.com",
            },
        },
        {
            "status": "bounced",
            "timestamp": 1772928001669,
            "provider_error_code": "Permanent/General",
        },
    ),
    "complaint": (
        {
            "notificationType": "Complaint",
            "mail": MAIL,
            "complaint": {
                "complainedRecipients": [{"emailAddress": "recipient@example.com"}],
                "timestamp": "2026-03-08T00:00:03Z",
                "feedbackId": "0100015...",
                "userAgent": "Mozilla/5.0",
                "complaintFeedbackType": "abuse",
                "arrivalDate": "2026-03-08T00:00:02.000Z",
            },
        },
        {"status": "complained", "timestamp": 1772928003000, "provider_error_code": "abuse"},
    ),
}


@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_ses_events_through_sns_yield_receipts_and_a_verify_request(
    signer: tuple[rsa.RSAPrivateKey, x509.Certificate], kind: str
) -> None:
    key, cert = signer
    event, expected = EVENTS[kind]
    env = sns_envelope(key, event)
    out = callback(env, sns_topic_arn=TOPIC)
    assert out["verified"] is False  # only the host can check an RSA certificate
    assert out["receipts"] == [{"provider_message_id": MESSAGE_ID, **expected}]
    verify = out["verify"]
    assert verify["kind"] == "sns"
    assert verify["cert_url"] == CERT_URL
    assert verify["string_to_sign"] == sns_string_to_sign(env)
    assert host_check(verify, cert)


def test_unicode_in_the_sns_message_survives_into_the_signed_string(
    signer: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    key, cert = signer
    event = {**EVENTS["delivery"][0], "mail": {**MAIL, "commonHeaders": {"subject": "Grüße 😀"}}}
    env = sns_envelope(key, json.dumps(event, ensure_ascii=False))
    assert host_check(callback(env)["verify"], cert)


def test_signature_version_1_and_no_subject(
    signer: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    key, cert = signer
    env = sns_envelope(key, EVENTS["delivery"][0], SignatureVersion="1")
    del env["Subject"]
    env["Signature"] = base64.b64encode(
        key.sign(sns_string_to_sign(env).encode(), padding.PKCS1v15(), hashes.SHA1())
    ).decode()
    out = callback(env)
    assert out["verify"]["signature_version"] == "1"
    assert "Subject" not in out["verify"]["string_to_sign"]
    assert host_check(out["verify"], cert)


def test_tampered_notification_fails_the_host_check(
    signer: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    key, cert = signer
    env = sns_envelope(key, EVENTS["delivery"][0])
    env["Message"] = env["Message"].replace("Delivery", "Bounce")
    assert not host_check(callback(env)["verify"], cert)


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
        "http://sns.eu-west-1.amazonaws.com/cert.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://user@sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com/cert.txt",
    ],
)
def test_certificates_from_anywhere_but_sns_are_refused(
    signer: tuple[rsa.RSAPrivateKey, x509.Certificate], cert_url: str
) -> None:
    env = sns_envelope(signer[0], EVENTS["delivery"][0], SigningCertURL=cert_url)
    assert callback(env) == {"verified": False, "receipts": []}


def test_a_sandbox_certificate_prefix_replaces_the_sns_host_check(
    signer: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    sandbox_cert = "http://127.0.0.1:8025/sns/SimpleNotificationService-sandbox.pem"
    env = sns_envelope(signer[0], EVENTS["delivery"][0], SigningCertURL=sandbox_cert)
    assert callback(env)["verified"] is False
    assert "verify" not in callback(env)
    out = callback(env, sns_cert_url_prefix="http://127.0.0.1:8025/")
    assert out["verify"]["cert_url"] == sandbox_cert
    assert host_check(out["verify"], signer[1])
    # The prefix is a prefix of the whole URL, not a host suffix match.
    assert "verify" not in callback(env, sns_cert_url_prefix="http://127.0.0.1:8026/")


def test_a_pinned_topic_refuses_other_topics(
    signer: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    env = sns_envelope(signer[0], EVENTS["delivery"][0])
    out = callback(env, sns_topic_arn="arn:aws:sns:eu-west-1:999999999999:other")
    assert out == {"verified": False, "receipts": []}


def test_subscription_confirmation_asks_the_host_to_confirm(
    signer: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    key, cert = signer
    subscribe = (
        "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"
        f"&TopicArn={TOPIC}&Token=2336412f37"
    )
    env = sns_envelope(
        key,
        "You have chosen to subscribe to the topic ...",
        Type="SubscriptionConfirmation",
        Token="2336412f37",
        SubscribeURL=subscribe,
    )
    del env["Subject"]
    env["Signature"] = base64.b64encode(
        key.sign(sns_string_to_sign(env).encode(), padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    out = callback(env)
    assert out["receipts"] == []
    assert out["verify"]["subscribe_url"] == subscribe
    assert host_check(out["verify"], cert)
