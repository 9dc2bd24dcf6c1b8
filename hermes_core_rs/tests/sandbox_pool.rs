//! The adapter sandbox at capacity. A test binary of its own (its own process,
//! so its own engine, with a pool of 4 instances): filling the shared pool
//! would starve the unit tests that `cargo test` runs in parallel.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use hermes_core::sandbox::{set_pool_instances, Entry, Limits, Runtime};

/// A module that spins in `hermes_build_request` and answers `{"ok":{}}` from
/// `hermes_parse_response`.
fn spinner() -> Vec<u8> {
    let manifest =
        r#"{"name":"spinner","version":"1","abi":1,"channels":["sms"],"allowed_hosts":[]}"#;
    wat::parse_str(format!(
        r#"(module
  (memory (export "memory") 1)
  (data (i32.const 0) "{{\"ok\":{{}}}}")
  (data (i32.const 1024) "{escaped}")
  (func (export "hermes_abi_version") (result i32) (i32.const 1))
  (func (export "hermes_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "hermes_manifest") (result i64) (i64.const {manifest_at}))
  (func (export "hermes_build_request") (param i32 i32) (result i64) (loop $l (br $l)) (unreachable))
  (func (export "hermes_parse_response") (param i32 i32) (result i64) (i64.const 9))
  (func (export "hermes_parse_callback") (param i32 i32) (result i64) (i64.const 9)))"#,
        escaped = manifest.replace('"', "\\\""),
        manifest_at = (1024u64 << 32) | manifest.len() as u64,
    ))
    .expect("wat")
}

#[test]
fn calls_beyond_the_pool_are_refused_retryably_and_serving_resumes() {
    // Every spinning call holds one of the pooled slots until its deadline.
    let slots = 4;
    set_pool_instances(slots as u32).expect("first in this process");
    let limits = Limits {
        fuel: u64::MAX,
        timeout: Duration::from_millis(1000),
        ..Limits::default()
    };
    let rt = Arc::new(Runtime::new(limits, None).expect("runtime"));
    assert!(
        set_pool_instances(8).is_err(),
        "the pool is fixed once the engine exists"
    );
    let adapter = rt.load(&spinner()).expect("load").adapter;
    let callers = slots + 3;
    let start = Arc::new(Barrier::new(callers));
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            let (rt, adapter, start) = (Arc::clone(&rt), Arc::clone(&adapter), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                rt.call(&adapter, Entry::BuildRequest, b"{}", None)
                    .expect_err("spins")
                    .code()
                    .to_owned()
            })
        })
        .collect();
    let codes: Vec<String> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let busy = codes.iter().filter(|c| *c == "internal.error").count();
    let timed_out = codes.iter().filter(|c| *c == "adapter.timeout").count();
    assert_eq!((timed_out, busy), (slots, callers - slots), "{codes:?}");
    assert!(
        hermes_core::errors::ErrorCode::InternalError
            .info()
            .retryable
    );
    // The slots came back: a good call works.
    assert_eq!(
        rt.call(&adapter, Entry::ParseResponse, b"{}", None)
            .expect("serving"),
        "{}"
    );
}
