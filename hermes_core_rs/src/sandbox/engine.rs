//! The one wasmtime engine of the process and its epoch ticker.
//!
//! Every adapter in the process is compiled and run by this engine, so there is
//! one configuration to reason about, one pool of pre-reserved instance slots
//! and one ticker thread driving the wall-clock deadlines. Per-runtime limits
//! (fuel, deadline, memory cap, output cap) are applied per call on the
//! `Store`, never here.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};

/// How often the ticker advances the engine's epoch. Deadlines are counted in
/// these ticks, so a call's wall-clock limit is honoured to within one tick.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The largest linear memory any adapter instance may have. A runtime's
/// memory cap may be lower (enforced per store), never higher: this sizes the
/// pool's slots.
pub(crate) const MAX_MEMORY_BYTES: usize = 64 << 20;

/// Instances that may be alive at once across the process, by default. An
/// instance lives for one call, so this bounds concurrent calls, not adapters;
/// a 2-core box runs a handful of threads, and the rest is headroom for bursts.
/// A call beyond it fails at once with `internal.error` (retryable).
pub const DEFAULT_POOL_INSTANCES: u32 = 64;

static POOL_INSTANCES: AtomicU32 = AtomicU32::new(DEFAULT_POOL_INSTANCES);

/// Sizes the instance pool; only before the engine is built (the first
/// `Runtime`), since the pool is reserved up front.
pub fn set_pool_instances(instances: u32) -> Result<(), String> {
    if SHARED.get().is_some() {
        return Err(
            "the sandbox engine is already built; size the pool before the first runtime".into(),
        );
    }
    if instances == 0 {
        return Err("the pool needs at least one instance".into());
    }
    POOL_INSTANCES.store(instances, Ordering::Release);
    Ok(())
}

/// Native stack for wasm frames. Deep recursion past this traps with a stack
/// overflow (reported as `adapter.trap`) instead of touching the host stack.
pub(crate) const MAX_WASM_STACK: usize = 256 << 10;

/// Bytes of each pooled memory kept resident between instances: reset with
/// memset/memcpy instead of being returned to the kernel, which would cost an
/// madvise, a TLB shootdown and a page fault per touched page on the next
/// call. With `PAGEMAP_SCAN` (Linux 6.7+) only the pages a call dirtied are
/// reset; without it the lowest bytes up to this much are.
const MEMORY_KEEP_RESIDENT: usize = 1 << 20;

/// Bumped by hand when the configuration below changes in a way wasmtime's own
/// compatibility hash would not see (it is part of every cache key).
const SETTINGS_REVISION: &str = "hermes-sandbox-engine/1";

struct Shared {
    engine: Engine,
    settings_hash: [u8; 32],
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

/// The process-wide engine, created (with its ticker) on first use.
pub(crate) fn engine() -> Result<&'static Engine, String> {
    shared().map(|s| &s.engine)
}

/// SHA-256 over everything that decides whether compiled code can be reused:
/// wasmtime's version, its compatibility hash of the engine settings and
/// target, and our own settings revision.
pub(crate) fn settings_hash() -> Result<&'static [u8; 32], String> {
    shared().map(|s| &s.settings_hash)
}

fn shared() -> Result<&'static Shared, String> {
    SHARED.get_or_init(build).as_ref().map_err(Clone::clone)
}

fn build() -> Result<Shared, String> {
    let engine = Engine::new(&config()).map_err(|e| format!("wasm engine: {e}"))?;
    let settings_hash = hash_settings(&engine);
    Ok(Shared {
        engine,
        settings_hash,
    })
}

/// The process whose ticker thread is running. A child forked after the
/// engine was built inherits the engine but not the thread, and its deadlines
/// would never fire; the first call in the child starts a ticker of its own.
static TICKER_PID: AtomicU32 = AtomicU32::new(0);

