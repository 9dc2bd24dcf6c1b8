//! `validate_message` / `validate_batch`: validation layers 3-6 from Python.
//!
//! Messages cross as flat dicts (or, for batches, as one JSON array in bytes,
//! e.g. `msgspec.json.encode(list_of_structs)`), the work runs with the GIL
//! released, and each result comes back as a dict.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use pyo3::intern;
use serde::Deserialize;

use crate::validate::content::SmsInfo;
use crate::validate::phone::Phone;
use crate::validate::{self, Channel, ChannelSet, MessageInput, Normalised, Outcome, StepInput, TenantPolicy};

fn opt_string(v: &Bound<'_, PyAny>, key: &str) -> PyResult<Option<String>> {
    if v.is_none() {
        return Ok(None);
    }
    match v.cast::<PyString>() {
        Ok(s) => Ok(Some(s.to_str()?.to_owned())),
        Err(_) => Err(PyTypeError::new_err(format!("{key} must be a str or None"))),
    }
}

fn opt_i64(v: &Bound<'_, PyAny>, key: &str) -> PyResult<Option<i64>> {
    if v.is_none() {
        return Ok(None);
    }
    v.extract::<i64>().map(Some).map_err(|_| PyTypeError::new_err(format!("{key} must be an int or None")))
}

fn step_from_py(v: &Bound<'_, PyAny>) -> PyResult<StepInput> {
    let d = v.cast::<PyDict>().map_err(|_| PyTypeError::new_err("each step must be a dict"))?;
    let mut step = StepInput { channel: String::new(), timeout_ms: None };
    for (k, v) in d.iter() {
        match k.cast::<PyString>()?.to_str()? {
            "channel" => step.channel = opt_string(&v, "channel")?.unwrap_or_default(),
            "timeout_ms" => step.timeout_ms = opt_i64(&v, "timeout_ms")?,
            other => return Err(PyValueError::new_err(format!("unknown step key {other:?}"))),
        }
    }
    Ok(step)
}

/// One message dict; unknown keys are an error so a typo cannot silently
/// skip a check.
fn message_from_py(obj: &Bound<'_, PyAny>) -> PyResult<MessageInput> {
    let d = obj.cast::<PyDict>().map_err(|_| PyTypeError::new_err("a message must be a dict"))?;
    let mut m = MessageInput::default();
    for (k, v) in d.iter() {
        let key = k.cast::<PyString>()?;
        let key = key.to_str()?;
        match key {
            "phone" => m.phone = opt_string(&v, key)?,
            "email" => m.email = opt_string(&v, key)?,
            "push_token" => m.push_token = opt_string(&v, key)?,
            "whatsapp" => m.whatsapp = opt_string(&v, key)?,
            "body" => m.body = opt_string(&v, key)?,
            "subject" => m.subject = opt_string(&v, key)?,
            "html" => m.html = opt_string(&v, key)?,
            "push_title" => m.push_title = opt_string(&v, key)?,
            "push_data" => m.push_data = opt_string(&v, key)?,
            "send_at_ms" => m.send_at_ms = opt_i64(&v, key)?,
            "expires_at_ms" => m.expires_at_ms = opt_i64(&v, key)?,
            "steps" => {
                let list = v.cast::<PyList>().map_err(|_| PyTypeError::new_err("steps must be a list"))?;
                m.steps = list.iter().map(|s| step_from_py(&s)).collect::<PyResult<_>>()?;
            }
            other => return Err(PyValueError::new_err(format!("unknown message key {other:?}"))),
        }
    }
    Ok(m)
}

/// The JSON form of a message, field for field the dict form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireMessage {
    phone: Option<String>,
    email: Option<String>,
    push_token: Option<String>,
    whatsapp: Option<String>,
    body: Option<String>,
    subject: Option<String>,
    html: Option<String>,
    push_title: Option<String>,
    push_data: Option<String>,
    #[serde(default)]
    steps: Vec<WireStep>,
    send_at_ms: Option<i64>,
    expires_at_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireStep {
    channel: String,
    timeout_ms: Option<i64>,
}

