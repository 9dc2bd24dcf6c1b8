//! The sandbox against hostile and well-behaved modules written in WAT.
//!
//! Every hostile call is followed by a good call on the same runtime: a
//! contained failure must leave the process serving.

use std::sync::Arc;

use super::*;

mod calls;
mod loading;
mod runtime;

pub(super) const MANIFEST: &str = r#"{"name":"test_adapter","version":"1.0.0","abi":1,"channels":["sms"],"allowed_hosts":["api.example.com"],"credentials":["token"],"callback_auth":null,"token":null}"#;

pub(super) const ECHO: &str = "(call $ok (local.get $p) (local.get $n))";

/// A module of ABI v1 whose parts a test can replace. By default every entry
/// echoes its input back as `{"ok": <input>}`.
pub(super) struct Wat {
    pub(super) abi: i32,
    pub(super) pages: u32,
    pub(super) imports: &'static str,
    pub(super) build: String,
    pub(super) parse_response: String,
    pub(super) manifest: String,
    pub(super) extra: String,
    pub(super) export_parse_callback: bool,
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
    pub(super) fn build(body: &str) -> Self {
        Wat {
            build: body.into(),
            ..Wat::default()
        }
    }

    pub(super) fn bytes(&self) -> Vec<u8> {
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
            callback_export = if self.export_parse_callback {
                r#"(export "hermes_parse_callback")"#
            } else {
                ""
            },
            echo = ECHO,
            extra = self.extra,
        );
        wat::parse_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }
}

pub(super) const GOOD_REQUEST: &[u8] =
    br#"{"method":"POST","url":"https://api.example.com/v1/send","headers":[["Content-Type","application/json"]],"body":"{\"to\":\"+15550100\"}"}"#;

pub(super) fn runtime_with(limits: Limits) -> Runtime {
    Runtime::new(limits, None).expect("runtime")
}

pub(super) fn runtime() -> Runtime {
    runtime_with(Limits::default())
}

/// The default budget (50 M) takes tens of milliseconds to burn, as long as
/// the deadline on a loaded box; 5 M runs out well before it.
pub(super) fn small_fuel() -> Limits {
    Limits {
        fuel: 5_000_000,
        ..Limits::default()
    }
}

pub(super) fn load(rt: &Runtime, wat: &Wat) -> Arc<Adapter> {
    rt.load(&wat.bytes()).expect("load").adapter
}

pub(super) fn load_err(rt: &Runtime, wat: &Wat) -> AdapterError {
    match rt.load(&wat.bytes()) {
        Ok(_) => panic!("module was accepted"),
        Err(e) => e,
    }
}

/// A good call still works on `rt` (the process goes on serving).
pub(super) fn assert_serving(rt: &Runtime) {
    let good = load(rt, &Wat::default());
    let out = rt
        .call(&good, Entry::BuildRequest, GOOD_REQUEST, None)
        .expect("good call");
    assert_eq!(out.as_bytes(), GOOD_REQUEST);
}

/// Loads `wat`, calls `build_request` on a good request and returns the error.
pub(super) fn call_err(rt: &Runtime, wat: &Wat) -> AdapterError {
    let adapter = load(rt, wat);
    let err = rt
        .call(&adapter, Entry::BuildRequest, GOOD_REQUEST, None)
        .expect_err("call failed");
    assert_serving(rt);
    err
}

/// `(i64.const ...)` returning `len` bytes at `ptr`.
pub(super) fn packed(ptr: u32, len: u32) -> String {
    format!(
        "(i64.const {})",
        ((u64::from(ptr) << 32) | u64::from(len)) as i64
    )
}

/// A module written from scratch: `memory` of `pages`, the manifest at 1024
/// and `hermes_manifest` returning it; `funcs` supplies the rest.
pub(super) fn raw_module(pages: u32, manifest: &str, funcs: &str) -> Vec<u8> {
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

pub(super) const SMALL_MANIFEST: &str =
    r#"{"name":"raw","version":"1","abi":1,"channels":[],"allowed_hosts":[]}"#;
