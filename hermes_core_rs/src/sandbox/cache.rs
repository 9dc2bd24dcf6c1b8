//! Compiled modules, cached in memory and on disk.
//!
//! The key is SHA-256 over the wasm's own SHA-256 and the engine settings hash
//! (which covers the wasmtime version, target and every compilation setting),
//! so a new wasmtime or a changed configuration never loads stale code.
//!
//! Files are `<key>.cwasm`: wasmtime's serialized module followed by the
//! SHA-256 of those bytes. The checksum catches torn or corrupted files;
//! it is no defence against someone who can write the directory, which must
//! be private to Hermes (loading machine code from it is trusted).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use super::error::AdapterError;

pub(crate) type Key = [u8; 32];

/// Where a load found its compiled code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Compiled,
    DiskCache,
    MemoryCache,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Compiled => "compiled",
            Source::DiskCache => "disk_cache",
            Source::MemoryCache => "memory_cache",
        }
    }
}

pub(crate) fn key(wasm_sha256: &[u8; 32], settings_hash: &[u8; 32]) -> Key {
    let mut h = Sha256::new();
    h.update(b"hermes-adapter-module\0");
    h.update(wasm_sha256);
    h.update(settings_hash);
    h.finalize().into()
}

fn memory() -> &'static Mutex<HashMap<Key, Module>> {
    static MEMORY: OnceLock<Mutex<HashMap<Key, Module>>> = OnceLock::new();
    MEMORY.get_or_init(Default::default)
}

/// The compiled module for `wasm`: from memory, else from `dir`, else compiled
/// (and then written to `dir` and memory).
pub(crate) fn module_for(
    engine: &Engine,
    wasm: &[u8],
    key: &Key,
    dir: Option<&Path>,
) -> Result<(Module, Source), AdapterError> {
    if let Some(module) = memory().lock().expect("module cache lock").get(key) {
        return Ok((module.clone(), Source::MemoryCache));
    }
    let path = dir.map(|d| d.join(format!("{}.cwasm", hex(key))));
    let (module, source) = match path.as_deref().and_then(|p| read(engine, p)) {
        Some(module) => (module, Source::DiskCache),
        None => {
            let module = Module::from_binary(engine, wasm).map_err(|e| {
                AdapterError::invalid_module(format!("not a valid WebAssembly module: {e}"))
            })?;
            if let Some(p) = &path {
                // A cache that cannot be written only costs a recompile later.
                let _ = write(&module, p);
            }
            (module, Source::Compiled)
        }
    };
    memory()
        .lock()
        .expect("module cache lock")
        .insert(*key, module.clone());
    Ok((module, source))
}

/// Drops the in-memory entry (calls holding the module keep it alive).
pub(crate) fn forget(key: &Key) {
    memory().lock().expect("module cache lock").remove(key);
}

fn read(engine: &Engine, path: &Path) -> Option<Module> {
    let bytes = fs::read(path).ok()?;
    let split = bytes.len().checked_sub(32)?;
    let (code, sum) = bytes.split_at(split);
    if Sha256::digest(code).as_slice() != sum {
        return None;
    }
    // SAFETY: the bytes were produced by `Module::serialize` of this same
    // engine configuration (the key covers it) and pass their checksum; the
    // cache directory is trusted (see the module docs). wasmtime still checks
    // the header and engine compatibility and errors on a mismatch.
    unsafe { Module::deserialize(engine, code) }.ok()
}

fn write(module: &Module, path: &Path) -> std::io::Result<()> {
    let code = module.serialize().map_err(std::io::Error::other)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp: PathBuf = dir.join(format!(".{}.{nanos}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&code)?;
        f.write_all(&Sha256::digest(&code))?;
        f.sync_all()?;
        // Rename is atomic: readers see the old file, the new one, or none.
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
