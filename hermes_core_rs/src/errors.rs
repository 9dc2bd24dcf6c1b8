//! The error catalogue: one stable snake_case code per failure Hermes can report.
//!
//! Every rejection at the API, every adapter failure and every provider outcome
//! maps to exactly one code here. The code, its HTTP status, title and whether a
//! retry can succeed are defined once and exported to Python, so the API's
//! problem+json bodies, the NATS ack decision (`term` vs `nak`) and the
//! documentation all read the same table.

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorInfo {
    pub code: &'static str,
    pub status: u16,
    pub title: &'static str,
    pub retryable: bool,
}

macro_rules! catalogue {
    ($( $variant:ident => ($code:literal, $status:literal, $retryable:literal, $title:literal), )+) => {
        /// Every error Hermes can report, by stable code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $( $variant, )+ }

        impl ErrorCode {
            /// All codes, in catalogue order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )+ ];

            pub const fn info(self) -> ErrorInfo {
                match self {
                    $( ErrorCode::$variant => ErrorInfo {
                        code: $code, status: $status, title: $title, retryable: $retryable,
                    }, )+
                }
            }

            pub fn from_code(code: &str) -> Option<ErrorCode> {
                match code {
                    $( $code => Some(ErrorCode::$variant), )+
                    _ => None,
                }
            }
        }
    };
}

catalogue! {
    // Requests that cannot be read at all (validation layer 1).
    RequestMalformed => ("request.malformed", 400, false, "The request body is not valid JSON"),
    RequestInvalid => ("request.invalid", 422, false, "The request does not match the schema"),
    RequestTooLarge => ("request.too_large", 413, false, "The request body is too large"),
    RequestNotFound => ("request.not_found", 404, false, "No such resource"),
    RequestMethodNotAllowed => ("request.method_not_allowed", 405, false, "Method not allowed on this resource"),
    RequestUnsupportedMediaType => ("request.unsupported_media_type", 415, false, "The request body must be application/json"),
    // Authentication and scope (layer 2).
    AuthMissing => ("auth.missing", 401, false, "No API key was given"),
    AuthInvalid => ("auth.invalid", 401, false, "The API key is not valid"),
    AuthForbidden => ("auth.forbidden", 403, false, "The credential may not use this resource"),
    // Server side.
    InternalError => ("internal.error", 500, true, "Internal error"),
    DependencyUnavailable => ("internal.dependency_unavailable", 503, true, "A service Hermes depends on is unavailable"),
}

impl ErrorCode {
    pub fn code(self) -> &'static str {
        self.info().code
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case_and_dotted() {
        let mut seen = HashSet::new();
        for &c in ErrorCode::ALL {
            let info = c.info();
            assert!(seen.insert(info.code), "duplicate code {}", info.code);
            let (area, name) = info.code.split_once('.').expect("area.name");
            for part in [area, name] {
                assert!(!part.is_empty());
                assert!(part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            }
            assert!((400..600).contains(&info.status), "{} has status {}", info.code, info.status);
            assert_eq!(ErrorCode::from_code(info.code), Some(c));
        }
    }

    #[test]
    fn server_errors_are_retryable_and_client_errors_mostly_not() {
        assert!(ErrorCode::InternalError.info().retryable);
        assert!(!ErrorCode::RequestInvalid.info().retryable);
        assert_eq!(ErrorCode::from_code("no.such_code"), None);
    }
}
