//! Tenant policy (validation layer 6), passed in as a compact struct: which
//! channels the tenant may use, which destination countries, and how many SMS
//! segments one message may cost.

use super::plan::{Channel, ChannelSet};
use super::Violation;
use crate::errors::ErrorCode;

pub const DEFAULT_MAX_SEGMENTS: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPolicy {
    pub channels: ChannelSet,
    /// ISO 3166-1 alpha-2 codes, uppercase; empty allows every country.
    pub allowed_countries: Vec<[u8; 2]>,
    pub max_segments: u32,
}

impl Default for TenantPolicy {
    fn default() -> Self {
        TenantPolicy { channels: ChannelSet::ALL, allowed_countries: Vec::new(), max_segments: DEFAULT_MAX_SEGMENTS }
    }
}

impl TenantPolicy {
    /// Whether a number of this country may be messaged. Non-geographic
    /// numbers (`None`) pass only when every country is allowed.
    pub fn allows_country(&self, country: Option<[u8; 2]>) -> bool {
        self.allowed_countries.is_empty() || country.is_some_and(|c| self.allowed_countries.contains(&c))
    }
}

pub(crate) fn check_channels(policy: &TenantPolicy, steps: &[(usize, Channel)], out: &mut Vec<Violation>) {
    for &(i, c) in steps {
        if !policy.channels.contains(c) {
            out.push(Violation::owned(
                ErrorCode::PolicyChannelDisabled,
                format!("steps[{i}].channel"),
                format!("the {} channel is not enabled for this tenant", c.as_str()),
            ));
        }
    }
}
