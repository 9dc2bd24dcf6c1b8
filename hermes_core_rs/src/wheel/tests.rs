//! Boundary tests of the wheel, and a property test against a `BTreeMap` model.

use super::level::{level_range, slot_range, NUM_LEVELS, WHEEL_SPAN};
use super::Wheel;

const DAY_MS: u64 = 24 * 3_600_000;

fn advance(wheel: &mut Wheel, now: u64) -> Vec<(u128, u64)> {
    let mut out = Vec::new();
    wheel.advance(now, &mut out);
    out
}

/// A timer set at `start` for `deadline` fires at exactly `deadline`: not one
/// ms before (checked both in one jump and after stepping through every
/// `next_deadline` the wheel announces), and `next_deadline` never overshoots.
fn assert_fires_exactly_at(start: u64, deadline: u64) {
    // One jump to the ms before, then to the deadline.
    let mut wheel = Wheel::new(start);
    wheel.insert(7, deadline);
    assert!(wheel.next_deadline().unwrap() <= deadline.max(start));
    if deadline > start {
        assert_eq!(
            advance(&mut wheel, deadline - 1),
            vec![],
            "start {start} deadline {deadline}"
        );
        assert_eq!(wheel.deadline(7), Some(deadline));
        assert!(wheel.next_deadline().unwrap() <= deadline);
    }
    assert_eq!(
        advance(&mut wheel, deadline),
        vec![(7, deadline)],
        "start {start} deadline {deadline}"
    );
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_deadline(), None);

    // Following next_deadline: each step is at most the deadline, and the timer
    // fires on the step that reaches it.
    let mut wheel = Wheel::new(start);
    wheel.insert(7, deadline);
    let mut steps = 0;
    loop {
        let at = wheel.next_deadline().expect("pending");
        assert!(at <= deadline.max(start), "next_deadline {at} overshoots {deadline}");
        let fired = advance(&mut wheel, at);
        steps += 1;
        if !fired.is_empty() {
            assert_eq!(fired, vec![(7, deadline)]);
            assert_eq!(at, deadline.max(start));
            break;
        }
        assert!(steps <= NUM_LEVELS + 2, "too many steps for {deadline} from {start}");
    }
}

#[test]
fn every_level_boundary_from_zero_and_unaligned_starts() {
    for start in [
        0,
        1,
        63,
        64,
        100,
        4095,
        4097,
        1_000_003,
        WHEEL_SPAN - 1,
        WHEEL_SPAN + 17,
    ] {
        for level in 0..NUM_LEVELS {
            let range = level_range(level);
            for offset in [range - 1, range, range + 1, slot_range(level), 2 * range - 1] {
                assert_fires_exactly_at(start, start + offset);
            }
            // The aligned boundaries above the start, where a level's slot wraps.
            let boundary = (start / range + 1) * range;
            for d in [boundary - 1, boundary, boundary + 1] {
                assert_fires_exactly_at(start, d);
            }
        }
    }
}

#[test]
fn deadline_equal_to_now_fires_on_next_advance_even_without_moving_time() {
    let mut wheel = Wheel::new(500);
    wheel.insert(1, 500);
    assert_eq!(wheel.next_deadline(), Some(500));
    assert_eq!(advance(&mut wheel, 500), vec![(1, 500)]);
    assert_eq!(advance(&mut wheel, 500), vec![]);
}

#[test]
fn deadline_in_the_past_fires_first_with_its_own_deadline() {
    let mut wheel = Wheel::new(10_000);
    wheel.insert(1, 10_001);
    wheel.insert(2, 3);
    wheel.insert(3, 0);
    assert_eq!(wheel.next_deadline(), Some(10_000));
    let fired = advance(&mut wheel, 20_000);
    assert_eq!(fired.len(), 3);
    let mut due: Vec<_> = fired[..2].to_vec();
    due.sort();
    assert_eq!(due, vec![(2, 3), (3, 0)]);
    assert_eq!(fired[2], (1, 10_001));
}

#[test]
fn advance_backwards_only_fires_what_is_due() {
    let mut wheel = Wheel::new(1_000);
    wheel.insert(1, 900);
    wheel.insert(2, 1_001);
    assert_eq!(advance(&mut wheel, 10), vec![(1, 900)]);
    assert_eq!(wheel.now(), 1_000);
    assert_eq!(advance(&mut wheel, 1_001), vec![(2, 1_001)]);
}

