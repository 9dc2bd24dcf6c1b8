//! Storage for pending timers: a paged slab of 32-byte entries, and the
//! id -> entry index. Each entry records its position in its wheel slot's
//! list of entry numbers, so it can leave that list in O(1).
//!
//! Pages keep memory proportional to the number of timers (a growing `Vec`
//! would hold up to twice what it needs and copy it all on growth) and keep
//! entry addresses stable. The index stores `(entry number, generation)`, and
//! hashes and compares ids through the entry, so an id is stored once.
//!
//! Expiry does not touch the index: it bumps the cell's generation, which
//! makes the index's pair stale (lookups skip it), and the stale pairs are
//! swept out in one pass once they outnumber the live ones. That keeps the
//! hot expiry path to one load per timer; cancel still removes its pair at
//! once, since its lookup has just found it.

use hashbrown::{hash_table, HashTable};

/// "No entry": the end of the free list.
pub(crate) const NIL: u32 = u32::MAX;

/// Entries per page (128 KiB of entries).
const PAGE_BITS: u32 = 12;
const PAGE_LEN: usize = 1 << PAGE_BITS;

/// Stale index pairs tolerated before a sweep, at least.
const MIN_SWEEP: usize = 4096;

/// One pending timer, or a free cell (then `pos` links the free list).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) id: u128,
    pub(crate) deadline: u64,
    /// Index in the slot's list of entry numbers.
    pub(crate) pos: u32,
    /// Bumped each time the cell is freed; an index pair with another
    /// generation is stale.
    generation: u32,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 32);

const VACANT: Entry = Entry {
    id: 0,
    deadline: 0,
    pos: NIL,
    generation: 0,
};

#[inline]
fn cell(pages: &[Box<[Entry]>], idx: u32) -> &Entry {
    &pages[(idx >> PAGE_BITS) as usize][idx as usize & (PAGE_LEN - 1)]
}

/// Hash of a message id: two rounds of folded multiplication, which spreads
/// every input bit into both the low bits (bucket) and the top bits (the
/// table's tag byte), for random and time-ordered (UUIDv7) ids alike.
#[inline]
pub(crate) fn hash_id(id: u128) -> u64 {
    const K0: u64 = 0x243f_6a88_85a3_08d3;
    const K1: u64 = 0x1319_8a2e_0370_7345;
    #[inline]
    fn folded(a: u64, b: u64) -> u64 {
        let full = (a as u128) * (b as u128);
        (full as u64) ^ ((full >> 64) as u64)
    }
    let lo = id as u64;
    let hi = (id >> 64) as u64;
    folded(folded(lo ^ K0, K1) ^ hi, K0 ^ K1)
}

/// Entries by number, plus the free list and the id index.
pub(crate) struct Slab {
    pages: Vec<Box<[Entry]>>,
    /// Cells ever handed out; cells at or beyond it are untouched.
    high_water: u32,
    free: u32,
    len: usize,
    index: HashTable<(u32, u32)>,
    /// Index pairs whose cell has been freed since.
    stale: usize,
}

