//! libphonenumber's number ranges, compiled once per country code into
//! anchored regexes.
//!
//! Why not `phonenumber::is_valid`: that crate matches descriptors with an
//! unanchored `find` at offset 0 (so a prefix of the number can match), reads
//! the national number without its Italian leading zero when picking the
//! region, and serialises every match through one mutex-guarded LRU cache of
//! 100 regexes that thrashes on a mix of countries. Here each pattern is
//! compiled as `^(?:pattern)$`, as libphonenumber's `matchesEntirely` does, the
//! compiled set is built lazily once per calling code and then read without
//! locks.

use std::sync::OnceLock;

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use regex::{Regex, RegexBuilder};

use super::phone::LineType;

/// Calling codes are 1 to 3 digits.
const MAX_CODE: usize = 1000;

static BY_CODE: [OnceLock<Vec<Region>>; MAX_CODE] = [const { OnceLock::new() }; MAX_CODE];

/// One region's (or non-geographic entity's) ranges.
pub(crate) struct Region {
    /// ISO 3166-1 alpha-2, or `None` for non-geographic entities ("001").
    pub(crate) country: Option<[u8; 2]>,
    leading_digits: Option<Regex>,
    /// What parsing may strip as a national prefix (or carrier code) after
    /// the country code, with its transform rule; `None` when the region has none.
    national_prefix: Option<(Regex, Option<String>)>,
    general: Desc,
    /// Checked in libphonenumber's order; fixed line and mobile come last.
    special: Vec<(LineType, Desc)>,
    fixed_line: Option<Desc>,
    mobile: Option<Desc>,
    same_fixed_and_mobile: bool,
}

struct Desc {
    pattern: Regex,
    lengths: Vec<u16>,
    local_only_lengths: Vec<u16>,
}

impl Desc {
    fn compile(d: &Descriptor) -> Desc {
        Desc {
            pattern: anchored(d.national_number().as_str(), true),
            lengths: d.possible_length().to_vec(),
            local_only_lengths: d.possible_local_length().to_vec(),
        }
    }

    /// libphonenumber's `isNumberMatchingDesc`: length in the descriptor's
    /// possible lengths (when it lists any) and an entire match.
    fn matches(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16)))
            && self.pattern.is_match(national)
    }
}

