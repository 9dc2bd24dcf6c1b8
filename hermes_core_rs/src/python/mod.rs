//! PyO3 bindings. Only these files know about Python.

pub(crate) mod errors;
pub(crate) mod router;
pub(crate) mod validate;
pub(crate) mod wheel;
pub(crate) mod cascade;
pub(crate) mod sandbox;
pub(crate) mod pgarray;
