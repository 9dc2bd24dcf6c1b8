//! Message content: SMS encoding and segments, control characters, and the
//! size limits of each channel.
//!
//! SMS (3GPP TS 23.038 / 23.040):
//! - a body made only of the GSM 03.38 default alphabet and its extension
//!   table is sent as **GSM-7**; extension characters (`^ { } \ [ ~ ] | €` and
//!   form feed) are an escape plus a character, so they count as two septets;
//! - anything else is sent as **UCS-2**, counted in UTF-16 code units, so a
//!   character outside the Basic Multilingual Plane (most emoji) counts two;
//! - one segment holds 160 septets or 70 units; a concatenated message spends
//!   a 6-octet header per part, leaving 153 septets or 67 units per part;
//! - an escape pair or a surrogate pair is never split across parts: when the
//!   next character does not fit, the part ends early (as handsets do).
//!
//! Control characters (Unicode category Cc: U+0000-U+001F, U+007F-U+009F) are
//! rejected in every text field; bodies may keep tab, line feed and carriage
//! return; a subject or push title may keep tab only (CR/LF would let a subject
//! inject mail headers).

pub const GSM7_SINGLE: u32 = 160;
pub const GSM7_PART: u32 = 153;
pub const UCS2_SINGLE: u32 = 70;
pub const UCS2_PART: u32 = 67;

pub const MAX_SUBJECT_CHARS: usize = 998;
/// Body plus HTML of an email, in bytes; providers cap whole messages at
/// 10 MB (SES) and this leaves the headers room.
pub const MAX_EMAIL_BYTES: usize = 10 * 1024 * 1024;
/// APNs and FCM both cap a notification payload at 4096 bytes.
pub const MAX_PUSH_PAYLOAD_BYTES: usize = 4096;
/// WhatsApp Cloud API text messages hold at most 4096 characters.
pub const MAX_WHATSAPP_CHARS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsEncoding {
    Gsm7,
    Ucs2,
}

