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
    // A message's lifecycle.
    MessageAlreadyFinal => ("message.already_final", 409, false, "The message has already reached a final state"),
    // Authentication and scope (layer 2).
    AuthMissing => ("auth.missing", 401, false, "No API key was given"),
    AuthInvalid => ("auth.invalid", 401, false, "The API key is not valid"),
    AuthForbidden => ("auth.forbidden", 403, false, "The credential may not use this resource"),
    // Recipient addresses (layer 3).
    RecipientInvalidPhone => ("recipient.invalid_phone", 422, false, "The phone number is not a valid number for its country"),
    RecipientInvalidEmail => ("recipient.invalid_email", 422, false, "The email address is not valid"),
    RecipientInvalidPushToken => ("recipient.invalid_push_token", 422, false, "The push token is not an FCM or APNs device token"),
    RecipientMissingAddress => ("recipient.missing_address", 422, false, "A step's channel has no address for the recipient"),
    RecipientCountryNotAllowed => ("recipient.country_not_allowed", 422, false, "The recipient's country is not allowed for this tenant"),
    RecipientUnknownContact => ("recipient.unknown_contact", 422, false, "`to` names no contact in the tenant's contact book"),
    // Content (layer 4).
    ContentEmpty => ("content.empty", 422, false, "The message has no content for a channel it uses"),
    ContentControlCharacters => ("content.control_characters", 422, false, "The content contains control characters"),
    ContentTooManySegments => ("content.too_many_segments", 422, false, "The SMS body needs more segments than allowed"),
    ContentSubjectTooLong => ("content.subject_too_long", 422, false, "The email subject is too long"),
    ContentTooLarge => ("content.too_large", 413, false, "The content is larger than the channel allows"),
    ContentPushPayloadTooLarge => ("content.push_payload_too_large", 413, false, "The push payload is larger than 4 KB"),
    ContentInvalidPushData => ("content.invalid_push_data", 422, false, "The push data is not a JSON object"),
    // Cascade plan (layer 5).
    CascadeEmpty => ("cascade.empty", 422, false, "The cascade has no steps"),
    CascadeTooManySteps => ("cascade.too_many_steps", 422, false, "The cascade has too many steps"),
    CascadeUnknownChannel => ("cascade.unknown_channel", 422, false, "A step names an unknown channel"),
    CascadeTimeoutOutOfRange => ("cascade.timeout_out_of_range", 422, false, "A step timeout is outside 1 s to 72 h"),
    CascadeExpiresInPast => ("cascade.expires_in_past", 422, false, "The expiry time is not after now and send_at"),
    CascadeSendAtTooFar => ("cascade.send_at_too_far", 422, false, "The scheduled send time is more than 35 days ahead"),
    CascadeStepLeft => ("cascade.step_left", 409, false, "The cascade moved past this step before the attempt was sent"),
    // Tenant policy (layer 6) and routing.
    PolicyChannelDisabled => ("policy.channel_disabled", 403, false, "The channel is not enabled for this tenant"),
    RoutingNoProvider => ("routing.no_provider", 503, true, "No healthy provider account serves this channel and country"),
    // Compliance, rate limits, quotas and idempotency (layers 7-9).
    ComplianceSuppressed => ("compliance.suppressed", 422, false, "The recipient is on the suppression list"),
    RateLimitExceeded => ("rate_limit.exceeded", 429, true, "Too many requests"),
    QuotaExceeded => ("quota.exceeded", 429, false, "The tenant's quota is used up"),
    IdempotencyConflict => ("idempotency.conflict", 422, false, "The Idempotency-Key was used with a different request"),
    IdempotencyInProgress => ("idempotency.in_progress", 409, true, "A request with this Idempotency-Key is still in progress"),
    // Tenant webhook endpoints.
    WebhookInvalidUrl => ("webhook.invalid_url", 422, false, "The webhook URL is not an absolute http or https URL"),
    WebhookTooManyEndpoints => ("webhook.too_many_endpoints", 422, false, "The tenant has as many webhook endpoints as allowed"),
    // Outbound URLs Hermes calls on a tenant's behalf (SSRF rules).
    TargetNotAllowed => ("target.not_allowed", 422, false, "The URL resolves to an address Hermes may not call (private, loopback, link-local or reserved)"),
    // Provider accounts.
    AccountInvalid => ("account.invalid", 422, false, "The provider account's adapter, credentials or settings are not valid"),
    AccountCredentialsUnreadable => ("account.credentials_unreadable", 500, true, "The provider account's credentials cannot be decrypted with the configured master keys"),
    // Provider adapters (WASM sandbox). A definite adapter or credential
    // failure is 424 Failed Dependency: repeating the call cannot help, and
    // every 5xx in the catalogue is retryable.
    AdapterOutOfFuel => ("adapter.out_of_fuel", 424, false, "The provider adapter ran out of fuel"),
    AdapterTimeout => ("adapter.timeout", 504, true, "The provider adapter exceeded its deadline"),
    AdapterMemoryExceeded => ("adapter.memory_exceeded", 424, false, "The provider adapter exceeded its memory limit"),
    AdapterTrap => ("adapter.trap", 424, false, "The provider adapter trapped"),
    AdapterBadOutput => ("adapter.bad_output", 424, false, "The provider adapter returned malformed output"),
    AdapterHostNotAllowed => ("adapter.host_not_allowed", 424, false, "The provider adapter asked for a host its manifest does not allow"),
    AdapterInvalidModule => ("adapter.invalid_module", 422, false, "The adapter module is not a valid Hermes adapter"),
    AdapterBadInput => ("adapter.bad_input", 422, false, "The provider adapter could not use the message, credentials or configuration it was given"),
    // Deploying adapters (admin API).
    AdapterVersionExists => ("adapter.version_exists", 409, false, "This adapter name and version was already uploaded with other content"),
    AdapterGoldenVectorFailed => ("adapter.golden_vector_failed", 422, false, "The adapter's output does not match one of its golden vectors"),
    AdapterSmokeTestFailed => ("adapter.smoke_test_failed", 422, false, "The adapter failed its smoke test against the provider sandbox"),
    AdapterQuarantined => ("adapter.quarantined", 409, false, "The adapter version is quarantined after repeated traps"),
    // Provider outcomes.
    ProviderRejected => ("provider.rejected", 422, false, "The provider rejected the message"),
    ProviderInvalidRecipient => ("provider.invalid_recipient", 422, false, "The provider rejected the recipient"),
    ProviderRateLimited => ("provider.rate_limited", 429, true, "The provider is rate limiting"),
    ProviderUnavailable => ("provider.unavailable", 503, true, "The provider is unavailable"),
    ProviderAuthFailed => ("provider.auth_failed", 424, false, "The provider rejected the account's credentials"),
    // Server side.
    ServiceOverloaded => ("service.overloaded", 503, true, "Hermes is behind on messages it has already accepted; retry after Retry-After"),
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

    #[test]
    fn catalogue_names_the_codes_validation_routing_and_delivery_use() {
        for code in [
            "recipient.invalid_phone", "recipient.invalid_email", "recipient.invalid_push_token",
            "recipient.missing_address", "recipient.country_not_allowed", "content.empty",
            "content.control_characters", "content.too_many_segments", "content.subject_too_long",
            "content.too_large", "content.push_payload_too_large", "cascade.unknown_channel",
            "cascade.empty", "cascade.timeout_out_of_range", "cascade.expires_in_past",
            "cascade.send_at_too_far", "policy.channel_disabled", "routing.no_provider",
            "adapter.out_of_fuel", "adapter.timeout", "adapter.memory_exceeded", "adapter.trap",
            "adapter.bad_output", "adapter.host_not_allowed", "adapter.invalid_module",
            "provider.rejected", "provider.invalid_recipient", "provider.rate_limited",
            "provider.unavailable", "provider.auth_failed", "rate_limit.exceeded", "quota.exceeded",
            "idempotency.conflict", "idempotency.in_progress", "compliance.suppressed",
        ] {
            assert!(ErrorCode::from_code(code).is_some(), "missing {code}");
        }
    }

    #[test]
    fn transient_failures_are_retryable_and_definite_ones_are_not() {
        // The NATS ack decision reads this flag: retryable -> nak(delay), else term().
        for code in [ErrorCode::ProviderRateLimited, ErrorCode::ProviderUnavailable,
                     ErrorCode::AdapterTimeout, ErrorCode::RateLimitExceeded, ErrorCode::RoutingNoProvider] {
            assert!(code.info().retryable, "{} should be retryable", code.code());
        }
        for code in [ErrorCode::ProviderRejected, ErrorCode::ProviderInvalidRecipient,
                     ErrorCode::AdapterTrap, ErrorCode::AdapterOutOfFuel, ErrorCode::RecipientInvalidPhone] {
            assert!(!code.info().retryable, "{} should not be retryable", code.code());
        }
        for &c in ErrorCode::ALL {
            if c.info().status >= 500 {
                assert!(c.info().retryable, "{} is a 5xx, so a retry may succeed", c.code());
            }
        }
        assert_eq!(ErrorCode::RateLimitExceeded.info().status, 429);
        assert_eq!(ErrorCode::IdempotencyInProgress.info().status, 409);
    }
}
