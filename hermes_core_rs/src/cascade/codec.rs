//! The persisted form of cascades: a compact hand-written binary format.
//!
//! Integers are LEB128 varints, strings a varint length then UTF-8, options
//! a flag byte then the value, enums
//! their stable byte codes (see `types`). A single cascade is `b"HCS"`, a
//! version byte, then the body; an engine dump is `b"HCE"`, a version byte,
//! the engine's time (u64 LE), a count, then `(id: 16 bytes LE, body)` pairs.
//! Decoding checks every invariant the machine relies on, so a corrupt blob is
//! an error, never a panic later.

use super::machine::{Cascade, Phase, StepRecord};
use super::types::{Channel, Outcome, Plan, Step, StepStatus, Success};

pub(crate) const CASCADE_MAGIC: &[u8; 3] = b"HCS";
pub(crate) const ENGINE_MAGIC: &[u8; 3] = b"HCE";
/// Bumped on any change to the layout; older versions are decoded or refused
/// explicitly.
pub(crate) const VERSION: u8 = 1;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    BadMagic,
    UnsupportedVersion(u8),
    Truncated,
    Invalid(&'static str),
    TrailingBytes,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::BadMagic => write!(f, "not a Hermes cascade state (bad magic)"),
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported cascade state version {v}"),
            DecodeError::Truncated => write!(f, "cascade state truncated"),
            DecodeError::Invalid(what) => write!(f, "invalid cascade state: {what}"),
            DecodeError::TrailingBytes => write!(f, "trailing bytes after cascade state"),
        }
    }
}

impl std::error::Error for DecodeError {}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

fn put_opt(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            out.push(1);
            put_varint(out, v);
        }
        None => out.push(0),
    }
}

/// A cursor over bytes being decoded.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Invalid("varint longer than 64 bits"))
    }

    fn small<T: TryFrom<u64>>(&mut self, what: &'static str) -> Result<T, DecodeError> {
        T::try_from(self.varint()?).map_err(|_| DecodeError::Invalid(what))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let len: usize = self.small("string length")?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Invalid("string is not UTF-8"))
    }

    fn opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            _ => Err(DecodeError::Invalid("option flag")),
        }
    }

    fn opt(&mut self) -> Result<Option<u64>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.varint()?)),
            _ => Err(DecodeError::Invalid("option flag")),
        }
    }

    pub(crate) fn header(&mut self, magic: &[u8; 3]) -> Result<(), DecodeError> {
        if self.take(3).map_err(|_| DecodeError::BadMagic)? != magic {
            return Err(DecodeError::BadMagic);
        }
        match self.u8()? {
            VERSION => Ok(()),
            v => Err(DecodeError::UnsupportedVersion(v)),
        }
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

const PHASE_CREATED: u8 = 0;
const PHASE_SCHEDULED: u8 = 1;
const PHASE_ACTIVE: u8 = 2;
const PHASE_FINISHED: u8 = 16; // + outcome code

/// Appends the body of `c` (no header).
pub(crate) fn encode_body(c: &Cascade, out: &mut Vec<u8>) {
    out.push(match c.phase {
        Phase::Created => PHASE_CREATED,
        Phase::Scheduled => PHASE_SCHEDULED,
        Phase::Active => PHASE_ACTIVE,
        Phase::Finished(o) => PHASE_FINISHED + o as u8,
    });
    out.push(c.step);
    put_varint(out, u64::from(c.attempt));
    put_varint(out, c.step_deadline);
    put_opt(out, c.timer);
    put_opt(out, c.plan.send_at);
    put_opt(out, c.plan.expires_at);
    put_varint(out, c.tried.len() as u64);
    for a in &c.tried {
        put_str(out, a);
    }
    put_varint(out, c.plan.steps.len() as u64);
    for (s, r) in c.plan.steps.iter().zip(&c.records) {
        out.push(s.channel as u8);
        out.push(s.success as u8);
        put_varint(out, s.timeout_ms);
        put_opt_str(out, s.provider.as_deref());
        out.push(s.max_attempts);
        out.push(r.status as u8);
        put_varint(out, u64::from(r.first_attempt));
        put_varint(out, u64::from(r.last_attempt));
    }
}

/// Reads one body written by [`encode_body`], checking its invariants.
pub(crate) fn decode_body(r: &mut Reader<'_>) -> Result<Cascade, DecodeError> {
    let phase = match r.u8()? {
        PHASE_CREATED => Phase::Created,
        PHASE_SCHEDULED => Phase::Scheduled,
        PHASE_ACTIVE => Phase::Active,
        p if p >= PHASE_FINISHED => {
            Phase::Finished(Outcome::from_code(p - PHASE_FINISHED).ok_or(DecodeError::Invalid("outcome"))?)
        }
        _ => return Err(DecodeError::Invalid("phase")),
    };
    let step = r.u8()?;
    let attempt = r.small("attempt")?;
    let step_deadline = r.varint()?;
    let timer = r.opt()?;
    let send_at = r.opt()?;
    let expires_at = r.opt()?;
    let n_tried: usize = r.small("tried count")?;
    if n_tried > 255 {
        return Err(DecodeError::Invalid("tried count"));
    }
    let tried = (0..n_tried).map(|_| r.string()).collect::<Result<Vec<_>, _>>()?;
    let n: usize = r.small("step count")?;
    if n > 255 {
        return Err(DecodeError::Invalid("step count"));
    }
    let mut steps = Vec::with_capacity(n);
    let mut records = Vec::with_capacity(n);
    for _ in 0..n {
        let channel = Channel::from_code(r.u8()?).ok_or(DecodeError::Invalid("channel"))?;
        let success = Success::from_code(r.u8()?).ok_or(DecodeError::Invalid("success"))?;
        let timeout_ms = r.varint()?;
        let provider = r.opt_string()?;
        let max_attempts = r.u8()?;
        steps.push(Step {
            channel,
            timeout_ms,
            success,
            provider,
            max_attempts,
        });
        let status = StepStatus::from_code(r.u8()?).ok_or(DecodeError::Invalid("step status"))?;
        let first_attempt = r.small("first attempt")?;
        let last_attempt = r.small("last attempt")?;
        if first_attempt > last_attempt || last_attempt > attempt {
            return Err(DecodeError::Invalid("attempt range"));
        }
        records.push(StepRecord {
            status,
            first_attempt,
            last_attempt,
        });
    }
    let c = Cascade {
        plan: Plan {
            steps,
            send_at,
            expires_at,
        },
        records,
        phase,
        step,
        attempt,
        step_deadline,
        timer,
        tried,
    };
    if !c.timer_invariant() {
        return Err(DecodeError::Invalid("timer does not match phase"));
    }
    if matches!(phase, Phase::Active | Phase::Scheduled) && usize::from(step) >= n {
        return Err(DecodeError::Invalid("running step out of range"));
    }
    Ok(c)
}

impl Cascade {
    /// The persisted form of this cascade (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(CASCADE_MAGIC);
        out.push(VERSION);
        encode_body(self, &mut out);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Cascade, DecodeError> {
        let mut r = Reader::new(bytes);
        r.header(CASCADE_MAGIC)?;
        let c = decode_body(&mut r)?;
        r.finish()?;
        Ok(c)
    }
}
