"""Validation layers 3-6 through `hermes._core`: every violation at once, with its field."""

from __future__ import annotations

import msgspec
import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hermes import _core

NOW = 1_800_000_000_000


def message(**over: object) -> dict[str, object]:
    m: dict[str, object] = {
        "phone": "+14155552671",
        "email": "Ana@Example.com",
        "body": "Your code is 123456",
        "subject": "Your code",
        "steps": [{"channel": "sms", "timeout_ms": 30_000}, {"channel": "email"}],
    }
    m.update(over)
    return m


def fields(result: _core.ValidationResult) -> list[tuple[str, str]]:
    return [(v["code"], v["field"]) for v in result.violations]


def test_a_valid_message_comes_back_normalised() -> None:
    r = _core.validate_message(message(), None, NOW)
    assert r.ok and r.violations == []
    assert r.phone == {"e164": "+14155552671", "country": "US", "line_type": "fixed_line_or_mobile"}
    assert r.email == "Ana@example.com"
    assert r.sms == {"encoding": "GSM-7", "segments": 1, "characters": 19, "units": 19}
    assert r.to_dict()["ok"] is True


def test_every_violation_is_reported_with_its_field() -> None:
    r = _core.validate_message(
        message(
            phone="+1 099 555 0123",
            email="a@b@example.com",
            body="bell\x07",
            steps=[{"channel": "fax"}, {"channel": "sms", "timeout_ms": 500}],
            expires_at_ms=NOW,
        ),
        {"channels": ["email"]},
        NOW,
    )
    assert not r.ok and r.phone is None
    assert fields(r) == [
        ("cascade.unknown_channel", "steps[0].channel"),
        ("cascade.timeout_out_of_range", "steps[1].timeout"),
        ("cascade.expires_in_past", "expires_at"),
        ("recipient.invalid_phone", "to.phone"),
        ("recipient.invalid_email", "to.email"),
        ("content.control_characters", "body"),
        ("policy.channel_disabled", "steps[1].channel"),
    ]
    codes = {e["code"] for e in _core.error_codes()}
    assert all(v["code"] in codes and v["detail"] for v in r.violations)


def test_country_and_segment_policy() -> None:
    policy = {"allowed_countries": ["gb"], "max_segments": 2}
    r = _core.validate_message(message(body="a" * 307), policy, NOW)
    assert fields(r) == [
        ("recipient.country_not_allowed", "to.phone"),
        ("content.too_many_segments", "body"),
    ]
    ok = _core.validate_message(message(phone="+44 7400 123456", body="a" * 306), policy, NOW)
    assert ok.ok and ok.phone is not None and ok.phone["country"] == "GB"


def test_email_idna_and_push_tokens_are_normalised() -> None:
    r = _core.validate_message(
        message(email="hans@Bücher.example", push_token="AB" * 32,
                steps=[{"channel": "email"}, {"channel": "push"}]),
        None, NOW,
    )
    assert r.ok, r.violations
    assert r.email == "hans@xn--bcher-kva.example"
    assert r.push_token == {"kind": "apns", "token": "ab" * 32}


def test_batches_accept_dicts_or_json_bytes_and_keep_order() -> None:
    msgs = [message(), message(email="nope"), message(phone="+44 7400 123456")]
    from_dicts = _core.validate_batch(msgs, None, NOW)
    from_bytes = _core.validate_batch(msgspec.json.encode(msgs), None, NOW)
    assert [r.ok for r in from_dicts] == [True, False, True]
    assert [r.to_dict() for r in from_dicts] == [r.to_dict() for r in from_bytes]


def test_bad_input_shapes_raise() -> None:
    with pytest.raises(ValueError, match="unknown message key"):
        _core.validate_message({"phnoe": "+1"}, None, NOW)
    with pytest.raises(TypeError):
        _core.validate_message({"phone": 5}, None, NOW)
    with pytest.raises(ValueError):
        _core.validate_batch(b"{not json", None, NOW)
    with pytest.raises(ValueError, match="unknown channel"):
        _core.validate_message(message(), {"channels": ["fax"]}, NOW)


# Segment counts: worked examples (3GPP TS 23.038/23.040).
@pytest.mark.parametrize(
    ("body", "encoding", "units", "segments"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),               # extension table: two septets each
        ("€" * 80 + "a", "GSM-7", 161, 2),
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),  # escape pair not split at 153
        ("Grüße aus Köln ¿qué? ΔΣΩ", "GSM-7", 24, 1),
        ("я" * 70, "UCS-2", 70, 1),
        ("я" * 71, "UCS-2", 71, 2),
        ("я" * 134, "UCS-2", 134, 2),
        ("я" * 135, "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),               # emoji: a surrogate pair, two units
        ("😀" * 36, "UCS-2", 72, 2),
        ("я" * 66 + "😀" + "я" * 66, "UCS-2", 134, 3),  # surrogate pair not split at 67
        ("Price: 5€ `quoted`", "UCS-2", 18, 1),     # the backtick is not GSM-7
    ],
)
def test_sms_segments(body: str, encoding: str, units: int, segments: int) -> None:
    sms_only = message(body=body, steps=[{"channel": "sms"}])
    r = _core.validate_message(sms_only, {"max_segments": 99}, NOW)
    assert r.sms == {"encoding": encoding, "segments": segments,
                     "characters": len(body), "units": units}


