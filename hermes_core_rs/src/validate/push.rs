//! Push tokens: the two device-token shapes the push providers issue.
//!
//! - **APNs** (Apple): a 32-byte device token written as 64 hexadecimal
//!   characters; spaces and angle brackets from the old `<abcd 1234 ...>`
//!   `NSData` description are tolerated and removed, and the token is
//!   normalised to lowercase.
//! - **FCM** (Firebase Cloud Messaging) registration token: an opaque
//!   base64url string, in practice 140 to 200 characters of `A-Z a-z 0-9 - _`
//!   with a `:` between the instance id and the `APA91b...` part. The rule
//!   enforced is the shape, not a length guess: 100 to 4096 characters from
//!   that alphabet, at most one `:`, not starting or ending with one. FCM does
//!   not publish a format, so this stays deliberately loose; the provider
//!   answers `UNREGISTERED` for tokens that pass but are not real.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    Apns,
    Fcm,
}

impl PushKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PushKind::Apns => "apns",
            PushKind::Fcm => "fcm",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushToken {
    pub kind: PushKind,
    pub token: String,
}

pub const APNS_HEX_LEN: usize = 64;
pub const FCM_MIN_LEN: usize = 100;
pub const FCM_MAX_LEN: usize = 4096;

pub fn normalise_push_token(input: &str) -> Result<PushToken, String> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err("the push token is empty".into());
    }
    // APNs: hex digits, possibly in the `<xxxxxxxx xxxxxxxx ...>` form.
    let unwrapped = trimmed.strip_prefix('<').and_then(|t| t.strip_suffix('>')).unwrap_or(trimmed);
    if unwrapped.bytes().all(|b| b.is_ascii_hexdigit() || b == b' ') {
        let hex: String = unwrapped.bytes().filter(|b| *b != b' ').map(|b| b.to_ascii_lowercase() as char).collect();
        if hex.len() == APNS_HEX_LEN {
            return Ok(PushToken { kind: PushKind::Apns, token: hex });
        }
        if hex.len() < FCM_MIN_LEN {
            return Err(format!(
                "an APNs device token has {APNS_HEX_LEN} hexadecimal characters; this one has {}",
                hex.len()
            ));
        }
    }
    let len = trimmed.len();
    if !(FCM_MIN_LEN..=FCM_MAX_LEN).contains(&len) {
        return Err(format!(
            "not an APNs token ({APNS_HEX_LEN} hex characters) nor an FCM registration token \
             ({FCM_MIN_LEN} to {FCM_MAX_LEN} characters); this one has {len}"
        ));
    }
    if let Some(c) = trimmed.chars().find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ':')) {
        return Err(format!("an FCM registration token may not contain {c:?}"));
    }
    if trimmed.matches(':').count() > 1 || trimmed.starts_with(':') || trimmed.ends_with(':') {
        return Err("an FCM registration token has at most one inner ':'".into());
    }
    Ok(PushToken { kind: PushKind::Fcm, token: trimmed.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FCM: &str = "dQw4w9WgXcQ:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx5cUWH_RELvmUt5r1_XNf8LThs3L\
                       EKvDbVFa4lZfRK0R9PjiyGdb3Q4EfqCKH6UjXR-V9tG0FAKtFVa9kGZXvG3bDGGl-pDTfMnRoAXp4a";

    #[test]
    fn apns_tokens_are_64_hex_characters_normalised_to_lowercase() {
        let t = normalise_push_token(&"AB".repeat(32)).unwrap();
        assert_eq!((t.kind, t.token.as_str()), (PushKind::Apns, "ab".repeat(32).as_str()));
        let described = format!("<{} {}>", "0f".repeat(16), "e1".repeat(16));
        assert_eq!(normalise_push_token(&described).unwrap().token, format!("{}{}", "0f".repeat(16), "e1".repeat(16)));
        assert!(normalise_push_token(&"a".repeat(63)).unwrap_err().contains("64"));
        assert!(normalise_push_token(&"a".repeat(65)).is_err());
    }

    #[test]
    fn fcm_registration_tokens_have_the_base64url_shape() {
        let t = normalise_push_token(FCM).unwrap();
        assert_eq!(t.kind, PushKind::Fcm);
        assert!(normalise_push_token(&"A".repeat(99)).is_err());
        assert!(normalise_push_token(&"A".repeat(100)).is_ok());
        assert!(normalise_push_token(&"A".repeat(4097)).is_err());
        assert!(normalise_push_token(&format!("{FCM}+/")).is_err(), "standard base64 is not base64url");
        assert!(normalise_push_token(&format!("{FCM}:x")).is_err(), "two colons");
        assert!(normalise_push_token(&format!(":{FCM}")).is_err());
        assert!(normalise_push_token("").is_err());
    }
}
