"""The Python side of the error catalogue.

Codes, statuses and titles are defined once in the Rust core (`_core.error_codes()`);
`Code` names the ones the Python shell raises, and a unit test checks that each
exists in the core's catalogue.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import Any

import msgspec

from hermes import _core


class Code(StrEnum):
    REQUEST_MALFORMED = "request.malformed"
    REQUEST_INVALID = "request.invalid"
    REQUEST_TOO_LARGE = "request.too_large"
    REQUEST_NOT_FOUND = "request.not_found"
    REQUEST_METHOD_NOT_ALLOWED = "request.method_not_allowed"
    REQUEST_UNSUPPORTED_MEDIA_TYPE = "request.unsupported_media_type"
    MESSAGE_ALREADY_FINAL = "message.already_final"
    CASCADE_STEP_LEFT = "cascade.step_left"
    AUTH_MISSING = "auth.missing"
    AUTH_INVALID = "auth.invalid"
    AUTH_FORBIDDEN = "auth.forbidden"
    RECIPIENT_UNKNOWN_CONTACT = "recipient.unknown_contact"
    CASCADE_EXPIRES_IN_PAST = "cascade.expires_in_past"
    COMPLIANCE_SUPPRESSED = "compliance.suppressed"
    IDEMPOTENCY_CONFLICT = "idempotency.conflict"
    RATE_LIMIT_EXCEEDED = "rate_limit.exceeded"
    QUOTA_EXCEEDED = "quota.exceeded"
    WEBHOOK_INVALID_URL = "webhook.invalid_url"
    WEBHOOK_TOO_MANY_ENDPOINTS = "webhook.too_many_endpoints"
    TARGET_NOT_ALLOWED = "target.not_allowed"
    ACCOUNT_INVALID = "account.invalid"
    ACCOUNT_CREDENTIALS_UNREADABLE = "account.credentials_unreadable"
    ADAPTER_INVALID_MODULE = "adapter.invalid_module"
    ADAPTER_VERSION_EXISTS = "adapter.version_exists"
    ADAPTER_GOLDEN_VECTOR_FAILED = "adapter.golden_vector_failed"
    ADAPTER_SMOKE_TEST_FAILED = "adapter.smoke_test_failed"
    ADAPTER_QUARANTINED = "adapter.quarantined"
    SERVICE_OVERLOADED = "service.overloaded"
    INTERNAL_ERROR = "internal.error"
    DEPENDENCY_UNAVAILABLE = "internal.dependency_unavailable"


class CatalogueEntry(msgspec.Struct, frozen=True):
    code: str
    status: int
    title: str
    retryable: bool


@cache
def catalogue() -> dict[str, CatalogueEntry]:
    return {e["code"]: CatalogueEntry(**e) for e in _core.error_codes()}


def entry(code: str) -> CatalogueEntry:
    return catalogue()[code]


class FieldError(msgspec.Struct, frozen=True, omit_defaults=True):
    """One violation: which field (a dotted path or JSON pointer) and why."""

    code: str
    field: str | None = None
    detail: str | None = None


class HermesError(Exception):
    """An error with a catalogue code; the API renders it as problem+json."""

    def __init__(
        self,
        code: str,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        info = entry(code)  # unknown codes fail loudly, at the raise site
        super().__init__(detail or info.title)
        self.code = code
        self.status = info.status
        self.title = info.title
        self.detail = detail or info.title
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra or {}
