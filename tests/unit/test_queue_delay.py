"""The queue-delay meter and how the API combines workers' reports (load shedding)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from hermes.cascade.runner import Inbox
from hermes.infra.redis.queue_delay import QueueDelayMeter, Report, queue_delay

NOW = 1_800_000_000.0


@dataclass
class Meta:
    consumer: str
    num_pending: int
    num_delivered: int
    timestamp: datetime


@dataclass
class Msg:
    subject: str
    metadata: Meta


def _msg(subject: str, consumer: str, pending: int, age_s: float, delivered: int = 1) -> Msg:
    at = datetime.fromtimestamp(NOW - age_s, tz=UTC)
    return Msg(subject, Meta(consumer, pending, delivered, at))


def test_a_batch_reports_its_oldest_wait_and_each_consumers_backlog() -> None:
    meter = QueueDelayMeter(clock=lambda: NOW)
    # The engine takes events first, so a turn's commands can be older than its events.
    meter.observe([_msg("hermes.events.3", "eng-events", 40, 2.0),
                   _msg("hermes.events.3", "eng-events", 39, 2.5),
                   _msg("hermes.cascade.3", "eng-commands", 900, 3.0, delivered=2),
                   _msg("hermes.cascade.3", "eng-commands", 899, 2.2)],
                  held={"events": 5, "cascade": 100})
    meter.observe([_msg("hermes.cascade.3", "eng-commands", 800, 9.0, delivered=2)])
    report = meter.take()
    # Each consumer's first first delivery; a redelivery is no news.
    assert report.wait == pytest.approx(2.2)
    assert report.backlog["eng-events"][0] == 39 + 5
    assert report.backlog["eng-commands"][0] == 800 + 0  # the latest pending count
    assert report.backlog["eng-commands"][1] > report.backlog["eng-events"][1] * 0.99
    empty = meter.take()
    assert empty.wait == 0.0 and empty.backlog == {}


def test_a_message_held_back_counts_its_wait_so_far() -> None:
    meter = QueueDelayMeter(clock=lambda: NOW)
    meter.observe_waiting(_msg("hermes.cascade.1", "c", 10, 7.5))
    meter.observe_waiting(_msg("hermes.cascade.1", "c", 10, 30.0, delivered=3))
    assert meter.take().wait == 7.5


def test_the_expected_wait_sums_the_rates_of_workers_sharing_a_consumer() -> None:
    a = Report(at=NOW, wait=0.5, backlog={"delivery": (6000, 300.0), "eng-a": (100, 50.0)})
    b = Report(at=NOW, wait=0.2, backlog={"delivery": (6100, 300.0), "eng-b": (10, 0.0)})
    assert queue_delay([a, b]) == 6100 / 600
    assert queue_delay([a]) == 20.0
    assert queue_delay([Report(at=NOW, wait=12.0)]) == 12.0
    assert queue_delay([]) == 0.0


def test_the_engine_takes_events_before_commands_and_keeps_each_in_order() -> None:
    inbox = Inbox()
    for subject in ("hermes.cascade.1", "hermes.events.1", "hermes.cascade.2",
                    "hermes.events.2"):
        inbox.put_nowait(_msg(subject, "c", 0, 0.0))  # type: ignore[arg-type]
    assert inbox.held() == {"events": 2, "cascade": 2}
    assert [h.subject for h in inbox.heads()] == ["hermes.events.1", "hermes.cascade.1"]
    order = [inbox.get_nowait().subject for _ in range(4)]
    assert order == ["hermes.events.1", "hermes.events.2", "hermes.cascade.1",
                     "hermes.cascade.2"]
    assert inbox.empty()
