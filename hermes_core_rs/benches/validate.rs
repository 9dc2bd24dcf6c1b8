//! Validation and routing figures on one core, without Python.
//!
//! `cargo bench -p hermes_core_rs --bench validate`
//!
//! Prints `name: value unit` lines; `benches/test_validate_py.py --with-rust`
//! copies them into BENCHMARKS.md.

use std::hint::black_box;

use hermes_core::router::{seed_for, AccountSpec, HealthConfig, Router};
use hermes_core::validate::{validate_batch, Channel, MessageInput, StepInput, TenantPolicy};

/// CPU time of this thread, so figures are per core even on a shared machine.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("linux schedstat");
    let ns: u64 = stat.split_whitespace().next().and_then(|v| v.parse().ok()).expect("cpu ns");
    ns as f64 / 1e9
}

/// Best rate over rounds totalling at least one CPU-second.
fn best_rate(items: usize, mut round: impl FnMut()) -> f64 {
    round();
    let (mut spent, mut best, mut rounds) = (0.0, 0.0f64, 0);
    while spent < 1.0 || rounds < 3 {
        let t0 = cpu_secs();
        round();
        let dt = cpu_secs() - t0;
        spent += dt;
        rounds += 1;
        best = best.max(items as f64 / dt);
    }
    best
}

const PHONES: [&str; 10] = [
    "+14155552671", "+447400123456", "+4915123456789", "+33612345678", "+5511912345678",
    "+919876543210", "+61412345678", "+8613812345678", "+2348031234567", "+390236618300",
];

fn typical(n: usize) -> Vec<MessageInput> {
    (0..n)
        .map(|i| MessageInput {
            phone: Some(PHONES[i % PHONES.len()].to_string()),
            email: Some(format!("customer.{i}@Example.com")),
            body: Some(format!("Your verification code is {:06}. It expires in 10 minutes.", i % 1_000_000)),
            subject: Some("Your verification code".into()),
            steps: vec![
                StepInput { channel: "sms".into(), timeout_ms: Some(30_000) },
                StepInput { channel: "email".into(), timeout_ms: None },
            ],
            expires_at_ms: Some(1_800_000_600_000),
            ..Default::default()
        })
        .collect()
}

fn main() {
    let batch = typical(10_000);
    let policy = TenantPolicy::default();
    assert!(validate_batch(&batch, &policy, 1_800_000_000_000).iter().all(Result::is_ok));
    let rate = best_rate(batch.len(), || {
        black_box(validate_batch(black_box(&batch), &policy, 1_800_000_000_000));
    });
    println!("validate: {rate:.0} messages/s");

    let mut router = Router::new(HealthConfig::default());
    for (i, (priority, weight)) in [(1, 3), (1, 1), (2, 1), (2, 1)].into_iter().enumerate() {
        router.add_account(AccountSpec {
            id: format!("acct{i}"),
            tenant: "tenant".into(),
            channel: Channel::Sms,
            priority,
            weight,
            default_cost: Some(0.01 * (i + 1) as f64),
            costs: vec![],
        });
    }
    let seeds: Vec<u64> = (0..100_000).map(|i| seed_for(&format!("msg_{i}"), 0)).collect();
    let rate = best_rate(seeds.len(), || {
        for &seed in &seeds {
            black_box(router.select("tenant", Channel::Sms, Some(*b"GB"), &[], seed, 0));
        }
    });
    println!("router_select: {rate:.0} selections/s");
}
