//! The adapter runtime: loaded adapter versions by SHA-256, and calls on them.
//!
//! A loaded version is an `Arc<Adapter>`; a call clones the `Arc` and runs on
//! it, so unloading or replacing a version never disturbs calls already in
//! flight on it (the hot-deploy layer swaps versions on top of this).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use url::Url;
use wasmtime::{Engine, InstancePre, Linker};

use super::cache::{self, Key, Source};
use super::call;
use super::engine;
use super::error::AdapterError;
use super::hosts;
use super::limits::{Limits, StoreState};
use super::manifest::{self, Manifest};
use super::module::{self, Entry, Exports, ABI_VERSION};
use super::output;
use crate::errors::ErrorCode;

/// One loaded adapter version, ready to instantiate.
pub struct Adapter {
    pub sha256: [u8; 32],
    pub manifest: Manifest,
    cache_key: Key,
    pre: InstancePre<StoreState>,
    exports: Exports,
    pub stats: CallStats,
}

/// Running totals of the calls on one adapter version (read by the metrics).
#[derive(Debug, Default)]
pub struct CallStats {
    calls: AtomicU64,
    failures: AtomicU64,
    fuel: AtomicU64,
}

/// A snapshot of `CallStats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallTotals {
    /// Entry-point calls (build_request, parse_response, parse_callback).
    pub calls: u64,
    /// Calls that ended in an adapter error (a trap, a limit, bad output...).
    pub failures: u64,
    /// Fuel (wasm instructions, roughly) the calls consumed.
    pub fuel: u64,
}

