"""The golden vectors shipped with adapters pass against a fresh build of their sources, and
the gate's runner catches a module that does not match them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hermes import _core
from hermes.domain.errors import HermesError
from hermes.providers import gate
from hermes.providers.registry import AdapterRegistry
from tests.unit.adapters.wasm import ADAPTERS_SRC, BUILTIN, adapter

SHIPPED = sorted(p.parent.name for p in ADAPTERS_SRC.glob("*/golden.json"))


def registry(tmp_path: Path) -> AdapterRegistry:
    return AdapterRegistry(_core.AdapterRuntime(tmp_path))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_golden_vectors_pass(name: str, tmp_path: Path) -> None:
    adapter(name)  # rebuilt if its sources changed
    reg = registry(tmp_path)
    loaded = reg.load((BUILTIN / f"{name}.wasm").read_bytes())
    vectors = gate.parse_golden((ADAPTERS_SRC / name / "golden.json").read_bytes(), loaded)
    assert vectors is not None and len(vectors) >= 10
    assert gate.run_golden(reg, loaded, vectors)["status"] == "passed"


def test_another_adapter_fails_twilio_vectors(tmp_path: Path) -> None:
    adapter("messente_sms")
    reg = registry(tmp_path)
    loaded = reg.load((BUILTIN / "messente_sms.wasm").read_bytes())
    raw = (ADAPTERS_SRC / "twilio_sms" / "golden.json").read_bytes()
    with pytest.raises(HermesError) as refused:
        gate.parse_golden(raw, loaded)  # the file names twilio_sms
    assert refused.value.code == "request.invalid"
    doc = json.loads(raw)
    del doc["name"]
    vectors = gate.parse_golden(json.dumps(doc).encode(), loaded)
    assert vectors is not None
    with pytest.raises(HermesError) as failed:
        gate.run_golden(reg, loaded, vectors)
    assert failed.value.code == "adapter.golden_vector_failed"
    assert "sms from a number" in failed.value.detail
