"""The timer wheel from Python: ids as UUID bytes, batches, order of expiry."""

from __future__ import annotations

import heapq
import random
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes._core import Wheel

DAY_MS = 24 * 3_600_000


def test_a_timer_fires_at_its_deadline_not_before() -> None:
    wheel = Wheel(1_000)
    mid = uuid.uuid4()
    wheel.insert(mid.bytes, 31_000)
    assert wheel.deadline(mid.bytes) == 31_000
    assert wheel.advance(30_999) == []
    fired = wheel.advance(31_000)
    assert fired == [(mid.bytes, 31_000)]
    assert uuid.UUID(bytes=fired[0][0]) == mid
    assert len(wheel) == 0
    assert wheel.now == 31_000


def test_int_and_bytes_name_the_same_message() -> None:
    wheel = Wheel(0)
    mid = uuid.uuid4()
    wheel.insert(mid.int, 10)
    assert wheel.deadline(mid.bytes) == 10
    assert wheel.cancel(mid.bytes)
    assert not wheel.cancel(mid.int)


def test_insert_replaces_and_reschedule_moves() -> None:
    wheel = Wheel(0)
    a, b = uuid.uuid4().bytes, uuid.uuid4().bytes
    wheel.insert(a, 50_000)
    wheel.insert(a, 20)
    assert len(wheel) == 1
    assert not wheel.reschedule(b, 5), "rescheduling an unknown id sets nothing"
    assert wheel.deadline(b) is None
    assert wheel.reschedule(a, 40 * DAY_MS)
    assert wheel.advance(35 * DAY_MS) == []
    assert wheel.advance(40 * DAY_MS) == [(a, 40 * DAY_MS)]


def test_past_deadlines_fire_on_the_next_advance_first() -> None:
    wheel = Wheel(10_000)
    late, due, later = (uuid.uuid4().bytes for _ in range(3))
    wheel.insert(later, 10_005)
    wheel.insert(late, 3)
    wheel.insert(due, 10_000)
    assert wheel.next_deadline() == 10_000
    fired = wheel.advance(10_000)
    assert sorted(fired) == sorted([(late, 3), (due, 10_000)])
    assert wheel.advance(10_005) == [(later, 10_005)]


def test_batches_match_a_heapq_model() -> None:
    rng = random.Random(7)
    start = 1_764_000_000_000
    wheel = Wheel(start)
    ids = [uuid.UUID(int=rng.getrandbits(128)).bytes for _ in range(5_000)]
    deadlines = [start + rng.randrange(0, 36 * DAY_MS) for _ in ids]
    wheel.insert_many(b"".join(ids), deadlines)
    cancelled = ids[::3]
    assert wheel.cancel_many(b"".join(cancelled)) == len(cancelled)
    assert wheel.cancel_many(b"".join(cancelled)) == 0
    heap = [(d, i) for i, d in zip(ids, deadlines, strict=True) if i not in set(cancelled)]
    heapq.heapify(heap)
    assert len(wheel) == len(heap)

    now = start
    while heap:
        now += rng.randrange(1, 2 * DAY_MS)
        expected = []
        while heap and heap[0][0] <= now:
            expected.append(heapq.heappop(heap))
        fired = wheel.advance(now)
        assert [d for _, d in fired] == sorted(d for _, d in fired), "deadline order"
        assert sorted((d, i) for i, d in fired) == expected
    assert len(wheel) == 0


def test_batches_take_a_list_of_bytes_or_ints_as_well_as_packed_bytes() -> None:
    wheel = Wheel(0)
    mids = [uuid.uuid4() for _ in range(3)]
    wheel.insert_many([mids[0].bytes, mids[1].int], [5, 6])
    wheel.insert_many(mids[2].bytes, [7])
    assert [wheel.deadline(m.bytes) for m in mids] == [5, 6, 7]
    assert wheel.cancel_many([mids[0].int, mids[2].bytes, uuid.uuid4().bytes]) == 2
    assert wheel.advance(10) == [(mids[1].bytes, 6)]
    with pytest.raises(TypeError):
        wheel.cancel_many("not ids")  # type: ignore[arg-type]


def test_advance_packed_returns_the_same_timers() -> None:
    wheel = Wheel(0)
    ids = [uuid.uuid4().bytes for _ in range(100)]
    wheel.insert_many(b"".join(ids), list(range(1, 101)))
    packed, deadlines = wheel.advance_packed(100)
    assert deadlines == list(range(1, 101))
    assert [packed[i : i + 16] for i in range(0, len(packed), 16)] == ids


def test_bad_ids_and_times_are_rejected() -> None:
    wheel = Wheel(0)
    with pytest.raises(ValueError, match="16 bytes"):
        wheel.insert(b"short", 1)
    with pytest.raises(TypeError):
        wheel.insert("not-bytes", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="16 \\* n"):
        wheel.insert_many(b"x" * 17, [1])
    with pytest.raises(ValueError, match="1 ids but 2 deadlines"):
        wheel.insert_many(b"x" * 16, [1, 2])
    with pytest.raises(ValueError):
        wheel.insert(b"x" * 16, -1)
    assert len(wheel) == 0


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), st.integers(0, 15), st.integers(-100, 5 * DAY_MS)),
        st.tuples(st.just("cancel"), st.integers(0, 15), st.just(0)),
        st.tuples(st.just("reschedule"), st.integers(0, 15), st.integers(-100, 80 * DAY_MS)),
        st.tuples(st.just("advance"), st.just(0), st.integers(0, 3 * DAY_MS)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops=_OPS)
def test_random_operations_agree_with_a_dict_model(ops: list[tuple[str, int, int]]) -> None:
    """Through the binding: every timer fires once, at its deadline, unless cancelled."""
    now = 1_764_000_000_000
    wheel = Wheel(now)
    model: dict[bytes, int] = {}
    ids = [
        uuid.UUID(int=(n + 1) * 0x9E3779B97F4A7C15F39CC0605CEDC835 % 2**128).bytes
        for n in range(16)
    ]
    for op, n, value in ops:
        mid = ids[n]
        if op == "insert":
            wheel.insert(mid, max(0, now + value))
            model[mid] = max(0, now + value)
        elif op == "cancel":
            assert wheel.cancel(mid) == (model.pop(mid, None) is not None)
        elif op == "reschedule":
            assert wheel.reschedule(mid, now + value) == (mid in model)
            if mid in model:
                model[mid] = now + value
        else:
            now += value
            due = sorted((d, i) for i, d in model.items() if d <= now)
            fired = wheel.advance(now)
            assert sorted((d, i) for i, d in fired) == due
            for _, i in due:
                del model[i]
        assert len(wheel) == len(model)
