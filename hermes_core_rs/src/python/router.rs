//! `Router`: provider selection and health from Python.

use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::router::{self, seed_for, AccountSpec, HealthConfig, Selection, MAX_FAILURE_WINDOW};
use crate::validate::Channel;

fn channel(name: &str) -> PyResult<Channel> {
    Channel::parse(name).ok_or_else(|| PyValueError::new_err(format!("unknown channel {name:?}")))
}

fn country(code: Option<&str>) -> PyResult<Option<[u8; 2]>> {
    match code.map(str::as_bytes) {
        None => Ok(None),
        Some([a, b]) if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Ok(Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
        }
        Some(_) => Err(PyValueError::new_err(format!("{code:?} is not an ISO 3166-1 alpha-2 code"))),
    }
}

/// Provider accounts per tenant and channel, their health, and the choice of
/// one for each send. Deterministic: `now_ms` is always an argument and the
/// weighted draw is seeded by the message id and attempt.
#[pyclass(module = "hermes._core", name = "Router")]
pub(crate) struct PyRouter {
    inner: router::Router,
}

#[pymethods]
impl PyRouter {
    #[new]
    #[pyo3(signature = (*, ewma_alpha=0.2, consecutive_failures=5, failure_rate=0.5, min_samples=10, failure_window=20, cooldown_ms=30_000, probe_timeout_ms=30_000))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        ewma_alpha: f64,
        consecutive_failures: u32,
        failure_rate: f64,
        min_samples: u32,
        failure_window: u32,
        cooldown_ms: i64,
        probe_timeout_ms: i64,
    ) -> PyResult<Self> {
        if !(ewma_alpha > 0.0 && ewma_alpha <= 1.0) {
            return Err(PyValueError::new_err("ewma_alpha must be in (0, 1]"));
        }
        if !(0.0..=1.0).contains(&failure_rate) || consecutive_failures == 0 || cooldown_ms < 0 || probe_timeout_ms < 0 {
            return Err(PyValueError::new_err("failure_rate in [0, 1], consecutive_failures >= 1, times >= 0"));
        }
        if !(1..=MAX_FAILURE_WINDOW).contains(&failure_window) {
            return Err(PyValueError::new_err(format!("failure_window must be in [1, {MAX_FAILURE_WINDOW}]")));
        }
        let config = HealthConfig { ewma_alpha, consecutive_failures, failure_rate, min_samples, failure_window, cooldown_ms, probe_timeout_ms };
        Ok(PyRouter { inner: router::Router::new(config) })
    }

    /// Add a provider account, or update an existing id (its health is kept).
    #[pyo3(signature = (account_id, tenant, channel, *, priority=1, weight=1, default_cost=Some(0.0), costs=None))]
    #[allow(clippy::too_many_arguments)]
    fn add_account(
        &mut self,
        account_id: String,
        tenant: String,
        channel: &str,
        priority: u32,
        weight: u32,
        default_cost: Option<f64>,
        costs: Option<std::collections::HashMap<String, f64>>,
    ) -> PyResult<()> {
        let mut by_country = Vec::new();
        for (code, cost) in costs.unwrap_or_default() {
            by_country.push((country(Some(&code))?.expect("Some in, Some out"), cost));
        }
        by_country.sort_by_key(|(code, _)| *code);
        let spec = AccountSpec {
            id: account_id,
            tenant,
            channel: self::channel(channel)?,
            priority,
            weight,
            default_cost,
            costs: by_country,
        };
        self.inner.add_account(spec);
        Ok(())
    }

    /// Record the outcome of a send; `KeyError` for an unknown account.
    #[pyo3(signature = (account_id, success, now_ms, latency_ms=None))]
    fn record_outcome(&mut self, account_id: &str, success: bool, now_ms: i64, latency_ms: Option<f64>) -> PyResult<()> {
        if self.inner.record_outcome(account_id, success, latency_ms, now_ms) {
            Ok(())
        } else {
            Err(PyKeyError::new_err(account_id.to_owned()))
        }
    }

    /// The account for this send, or None (`routing.no_provider`). Marks a
    /// half-open account's pick as its probe.
    #[pyo3(signature = (tenant, channel, country, now_ms, *, exclude=Vec::new(), seed="", attempt=0))]
    #[allow(clippy::too_many_arguments)]
    fn select(
        &mut self,
        tenant: &str,
        channel: &str,
        country: Option<&str>,
        now_ms: i64,
        exclude: Vec<String>,
        seed: &str,
        attempt: u32,
    ) -> PyResult<Option<String>> {
        let (ch, cc) = (self::channel(channel)?, self::country(country)?);
        let exclude: Vec<&str> = exclude.iter().map(String::as_str).collect();
        Ok(self.inner.select(tenant, ch, cc, &exclude, seed_for(seed, attempt), now_ms).chosen)
    }

    /// What `select` would choose and why, for every candidate; changes nothing.
    #[pyo3(signature = (tenant, channel, country, now_ms, *, exclude=Vec::new(), seed="", attempt=0))]
    #[allow(clippy::too_many_arguments)]
    fn explain<'py>(
        &self,
        py: Python<'py>,
        tenant: &str,
        channel: &str,
        country: Option<&str>,
        now_ms: i64,
        exclude: Vec<String>,
        seed: &str,
        attempt: u32,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (ch, cc) = (self::channel(channel)?, self::country(country)?);
        let exclude: Vec<&str> = exclude.iter().map(String::as_str).collect();
        selection_to_py(py, &self.inner.explain(tenant, ch, cc, &exclude, seed_for(seed, attempt), now_ms))
    }

    /// An account's health: breaker state as of `now_ms`, EWMAs and counters.
    fn health<'py>(&self, py: Python<'py>, account_id: &str, now_ms: i64) -> PyResult<Bound<'py, PyDict>> {
        let h = self.inner.health(account_id).ok_or_else(|| PyKeyError::new_err(account_id.to_owned()))?;
        let cfg = self.inner.config();
        let d = PyDict::new(py);
        d.set_item("breaker", h.breaker_at(cfg, now_ms).name())?;
        d.set_item("success_ewma", h.success_ewma)?;
        d.set_item("latency_ewma_ms", h.latency_ewma_ms)?;
        d.set_item("samples", h.samples)?;
        d.set_item("consecutive_failures", h.consecutive_failures)?;
        d.set_item("failure_rate", h.failure_rate(cfg))?;
        d.set_item("reopens_at_ms", h.reopens_at(cfg))?;
        Ok(d)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

fn selection_to_py<'py>(py: Python<'py>, s: &Selection) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "chosen"), s.chosen.as_deref())?;
    let list = PyList::empty(py);
    for c in &s.candidates {
        let cd = PyDict::new(py);
        cd.set_item(intern!(py, "account_id"), &c.account_id)?;
        cd.set_item(intern!(py, "priority"), c.priority)?;
        cd.set_item(intern!(py, "weight"), c.weight)?;
        cd.set_item(intern!(py, "cost"), c.cost)?;
        cd.set_item(intern!(py, "breaker"), c.breaker.name())?;
        cd.set_item(intern!(py, "success_ewma"), c.success_ewma)?;
        cd.set_item(intern!(py, "latency_ewma_ms"), c.latency_ewma_ms)?;
        cd.set_item(intern!(py, "verdict"), c.verdict.name())?;
        let until = match c.verdict {
            router::Verdict::CircuitOpen { until_ms } => Some(until_ms),
            _ => None,
        };
        cd.set_item(intern!(py, "retry_at_ms"), until)?;
        list.append(cd)?;
    }
    d.set_item(intern!(py, "candidates"), list)?;
    Ok(d)
}
