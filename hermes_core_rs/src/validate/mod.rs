//! Validation layers 3-6 of DESIGN.md §5 in one call per message: recipient
//! addresses, content, cascade plan and tenant policy.
//!
//! Every rule runs, so the caller gets every violation at once, each with a
//! catalogue code, the failing field (`to.phone`, `steps[1].timeout`, `body`)
//! and a human detail. A message without violations comes back normalised
//! (E.164 phone, punycode email domain, push token kind, SMS encoding and
//! segments).
//!
//! Field paths: `to.phone`, `to.email`, `to.push_token`, `to.whatsapp`,
//! `body`, `email.subject`, `email.html`, `push.title`, `push.data`, `steps`,
//! `steps[i].channel`, `steps[i].timeout`, `send_at`, `expires_at`.

pub mod content;
pub mod email;
pub mod phone;
pub mod plan;
pub mod policy;
pub mod push;
mod ranges;

use std::borrow::Cow;

use crate::errors::ErrorCode;
use content::{SmsInfo, MAX_EMAIL_BYTES, MAX_PUSH_PAYLOAD_BYTES, MAX_SUBJECT_CHARS, MAX_WHATSAPP_CHARS};
use phone::Phone;
pub use plan::{Channel, ChannelSet};
pub use policy::TenantPolicy;
use push::PushToken;

/// One cascade step as the API received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInput {
    /// Checked against the known channels, so any string is accepted here.
    pub channel: String,
    /// `None` lets the engine apply the channel's default.
    pub timeout_ms: Option<i64>,
}

/// The compact message the core validates: what layers 3-6 need and nothing
/// else (no ids, no metadata).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageInput {
    pub phone: Option<String>,
    pub email: Option<String>,
    pub push_token: Option<String>,
    pub whatsapp: Option<String>,
    pub body: Option<String>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub push_title: Option<String>,
    /// A JSON object, as text.
    pub push_data: Option<String>,
    pub steps: Vec<StepInput>,
    pub send_at_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub code: ErrorCode,
    pub field: Cow<'static, str>,
    pub detail: String,
}

impl Violation {
    pub(crate) fn new(code: ErrorCode, field: &'static str, detail: String) -> Violation {
        Violation { code, field: Cow::Borrowed(field), detail }
    }

    pub(crate) fn owned(code: ErrorCode, field: String, detail: String) -> Violation {
        Violation { code, field: Cow::Owned(field), detail }
    }
}

/// A valid message's normalised values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Normalised {
    pub phone: Option<Phone>,
    pub whatsapp: Option<Phone>,
    pub email: Option<String>,
    pub push_token: Option<PushToken>,
    /// Present when the message has a body: how it would travel as an SMS.
    pub sms: Option<SmsInfo>,
}

pub type Outcome = Result<Normalised, Vec<Violation>>;

/// Validate one message against the tenant's policy at `now_ms`.
pub fn validate_message(m: &MessageInput, policy: &TenantPolicy, now_ms: i64) -> Outcome {
    let mut v = Vec::new();
    let mut n = Normalised::default();

    // Layer 5 first: it says which channels the content must suit.
    let steps = plan::check_plan(m, now_ms, &mut v);
    let uses = ChannelSet::from_channels(steps.iter().map(|&(_, c)| c));

    // Layer 3: every address given is checked, used or not.
    n.phone = check_phone(m.phone.as_deref(), "to.phone", policy, &mut v);
    n.whatsapp = check_phone(m.whatsapp.as_deref(), "to.whatsapp", policy, &mut v);
    if let Some(e) = m.email.as_deref() {
        match email::normalise_email(e) {
            Ok(e) => n.email = Some(e),
            Err(d) => v.push(Violation::new(ErrorCode::RecipientInvalidEmail, "to.email", d)),
        }
    }
    if let Some(t) = m.push_token.as_deref() {
        match push::normalise_push_token(t) {
            Ok(t) => n.push_token = Some(t),
            Err(d) => v.push(Violation::new(ErrorCode::RecipientInvalidPushToken, "to.push_token", d)),
        }
    }

    // Layer 4.
    n.sms = check_content(m, policy, uses, &mut v);

    // Layer 6 (countries were checked with the phones).
    policy::check_channels(policy, &steps, &mut v);

    if v.is_empty() {
        Ok(n)
    } else {
        Err(v)
    }
}

/// Validate a batch; results are in input order.
pub fn validate_batch(messages: &[MessageInput], policy: &TenantPolicy, now_ms: i64) -> Vec<Outcome> {
    messages.iter().map(|m| validate_message(m, policy, now_ms)).collect()
}

