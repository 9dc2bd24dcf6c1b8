//! One adapter call: a fresh store and instance, the input written through
//! `hermes_alloc`, the export run under the limits, the output copied out.
//!
//! The store (and with it the instance and its linear memory) is dropped when
//! the call returns, so nothing of one message survives into the next; the
//! pooling allocator resets the slot's memory before it is handed out again.

use wasmtime::{
    Engine, Extern, Instance, InstancePre, Memory, ModuleExport, PoolConcurrencyLimitError, Store,
    Trap, TypedFunc, WasmBacktrace, WasmParams, WasmResults,
};

use super::engine::{deadline_ticks, MAX_WASM_STACK};
use super::error::AdapterError;
use super::limits::{Limits, StoreState};
use super::module::{Entry, Exports};
use crate::errors::ErrorCode;

/// What went wrong inside a call before it is classified.
enum Fail {
    /// wasmtime reported an error: a trap, a limit, an instantiation failure.
    Wasm(wasmtime::Error),
    /// The host already knows the code (bad pointers, bad output).
    Known(AdapterError),
}

impl From<wasmtime::Error> for Fail {
    fn from(e: wasmtime::Error) -> Self {
        Fail::Wasm(e)
    }
}

impl From<AdapterError> for Fail {
    fn from(e: AdapterError) -> Self {
        Fail::Known(e)
    }
}

/// A live instance for the length of one call.
struct Call<'a> {
    store: Store<StoreState>,
    instance: Instance,
    exports: &'a Exports,
    limits: &'a Limits,
}

/// Runs `f` against a fresh instance under `limits`, mapping every failure to
/// its catalogue code.
fn with_instance<T>(
    engine: &Engine,
    pre: &InstancePre<StoreState>,
    exports: &Exports,
    limits: &Limits,
    f: impl FnOnce(&mut Call<'_>) -> Result<T, Fail>,
) -> Result<T, AdapterError> {
    let mut store = Store::new(engine, StoreState::new(limits.memory_bytes));
    store.limiter(|state| state);
    store
        .set_fuel(limits.fuel)
        .map_err(|e| AdapterError::internal(format!("fuel: {e}")))?;
    store.set_epoch_deadline(deadline_ticks(limits.timeout));
    let instance = match pre.instantiate(&mut store) {
        Ok(instance) => instance,
        Err(e) => return Err(classify(Fail::Wasm(e), store.data(), limits)),
    };
    let mut call = Call {
        store,
        instance,
        exports,
        limits,
    };
    f(&mut call).map_err(|fail| classify(fail, call.store.data(), limits))
}

/// `hermes_abi_version()`.
pub(crate) fn abi_version(
    engine: &Engine,
    pre: &InstancePre<StoreState>,
    exports: &Exports,
    limits: &Limits,
) -> Result<i32, AdapterError> {
    with_instance(engine, pre, exports, limits, |call| {
        let f = call.func::<(), i32>(&exports.abi_version)?;
        Ok(f.call(&mut call.store, ())?)
    })
}

/// `hermes_manifest()`, as the JSON text the adapter returned.
pub(crate) fn manifest(
    engine: &Engine,
    pre: &InstancePre<StoreState>,
    exports: &Exports,
    limits: &Limits,
) -> Result<String, AdapterError> {
    with_instance(engine, pre, exports, limits, |call| {
        let f = call.func::<(), i64>(&exports.manifest)?;
        let packed = f.call(&mut call.store, ())?;
        call.read_output(packed)
    })
}

/// One of the three entry points on `input`, returning the raw output text
/// (still the `{"ok"}`/`{"error"}` envelope; see `output::decode`) and the
/// fuel the call consumed, whether it succeeded or not.
pub(crate) fn invoke(
    engine: &Engine,
    pre: &InstancePre<StoreState>,
    exports: &Exports,
    limits: &Limits,
    entry: Entry,
    input: &[u8],
) -> (Result<String, AdapterError>, u64) {
    let mut fuel = 0;
    let result = with_instance(engine, pre, exports, limits, |call| {
        let (ptr, len) = call.write_input(input)?;
        let f = call.func::<(i32, i32), i64>(exports.entry(entry))?;
        let packed = f.call(&mut call.store, (ptr, len));
        fuel = limits
            .fuel
            .saturating_sub(call.store.get_fuel().unwrap_or(0));
        call.read_output(packed?)
    });
    (result, fuel)
}

impl Call<'_> {
    fn func<P: WasmParams, R: WasmResults>(
        &mut self,
        export: &ModuleExport,
    ) -> Result<TypedFunc<P, R>, Fail> {
        let func = match self.instance.get_module_export(&mut self.store, export) {
            Some(Extern::Func(func)) => func,
            _ => return Err(AdapterError::internal("export vanished after validation").into()),
        };
        // Signatures were checked at load (`module::check`); this re-check
        // is a few comparisons.
        Ok(func.typed::<P, R>(&self.store)?)
    }

    fn memory(&mut self) -> Result<Memory, Fail> {
        match self
            .instance
            .get_module_export(&mut self.store, &self.exports.memory)
        {
            Some(Extern::Memory(memory)) => Ok(memory),
            _ => Err(AdapterError::internal("memory export vanished after validation").into()),
        }
    }

    /// Asks the adapter for `input.len()` bytes and copies the input there.
    fn write_input(&mut self, input: &[u8]) -> Result<(i32, i32), Fail> {
        let len = i32::try_from(input.len()).map_err(|_| {
            AdapterError::host(ErrorCode::RequestTooLarge, "input larger than 2 GiB")
        })?;
        let exports = self.exports;
        let alloc = self.func::<i32, i32>(&exports.alloc)?;
        let ptr = alloc.call(&mut self.store, len)?;
        let memory = self.memory()?;
        let data = memory.data_mut(&mut self.store);
        let size = data.len();
        let start = ptr as u32 as usize;
        let region = start
            .checked_add(input.len())
            .and_then(|end| data.get_mut(start..end))
            .ok_or_else(|| {
                AdapterError::bad_output(format!(
                    "hermes_alloc({len}) returned {start:#x}, outside the {size}-byte memory"
                ))
            })?;
        region.copy_from_slice(input);
        Ok((ptr, len))
    }

    /// Unpacks `(ptr << 32) | len` and copies the output text out of memory.
    fn read_output(&mut self, packed: i64) -> Result<String, Fail> {
        let packed = packed as u64;
        let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        if len > self.limits.output_bytes {
            return Err(AdapterError::bad_output(format!(
                "output of {len} bytes is over the {}-byte cap",
                self.limits.output_bytes
            ))
            .into());
        }
        let memory = self.memory()?;
        let data = memory.data(&self.store);
        let bytes = ptr
            .checked_add(len)
            .and_then(|end| data.get(ptr..end))
            .ok_or_else(|| {
                AdapterError::bad_output(format!(
                    "output at {ptr:#x}+{len} is outside the {}-byte memory",
                    data.len()
                ))
            })?;
        let text = std::str::from_utf8(bytes).map_err(|e| {
            AdapterError::bad_output(format!("output is not UTF-8 (at byte {})", e.valid_up_to()))
        })?;
        Ok(text.to_owned())
    }
}

