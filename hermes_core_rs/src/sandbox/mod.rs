//! The WebAssembly sandbox that hosts provider adapters (ABI v1, see
//! `adapters_wasm/ABI.md`).
//!
//! An adapter is a wasm32 module with no imports, exporting `memory`,
//! `hermes_abi_version`, `hermes_alloc`, `hermes_manifest` and three pure
//! functions over JSON (`hermes_build_request`, `hermes_parse_response`,
//! `hermes_parse_callback`). Each returns `(ptr << 32) | len` of UTF-8 JSON,
//! `{"ok": ...}` or `{"error": {"code", "message"}}`.
//!
//! - [`engine`]: the one engine of the process (fuel, epoch interruption with
//!   one ticker thread, the pooling allocator) and its settings hash.
//! - [`limits`]: fuel, deadline, memory and output caps, with their defaults.
//! - [`cache`]: compiled modules in memory and on disk, by content hash.
//! - [`module`]: checking a module's imports, exports and memory on load.
//! - [`call`]: one call on a fresh instance, and trap classification.
//! - [`output`], [`manifest`], [`hosts`]: reading and checking results.
//! - [`runtime`]: loaded versions by SHA-256, single and batch calls.

pub(crate) mod cache;
pub(crate) mod call;
pub(crate) mod engine;
pub(crate) mod error;
pub(crate) mod hosts;
pub(crate) mod limits;
pub(crate) mod manifest;
pub(crate) mod module;
pub(crate) mod output;
pub(crate) mod runtime;

#[cfg(test)]
mod tests;

pub use cache::Source;
pub use engine::{set_pool_instances, DEFAULT_POOL_INSTANCES};
pub use error::{AdapterError, Origin};
pub use limits::{
    Limits, DEFAULT_FUEL, DEFAULT_MEMORY_BYTES, DEFAULT_OUTPUT_BYTES, DEFAULT_TIMEOUT,
};
pub use manifest::Manifest;
pub use module::Entry;
pub use runtime::{Adapter, CallStats, CallTotals, Loaded, Runtime};
