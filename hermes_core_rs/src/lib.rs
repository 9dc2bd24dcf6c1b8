//! Hermes core: everything CPU-bound and decidable, with no I/O and no clock.
//!
//! The crate is plain Rust; the PyO3 bindings live in `python/` behind the
//! `python` feature, and the one export list of `hermes._core` is below.

pub mod errors;
pub mod sandbox;
pub mod router;
pub mod validate;
pub mod wheel;
pub mod cascade;
pub mod pgarray;

#[cfg(feature = "python")]
mod python;

/// The crate version, as Python sees it in `hermes._core.__version__`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(feature = "python")]
#[pyo3::pymodule]
#[pyo3(name = "_core")]
fn hermes_core_module(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    use pyo3::prelude::*;
    // The one export list of `hermes._core`; `hermes/_core.pyi` mirrors it and
    // `tests/unit/test_core_stub.py` (mypy.stubtest) keeps the two in step.
    m.add("__version__", VERSION)?;
    m.add_function(wrap_pyfunction!(python::errors::error_codes, m)?)?;
    m.add_function(wrap_pyfunction!(python::validate::validate_message, m)?)?;
    m.add_function(wrap_pyfunction!(python::validate::validate_batch, m)?)?;
    m.add_function(wrap_pyfunction!(python::pgarray::pg_array, m)?)?;
    m.add_class::<python::validate::PyValidationResult>()?;
    m.add_class::<python::router::PyRouter>()?;
    m.add_class::<python::wheel::PyWheel>()?;
    m.add_class::<python::cascade::PyEngine>()?;
    m.add_class::<python::cascade::PyCascade>()?;
    m.add_class::<python::sandbox::AdapterRuntime>()?;
    m.add_class::<python::sandbox::AdapterInfo>()?;
    m.add("AdapterError", m.py().get_type::<python::sandbox::AdapterError>())?;
    Ok(())
}