impl SmsEncoding {
    pub fn as_str(self) -> &'static str {
        match self {
            SmsEncoding::Gsm7 => "GSM-7",
            SmsEncoding::Ucs2 => "UCS-2",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsInfo {
    pub encoding: SmsEncoding,
    pub segments: u32,
    /// Unicode scalar values, as a person would count characters.
    pub characters: u32,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2) the body occupies.
    pub units: u32,
}

/// Septets a character takes in GSM-7: 1 (default alphabet), 2 (extension
/// table) or 0 (not representable).
fn gsm7_septets(c: char) -> u32 {
    match c {
        // ASCII: everything printable except the backtick, plus LF and CR;
        // the nine ASCII extension characters and form feed need an escape.
        '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '\u{0C}' | '€' => 2,
        '`' => 0,
        ' '..='~' | '\n' | '\r' => 1,
        '£' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | 'Ø' | 'ø' | 'Å' | 'å' | 'Δ' | 'Φ' | 'Γ' | 'Λ'
        | 'Ω' | 'Π' | 'Ψ' | 'Σ' | 'Θ' | 'Ξ' | 'Æ' | 'æ' | 'ß' | 'É' | '¤' | '¡' | 'Ä' | 'Ö' | 'Ñ'
        | 'Ü' | '§' | '¿' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => 1,
        _ => 0,
    }
}

/// Count parts, filling each with whole characters of the given cost.
fn parts(costs: impl Iterator<Item = u32>, total: u32, single: u32, per_part: u32) -> u32 {
    if total == 0 {
        return 0;
    }
    if total <= single {
        return 1;
    }
    let (mut parts, mut used) = (1, 0);
    for cost in costs {
        debug_assert!(cost <= 2 && cost <= per_part);
        if used + cost > per_part {
            parts += 1;
            used = 0;
        }
        used += cost;
    }
    parts
}

/// Encoding, segment count and lengths of an SMS body.
pub fn sms_info(body: &str) -> SmsInfo {
    let characters = body.chars().count() as u32;
    // Fast path for the common all-ASCII body; the table decides the rest.
    let ascii_gsm = |b: u8| matches!(b, b' '..=b'~' | b'\n' | b'\r' | 0x0C) && b != b'`';
    let gsm = body.bytes().all(ascii_gsm) || body.chars().all(|c| gsm7_septets(c) > 0);
    if gsm {
        let units: u32 = body.chars().map(gsm7_septets).sum();
        let segments = parts(body.chars().map(gsm7_septets), units, GSM7_SINGLE, GSM7_PART);
        SmsInfo { encoding: SmsEncoding::Gsm7, segments, characters, units }
    } else {
        let cost = |c: char| c.len_utf16() as u32;
        let units: u32 = body.chars().map(cost).sum();
        let segments = parts(body.chars().map(cost), units, UCS2_SINGLE, UCS2_PART);
        SmsInfo { encoding: SmsEncoding::Ucs2, segments, characters, units }
    }
}

/// The first forbidden control character and its 0-based character index.
pub fn find_control(text: &str, allow_newlines: bool) -> Option<(usize, char)> {
    text.chars().enumerate().find(|&(_, c)| {
        c.is_control() && !(c == '\t' || (allow_newlines && (c == '\n' || c == '\r')))
    })
}

pub fn describe_control(field_kind: &str, (index, c): (usize, char)) -> String {
    format!("{field_kind} contains the control character U+{:04X} at character {index}", c as u32)
}

/// Bytes `s` takes as a JSON string literal, quotes included.
pub fn json_string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0C => 2,
            0..=0x1F => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// Size of the notification payload `{"title":...,"body":...,"data":...}` as
/// the push providers count it (UTF-8 bytes of the JSON).
pub fn push_payload_len(title: Option<&str>, body: Option<&str>, data_json: Option<&str>) -> usize {
    let mut len = 2; // {}
    let mut fields = 0;
    for (key, value) in [("title", title.map(json_string_len)), ("body", body.map(json_string_len)),
                         ("data", data_json.map(|d| d.trim().len()))] {
        if let Some(v) = value {
            len += key.len() + 3 + v; // "key":value
            fields += 1;
        }
    }
    len + fields.max(1) - 1 // commas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(body: &str) -> (SmsEncoding, u32, u32) {
        let i = sms_info(body);
        (i.encoding, i.units, i.segments)
    }

    #[test]
    fn gsm7_single_segment_holds_160_septets() {
        assert_eq!(seg(&"a".repeat(160)), (SmsEncoding::Gsm7, 160, 1));
        assert_eq!(seg(&"a".repeat(161)), (SmsEncoding::Gsm7, 161, 2));
        assert_eq!(seg(""), (SmsEncoding::Gsm7, 0, 0));
        assert_eq!(seg("Your code is 123456"), (SmsEncoding::Gsm7, 19, 1));
    }

    #[test]
    fn gsm7_concatenated_parts_hold_153_septets() {
        assert_eq!(seg(&"a".repeat(306)), (SmsEncoding::Gsm7, 306, 2));
        assert_eq!(seg(&"a".repeat(307)), (SmsEncoding::Gsm7, 307, 3));
        assert_eq!(seg(&"a".repeat(153 * 10)).2, 10);
        assert_eq!(seg(&"a".repeat(153 * 10 + 1)).2, 11);
    }

    #[test]
    fn gsm7_extension_characters_count_two_septets() {
        assert_eq!(seg("€"), (SmsEncoding::Gsm7, 2, 1));
        assert_eq!(seg("{[~]}|^\\"), (SmsEncoding::Gsm7, 16, 1));
        // 80 euro signs = 160 septets: still one segment; one more char makes two.
        assert_eq!(seg(&"€".repeat(80)), (SmsEncoding::Gsm7, 160, 1));
        assert_eq!(seg(&format!("{}a", "€".repeat(80))), (SmsEncoding::Gsm7, 161, 2));
    }

