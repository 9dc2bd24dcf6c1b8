//! The arithmetic of the wheel's levels, as small free functions.
//!
//! Level `l` has [`LEVEL_MULT`] slots of `64^l` ms each, so it spans `64^(l+1)`
//! ms. A timer lives at the lowest level whose span contains both the wheel's
//! current time and its deadline: the level is given by the highest bit in which
//! the two differ. Because the timer's deadline is after the current time, its
//! slot digit at that level is strictly greater than the current time's digit
//! (or equal at level 0, for a timer due now), so a level never wraps: an
//! occupied slot is always ahead of the current time within the level.

/// Bits of a deadline consumed per level.
pub(crate) const SLOT_BITS: u32 = 6;

/// Slots per level.
pub(crate) const LEVEL_MULT: usize = 1 << SLOT_BITS;

/// Levels in the wheel. Six levels of 64 slots cover `2^36` ms (about 795
/// days) at 1 ms resolution; deadlines further away go to the overflow list.
pub(crate) const NUM_LEVELS: usize = 6;

/// Milliseconds covered by all levels together: `2^36`.
pub(crate) const WHEEL_SPAN: u64 = 1 << (SLOT_BITS as u64 * NUM_LEVELS as u64);

const SLOT_MASK: u64 = (LEVEL_MULT as u64) - 1;

/// Where a pending timer is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    /// `(level, slot)` in the levels.
    Slot(usize, usize),
    /// Beyond the top level: re-examined each time the wheel's time crosses a
    /// multiple of [`WHEEL_SPAN`].
    Overflow,
}

/// The level for a deadline `when >= elapsed`; `NUM_LEVELS` or more means the
/// overflow list.
#[inline]
pub(crate) fn level_for(elapsed: u64, when: u64) -> usize {
    debug_assert!(when >= elapsed);
    // Or-ing in the slot mask makes a timer due within the current 64 ms land on
    // level 0 even when `when == elapsed`.
    let masked = (elapsed ^ when) | SLOT_MASK;
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

/// The slot of `when` at `level`.
#[inline]
pub(crate) fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (SLOT_BITS as usize * level)) & SLOT_MASK) as usize
}

/// Milliseconds covered by one slot at `level`.
#[inline]
pub(crate) const fn slot_range(level: usize) -> u64 {
    1 << (SLOT_BITS as usize * level)
}

/// Milliseconds covered by the whole of `level`.
#[inline]
pub(crate) const fn level_range(level: usize) -> u64 {
    1 << (SLOT_BITS as usize * (level + 1))
}

/// Where a timer with `deadline` goes when the wheel's time is `elapsed`. A
/// deadline already past is filed as due now (level 0, current slot).
#[inline]
pub(crate) fn location_for(elapsed: u64, deadline: u64) -> Location {
    let when = deadline.max(elapsed);
    let level = level_for(elapsed, when);
    if level >= NUM_LEVELS {
        Location::Overflow
    } else {
        Location::Slot(level, slot_for(when, level))
    }
}

/// The next occupied slot at `level` at or after the current time, with the
/// time at which that slot starts.
#[inline]
pub(crate) fn next_occupied(occupied: u64, elapsed: u64, level: usize) -> Option<(usize, u64)> {
    let digit = slot_for(elapsed, level);
    let ahead = occupied & (u64::MAX << digit);
    if ahead == 0 {
        return None;
    }
    let slot = ahead.trailing_zeros() as usize;
    let level_start = elapsed & !(level_range(level) - 1);
    Some((slot, level_start + slot as u64 * slot_range(level)))
}

/// The time at which the overflow list is next examined: the next multiple of
/// [`WHEEL_SPAN`] after `elapsed`, if there is one before `u64::MAX`.
#[inline]
pub(crate) fn overflow_boundary(elapsed: u64) -> Option<u64> {
    (elapsed | (WHEEL_SPAN - 1)).checked_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_cover_more_than_35_days() {
        assert_eq!(LEVEL_MULT, 64);
        assert_eq!(WHEEL_SPAN, 64u64.pow(6));
        const { assert!(WHEEL_SPAN > 35 * 24 * 3_600_000) };
        assert_eq!(level_range(NUM_LEVELS - 1), WHEEL_SPAN);
    }

    #[test]
    fn level_for_each_boundary() {
        for level in 0..NUM_LEVELS {
            let range = level_range(level);
            // From time 0, the last ms of a level's span stays on it, the first
            // ms of the next span moves up.
            assert_eq!(level_for(0, range - 1), level, "level {level} end");
            assert_eq!(level_for(0, range), level + 1, "level {level} + 1 start");
            // Same from an unaligned time: what counts is the highest differing bit.
            let start = 3 * range + 5;
            assert_eq!(level_for(start, start + 1), 0);
            assert_eq!(level_for(start, 4 * range - 1), level);
            assert_eq!(level_for(start, 4 * range), level + 1);
        }
        assert_eq!(level_for(0, 0), 0);
        assert_eq!(level_for(0, u64::MAX), 10);
        assert_eq!(level_for(u64::MAX, u64::MAX), 0);
    }

    #[test]
    fn slot_for_reads_the_digit() {
        let when = (5 << 30) | (4 << 24) | (3 << 18) | (2 << 12) | (1 << 6) | 63;
        assert_eq!(slot_for(when, 0), 63);
        for level in 1..NUM_LEVELS {
            assert_eq!(slot_for(when, level), level);
        }
    }

    #[test]
    fn location_files_past_deadlines_as_due_now() {
        assert_eq!(location_for(1000, 3), Location::Slot(0, 1000 % 64));
        assert_eq!(location_for(1000, 1000), Location::Slot(0, 1000 % 64));
        assert_eq!(location_for(0, WHEEL_SPAN - 1), Location::Slot(5, 63));
        assert_eq!(location_for(0, WHEEL_SPAN), Location::Overflow);
        assert_eq!(location_for(WHEEL_SPAN, WHEEL_SPAN + 64), Location::Slot(1, 1));
    }

    #[test]
    fn next_occupied_is_at_or_after_the_current_digit() {
        // Level 1 at time 130 (digit 2): slot 1 is behind, slot 5 ahead.
        let occupied = (1 << 1) | (1 << 5);
        assert_eq!(next_occupied(occupied, 130, 1), Some((5, 320)));
        assert_eq!(next_occupied(1 << 1, 130, 1), None);
        // Level 0 includes the current slot.
        assert_eq!(next_occupied(1 << 2, 130, 0), Some((2, 130)));
        // The slot start is relative to the level's span containing `elapsed`.
        let t = 7 * level_range(2) + 1;
        assert_eq!(
            next_occupied(1 << 9, t, 2),
            Some((9, 7 * level_range(2) + 9 * slot_range(2)))
        );
    }

    #[test]
    fn overflow_boundary_is_the_next_span_multiple() {
        assert_eq!(overflow_boundary(0), Some(WHEEL_SPAN));
        assert_eq!(overflow_boundary(WHEEL_SPAN - 1), Some(WHEEL_SPAN));
        assert_eq!(overflow_boundary(WHEEL_SPAN), Some(2 * WHEEL_SPAN));
        assert_eq!(overflow_boundary(u64::MAX), None);
    }
}
