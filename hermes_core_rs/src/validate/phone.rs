//! Phone numbers (SMS and WhatsApp): parsed to E.164 with libphonenumber's
//! per-country metadata (the `phonenumber` crate), never with a regex of our own.
//!
//! Rules:
//! - the number must carry its country code (`+14155552671`,
//!   `+44 7400 123456`, `+49 (151) 2345-6789`); a national number alone is
//!   ambiguous and is rejected, because the API has no default region;
//! - it must be *valid* for its country, i.e. match one of the country's number
//!   ranges (libphonenumber's `isValidNumber`), not only have a possible length;
//! - a national prefix written after the country code (`+44 07400...`) is
//!   stripped exactly when libphonenumber would strip it;
//! - extensions (`;ext=12`, `x12`) are rejected: an SMS cannot dial one.
//!
//! The common written forms (`+`, digits, spaces, dashes, dots, brackets) are
//! parsed here against ranges compiled by `ranges.rs`; anything else (letters,
//! `tel:` URIs, extensions) goes through `phonenumber::parse` first. The
//! country is the region the number belongs to (`CA` for +1 416..., `JE` for a
//! Jersey mobile); non-geographic numbers (+800, +882...) have none. The line
//! type is the metadata's (`fixed_line_or_mobile` where a country's ranges
//! do not tell the two apart, as in the US).

use phonenumber::{ParseError, PhoneNumber};

use super::ranges;

/// A phone number that passed validation, in normalised form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    /// `+` followed by the country code and national significant number.
    pub e164: String,
    /// ISO 3166-1 alpha-2 region of the number; `None` for non-geographic
    /// numbers (global services such as +800 and +882).
    pub country: Option<[u8; 2]>,
    pub line_type: LineType,
}

impl Phone {
    pub fn country_str(&self) -> Option<&str> {
        self.country.as_ref().and_then(|c| std::str::from_utf8(c).ok())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineType {
    Mobile,
    FixedLine,
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    Voip,
    PersonalNumber,
    Pager,
    Uan,
    Voicemail,
}

impl LineType {
    pub fn as_str(self) -> &'static str {
        match self {
            LineType::Mobile => "mobile",
            LineType::FixedLine => "fixed_line",
            LineType::FixedLineOrMobile => "fixed_line_or_mobile",
            LineType::TollFree => "toll_free",
            LineType::PremiumRate => "premium_rate",
            LineType::SharedCost => "shared_cost",
            LineType::Voip => "voip",
            LineType::PersonalNumber => "personal_number",
            LineType::Pager => "pager",
            LineType::Uan => "uan",
            LineType::Voicemail => "voicemail",
        }
    }
}

/// Longest input looked at: E.164 allows 15 digits; generous room for
/// spaces, dashes and brackets, but not for a paragraph of text.
const MAX_INPUT_LEN: usize = 64;

/// Parse and validate one phone number; the error is a human detail.
pub fn parse_phone(input: &str) -> Result<Phone, String> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err("the phone number is empty".into());
    }
    if trimmed.len() > MAX_INPUT_LEN {
        return Err(format!("the phone number is longer than {MAX_INPUT_LEN} characters"));
    }
    if !trimmed.starts_with('+') {
        return Err("the phone number must start with + and the country code (E.164, e.g. +14155552671)".into());
    }
    if let Some((code, national)) = fast_split(trimmed) {
        // As libphonenumber parses a number after its country code: strip a
        // national prefix (Russia's 8, the UK's 0...) when the rest still has
        // a possible length.
        let main = &ranges::regions_for_code(code)[0];
        let national = match main.strip_national_prefix(&national) {
            Some(stripped) if main.length_keeps_stripped(&stripped) => stripped,
            _ => national,
        };
        if national.len() < 2 {
            return Err("the phone number has too few digits".into());
        }
        return classify(code, national);
    }
    let number = phonenumber::parse(None, trimmed).map_err(|e| match e {
        ParseError::InvalidCountryCode => "the phone number has no valid country code".to_string(),
        ParseError::TooLong => "the phone number has too many digits".to_string(),
        ParseError::TooShortNsn | ParseError::TooShortAfterIdd => {
            "the phone number has too few digits".to_string()
        }
        _ => "the phone number could not be parsed".to_string(),
    })?;
    normalise(&number)
}

