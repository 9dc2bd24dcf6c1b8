//! The sandbox against hostile and well-behaved modules written in WAT.
//!
//! Every hostile call is followed by a good call on the same runtime: a
//! contained failure must leave the process serving.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

const MANIFEST: &str = r#"{"name":"test_adapter","version":"1.0.0","abi":1,"channels":["sms"],"allowed_hosts":["api.example.com"],"credentials":["token"],"callback_auth":null,"token":null}"#;

const ECHO: &str = "(call $ok (local.get $p) (local.get $n))";

/// A module of ABI v1 whose parts a test can replace. By default every entry
/// echoes its input back as `{"ok": <input>}`.
struct Wat {
    abi: i32,
    pages: u32,
    imports: &'static str,
    build: String,
    parse_response: String,
    manifest: String,
    extra: String,
    export_parse_callback: bool,
}

impl Default for Wat {
    fn default() -> Self {
        Wat {
            abi: 1,
            pages: 2,
            imports: "",
            build: ECHO.into(),
            parse_response: ECHO.into(),
            manifest: MANIFEST.into(),
            extra: String::new(),
            export_parse_callback: true,
        }
    }
}

impl Wat {
    fn build(body: &str) -> Self {
        Wat { build: body.into(), ..Wat::default() }
    }

    fn bytes(&self) -> Vec<u8> {
        let text = format!(
            r#"(module
  {imports}
  (memory (export "memory") {pages})
  (global $heap (mut i32) (i32.const 65536))
  (global $counter (mut i32) (i32.const 0))
  (data (i32.const 16) "{{\"ok\":")
  (data (i32.const 64) "{{\"ok\":{{\"fresh\":true}}}}")
  (data (i32.const 96) "{{\"ok\":{{\"fresh\":false}}}}")
  (data (i32.const 128) "not json at all")
  (data (i32.const 160) "\ff\fe\fd")
  (data (i32.const 192) "{{\"error\":{{\"code\":\"provider.rejected\",\"message\":\"nope\"}}}}")
  (data (i32.const 1024) "{manifest}")
  (func (export "hermes_abi_version") (result i32) (i32.const {abi}))
  (func $alloc (export "hermes_alloc") (param $len i32) (result i32)
    (local $p i32) (local $end i32)
    (local.set $p (global.get $heap))
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    (block $done
      (loop $grow
        (br_if $done (i32.le_u (local.get $end) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
    (global.set $heap (local.get $end))
    (local.get $p))
  (func $pack (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $n))))
  (func $ok (param $p i32) (param $n i32) (result i64)
    (local $out i32)
    (local.set $out (call $alloc (i32.add (local.get $n) (i32.const 7))))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 6))
    (memory.copy (i32.add (local.get $out) (i32.const 6)) (local.get $p) (local.get $n))
    (i32.store8 (i32.add (i32.add (local.get $out) (i32.const 6)) (local.get $n)) (i32.const 125))
    (call $pack (local.get $out) (i32.add (local.get $n) (i32.const 7))))
  (func (export "hermes_manifest") (result i64) (call $pack (i32.const 1024) (i32.const {manifest_len})))
  (func (export "hermes_build_request") (param $p i32) (param $n i32) (result i64) {build})
  (func (export "hermes_parse_response") (param $p i32) (param $n i32) (result i64) {parse_response})
  (func {callback_export} (param $p i32) (param $n i32) (result i64) {echo})
  {extra}
)"#,
            imports = self.imports,
            pages = self.pages,
            manifest = self.manifest.replace('"', "\\\""),
            manifest_len = self.manifest.len(),
            abi = self.abi,
            build = self.build,
            parse_response = self.parse_response,
            callback_export =
                if self.export_parse_callback { r#"(export "hermes_parse_callback")"# } else { "" },
            echo = ECHO,
            extra = self.extra,
        );
        wat::parse_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }
}

const GOOD_REQUEST: &[u8] =
    br#"{"method":"POST","url":"https://api.example.com/v1/send","headers":[["Content-Type","application/json"]],"body":"{\"to\":\"+15550100\"}"}"#;

