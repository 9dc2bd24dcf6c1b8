"""What the batch endpoint does per message before the commit, against a plain pure-Python version.

Hermes: `decode_batch` + `decode_items` (msgspec, each item on its own so a bad one is
reported at its index) + `validate_items` (the drafts, one `_core.validate_batch` call,
the normalised specs and the rows to insert, JSON-encoded). Baseline, in the same
process on the same 500-message body: `json.loads`, the pure-Python validator of
`benches/test_validate_py.py` (phonenumbers + email-validator + segment counting +
plan checks), and a row dict with a `json.dumps`-ed spec. Both end with one row per
message, ready for the INSERT. Rates are per CPU-second of this process.

    .venv/bin/pytest benches/test_ingest_prepare.py          # pytest-benchmark timings
    .venv/bin/python benches/test_ingest_prepare.py          # messages per CPU-second, ratio
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hermes.api.batch import decode_batch, decode_items, validate_items
from hermes.domain.tenancy import Principal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benches.harness.payloads import batches

_spec = importlib.util.spec_from_file_location(
    "validate_baseline", Path(__file__).with_name("test_validate_py.py"))
assert _spec is not None and _spec.loader is not None
_baseline = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_baseline)

BATCH = 500
BODY = batches("seed", BATCH, count=1)[0].encode()
PRINCIPAL = Principal(tenant_id=uuid.uuid4(), tenant_name="bench", key_id=uuid.uuid4(),
                      mode="test", scopes=("send",))
CHANNEL_ADDRESS = {"sms": "phone", "email": "email", "push": "push_token"}


def hermes_prepare(body: bytes) -> int:
    errors: dict[int, Any] = {}
    decoded = decode_items(decode_batch(body), errors)
    rows = validate_items(PRINCIPAL, decoded, {}, errors, shard_count=16,
                          now_ms=time.time_ns() // 1_000_000)
    assert not errors, errors
    return len(rows)


def python_prepare(body: bytes) -> int:
    now_ms = time.time_ns() // 1_000_000
    rows = []
    for m in json.loads(body)["messages"]:
        timeout = int(m["timeout_per_step"].removesuffix("s")) * 1000
        flat = {**m["to"], "body": m["body"], "subject": m["body"].splitlines()[0],
                "steps": [{"channel": c, "timeout_ms": timeout} for c in m["cascade"]]}
        result = _baseline.python_validate(flat, _baseline.POLICY, now_ms)
        assert result["ok"], result
        spec = {"to": {"phone": result["phone"]["e164"], "email": result["email"],
                       "push_token": m["to"]["push_token"]},
                "content": {"body": m["body"], "subject": flat["subject"]},
                "steps": flat["steps"], "country": result["phone"]["country"]}
        rows.append({"id": uuid.uuid4(), "tenant_id": PRINCIPAL.tenant_id, "status": "queued",
                     "spec": json.dumps(spec), "created_at": now_ms})
    return len(rows)


def per_cpu_second(fn: Callable[[bytes], int], min_cpu_s: float = 1.0) -> float:
    """Messages per CPU-second, best of rounds of at least a tenth of `min_cpu_s` each."""
    best, spent = 0.0, 0.0
    while spent < min_cpu_s:
        n, start = 0, time.process_time()
        while time.process_time() - start < min_cpu_s / 10:
            n += fn(BODY)
        cpu = time.process_time() - start
        spent += cpu
        best = max(best, n / cpu)
    return best


def test_hermes_prepare(benchmark: Any) -> None:
    assert benchmark(hermes_prepare, BODY) == BATCH


def test_python_prepare(benchmark: Any) -> None:
    assert benchmark(python_prepare, BODY) == BATCH


def main() -> None:
    hermes, python = per_cpu_second(hermes_prepare, 3.0), per_cpu_second(python_prepare, 3.0)
    print(f"Hermes (msgspec + core): {hermes:,.0f} messages per CPU-second "
          f"({1e6 / hermes:.1f} us each)")
    print(f"pure Python:             {python:,.0f} messages per CPU-second "
          f"({1e6 / python:.1f} us each)")
    print(f"ratio: {hermes / python:.1f}x")


if __name__ == "__main__":
    main()
