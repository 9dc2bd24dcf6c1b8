//! Reading what an adapter returned: `{"ok": {...}}` or
//! `{"error": {"code", "message"}}`, UTF-8 JSON, under the output cap.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{AdapterError, Origin};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    ok: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: String,
}

/// The `ok` value of a result, still as the adapter's JSON text.
pub(crate) fn decode(bytes: &[u8]) -> Result<&str, AdapterError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        AdapterError::bad_output(format!("output is not UTF-8 (at byte {})", e.valid_up_to()))
    })?;
    // Serde would also read a struct from an array; results are objects.
    if !text.trim_start().starts_with('{') {
        return Err(AdapterError::bad_output("output is not a JSON object"));
    }
    let envelope: Envelope<'_> = serde_json::from_str(text)
        .map_err(|e| AdapterError::bad_output(format!("output is not a result object: {e}")))?;
    match (envelope.ok, envelope.error) {
        (Some(ok), None) if ok.get().starts_with('{') => Ok(ok.get()),
        (Some(_), None) => Err(AdapterError::bad_output("\"ok\" must be a JSON object")),
        (None, Some(err)) if is_code(&err.code) => Err(AdapterError {
            origin: Origin::Adapter(err.code),
            message: err.message,
        }),
        (None, Some(err)) => Err(AdapterError::bad_output(format!(
            "error code {:?} is not a dotted snake_case code",
            err.code
        ))),
        _ => Err(AdapterError::bad_output(
            "output must have exactly one of \"ok\" or \"error\"",
        )),
    }
}

/// `area.name`, lower-case ASCII, digits and underscores.
fn is_code(code: &str) -> bool {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    code.len() <= 64
        && code
            .split_once('.')
            .is_some_and(|(a, n)| ok_part(a) && ok_part(n))
}

/// The provider HTTP request a `build_request` call returns.
#[derive(Debug, Deserialize)]
pub(crate) struct HttpRequest<'a> {
    #[serde(borrow)]
    pub(crate) method: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) url: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) headers: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Only its type is checked (a string, or absent for a GET).
    #[serde(borrow, default, rename = "body")]
    _body: Option<Cow<'a, str>>,
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Parses and shape-checks a `build_request` result.
pub(crate) fn http_request(ok: &str) -> Result<HttpRequest<'_>, AdapterError> {
    let req: HttpRequest<'_> = serde_json::from_str(ok).map_err(|e| {
        AdapterError::bad_output(format!(
            "build_request result must be {{method, url, headers: [[name, value]...], body}}: {e}"
        ))
    })?;
    if !METHODS.contains(&req.method.as_ref()) {
        return Err(AdapterError::bad_output(format!(
            "method {:?} is not one of {METHODS:?}",
            req.method
        )));
    }
    // A header name or value with CR/LF would let an adapter smuggle headers.
    let bad = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
    if let Some((name, _)) = req
        .headers
        .iter()
        .find(|(n, v)| n.is_empty() || bad(n) || bad(v))
    {
        return Err(AdapterError::bad_output(format!(
            "header {name:?} is empty or has CR, LF or NUL"
        )));
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_code(bytes: &[u8]) -> String {
        decode(bytes).unwrap_err().code().to_owned()
    }

    #[test]
    fn ok_is_passed_through_verbatim() {
        assert_eq!(
            decode(br#" {"ok": {"a": [1, "\u00e9"]}}"#).unwrap(),
            r#"{"a": [1, "\u00e9"]}"#
        );
    }

    #[test]
    fn adapter_errors_keep_their_code() {
        let e =
            decode(br#"{"error": {"code": "provider.rejected", "message": "no"}}"#).unwrap_err();
        assert_eq!((e.code(), e.message.as_str()), ("provider.rejected", "no"));
        assert_eq!(
            err_code(br#"{"error": {"code": "Bad Code"}}"#),
            "adapter.bad_output"
        );
    }

    #[test]
    fn malformed_results_are_bad_output() {
        for bad in [
            &b"\xff\xfe"[..],
            b"not json",
            b"[1]",
            b"{}",
            br#"{"ok": {}, "error": {"code": "a.b"}}"#,
            br#"{"ok": null}"#,
            br#"{"ok": [1]}"#,
            br#"{"ok": "text"}"#,
            br#"{"ok": {}, "extra": 1}"#,
            br#"{"ok": {}"#,
        ] {
            assert_eq!(
                err_code(bad),
                "adapter.bad_output",
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn requests_are_shape_checked() {
        let ok =
            r#"{"method":"POST","url":"https://x.com/a","headers":[["A","b\u00e9"]],"body":"x=1"}"#;
        let req = http_request(ok).unwrap();
        assert_eq!(
            (req.method.as_ref(), req.headers[0].1.as_ref()),
            ("POST", "bé")
        );
        for bad in [
            r#"{"method":"BREW","url":"https://x.com","headers":[]}"#,
            r#"{"method":"GET","url":"https://x.com","headers":[["A","b\r\nX: y"]]}"#,
            r#"{"method":"GET","url":"https://x.com","headers":[["A"]]}"#,
            r#"{"method":"GET","headers":[]}"#,
        ] {
            assert_eq!(
                http_request(bad).unwrap_err().code(),
                "adapter.bad_output",
                "{bad}"
            );
        }
    }
}