fn runtime_with(limits: Limits) -> Runtime {
    Runtime::new(limits, None).expect("runtime")
}

fn runtime() -> Runtime {
    runtime_with(Limits::default())
}

/// The default budget (50 M) takes tens of milliseconds to burn, as long as
/// the deadline on a loaded box; 5 M runs out well before it.
fn small_fuel() -> Limits {
    Limits { fuel: 5_000_000, ..Limits::default() }
}

fn load(rt: &Runtime, wat: &Wat) -> Arc<Adapter> {
    rt.load(&wat.bytes()).expect("load").adapter
}

fn load_err(rt: &Runtime, wat: &Wat) -> AdapterError {
    match rt.load(&wat.bytes()) {
        Ok(_) => panic!("module was accepted"),
        Err(e) => e,
    }
}

/// A good call still works on `rt` (the process goes on serving).
fn assert_serving(rt: &Runtime) {
    let good = load(rt, &Wat::default());
    let out = rt.call(&good, Entry::BuildRequest, GOOD_REQUEST, None).expect("good call");
    assert_eq!(out.as_bytes(), GOOD_REQUEST);
}

/// Loads `wat`, calls `build_request` on a good request and returns the error.
fn call_err(rt: &Runtime, wat: &Wat) -> AdapterError {
    let adapter = load(rt, wat);
    let err = rt.call(&adapter, Entry::BuildRequest, GOOD_REQUEST, None).expect_err("call failed");
    assert_serving(rt);
    err
}

