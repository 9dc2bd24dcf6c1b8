"""What a provider account written through the API may hold (no I/O).

The schema (types, bounds) is the API's msgspec structs; these are the rules that
need the adapter's manifest or the deployment: the adapter serves the channel, the
credential fields are ones the adapter reads, the sender settings do not shadow what
the host sets itself, costs are per country, and where the account may send.
Every violation is `account.invalid` naming its field; the SSRF check of the base
URL (`target.not_allowed`) needs DNS and runs in the API.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from hermes.domain.errors import Code, FieldError, HermesError

MAX_URL_LENGTH = 2048
# Semantic versioning 2.0.0, as adapter manifests carry it.
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                     r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
# The host puts these into an adapter's config itself.
RESERVED_CONFIG = ("base_url", "callback_url")
# Below this length no characters of a secret are shown.
HINT_MIN_LENGTH = 8


def invalid(field: str, detail: str) -> HermesError:
    return HermesError(Code.ACCOUNT_INVALID, detail,
                       errors=[FieldError(code=Code.ACCOUNT_INVALID, field=field, detail=detail)])


def check_adapter(adapter: str, channel: str, loaded: dict[str, dict[str, Any]]) -> None:
    """`loaded` maps each loaded adapter's name to its manifest."""
    manifest = loaded.get(adapter)
    if manifest is None:
        raise invalid("adapter", f"no adapter {adapter!r} is loaded; loaded: "
                                 f"{', '.join(sorted(loaded)) or 'none'}")
    channels = manifest.get("channels") or []
    if channel not in channels:
        raise invalid("channel", f"{adapter} serves {', '.join(channels)}, not {channel}")


def check_version(version: str | None) -> None:
    if version is not None and not _SEMVER.match(version):
        raise invalid("adapter_version", f"{version!r} is not a semantic version like 1.2.0")


def check_credentials(credentials: dict[str, Any], adapter: str,
                      manifest: dict[str, Any]) -> None:
    """The credential fields must be ones the adapter reads, when its manifest says which."""
    known = manifest.get("credentials")
    if not isinstance(known, list) or not known:
        return
    unknown = sorted(set(credentials) - set(known))
    if unknown:
        raise invalid(f"credentials.{unknown[0]}",
                      f"{adapter} reads the credentials {', '.join(known)}; "
                      f"{', '.join(unknown)} is not one of them")
    if not credentials:
        raise invalid("credentials", f"{adapter} needs credentials: some of {', '.join(known)}")


def check_config(config: dict[str, Any]) -> None:
    for key in RESERVED_CONFIG:
        if key in config:
            raise invalid(f"config.{key}", f"config.{key} is set by Hermes"
                          + ("; use the account's base_url" if key == "base_url" else ""))


def check_cost(cost: dict[str, float | None]) -> None:
    for key in cost:
        if key != "default" and not _COUNTRY.match(key):
            raise invalid(f"cost.{key}", "cost keys are ISO 3166 country codes like DK, or "
                                         "`default`")


def check_base_url(url: str) -> str:
    """A provider base URL: https, with a host, and nothing that does not belong in one."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH or any(c.isspace() or not c.isprintable()
                                                   for c in url):
        raise invalid("base_url", f"base_url must be 1-{MAX_URL_LENGTH} printable characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise invalid("base_url", f"base_url cannot be parsed: {exc}") from None
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise invalid("base_url", "base_url must be an https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise invalid("base_url", "base_url must not carry credentials; put them in credentials")
    if port == 0 or parts.fragment or parts.query:
        raise invalid("base_url", "base_url must have no query, fragment or port 0")
    return url


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme.lower(), pa.netloc.lower()) == (pb.scheme.lower(), pb.netloc.lower())


def credentials_hint(credentials: dict[str, Any]) -> str:
    """`…` and the last four characters of the account's main secret: its longest
    string field (in a nested object such as a service-account key, its longest string
    that is not a PEM block). Secrets shorter than HINT_MIN_LENGTH show nothing."""
    candidates = [v for v in credentials.values() if isinstance(v, str)]
    if not candidates:
        candidates = [v for nested in credentials.values() if isinstance(nested, dict)
                      for v in nested.values()
                      if isinstance(v, str) and not v.lstrip().startswith("-----BEGIN")]
    secret = max((c.strip() for c in candidates), key=len, default="")
    return "…" + secret[-4:] if len(secret) >= HINT_MIN_LENGTH else "…"
