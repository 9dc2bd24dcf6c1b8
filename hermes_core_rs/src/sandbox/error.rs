//! Failures of the sandbox: a catalogue code chosen by the host, or a code the
//! adapter itself reported in an `{"error": {...}}` result.

use std::fmt;

use crate::errors::ErrorCode;

/// Who decided the code of a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The host: a limit, a trap, malformed output, a rejected module.
    Host(ErrorCode),
    /// The adapter returned `{"error": {"code", "message"}}`; the code is its
    /// own (usually a catalogue code such as `provider.rejected`).
    Adapter(String),
}

/// One failed adapter call or load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterError {
    pub origin: Origin,
    pub message: String,
}

impl AdapterError {
    pub(crate) fn host(code: ErrorCode, message: impl Into<String>) -> Self {
        AdapterError {
            origin: Origin::Host(code),
            message: message.into(),
        }
    }

    pub(crate) fn invalid_module(message: impl Into<String>) -> Self {
        Self::host(ErrorCode::AdapterInvalidModule, message)
    }

    pub(crate) fn bad_output(message: impl Into<String>) -> Self {
        Self::host(ErrorCode::AdapterBadOutput, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::host(ErrorCode::InternalError, message)
    }

    /// The stable code: a catalogue code for host failures, the adapter's own
    /// otherwise.
    pub fn code(&self) -> &str {
        match &self.origin {
            Origin::Host(code) => code.code(),
            Origin::Adapter(code) => code,
        }
    }
}

impl fmt::Display for AdapterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message)
    }
}

impl std::error::Error for AdapterError {}