/// Makes sure this process has its ticker; one atomic load when it does.
pub(crate) fn ensure_ticker() -> Result<(), String> {
    let pid = std::process::id();
    let running = TICKER_PID.load(Ordering::Acquire);
    if running == pid {
        return Ok(());
    }
    // Exactly one thread wins the exchange and starts the ticker.
    if TICKER_PID
        .compare_exchange(running, pid, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        if let Err(e) = spawn_ticker(engine()?) {
            TICKER_PID.store(running, Ordering::Release);
            return Err(e);
        }
    }
    Ok(())
}

fn config() -> Config {
    let mut pool = PoolingAllocationConfig::new();
    let instances = POOL_INSTANCES.load(Ordering::Acquire);
    pool.total_core_instances(instances)
        .total_memories(instances)
        .total_tables(instances)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .table_elements(10_000)
        .max_memory_size(MAX_MEMORY_BYTES)
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(16 << 10)
        .pagemap_scan(Enabled::Auto);

    let mut config = Config::new();
    config
        .consume_fuel(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .max_wasm_stack(MAX_WASM_STACK)
        .cranelift_opt_level(OptLevel::Speed)
        // The extension lives inside CPython, which owns the process's signal
        // handlers (faulthandler, the interpreter's own). Explicit bounds
        // checks keep every trap independent of handler install order, and
        // let each pooled memory reserve only its cap instead of 4 GiB + guard.
        .signals_based_traps(false)
        .memory_reservation(MAX_MEMORY_BYTES as u64)
        .memory_guard_size(0)
        .guard_before_linear_memory(false)
        .memory_reservation_for_growth(0);
    config
}

fn hash_settings(engine: &Engine) -> [u8; 32] {
    let mut hasher = Sha256Hasher(Sha256::new());
    SETTINGS_REVISION.hash(&mut hasher);
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

/// Feeds `Hash` input into SHA-256, so the key is stable across processes and
/// Rust versions (unlike `DefaultHasher`).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Only the full digest is used (see `hash_settings`).
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }
}

/// Tick `n` is due at `EPOCH_START + n * EPOCH_TICK`.
static EPOCH_START: OnceLock<Instant> = OnceLock::new();
/// Ticks applied to the engine's epoch so far (by this process's ticker, or
/// inherited across a fork together with the epoch itself).
static TICKS_APPLIED: AtomicU64 = AtomicU64::new(0);

fn ticks_due() -> u64 {
    EPOCH_START.get().map_or(0, |start| {
        u64::try_from(start.elapsed().as_nanos() / EPOCH_TICK.as_nanos()).unwrap_or(u64::MAX)
    })
}

/// One thread for the whole process: it only advances the epoch counter, and
/// it holds a weak handle so it never keeps the engine alive by itself. On a
/// busy box one sleep can last many ticks; it then catches up, so the epoch
/// follows the wall clock rather than the ticker's share of the CPU.
fn spawn_ticker(engine: &Engine) -> Result<(), String> {
    let weak = engine.weak();
    EPOCH_START.get_or_init(Instant::now);
    std::thread::Builder::new()
        .name("hermes-wasm-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            let Some(engine) = weak.upgrade() else { return };
            let due = ticks_due();
            while TICKS_APPLIED.load(Ordering::Acquire) < due {
                engine.increment_epoch();
                TICKS_APPLIED.fetch_add(1, Ordering::Release);
            }
        })
        .map(drop)
        .map_err(|e| format!("wasm epoch ticker: {e}"))
}

/// The epoch deadline for a call starting now with `timeout`: the ticks that
/// cover it, plus however far the ticker is behind the clock right now (it
/// is about to catch up, and that must not eat into this call's time).
pub(crate) fn deadline_ticks(timeout: Duration) -> u64 {
    let lag = ticks_due().saturating_sub(TICKS_APPLIED.load(Ordering::Acquire));
    ticks_for(timeout).saturating_add(lag)
}

/// Epoch ticks that cover `timeout`: rounded up, plus one tick because the
/// current tick may be about to end.
pub(crate) fn ticks_for(timeout: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos();
    let ticks = timeout.as_nanos().div_ceil(tick);
    u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
}
