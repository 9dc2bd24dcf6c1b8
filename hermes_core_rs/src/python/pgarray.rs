use std::fmt::Write as _;

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyInt, PyList, PyMemoryView, PyString, PyType};

use crate::pgarray::{push_bytea, push_text, push_uuid};

static UUID: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();

struct Types<'a, 'py> {
    uuid: &'a Bound<'py, PyType>,
    datetime: &'a Bound<'py, PyType>,
}

/// `values` as one PostgreSQL array literal (`{"a","b",NULL}`), to pass with a cast
/// (`%s::uuid[]`). None is NULL, bools are `t`/`f`, ints and UUIDs are written as
/// they print, bytes in bytea's hex format, aware datetimes in ISO 8601; anything
/// else as its `str()`, quoted. Raises ValueError for text with NUL and for naive
/// datetimes, which PostgreSQL could not store faithfully.
#[pyfunction]
pub(crate) fn pg_array(py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<String> {
    let types = Types {
        uuid: UUID.import(py, "uuid", "UUID")?,
        datetime: DATETIME.import(py, "datetime", "datetime")?,
    };
    let mut out = String::with_capacity(64);
    out.push('{');
    let mut first = true;
    if let Ok(list) = values.cast::<PyList>() {
        for v in list.iter() {
            if !first {
                out.push(',');
            }
            first = false;
            push_element(&mut out, &v, &types)?;
        }
    } else {
        for v in values.try_iter()? {
            if !first {
                out.push(',');
            }
            first = false;
            push_element(&mut out, &v?, &types)?;
        }
    }
    out.push('}');
    Ok(out)
}

fn text(out: &mut String, s: &str) -> PyResult<()> {
    push_text(out, s).map_err(PyValueError::new_err)
}

fn push_element(out: &mut String, v: &Bound<'_, PyAny>, types: &Types<'_, '_>) -> PyResult<()> {
    let py = v.py();
    if v.is_none() {
        out.push_str("NULL");
    } else if let Ok(s) = v.cast_exact::<PyString>() {
        text(out, s.to_str()?)?;
    } else if let Ok(b) = v.cast::<PyBool>() {
        out.push(if b.is_true() { 't' } else { 'f' });
    } else if v.is_exact_instance(types.uuid.as_any()) {
        push_uuid(out, v.getattr(intern!(py, "int"))?.extract::<u128>()?);
    } else if let Ok(i) = v.cast_exact::<PyInt>() {
        match i.extract::<i64>() {
            Ok(n) => {
                let _ = write!(out, "{n}");
            }
            Err(_) => out.push_str(i.str()?.to_str()?),
        }
    } else if v.is_instance_of::<PyInt>() || v.is_instance(types.uuid.as_any())? {
        // Subclasses print as their own `str()`, unquoted, like the exact types.
        out.push_str(v.str()?.to_str()?);
    } else if let Ok(b) = v.cast::<PyBytes>() {
        push_bytea(out, b.as_bytes());
    } else if let Ok(b) = v.cast::<PyByteArray>() {
        push_bytea(out, &b.to_vec());
    } else if v.is_instance_of::<PyMemoryView>() {
        let b = v.call_method0(intern!(py, "tobytes"))?;
        push_bytea(out, b.cast::<PyBytes>()?.as_bytes());
    } else if v.is_instance(types.datetime.as_any())? {
        if v.getattr(intern!(py, "tzinfo"))?.is_none() {
            return Err(PyValueError::new_err(
                "a naive datetime has no unambiguous timestamptz",
            ));
        }
        let iso = v.call_method0(intern!(py, "isoformat"))?;
        text(out, iso.cast::<PyString>()?.to_str()?)?;
    } else {
        text(out, v.str()?.to_str()?)?;
    }
    Ok(())
}
