//! Hostile calls: each is contained with its catalogue code, and the
//! runtime serves a good call right after.

use super::*;
use std::time::{Duration, Instant};

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let rt = runtime_with(small_fuel());
    let err = call_err(&rt, &Wat::build("(loop $l (br $l)) (unreachable)"));
    assert_eq!(err.code(), "adapter.out_of_fuel", "{err}");
}

#[test]
fn infinite_loop_with_unlimited_fuel_hits_the_deadline() {
    let limits = Limits {
        fuel: u64::MAX,
        timeout: Duration::from_millis(20),
        ..Limits::default()
    };
    let rt = runtime_with(limits);
    let started = Instant::now();
    let err = call_err(&rt, &Wat::build("(loop $l (br $l)) (unreachable)"));
    assert_eq!(err.code(), "adapter.timeout", "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    let rt = runtime();
    // Grows until refused, then traps, as a bump allocator does.
    let trapping =
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (unreachable)";
    assert_eq!(
        call_err(&rt, &Wat::build(trapping)).code(),
        "adapter.memory_exceeded"
    );
    // Ignores the refusal and keeps asking until its fuel is gone.
    let stubborn = "(loop $l (drop (memory.grow (i32.const 1))) (br $l)) (unreachable)";
    assert_eq!(
        call_err(&rt, &Wat::build(stubborn)).code(),
        "adapter.memory_exceeded"
    );
}

#[test]
fn memory_under_the_cap_is_usable() {
    let limits = Limits {
        memory_bytes: 4 << 20,
        ..Limits::default()
    };
    let rt = runtime_with(limits);
    // 2 pages + 60 pages = 62 pages < 64 pages (4 MiB): granted.
    let body = format!("(drop (memory.grow (i32.const 60))) {ECHO}");
    let adapter = load(&rt, &Wat::build(&body));
    assert!(rt
        .call(&adapter, Entry::BuildRequest, GOOD_REQUEST, None)
        .is_ok());
}

#[test]
fn deep_recursion_traps() {
    let rt = runtime();
    let wat = Wat {
        build: "(call $deep (i32.const 0)) (drop) (unreachable)".into(),
        extra: "(func $deep (param i32) (result i32) (call $deep (i32.add (local.get 0) (i32.const 1))))".into(),
        ..Wat::default()
    };
    let err = call_err(&rt, &wat);
    assert_eq!(err.code(), "adapter.trap", "{err}");
    assert!(err.message.contains("stack overflow"), "{err}");
}

#[test]
fn plain_traps_are_contained() {
    let rt = runtime();
    let err = call_err(
        &rt,
        &Wat::build("(drop (i32.div_u (i32.const 1) (i32.const 0))) (unreachable)"),
    );
    assert_eq!(err.code(), "adapter.trap", "{err}");
    let err = call_err(
        &rt,
        &Wat::build("(drop (i32.load (i32.const -4))) (unreachable)"),
    );
    assert_eq!(err.code(), "adapter.trap", "{err}");
    assert!(err.message.contains("out of bounds"), "{err}");
}

#[test]
fn malformed_output_is_bad_output() {
    let rt = runtime();
    let end_of_memory = 40 * 65536;
    let cases = [
        // Over the 1 MiB output cap (the memory is big enough to hold it).
        (packed(0, 2 << 20), "over the"),
        // Pointer and length past the end of memory.
        (packed(0xffff_0000, 16), "outside"),
        (packed(end_of_memory - 16, 255), "outside"),
        (packed(128, 15), "not a JSON object"),
        (packed(160, 3), "not UTF-8"),
    ];
    for (body, needle) in cases {
        let wat = Wat {
            build: body.clone(),
            pages: 40,
            ..Wat::default()
        };
        let err = call_err(&rt, &wat);
        assert_eq!(err.code(), "adapter.bad_output", "{body}: {err}");
        assert!(err.message.contains(needle), "{body}: {err}");
    }
}

#[test]
fn an_out_of_bounds_allocation_is_bad_output() {
    let rt = runtime();
    let liar = raw_module(
        1,
        SMALL_MANIFEST,
        r#"(func (export "hermes_abi_version") (result i32) (i32.const 1))
  (func (export "hermes_alloc") (param i32) (result i32) (i32.const -16))
  (func (export "hermes_build_request") (param i32 i32) (result i64) (i64.const 0))
  (func (export "hermes_parse_response") (param i32 i32) (result i64) (i64.const 0))
  (func (export "hermes_parse_callback") (param i32 i32) (result i64) (i64.const 0))"#,
    );
    let liar = rt.load(&liar).expect("load").adapter;
    let err = rt
        .call(&liar, Entry::BuildRequest, b"{}", None)
        .unwrap_err();
    assert_eq!(err.code(), "adapter.bad_output", "{err}");
    assert!(err.message.contains("hermes_alloc(2) returned"), "{err}");
    assert_serving(&rt);
}

#[test]
fn adapter_errors_keep_the_adapter_code() {
    let rt = runtime();
    let body = packed(
        192,
        r#"{"error":{"code":"provider.rejected","message":"nope"}}"#.len() as u32,
    );
    let err = call_err(&rt, &Wat::build(&body));
    assert_eq!(
        (err.code(), err.message.as_str()),
        ("provider.rejected", "nope")
    );
    assert_eq!(err.origin, Origin::Adapter("provider.rejected".into()));
}

#[test]
fn an_input_larger_than_the_memory_cap_is_contained() {
    let limits = Limits {
        memory_bytes: 1 << 20,
        output_bytes: 1 << 20,
        ..Limits::default()
    };
    let rt = runtime_with(limits);
    let adapter = load(&rt, &Wat::default());
    let huge = vec![b' '; 2 << 20];
    let err = rt
        .call(&adapter, Entry::ParseResponse, &huge, None)
        .unwrap_err();
    assert_eq!(err.code(), "adapter.memory_exceeded", "{err}");
    assert_serving(&rt);
}

#[test]
fn each_version_counts_its_calls_failures_and_fuel() {
    let rt = runtime_with(small_fuel());
    let good = load(&rt, &Wat::default());
    assert_eq!(good.stats.totals(), CallTotals::default());
    for _ in 0..3 {
        rt.call(&good, Entry::BuildRequest, GOOD_REQUEST, None)
            .expect("good call");
    }
    let totals = good.stats.totals();
    assert_eq!((totals.calls, totals.failures), (3, 0));
    assert!(totals.fuel > 0 && totals.fuel % 3 == 0, "{totals:?}");

    // A loop burns the whole budget, and the failure is counted on its own version.
    let spin = load(&rt, &Wat::build("(loop $l (br $l)) (unreachable)"));
    let err = rt
        .call(&spin, Entry::BuildRequest, GOOD_REQUEST, None)
        .expect_err("out of fuel");
    assert_eq!(err.code(), "adapter.out_of_fuel");
    let spun = spin.stats.totals();
    assert_eq!(
        (spun.calls, spun.failures, spun.fuel),
        (1, 1, small_fuel().fuel)
    );
    assert_eq!(good.stats.totals(), totals);
}
