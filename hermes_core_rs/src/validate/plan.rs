//! Cascade plan (validation layer 5): known channels, at least one step, an
//! address for every step's channel, timeouts in bounds, and a schedule that
//! makes sense against `now`.

use super::{MessageInput, Violation};
use crate::errors::ErrorCode;

/// A delivery channel. The order is the bit order of [`ChannelSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Sms,
    Email,
    Push,
    Whatsapp,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Sms, Channel::Email, Channel::Push, Channel::Whatsapp];

    pub fn parse(name: &str) -> Option<Channel> {
        match name {
            "sms" => Some(Channel::Sms),
            "email" => Some(Channel::Email),
            "push" => Some(Channel::Push),
            "whatsapp" => Some(Channel::Whatsapp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Push => "push",
            Channel::Whatsapp => "whatsapp",
        }
    }

    /// The field of `to` that holds this channel's address.
    pub fn address_field(self) -> &'static str {
        match self {
            Channel::Sms => "to.phone",
            Channel::Email => "to.email",
            Channel::Push => "to.push_token",
            Channel::Whatsapp => "to.whatsapp",
        }
    }
}

/// A set of channels as a bitmask (bit = `Channel as u8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelSet(u8);

impl ChannelSet {
    pub const EMPTY: ChannelSet = ChannelSet(0);
    pub const ALL: ChannelSet = ChannelSet(0b1111);

    pub fn contains(self, c: Channel) -> bool {
        self.0 & (1 << c as u8) != 0
    }

    pub fn insert(&mut self, c: Channel) {
        self.0 |= 1 << c as u8;
    }

    pub fn from_channels(channels: impl IntoIterator<Item = Channel>) -> ChannelSet {
        let mut set = ChannelSet::EMPTY;
        channels.into_iter().for_each(|c| set.insert(c));
        set
    }
}

pub const MIN_TIMEOUT_MS: i64 = 1_000;
pub const MAX_TIMEOUT_MS: i64 = 72 * 3_600_000;
pub const MAX_SEND_AT_AHEAD_MS: i64 = 35 * 86_400_000;
/// More fallbacks than this is a misuse, not a plan.
pub const MAX_STEPS: usize = 10;

/// Check the plan; returns the steps' channels (unknown ones skipped), which
/// the content and policy layers need.
pub(crate) fn check_plan(m: &MessageInput, now_ms: i64, out: &mut Vec<Violation>) -> Vec<(usize, Channel)> {
    if m.steps.is_empty() {
        out.push(Violation::new(ErrorCode::CascadeEmpty, "steps", "the cascade needs at least one step".into()));
    }
    if m.steps.len() > MAX_STEPS {
        out.push(Violation::new(
            ErrorCode::CascadeTooManySteps,
            "steps",
            format!("the cascade has {} steps; at most {MAX_STEPS} are allowed", m.steps.len()),
        ));
    }
    let mut channels = Vec::with_capacity(m.steps.len());
    let mut missing = ChannelSet::EMPTY;
    for (i, step) in m.steps.iter().enumerate() {
        match Channel::parse(&step.channel) {
            Some(c) => {
                channels.push((i, c));
                if !has_address(m, c) && !missing.contains(c) {
                    missing.insert(c);
                    out.push(Violation::new(
                        ErrorCode::RecipientMissingAddress,
                        c.address_field(),
                        format!("step {i} sends by {} but {} is not given", c.as_str(), c.address_field()),
                    ));
                }
            }
            None => out.push(Violation::owned(
                ErrorCode::CascadeUnknownChannel,
                format!("steps[{i}].channel"),
                format!("unknown channel {:?}; expected one of sms, email, push, whatsapp", step.channel),
            )),
        }
        if let Some(t) = step.timeout_ms {
            if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&t) {
                out.push(Violation::owned(
                    ErrorCode::CascadeTimeoutOutOfRange,
                    format!("steps[{i}].timeout"),
                    format!("the timeout is {t} ms; it must be between 1 s and 72 h"),
                ));
            }
        }
    }
    if let Some(expires) = m.expires_at_ms {
        if expires <= now_ms {
            out.push(Violation::new(ErrorCode::CascadeExpiresInPast, "expires_at", "expires_at is not in the future".into()));
        } else if let Some(send_at) = m.send_at_ms.filter(|&s| expires <= s) {
            out.push(Violation::new(
                ErrorCode::CascadeExpiresInPast,
                "expires_at",
                format!("expires_at is not after send_at ({send_at} ms)"),
            ));
        }
    }
    if let Some(send_at) = m.send_at_ms {
        if send_at > now_ms.saturating_add(MAX_SEND_AT_AHEAD_MS) {
            out.push(Violation::new(
                ErrorCode::CascadeSendAtTooFar,
                "send_at",
                "send_at is more than 35 days ahead".into(),
            ));
        }
    }
    channels
}

fn has_address(m: &MessageInput, c: Channel) -> bool {
    let given = |a: &Option<String>| a.as_deref().is_some_and(|s| !s.trim().is_empty());
    match c {
        Channel::Sms => given(&m.phone),
        Channel::Email => given(&m.email),
        Channel::Push => given(&m.push_token),
        Channel::Whatsapp => given(&m.whatsapp),
    }
}
