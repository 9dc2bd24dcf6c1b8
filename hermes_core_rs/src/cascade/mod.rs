//! The cascade (DESIGN §4): a pure state machine per message, and the engine
//! that holds every live machine with their timers in one wheel.
//!
//! - `types`: plans, events, actions, outcomes;
//! - `machine`: `(state, event, now) -> (state, actions)`;
//! - `codec`: the versioned binary form a worker persists;
//! - `engine`: batches of events and timer ticks over many cascades.

mod codec;
mod engine;
mod machine;
mod types;

#[cfg(test)]
mod tests;

pub use codec::DecodeError;
pub use engine::{Engine, IdHasher};
pub use machine::{transition, Cascade, Phase, StepRecord};
pub use types::{Account, Action, Channel, Event, Kind, Notice, Outcome, Plan, Receipt, Step, StepStatus, Success};