#[test]
fn far_deadlines_up_to_35_days_and_beyond_the_top_level() {
    let start = 1_764_000_000_000; // a realistic epoch-ms clock
    for d in [
        DAY_MS,
        35 * DAY_MS,
        35 * DAY_MS + 1,
        WHEEL_SPAN - 1,
        WHEEL_SPAN,
        3 * WHEEL_SPAN + 5,
    ] {
        assert_fires_exactly_at(start, start + d);
    }
    // The largest deadlines are held, and keep their order with the others.
    let mut wheel = Wheel::new(0);
    wheel.insert(1, u64::MAX);
    wheel.insert(2, u64::MAX - 1);
    wheel.insert(3, 40 * WHEEL_SPAN);
    assert_eq!(advance(&mut wheel, u64::MAX - 2), vec![(3, 40 * WHEEL_SPAN)]);
    assert_eq!(advance(&mut wheel, u64::MAX), vec![(2, u64::MAX - 1), (1, u64::MAX)]);
}

#[test]
fn many_timers_fire_in_deadline_order_across_levels() {
    let mut wheel = Wheel::new(123);
    let mut expected = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for id in 0..5_000u128 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let deadline = 124 + x % (40 * DAY_MS);
        wheel.insert(id, deadline);
        expected.push((deadline, id));
    }
    expected.sort();
    let mut fired = Vec::new();
    let mut now = 123;
    while now < 41 * DAY_MS {
        now += 3_600_000;
        wheel.advance(now, &mut fired);
    }
    let deadlines: Vec<u64> = fired.iter().map(|&(_, d)| d).collect();
    assert!(deadlines.windows(2).all(|w| w[0] <= w[1]), "fired out of order");
    let mut got: Vec<(u64, u128)> = fired.iter().map(|&(id, d)| (d, id)).collect();
    got.sort();
    assert_eq!(got, expected);
}

#[test]
fn insert_replaces_an_existing_timer() {
    let mut wheel = Wheel::new(0);
    wheel.insert(9, 100_000);
    wheel.insert(9, 50);
    assert_eq!(wheel.len(), 1);
    assert_eq!(wheel.deadline(9), Some(50));
    assert_eq!(advance(&mut wheel, 1_000_000), vec![(9, 50)]);
}