#[test]
fn echo_round_trips_and_reports_its_manifest() {
    let rt = runtime();
    let loaded = rt.load(&Wat::default().bytes()).unwrap();
    let m = &loaded.adapter.manifest;
    assert_eq!((m.name.as_str(), m.version.as_str()), ("test_adapter", "1.0.0"));
    assert_eq!(m.allowed_hosts, ["api.example.com"]);
    assert_eq!(m.json, MANIFEST);
    let out = rt.call(&loaded.adapter, Entry::ParseCallback, br#"{"x":"\u00e9 \ud83d\ude00"}"#, None);
    assert_eq!(out.unwrap(), r#"{"x":"\u00e9 \ud83d\ude00"}"#);
    assert_serving(&rt);
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let rt = runtime_with(small_fuel());
    let err = call_err(&rt, &Wat::build("(loop $l (br $l)) (unreachable)"));
    assert_eq!(err.code(), "adapter.out_of_fuel", "{err}");
}

#[test]
fn infinite_loop_with_unlimited_fuel_hits_the_deadline() {
    let limits = Limits { fuel: u64::MAX, timeout: Duration::from_millis(20), ..Limits::default() };
    let rt = runtime_with(limits);
    let started = Instant::now();
    let err = call_err(&rt, &Wat::build("(loop $l (br $l)) (unreachable)"));
    assert_eq!(err.code(), "adapter.timeout", "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    let rt = runtime();
    // Grows until refused, then traps, as a bump allocator does.
    let trapping = "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (unreachable)";
    assert_eq!(call_err(&rt, &Wat::build(trapping)).code(), "adapter.memory_exceeded");
    // Ignores the refusal and keeps asking until its fuel is gone.
    let stubborn = "(loop $l (drop (memory.grow (i32.const 1))) (br $l)) (unreachable)";
    assert_eq!(call_err(&rt, &Wat::build(stubborn)).code(), "adapter.memory_exceeded");
}

#[test]
fn memory_under_the_cap_is_usable() {
    let limits = Limits { memory_bytes: 4 << 20, ..Limits::default() };
    let rt = runtime_with(limits);
    // 2 pages + 60 pages = 62 pages < 64 pages (4 MiB): granted.
    let body = format!("(drop (memory.grow (i32.const 60))) {ECHO}");
    let adapter = load(&rt, &Wat::build(&body));
    assert!(rt.call(&adapter, Entry::BuildRequest, GOOD_REQUEST, None).is_ok());
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
    let err = call_err(&rt, &Wat::build("(drop (i32.div_u (i32.const 1) (i32.const 0))) (unreachable)"));
    assert_eq!(err.code(), "adapter.trap", "{err}");
    let err = call_err(&rt, &Wat::build("(drop (i32.load (i32.const -4))) (unreachable)"));
    assert_eq!(err.code(), "adapter.trap", "{err}");
    assert!(err.message.contains("out of bounds"), "{err}");
}

/// `(i64.const ...)` returning `len` bytes at `ptr`.
fn packed(ptr: u32, len: u32) -> String {
    format!("(i64.const {})", ((u64::from(ptr) << 32) | u64::from(len)) as i64)
}

/// A module written from scratch: `memory` of `pages`, the manifest at 1024
/// and `hermes_manifest` returning it; `funcs` supplies the rest.
fn raw_module(pages: u32, manifest: &str, funcs: &str) -> Vec<u8> {
    let text = format!(
        r#"(module
  (memory (export "memory") {pages})
  (data (i32.const 1024) "{escaped}")
  (func (export "hermes_manifest") (result i64) {manifest_at})
  {funcs})"#,
        escaped = manifest.replace('"', "\\\""),
        manifest_at = packed(1024, manifest.len() as u32),
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

const SMALL_MANIFEST: &str =
    r#"{"name":"raw","version":"1","abi":1,"channels":[],"allowed_hosts":[]}"#;

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
        let wat = Wat { build: body.clone(), pages: 40, ..Wat::default() };
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
    let err = rt.call(&liar, Entry::BuildRequest, b"{}", None).unwrap_err();
    assert_eq!(err.code(), "adapter.bad_output", "{err}");
    assert!(err.message.contains("hermes_alloc(2) returned"), "{err}");
    assert_serving(&rt);
}

#[test]
fn adapter_errors_keep_the_adapter_code() {
    let rt = runtime();
    let body = packed(192, r#"{"error":{"code":"provider.rejected","message":"nope"}}"#.len() as u32);
    let err = call_err(&rt, &Wat::build(&body));
    assert_eq!((err.code(), err.message.as_str()), ("provider.rejected", "nope"));
    assert_eq!(err.origin, Origin::Adapter("provider.rejected".into()));
}

#[test]
fn modules_that_break_the_abi_are_refused_at_load() {
    let rt = runtime();
    let cases = [
        (Wat { export_parse_callback: false, ..Wat::default() }, "missing export \"hermes_parse_callback\""),
        (Wat { abi: 2, ..Wat::default() }, "hermes_abi_version() is 2"),
        (
            Wat { imports: r#"(import "env" "now" (func (result i64)))"#, ..Wat::default() },
            "may not import anything, this module imports env::now",
        ),
        (
            Wat {
                imports: r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
                ..Wat::default()
            },
            "wasi_snapshot_preview1::fd_write",
        ),
        (Wat { pages: 300, ..Wat::default() }, "memory starts at 300 pages"),
        (Wat { manifest: MANIFEST.replace("\"abi\":1", "\"abi\":7"), ..Wat::default() }, "abi is 7"),
        (Wat { manifest: "{\"name\":".into(), ..Wat::default() }, "manifest"),
    ];
    for (wat, needle) in cases {
        let err = load_err(&rt, &wat);
        assert_eq!(err.code(), "adapter.invalid_module", "{err}");
        assert!(err.message.contains(needle), "expected {needle:?} in {err}");
        assert_serving(&rt);
    }
}

#[test]
fn wrong_signatures_are_all_listed() {
    let rt = runtime();
    let wrong = raw_module(
        1,
        SMALL_MANIFEST,
        r#"(func (export "hermes_abi_version") (result i64) (i64.const 1))
  (func (export "hermes_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "hermes_build_request") (param i32) (result i64) (i64.const 0))
  (global (export "hermes_parse_response") i32 (i32.const 0))
  (func (export "hermes_parse_callback") (param i32 i32) (result i64) (i64.const 0))"#,
    );
    let err = rt.load(&wrong).err().expect("refused");
    assert_eq!(err.code(), "adapter.invalid_module");
    for needle in [
        "\"hermes_abi_version\" has type () -> (i64), expected () -> (i32)",
        "\"hermes_build_request\" has type (i32) -> (i64)",
        "\"hermes_parse_response\" is not a function",
    ] {
        assert!(err.message.contains(needle), "expected {needle:?} in {err}");
    }
    assert_serving(&rt);
}

#[test]
fn a_manifest_that_traps_or_loops_is_refused() {
    let rt = runtime();
    for body in ["(unreachable)", "(loop $l (br $l)) (unreachable)"] {
        let module = wat::parse_str(format!(
            r#"(module
  (memory (export "memory") 1)
  (func (export "hermes_abi_version") (result i32) (i32.const 1))
  (func (export "hermes_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "hermes_manifest") (result i64) {body})
  (func (export "hermes_build_request") (param i32 i32) (result i64) (i64.const 0))
  (func (export "hermes_parse_response") (param i32 i32) (result i64) (i64.const 0))
  (func (export "hermes_parse_callback") (param i32 i32) (result i64) (i64.const 0)))"#
        ))
        .unwrap();
        let err = rt.load(&module).err().expect("refused");
        assert_eq!(err.code(), "adapter.invalid_module");
        assert!(err.message.contains("hermes_manifest failed: adapter."), "{err}");
    }
    assert_serving(&rt);
}

#[test]
fn bytes_that_are_not_wasm_are_refused() {
    let rt = runtime();
    for bytes in [&b"\0asm\x01\0\0\0garbage"[..], b"definitely not wasm", b"", b"(module)"] {
        let err = rt.load(bytes).err().expect("refused");
        assert_eq!(err.code(), "adapter.invalid_module");
    }
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
    let wat = Wat { parse_response: body.into(), ..Wat::default() };
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
    assert_eq!(rt.call(&probe, Entry::ParseCallback, &long, None).unwrap(), r#"{"zero":true}"#);
    let out = rt.call(&probe, Entry::ParseResponse, b"{}", None).unwrap();
    assert_eq!(out, r#"{"zero":true}"#);
}

#[test]
fn build_request_urls_must_go_to_allowed_hosts() {
    let rt = runtime();
    let adapter = load(&rt, &Wat::default());
    let evil = br#"{"method":"POST","url":"https://evil.example/steal","headers":[],"body":""}"#;
    let err = rt.call(&adapter, Entry::BuildRequest, evil, None).unwrap_err();
    assert_eq!(err.code(), "adapter.host_not_allowed", "{err}");
    // The account's base URL (the provider sandbox in test mode) is allowed.
    let local = br#"{"method":"POST","url":"http://127.0.0.1:8900/v1/send","headers":[],"body":""}"#;
    assert!(rt.call(&adapter, Entry::BuildRequest, local, Some("http://127.0.0.1:8900")).is_ok());
    assert!(rt.call(&adapter, Entry::BuildRequest, local, None).is_err());
    // An account without a base URL may pass an empty string.
    assert!(rt.call(&adapter, Entry::BuildRequest, local, Some("")).is_err());
    assert!(rt.call(&adapter, Entry::BuildRequest, GOOD_REQUEST, Some("")).is_ok());
    // Other entries return what they return; only requests carry URLs.
    assert!(rt.call(&adapter, Entry::ParseResponse, evil, None).is_ok());
    let shapeless = br#"{"url":"https://api.example.com/"}"#;
    let err = rt.call(&adapter, Entry::BuildRequest, shapeless, None).unwrap_err();
    assert_eq!(err.code(), "adapter.bad_output");
}

#[test]
fn batches_report_each_message_on_its_own() {
    let rt = runtime();
    let adapter = load(&rt, &Wat::default());
    let evil: &[u8] = br#"{"method":"GET","url":"https://evil.example/","headers":[]}"#;
    let inputs = [GOOD_REQUEST, evil, b"not json", GOOD_REQUEST];
    let out = rt.call_batch(&adapter, Entry::BuildRequest, &inputs, None);
    let codes: Vec<&str> = out.iter().map(|r| r.as_ref().map_or_else(|e| e.code(), |_| "ok")).collect();
    assert_eq!(codes, ["ok", "adapter.host_not_allowed", "adapter.bad_output", "ok"]);
    let bad_base = rt.call_batch(&adapter, Entry::BuildRequest, &inputs, Some("not a url"));
    assert!(bad_base.iter().all(|r| r.as_ref().unwrap_err().code() == "request.invalid"));
}

#[test]
fn calls_in_flight_survive_unload() {
    let rt = runtime();
    let wat = Wat { extra: "(data (i32.const 4096) \"unload-test\")".into(), ..Wat::default() };
    let adapter = load(&rt, &wat);
    let sha = cache::hex(&adapter.sha256);
    assert!(rt.get(&sha).is_ok());
    assert!(rt.unload(&sha).unwrap());
    assert!(!rt.unload(&sha).unwrap());
    assert_eq!(rt.get(&sha).err().unwrap().code(), "request.not_found");
    // The caller still holding the version finishes on it.
    assert!(rt.call(&adapter, Entry::BuildRequest, GOOD_REQUEST, None).is_ok());
    assert_eq!(rt.get("xyz").err().unwrap().code(), "request.invalid");
}

#[test]
fn compiled_code_is_cached_on_disk_and_in_memory() {
    let dir = std::env::temp_dir().join(format!("hermes-sandbox-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = Runtime::new(Limits::default(), Some(dir.clone())).unwrap();
    let wat = Wat { extra: "(data (i32.const 4096) \"cache-test\")".into(), ..Wat::default() };
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
    assert!(rt.call(&from_disk.adapter, Entry::BuildRequest, GOOD_REQUEST, None).is_ok());

    // A corrupted file is ignored and rewritten.
    rt.unload(&sha).unwrap();
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
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
        Limits { fuel: 0, ..Limits::default() },
        Limits { timeout: Duration::ZERO, ..Limits::default() },
        Limits { memory_bytes: 1024, ..Limits::default() },
        Limits { memory_bytes: 1 << 30, ..Limits::default() },
        Limits { output_bytes: 0, ..Limits::default() },
    ];
    for limits in bad {
        assert!(Runtime::new(limits, None).is_err(), "{limits:?}");
    }
    let d = Limits::default();
    assert_eq!((d.fuel, d.timeout, d.memory_bytes, d.output_bytes), (50_000_000, Duration::from_millis(50), 16 << 20, 1 << 20));
}

#[test]
fn deadlines_cover_the_timeout() {
    assert_eq!(engine::ticks_for(Duration::from_millis(50)), 51);
    assert_eq!(engine::ticks_for(Duration::from_micros(1500)), 3);
    assert!(engine::deadline_ticks(Duration::from_millis(50)) >= 51);
}

#[test]
fn a_start_function_that_loops_is_refused_at_load() {
    let rt = runtime_with(small_fuel());
    let wat = Wat {
        extra: "(func $spin (loop $l (br $l))) (start $spin)".into(),
        ..Wat::default()
    };
    let err = load_err(&rt, &wat);
    assert_eq!(err.code(), "adapter.invalid_module", "{err}");
    assert!(err.message.contains("adapter.out_of_fuel"), "{err}");
    assert_serving(&rt);
}

#[test]
fn an_input_larger_than_the_memory_cap_is_contained() {
    let limits = Limits { memory_bytes: 1 << 20, output_bytes: 1 << 20, ..Limits::default() };
    let rt = runtime_with(limits);
    let adapter = load(&rt, &Wat::default());
    let huge = vec![b' '; 2 << 20];
    let err = rt.call(&adapter, Entry::ParseResponse, &huge, None).unwrap_err();
    assert_eq!(err.code(), "adapter.memory_exceeded", "{err}");
    assert_serving(&rt);
}
