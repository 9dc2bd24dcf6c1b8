//! Isolation between calls, batches, hosts, unloading, caching, limits.

use super::*;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn echo_round_trips_and_reports_its_manifest() {
    let rt = runtime();
    let loaded = rt.load(&Wat::default().bytes()).unwrap();
    let m = &loaded.adapter.manifest;
    assert_eq!(
        (m.name.as_str(), m.version.as_str()),
        ("test_adapter", "1.0.0")
    );
    assert_eq!(m.allowed_hosts, ["api.example.com"]);
    assert_eq!(m.json, MANIFEST);
    let out = rt.call(
        &loaded.adapter,
        Entry::ParseCallback,
        br#"{"x":"\u00e9 \ud83d\ude00"}"#,
        None,
    );
    assert_eq!(out.unwrap(), r#"{"x":"\u00e9 \ud83d\ude00"}"#);
    assert_serving(&rt);
}

#[test]
fn every_call_gets_a_fresh_instance() {
    let rt = runtime();
    // Bumps a global and a memory cell; only a fresh instance sees both at 1.
    let body = "
        (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
        (i32.store (i32.const 8) (i32.add (i32.load (i32.const 8)) (i32.const 1)))
        (if (result i64) (i32.and (i32.eq (global.get $counter) (i32.const 1))
                                  (i32.eq (i32.load (i32.const 8)) (i32.const 1)))
          (then (i64.const 0x0000004000000015))
          (else (i64.const 0x0000006000000016)))";
    let wat = Wat {
        parse_response: body.into(),
        ..Wat::default()
    };
    let adapter = load(&rt, &wat);
    let inputs: Vec<&[u8]> = vec![b"{}"; 20];
    for out in rt.call_batch(&adapter, Entry::ParseResponse, &inputs, None) {
        assert_eq!(out.unwrap(), r#"{"fresh":true}"#);
    }
}

#[test]
fn the_previous_message_is_not_in_memory() {
    let rt = runtime();
    // The allocator always answers 65536. A long message, then a short one:
    // if memory were reused, the long one's tail would follow the short one.
    let probe = raw_module(
        2,
        SMALL_MANIFEST,
        &format!(
            r#"(data (i32.const 16) "{{\"ok\":{{\"zero\":true}}}}{{\"ok\":{{\"zero\":false}}}}")
  (func (export "hermes_abi_version") (result i32) (i32.const 1))
  (func (export "hermes_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "hermes_build_request") (param i32 i32) (result i64) (i64.const 0))
  (func (export "hermes_parse_response") (param $p i32) (param $n i32) (result i64)
    (if (result i64) (i64.eqz (i64.load (i32.const 65560)))
      (then {zero})
      (else {dirty})))
  (func (export "hermes_parse_callback") (param $p i32) (param $n i32) (result i64) {zero})"#,
            zero = packed(16, 20),
            dirty = packed(36, 21),
        ),
    );
    let probe = rt.load(&probe).unwrap().adapter;
    let long = [b'x'; 64];
    assert_eq!(
        rt.call(&probe, Entry::ParseCallback, &long, None).unwrap(),
        r#"{"zero":true}"#
    );
    let out = rt.call(&probe, Entry::ParseResponse, b"{}", None).unwrap();
    assert_eq!(out, r#"{"zero":true}"#);
}

#[test]
fn build_request_urls_must_go_to_allowed_hosts() {
    let rt = runtime();
    let adapter = load(&rt, &Wat::default());
    let evil = br#"{"method":"POST","url":"https://evil.example/steal","headers":[],"body":""}"#;
    let err = rt
        .call(&adapter, Entry::BuildRequest, evil, None)
        .unwrap_err();
    assert_eq!(err.code(), "adapter.host_not_allowed", "{err}");
    // The account's base URL (the provider sandbox in test mode) is allowed.
    let local =
        br#"{"method":"POST","url":"http://127.0.0.1:8900/v1/send","headers":[],"body":""}"#;
    assert!(rt
        .call(
            &adapter,
            Entry::BuildRequest,
            local,
            Some("http://127.0.0.1:8900")
        )
        .is_ok());
    assert!(rt.call(&adapter, Entry::BuildRequest, local, None).is_err());
    // An account without a base URL may pass an empty string.
    assert!(rt
        .call(&adapter, Entry::BuildRequest, local, Some(""))
        .is_err());
    assert!(rt
        .call(&adapter, Entry::BuildRequest, GOOD_REQUEST, Some(""))
        .is_ok());
    // Other entries return what they return; only requests carry URLs.
    assert!(rt.call(&adapter, Entry::ParseResponse, evil, None).is_ok());
    let shapeless = br#"{"url":"https://api.example.com/"}"#;
    let err = rt
        .call(&adapter, Entry::BuildRequest, shapeless, None)
        .unwrap_err();
    assert_eq!(err.code(), "adapter.bad_output");
}

#[test]
fn batches_report_each_message_on_its_own() {
    let rt = runtime();
    let adapter = load(&rt, &Wat::default());
    let evil: &[u8] = br#"{"method":"GET","url":"https://evil.example/","headers":[]}"#;
    let inputs = [GOOD_REQUEST, evil, b"not json", GOOD_REQUEST];
    let out = rt.call_batch(&adapter, Entry::BuildRequest, &inputs, None);
    let codes: Vec<&str> = out
        .iter()
        .map(|r| r.as_ref().map_or_else(|e| e.code(), |_| "ok"))
        .collect();
    assert_eq!(
        codes,
        ["ok", "adapter.host_not_allowed", "adapter.bad_output", "ok"]
    );
    let bad_base = rt.call_batch(&adapter, Entry::BuildRequest, &inputs, Some("not a url"));
    assert!(bad_base
        .iter()
        .all(|r| r.as_ref().unwrap_err().code() == "request.invalid"));
}

#[test]
fn calls_in_flight_survive_unload() {
    let rt = runtime();
    let wat = Wat {
        extra: "(data (i32.const 4096) \"unload-test\")".into(),
        ..Wat::default()
    };
    let adapter = load(&rt, &wat);
    let sha = cache::hex(&adapter.sha256);
    assert!(rt.get(&sha).is_ok());
    assert!(rt.unload(&sha).unwrap());
    assert!(!rt.unload(&sha).unwrap());
    assert_eq!(rt.get(&sha).err().unwrap().code(), "request.not_found");
    // The caller still holding the version finishes on it.
    assert!(rt
        .call(&adapter, Entry::BuildRequest, GOOD_REQUEST, None)
        .is_ok());
    assert_eq!(rt.get("xyz").err().unwrap().code(), "request.invalid");
}

#[test]
fn compiled_code_is_cached_on_disk_and_in_memory() {
    let dir = std::env::temp_dir().join(format!("hermes-sandbox-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = Runtime::new(Limits::default(), Some(dir.clone())).unwrap();
    let wat = Wat {
        extra: "(data (i32.const 4096) \"cache-test\")".into(),
        ..Wat::default()
    };
    let bytes = wat.bytes();

    let first = rt.load(&bytes).unwrap();
    assert_eq!(first.source, Source::Compiled);
    let again = rt.load(&bytes).unwrap();
    assert_eq!(again.source, Source::MemoryCache);
    assert!(Arc::ptr_eq(&first.adapter, &again.adapter));

    let sha = cache::hex(&first.adapter.sha256);
    rt.unload(&sha).unwrap();
    let from_disk = rt.load(&bytes).unwrap();
    assert_eq!(from_disk.source, Source::DiskCache);
    assert!(rt
        .call(&from_disk.adapter, Entry::BuildRequest, GOOD_REQUEST, None)
        .is_ok());

    // A corrupted file is ignored and rewritten.
    rt.unload(&sha).unwrap();
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let mut data = std::fs::read(&files[0]).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&files[0], &data).unwrap();
    assert_eq!(rt.load(&bytes).unwrap().source, Source::Compiled);
    rt.unload(&sha).unwrap();
    assert_eq!(rt.load(&bytes).unwrap().source, Source::DiskCache);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_calls_each_get_their_own_instance() {
    let rt = Arc::new(runtime());
    let adapter = load(&rt, &Wat::default());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (rt, adapter) = (Arc::clone(&rt), Arc::clone(&adapter));
            std::thread::spawn(move || {
                let inputs = vec![GOOD_REQUEST; 200];
                rt.call_batch(&adapter, Entry::BuildRequest, &inputs, None)
                    .into_iter()
                    .all(|r| r.is_ok_and(|s| s.as_bytes() == GOOD_REQUEST))
            })
        })
        .collect();
    assert!(threads.into_iter().all(|t| t.join().unwrap()));
}

#[test]
fn limits_are_validated() {
    let bad = [
        Limits {
            fuel: 0,
            ..Limits::default()
        },
        Limits {
            timeout: Duration::ZERO,
            ..Limits::default()
        },
        Limits {
            memory_bytes: 1024,
            ..Limits::default()
        },
        Limits {
            memory_bytes: 1 << 30,
            ..Limits::default()
        },
        Limits {
            output_bytes: 0,
            ..Limits::default()
        },
    ];
    for limits in bad {
        assert!(Runtime::new(limits, None).is_err(), "{limits:?}");
    }
    let d = Limits::default();
    assert_eq!(
        (d.fuel, d.timeout, d.memory_bytes, d.output_bytes),
        (50_000_000, Duration::from_millis(50), 16 << 20, 1 << 20)
    );
}

#[test]
fn deadlines_cover_the_timeout() {
    assert_eq!(engine::ticks_for(Duration::from_millis(50)), 51);
    assert_eq!(engine::ticks_for(Duration::from_micros(1500)), 3);
    assert!(engine::deadline_ticks(Duration::from_millis(50)) >= 51);
}