_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXT = "^{}\\[~]|€"


def reference_segments(body: str) -> tuple[str, int, int]:
    """The rules written out plainly: fill parts greedily, never splitting a character."""
    if all(c in _GSM_BASIC or c in _GSM_EXT for c in body):
        costs, single, part, enc = [1 + (c in _GSM_EXT) for c in body], 160, 153, "GSM-7"
    else:
        costs = [len(c.encode("utf-16-le")) // 2 for c in body]
        single, part, enc = 70, 67, "UCS-2"
    total = sum(costs)
    if total <= single:
        return enc, total, 1 if total else 0
    parts, used = 1, 0
    for cost in costs:
        if used + cost > part:
            parts, used = parts + 1, 0
        used += cost
    return enc, total, parts


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "Z", " ", "€", "{", "é", "Ω", "я", "😀", "👍🏽", "`"]),
                max_size=400).map("".join))
def test_segments_match_the_rules_written_plainly(body: str) -> None:
    r = _core.validate_message(message(body=body, html="<p>hi</p>", steps=[{"channel": "email"}]),
                               None, NOW)
    assert r.sms is not None, r.violations
    assert (r.sms["encoding"], r.sms["units"], r.sms["segments"]) == reference_segments(body)


# Phone numbers against the `phonenumbers` library (Python port of libphonenumber)
# as an oracle: start from its example numbers for every region and type, then
# mutate digits, so both valid and invalid numbers near real ranges are tried.
_TYPES = [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE,
          phonenumbers.PhoneNumberType.TOLL_FREE]
_EXAMPLES = sorted(
    phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
    for region in phonenumbers.SUPPORTED_REGIONS
    for t in _TYPES
    if (n := phonenumbers.example_number_for_type(region, t)) is not None
)


def test_the_oracle_has_the_cores_metadata_release() -> None:
    # The Rust crate is pinned to phonenumber 0.3.10+9.0.33; ranges change
    # between libphonenumber releases, so the oracle must be the same release.
    assert phonenumbers.__version__ == "9.0.33"


def validate_phone(text: str) -> _core.ValidationResult:
    return _core.validate_message({"phone": text, "steps": [{"channel": "sms"}], "body": "x"},
                                  None, NOW)


def oracle(text: str) -> tuple[bool, str | None, str | None]:
    try:
        n = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return (False, None, None)
    if n.extension or not phonenumbers.is_valid_number(n):
        return (False, None, None)
    region = phonenumbers.region_code_for_number(n)
    return (True, phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164),
            None if region == "001" else region)


_CALLING_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def _national_prefix(code: int) -> str:
    region = phonenumbers.region_code_for_country_code(code)
    meta = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    return (meta.national_prefix if meta is not None else None) or "0"


@st.composite
def phone_inputs(draw: st.DrawFn) -> str:
    digits = list(draw(st.sampled_from(_EXAMPLES))[1:])
    if draw(st.integers(0, 4)) == 0:
        # Write the national prefix after the country code (+44 07400...).
        code = phonenumbers.parse("+" + "".join(digits), None).country_code or 0
        cut = len(str(code))
        digits[cut:cut] = list(_national_prefix(code))
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(digits) - 1))
        d = draw(st.sampled_from("0123456789"))
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        if op == "replace":
            digits[i] = d
        elif op == "insert":
            digits.insert(i, d)
        elif len(digits) > 1:
            del digits[i]
    text = "+" + "".join(digits)
    if draw(st.booleans()):
        # The international format with spaces, as people write it.
        try:
            text = phonenumbers.format_number(phonenumbers.parse(text, None),
                                              phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        except phonenumbers.NumberParseException:
            pass
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(phone_inputs())
def test_phone_validation_agrees_with_libphonenumber(text: str) -> None:
    r = validate_phone(text)
    valid, e164, region = oracle(text)
    assert r.ok == valid, (text, r.violations)
    if valid:
        assert r.phone is not None
        assert (r.phone["e164"], r.phone["country"]) == (e164, region)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_CALLING_CODES), st.text("0123456789", min_size=2, max_size=14))
def test_random_numbers_under_every_calling_code_agree_with_libphonenumber(
    code: int, national: str
) -> None:
    text = f"+{code}{national}"
    r = validate_phone(text)
    valid, e164, region = oracle(text)
    assert r.ok == valid, (text, r.violations)
    if valid:
        assert r.phone is not None
        assert (r.phone["e164"], r.phone["country"]) == (e164, region)


def test_every_example_number_is_valid_with_the_same_e164_and_region() -> None:
    disagreements = []
    for text in _EXAMPLES:
        r = validate_phone(text)
        valid, e164, region = oracle(text)
        got = (r.ok, r.phone["e164"] if r.phone else None, r.phone["country"] if r.phone else None)
        if got != (valid, e164, region):
            disagreements.append((text, got, (valid, e164, region)))
    assert disagreements == []
