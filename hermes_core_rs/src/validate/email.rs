//! Email addresses: the practical subset of RFC 5321/5322 that mail providers
//! (SES, SendGrid, Mailgun) accept for a recipient.
//!
//! - `local@domain`, exactly one `@`;
//! - local part: RFC 5322 dot-atom (ASCII letters, digits and
//!   ``!#$%&'*+-/=?^_`{|}~``, dots not first, last or doubled), 1 to 64 octets.
//!   Quoted local parts (`"john doe"@example.com`), comments and non-ASCII
//!   local parts (SMTPUTF8) are rejected: they are legal but most providers
//!   refuse or mangle them, and accepting an address that then bounces at every
//!   provider is worse than a clear 422;
//! - domain: a DNS host name. Internationalised names are mapped with UTS 46
//!   (the `idna` crate) to lowercase punycode (`bücher.example` ->
//!   `xn--bcher-kva.example`); every label 1 to 63 octets of letters, digits and
//!   inner hyphens; at least two labels; the top-level label not all digits;
//!   at most 253 octets. Address literals (`[192.0.2.1]`) are rejected: no
//!   provider delivers to them;
//! - the whole normalised address is at most 254 octets (RFC 5321's path limit
//!   less the angle brackets).
//!
//! Normalisation lowercases and punycodes the domain only; the local part is
//! kept as written, because RFC 5321 lets the receiving host treat it as case
//! sensitive.

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

pub const MAX_LOCAL_LEN: usize = 64;
pub const MAX_ADDRESS_LEN: usize = 254;
pub const MAX_LABEL_LEN: usize = 63;
pub const MAX_DOMAIN_LEN: usize = 253;