fn check_phone(input: Option<&str>, field: &'static str, policy: &TenantPolicy, v: &mut Vec<Violation>) -> Option<Phone> {
    match phone::parse_phone(input?) {
        Ok(p) if !policy.allows_country(p.country) => {
            v.push(Violation::new(
                ErrorCode::RecipientCountryNotAllowed,
                field,
                format!("{} is in {}, which this tenant may not message", p.e164, p.country_str().unwrap_or("no country")),
            ));
            None
        }
        Ok(p) => Some(p),
        Err(d) => {
            v.push(Violation::new(ErrorCode::RecipientInvalidPhone, field, d));
            None
        }
    }
}

fn is_blank(s: Option<&str>) -> bool {
    s.is_none_or(|s| s.trim().is_empty())
}

fn check_content(m: &MessageInput, policy: &TenantPolicy, uses: ChannelSet, v: &mut Vec<Violation>) -> Option<SmsInfo> {
    let body = m.body.as_deref();
    let mut control = |text: Option<&str>, field: &'static str, what: &str, newlines: bool| {
        if let Some(hit) = text.and_then(|t| content::find_control(t, newlines)) {
            v.push(Violation::new(ErrorCode::ContentControlCharacters, field, content::describe_control(what, hit)));
        }
    };
    control(body, "body", "the body", true);
    control(m.html.as_deref(), "email.html", "the HTML body", true);
    control(m.subject.as_deref(), "email.subject", "the subject", false);
    control(m.push_title.as_deref(), "push.title", "the push title", false);

    let sms = body.map(content::sms_info);
    if (uses.contains(Channel::Sms) || uses.contains(Channel::Whatsapp)) && is_blank(body) {
        v.push(Violation::new(ErrorCode::ContentEmpty, "body", "SMS and WhatsApp steps need a body".into()));
    }
    if let (true, Some(info)) = (uses.contains(Channel::Sms), sms) {
        if info.segments > policy.max_segments {
            v.push(Violation::new(
                ErrorCode::ContentTooManySegments,
                "body",
                format!(
                    "the body takes {} {} segments ({} units); this tenant allows {}",
                    info.segments,
                    info.encoding.as_str(),
                    info.units,
                    policy.max_segments
                ),
            ));
        }
    }
    if uses.contains(Channel::Whatsapp) {
        if let Some(n) = body.map(|b| b.chars().count()).filter(|&n| n > MAX_WHATSAPP_CHARS) {
            v.push(Violation::new(
                ErrorCode::ContentTooLarge,
                "body",
                format!("a WhatsApp text holds at most {MAX_WHATSAPP_CHARS} characters; the body has {n}"),
            ));
        }
    }

    if let Some(n) = m.subject.as_deref().map(|s| s.chars().count()).filter(|&n| n > MAX_SUBJECT_CHARS) {
        v.push(Violation::new(
            ErrorCode::ContentSubjectTooLong,
            "email.subject",
            format!("the subject has {n} characters; at most {MAX_SUBJECT_CHARS} are allowed"),
        ));
    }
    if uses.contains(Channel::Email) {
        if is_blank(m.subject.as_deref()) {
            v.push(Violation::new(ErrorCode::ContentEmpty, "email.subject", "an email step needs a subject".into()));
        }
        if is_blank(body) && is_blank(m.html.as_deref()) {
            v.push(Violation::new(ErrorCode::ContentEmpty, "body", "an email step needs a body or email.html".into()));
        }
        let size = body.map_or(0, str::len) + m.html.as_deref().map_or(0, str::len);
        if size > MAX_EMAIL_BYTES {
            v.push(Violation::new(
                ErrorCode::ContentTooLarge,
                "email.html",
                format!("body and HTML take {size} bytes; at most {MAX_EMAIL_BYTES} are allowed"),
            ));
        }
    }

    if let Some(data) = m.push_data.as_deref() {
        if !matches!(serde_json::from_str::<serde_json::Value>(data), Ok(serde_json::Value::Object(_))) {
            v.push(Violation::new(ErrorCode::ContentInvalidPushData, "push.data", "push.data must be a JSON object".into()));
        }
    }
    if uses.contains(Channel::Push) {
        if is_blank(m.push_title.as_deref()) && is_blank(body) {
            v.push(Violation::new(ErrorCode::ContentEmpty, "push.title", "a push step needs a title or a body".into()));
        }
        let size = content::push_payload_len(m.push_title.as_deref(), body, m.push_data.as_deref());
        if size > MAX_PUSH_PAYLOAD_BYTES {
            v.push(Violation::new(
                ErrorCode::ContentPushPayloadTooLarge,
                "push.data",
                format!("the push payload takes {size} bytes; at most {MAX_PUSH_PAYLOAD_BYTES} are allowed"),
            ));
        }
    }
    sms
}

#[cfg(test)]
mod tests;
