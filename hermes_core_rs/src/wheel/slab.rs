//! Storage for pending timers: a paged slab of 32-byte entries linked into
//! intrusive doubly linked lists (one per wheel slot), and the id -> entry
//! index.
//!
//! Pages keep memory proportional to the number of timers (a growing `Vec`
//! would hold up to twice what it needs and copy it all on growth) and keep
//! entry addresses stable. The index stores only the `u32` entry number, and
//! hashes and compares through the entry, so an id is stored once: about 32
//! bytes of entry plus 5-10 bytes of table per pending timer.

use hashbrown::HashTable;

/// "No entry": the end of a list, or an empty slot.
pub(crate) const NIL: u32 = u32::MAX;

/// Entries per page (128 KiB of entries).
const PAGE_BITS: u32 = 12;
const PAGE_LEN: usize = 1 << PAGE_BITS;

/// One pending timer, or a free cell (then `next` links the free list).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) id: u128,
    pub(crate) deadline: u64,
    pub(crate) prev: u32,
    pub(crate) next: u32,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 32);

const VACANT: Entry = Entry { id: 0, deadline: 0, prev: NIL, next: NIL };

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
    index: HashTable<u32>,
}

impl Slab {
    pub(crate) fn new() -> Self {
        Slab { pages: Vec::new(), high_water: 0, free: NIL, len: 0, index: HashTable::new() }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn get(&self, idx: u32) -> &Entry {
        &self.pages[(idx >> PAGE_BITS) as usize][idx as usize & (PAGE_LEN - 1)]
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, idx: u32) -> &mut Entry {
        &mut self.pages[(idx >> PAGE_BITS) as usize][idx as usize & (PAGE_LEN - 1)]
    }

    /// The entry number of `id`, if it has a pending timer.
    #[inline]
    pub(crate) fn find(&self, id: u128) -> Option<u32> {
        let pages = &self.pages;
        self.index
            .find(hash_id(id), |&i| {
                pages[(i >> PAGE_BITS) as usize][i as usize & (PAGE_LEN - 1)].id == id
            })
            .copied()
    }

    /// Stores a new timer (the caller has checked `id` is absent) and returns
    /// its entry number; the entry is not linked into any list yet.
    pub(crate) fn insert(&mut self, id: u128, deadline: u64) -> u32 {
        let idx = if self.free != NIL {
            let idx = self.free;
            self.free = self.get(idx).next;
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
        *self.get_mut(idx) = Entry { id, deadline, prev: NIL, next: NIL };
        let pages = &self.pages;
        self.index.insert_unique(hash_id(id), idx, |&i| {
            hash_id(pages[(i >> PAGE_BITS) as usize][i as usize & (PAGE_LEN - 1)].id)
        });
        self.len += 1;
        idx
    }

    /// Frees an entry (already unlinked) and drops it from the index.
    pub(crate) fn remove(&mut self, idx: u32) -> Entry {
        let entry = *self.get(idx);
        match self.index.find_entry(hash_id(entry.id), |&i| i == idx) {
            Ok(found) => {
                found.remove();
            }
            Err(_) => unreachable!("slab entry {idx} missing from the index"),
        }
        let free = self.free;
        *self.get_mut(idx) = Entry { next: free, ..VACANT };
        self.free = idx;
        self.len -= 1;
        entry
    }
}

/// The heads of the intrusive lists live in the wheel; these link and unlink
/// an entry given a mutable head.
impl Slab {
    /// Pushes `idx` at the front of the list whose head is `head`.
    #[inline]
    pub(crate) fn push_front(&mut self, head: &mut u32, idx: u32) {
        let old = *head;
        {
            let e = self.get_mut(idx);
            e.prev = NIL;
            e.next = old;
        }
        if old != NIL {
            self.get_mut(old).prev = idx;
        }
        *head = idx;
    }

    /// Unlinks `idx` from the list whose head is `head`.
    #[inline]
    pub(crate) fn unlink(&mut self, head: &mut u32, idx: u32) {
        let Entry { prev, next, .. } = *self.get(idx);
        if prev == NIL {
            debug_assert_eq!(*head, idx, "entry without prev must be the list head");
            *head = next;
        } else {
            self.get_mut(prev).next = next;
        }
        if next != NIL {
            self.get_mut(next).prev = prev;
        }
        let e = self.get_mut(idx);
        e.prev = NIL;
        e.next = NIL;
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
    fn lists_link_and_unlink_anywhere() {
        let mut slab = Slab::new();
        let ids: Vec<u32> = (0..4).map(|i| slab.insert(i, 0)).collect();
        let mut head = NIL;
        for &i in &ids {
            slab.push_front(&mut head, i);
        }
        let walk = |slab: &Slab, head: u32| {
            let mut out = vec![];
            let mut cur = head;
            while cur != NIL {
                out.push(cur);
                cur = slab.get(cur).next;
            }
            out
        };
        assert_eq!(walk(&slab, head), vec![ids[3], ids[2], ids[1], ids[0]]);
        slab.unlink(&mut head, ids[2]); // middle
        slab.unlink(&mut head, ids[3]); // head
        slab.unlink(&mut head, ids[0]); // tail
        assert_eq!(walk(&slab, head), vec![ids[1]]);
        slab.unlink(&mut head, ids[1]);
        assert_eq!(head, NIL);
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