impl CallStats {
    fn record(&self, fuel: u64, failed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.fuel.fetch_add(fuel, Ordering::Relaxed);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn totals(&self) -> CallTotals {
        CallTotals {
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            fuel: self.fuel.load(Ordering::Relaxed),
        }
    }
}

/// What `Runtime::load` did.
pub struct Loaded {
    pub adapter: Arc<Adapter>,
    pub source: Source,
    /// Time to obtain compiled code: compiling, or reading a cache.
    pub code_time: Duration,
}

pub struct Runtime {
    engine: &'static Engine,
    limits: Limits,
    cache_dir: Option<PathBuf>,
    adapters: RwLock<HashMap<[u8; 32], Arc<Adapter>>>,
}

impl Runtime {
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Self, String> {
        limits.validate()?;
        let engine = engine::engine()?;
        engine::ensure_ticker()?;
        Ok(Runtime {
            engine,
            limits,
            cache_dir,
            adapters: Default::default(),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Compiles (or fetches from a cache) and validates `wasm`, and makes it
    /// callable by its SHA-256. Loading bytes already loaded returns the
    /// loaded version.
    pub fn load(&self, wasm: &[u8]) -> Result<Loaded, AdapterError> {
        engine::ensure_ticker().map_err(AdapterError::internal)?;
        let sha256: [u8; 32] = Sha256::digest(wasm).into();
        if let Some(adapter) = self.adapters.read().expect("adapters lock").get(&sha256) {
            let adapter = Arc::clone(adapter);
            return Ok(Loaded {
                adapter,
                source: Source::MemoryCache,
                code_time: Duration::ZERO,
            });
        }
        let settings = engine::settings_hash().map_err(AdapterError::internal)?;
        let cache_key = cache::key(&sha256, settings);
        let started = Instant::now();
        let (module, source) =
            cache::module_for(self.engine, wasm, &cache_key, self.cache_dir.as_deref())?;
        let code_time = started.elapsed();

        let checked = module::check(&module, self.limits.memory_bytes).and_then(|exports| {
            let pre = Linker::new(self.engine)
                .instantiate_pre(&module)
                .map_err(|e| AdapterError::invalid_module(format!("cannot instantiate: {e}")))?;
            let version =
                call::abi_version(self.engine, &pre, &exports, &self.limits).map_err(|e| {
                    AdapterError::invalid_module(format!("hermes_abi_version failed: {e}"))
                })?;
            if version != ABI_VERSION {
                return Err(AdapterError::invalid_module(format!(
                    "hermes_abi_version() is {version}, this host speaks ABI {ABI_VERSION}"
                )));
            }
            let text = call::manifest(self.engine, &pre, &exports, &self.limits).map_err(|e| {
                AdapterError::invalid_module(format!("hermes_manifest failed: {e}"))
            })?;
            Ok((exports, pre, manifest::parse(&text)?))
        });
        let (exports, pre, manifest) = match checked {
            Ok(parts) => parts,
            Err(e) => {
                // Keep no compiled code around for a module that is refused.
                cache::forget(&cache_key);
                return Err(e);
            }
        };
        let adapter = Arc::new(Adapter {
            sha256,
            manifest,
            cache_key,
            pre,
            exports,
            stats: CallStats::default(),
        });
        let mut adapters = self.adapters.write().expect("adapters lock");
        // Two threads may race to load the same bytes: keep the first.
        let adapter = Arc::clone(adapters.entry(sha256).or_insert(adapter));
        Ok(Loaded {
            adapter,
            source,
            code_time,
        })
    }

    /// The loaded version `sha256` (lower-case hex).
    pub fn get(&self, sha256: &str) -> Result<Arc<Adapter>, AdapterError> {
        let key = parse_sha256(sha256)?;
        self.adapters
            .read()
            .expect("adapters lock")
            .get(&key)
            .cloned()
            .ok_or_else(|| {
                AdapterError::host(
                    ErrorCode::RequestNotFound,
                    format!("adapter {sha256} is not loaded"),
                )
            })
    }

    /// Forgets a version; calls in flight on it finish normally. Returns
    /// whether it was loaded.
    pub fn unload(&self, sha256: &str) -> Result<bool, AdapterError> {
        let key = parse_sha256(sha256)?;
        let removed = self.adapters.write().expect("adapters lock").remove(&key);
        if let Some(adapter) = &removed {
            cache::forget(&adapter.cache_key);
        }
        Ok(removed.is_some())
    }

    pub fn loaded(&self) -> Vec<Arc<Adapter>> {
        self.adapters
            .read()
            .expect("adapters lock")
            .values()
            .cloned()
            .collect()
    }

    /// Runs `entry` on each input, each on a fresh instance. `base_url` is the
    /// provider account's configured endpoint, allowed for `build_request`
    /// URLs besides the manifest's hosts.
    pub fn call_batch(
        &self,
        adapter: &Adapter,
        entry: Entry,
        inputs: &[&[u8]],
        base_url: Option<&str>,
    ) -> Vec<Result<String, AdapterError>> {
        let base = engine::ensure_ticker()
            .map_err(AdapterError::internal)
            .and_then(|()| configured(base_url).map(hosts::parse_base_url).transpose());
        let base = match base {
            Ok(base) => base,
            Err(e) => return inputs.iter().map(|_| Err(e.clone())).collect(),
        };
        inputs
            .iter()
            .map(|input| self.call_one(adapter, entry, input, base.as_ref()))
            .collect()
    }

    pub fn call(
        &self,
        adapter: &Adapter,
        entry: Entry,
        input: &[u8],
        base_url: Option<&str>,
    ) -> Result<String, AdapterError> {
        engine::ensure_ticker().map_err(AdapterError::internal)?;
        let base = configured(base_url)
            .map(hosts::parse_base_url)
            .transpose()?;
        self.call_one(adapter, entry, input, base.as_ref())
    }

    fn call_one(
        &self,
        adapter: &Adapter,
        entry: Entry,
        input: &[u8],
        base: Option<&Url>,
    ) -> Result<String, AdapterError> {
        let (text, fuel) = call::invoke(
            self.engine,
            &adapter.pre,
            &adapter.exports,
            &self.limits,
            entry,
            input,
        );
        let result = text.and_then(|text| {
            let ok = output::decode(text.as_bytes())?;
            if entry == Entry::BuildRequest {
                let request = output::http_request(ok)?;
                hosts::check_url(&request.url, &adapter.manifest.hosts, base)?;
            }
            Ok(ok.to_owned())
        });
        adapter.stats.record(fuel, result.is_err());
        result
    }
}

/// An account without a base URL may pass `None` or an empty string.
fn configured(base_url: Option<&str>) -> Option<&str> {
    base_url.filter(|s| !s.trim().is_empty())
}

fn parse_sha256(hex: &str) -> Result<[u8; 32], AdapterError> {
    let bad = || {
        AdapterError::host(
            ErrorCode::RequestInvalid,
            format!("{hex:?} is not a SHA-256 in hex"),
        )
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(out)
}
