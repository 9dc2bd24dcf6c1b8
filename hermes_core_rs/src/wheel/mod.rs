//! A hierarchical timer wheel keyed by 128-bit message ids, at 1 ms resolution.
//!
//! Six levels of 64 slots (see [`level`]) cover `2^36` ms, about 795 days;
//! a deadline further away waits in an overflow list that is re-filed each
//! time the wheel's time crosses a multiple of that span, so every `u64`
//! deadline is held exactly. Insert, cancel and reschedule are O(1): the id
//! index finds the entry, the entry's slot is computed from its deadline and
//! the wheel's time, as in tokio's wheel, and the entry knows its position in
//! the slot.
//!
//! A slot is a vector of entry numbers rather than tokio's intrusive linked
//! list: leaving it is a swap-remove (the moved entry's position is updated),
//! and expiring it reads entry numbers sequentially, so the memory loads for
//! different timers are independent and overlap, where a linked list makes
//! each load wait for the previous one. On 4 M timers this is what lifts
//! expirations from ~2 M/s (measured with lists) to the figures in
//! BENCHMARKS.md.
//!
//! The wheel never reads a clock: time is the `now_ms` passed to
//! [`Wheel::new`] and [`Wheel::advance`].

mod level;
mod slab;

#[cfg(test)]
mod tests;

use level::{location_for, next_occupied, overflow_boundary, Location, LEVEL_MULT, NUM_LEVELS};
use slab::Slab;

pub(crate) use slab::hash_id;

pub use level_consts::*;

/// Public copies of the wheel's shape, for documentation and benchmarks.
mod level_consts {
    /// Slots per level.
    pub const SLOTS_PER_LEVEL: usize = super::level::LEVEL_MULT;
    /// Levels below the overflow list.
    pub const LEVELS: usize = super::level::NUM_LEVELS;
    /// Milliseconds the levels cover from any time (`2^36`, ~795 days).
    pub const SPAN_MS: u64 = super::level::WHEEL_SPAN;
}

/// One level: the entry numbers in each slot and a bitmap of non-empty slots.
struct Level {
    occupied: u64,
    slots: [Vec<u32>; LEVEL_MULT],
}

impl Level {
    fn new() -> Level {
        Level {
            occupied: 0,
            slots: std::array::from_fn(|_| Vec::new()),
        }
    }
}

/// A processed slot keeps its buffer for reuse up to this many entries; a
/// larger one is freed so one burst does not pin memory.
const KEEP_CAPACITY: usize = 1024;

/// How many entries ahead `process` prefetches.
const PREFETCH_AHEAD: usize = 16;

/// Pending timers by message id.
///
/// `advance` appends expired timers sorted by `max(deadline, t0)`, where `t0`
/// is the wheel's time when `advance` was called: timers already due (a
/// deadline at or before the wheel's time when they were set) come first, in
/// unspecified order, then every other timer in deadline order; timers with the
/// same deadline come in unspecified order.
pub struct Wheel {
    /// The wheel's time: the last `now_ms` it was advanced to.
    elapsed: u64,
    levels: [Level; NUM_LEVELS],
    overflow: Vec<u32>,
    slab: Slab,
}