/// The common case without the general parser: `+`, digits and the usual
/// separators; the country code is the first 1-3 digit prefix that is
/// assigned (libphonenumber's rule). Anything else returns `None` and goes
/// through `phonenumber::parse`; the oracle tests check both paths agree
/// with libphonenumber.
fn fast_split(input: &str) -> Option<(u16, String)> {
    let mut digits = String::with_capacity(17);
    for b in input[1..].bytes() {
        match b {
            b'0'..=b'9' => digits.push(char::from(b)),
            b' ' | b'-' | b'.' | b'(' | b')' => {}
            _ => return None,
        }
    }
    if !(4..=17).contains(&digits.len()) || digits.starts_with('0') {
        return None;
    }
    for len in 1..=3 {
        let code: u16 = digits[..len].parse().ok()?;
        if !ranges::regions_for_code(code).is_empty() {
            let national = &digits[len..];
            return (national.len() >= 2).then(|| (code, national.to_string()));
        }
    }
    None
}

fn normalise(number: &PhoneNumber) -> Result<Phone, String> {
    if number.extension().is_some() {
        return Err("the phone number has an extension, which cannot receive messages".into());
    }
    // The national significant number, with Italy's leading zero kept.
    classify(number.code().value(), number.national().to_string())
}

fn classify(code: u16, national: String) -> Result<Phone, String> {
    let (region, line_type) = ranges::classify(code, &national)
        .ok_or_else(|| format!("+{code} {national} is not in any assigned number range of its country"))?;
    let mut e164 = String::with_capacity(4 + national.len());
    e164.push('+');
    e164.push_str(&code.to_string());
    e164.push_str(&national);
    debug_assert!(e164.len() <= 16, "E.164 has at most 15 digits: {e164}");
    Ok(Phone { e164, country: region.country, line_type })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> Phone {
        parse_phone(input).unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    #[test]
    fn e164_numbers_normalise_with_country_and_line_type() {
        let p = ok("+14155552671");
        assert_eq!((p.e164.as_str(), p.country_str()), ("+14155552671", Some("US")));
        assert_eq!(p.line_type, LineType::FixedLineOrMobile);
        let p = ok("+44 7400 123456");
        assert_eq!((p.e164.as_str(), p.country_str(), p.line_type), ("+447400123456", Some("GB"), LineType::Mobile));
        let p = ok("+49 (151) 2345-6789");
        assert_eq!((p.e164.as_str(), p.country_str(), p.line_type), ("+4915123456789", Some("DE"), LineType::Mobile));
        let p = ok("+33 6 12 34 56 78");
        assert_eq!((p.e164.as_str(), p.country_str()), ("+33612345678", Some("FR")));
        let p = ok("  +1 800 555 0199 ");
        assert_eq!(p.line_type, LineType::TollFree);
    }

    #[test]
    fn italian_leading_zero_is_kept_and_regions_sharing_a_code_are_told_apart() {
        let p = ok("+39 02 3661 8300");
        assert_eq!((p.e164.as_str(), p.country_str(), p.line_type), ("+390236618300", Some("IT"), LineType::FixedLine));
        // +1 is shared by the NANP countries: Toronto's 416 is Canada.
        assert_eq!(ok("+1 416 555 0123").country_str(), Some("CA"));
        // Jersey mobiles share +44 with the UK.
        assert_eq!(ok("+44 7797 712345").country_str(), Some("JE"));
    }

    #[test]
    fn a_national_prefix_after_the_country_code_is_stripped_only_when_libphonenumber_would() {
        // Written with the trunk 0 the UK dials nationally: stripped.
        assert_eq!(ok("+44 07400 123456").e164, "+447400123456");
        assert_eq!(ok("+358 0 8001234").e164, "+3588001234");
        // Russia's national prefix is 8, but 800... is itself a valid range:
        // a number that fits as written is kept.
        let p = ok("+7 800 123-45-67");
        assert_eq!((p.e164.as_str(), p.country_str(), p.line_type), ("+78001234567", Some("RU"), LineType::TollFree));
        // Two zeros: one is the prefix, the rest is not a Finnish number.
        assert!(parse_phone("+358 008001234").is_err());
    }

    #[test]
    fn non_geographic_numbers_have_no_country() {
        let p = ok("+800 1234 5678");
        assert_eq!((p.country, p.line_type), (None, LineType::TollFree));
    }

    #[test]
    fn invalid_numbers_are_rejected_with_a_reason() {
        for bad in [
            "",
            "4155552671",        // no country code
            "+1 415 555 267",    // too short for the US
            "+1 099 555 0123",   // area codes never start with 0
            "+999 1234567",      // unassigned calling code
            "+44 7911 12345678", // too long
            "+1 415 555 2671 ext. 12",
            "+1 four one five",
            "+12345678901234567890",
        ] {
            assert!(parse_phone(bad).is_err(), "{bad:?} should be invalid");
        }
        assert!(parse_phone("4155552671").unwrap_err().contains("country code"));
    }
}
