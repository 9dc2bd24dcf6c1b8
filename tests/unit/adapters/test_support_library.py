"""Properties of the Zig support library, observed through adapters: JSON output
byte-identical to Python's `json.dumps` (ensure_ascii), lossless JSON reading,
form encoding identical to `urlencode`, and ISO timestamps read exactly."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from urllib.parse import urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.adapters.wasm import adapter

# Text with every kind of character the escapers treat differently, in runs
# long enough to cross the 16-byte SIMD blocks at every offset.
text = st.text(
    st.one_of(
        st.characters(exclude_categories=["Cs"]),
        st.sampled_from(['"', "\\", "\x00", "\x1f", "\x7f", "\x80", " ", "+", "&", "=", "%", "~"]),
        st.sampled_from(["a", "Z", "0", "-", ".", "_"]),
    ),
    max_size=200,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5),
    max_leaves=25,
)

PROPERTY = settings(max_examples=150, deadline=None)


@PROPERTY
@given(message=st.dictionaries(text, json_values, max_size=6))
def test_json_written_is_byte_identical_to_python(message: dict) -> None:
    request = adapter("echo").build_request({"message": message, "config": {}})
    assert request["body"] == json.dumps(message, separators=(",", ":"))


@PROPERTY
@given(value=json_values)
def test_json_read_and_written_back_is_lossless(value: object) -> None:
    payload = {"message": {"v": value}, "config": {}}
    raw = json.dumps(payload, ensure_ascii=False).encode()  # raw UTF-8 input, not escapes
    out = json.loads(adapter("echo").raw("hermes_build_request", raw))
    assert out["ok"]["echo"] == payload


def test_surrogate_pairs_and_lone_surrogates_are_read_correctly() -> None:
    raw = b'{"message": {"a": "\\ud83d\\ude00", "b": "\\ud800x", "c": "\\udc00"}, "config": {}}'
    out = json.loads(adapter("echo").raw("hermes_build_request", raw))
    assert out["ok"]["echo"]["message"] == {"a": "😀", "b": "\ufffdx", "c": "\ufffd"}


@PROPERTY
@given(body=text.filter(bool), to=text.filter(bool), sender=text.filter(bool))
def test_form_bodies_are_identical_to_urlencode(body: str, to: str, sender: str) -> None:
    request = adapter("twilio_sms").build_request(
        {
            "message": {"to": to, "body": body},
            "credentials": {"account_sid": "AC1", "auth_token": "t"},
            "config": {"from": sender},
            "now": 0,
            "attempt_id": "a",
        }
    )
    assert request["body"] == urlencode({"To": to, "From": sender, "Body": body})


@PROPERTY
@given(
    moment=st.datetimes(
        min_value=datetime.datetime(1971, 1, 1), max_value=datetime.datetime(2200, 1, 1)
    ),
    offset_minutes=st.integers(-14 * 60, 14 * 60),
)
def test_iso_timestamps_are_read_to_the_millisecond(
    moment: datetime.datetime, offset_minutes: int
) -> None:
    zone = datetime.timezone(datetime.timedelta(minutes=offset_minutes))
    aware = moment.replace(microsecond=moment.microsecond // 1000 * 1000, tzinfo=zone)
    stamp = aware.isoformat(timespec="milliseconds")
    report = json.dumps({"status": "DELIVRD", "message_id": "m1", "err": 0, "timestamp": stamp})
    signature = hmac.new(b"pw", report.encode(), hashlib.sha256).hexdigest()
    out = adapter("messente_sms").parse_callback(
        {
            "method": "POST",
            "url": "https://h/cb",
            "body": report,
            "headers": [["X-Messente-Signature", signature]],
            "credentials": {"password": "pw"},
        }
    )
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    assert out["receipts"][0]["timestamp"] == (aware - epoch) // datetime.timedelta(milliseconds=1)


def test_the_deepest_accepted_input_is_written_back_intact() -> None:
    echo = adapter("echo")
    for depth, accepted in ((62, True), (63, False), (50_000, False)):
        raw = '{"message": {"x": ' + "[" * depth + "1" + "]" * depth + '}, "config": {}}'
        out = json.loads(echo.raw("hermes_build_request", raw.encode()))
        if accepted:
            assert out["ok"]["echo"] == json.loads(raw)
        else:
            assert out["error"]["code"] == "adapter.bad_input"
