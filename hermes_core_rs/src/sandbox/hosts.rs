//! Which hosts an adapter's request may go to: its manifest's `allowed_hosts`
//! (HTTPS only) or the provider account's configured base URL.

use url::Url;

use super::error::AdapterError;
use crate::errors::ErrorCode;

/// One `allowed_hosts` entry: `api.twilio.com`, `api.twilio.com:8443`, or
/// `*.amazonaws.com` (any name with at least one more label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPattern {
    /// Lower-case host; for a wildcard, the suffix including the leading dot.
    host: String,
    wildcard: bool,
    port: u16,
}

impl HostPattern {
    pub(crate) fn parse(entry: &str) -> Result<Self, String> {
        let (wildcard, rest) = match entry.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, entry),
        };
        // Let the URL parser normalise the name (case, IDNA) and the port.
        let url = Url::parse(&format!("https://{rest}/"))
            .map_err(|e| format!("allowed host {entry:?} is not a host name: {e}"))?;
        let host = match url.host_str() {
            Some(h) if url.username().is_empty() && url.path() == "/" => h,
            _ => return Err(format!("allowed host {entry:?} is not a host name")),
        };
        if host.contains('*') || (wildcard && !host.contains('.')) {
            return Err(format!(
                "allowed host {entry:?}: a wildcard covers one domain, as in *.example.com"
            ));
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let host = if wildcard {
            format!(".{host}")
        } else {
            host.to_owned()
        };
        Ok(HostPattern {
            host,
            wildcard,
            port,
        })
    }

    fn matches(&self, url: &Url) -> bool {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return false;
        };
        if url.scheme() != "https" || port != self.port {
            return false;
        }
        if self.wildcard {
            host.len() > self.host.len() && host.ends_with(&self.host)
        } else {
            host == self.host
        }
    }
}

/// Checks an adapter-built URL. `base_url` is the provider account's
/// configured endpoint (for example the provider sandbox in test mode); a URL
/// on the same scheme, host and port is allowed whatever the manifest says.
pub(crate) fn check_url(
    url: &str,
    allowed: &[HostPattern],
    base_url: Option<&Url>,
) -> Result<(), AdapterError> {
    let parsed = Url::parse(url)
        .map_err(|e| AdapterError::bad_output(format!("request url {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(not_allowed(format!("request url {url:?} is not http(s)")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(not_allowed(format!(
            "request url {url:?} carries credentials"
        )));
    }
    if let Some(base) = base_url {
        if same_origin(&parsed, base) {
            return Ok(());
        }
    }
    if allowed.iter().any(|p| p.matches(&parsed)) {
        return Ok(());
    }
    let host = parsed.host_str().unwrap_or("");
    Err(not_allowed(format!(
        "request to {host:?} ({}) is outside the manifest's allowed_hosts and the account's base URL",
        parsed.scheme()
    )))
}

/// Parses an account's base URL once per call batch.
pub(crate) fn parse_base_url(base_url: &str) -> Result<Url, AdapterError> {
    let url = Url::parse(base_url).map_err(|e| {
        AdapterError::host(
            ErrorCode::RequestInvalid,
            format!("base_url {base_url:?}: {e}"),
        )
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(AdapterError::host(
            ErrorCode::RequestInvalid,
            format!("base_url {base_url:?} must be an http(s) URL with a host"),
        ));
    }
    Ok(url)
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

fn not_allowed(message: String) -> AdapterError {
    AdapterError::host(ErrorCode::AdapterHostNotAllowed, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(entries: &[&str]) -> Vec<HostPattern> {
        entries
            .iter()
            .map(|e| HostPattern::parse(e).unwrap())
            .collect()
    }

    fn code(r: Result<(), AdapterError>) -> Option<String> {
        r.err().map(|e| e.code().to_owned())
    }

    #[test]
    fn exact_hosts_need_https_and_the_default_port() {
        let allowed = patterns(&["API.Twilio.com"]);
        assert_eq!(
            code(check_url(
                "https://api.twilio.com/2010-04-01/x",
                &allowed,
                None
            )),
            None
        );
        assert_eq!(
            code(check_url("https://api.twilio.com:443/x", &allowed, None)),
            None
        );
        for bad in [
            "http://api.twilio.com/x",
            "https://api.twilio.com:8443/x",
            "https://api.twilio.com.evil.example/x",
            "https://evil.example/api.twilio.com",
            "https://api.twilio.com@evil.example/x",
            "https://user:pw@api.twilio.com/x",
            "ftp://api.twilio.com/x",
        ] {
            assert_eq!(
                code(check_url(bad, &allowed, None)).as_deref(),
                Some("adapter.host_not_allowed"),
                "{bad}"
            );
        }
        assert_eq!(
            code(check_url("not a url", &allowed, None)).as_deref(),
            Some("adapter.bad_output")
        );
    }

    #[test]
    fn wildcards_cover_subdomains_only() {
        let allowed = patterns(&["*.amazonaws.com", "fcm.googleapis.com:8443"]);
        assert_eq!(
            code(check_url(
                "https://email.eu-west-1.amazonaws.com/v2",
                &allowed,
                None
            )),
            None
        );
        assert!(check_url("https://amazonaws.com/", &allowed, None).is_err());
        assert!(check_url("https://evilamazonaws.com/", &allowed, None).is_err());
        assert_eq!(
            code(check_url(
                "https://fcm.googleapis.com:8443/v1",
                &allowed,
                None
            )),
            None
        );
        assert!(check_url("https://fcm.googleapis.com/v1", &allowed, None).is_err());
    }

    #[test]
    fn the_account_base_url_allows_its_origin() {
        let base = parse_base_url("http://127.0.0.1:8900/twilio").unwrap();
        assert_eq!(
            code(check_url(
                "http://127.0.0.1:8900/2010-04-01/x",
                &[],
                Some(&base)
            )),
            None
        );
        assert!(check_url("http://127.0.0.1:8901/x", &[], Some(&base)).is_err());
        assert!(check_url("https://127.0.0.1:8900/x", &[], Some(&base)).is_err());
        assert_eq!(
            parse_base_url("mailto:x@y").unwrap_err().code(),
            "request.invalid"
        );
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "",
            "*",
            "*.com.*",
            "https://x.com",
            "x.com/path",
            "*.localhost",
            "a b",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }
}
