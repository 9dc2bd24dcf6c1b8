"""Every shipped adapter keeps the ABI (adapters_wasm/ABI.md): exact exports, no
imports, a well-formed manifest, and a well-formed `ok`/`error` answer for any
input at all, never a trap, within the host's default limits."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.adapters.wasm import (
    ABI_EXPORTS,
    ADAPTERS_SRC,
    REPO,
    Adapter,
    adapter,
    load_build_script,
)

NAMES = [n for n in load_build_script().adapters(ADAPTERS_SRC) if n != "echo"]
ALL = [*NAMES, "echo"]
FUNCTIONS = ["hermes_build_request", "hermes_parse_response", "hermes_parse_callback"]
CALLBACK_AUTH = {
    "twilio_signature",
    "hub_signature_256",
    "messente_signature",
    "sns",
    "basic",
    "none",
}
RECEIPT_STATUSES = {
    "delivered",
    "failed",
    "undelivered",
    "read",
    "sent",
    "accepted",
    "bounced",
    "complained",
}
# Codes an adapter may put in `{"error": ...}` itself.
ADAPTER_ERROR_CODES = {"adapter.bad_input"}


def catalogue() -> set[str]:
    source = (REPO / "hermes_core_rs" / "src" / "errors.rs").read_text()
    return set(re.findall(r'=> \("([a-z_]+\.[a-z0-9_]+)"', source))


@pytest.mark.parametrize("name", ALL)
def test_module_exports_exactly_the_abi_and_imports_nothing(name: str) -> None:
    a = adapter(name)
    assert {e.name for e in a.module.exports} == ABI_EXPORTS
    assert list(a.module.imports) == []
    assert a.abi_version() == 1


@pytest.mark.parametrize("name", ALL)
def test_manifest_is_well_formed(name: str) -> None:
    m = adapter(name).manifest()
    assert m["name"] == name
    assert re.fullmatch(r"\d+\.\d+\.\d+", m["version"])
    assert m["abi"] == 1
    assert m["channels"] and set(m["channels"]) <= {"sms", "email", "push", "whatsapp"}
    assert m["allowed_hosts"] and all(
        re.fullmatch(r"(\*\.)?[a-z0-9.-]+", h) for h in m["allowed_hosts"]
    )
    assert all(isinstance(c, str) and c for c in m["credentials"])
    assert m["callback_auth"] in CALLBACK_AUTH
    assert m["token"] is None or (m["token"]["kind"] == "google_oauth" and m["token"]["scopes"])


def test_provider_codes_come_from_the_catalogue() -> None:
    used = set()
    for name in NAMES:
        used |= set(
            re.findall(r'"(provider\.[a-z_]+)"', (ADAPTERS_SRC / name / "main.zig").read_text())
        )
    assert used
    assert used <= catalogue()


def check_answer(fn: str, raw: bytes) -> None:
    """The shape every answer must have, whatever the input."""
    out = json.loads(raw.decode("utf-8"))
    assert isinstance(out, dict) and len(out) == 1, out
    if "error" in out:
        assert set(out["error"]) == {"code", "message"}
        assert out["error"]["code"] in ADAPTER_ERROR_CODES
        assert isinstance(out["error"]["message"], str)
        return
    ok = out["ok"]
    if fn == "hermes_build_request":
        assert isinstance(ok["method"], str) and ok["url"].startswith(("http://", "https://"))
        assert all(len(h) == 2 and all(isinstance(x, str) for x in h) for h in ok["headers"])
        assert isinstance(ok["body"], str)
    elif fn == "hermes_parse_response":
        assert ok["outcome"] in {"accepted", "rejected", "retryable"}
        if ok["outcome"] == "accepted":
            assert isinstance(ok["provider_message_id"], str) and ok["provider_message_id"]
        else:
            assert ok["code"].startswith("provider.")
    else:
        assert isinstance(ok["verified"], bool)
        for r in ok["receipts"]:
            assert r["status"] in RECEIPT_STATUSES
            assert isinstance(r["provider_message_id"], str)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
strings = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)


def plausible_input(fn: str) -> st.SearchStrategy[dict[str, Any]]:
    """Inputs shaped like the real ones, with arbitrary values where strings go."""
    headers = st.lists(st.tuples(strings, strings).map(list), max_size=3)
    if fn == "hermes_build_request":
        return st.fixed_dictionaries(
            {
                "message": st.fixed_dictionaries(
                    {"to": strings, "body": strings},
                    optional={
                        "subject": strings,
                        "html": strings,
                        "title": strings,
                        "data": json_values,
                    },
                ),
                "credentials": st.dictionaries(strings, strings, max_size=4),
                "config": st.dictionaries(strings, json_values, max_size=4),
                "now": st.integers(0, 2**42),
                "attempt_id": strings,
            },
            optional={"token": strings},
        )
    if fn == "hermes_parse_response":
        return st.fixed_dictionaries(
            {
                "status": st.integers(100, 599),
                "headers": headers,
                "body": strings | json_values.map(json.dumps),
            }
        )
    return st.fixed_dictionaries(
        {
            "method": strings,
            "url": strings,
            "headers": headers,
            "body": strings | json_values.map(json.dumps),
            "credentials": st.dictionaries(strings, strings, max_size=3),
        }
    )


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("name", ALL)
@FUZZ
@given(data=st.data())
def test_any_input_gets_a_well_formed_answer(name: str, fn: str, data: st.DataObject) -> None:
    a = adapter(name)
    payload = data.draw(
        st.one_of(
            json_values.map(lambda v: json.dumps(v).encode()),
            plausible_input(fn).map(lambda v: json.dumps(v).encode()),
            st.binary(max_size=64),
        )
    )
    check_answer(fn, a.raw(fn, payload))


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("name", ALL)
def test_hostile_inputs_are_refused_not_trapped(name: str, fn: str) -> None:
    a = adapter(name)
    for payload in [
        b"",
        b"{",
        b"[" * 10_000,
        b'{"a":' * 5_000,
        b"\xff\xfe",
        b"null",
        b'"\\ud800"',
        json.dumps({"message": {"to": "x" * 300_000}}).encode(),
    ]:
        check_answer(fn, a.raw(fn, payload))


def limited_call(a: Adapter, fn: str, payload: bytes, fuel: int, memory: int) -> tuple[bytes, int]:
    """A call under the host's default limits; returns the output and the fuel used."""
    config = wasmtime.Config()
    config.consume_fuel = True
    engine = wasmtime.Engine(config)
    module = wasmtime.Module(engine, a.path.read_bytes())
    store = wasmtime.Store(engine)
    store.set_fuel(fuel)
    store.set_limits(memory_size=memory)
    exports = wasmtime.Instance(store, module, []).exports(store)
    ptr = exports["hermes_alloc"](store, len(payload))
    if payload:
        exports["memory"].write(store, payload, ptr)
    packed = exports[fn](store, ptr, len(payload)) & (1 << 64) - 1
    out = exports["memory"].read(store, packed >> 32, (packed >> 32) + (packed & 0xFFFFFFFF))
    return bytes(out), fuel - store.get_fuel()


