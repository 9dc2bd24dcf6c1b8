//! Modules refused at load with `adapter.invalid_module`.

use super::*;

#[test]
fn modules_that_break_the_abi_are_refused_at_load() {
    let rt = runtime();
    let cases = [
        (
            Wat {
                export_parse_callback: false,
                ..Wat::default()
            },
            "missing export \"hermes_parse_callback\"",
        ),
        (
            Wat {
                abi: 2,
                ..Wat::default()
            },
            "hermes_abi_version() is 2",
        ),
        (
            Wat {
                imports: r#"(import "env" "now" (func (result i64)))"#,
                ..Wat::default()
            },
            "may not import anything, this module imports env::now",
        ),
        (
            Wat {
                imports: r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
                ..Wat::default()
            },
            "wasi_snapshot_preview1::fd_write",
        ),
        (
            Wat {
                pages: 300,
                ..Wat::default()
            },
            "memory starts at 300 pages",
        ),
        (
            Wat {
                manifest: MANIFEST.replace("\"abi\":1", "\"abi\":7"),
                ..Wat::default()
            },
            "abi is 7",
        ),
        (
            Wat {
                manifest: "{\"name\":".into(),
                ..Wat::default()
            },
            "manifest",
        ),
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
        assert!(
            err.message.contains("hermes_manifest failed: adapter."),
            "{err}"
        );
    }
    assert_serving(&rt);
}

#[test]
fn bytes_that_are_not_wasm_are_refused() {
    let rt = runtime();
    for bytes in [
        &b"\0asm\x01\0\0\0garbage"[..],
        b"definitely not wasm",
        b"",
        b"(module)",
    ] {
        let err = rt.load(bytes).err().expect("refused");
        assert_eq!(err.code(), "adapter.invalid_module");
    }
    assert_serving(&rt);
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
