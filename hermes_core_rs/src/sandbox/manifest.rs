//! The manifest an adapter describes itself with (`hermes_manifest`).

use serde::Deserialize;

use super::error::AdapterError;
use super::hosts::HostPattern;
use super::module::ABI_VERSION;
use super::output;

/// The fields the host acts on. The rest (`credentials`, `callback_auth`,
/// `token`) is for the Python side and kept verbatim in `Manifest::json`.
#[derive(Deserialize)]
struct Fields {
    name: String,
    version: String,
    abi: i64,
    channels: Vec<String>,
    allowed_hosts: Vec<String>,
}

/// The channels Hermes delivers on.
const CHANNELS: &[&str] = &["sms", "email", "push", "whatsapp"];

#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub channels: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub(crate) hosts: Vec<HostPattern>,
    /// The manifest object as the adapter wrote it.
    pub json: String,
}

/// Parses the manifest text: either the manifest object itself or wrapped as
/// `{"ok": manifest}` like the other results.
pub(crate) fn parse(text: &str) -> Result<Manifest, AdapterError> {
    let invalid = |m: String| AdapterError::invalid_module(format!("manifest: {m}"));
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let json = match value.as_object() {
        Some(o) if o.contains_key("ok") || o.contains_key("error") => {
            output::decode(text.as_bytes())
                .map_err(|e| invalid(e.to_string()))?
                .to_owned()
        }
        Some(_) => text.to_owned(),
        None => return Err(invalid("not a JSON object".into())),
    };
    let fields: Fields = serde_json::from_str(&json).map_err(|e| invalid(e.to_string()))?;
    if fields.abi != i64::from(ABI_VERSION) {
        return Err(invalid(format!(
            "abi is {}, this host speaks {ABI_VERSION}",
            fields.abi
        )));
    }
    let is_name = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    if !is_name(&fields.name) {
        return Err(invalid(format!(
            "name {:?} must be lower-case snake_case",
            fields.name
        )));
    }
    if fields.version.is_empty() {
        return Err(invalid("version must not be empty".into()));
    }
    if let Some(c) = fields
        .channels
        .iter()
        .find(|c| !CHANNELS.contains(&c.as_str()))
    {
        return Err(invalid(format!("channel {c:?} is not one of {CHANNELS:?}")));
    }
    let hosts = fields
        .allowed_hosts
        .iter()
        .map(|h| HostPattern::parse(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    Ok(Manifest {
        name: fields.name,
        version: fields.version,
        channels: fields.channels,
        allowed_hosts: fields.allowed_hosts,
        hosts,
        json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = r#"{"name":"twilio_sms","version":"1.0.0","abi":1,"channels":["sms"],
        "allowed_hosts":["api.twilio.com"],"credentials":["account_sid"],"callback_auth":null}"#;

    #[test]
    fn plain_and_wrapped_manifests_are_read() {
        let m = parse(PLAIN).unwrap();
        assert_eq!(
            (m.name.as_str(), m.channels.len(), m.hosts.len()),
            ("twilio_sms", 1, 1)
        );
        let wrapped = format!("{{\"ok\": {PLAIN}}}");
        assert_eq!(parse(&wrapped).unwrap().json, PLAIN);
    }

    #[test]
    fn bad_manifests_make_the_module_invalid() {
        for bad in [
            PLAIN.replace("\"abi\":1", "\"abi\":2"),
            PLAIN.replace("twilio_sms", "Twilio SMS"),
            PLAIN.replace("api.twilio.com", "https://api.twilio.com/x"),
            PLAIN.replace("\"channels\":[\"sms\"],", ""),
            PLAIN.replace("[\"sms\"]", "[\"sms\",\"fax\"]"),
            "[]".into(),
            r#"{"error":{"code":"adapter.broken","message":"x"}}"#.into(),
        ] {
            assert_eq!(
                parse(&bad).unwrap_err().code(),
                "adapter.invalid_module",
                "{bad}"
            );
        }
    }
}
