//! The engine: every live cascade by message id, and the one wheel their
//! timers live in.
//!
//! `apply` and `tick` run whole batches inside Rust: a timer that expires
//! drives its cascade's transition here, with no call back to the host per
//! timer. Timer actions are carried out on the wheel *and* returned, so the
//! host can persist each message's next deadline (DESIGN §3, guarantee 3).
//! A cascade that finishes is dropped; an event for a message the engine does
//! not hold returns [`Action::Unknown`]. Because finished cascades are not
//! remembered, a redelivered `Start` for a message that already finished
//! starts it again: the host checks the message's stored status before
//! passing a `Start` on (it reads the row anyway to build the plan).

use std::hash::{BuildHasherDefault, Hasher};

use hashbrown::HashMap;

use super::codec::{decode_body, encode_body, put_varint, DecodeError, Reader, ENGINE_MAGIC, VERSION};
use super::machine::Cascade;
use super::types::{Action, Event};
use crate::wheel::Wheel;

/// Hashes a `u128` message id with the wheel's mixer.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(16) {
            let mut buf = [0u8; 16];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.write_u128(u128::from_le_bytes(buf));
        }
    }

    fn write_u128(&mut self, id: u128) {
        self.0 = crate::wheel::hash_id(id ^ u128::from(self.0));
    }
}

type IdMap<V> = HashMap<u128, V, BuildHasherDefault<IdHasher>>;

/// The live cascades of one worker (or one shard).
pub struct Engine {
    wheel: Wheel,
    machines: IdMap<Cascade>,
    scratch: Vec<Action>,
    fired: Vec<(u128, u64)>,
}

impl Engine {
    pub fn new(now_ms: u64) -> Self {
        Engine {
            wheel: Wheel::new(now_ms),
            machines: IdMap::default(),
            scratch: Vec::new(),
            fired: Vec::new(),
        }
    }

    /// Live cascades held.
    pub fn len(&self) -> usize {
        self.machines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.machines.is_empty()
    }

    /// Pending timers (every live cascade has one).
    pub fn timers(&self) -> usize {
        self.wheel.len()
    }

    /// When `tick` next has work (see [`Wheel::next_deadline`]).
    pub fn next_deadline(&self) -> Option<u64> {
        self.wheel.next_deadline()
    }

    pub fn get(&self, id: u128) -> Option<&Cascade> {
        self.machines.get(&id)
    }

    /// Applies events in order at time `now`, appending `(id, action)`. A
    /// `Start` for an id already held is a duplicate and changes nothing.
    pub fn apply<I>(&mut self, events: I, now: u64, out: &mut Vec<(u128, Action)>)
    where
        I: IntoIterator<Item = (u128, Event)>,
    {
        for (id, event) in events {
            self.apply_one(id, event, now, out);
        }
    }

    /// Fires every timer due at `now` and applies the transitions they cause.
    pub fn tick(&mut self, now: u64, out: &mut Vec<(u128, Action)>) {
        let mut fired = std::mem::take(&mut self.fired);
        // A transition may set a timer that is already due (a zero timeout):
        // keep going until nothing is due at `now`.
        while {
            fired.clear();
            self.wheel.advance(now, &mut fired) > 0
        } {
            for &(id, deadline) in &fired {
                self.apply_one(id, Event::TimerFired { deadline }, now, out);
            }
        }
        self.fired = fired;
    }

    fn apply_one(&mut self, id: u128, event: Event, now: u64, out: &mut Vec<(u128, Action)>) {
        let machine = match self.machines.get_mut(&id) {
            Some(m) => m,
            None if matches!(event, Event::Start(_)) => self.machines.entry(id).or_default(),
            None => {
                out.push((id, Action::Unknown));
                return;
            }
        };
        let mut actions = std::mem::take(&mut self.scratch);
        machine.handle(event, now, &mut actions);
        let finished = machine.is_finished();
        for action in actions.drain(..) {
            match action {
                Action::SetTimer { deadline } => self.wheel.insert(id, deadline),
                Action::CancelTimer => {
                    self.wheel.cancel(id);
                }
                _ => {}
            }
            out.push((id, action));
        }
        self.scratch = actions;
        if finished {
            self.machines.remove(&id);
            debug_assert!(self.wheel.deadline(id).is_none(), "a finished cascade left a timer");
        }
    }

    /// Adds one cascade from its persisted form (the worker rebuilding from
    /// stored rows), replacing any held under the same id, and files its
    /// timer; a deadline that passed while down fires on the next tick.
    pub fn restore(&mut self, id: u128, bytes: &[u8]) -> Result<(), DecodeError> {
        let cascade = Cascade::from_bytes(bytes)?;
        self.insert(id, cascade);
        Ok(())
    }

    /// Makes room for `additional` more cascades (a rebuild that knows its
    /// row count avoids growing the map step by step).
    pub fn reserve(&mut self, additional: usize) {
        self.machines.reserve(additional);
    }

    /// Adds one cascade, replacing any held under the same id.
    pub fn insert(&mut self, id: u128, cascade: Cascade) {
        match cascade.timer() {
            Some(deadline) => self.wheel.insert(id, deadline),
            None => {
                self.wheel.cancel(id);
            }
        }
        self.machines.insert(id, cascade);
    }

    /// The persisted form of one held cascade.
    pub fn export(&self, id: u128) -> Option<Vec<u8>> {
        self.machines.get(&id).map(Cascade::to_bytes)
    }

    /// Every held cascade and the engine's time, as bytes (see `codec`).
    /// Cascades are written in id order, so equal engines dump equal bytes.
    pub fn dump(&self) -> Vec<u8> {
        let mut ids: Vec<u128> = self.machines.keys().copied().collect();
        ids.sort_unstable();
        let mut out = Vec::with_capacity(16 + ids.len() * 48);
        out.extend_from_slice(ENGINE_MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.wheel.now().to_le_bytes());
        put_varint(&mut out, ids.len() as u64);
        for id in ids {
            out.extend_from_slice(&id.to_le_bytes());
            encode_body(&self.machines[&id], &mut out);
        }
        out
    }

    /// An engine rebuilt from [`Engine::dump`]'s bytes.
    pub fn load(bytes: &[u8]) -> Result<Engine, DecodeError> {
        let mut r = Reader::new(bytes);
        r.header(ENGINE_MAGIC)?;
        let now = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
        let count = r.varint()?;
        let mut engine = Engine::new(now);
        engine
            .machines
            .reserve(usize::try_from(count).unwrap_or(0).min(bytes.len() / 20));
        for _ in 0..count {
            let id = u128::from_le_bytes(r.take(16)?.try_into().expect("16 bytes"));
            let cascade = decode_body(&mut r)?;
            if engine.machines.contains_key(&id) {
                return Err(DecodeError::Invalid("duplicate message id"));
            }
            engine.insert(id, cascade);
        }
        r.finish()?;
        Ok(engine)
    }
}
