//! `Wheel`: the timer wheel from Python, in batches.
//!
//! Message ids cross as 16-byte big-endian `bytes` (`uuid.UUID.bytes`, so
//! `uuid.UUID(bytes=b)` round-trips); single-id calls also take an `int`
//! (`uuid.UUID.int`). Batches take the ids packed into one `bytes` object of
//! `16 * n` bytes, so a batch is one buffer, not n objects.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyList, PyTuple};

use crate::wheel;

/// A message id from 16 bytes (big-endian) or a non-negative int below 2^128.
pub(crate) fn id_from(obj: &Bound<'_, PyAny>) -> PyResult<u128> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        let bytes: [u8; 16] = b
            .as_bytes()
            .try_into()
            .map_err(|_| PyValueError::new_err(format!("a message id is 16 bytes, got {}", b.as_bytes().len())))?;
        return Ok(u128::from_be_bytes(bytes));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj
            .extract::<u128>()
            .map_err(|_| PyValueError::new_err("a message id int must be in [0, 2**128)"));
    }
    Err(PyTypeError::new_err(
        "a message id is 16 bytes (uuid.UUID.bytes) or an int (uuid.UUID.int)",
    ))
}

pub(crate) fn id_to_py(py: Python<'_>, id: u128) -> Bound<'_, PyBytes> {
    PyBytes::new(py, &id.to_be_bytes())
}

/// Ids given either packed (`bytes` of `16 * n`) or as a sequence of ids
/// (each 16 bytes or an int).
pub(crate) fn ids_from(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u128>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return unpack_ids(b.as_bytes());
    }
    if obj.is_instance_of::<pyo3::types::PyString>() {
        return Err(PyTypeError::new_err(
            "ids are packed bytes or a sequence of ids, not a str",
        ));
    }
    obj.try_iter()?.map(|item| id_from(&item?)).collect()
}

/// Splits packed ids (`16 * n` bytes) into ids.
pub(crate) fn unpack_ids(packed: &[u8]) -> PyResult<Vec<u128>> {
    if packed.len() % 16 != 0 {
        return Err(PyValueError::new_err(format!(
            "packed ids must be 16 * n bytes, got {}",
            packed.len()
        )));
    }
    Ok(packed
        .chunks_exact(16)
        .map(|c| u128::from_be_bytes(c.try_into().expect("16 bytes")))
        .collect())
}

pub(crate) fn deadline_from(v: i64) -> PyResult<u64> {
    u64::try_from(v).map_err(|_| PyValueError::new_err("times are milliseconds >= 0"))
}

/// Timers by message id at 1 ms resolution; time is always an argument.
#[pyclass(module = "hermes._core", name = "Wheel")]
pub(crate) struct PyWheel {
    inner: wheel::Wheel,
}

#[pymethods]
impl PyWheel {
    #[new]
    fn new(now_ms: i64) -> PyResult<Self> {
        Ok(PyWheel {
            inner: wheel::Wheel::new(deadline_from(now_ms)?),
        })
    }

    /// The wheel's time: the last `now_ms` advanced to.
    #[getter]
    fn now(&self) -> u64 {
        self.inner.now()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Set `id`'s timer, replacing any pending one.
    fn insert(&mut self, id: &Bound<'_, PyAny>, deadline_ms: i64) -> PyResult<()> {
        self.inner.insert(id_from(id)?, deadline_from(deadline_ms)?);
        Ok(())
    }

    /// Set many timers: `ids` packed (16 bytes each) or a sequence of ids, one
    /// deadline per id.
    fn insert_many(&mut self, py: Python<'_>, ids: &Bound<'_, PyAny>, deadlines: Vec<i64>) -> PyResult<()> {
        let ids = ids_from(ids)?;
        if ids.len() != deadlines.len() {
            return Err(PyValueError::new_err(format!(
                "{} ids but {} deadlines",
                ids.len(),
                deadlines.len()
            )));
        }
        let timers = ids
            .into_iter()
            .zip(deadlines)
            .map(|(id, d)| Ok((id, deadline_from(d)?)))
            .collect::<PyResult<Vec<(u128, u64)>>>()?;
        let inner = &mut self.inner;
        py.detach(|| inner.insert_many(&timers));
        Ok(())
    }

    /// Cancel `id`'s timer; False if it had none.
    fn cancel(&mut self, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.inner.cancel(id_from(id)?))
    }

    /// Cancel many timers (`ids` packed or a sequence); how many were pending.
    fn cancel_many(&mut self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<usize> {
        let ids = ids_from(ids)?;
        let inner = &mut self.inner;
        Ok(py.detach(|| inner.cancel_many(&ids)))
    }

    /// Move `id`'s pending timer; False (and nothing set) if it had none.
    fn reschedule(&mut self, id: &Bound<'_, PyAny>, deadline_ms: i64) -> PyResult<bool> {
        Ok(self.inner.reschedule(id_from(id)?, deadline_from(deadline_ms)?))
    }

    /// The pending deadline of `id`, or None.
    fn deadline(&self, id: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        Ok(self.inner.deadline(id_from(id)?))
    }

    /// When `advance` next has work: a lower bound of the earliest deadline.
    fn next_deadline(&self) -> Option<u64> {
        self.inner.next_deadline()
    }

    /// Move time to `now_ms`; the expired timers as `(id, deadline)`.
    fn advance<'py>(&mut self, py: Python<'py>, now_ms: i64) -> PyResult<Bound<'py, PyList>> {
        let fired = self.run_advance(py, now_ms)?;
        let items = fired
            .iter()
            .map(|&(id, d)| PyTuple::new(py, [id_to_py(py, id).into_any(), d.into_pyobject(py)?.into_any()]));
        PyList::new(py, items.collect::<PyResult<Vec<_>>>()?)
    }

    /// Move time to `now_ms`; the expired timers as `(packed ids, deadlines)`,
    /// the cheapest form for large batches.
    fn advance_packed<'py>(&mut self, py: Python<'py>, now_ms: i64) -> PyResult<(Bound<'py, PyBytes>, Vec<u64>)> {
        let fired = self.run_advance(py, now_ms)?;
        let mut packed = Vec::with_capacity(fired.len() * 16);
        let mut deadlines = Vec::with_capacity(fired.len());
        for &(id, d) in fired.iter() {
            packed.extend_from_slice(&id.to_be_bytes());
            deadlines.push(d);
        }
        Ok((PyBytes::new(py, &packed), deadlines))
    }
}

impl PyWheel {
    fn run_advance(&mut self, py: Python<'_>, now_ms: i64) -> PyResult<Vec<(u128, u64)>> {
        let now = deadline_from(now_ms)?;
        let mut fired = Vec::new();
        let inner = &mut self.inner;
        py.detach(|| inner.advance(now, &mut fired));
        Ok(fired)
    }
}
