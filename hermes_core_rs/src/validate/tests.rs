//! Whole-message validation: every violation at once, with its field.

use super::*;

const NOW: i64 = 1_800_000_000_000;

fn step(channel: &str, timeout_ms: Option<i64>) -> StepInput {
    StepInput { channel: channel.into(), timeout_ms }
}

fn sms_then_email() -> MessageInput {
    MessageInput {
        phone: Some("+14155552671".into()),
        email: Some("Ana@Example.com".into()),
        body: Some("Your code is 123456".into()),
        subject: Some("Your code".into()),
        steps: vec![step("sms", Some(30_000)), step("email", None)],
        ..Default::default()
    }
}

fn codes(outcome: &Outcome) -> Vec<(&'static str, String)> {
    match outcome {
        Ok(_) => vec![],
        Err(v) => v.iter().map(|v| (v.code.code(), v.field.to_string())).collect(),
    }
}

#[test]
fn a_valid_message_comes_back_normalised() {
    let n = validate_message(&sms_then_email(), &TenantPolicy::default(), NOW).unwrap();
    assert_eq!(n.phone.unwrap().e164, "+14155552671");
    assert_eq!(n.email.as_deref(), Some("Ana@example.com"));
    let sms = n.sms.unwrap();
    assert_eq!((sms.encoding, sms.segments, sms.characters), (content::SmsEncoding::Gsm7, 1, 19));
}

#[test]
fn every_violation_is_reported_at_once_with_its_field() {
    let m = MessageInput {
        phone: Some("+1 099 555 0123".into()),
        email: Some("not-an-address".into()),
        push_token: Some("short".into()),
        body: Some("bell\u{07}".into()),
        subject: Some("two\nlines".into()),
        push_data: Some("[1, 2]".into()),
        steps: vec![step("sms", Some(999)), step("fax", None), step("push", Some(72 * 3_600_000 + 1))],
        send_at_ms: Some(NOW + 36 * 86_400_000),
        expires_at_ms: Some(NOW - 1),
        ..Default::default()
    };
    let got = codes(&validate_message(&m, &TenantPolicy::default(), NOW));
    let want: Vec<(&str, &str)> = vec![
        ("cascade.timeout_out_of_range", "steps[0].timeout"),
        ("cascade.unknown_channel", "steps[1].channel"),
        ("cascade.timeout_out_of_range", "steps[2].timeout"),
        ("cascade.expires_in_past", "expires_at"),
        ("cascade.send_at_too_far", "send_at"),
        ("recipient.invalid_phone", "to.phone"),
        ("recipient.invalid_email", "to.email"),
        ("recipient.invalid_push_token", "to.push_token"),
        ("content.control_characters", "body"),
        ("content.control_characters", "email.subject"),
        ("content.invalid_push_data", "push.data"),
    ];
    let want: Vec<(&str, String)> = want.into_iter().map(|(c, f)| (c, f.to_string())).collect();
    assert_eq!(got, want);
}

#[test]
fn each_used_channel_needs_its_address_and_content() {
    let m = MessageInput {
        steps: vec![step("sms", None), step("email", None), step("push", None), step("whatsapp", None), step("sms", None)],
        ..Default::default()
    };
    let got = codes(&validate_message(&m, &TenantPolicy::default(), NOW));
    for (code, field) in [
        ("recipient.missing_address", "to.phone"),
        ("recipient.missing_address", "to.email"),
        ("recipient.missing_address", "to.push_token"),
        ("recipient.missing_address", "to.whatsapp"),
        ("content.empty", "body"),
        ("content.empty", "email.subject"),
        ("content.empty", "push.title"),
    ] {
        assert!(got.contains(&(code, field.to_string())), "missing {code} at {field} in {got:?}");
    }
    // One missing-address violation per channel, not per step.
    assert_eq!(got.iter().filter(|(_, f)| f == "to.phone").count(), 1);
}

#[test]
fn an_empty_cascade_is_rejected() {
    let m = MessageInput { steps: vec![], ..sms_then_email() };
    assert_eq!(codes(&validate_message(&m, &TenantPolicy::default(), NOW)), vec![("cascade.empty", "steps".to_string())]);
    let m = MessageInput { steps: (0..11).map(|_| step("sms", None)).collect(), ..sms_then_email() };
    assert_eq!(codes(&validate_message(&m, &TenantPolicy::default(), NOW)), vec![("cascade.too_many_steps", "steps".to_string())]);
}

#[test]
fn timeouts_are_bounded_by_1_s_and_72_h_inclusive() {
    for (t, ok) in [(999, false), (1_000, true), (72 * 3_600_000, true), (72 * 3_600_000 + 1, false), (-5, false)] {
        let m = MessageInput { steps: vec![step("sms", Some(t))], ..sms_then_email() };
        assert_eq!(validate_message(&m, &TenantPolicy::default(), NOW).is_ok(), ok, "timeout {t}");
    }
}