/// Validate and normalise one address; the error is a human detail.
pub fn normalise_email(input: &str) -> Result<String, String> {
    let input = input.trim();
    let Some((local, domain)) = input.split_once('@') else {
        return Err("the email address has no @".into());
    };
    if domain.contains('@') {
        return Err("the email address has more than one @ (quoted local parts are not accepted)".into());
    }
    check_local(local)?;
    let domain = normalise_domain(domain)?;
    let len = local.len() + 1 + domain.len();
    if len > MAX_ADDRESS_LEN {
        return Err(format!("the email address is {len} octets long; at most {MAX_ADDRESS_LEN} are allowed"));
    }
    let mut out = String::with_capacity(len);
    out.push_str(local);
    out.push('@');
    out.push_str(&domain);
    Ok(out)
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

fn check_local(local: &str) -> Result<(), String> {
    if local.is_empty() {
        return Err("the email address has nothing before the @".into());
    }
    if local.len() > MAX_LOCAL_LEN {
        return Err(format!(
            "the part before the @ is {} octets long; at most {MAX_LOCAL_LEN} are allowed",
            local.len()
        ));
    }
    if local.starts_with('"') {
        return Err("quoted local parts are not accepted".into());
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("the part before the @ may not start or end with a dot or have two dots in a row".into());
    }
    if let Some(c) = local.chars().find(|&c| !(c == '.' || (c.is_ascii() && is_atext(c as u8)))) {
        return Err(format!("the part before the @ may not contain {c:?}"));
    }
    Ok(())
}

fn normalise_domain(domain: &str) -> Result<String, String> {
    if domain.is_empty() {
        return Err("the email address has no domain after the @".into());
    }
    if domain.starts_with('[') {
        return Err("address literals such as [192.0.2.1] are not accepted".into());
    }
    // Fast path: for an ASCII name without punycode labels, UTS 46 mapping is
    // exactly ASCII lowercasing; the host-name rules below do the rest.
    let ascii = if domain.is_ascii() && !domain.to_ascii_lowercase().contains("xn--") {
        domain.to_ascii_lowercase()
    } else {
        Uts46::new()
            .to_ascii(domain.as_bytes(), AsciiDenyList::STD3, Hyphens::CheckFirstLast, DnsLength::Ignore)
            .map_err(|_| format!("the domain {domain:?} is not a valid internationalised domain name"))?
            .into_owned()
    };
    check_host_name(&ascii)?;
    Ok(ascii)
}

/// Host-name rules on the ASCII (punycode) form, with a reason per rule.
fn check_host_name(domain: &str) -> Result<(), String> {
    if domain.len() > MAX_DOMAIN_LEN {
        return Err(format!("the domain is {} octets long; at most {MAX_DOMAIN_LEN} are allowed", domain.len()));
    }
    let mut labels = 0;
    let mut last = "";
    for label in domain.split('.') {
        labels += 1;
        if label.is_empty() {
            return Err("the domain has an empty label (a leading, trailing or doubled dot)".into());
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!("the domain label {label:?} is longer than {MAX_LABEL_LEN} octets"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!("the domain label {label:?} may only hold letters, digits and hyphens"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the domain label {label:?} may not start or end with a hyphen"));
        }
        last = label;
    }
    if labels < 2 {
        return Err("the domain needs at least one dot (a bare host name cannot receive mail)".into());
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the top-level domain may not be all digits".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn practical_addresses_pass_and_the_domain_is_lowercased() {
        assert_eq!(normalise_email("Alice.Smith+tag@Example.COM").unwrap(), "Alice.Smith+tag@example.com");
        assert_eq!(normalise_email("o'brien@mail.example.co.uk").unwrap(), "o'brien@mail.example.co.uk");
        assert_eq!(normalise_email("a!#$%&'*+-/=?^_`{|}~z@x-y.io").unwrap(), "a!#$%&'*+-/=?^_`{|}~z@x-y.io");
    }

    #[test]
    fn internationalised_domains_become_punycode() {
        assert_eq!(normalise_email("hans@Bücher.example").unwrap(), "hans@xn--bcher-kva.example");
        assert_eq!(normalise_email("user@例え.テスト").unwrap(), "user@xn--r8jz45g.xn--zckzah");
        // Already-punycode input is accepted unchanged.
        assert_eq!(normalise_email("hans@XN--BCHER-KVA.example").unwrap(), "hans@xn--bcher-kva.example");
        // Punycode that does not decode is not a domain.
        assert!(normalise_email("hans@xn--a.example").is_err());
    }

    #[test]
    fn local_part_limit_is_64_octets() {
        let at64 = format!("{}@example.com", "a".repeat(64));
        let at65 = format!("{}@example.com", "a".repeat(65));
        assert!(normalise_email(&at64).is_ok());
        assert!(normalise_email(&at65).unwrap_err().contains("at most 64"));
    }

    #[test]
    fn whole_address_limit_is_254_octets() {
        // 64 + 1 + 189 = 254, with labels of at most 63.
        let domain = |len: usize| {
            let mut labels = Vec::new();
            let mut left = len - 4; // ".com"
            while left > 0 {
                let n = left.min(62);
                labels.push("d".repeat(n));
                left -= n;
                if left > 0 {
                    left -= 1; // the dot
                    if left == 0 {
                        labels.last_mut().unwrap().pop();
                        left = 1;
                    }
                }
            }
            format!("{}.com", labels.join("."))
        };
        let d189 = domain(189);
        assert_eq!(d189.len(), 189);
        let ok = format!("{}@{d189}", "l".repeat(64));
        assert_eq!(ok.len(), 254);
        assert!(normalise_email(&ok).is_ok(), "{ok}");
        let d190 = domain(190);
        assert_eq!(d190.len(), 190);
        let long = format!("{}@{d190}", "l".repeat(64));
        assert!(normalise_email(&long).unwrap_err().contains("at most 254"));
    }

    #[test]
    fn label_limit_is_63_octets() {
        assert!(normalise_email(&format!("a@{}.com", "b".repeat(63))).is_ok());
        assert!(normalise_email(&format!("a@{}.com", "b".repeat(64))).is_err());
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for bad in [
            "plainaddress",
            "@example.com",
            "user@",
            "a@b@example.com",
            "\"quoted\"@example.com",
            ".dot@example.com",
            "dot.@example.com",
            "two..dots@example.com",
            "sp ace@example.com",
            "jörg@example.com",
            "user@localhost",
            "user@example..com",
            "user@.example.com",
            "user@example.com.",
            "user@-example.com",
            "user@example-.com",
            "user@exa_mple.com",
            "user@[192.0.2.1]",
            "user@192.0.2.1",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad:?} should be invalid");
        }
    }
}
