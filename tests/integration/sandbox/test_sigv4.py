"""SigV4 verification: requests signed by botocore's own signer, then altered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from hermes.sandbox import sigv4
from hermes.sandbox.credentials import SES

URL = "http://127.0.0.1:8025/v2/email/outbound-emails"
SECRETS = {SES.access_key_id: SES.secret_access_key}


def _signed(body: bytes = b'{"a": 1}') -> dict[str, str]:
    request = AWSRequest("POST", URL, data=body, headers={"content-type": "application/json"})
    SigV4Auth(Credentials(SES.access_key_id, SES.secret_access_key), "ses",
              SES.region).add_auth(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = "127.0.0.1:8025"
    return headers


def _verify(headers: dict[str, str], body: bytes = b'{"a": 1}',
            now: datetime | None = None) -> str:
    return sigv4.verify("POST", "/v2/email/outbound-emails", "", headers, body, SECRETS, "ses",
                        now)


def test_botocore_signature_verifies() -> None:
    assert _verify(_signed()) == SES.access_key_id


def test_changed_body_fails() -> None:
    with pytest.raises(sigv4.SigV4Error) as caught:
        _verify(_signed(), body=b'{"a": 2}')
    assert (caught.value.status, caught.value.error_type) == (403, "SignatureDoesNotMatch")


def test_unknown_access_key_is_unrecognized_client() -> None:
    headers = _signed()
    headers["authorization"] = headers["authorization"].replace(SES.access_key_id,
                                                                "AKIAUNKNOWNKEY000000")
    with pytest.raises(sigv4.SigV4Error) as caught:
        _verify(headers)
    assert caught.value.error_type == "UnrecognizedClientException"


def test_signature_older_than_15_minutes_is_expired() -> None:
    with pytest.raises(sigv4.SigV4Error) as caught:
        _verify(_signed(), now=datetime.now(UTC) + timedelta(minutes=16))
    assert caught.value.error_type == "InvalidSignatureException"


async def test_unsigned_request_is_missing_authentication_token(http: httpx.AsyncClient) -> None:
    answer = await http.post("/v2/email/outbound-emails", json={})
    assert answer.status_code == 403
    assert answer.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