/// Java's `$1` group references as the regex crate's `${1}` (a bare `$1x`
/// would name a group `1x`).
fn rust_replacement(rule: &str) -> String {
    let mut out = String::with_capacity(rule.len() + 4);
    let mut chars = rule.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('$', Some(d)) if d.is_ascii_digit() => {
                out.push_str("${");
                out.push(*d);
                out.push('}');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

fn anchored(source: &str, whole: bool) -> Regex {
    let wrapped = if whole { format!("^(?:{source})$") } else { format!("^(?:{source})") };
    // The metadata patterns compile in the upstream crate with the same
    // option, so a failure here is a broken metadata build: fail loudly.
    RegexBuilder::new(&wrapped)
        .ignore_whitespace(true)
        .build()
        .unwrap_or_else(|e| panic!("libphonenumber pattern does not compile: {source}: {e}"))
}

impl Region {
    fn compile(meta: &Metadata) -> Region {
        let d = meta.descriptors();
        let id = meta.id().as_bytes();
        let country = (id.len() == 2 && id.iter().all(u8::is_ascii_uppercase)).then(|| [id[0], id[1]]);
        let special = [
            (LineType::PremiumRate, d.premium_rate()),
            (LineType::TollFree, d.toll_free()),
            (LineType::SharedCost, d.shared_cost()),
            (LineType::Voip, d.voip()),
            (LineType::PersonalNumber, d.personal_number()),
            (LineType::Pager, d.pager()),
            (LineType::Uan, d.uan()),
            (LineType::Voicemail, d.voicemail()),
        ]
        .into_iter()
        .filter_map(|(t, desc)| desc.map(|desc| (t, Desc::compile(desc))))
        .collect();
        let same_fixed_and_mobile = match (d.fixed_line(), d.mobile()) {
            (Some(f), Some(m)) => f.national_number().as_str() == m.national_number().as_str(),
            _ => false,
        };
        // The general description carries no lengths of its own in the
        // source metadata; libphonenumber's build gives it the union of the
        // number types' lengths (local-only ones that are not also full
        // lengths), which its length test reads.
        let mut general = Desc::compile(d.general());
        let types = [
            d.fixed_line(), d.mobile(), d.toll_free(), d.premium_rate(), d.shared_cost(),
            d.personal_number(), d.voip(), d.pager(), d.uan(), d.voicemail(),
        ];
        if general.lengths.is_empty() {
            let mut lengths: Vec<u16> = types.iter().flatten().flat_map(|t| t.possible_length().iter().copied()).collect();
            lengths.sort_unstable();
            lengths.dedup();
            let mut local: Vec<u16> = types
                .iter()
                .flatten()
                .flat_map(|t| t.possible_local_length().iter().copied())
                .filter(|l| !lengths.contains(l))
                .collect();
            local.sort_unstable();
            local.dedup();
            general.lengths = lengths;
            general.local_only_lengths = local;
        }
        Region {
            country,
            leading_digits: meta.leading_digits().map(|r| anchored(r.as_str(), false)),
            national_prefix: meta
                .national_prefix_for_parsing()
                .map(|r| anchored(r.as_str(), false))
                .or_else(|| meta.national_prefix().map(|p| anchored(&regex::escape(p), false)))
                .map(|re| (re, meta.national_prefix_transform_rule().map(rust_replacement))),
            general,
            special,
            fixed_line: d.fixed_line().map(Desc::compile),
            mobile: d.mobile().map(Desc::compile),
            same_fixed_and_mobile,
        }
    }

    /// libphonenumber's `maybeStripNationalPrefixAndCarrierCode`: the number
    /// with a leading national prefix (or carrier code) removed or
    /// transformed, or `None` when nothing applies. A number that fits the
    /// general pattern as written is only changed if the result fits too.
    pub(crate) fn strip_national_prefix(&self, national: &str) -> Option<String> {
        let (re, transform) = self.national_prefix.as_ref()?;
        let caps = re.captures(national)?;
        let viable = |n: &str| self.general.pattern.is_match(n);
        let last_group = caps.len() - 1;
        let candidate = match transform {
            Some(rule) if last_group > 0 && caps.get(last_group).is_some() => {
                let mut out = String::new();
                caps.expand(rule, &mut out);
                out.push_str(&national[caps.get(0)?.end()..]);
                out
            }
            _ => national[caps.get(0)?.end()..].to_string(),
        };
        (!viable(national) || viable(&candidate)).then_some(candidate)
    }

    /// libphonenumber's `testNumberLength` against the general description
    /// is not TOO_SHORT, IS_POSSIBLE_LOCAL_ONLY or INVALID_LENGTH: the test
    /// the parser applies before keeping a stripped number.
    pub(crate) fn length_keeps_stripped(&self, national: &str) -> bool {
        let len = national.len() as u16;
        let lengths = &self.general.lengths;
        if self.general.local_only_lengths.contains(&len) {
            return false;
        }
        match (lengths.first(), lengths.last()) {
            (Some(&min), Some(&max)) => len == min || len > max || (len > min && lengths[1..].contains(&len)),
            _ => false,
        }
    }

    /// libphonenumber's `getNumberTypeHelper`; `None` is UNKNOWN, i.e. the
    /// number is not valid in this region.
    pub(crate) fn number_type(&self, national: &str) -> Option<LineType> {
        if !self.general.matches(national) {
            return None;
        }
        if let Some((t, _)) = self.special.iter().find(|(_, d)| d.matches(national)) {
            return Some(*t);
        }
        let mobile = |n: &str| self.mobile.as_ref().is_some_and(|d| d.matches(n));
        if self.fixed_line.as_ref().is_some_and(|d| d.matches(national)) {
            if self.same_fixed_and_mobile || mobile(national) {
                return Some(LineType::FixedLineOrMobile);
            }
            return Some(LineType::FixedLine);
        }
        if !self.same_fixed_and_mobile && mobile(national) {
            return Some(LineType::Mobile);
        }
        None
    }
}

/// The regions sharing a calling code, main country first (empty if the code
/// is not assigned).
pub(crate) fn regions_for_code(code: u16) -> &'static [Region] {
    let Some(slot) = BY_CODE.get(code as usize) else { return &[] };
    slot.get_or_init(|| {
        DATABASE.by_code(&code).unwrap_or_default().into_iter().map(Region::compile).collect()
    })
}

/// libphonenumber's `getRegionCodeForNumberFromRegionList` followed by
/// `isValidNumberForRegion`: the region the number belongs to and its type.
/// `None` when the number is valid nowhere.
pub(crate) fn classify(code: u16, national: &str) -> Option<(&'static Region, LineType)> {
    let regions = regions_for_code(code);
    let region = if regions.len() == 1 {
        &regions[0]
    } else {
        regions.iter().find(|r| match &r.leading_digits {
            Some(ld) => ld.is_match(national),
            None => r.number_type(national).is_some(),
        })?
    };
    region.number_type(national).map(|t| (region, t))
}
