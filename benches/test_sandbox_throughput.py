"""Sandbox send-endpoint throughput (run: pytest benches/test_sandbox_throughput.py -s).

Reports requests/s per endpoint and the ratio to a same-run baseline; asserts
only that every request got a success answer, never a time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sandbox_load import measure, report


@pytest.mark.timeout(300)
def test_sandbox_send_throughput() -> None:
    results = measure(seconds=2.0, receipts=False)
    print("\n" + report(results, None))
    assert set(results) == {"baseline", "twilio", "messente", "ses", "fcm", "whatsapp"}
    assert all(rate > 0 and per_cpu > 0 for rate, per_cpu in results.values())
