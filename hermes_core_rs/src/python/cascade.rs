//! `CascadeEngine` and `Cascade`: the cascade machine from Python.
//!
//! Events go in as dicts (`{"id": <16 bytes>, "type": "receipt", "step": 0,
//! "attempt": 1, "status": "delivered"}`), actions come out as dicts with the
//! same id; names are the stable snake_case ones of `cascade::types`. A whole
//! batch is parsed, run without the GIL, then converted back.

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use super::wheel::{deadline_from, id_from, id_to_py};
use crate::cascade::{Action, Cascade, Channel, Engine, Event, Phase, Plan, Receipt, Step, Success};

fn value_err(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

fn as_dict<'a, 'py>(obj: &'a Bound<'py, PyAny>, what: &str) -> PyResult<&'a Bound<'py, PyDict>> {
    obj.cast::<PyDict>()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be a dict")))
}

fn required<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?
        .ok_or_else(|| PyKeyError::new_err(format!("missing {key:?}")))
}

/// An optional key, where None counts as absent.
fn optional<'py, T: for<'a> FromPyObject<'a, 'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<T>> {
    match d.get_item(key)? {
        Some(v) if !v.is_none() => v
            .extract::<T>()
            .map(Some)
            .map_err(|_| PyTypeError::new_err(format!("bad type for {key:?}"))),
        _ => Ok(None),
    }
}

fn named<T>(d: &Bound<'_, PyDict>, key: &str, parse: fn(&str) -> Option<T>) -> PyResult<T> {
    let text: String = required(d, key)?.extract()?;
    parse(&text).ok_or_else(|| value_err(format!("unknown {key} {text:?}")))
}

fn time(d: &Bound<'_, PyDict>, key: &str) -> PyResult<Option<u64>> {
    optional::<i64>(d, key)?.map(deadline_from).transpose()
}

fn parse_step(obj: &Bound<'_, PyAny>) -> PyResult<Step> {
    let d = as_dict(obj, "a step")?;
    let channel = named(d, "channel", Channel::parse)?;
    let timeout_ms = time(d, "timeout_ms")?.ok_or_else(|| PyKeyError::new_err("missing \"timeout_ms\""))?;
    let mut step = Step::new(channel, timeout_ms);
    if let Some(s) = optional::<String>(d, "success")? {
        step.success = Success::parse(&s).ok_or_else(|| value_err(format!("unknown success {s:?}")))?;
    }
    step.provider = optional::<String>(d, "provider")?;
    if let Some(m) = optional::<u8>(d, "max_attempts")? {
        if m == 0 {
            return Err(value_err("max_attempts must be at least 1"));
        }
        step.max_attempts = m;
    }
    Ok(step)
}

fn parse_plan(obj: &Bound<'_, PyAny>) -> PyResult<Plan> {
    let d = as_dict(obj, "a plan")?;
    let steps = required(d, "steps")?;
    let steps = steps
        .cast::<PyList>()
        .map_err(|_| PyTypeError::new_err("steps must be a list"))?;
    if steps.len() > 255 {
        return Err(value_err("at most 255 steps"));
    }
    let steps = steps.iter().map(|s| parse_step(&s)).collect::<PyResult<Vec<_>>>()?;
    Ok(Plan {
        steps,
        send_at: time(d, "send_at")?,
        expires_at: time(d, "expires_at")?,
    })
}

/// One event dict (the id, if any, is read by the caller).
fn parse_event(d: &Bound<'_, PyDict>) -> PyResult<Event> {
    let kind: String = required(d, "type")?.extract()?;
    let step = || -> PyResult<u8> { required(d, "step")?.extract() };
    let attempt = || -> PyResult<u16> { required(d, "attempt")?.extract() };
    let retryable = || -> PyResult<bool> { required(d, "retryable")?.extract() };
    Ok(match kind.as_str() {
        "start" => Event::Start(parse_plan(&required(d, "plan")?)?),
        "accepted" => Event::Accepted {
            step: step()?,
            attempt: attempt()?,
            account: optional(d, "account")?,
        },
        "rejected" => Event::Rejected {
            step: step()?,
            attempt: attempt()?,
            account: optional(d, "account")?,
            retryable: retryable()?,
        },
        "provider_error" => Event::ProviderError {
            step: step()?,
            attempt: attempt()?,
            account: optional(d, "account")?,
            retryable: retryable()?,
        },
        "receipt" => Event::Receipt {
            step: step()?,
            attempt: attempt()?,
            status: named(d, "status", Receipt::parse)?,
        },
        "timer_fired" => Event::TimerFired {
            deadline: time(d, "deadline")?.ok_or_else(|| PyKeyError::new_err("missing \"deadline\""))?,
        },
        "cancel" => Event::Cancel,
        "expire" => Event::Expire,
        other => return Err(value_err(format!("unknown event type {other:?}"))),
    })
}

