//! Python bindings of the adapter sandbox: `AdapterRuntime`, `AdapterInfo`
//! and the `AdapterError` exception.
//!
//! Bytes cross the boundary, never callbacks; wasm runs with the GIL released,
//! and a batch runs many messages in one crossing.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::sandbox::{
    self, Entry, Limits, Loaded, Runtime, DEFAULT_FUEL, DEFAULT_MEMORY_BYTES, DEFAULT_OUTPUT_BYTES,
    DEFAULT_TIMEOUT,
};

create_exception!(
    hermes._core,
    AdapterError,
    PyException,
    "A provider adapter failed to load or to run; `code` is the stable error code, `message` says why."
);

const DEFAULT_TIMEOUT_MS: u64 = DEFAULT_TIMEOUT.as_millis() as u64;

/// The `AdapterError` instance for `e`, with `code` and `message` set.
fn error_object<'py>(py: Python<'py>, e: &sandbox::AdapterError) -> PyResult<Bound<'py, PyAny>> {
    let obj = py
        .get_type::<AdapterError>()
        .call1((e.code(), e.message.as_str()))?;
    obj.setattr("code", e.code())?;
    obj.setattr("message", e.message.as_str())?;
    Ok(obj)
}

fn to_pyerr(py: Python<'_>, e: &sandbox::AdapterError) -> PyErr {
    match error_object(py, e) {
        Ok(obj) => PyErr::from_value(obj),
        Err(err) => err,
    }
}

/// A loaded adapter version.
#[pyclass(frozen, get_all, module = "hermes._core")]
pub(crate) struct AdapterInfo {
    sha256: String,
    name: String,
    version: String,
    channels: Vec<String>,
    allowed_hosts: Vec<String>,
    manifest_json: String,
    source: &'static str,
    load_seconds: f64,
}

#[pymethods]
impl AdapterInfo {
    fn __repr__(&self) -> String {
        format!(
            "AdapterInfo(name={:?}, version={:?}, sha256={:?}, source={:?})",
            self.name, self.version, self.sha256, self.source
        )
    }
}

impl From<&Loaded> for AdapterInfo {
    fn from(loaded: &Loaded) -> Self {
        let m = &loaded.adapter.manifest;
        AdapterInfo {
            sha256: sandbox::cache::hex(&loaded.adapter.sha256),
            name: m.name.clone(),
            version: m.version.clone(),
            channels: m.channels.clone(),
            allowed_hosts: m.allowed_hosts.clone(),
            manifest_json: m.json.clone(),
            source: loaded.source.as_str(),
            load_seconds: loaded.code_time.as_secs_f64(),
        }
    }
}

/// Hosts provider adapters: loaded versions by SHA-256, a fresh instance for
/// every call, limits on every call.
#[pyclass(frozen, module = "hermes._core")]
pub(crate) struct AdapterRuntime {
    inner: Runtime,
}

impl AdapterRuntime {
    fn run_one(
        &self,
        py: Python<'_>,
        entry: Entry,
        sha256: &str,
        input: &[u8],
        base_url: Option<&str>,
    ) -> PyResult<Py<PyBytes>> {
        let runtime = &self.inner;
        let result = py.detach(|| {
            let adapter = runtime.get(sha256)?;
            runtime.call(&adapter, entry, input, base_url)
        });
        match result {
            Ok(out) => Ok(PyBytes::new(py, out.as_bytes()).unbind()),
            Err(e) => Err(to_pyerr(py, &e)),
        }
    }

    fn run_batch<'py>(
        &self,
        py: Python<'py>,
        entry: Entry,
        sha256: &str,
        inputs: Vec<Bound<'py, PyBytes>>,
        base_url: Option<&str>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let runtime = &self.inner;
        let adapter = runtime.get(sha256).map_err(|e| to_pyerr(py, &e))?;
        let slices: Vec<&[u8]> = inputs.iter().map(|b| b.as_bytes()).collect();
        let results = py.detach(|| runtime.call_batch(&adapter, entry, &slices, base_url));
        results
            .iter()
            .map(|r| match r {
                Ok(out) => Ok(PyBytes::new(py, out.as_bytes()).into_any()),
                Err(e) => error_object(py, e),
            })
            .collect()
    }
}

