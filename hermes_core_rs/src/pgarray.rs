//! PostgreSQL array literals (`{"a","b",NULL}`) for one-dimensional arrays.
//!
//! The service passes the rows of its batch statements as one array literal per
//! column (`unnest(%s::uuid[], %s::text[], ...)`): one text parameter that the
//! server parses, instead of a value per element dumped through psycopg. Building
//! those literals in Python was a tenth of the API's CPU on the single-send path;
//! the element writers below do it in one pass over the bytes.
//!
//! Every element except NULL is double-quoted, with `\` and `"` backslash-escaped:
//! PostgreSQL's rule for any element text, whatever the element type.

/// Appends `text` as a quoted element. NUL cannot be stored in PostgreSQL text.
pub fn push_text(out: &mut String, text: &str) -> Result<(), &'static str> {
    if text.as_bytes().contains(&0) {
        return Err("PostgreSQL text cannot hold NUL");
    }
    out.reserve(text.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        if b == b'"' || b == b'\\' {
            out.push_str(&text[start..i]);
            out.push('\\');
            start = i;
        }
    }
    out.push_str(&text[start..]);
    out.push('"');
    Ok(())
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends a UUID, given as its 128-bit integer, in the hyphenated form (no quotes
/// needed: no character of it is special).
pub fn push_uuid(out: &mut String, value: u128) {
    let mut buf = [0u8; 36];
    let mut at = 0;
    for i in 0..32 {
        if i == 8 || i == 12 || i == 16 || i == 20 {
            buf[at] = b'-';
            at += 1;
        }
        let nibble = (value >> (124 - 4 * i)) & 0xf;
        buf[at] = HEX[nibble as usize];
        at += 1;
    }
    // Only ASCII was written.
    out.push_str(std::str::from_utf8(&buf).expect("ascii"));
}

/// Appends bytes as a quoted bytea element in the hex format (`"\\x00ff"`: the
/// backslash escaped for the array parser).
pub fn push_bytea(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2 + 6);
    out.push_str("\"\\\\x");
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> String {
        let mut out = String::new();
        push_text(&mut out, s).unwrap();
        out
    }

    #[test]
    fn text_is_quoted_with_quotes_and_backslashes_escaped() {
        assert_eq!(text("plain"), r#""plain""#);
        assert_eq!(text(""), r#""""#);
        assert_eq!(text(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(text(r#"\"both\""#), r#""\\\"both\\\"""#);
        assert_eq!(text("ünï ✓ {a,b} NULL"), "\"ünï ✓ {a,b} NULL\"");
    }

    #[test]
    fn nul_is_refused() {
        assert!(push_text(&mut String::new(), "a\0b").is_err());
    }

    #[test]
    fn uuids_are_hyphenated_lowercase() {
        let mut out = String::new();
        push_uuid(&mut out, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        assert_eq!(out, "01234567-89ab-cdef-fedc-ba9876543210");
        out.clear();
        push_uuid(&mut out, 0);
        assert_eq!(out, "00000000-0000-0000-0000-000000000000");
        out.clear();
        push_uuid(&mut out, u128::MAX);
        assert_eq!(out, "ffffffff-ffff-ffff-ffff-ffffffffffff");
    }

    #[test]
    fn bytea_uses_the_escaped_hex_format() {
        let mut out = String::new();
        push_bytea(&mut out, &[0x00, 0x01, 0xff]);
        assert_eq!(out, r#""\\x0001ff""#);
        out.clear();
        push_bytea(&mut out, &[]);
        assert_eq!(out, r#""\\x""#);
    }
}
