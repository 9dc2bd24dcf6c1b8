//! Cascade figures on one core: state machine transitions/s, engine
//! throughput with timers, and restoring 1 M pending cascades.
//!
//! `cargo bench -p hermes_core_rs --bench cascade`

use std::hint::black_box;
use std::time::Instant;

use hermes_core::cascade::{Action, Cascade, Channel, Engine, Event, Plan, Receipt, Step};

/// CPU time of this thread, so figures are per core even on a shared machine.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("linux schedstat");
    let ns: u64 = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("cpu ns");
    ns as f64 / 1e9
}

/// Wall and CPU seconds since a start taken with `start()`.
struct Clock(Instant, f64);

impl Clock {
    fn start() -> Clock {
        Clock(Instant::now(), cpu_secs())
    }

    fn cpu(&self) -> f64 {
        cpu_secs() - self.1
    }

    fn wall(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

fn seed_plan() -> Plan {
    Plan {
        steps: vec![Step::new(Channel::Sms, 30_000), Step::new(Channel::Email, 30_000)],
        send_at: None,
        expires_at: None,
    }
}

fn id(n: u64) -> u128 {
    // Spread like random UUIDs.
    let x = u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    x ^ (x >> 64)
}

/// The seed cascade, five transitions per message: start, SMS accepted,
/// step timeout, email accepted, email delivered.
fn transitions() {
    let n = 1_000_000u64;
    let plan = seed_plan();
    let mut out = Vec::with_capacity(32);
    let mut transitions = 0u64;
    let t = Clock::start();
    for _ in 0..n {
        let mut c = Cascade::new();
        c.handle(Event::Start(plan.clone()), 0, &mut out);
        c.handle(
            Event::Accepted {
                step: 0,
                attempt: 1,
                account: None,
            },
            100,
            &mut out,
        );
        c.handle(Event::TimerFired { deadline: 30_000 }, 30_000, &mut out);
        c.handle(
            Event::Accepted {
                step: 1,
                attempt: 2,
                account: None,
            },
            30_100,
            &mut out,
        );
        c.handle(
            Event::Receipt {
                step: 1,
                attempt: 2,
                status: Receipt::Delivered,
            },
            31_000,
            &mut out,
        );
        transitions += 5;
        black_box(&out);
        out.clear();
    }
    let (secs, wall) = (t.cpu(), t.wall());
    println!(
        "state machine: {:.2} M transitions per CPU-second ({:.2} M/s wall; seed cascade, 5 per message incl. a fresh plan each, {} M messages)",
        transitions as f64 / secs / 1e6,
        transitions as f64 / wall / 1e6,
        n / 1_000_000
    );

    // The hot path alone: a receipt deciding a running step.
    let mut base = Cascade::new();
    base.handle(Event::Start(plan), 0, &mut out);
    out.clear();
    let t = Clock::start();
    for _ in 0..n {
        let mut c = base.clone();
        c.handle(
            Event::Receipt {
                step: 0,
                attempt: 1,
                status: Receipt::Delivered,
            },
            5_000,
            &mut out,
        );
        black_box(&out);
        out.clear();
    }
    let (secs, wall) = (t.cpu(), t.wall());
    println!(
        "state machine: {:.2} M receipt transitions per CPU-second ({:.2} M/s wall; clone + handle)",
        n as f64 / secs / 1e6,
        n as f64 / wall / 1e6
    );
}

fn engine_throughput() {
    let n = 1_000_000u64;
    let mut engine = Engine::new(0);
    let mut out: Vec<(u128, Action)> = Vec::with_capacity(8 * n as usize);
    let t = Clock::start();
    engine.apply((0..n).map(|i| (id(i), Event::Start(seed_plan()))), 0, &mut out);
    out.clear();
    engine.apply(
        (0..n).map(|i| {
            (
                id(i),
                Event::Accepted {
                    step: 0,
                    attempt: 1,
                    account: None,
                },
            )
        }),
        100,
        &mut out,
    );
    out.clear();
    engine.tick(30_000, &mut out); // 1 M step timeouts fire inside the engine
    out.clear();
    engine.apply(
        (0..n).map(|i| {
            (
                id(i),
                Event::Receipt {
                    step: 1,
                    attempt: 2,
                    status: Receipt::Delivered,
                },
            )
        }),
        31_000,
        &mut out,
    );
    let (secs, wall) = (t.cpu(), t.wall());
    assert!(engine.is_empty());
    println!(
        "engine: {:.2} M events per CPU-second ({:.2} M/s wall; 1 M seed cascades: start, accepted, timeout via tick, delivered)",
        4.0 * n as f64 / secs / 1e6,
        4.0 * n as f64 / wall / 1e6
    );
}

fn restore() {
    let n = 1_000_000u64;
    let mut engine = Engine::new(0);
    let mut out = Vec::new();
    engine.apply((0..n).map(|i| (id(i), Event::Start(seed_plan()))), 0, &mut out);
    let dump = engine.dump();
    let singles: Vec<(u128, Vec<u8>)> = (0..n).map(|i| (id(i), engine.export(id(i)).unwrap())).collect();
    drop(engine);

    let t = Clock::start();
    let loaded = Engine::load(&dump).unwrap();
    let (secs, wall) = (t.cpu(), t.wall());
    assert_eq!(loaded.len(), n as usize);
    println!(
        "restore: 1 M pending cascades from one dump ({:.0} MB) in {:.3} CPU-seconds ({:.3} s wall)",
        dump.len() as f64 / 1e6,
        secs,
        wall
    );
    drop(loaded);

    let t = Clock::start();
    let mut fresh = Engine::new(0);
    fresh.reserve(singles.len()); // the worker knows its row count
    for (i, bytes) in &singles {
        fresh.restore(*i, bytes).unwrap();
    }
    let (secs, wall) = (t.cpu(), t.wall());
    assert_eq!(fresh.len(), n as usize);
    println!(
        "restore: 1 M pending cascades one by one (per-row states, {} bytes each) in {:.3} CPU-seconds ({:.3} s wall)",
        singles[0].1.len(),
        secs,
        wall
    );
}

fn main() {
    transitions();
    engine_throughput();
    restore();
}
