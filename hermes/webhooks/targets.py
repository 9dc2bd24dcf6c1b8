"""Which URLs a webhook endpoint may have: the syntax, then the SSRF rules."""

from __future__ import annotations

from urllib.parse import urlsplit

from hermes.domain.errors import Code, FieldError, HermesError
from hermes.infra.http.ssrf import TargetPolicy, TargetRefused, check_url

MAX_URL_LENGTH = 2048


def _invalid(detail: str) -> HermesError:
    return HermesError(Code.WEBHOOK_INVALID_URL, detail,
                       errors=[FieldError(code=Code.WEBHOOK_INVALID_URL, field="url",
                                          detail=detail)])


def validate_url(url: str) -> str:
    """The URL as stored, or a `webhook.invalid_url` error naming what is wrong.

    Only the syntax: `check_target` then applies the SSRF rules."""
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
    return url


async def check_target(url: str, policy: TargetPolicy, *, field: str = "url") -> None:
    """Refuse, with `target.not_allowed` naming `field`, a URL Hermes must not call on a
    tenant's behalf: one whose host is or resolves to a private, loopback, link-local
    or reserved address the operator has not allowed (`hermes.infra.http.ssrf`)."""
    try:
        await check_url(url, policy)
    except TargetRefused as exc:
        raise HermesError(Code.TARGET_NOT_ALLOWED, str(exc),
                          errors=[FieldError(code=Code.TARGET_NOT_ALLOWED, field=field,
                                             detail=str(exc))]) from None
