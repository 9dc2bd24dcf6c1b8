//! The limits every adapter call runs under, and the per-call store state that
//! enforces the memory cap.

use std::time::Duration;

use wasmtime::ResourceLimiter;

use super::engine::MAX_MEMORY_BYTES;

/// Default instruction budget: about 50 M wasm operators, tens of
/// milliseconds of straight-line work. Building a provider request is
/// JSON-in, JSON-out and needs well under 1 M.
pub const DEFAULT_FUEL: u64 = 50_000_000;
/// Default wall-clock deadline per call, enforced by epoch interruption.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// Default cap on an instance's linear memory.
pub const DEFAULT_MEMORY_BYTES: usize = 16 << 20;
/// Default cap on the JSON an adapter may return from one call.
pub const DEFAULT_OUTPUT_BYTES: usize = 1 << 20;

/// The smallest memory cap accepted: one wasm page.
const MIN_MEMORY_BYTES: usize = 64 << 10;
/// The longest deadline accepted; anything longer is a configuration mistake
/// on a hot path measured in microseconds.
const MAX_TIMEOUT: Duration = Duration::from_secs(10);
/// Tables (function pointers for indirect calls) may hold this many entries.
pub(crate) const MAX_TABLE_ELEMENTS: usize = 10_000;

/// Per-call limits of one `Runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub fuel: u64,
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: DEFAULT_FUEL,
            timeout: DEFAULT_TIMEOUT,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            output_bytes: DEFAULT_OUTPUT_BYTES,
        }
    }
}

impl Limits {
    /// Checks the limits are usable; the message names the offending one.
    pub fn validate(&self) -> Result<(), String> {
        if self.fuel == 0 {
            return Err("fuel must be positive".into());
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(format!(
                "timeout must be between 1 ms and {} ms",
                MAX_TIMEOUT.as_millis()
            ));
        }
        if !(MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&self.memory_bytes) {
            return Err(format!(
                "memory_bytes must be between {MIN_MEMORY_BYTES} and {MAX_MEMORY_BYTES}"
            ));
        }
        if self.output_bytes == 0 || self.output_bytes > self.memory_bytes {
            return Err("output_bytes must be positive and at most memory_bytes".into());
        }
        Ok(())
    }
}

/// The data of one call's `Store`: the memory cap, and whether the adapter
/// asked for more than it. A denied `memory.grow` returns -1 to the adapter
/// as the spec says; if the call then fails in any way (a trap, running out
/// of fuel while retrying), the cause reported is the memory cap.
pub(crate) struct StoreState {
    memory_cap: usize,
    pub(crate) memory_denied: bool,
}

impl StoreState {
    pub(crate) fn new(memory_cap: usize) -> Self {
        StoreState {
            memory_cap,
            memory_denied: false,
        }
    }
}

impl ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    // One instance per store: a call never needs a second one.
    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}