#[test]
fn schedule_bounds_against_now() {
    let run = |send_at: Option<i64>, expires: Option<i64>| {
        let m = MessageInput { send_at_ms: send_at, expires_at_ms: expires, ..sms_then_email() };
        codes(&validate_message(&m, &TenantPolicy::default(), NOW))
    };
    assert!(run(Some(NOW + 35 * 86_400_000), None).is_empty(), "35 days exactly is allowed");
    assert_eq!(run(Some(NOW + 35 * 86_400_000 + 1), None)[0].0, "cascade.send_at_too_far");
    assert_eq!(run(None, Some(NOW))[0].0, "cascade.expires_in_past");
    assert!(run(None, Some(NOW + 1)).is_empty());
    assert_eq!(run(Some(NOW + 10_000), Some(NOW + 10_000))[0].0, "cascade.expires_in_past");
    assert!(run(Some(NOW + 10_000), Some(NOW + 10_001)).is_empty());
}

#[test]
fn tenant_policy_limits_channels_countries_and_segments() {
    let policy = TenantPolicy {
        channels: ChannelSet::from_channels([Channel::Email]),
        allowed_countries: vec![*b"GB", *b"DE"],
        max_segments: 2,
    };
    let m = MessageInput { body: Some("a".repeat(307)), ..sms_then_email() };
    let got = codes(&validate_message(&m, &policy, NOW));
    assert_eq!(
        got,
        vec![
            ("recipient.country_not_allowed", "to.phone".to_string()),
            ("content.too_many_segments", "body".to_string()),
            ("policy.channel_disabled", "steps[0].channel".to_string()),
        ]
    );
    let m = MessageInput { phone: Some("+447400123456".into()), body: Some("a".repeat(306)), ..sms_then_email() };
    let policy = TenantPolicy { channels: ChannelSet::ALL, ..policy };
    assert!(validate_message(&m, &policy, NOW).is_ok());
}

#[test]
fn default_policy_allows_ten_segments() {
    let ok = MessageInput { body: Some("a".repeat(1530)), ..sms_then_email() };
    assert!(validate_message(&ok, &TenantPolicy::default(), NOW).is_ok());
    let too_many = MessageInput { body: Some("a".repeat(1531)), ..sms_then_email() };
    assert_eq!(codes(&validate_message(&too_many, &TenantPolicy::default(), NOW))[0].0, "content.too_many_segments");
}

#[test]
fn email_subject_and_size_limits() {
    let m = MessageInput { subject: Some("s".repeat(998)), ..sms_then_email() };
    assert!(validate_message(&m, &TenantPolicy::default(), NOW).is_ok());
    let m = MessageInput { subject: Some("s".repeat(999)), ..sms_then_email() };
    assert_eq!(codes(&validate_message(&m, &TenantPolicy::default(), NOW))[0].0, "content.subject_too_long");
    let m = MessageInput {
        html: Some("x".repeat(content::MAX_EMAIL_BYTES)),
        steps: vec![step("email", None)],
        ..sms_then_email()
    };
    assert_eq!(codes(&validate_message(&m, &TenantPolicy::default(), NOW)), vec![("content.too_large", "email.html".to_string())]);
}

#[test]
fn push_payload_is_capped_at_4_kb() {
    let token = "ab".repeat(32);
    let at = |data_len: usize| MessageInput {
        push_token: Some(token.clone()),
        push_title: Some("T".into()),
        // {"title":"T","data":{"k":"..."}} = 29 bytes + the value
        push_data: Some(format!("{{\"k\":\"{}\"}}", "v".repeat(data_len))),
        steps: vec![step("push", None)],
        ..Default::default()
    };
    assert!(validate_message(&at(4096 - 29), &TenantPolicy::default(), NOW).is_ok());
    assert_eq!(
        codes(&validate_message(&at(4096 - 28), &TenantPolicy::default(), NOW)),
        vec![("content.push_payload_too_large", "push.data".to_string())]
    );
}

#[test]
fn whatsapp_uses_phone_rules_and_a_4096_character_body() {
    let m = MessageInput {
        whatsapp: Some("+44 7400 123456".into()),
        body: Some("😀".repeat(4096)),
        steps: vec![step("whatsapp", None)],
        ..Default::default()
    };
    let n = validate_message(&m, &TenantPolicy::default(), NOW).unwrap();
    assert_eq!(n.whatsapp.unwrap().e164, "+447400123456");
    let m = MessageInput { body: Some("😀".repeat(4097)), ..m };
    assert_eq!(codes(&validate_message(&m, &TenantPolicy::default(), NOW)), vec![("content.too_large", "body".to_string())]);
    let m = MessageInput { whatsapp: Some("+44 12".into()), body: Some("hi".into()), ..m };
    assert_eq!(codes(&validate_message(&m, &TenantPolicy::default(), NOW)), vec![("recipient.invalid_phone", "to.whatsapp".to_string())]);
}

#[test]
fn batches_keep_input_order() {
    let bad = MessageInput { email: Some("x".into()), ..sms_then_email() };
    let out = validate_batch(&[sms_then_email(), bad, sms_then_email()], &TenantPolicy::default(), NOW);
    assert_eq!(out.iter().map(Result::is_ok).collect::<Vec<_>>(), vec![true, false, true]);
}
