//! Timer wheel figures on one core: insert+cancel pairs/s, expirations/s and
//! bytes per pending timer at 10 M timers, measured with a counting allocator.
//!
//! `cargo bench -p hermes_core_rs --bench wheel` (set `HERMES_BENCH_TIMERS` to
//! change the 10 M of the memory figure).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hermes_core::wheel::Wheel;

/// Counts live heap bytes, so memory is measured rather than computed.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let live = if new_size >= layout.size() {
            LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size()
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed) - (layout.size() - new_size)
        };
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Random-looking 128-bit ids, as UUIDv4 message ids are.
struct Ids(u64);

impl Ids {
    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn id(&mut self) -> u128 {
        (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())
    }
}

const DAY_MS: u64 = 24 * 3_600_000;
const START: u64 = 1_764_000_000_000;

/// CPU time of this thread, so figures are per core even on a shared machine
/// (wall time counts the moments other processes held the core).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("linux schedstat");
    let ns: u64 = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("cpu ns");
    ns as f64 / 1e9
}

/// Runs `f`, returning (wall seconds, CPU seconds).
fn timed(f: impl FnOnce()) -> (f64, f64) {
    let (t, c) = (Instant::now(), cpu_secs());
    f();
    (t.elapsed().as_secs_f64(), cpu_secs() - c)
}

fn rate(n: u64, secs: f64) -> f64 {
    n as f64 / secs / 1e6
}

fn insert_cancel_pairs(pending: usize) {
    let mut ids = Ids(1);
    let mut wheel = Wheel::new(START);
    for _ in 0..pending {
        let d = START + 1 + ids.next_u64() % (35 * DAY_MS);
        wheel.insert(ids.id(), d);
    }
    let pairs = 2_000_000u64;
    let batch: Vec<(u128, u64)> = (0..pairs)
        .map(|_| (ids.id(), START + 1 + ids.next_u64() % 600_000))
        .collect();
    let (wall, cpu) = timed(|| {
        for &(id, d) in &batch {
            wheel.insert(id, d);
            black_box(wheel.cancel(id));
        }
    });
    println!(
        "insert+cancel pairs, interleaved, {pending} pending: {:.2} M pairs/s per CPU-second ({:.2} M/s wall)",
        rate(pairs, cpu),
        rate(pairs, wall)
    );
    let (wall, cpu) = timed(|| {
        for &(id, d) in &batch {
            wheel.insert(id, d);
        }
        for &(id, _) in &batch {
            black_box(wheel.cancel(id));
        }
    });
    println!(
        "insert+cancel pairs, 2 M inserts then 2 M cancels, {pending} pending: {:.2} M pairs/s per CPU-second ({:.2} M/s wall)",
        rate(pairs, cpu),
        rate(pairs, wall)
    );
    let only_ids: Vec<u128> = batch.iter().map(|&(id, _)| id).collect();
    let (wall, cpu) = timed(|| {
        wheel.insert_many(&batch);
        assert_eq!(wheel.cancel_many(&only_ids), batch.len());
    });
    println!(
        "insert+cancel pairs, insert_many(2 M) then cancel_many(2 M), {pending} pending: {:.2} M pairs/s per CPU-second ({:.2} M/s wall)",
        rate(pairs, cpu),
        rate(pairs, wall)
    );
}

fn expirations(n: u64, spread_ms: u64, step_ms: u64, what: &str) {
    let mut ids = Ids(2);
    let mut wheel = Wheel::new(START);
    for _ in 0..n {
        wheel.insert(ids.id(), START + 1 + ids.next_u64() % spread_ms);
    }
    let mut out = Vec::with_capacity(n as usize);
    let mut now = START;
    let (wall, cpu) = timed(|| {
        while !wheel.is_empty() {
            now += step_ms;
            wheel.advance(now, &mut out);
        }
    });
    assert_eq!(out.len() as u64, n);
    println!(
        "expirations, {} M timers over {what}: {:.2} M/s per CPU-second ({:.2} M/s wall)",
        n as f64 / 1e6,
        rate(n, cpu),
        rate(n, wall)
    );
}

fn bytes_per_timer() {
    let n: usize = std::env::var("HERMES_BENCH_TIMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let mut ids = Ids(3);
    let deadlines: Vec<(u128, u64)> = (0..n)
        .map(|_| (ids.id(), START + 1 + ids.next_u64() % (35 * DAY_MS)))
        .collect();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut wheel = Wheel::new(START);
    let (_, secs) = timed(|| {
        for &(id, d) in &deadlines {
            wheel.insert(id, d);
        }
    });
    let live = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;
    println!(
        "memory at {} M pending timers: {:.1} bytes/timer live ({:.1} at peak, during the index's last growth); inserted at {:.2} M/s per CPU-second",
        n as f64 / 1e6,
        live as f64 / n as f64,
        peak as f64 / n as f64,
        n as f64 / secs / 1e6
    );
    black_box(&wheel);
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument, if any, is ignored.
    for pending in [10_000, 1_000_000] {
        insert_cancel_pairs(pending);
    }
    expirations(1_000_000, 60_000, 1, "60 s, advanced 1 ms at a time");
    expirations(4_000_000, 60_000, 1, "60 s, advanced 1 ms at a time");
    expirations(
        4_000_000,
        35 * DAY_MS,
        60_000,
        "35 days, advanced 1 min at a time (4 levels of cascading)",
    );
    bytes_per_timer();
}