impl Wheel {
    /// An empty wheel whose time is `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Wheel {
            elapsed: now_ms,
            levels: std::array::from_fn(|_| Level::new()),
            overflow: Vec::new(),
            slab: Slab::new(),
        }
    }

    /// The wheel's time: the `now_ms` of the last advance (or of `new`).
    pub fn now(&self) -> u64 {
        self.elapsed
    }

    /// Pending timers.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.len() == 0
    }

    /// The deadline of `id`'s pending timer.
    pub fn deadline(&self, id: u128) -> Option<u64> {
        self.slab.find(id).map(|idx| self.slab.get(idx).deadline)
    }

    /// Sets `id`'s timer to `deadline_ms`, replacing any pending timer for the
    /// same id. A deadline at or before the wheel's time fires on the next
    /// `advance`.
    pub fn insert(&mut self, id: u128, deadline_ms: u64) {
        let (idx, existed) = self.slab.find_or_insert(id, deadline_ms);
        if existed {
            self.unlink(idx);
            self.slab.get_mut(idx).deadline = deadline_ms;
        }
        self.link(idx);
    }

    /// Sets many timers, as `insert` one after the other would (a repeated id
    /// ends with its last deadline). Large batches are applied in the order of
    /// the id index's buckets, which turns random memory accesses into a
    /// near-sequential walk.
    pub fn insert_many(&mut self, timers: &[(u128, u64)]) {
        for i in self.slab.batch_order(timers.len(), timers.len(), |i| timers[i].0) {
            let (id, deadline) = timers[i as usize];
            self.insert(id, deadline);
        }
    }

    /// Cancels many timers, as `cancel` one after the other would; returns
    /// how many were pending. Applied in index order like `insert_many`.
    pub fn cancel_many(&mut self, ids: &[u128]) -> usize {
        let order = self.slab.batch_order(ids.len(), 0, |i| ids[i]);
        order.into_iter().filter(|&i| self.cancel(ids[i as usize])).count()
    }

    /// Cancels `id`'s pending timer; false if it had none (never set, already
    /// fired or cancelled).
    pub fn cancel(&mut self, id: u128) -> bool {
        match self.slab.take(id) {
            Some(idx) => {
                self.unlink(idx);
                self.slab.release(idx);
                true
            }
            None => false,
        }
    }

    /// Moves `id`'s pending timer to `deadline_ms`; false (and nothing set) if
    /// it had none.
    pub fn reschedule(&mut self, id: u128, deadline_ms: u64) -> bool {
        match self.slab.find(id) {
            Some(idx) => {
                self.unlink(idx);
                self.slab.get_mut(idx).deadline = deadline_ms;
                self.link(idx);
                true
            }
            None => false,
        }
    }

    /// The earliest time at which `advance` has work to do: the deadline of
    /// the earliest timer when it is within the current 64 ms, otherwise the
    /// start of the slot holding it (a lower bound; advancing to it moves
    /// timers down a level and the next call answers more precisely). `None`
    /// when nothing is pending. A timer already due gives the wheel's time.
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_expiration().map(|(_, at)| at)
    }

    /// Moves the wheel's time to `now_ms` and appends every timer with a
    /// deadline at or before it to `out` as `(id, deadline)`, in the order the
    /// type documents. A `now_ms` before the wheel's time only fires what is
    /// already due. Returns how many timers fired.
    pub fn advance(&mut self, now_ms: u64, out: &mut Vec<(u128, u64)>) -> usize {
        let now = now_ms.max(self.elapsed);
        let before = out.len();
        while let Some((location, at)) = self.next_expiration() {
            if at > now {
                break;
            }
            self.elapsed = at;
            self.process(location, out);
        }
        self.elapsed = now;
        out.len() - before
    }

    /// The next list to process and the time at which to process it.
    fn next_expiration(&self) -> Option<(Location, u64)> {
        for (level, lv) in self.levels.iter().enumerate() {
            if let Some((slot, at)) = next_occupied(lv.occupied, self.elapsed, level) {
                return Some((Location::Slot(level, slot), at));
            }
        }
        if !self.overflow.is_empty() {
            let at = overflow_boundary(self.elapsed).expect("an overflow timer implies a later span boundary");
            return Some((Location::Overflow, at));
        }
        None
    }

    /// Takes a whole slot at the wheel's (just set) time: fires what is due
    /// and re-files the rest, which lands on a lower level.
    fn process(&mut self, location: Location, out: &mut Vec<(u128, u64)>) {
        let mut taken = std::mem::take(self.slot_mut(location));
        if let Location::Slot(level, slot) = location {
            self.levels[level].occupied &= !(1 << slot);
        }
        for (n, &idx) in taken.iter().enumerate() {
            // Entries of one slot are scattered over the slab: ask for the
            // ones a few steps ahead now, so their loads overlap this one.
            if let Some(&ahead) = taken.get(n + PREFETCH_AHEAD) {
                self.slab.prefetch(ahead);
            }
            let entry = *self.slab.get(idx);
            if entry.deadline <= self.elapsed {
                out.push((entry.id, entry.deadline));
                self.slab.expire(idx);
            } else {
                // Down a level, or (from the overflow list) back to it when
                // the deadline is still beyond the next span.
                debug_assert!(location == Location::Overflow || location_for(self.elapsed, entry.deadline) != location);
                self.link(idx);
            }
        }
        if taken.capacity() <= KEEP_CAPACITY {
            taken.clear();
            let slot = self.slot_mut(location);
            if slot.is_empty() {
                *slot = taken;
            }
        }
    }

    fn slot_mut(&mut self, location: Location) -> &mut Vec<u32> {
        match location {
            Location::Slot(level, slot) => &mut self.levels[level].slots[slot],
            Location::Overflow => &mut self.overflow,
        }
    }

    /// Files entry `idx` in the slot its deadline belongs to.
    fn link(&mut self, idx: u32) {
        let location = location_for(self.elapsed, self.slab.get(idx).deadline);
        if let Location::Slot(level, slot) = location {
            self.levels[level].occupied |= 1 << slot;
        }
        let slot = self.slot_mut(location);
        let pos = slot.len() as u32;
        slot.push(idx);
        self.slab.get_mut(idx).pos = pos;
    }

    /// Takes entry `idx` out of its slot; the last entry of the slot moves
    /// into its place.
    fn unlink(&mut self, idx: u32) {
        let location = location_for(self.elapsed, self.slab.get(idx).deadline);
        let pos = self.slab.get(idx).pos as usize;
        let slot = self.slot_mut(location);
        debug_assert_eq!(slot.get(pos), Some(&idx), "entry {idx} not where it says");
        slot.swap_remove(pos);
        let moved = slot.get(pos).copied();
        let now_empty = slot.is_empty();
        if let Some(moved) = moved {
            self.slab.get_mut(moved).pos = pos as u32;
        }
        if let (Location::Slot(level, slot), true) = (location, now_empty) {
            self.levels[level].occupied &= !(1 << slot);
        }
    }
}

impl std::fmt::Debug for Wheel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wheel")
            .field("now", &self.elapsed)
            .field("len", &self.len())
            .finish()
    }
}