#[pymethods]
impl AdapterRuntime {
    #[new]
    #[pyo3(signature = (
        cache_dir=None,
        *,
        fuel=DEFAULT_FUEL,
        timeout_ms=DEFAULT_TIMEOUT_MS,
        memory_bytes=DEFAULT_MEMORY_BYTES,
        output_bytes=DEFAULT_OUTPUT_BYTES,
    ))]
    fn new(
        cache_dir: Option<PathBuf>,
        fuel: u64,
        timeout_ms: u64,
        memory_bytes: usize,
        output_bytes: usize,
    ) -> PyResult<Self> {
        let limits = Limits {
            fuel,
            timeout: Duration::from_millis(timeout_ms),
            memory_bytes,
            output_bytes,
        };
        Runtime::new(limits, cache_dir)
            .map(|inner| AdapterRuntime { inner })
            .map_err(PyValueError::new_err)
    }

    #[getter]
    fn fuel(&self) -> u64 {
        self.inner.limits().fuel
    }

    #[getter]
    fn timeout_ms(&self) -> u64 {
        self.inner.limits().timeout.as_millis() as u64
    }

    #[getter]
    fn memory_bytes(&self) -> usize {
        self.inner.limits().memory_bytes
    }

    #[getter]
    fn output_bytes(&self) -> usize {
        self.inner.limits().output_bytes
    }

    fn load(&self, py: Python<'_>, wasm: &[u8]) -> PyResult<AdapterInfo> {
        let runtime = &self.inner;
        match py.detach(|| runtime.load(wasm)) {
            Ok(loaded) => Ok(AdapterInfo::from(&loaded)),
            Err(e) => Err(to_pyerr(py, &e)),
        }
    }

    fn unload(&self, py: Python<'_>, sha256: &str) -> PyResult<bool> {
        self.inner.unload(sha256).map_err(|e| to_pyerr(py, &e))
    }

    fn loaded(&self) -> Vec<String> {
        let mut shas: Vec<String> = self
            .inner
            .loaded()
            .iter()
            .map(|a| sandbox::cache::hex(&a.sha256))
            .collect();
        shas.sort();
        shas
    }

    /// Running totals per loaded version: `{"sha256", "name", "version", "calls",
    /// "failures", "fuel"}`, sorted by SHA-256.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let mut loaded = self.inner.loaded();
        loaded.sort_by_key(|a| a.sha256);
        loaded
            .iter()
            .map(|a| {
                let totals = a.stats.totals();
                let d = PyDict::new(py);
                d.set_item("sha256", sandbox::cache::hex(&a.sha256))?;
                d.set_item("name", &a.manifest.name)?;
                d.set_item("version", &a.manifest.version)?;
                d.set_item("calls", totals.calls)?;
                d.set_item("failures", totals.failures)?;
                d.set_item("fuel", totals.fuel)?;
                Ok(d)
            })
            .collect()
    }

    #[pyo3(signature = (sha256, input, base_url=None))]
    fn build_request(
        &self,
        py: Python<'_>,
        sha256: &str,
        input: &[u8],
        base_url: Option<&str>,
    ) -> PyResult<Py<PyBytes>> {
        self.run_one(py, Entry::BuildRequest, sha256, input, base_url)
    }

    #[pyo3(signature = (sha256, input))]
    fn parse_response(&self, py: Python<'_>, sha256: &str, input: &[u8]) -> PyResult<Py<PyBytes>> {
        self.run_one(py, Entry::ParseResponse, sha256, input, None)
    }

    #[pyo3(signature = (sha256, input))]
    fn parse_callback(&self, py: Python<'_>, sha256: &str, input: &[u8]) -> PyResult<Py<PyBytes>> {
        self.run_one(py, Entry::ParseCallback, sha256, input, None)
    }

    #[pyo3(signature = (sha256, inputs, base_url=None))]
    fn build_requests<'py>(
        &self,
        py: Python<'py>,
        sha256: &str,
        inputs: Vec<Bound<'py, PyBytes>>,
        base_url: Option<&str>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.run_batch(py, Entry::BuildRequest, sha256, inputs, base_url)
    }

    #[pyo3(signature = (sha256, inputs))]
    fn parse_responses<'py>(
        &self,
        py: Python<'py>,
        sha256: &str,
        inputs: Vec<Bound<'py, PyBytes>>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.run_batch(py, Entry::ParseResponse, sha256, inputs, None)
    }

    #[pyo3(signature = (sha256, inputs))]
    fn parse_callbacks<'py>(
        &self,
        py: Python<'py>,
        sha256: &str,
        inputs: Vec<Bound<'py, PyBytes>>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.run_batch(py, Entry::ParseCallback, sha256, inputs, None)
    }
}