/// Maps a failed call to its catalogue code. A denied `memory.grow` is the
/// cause of whatever followed it (a trap in the adapter's allocator, or
/// fuel spent retrying), so it wins.
fn classify(fail: Fail, state: &StoreState, limits: &Limits) -> AdapterError {
    let error = match fail {
        Fail::Known(e) => return e,
        Fail::Wasm(e) => e,
    };
    if state.memory_denied {
        return AdapterError::host(
            ErrorCode::AdapterMemoryExceeded,
            format!(
                "the adapter asked for more than its {}-byte memory cap",
                limits.memory_bytes
            ),
        );
    }
    let Some(trap) = error.downcast_ref::<Trap>() else {
        if error.is::<PoolConcurrencyLimitError>() {
            return AdapterError::internal(format!("sandbox is at capacity: {error}"));
        }
        return AdapterError::host(ErrorCode::AdapterTrap, format!("{error}"));
    };
    let (code, what) = match trap {
        Trap::OutOfFuel => (
            ErrorCode::AdapterOutOfFuel,
            format!("used its whole budget of {} fuel units", limits.fuel),
        ),
        Trap::Interrupt => (
            ErrorCode::AdapterTimeout,
            format!("ran past its {} ms deadline", limits.timeout.as_millis()),
        ),
        Trap::StackOverflow => (
            ErrorCode::AdapterTrap,
            format!(
                "stack overflow: recursion deeper than the {} KiB wasm stack",
                MAX_WASM_STACK >> 10
            ),
        ),
        other => (ErrorCode::AdapterTrap, other.to_string()),
    };
    let at = error.downcast_ref::<WasmBacktrace>().and_then(|bt| {
        bt.frames()
            .first()
            .map(|f| f.func_name().unwrap_or("?").to_owned())
    });
    match at {
        Some(func) => AdapterError::host(code, format!("{what} (in {func})")),
        None => AdapterError::host(code, what),
    }
}