impl From<WireMessage> for MessageInput {
    fn from(w: WireMessage) -> MessageInput {
        MessageInput {
            phone: w.phone,
            email: w.email,
            push_token: w.push_token,
            whatsapp: w.whatsapp,
            body: w.body,
            subject: w.subject,
            html: w.html,
            push_title: w.push_title,
            push_data: w.push_data,
            steps: w.steps.into_iter().map(|s| StepInput { channel: s.channel, timeout_ms: s.timeout_ms }).collect(),
            send_at_ms: w.send_at_ms,
            expires_at_ms: w.expires_at_ms,
        }
    }
}

fn policy_from_py(obj: Option<&Bound<'_, PyAny>>) -> PyResult<TenantPolicy> {
    let mut p = TenantPolicy::default();
    let Some(obj) = obj.filter(|o| !o.is_none()) else { return Ok(p) };
    let d = obj.cast::<PyDict>().map_err(|_| PyTypeError::new_err("policy must be a dict"))?;
    for (k, v) in d.iter() {
        match k.cast::<PyString>()?.to_str()? {
            "channels" => {
                let names: Vec<String> = v.extract()?;
                let mut set = ChannelSet::EMPTY;
                for n in names {
                    set.insert(Channel::parse(&n).ok_or_else(|| PyValueError::new_err(format!("unknown channel {n:?}")))?);
                }
                p.channels = set;
            }
            "allowed_countries" => {
                let codes: Vec<String> = v.extract()?;
                p.allowed_countries = codes
                    .iter()
                    .map(|c| match c.as_bytes() {
                        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                            Ok([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
                        }
                        _ => Err(PyValueError::new_err(format!("{c:?} is not an ISO 3166-1 alpha-2 code"))),
                    })
                    .collect::<PyResult<_>>()?;
            }
            "max_segments" => p.max_segments = v.extract()?,
            other => return Err(PyValueError::new_err(format!("unknown policy key {other:?}"))),
        }
    }
    Ok(p)
}

fn phone_to_py<'py>(py: Python<'py>, p: &Phone) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "e164"), &p.e164)?;
    d.set_item(intern!(py, "country"), p.country_str())?;
    d.set_item(intern!(py, "line_type"), p.line_type.as_str())?;
    Ok(d)
}

fn sms_to_py<'py>(py: Python<'py>, s: &SmsInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "encoding"), s.encoding.as_str())?;
    d.set_item(intern!(py, "segments"), s.segments)?;
    d.set_item(intern!(py, "characters"), s.characters)?;
    d.set_item(intern!(py, "units"), s.units)?;
    Ok(d)
}

fn violations_to_py<'py>(py: Python<'py>, o: &Outcome) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for v in o.as_ref().err().map_or(&[][..], Vec::as_slice) {
        let vd = PyDict::new(py);
        vd.set_item(intern!(py, "code"), v.code.code())?;
        vd.set_item(intern!(py, "field"), v.field.as_ref())?;
        vd.set_item(intern!(py, "detail"), &v.detail)?;
        list.append(vd)?;
    }
    Ok(list)
}

/// One message's result. Built in Rust without the GIL; the attributes are
/// converted to Python objects only when read, so a caller that checks `ok`
/// and reads two fields pays for two fields.
#[pyclass(module = "hermes._core", name = "ValidationResult", frozen)]
pub(crate) struct PyValidationResult {
    outcome: Outcome,
}

impl PyValidationResult {
    fn normalised(&self) -> Option<&Normalised> {
        self.outcome.as_ref().ok()
    }
}

#[pymethods]
impl PyValidationResult {
    /// True when the message has no violations.
    #[getter]
    fn ok(&self) -> bool {
        self.outcome.is_ok()
    }