TYPICAL = {
    "twilio_sms": {
        "credentials": {"account_sid": "AC1", "auth_token": "t"},
        "config": {"from": "+15005550006", "callback_url": "https://h.example/cb"},
    },
    "messente_sms": {"credentials": {"username": "u", "password": "p"}, "config": {}},
    "ses_email": {
        "credentials": {"access_key_id": "AK", "secret_access_key": "s"},
        "config": {"region": "eu-west-1", "from": "a@example.com"},
    },
    "fcm_push": {"credentials": {}, "config": {"project_id": "p"}, "token": "ya29.x"},
    "whatsapp_cloud": {"credentials": {"access_token": "t"}, "config": {"phone_number_id": "1"}},
    "echo": {"credentials": {}, "config": {}},
}


@pytest.mark.parametrize("name", ALL)
def test_a_typical_send_fits_the_default_limits_with_room_to_spare(name: str) -> None:
    payload = {
        "message": {
            "id": "m",
            "channel": "sms",
            "to": "+15005550006",
            "subject": "Hello",
            "body": "Your code is 123456 😀",
        },
        "now": 1_767_225_600_000,
        "attempt_id": "a",
        **TYPICAL[name],
    }
    out, fuel = limited_call(
        adapter(name),
        "hermes_build_request",
        json.dumps(payload).encode(),
        fuel=50_000_000,
        memory=16 << 20,
    )
    assert "ok" in json.loads(out)
    assert fuel < 1_000_000  # ABI.md: "well under 1 M fuel"


@pytest.mark.parametrize("name", ALL)
def test_a_long_body_fits_the_default_limits(name: str) -> None:
    payload = {
        "message": {
            "id": "m",
            "channel": "sms",
            "to": "+15005550006",
            "subject": "Hello",
            "body": "Grüße 😀 & " * 6_000,
        },
        "now": 1_767_225_600_000,
        "attempt_id": "a",
        **TYPICAL[name],
    }
    out, _ = limited_call(
        adapter(name),
        "hermes_build_request",
        json.dumps(payload).encode(),
        fuel=50_000_000,
        memory=16 << 20,
    )
    assert "ok" in json.loads(out)