impl Slab {
    pub(crate) fn new() -> Self {
        Slab {
            pages: Vec::new(),
            high_water: 0,
            free: NIL,
            len: 0,
            index: HashTable::new(),
            stale: 0,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn get(&self, idx: u32) -> &Entry {
        cell(&self.pages, idx)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, idx: u32) -> &mut Entry {
        &mut self.pages[(idx >> PAGE_BITS) as usize][idx as usize & (PAGE_LEN - 1)]
    }

    /// Hints the CPU to load entry `idx` into cache; no effect on results.
    #[inline]
    pub(crate) fn prefetch(&self, idx: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let ptr = cell(&self.pages, idx) as *const Entry as *const i8;
            // SAFETY: prefetching is a hint with no memory effects; `ptr`
            // points into a live page anyway.
            unsafe { std::arch::x86_64::_mm_prefetch(ptr, std::arch::x86_64::_MM_HINT_T0) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = idx;
    }

    /// The entry number of `id`, if it has a pending timer.
    #[inline]
    pub(crate) fn find(&self, id: u128) -> Option<u32> {
        let pages = &self.pages;
        self.index
            .find(hash_id(id), |&(i, g)| {
                let e = cell(pages, i);
                e.generation == g && e.id == id
            })
            .map(|&(i, _)| i)
    }

    /// The entry of `id` and true if it has a pending timer (its deadline is
    /// left as it was); otherwise a new entry with `deadline`, in no slot yet,
    /// and false. One probe of the index either way.
    pub(crate) fn find_or_insert(&mut self, id: u128, deadline: u64) -> (u32, bool) {
        if self.stale >= MIN_SWEEP.max(self.len) && self.index.len() == self.index.capacity() {
            self.sweep();
        }
        let pages = &self.pages;
        let entry = self.index.entry(
            hash_id(id),
            |&(i, g)| {
                let e = cell(pages, i);
                e.generation == g && e.id == id
            },
            |&(i, _)| hash_id(cell(pages, i).id),
        );
        let vacant = match entry {
            hash_table::Entry::Occupied(found) => return (found.get().0, true),
            hash_table::Entry::Vacant(vacant) => vacant,
        };
        let idx = if self.free != NIL {
            let idx = self.free;
            self.free = cell(&self.pages, idx).pos;
            idx
        } else {
            assert!(self.high_water < NIL, "timer wheel full (2^32 - 1 timers)");
            let idx = self.high_water;
            if idx as usize >> PAGE_BITS == self.pages.len() {
                self.pages.push(vec![VACANT; PAGE_LEN].into_boxed_slice());
            }
            self.high_water += 1;
            idx
        };
        let e = &mut self.pages[(idx >> PAGE_BITS) as usize][idx as usize & (PAGE_LEN - 1)];
        *e = Entry {
            id,
            deadline,
            pos: NIL,
            generation: e.generation,
        };
        vacant.insert((idx, e.generation));
        self.len += 1;
        (idx, false)
    }

    /// Stores a new timer for an `id` without one; the entry is in no slot yet.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, id: u128, deadline: u64) -> u32 {
        let (idx, existed) = self.find_or_insert(id, deadline);
        assert!(!existed, "id already present");
        idx
    }

    /// Drops `id`'s index pair and returns its entry number, in one probe;
    /// the caller takes the entry out of its slot, then calls `release`.
    pub(crate) fn take(&mut self, id: u128) -> Option<u32> {
        let pages = &self.pages;
        let found = self.index.find_entry(hash_id(id), |&(i, g)| {
            let e = cell(pages, i);
            e.generation == g && e.id == id
        });
        match found {
            Ok(found) => Some(found.remove().0 .0),
            Err(_) => None,
        }
    }

    /// Frees an entry whose index pair `take` has dropped and that has left
    /// its slot.
    #[inline]
    pub(crate) fn release(&mut self, idx: u32) {
        self.free_cell(idx);
    }

    /// Frees an entry that has left its slot and drops its index pair now.
    #[cfg(test)]
    pub(crate) fn remove(&mut self, idx: u32) -> Entry {
        let entry = *self.get(idx);
        match self
            .index
            .find_entry(hash_id(entry.id), |&(i, g)| i == idx && g == entry.generation)
        {
            Ok(found) => {
                found.remove();
            }
            Err(_) => unreachable!("slab entry {idx} missing from the index"),
        }
        self.free_cell(idx);
        entry
    }

    /// Frees an expired entry that has left its slot, leaving its index pair
    /// to go stale.
    #[inline]
    pub(crate) fn expire(&mut self, idx: u32) {
        self.free_cell(idx);
        self.stale += 1;
    }

    #[inline]
    fn free_cell(&mut self, idx: u32) {
        let free = self.free;
        let e = self.get_mut(idx);
        e.generation = e.generation.wrapping_add(1);
        e.pos = free;
        self.free = idx;
        self.len -= 1;
    }

    /// The order in which to apply a batch of `n` ids (`id_at(i)` the i-th)
    /// so the index is walked roughly in bucket order rather than at random:
    /// a stable counting sort on the top 16 bits of each id's bucket, after
    /// making room for `extra` new ids (so the buckets do not move midway).
    /// Stable, so a repeated id keeps its order. Small batches keep theirs.
    pub(crate) fn batch_order(&mut self, n: usize, extra: usize, id_at: impl Fn(usize) -> u128) -> Vec<u32> {
        const KEY_BITS: u32 = 16;
        if n < 4096 {
            return (0..n as u32).collect();
        }
        if self.stale >= MIN_SWEEP.max(self.len) {
            self.sweep();
        }
        let pages = &self.pages;
        self.index.reserve(extra, |&(i, _)| hash_id(cell(pages, i).id));
        // hashbrown keeps buckets a power of two with 7/8 of them usable.
        let buckets = (self.index.capacity() / 7 * 8).max(1).next_power_of_two();
        let bucket_bits = buckets.trailing_zeros();
        let shift = bucket_bits.saturating_sub(KEY_BITS);
        let key = |i: usize| ((hash_id(id_at(i)) as usize & (buckets - 1)) >> shift) as u32;
        let keys: Vec<u32> = (0..n).map(key).collect();
        let mut starts = vec![0u32; 1 << KEY_BITS.min(bucket_bits)];
        for &k in &keys {
            starts[k as usize] += 1;
        }
        let mut total = 0;
        for s in starts.iter_mut() {
            let count = *s;
            *s = total;
            total += count;
        }
        let mut order = vec![0u32; n];
        for (i, &k) in keys.iter().enumerate() {
            order[starts[k as usize] as usize] = i as u32;
            starts[k as usize] += 1;
        }
        order
    }

    /// Drops every stale index pair.
    fn sweep(&mut self) {
        let pages = &self.pages;
        self.index.retain(|&mut (i, g)| cell(pages, i).generation == g);
        self.stale = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove_reuses_cells() {
        let mut slab = Slab::new();
        let a = slab.insert(1, 10);
        let b = slab.insert(2, 20);
        assert_eq!(slab.find(1), Some(a));
        assert_eq!(slab.find(2), Some(b));
        assert_eq!(slab.find(3), None);
        assert_eq!(slab.remove(a).deadline, 10);
        assert_eq!(slab.find(1), None);
        assert_eq!(slab.len(), 1);
        let c = slab.insert(3, 30);
        assert_eq!(c, a, "a freed cell is reused first");
        assert_eq!(slab.find(3), Some(c));
    }

    #[test]
    fn pages_grow_past_one_page() {
        let mut slab = Slab::new();
        let n = PAGE_LEN as u128 * 2 + 3;
        for id in 0..n {
            slab.insert(id << 64 | id, id as u64);
        }
        for id in 0..n {
            let idx = slab.find(id << 64 | id).expect("present");
            assert_eq!(slab.get(idx).deadline, id as u64);
        }
        assert_eq!(slab.pages.len(), 3);
    }

    #[test]
    fn expired_cells_go_stale_in_the_index_and_are_swept() {
        let mut slab = Slab::new();
        // Re-using the same ids and cells over and over: lookups must only
        // ever see the live pair, and stale pairs must not pile up.
        for round in 0..50u128 {
            let cells: Vec<u32> = (0..1000u128).map(|id| slab.insert(id, round as u64)).collect();
            for id in 0..1000u128 {
                let idx = slab.find(id).expect("live");
                assert_eq!(slab.get(idx).deadline, round as u64);
            }
            for (n, &idx) in cells.iter().enumerate() {
                if n % 2 == 0 {
                    slab.expire(idx);
                } else {
                    slab.remove(idx);
                }
            }
            assert_eq!(slab.len(), 0);
            for id in 0..1000u128 {
                assert_eq!(slab.find(id), None, "round {round}: expired id {id} still found");
            }
        }
        assert!(
            slab.index.len() <= 2 * MIN_SWEEP,
            "stale pairs kept: {}",
            slab.index.len()
        );
    }

    #[test]
    fn hash_spreads_sequential_and_high_only_ids() {
        use std::collections::HashSet;
        let low: HashSet<u64> = (0..10_000u128).map(|i| hash_id(i) >> 57).collect();
        let high: HashSet<u64> = (0..10_000u128).map(|i| hash_id(i << 64) & 127).collect();
        assert_eq!(low.len(), 128, "top 7 bits vary for sequential ids");
        assert_eq!(high.len(), 128, "low bits vary for ids differing only in the high half");
    }
}