fn action_dict<'py>(py: Python<'py>, id: Option<u128>, action: &Action) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    if let Some(id) = id {
        d.set_item(intern!(py, "id"), id_to_py(py, id))?;
    }
    let ty = intern!(py, "type");
    match action {
        Action::Dispatch {
            step,
            attempt,
            channel,
            provider,
            exclude,
        } => {
            d.set_item(ty, intern!(py, "dispatch"))?;
            d.set_item(intern!(py, "step"), step)?;
            d.set_item(intern!(py, "attempt"), attempt)?;
            d.set_item(intern!(py, "channel"), channel.as_str())?;
            d.set_item(intern!(py, "provider"), provider)?;
            d.set_item(intern!(py, "exclude"), exclude)?;
        }
        Action::SetTimer { deadline } => {
            d.set_item(ty, intern!(py, "set_timer"))?;
            d.set_item(intern!(py, "deadline"), deadline)?;
        }
        Action::CancelTimer => d.set_item(ty, intern!(py, "cancel_timer"))?,
        Action::Finish { outcome } => {
            d.set_item(ty, intern!(py, "finish"))?;
            d.set_item(intern!(py, "outcome"), outcome.as_str())?;
        }
        Action::Notify { notice, step, outcome } => {
            d.set_item(ty, intern!(py, "notify"))?;
            d.set_item(intern!(py, "notice"), notice.as_str())?;
            d.set_item(intern!(py, "step"), step)?;
            d.set_item(intern!(py, "outcome"), outcome.map(|o| o.as_str()))?;
        }
        Action::Timeline {
            kind,
            step,
            attempt,
            detail,
        } => {
            d.set_item(ty, intern!(py, "timeline"))?;
            d.set_item(intern!(py, "kind"), kind.as_str())?;
            d.set_item(intern!(py, "step"), step)?;
            d.set_item(intern!(py, "attempt"), attempt)?;
            d.set_item(intern!(py, "detail"), detail)?;
        }
        Action::Unknown => d.set_item(ty, intern!(py, "unknown"))?,
    }
    Ok(d)
}

fn actions_list<'py>(py: Python<'py>, actions: &[(u128, Action)]) -> PyResult<Bound<'py, PyList>> {
    let dicts = actions
        .iter()
        .map(|(id, a)| action_dict(py, Some(*id), a))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, dicts)
}

fn decode_err(e: crate::cascade::DecodeError) -> PyErr {
    value_err(e.to_string())
}

/// Every live cascade of a worker with their timers in one wheel.
#[pyclass(module = "hermes._core", name = "CascadeEngine")]
pub(crate) struct PyEngine {
    inner: Engine,
}