#[test]
fn batches_act_like_single_calls_in_order() {
    // Large enough for the bucket-ordered path, with repeated ids: the last
    // deadline given for an id wins, as with `insert` one after the other.
    let mut batch: Vec<(u128, u64)> = (0..10_000u128)
        .map(|i| (i * 0x9e37_79b9_7f4a_7c15, 1_000 + (i as u64 % 977)))
        .collect();
    let repeats: Vec<(u128, u64)> = batch[..3_000].iter().map(|&(id, d)| (id, d + 50_000)).collect();
    batch.extend(repeats);
    let mut one_by_one = Wheel::new(0);
    for &(id, d) in &batch {
        one_by_one.insert(id, d);
    }
    let mut batched = Wheel::new(0);
    batched.insert_many(&batch);
    assert_eq!(batched.len(), 10_000);
    for &(id, _) in &batch {
        assert_eq!(batched.deadline(id), one_by_one.deadline(id));
    }
    let cancel: Vec<u128> = batch.iter().step_by(2).map(|&(id, _)| id).chain([u128::MAX]).collect();
    let expected = cancel.iter().filter(|&&id| one_by_one.cancel(id)).count();
    assert_eq!(batched.cancel_many(&cancel), expected);
    assert_eq!(batched.len(), one_by_one.len());
    let (mut a, mut b) = (advance(&mut batched, 100_000), advance(&mut one_by_one, 100_000));
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn reschedule_across_levels_both_ways() {
    let deadlines = [5, 70, 5_000, 300_000, 20_000_000, 2_000_000_000, WHEEL_SPAN + 9];
    for &from in &deadlines {
        for &to in &deadlines {
            let mut wheel = Wheel::new(1);
            wheel.insert(1, from);
            wheel.insert(2, from); // a neighbour in the same list stays intact
            assert!(wheel.reschedule(1, to));
            assert_eq!(wheel.deadline(1), Some(to));
            let mut fired = advance(&mut wheel, to - 1);
            assert!(fired.iter().all(|f| f.0 != 1), "fired before {to}");
            fired.extend(advance(&mut wheel, to));
            assert!(fired.contains(&(1, to)));
            fired.extend(advance(&mut wheel, from.max(to)));
            fired.sort();
            assert_eq!(fired, vec![(1, to), (2, from)], "from {from} to {to}");
        }
    }
    let mut wheel = Wheel::new(0);
    assert!(!wheel.reschedule(3, 10), "reschedule of an unknown id sets nothing");
    assert_eq!(wheel.len(), 0);
}

#[test]
fn cancel_of_unknown_expired_and_cancelled_ids_is_false() {
    let mut wheel = Wheel::new(0);
    assert!(!wheel.cancel(1));
    wheel.insert(1, 10);
    wheel.insert(2, 10);
    wheel.insert(3, 20);
    assert!(wheel.cancel(2));
    assert!(!wheel.cancel(2));
    assert_eq!(advance(&mut wheel, 10), vec![(1, 10)]);
    assert!(!wheel.cancel(1), "an expired timer is gone");
    assert_eq!(wheel.deadline(1), None);
    assert!(wheel.cancel(3));
    assert_eq!(advance(&mut wheel, 100), vec![]);
    assert!(wheel.is_empty());
}

#[test]
fn slots_are_reused_after_wrapping_level_zero() {
    // Level 0 wraps every 64 ms: a timer set after the wrap lands in a slot
    // that earlier timers used, and must not fire with them.
    let mut wheel = Wheel::new(0);
    for round in 0..5u64 {
        let base = round * 64;
        for ms in 0..64 {
            wheel.insert((round * 64 + ms) as u128, base + ms + 64);
        }
        let fired = advance(&mut wheel, base + 63 + 64);
        assert_eq!(fired.len(), 64);
        assert!(fired.iter().all(|&(_, d)| d > base + 63 && d <= base + 127));
    }
}

mod model {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::super::Wheel;
    use super::WHEEL_SPAN;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, i64),
        Cancel(u8),
        Reschedule(u8, i64),
        Advance(u64),
    }

    /// Offsets from the current time that reach every level, the overflow
    /// list, and the past.
    fn offset() -> impl Strategy<Value = i64> {
        prop_oneof![
            -200i64..=0,
            0i64..70,
            0i64..5_000,
            0i64..400_000,
            0i64..(1 << 30),
            0i64..(WHEEL_SPAN as i64 * 3),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..24, offset()).prop_map(|(id, o)| Op::Insert(id, o)),
            1 => (0u8..24).prop_map(Op::Cancel),
            2 => (0u8..24, offset()).prop_map(|(id, o)| Op::Reschedule(id, o)),
            3 => prop_oneof![0u64..3, 0u64..200, 0u64..100_000, 0u64..(1 << 31), 0u64..(WHEEL_SPAN * 2)]
                .prop_map(Op::Advance),
        ]
    }

    fn at(now: u64, offset: i64) -> u64 {
        now.saturating_add_signed(offset)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn wheel_matches_a_btreemap(start in 0u64..(1 << 40), ops in prop::collection::vec(op(), 1..120)) {
            let mut wheel = Wheel::new(start);
            let mut model: BTreeMap<u128, u64> = BTreeMap::new();
            let mut now = start;
            for op in ops {
                match op {
                    Op::Insert(id, o) => {
                        let id = u128::from(id) << 100 | u128::from(id);
                        wheel.insert(id, at(now, o));
                        model.insert(id, at(now, o));
                    }
                    Op::Cancel(id) => {
                        let id = u128::from(id) << 100 | u128::from(id);
                        prop_assert_eq!(wheel.cancel(id), model.remove(&id).is_some());
                    }
                    Op::Reschedule(id, o) => {
                        let id = u128::from(id) << 100 | u128::from(id);
                        let known = model.contains_key(&id);
                        prop_assert_eq!(wheel.reschedule(id, at(now, o)), known);
                        if known {
                            model.insert(id, at(now, o));
                        }
                    }
                    Op::Advance(d) => {
                        let t0 = now;
                        now += d;
                        if let Some(next) = wheel.next_deadline() {
                            let earliest = model.values().min().copied().unwrap();
                            prop_assert!(next <= earliest.max(t0), "next_deadline {} after {}", next, earliest);
                        } else {
                            prop_assert!(model.is_empty());
                        }
                        let mut fired = Vec::new();
                        wheel.advance(now, &mut fired);
                        let keys: Vec<u64> = fired.iter().map(|&(_, d)| d.max(t0)).collect();
                        prop_assert!(keys.windows(2).all(|w| w[0] <= w[1]), "order {:?}", fired);
                        let mut expected: Vec<(u128, u64)> =
                            model.iter().filter(|&(_, &d)| d <= now).map(|(&i, &d)| (i, d)).collect();
                        model.retain(|_, d| *d > now);
                        fired.sort();
                        expected.sort();
                        prop_assert_eq!(fired, expected);
                    }
                }
                prop_assert_eq!(wheel.len(), model.len());
                for (&id, &d) in &model {
                    prop_assert_eq!(wheel.deadline(id), Some(d));
                }
            }
        }
    }
}
