use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::ErrorCode;

/// The error catalogue as a list of dicts: code, status, title, retryable.
#[pyfunction]
pub(crate) fn error_codes(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    ErrorCode::ALL
        .iter()
        .map(|c| {
            let info = c.info();
            let d = PyDict::new(py);
            d.set_item("code", info.code)?;
            d.set_item("status", info.status)?;
            d.set_item("title", info.title)?;
            d.set_item("retryable", info.retryable)?;
            Ok(d)
        })
        .collect()
}