#[pymethods]
impl PyEngine {
    #[new]
    fn new(now_ms: i64) -> PyResult<Self> {
        Ok(PyEngine {
            inner: Engine::new(deadline_from(now_ms)?),
        })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Pending timers (one per live cascade).
    #[getter]
    fn timers(&self) -> usize {
        self.inner.timers()
    }

    /// When `tick` next has work, or None.
    fn next_deadline(&self) -> Option<u64> {
        self.inner.next_deadline()
    }

    /// Apply event dicts in order at `now_ms`; the actions as dicts.
    fn apply<'py>(&mut self, py: Python<'py>, events: &Bound<'py, PyAny>, now_ms: i64) -> PyResult<Bound<'py, PyList>> {
        let now = deadline_from(now_ms)?;
        let mut parsed = Vec::with_capacity(events.len().unwrap_or(0));
        for obj in events.try_iter()? {
            let obj = obj?;
            let d = as_dict(&obj, "an event")?;
            parsed.push((id_from(&required(d, "id")?)?, parse_event(d)?));
        }
        let inner = &mut self.inner;
        let out = py.detach(|| {
            let mut out = Vec::with_capacity(parsed.len() * 4);
            inner.apply(parsed, now, &mut out);
            out
        });
        actions_list(py, &out)
    }

    /// Fire every timer due at `now_ms` and apply what follows; the actions.
    fn tick<'py>(&mut self, py: Python<'py>, now_ms: i64) -> PyResult<Bound<'py, PyList>> {
        let now = deadline_from(now_ms)?;
        let inner = &mut self.inner;
        let out = py.detach(|| {
            let mut out = Vec::new();
            inner.tick(now, &mut out);
            out
        });
        actions_list(py, &out)
    }

    /// All held cascades and the engine's time, as versioned bytes.
    fn dump<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let inner = &self.inner;
        let bytes = py.detach(|| inner.dump());
        PyBytes::new(py, &bytes)
    }

    /// An engine rebuilt from `dump()`'s bytes.
    #[staticmethod]
    fn load(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let inner = py.detach(|| Engine::load(data)).map_err(decode_err)?;
        Ok(PyEngine { inner })
    }

    /// Add cascades from their persisted states (`Cascade.to_bytes()` or
    /// `export`), as `(id, state)` pairs; due timers fire on the next tick.
    fn restore(&mut self, py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut parsed = Vec::with_capacity(items.len().unwrap_or(0));
        for item in items.try_iter()? {
            let item = item?;
            let (id, state): (Bound<'_, PyAny>, Bound<'_, PyBytes>) = item.extract()?;
            let cascade = Cascade::from_bytes(state.as_bytes()).map_err(decode_err)?;
            parsed.push((id_from(&id)?, cascade));
        }
        let inner = &mut self.inner;
        py.detach(|| {
            inner.reserve(parsed.len());
            for (id, c) in parsed {
                inner.insert(id, c);
            }
        });
        Ok(())
    }

    /// The persisted state of each id, or None where the engine holds none.
    fn export<'py>(&self, py: Python<'py>, ids: &Bound<'py, PyAny>) -> PyResult<Vec<Option<Bound<'py, PyBytes>>>> {
        ids.try_iter()?
            .map(|id| Ok(self.inner.export(id_from(&id?)?).map(|b| PyBytes::new(py, &b))))
            .collect()
    }
}

/// One message's cascade machine, standalone: the pure function with its
/// state, for a message the engine does not hold (a receipt long after the
/// end) and for tests.
#[pyclass(module = "hermes._core", name = "Cascade")]
pub(crate) struct PyCascade {
    inner: Cascade,
}

#[pymethods]
impl PyCascade {
    #[new]
    fn new() -> Self {
        PyCascade { inner: Cascade::new() }
    }

    /// A cascade from its persisted state.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        Ok(PyCascade {
            inner: Cascade::from_bytes(data).map_err(decode_err)?,
        })
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    /// Apply one event dict (no id) at `now_ms`; the actions as dicts.
    fn handle<'py>(
        &mut self,
        py: Python<'py>,
        event: &Bound<'py, PyDict>,
        now_ms: i64,
    ) -> PyResult<Bound<'py, PyList>> {
        let event = parse_event(event)?;
        let mut out = Vec::new();
        self.inner.handle(event, deadline_from(now_ms)?, &mut out);
        let dicts = out
            .iter()
            .map(|a| action_dict(py, None, a))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, dicts)
    }

    /// "created", "scheduled", "active" or "finished".
    #[getter]
    fn phase(&self) -> &'static str {
        match self.inner.phase() {
            Phase::Created => "created",
            Phase::Scheduled => "scheduled",
            Phase::Active => "active",
            Phase::Finished(_) => "finished",
        }
    }

    /// The outcome once finished, else None.
    #[getter]
    fn outcome(&self) -> Option<&'static str> {
        match self.inner.phase() {
            Phase::Finished(o) => Some(o.as_str()),
            _ => None,
        }
    }

    /// The running step (once finished with a success: the step that succeeded).
    #[getter]
    fn step(&self) -> u8 {
        self.inner.step()
    }

    /// The pending timer's deadline, or None.
    #[getter]
    fn timer(&self) -> Option<u64> {
        self.inner.timer()
    }

    /// Each step's status: "pending", "in_flight", "accepted", "delivered",
    /// "read", "failed" or "timed_out".
    #[getter]
    fn step_statuses(&self) -> Vec<&'static str> {
        self.inner.records().iter().map(|r| r.status.as_str()).collect()
    }
}
