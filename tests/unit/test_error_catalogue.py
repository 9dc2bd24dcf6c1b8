"""The core's error catalogue has every code validation, routing, adapters and providers report."""

from __future__ import annotations

from hermes import _core

# The codes the Python side names (API problem bodies, NATS ack decisions,
# delivery results); each must exist with a sensible status.
EXPECTED = {
    "recipient.invalid_phone": 422, "recipient.invalid_email": 422,
    "recipient.invalid_push_token": 422, "recipient.missing_address": 422,
    "recipient.country_not_allowed": 422, "content.empty": 422,
    "content.control_characters": 422, "content.too_many_segments": 422,
    "content.subject_too_long": 422, "content.too_large": 413,
    "content.push_payload_too_large": 413, "cascade.unknown_channel": 422,
    "cascade.empty": 422, "cascade.timeout_out_of_range": 422,
    "cascade.expires_in_past": 422, "cascade.send_at_too_far": 422,
    "policy.channel_disabled": 403, "routing.no_provider": 503,
    "adapter.timeout": 504, "provider.rate_limited": 429, "provider.unavailable": 503,
    "rate_limit.exceeded": 429, "quota.exceeded": 429,
    "idempotency.conflict": 422, "idempotency.in_progress": 409,
    "compliance.suppressed": 422,
}
DEFINITE = ["adapter.out_of_fuel", "adapter.memory_exceeded", "adapter.trap",
            "adapter.bad_output", "adapter.host_not_allowed", "adapter.invalid_module",
            "provider.rejected", "provider.invalid_recipient", "provider.auth_failed"]
TRANSIENT = ["adapter.timeout", "provider.rate_limited", "provider.unavailable",
             "rate_limit.exceeded", "routing.no_provider", "idempotency.in_progress"]


def catalogue() -> dict[str, _core._ErrorCodeInfo]:
    return {e["code"]: e for e in _core.error_codes()}


def test_codes_have_expected_statuses() -> None:
    got = catalogue()
    assert {c: got[c]["status"] for c in EXPECTED if c in got} == EXPECTED


def test_retryability_drives_the_nats_ack_decision() -> None:
    got = catalogue()
    assert [c for c in DEFINITE if got[c]["retryable"]] == []
    assert [c for c in TRANSIENT if not got[c]["retryable"]] == []


def test_codes_are_dotted_snake_case_and_titled() -> None:
    for code, e in catalogue().items():
        area, _, name = code.partition(".")
        assert area and name and code == code.lower() and " " not in code
        assert e["title"].strip() and not e["title"].endswith(".")


def test_every_violation_code_validation_can_return_is_catalogued() -> None:
    r = _core.validate_message({"steps": []}, None, 0)
    assert {v["code"] for v in r.violations} <= set(catalogue())
