"""Latency histograms (HdrHistogram) and the open-loop schedule the load generator keeps.

Latencies are recorded in microseconds, from 1 µs to one hour, to 3 significant digits;
percentiles are read back in milliseconds. A histogram travels between processes as
HdrHistogram's compressed base64 encoding, so the harness can merge them and keep them in
its JSON output.

Coordinated omission: a client that waits for each answer before sending the next does
not send the requests a stalled server would have received during the stall, so timing
each request from the moment it was sent hides the stall. In open loop the load generator
fixes every request's send time in advance (`Schedule`) and times each one from that
scheduled moment; a request sent late because the connection was still busy carries the
wait in its latency. `replay` computes those latencies for given service times, which is
what a test checks against HdrHistogram's own correction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
DIGITS = 3
# Percentiles reported everywhere (key, percentile).
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))


def new(digits: int = DIGITS) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def record_s(h: HdrHistogram, seconds: float) -> None:
    """Record one latency given in seconds (clamped into the histogram's range)."""
    h.record_value(min(HIGHEST_US, max(LOWEST_US, round(seconds * 1e6))))


def summary(h: HdrHistogram) -> dict[str, float]:
    """p50 ... p99.9, max and mean in milliseconds, and the count; {} when empty."""
    n = h.get_total_count()
    if not n:
        return {}
    out = {key: h.get_value_at_percentile(q) / 1000 for key, q in PERCENTILES}
    out.update(max=h.get_max_value() / 1000, mean=h.get_mean_value() / 1000, count=float(n))
    return out


def from_seconds(values: Iterable[float]) -> HdrHistogram:
    h = new()
    for v in values:
        record_s(h, v)
    return h


def encode(h: HdrHistogram) -> str:
    return bytes(h.encode()).decode("ascii")


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text.encode("ascii"))


def merge(encoded: Iterable[str]) -> HdrHistogram:
    total = new()
    for text in encoded:
        total.add(decode(text))
    return total


class Schedule:
    """Open loop at `rate` requests/s in total over `clients` connections: client `n` sends
    its `k`-th request at `start + (n / clients + k) * clients / rate`, whatever happened to
    the previous ones."""

    def __init__(self, start: float, rate: float, clients: int) -> None:
        self.start, self.clients = start, clients
        self.interval = clients / rate

    def at(self, client: int, k: int) -> float:
        return self.start + (client / self.clients + k) * self.interval


def replay(schedule: Schedule, client: int, service_s: Sequence[float]) -> list[float]:
    """Latencies, from each scheduled time, of one connection with one request in flight
    whose answers take `service_s`: a request is sent at its scheduled time or when the
    previous answer arrives, whichever is later (what the load generator's client does)."""
    out, free = [], float("-inf")
    for k, service in enumerate(service_s):
        scheduled = schedule.at(client, k)
        done = max(scheduled, free) + service
        out.append(done - scheduled)
        free = done
    return out
