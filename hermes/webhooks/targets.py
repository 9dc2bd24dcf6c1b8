"""Which URLs a webhook endpoint may have."""

from __future__ import annotations

from urllib.parse import urlsplit

from hermes.domain.errors import Code, FieldError, HermesError

MAX_URL_LENGTH = 2048


def _invalid(detail: str) -> HermesError:
    return HermesError(Code.WEBHOOK_INVALID_URL, detail,
                       errors=[FieldError(code=Code.WEBHOOK_INVALID_URL, field="url",
                                          detail=detail)])


def validate_url(url: str) -> str:
    """The URL as stored, or a `webhook.invalid_url` error naming what is wrong."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise _invalid(f"the URL must have 1 to {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise _invalid("the URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _invalid(f"the URL cannot be parsed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise _invalid("the URL must start with https:// or http://")
    if not parts.hostname:
        raise _invalid("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise _invalid("the URL must not carry credentials; authenticate by the signature")
    if port == 0:
        raise _invalid("the URL's port must be 1 to 65535")
    if parts.fragment:
        raise _invalid("the URL must not have a fragment")
    check_target(url)
    return url


def check_target(url: str) -> None:
    """Refuse URLs Hermes must not call on a tenant's behalf (SSRF).

    Loopback, private and link-local targets are allowed for now; the SSRF rules
    go here, raising `webhook.invalid_url` (or a dedicated code) for a refused target.
    """
    del url