    #[test]
    fn an_escape_pair_is_never_split_across_parts() {
        // 152 plain septets then a euro sign: the pair would straddle septets
        // 153/154, so it moves to part two: 152 | 2 + 152 = 154 > 153 -> 3 parts.
        let body = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(seg(&body), (SmsEncoding::Gsm7, 306, 3));
        // Same total septets without the boundary straddle fits in two parts.
        let body = format!("{}€{}", "a".repeat(151), "a".repeat(153));
        assert_eq!(seg(&body), (SmsEncoding::Gsm7, 306, 2));
    }

    #[test]
    fn gsm7_default_alphabet_beyond_ascii_stays_gsm7() {
        assert_eq!(seg("Grüße aus Köln, ¿qué tal? ΔΣΩ £5 §1 ¡olé!").0, SmsEncoding::Gsm7);
        // The backtick and characters outside the table force UCS-2.
        assert_eq!(seg("`").0, SmsEncoding::Ucs2);
        assert_eq!(seg("ç").0, SmsEncoding::Ucs2, "only capital Ç is in the GSM alphabet");
        assert_eq!(seg("a\tb").0, SmsEncoding::Ucs2, "tab is not in the GSM alphabet");
    }

    #[test]
    fn ucs2_single_segment_holds_70_units_and_parts_67() {
        assert_eq!(seg(&"я".repeat(70)), (SmsEncoding::Ucs2, 70, 1));
        assert_eq!(seg(&"я".repeat(71)), (SmsEncoding::Ucs2, 71, 2));
        assert_eq!(seg(&"я".repeat(134)), (SmsEncoding::Ucs2, 134, 2));
        assert_eq!(seg(&"я".repeat(135)), (SmsEncoding::Ucs2, 135, 3));
    }

    #[test]
    fn emoji_take_two_units_and_a_surrogate_pair_is_never_split() {
        assert_eq!(seg("😀"), (SmsEncoding::Ucs2, 2, 1));
        assert_eq!(seg(&"😀".repeat(35)), (SmsEncoding::Ucs2, 70, 1));
        assert_eq!(seg(&"😀".repeat(36)), (SmsEncoding::Ucs2, 72, 2));
        // 66 units then an emoji: the pair would straddle units 67/68.
        let body = format!("{}😀{}", "я".repeat(66), "я".repeat(66));
        assert_eq!(seg(&body), (SmsEncoding::Ucs2, 134, 3));
        let body = format!("{}😀{}", "я".repeat(65), "я".repeat(67));
        assert_eq!(seg(&body), (SmsEncoding::Ucs2, 134, 2));
        let i = sms_info("hi 👋🏽");
        assert_eq!((i.characters, i.units), (5, 7), "a skin-tone emoji is two characters of two units");
    }

    #[test]
    fn control_characters_are_found_except_allowed_whitespace() {
        assert_eq!(find_control("line\nbreak\r\n\ttab", true), None);
        assert_eq!(find_control("subject\nline", false), Some((7, '\n')));
        assert_eq!(find_control("bell\u{07}", true), Some((4, '\u{07}')));
        assert_eq!(find_control("del\u{7F}", true), Some((3, '\u{7F}')));
        assert_eq!(find_control("c1\u{85}", true), Some((2, '\u{85}')));
        assert_eq!(find_control("emoji 👨‍👩‍👧 zwj is fine", true), None);
    }

    #[test]
    fn push_payload_size_counts_the_json() {
        assert_eq!(push_payload_len(Some("Hi"), Some("there"), None), r#"{"title":"Hi","body":"there"}"#.len());
        assert_eq!(push_payload_len(None, Some("a\"b"), Some(r#"{"k":1}"#)), r#"{"body":"a\"b","data":{"k":1}}"#.len());
        assert_eq!(push_payload_len(None, None, None), 2);
    }
}