    /// Every violation: code, field and detail (empty when `ok`).
    #[getter]
    fn violations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        violations_to_py(py, &self.outcome)
    }

    #[getter]
    fn phone<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.normalised().and_then(|n| n.phone.as_ref()).map(|p| phone_to_py(py, p)).transpose()
    }

    #[getter]
    fn whatsapp<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.normalised().and_then(|n| n.whatsapp.as_ref()).map(|p| phone_to_py(py, p)).transpose()
    }

    #[getter]
    fn email(&self) -> Option<&str> {
        self.normalised().and_then(|n| n.email.as_deref())
    }

    #[getter]
    fn push_token<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(t) = self.normalised().and_then(|n| n.push_token.as_ref()) else { return Ok(None) };
        let d = PyDict::new(py);
        d.set_item(intern!(py, "kind"), t.kind.as_str())?;
        d.set_item(intern!(py, "token"), &t.token)?;
        Ok(Some(d))
    }

    #[getter]
    fn sms<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.normalised().and_then(|n| n.sms.as_ref()).map(|s| sms_to_py(py, s)).transpose()
    }

    /// Everything as one dict (`ok` plus the normalised fields, or `ok` and
    /// `violations`), e.g. for a JSON response.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "ok"), self.ok())?;
        if self.ok() {
            d.set_item(intern!(py, "phone"), self.phone(py)?)?;
            d.set_item(intern!(py, "whatsapp"), self.whatsapp(py)?)?;
            d.set_item(intern!(py, "email"), self.email())?;
            d.set_item(intern!(py, "push_token"), self.push_token(py)?)?;
            d.set_item(intern!(py, "sms"), self.sms(py)?)?;
        } else {
            d.set_item(intern!(py, "violations"), self.violations(py)?)?;
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        match &self.outcome {
            Ok(_) => "ValidationResult(ok=True)".to_string(),
            Err(v) => {
                let codes: Vec<String> = v.iter().map(|v| format!("{}@{}", v.code.code(), v.field)).collect();
                format!("ValidationResult(ok=False, violations=[{}])", codes.join(", "))
            }
        }
    }
}

/// Validate one message (a dict) against a tenant policy at `now_ms`.
#[pyfunction]
#[pyo3(signature = (message, policy, now_ms))]
pub(crate) fn validate_message<'py>(
    py: Python<'py>,
    message: &Bound<'py, PyAny>,
    policy: Option<&Bound<'py, PyAny>>,
    now_ms: i64,
) -> PyResult<Bound<'py, PyValidationResult>> {
    let m = message_from_py(message)?;
    let p = policy_from_py(policy)?;
    Bound::new(py, PyValidationResult { outcome: validate::validate_message(&m, &p, now_ms) })
}

/// Validate a batch: a list of message dicts, or one JSON array as bytes.
/// Results come back in input order.
#[pyfunction]
#[pyo3(signature = (messages, policy, now_ms))]
pub(crate) fn validate_batch<'py>(
    py: Python<'py>,
    messages: &Bound<'py, PyAny>,
    policy: Option<&Bound<'py, PyAny>>,
    now_ms: i64,
) -> PyResult<Bound<'py, PyList>> {
    let p = policy_from_py(policy)?;
    let outcomes = if let Ok(bytes) = messages.cast::<PyBytes>() {
        // Parse and validate in one GIL-free stretch; the bytes are immutable.
        let data: &[u8] = bytes.as_bytes();
        py.detach(|| {
            serde_json::from_slice::<Vec<WireMessage>>(data).map(|wire| {
                let inputs: Vec<MessageInput> = wire.into_iter().map(MessageInput::from).collect();
                validate::validate_batch(&inputs, &p, now_ms)
            })
        })
        .map_err(|e| PyValueError::new_err(format!("messages are not a JSON array of messages: {e}")))?
    } else {
        let list = messages.cast::<PyList>().map_err(|_| PyTypeError::new_err("messages must be a list of dicts or JSON bytes"))?;
        let inputs: Vec<MessageInput> = list.iter().map(|m| message_from_py(&m)).collect::<PyResult<_>>()?;
        py.detach(|| validate::validate_batch(&inputs, &p, now_ms))
    };
    let out = PyList::empty(py);
    for outcome in outcomes {
        out.append(Bound::new(py, PyValidationResult { outcome })?)?;
    }
    Ok(out)
}
