//! The cascade state machine: `(state, event, now) -> (state, actions)`.
//!
//! [`Cascade::handle`] mutates the state in place and appends actions, which
//! is the same function without copying the state; [`transition`] is the
//! by-value form. No I/O, no clock: `now` is an argument.
//!
//! The machine keeps one timer at a time: the earliest of the step's timeout,
//! `send_at` (while scheduled) and `expires_at`. A step's timeout counts from its
//! start, and again from the moment a provider accepted its message (whichever
//! ends later): it bounds the wait for a receipt, not the time spent in queues. When it fires, the machine
//! decides which one it was from `now`, checking expiry first, so an expired
//! cascade never falls back.

use super::types::{Account, Action, Event, Kind, Notice, Outcome, Plan, Receipt, StepStatus, Success};

/// Where the cascade stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started.
    Created,
    /// Waiting for `send_at`.
    Scheduled,
    /// A step is running.
    Active,
    Finished(Outcome),
}

/// What happened in one step. Attempt numbers are per message and increase
/// across steps, so `first_attempt..=last_attempt` are this step's attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepRecord {
    pub status: StepStatus,
    pub first_attempt: u16,
    pub last_attempt: u16,
}

impl StepRecord {
    pub const PENDING: StepRecord = StepRecord {
        status: StepStatus::Pending,
        first_attempt: 0,
        last_attempt: 0,
    };
}

/// One message's cascade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cascade {
    pub(crate) plan: Plan,
    pub(crate) records: Vec<StepRecord>,
    pub(crate) phase: Phase,
    /// The running step; once finished with a success, the step that succeeded.
    pub(crate) step: u8,
    /// The last attempt number issued (0: none yet).
    pub(crate) attempt: u16,
    pub(crate) step_deadline: u64,
    /// The deadline of the pending timer.
    pub(crate) timer: Option<u64>,
    /// Accounts that failed in the running step, excluded on failover.
    pub(crate) tried: Vec<Account>,
}

impl Default for Cascade {
    fn default() -> Self {
        Cascade::new()
    }
}

/// The by-value form of [`Cascade::handle`].
pub fn transition(mut state: Cascade, event: Event, now: u64) -> (Cascade, Vec<Action>) {
    let mut actions = Vec::new();
    state.handle(event, now, &mut actions);
    (state, actions)
}

impl Cascade {
    /// A cascade not started yet; `Event::Start` gives it its plan.
    pub fn new() -> Self {
        Cascade {
            plan: Plan::default(),
            records: Vec::new(),
            phase: Phase::Created,
            step: 0,
            attempt: 0,
            step_deadline: 0,
            timer: None,
            tried: Vec::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn records(&self) -> &[StepRecord] {
        &self.records
    }

    pub fn step(&self) -> u8 {
        self.step
    }

    pub fn timer(&self) -> Option<u64> {
        self.timer
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished(_))
    }

    /// Applies one event at time `now`, appending the actions to carry out.
    /// Events that do not apply (duplicates, stale timers, reports on an
    /// attempt that is not the one in flight) change nothing and emit nothing.
    pub fn handle(&mut self, event: Event, now: u64, out: &mut Vec<Action>) {
        match event {
            Event::Start(plan) => self.start(plan, now, out),
            Event::Accepted { step, attempt, .. } => self.accepted(step, attempt, now, out),
            Event::Rejected {
                step,
                attempt,
                account,
                retryable,
            } => self.attempt_failed(Kind::Rejected, step, attempt, account, retryable, now, out),
            Event::ProviderError {
                step,
                attempt,
                account,
                retryable,
            } => self.attempt_failed(Kind::ProviderError, step, attempt, account, retryable, now, out),
            Event::Receipt { step, attempt, status } => self.receipt(step, attempt, status, now, out),
            Event::TimerFired { deadline } => self.timer_fired(deadline, now, out),
            Event::Cancel => {
                if !self.is_finished() {
                    self.finish(Outcome::Cancelled, out);
                }
            }
            Event::Expire => {
                if !self.is_finished() && self.expired(now) {
                    self.finish(Outcome::Expired, out);
                }
            }
        }
        debug_assert!(self.timer_invariant(), "a live cascade always has a timer: {self:?}");
    }

    /// Guarantee 4 (no stuck message): scheduled or active means a timer is pending.
    pub(crate) fn timer_invariant(&self) -> bool {
        match self.phase {
            Phase::Scheduled | Phase::Active => self.timer.is_some(),
            Phase::Created | Phase::Finished(_) => self.timer.is_none(),
        }
    }

    fn start(&mut self, plan: Plan, now: u64, out: &mut Vec<Action>) {
        if self.phase != Phase::Created {
            return;
        }
        debug_assert!(plan.steps.len() <= usize::from(u8::MAX), "at most 255 steps");
        self.records = vec![StepRecord::PENDING; plan.steps.len()];
        self.plan = plan;
        if self.plan.steps.is_empty() {
            return self.finish(Outcome::Failed, out);
        }
        if self.expired(now) {
            return self.finish(Outcome::Expired, out);
        }
        match self.plan.send_at {
            Some(send_at) if send_at > now => {
                self.phase = Phase::Scheduled;
                out.push(timeline(Kind::Scheduled, None, None, None));
                out.push(Action::Notify {
                    notice: Notice::Scheduled,
                    step: None,
                    outcome: None,
                });
                self.set_timer(self.bounded(send_at), out);
            }
            _ => self.begin_step(0, now, out),
        }
    }

    fn accepted(&mut self, step: u8, attempt: u16, now: u64, out: &mut Vec<Action>) {
        let Some(rec) = self.record_mut(step, attempt) else {
            return;
        };
        if rec.status != StepStatus::InFlight || attempt != rec.last_attempt {
            return;
        }
        rec.status = StepStatus::Accepted;
        out.push(timeline(Kind::Accepted, Some(step), Some(attempt), None));
        if self.is_running(step, attempt) {
            out.push(Action::Notify {
                notice: Notice::Sent,
                step: Some(step),
                outcome: None,
            });
            if self.plan.steps[step as usize].success == Success::Accepted {
                self.succeed(step, Success::Accepted, out);
            } else {
                self.wait_for_receipt(step, now, out);
            }
        }
    }

    /// The provider has the running step's message: its timeout now counts from here.
    /// A step's timeout is how long to wait for a receipt once the provider has the
    /// message, so time the job spent queued before the send does not count. The
    /// deadline only ever moves later, and `expires_at` still bounds it.
    fn wait_for_receipt(&mut self, step: u8, now: u64, out: &mut Vec<Action>) {
        let deadline = now.saturating_add(self.plan.steps[step as usize].timeout_ms);
        if deadline <= self.step_deadline {
            return;
        }
        self.step_deadline = deadline;
        let bounded = self.bounded(deadline);
        if self.timer != Some(bounded) {
            self.set_timer(bounded, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn attempt_failed(
        &mut self,
        kind: Kind,
        step: u8,
        attempt: u16,
        account: Option<Account>,
        retryable: bool,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        if !self.is_running(step, attempt) || self.records[step as usize].status != StepStatus::InFlight {
            return;
        }
        if let Some(account) = account {
            if !self.tried.contains(&account) {
                self.tried.push(account);
            }
        }
        let detail = if retryable { "retryable" } else { "final" };
        out.push(timeline(kind, Some(step), Some(attempt), Some(detail)));
        let rec = self.records[step as usize];
        let used = attempt - rec.first_attempt + 1;
        let allowed = u16::from(self.plan.steps[step as usize].max_attempts.max(1));
        if retryable && used < allowed {
            if self.expired(now) {
                return self.finish(Outcome::Expired, out);
            }
            out.push(timeline(Kind::Failover, Some(step), None, None));
            self.dispatch(None, out);
        } else {
            self.records[step as usize].status = StepStatus::Failed;
            out.push(timeline(Kind::StepFailed, Some(step), Some(attempt), None));
            self.next_step(now, out);
        }
    }

    fn receipt(&mut self, step: u8, attempt: u16, status: Receipt, now: u64, out: &mut Vec<Action>) {
        let running_attempt = self.is_running(step, attempt);
        let Some(rec) = self.record_mut(step, attempt) else {
            return;
        };
        let new = match status {
            Receipt::Sent => StepStatus::Accepted,
            Receipt::Delivered => StepStatus::Delivered,
            Receipt::Read => StepStatus::Read,
            Receipt::Undelivered | Receipt::Failed | Receipt::Bounced => StepStatus::Failed,
        };
        if !improves(rec.status, new) {
            return;
        }
        // A failure report on an attempt already failed over says nothing
        // about the attempt in flight.
        if new == StepStatus::Failed && attempt != rec.last_attempt {
            return;
        }
        rec.status = new;
        let late = match self.phase {
            Phase::Active => step < self.step,
            Phase::Finished(outcome) => !(outcome.is_success() && step == self.step),
            Phase::Created | Phase::Scheduled => unreachable!("no attempts before the first step"),
        };
        let detail = Some(status.as_str());
        if late {
            out.push(timeline(Kind::LateReceipt, Some(step), Some(attempt), detail));
            match status {
                Receipt::Delivered => out.push(notify(Notice::LateDelivered, step)),
                Receipt::Read => out.push(notify(Notice::LateRead, step)),
                _ => {}
            }
            // Delivered on an earlier step while a later one runs: the message
            // reached the recipient, so the cascade ends here.
            if let (Phase::Active, Some(proven)) = (self.phase, status.proves()) {
                if proven >= self.plan.steps[step as usize].success {
                    self.succeed(step, proven, out);
                }
            }
            return;
        }
        out.push(timeline(Kind::Receipt, Some(step), Some(attempt), detail));
        if self.is_finished() {
            // A follow-up on the step that succeeded (read after delivered).
            match status {
                Receipt::Read => out.push(notify(Notice::Read, step)),
                Receipt::Delivered => out.push(notify(Notice::Delivered, step)),
                _ => {}
            }
            return;
        }
        let wanted = self.plan.steps[step as usize].success;
        match status.proves() {
            Some(proven) if proven >= wanted => self.succeed(step, proven, out),
            Some(_) => out.push(notify(Notice::Delivered, step)),
            None if status == Receipt::Sent => {
                out.push(notify(Notice::Sent, step));
                if wanted == Success::Accepted {
                    self.succeed(step, Success::Accepted, out);
                } else if running_attempt {
                    self.wait_for_receipt(step, now, out);
                }
            }
            None => {
                debug_assert!(status.is_failure() && running_attempt);
                out.push(timeline(Kind::StepFailed, Some(step), Some(attempt), None));
                self.next_step(now, out);
            }
        }
    }

    fn timer_fired(&mut self, deadline: u64, now: u64, out: &mut Vec<Action>) {
        if self.timer != Some(deadline) {
            return; // stale: replaced or cancelled since
        }
        self.timer = None;
        if self.expired(now) {
            return self.finish(Outcome::Expired, out);
        }
        match self.phase {
            Phase::Scheduled if now >= self.plan.send_at.unwrap_or(0) => self.begin_step(0, now, out),
            Phase::Active if now >= self.step_deadline => {
                let step = self.step;
                let rec = &mut self.records[step as usize];
                if rec.status == StepStatus::InFlight {
                    rec.status = StepStatus::TimedOut;
                }
                out.push(timeline(Kind::StepTimedOut, Some(step), None, None));
                self.next_step(now, out);
            }
            // Fired before what it waits for (a host driving timers itself, or
            // a restored state whose timer was off): wait for the real deadline,
            // which is after `now`, so a tick loop cannot spin on it.
            Phase::Scheduled => self.set_timer(self.bounded(self.plan.send_at.unwrap_or(0)), out),
            Phase::Active => self.set_timer(self.bounded(self.step_deadline), out),
            Phase::Created | Phase::Finished(_) => unreachable!("no timer in {:?}", self.phase),
        }
    }

    fn begin_step(&mut self, step: u8, now: u64, out: &mut Vec<Action>) {
        self.phase = Phase::Active;
        self.step = step;
        self.tried.clear();
        self.records[step as usize].first_attempt = self.attempt + 1;
        let spec = &self.plan.steps[step as usize];
        self.step_deadline = now.saturating_add(spec.timeout_ms);
        let provider = spec.provider.clone();
        out.push(timeline(
            Kind::StepStarted,
            Some(step),
            None,
            Some(spec.channel.as_str()),
        ));
        self.dispatch(provider, out);
        self.set_timer(self.bounded(self.step_deadline), out);
    }

    fn dispatch(&mut self, provider: Option<Account>, out: &mut Vec<Action>) {
        self.attempt += 1;
        let step = self.step;
        let rec = &mut self.records[step as usize];
        rec.last_attempt = self.attempt;
        rec.status = StepStatus::InFlight;
        out.push(Action::Dispatch {
            step,
            attempt: self.attempt,
            channel: self.plan.steps[step as usize].channel,
            provider,
            exclude: self.tried.clone(),
        });
        out.push(timeline(Kind::Dispatched, Some(step), Some(self.attempt), None));
    }

    /// The running step failed or timed out: fall back, or end.
    fn next_step(&mut self, now: u64, out: &mut Vec<Action>) {
        if self.expired(now) {
            return self.finish(Outcome::Expired, out);
        }
        let next = self.step + 1;
        if usize::from(next) < self.plan.steps.len() {
            out.push(timeline(Kind::Fallback, Some(next), None, None));
            out.push(notify(Notice::Fallback, next));
            self.begin_step(next, now, out);
        } else {
            let best = self.records.iter().map(|r| r.status).max_by_key(|s| success_rank(*s));
            let outcome = match best {
                Some(StepStatus::Read) => Outcome::Read,
                Some(StepStatus::Delivered) => Outcome::Delivered,
                Some(StepStatus::Accepted) => Outcome::Accepted,
                _ => Outcome::Failed,
            };
            self.finish(outcome, out);
        }
    }

    fn succeed(&mut self, step: u8, level: Success, out: &mut Vec<Action>) {
        self.step = step;
        self.finish(Outcome::of_success(level), out);
    }

    fn finish(&mut self, outcome: Outcome, out: &mut Vec<Action>) {
        debug_assert!(!self.is_finished());
        self.phase = Phase::Finished(outcome);
        if self.timer.take().is_some() {
            out.push(Action::CancelTimer);
        }
        out.push(timeline(Kind::Finished, None, None, Some(outcome.as_str())));
        out.push(Action::Notify {
            notice: Notice::Finished,
            step: None,
            outcome: Some(outcome),
        });
        out.push(Action::Finish { outcome });
    }

    fn set_timer(&mut self, deadline: u64, out: &mut Vec<Action>) {
        self.timer = Some(deadline);
        out.push(Action::SetTimer { deadline });
    }

    /// `deadline`, or `expires_at` if that comes first.
    fn bounded(&self, deadline: u64) -> u64 {
        self.plan.expires_at.map_or(deadline, |e| deadline.min(e))
    }

    fn expired(&self, now: u64) -> bool {
        self.plan.expires_at.is_some_and(|e| now >= e)
    }

    /// Whether `(step, attempt)` is the attempt of the running step.
    fn is_running(&self, step: u8, attempt: u16) -> bool {
        self.phase == Phase::Active && step == self.step && attempt == self.attempt
    }

    /// The record of `step` if `attempt` is one of its attempts.
    fn record_mut(&mut self, step: u8, attempt: u16) -> Option<&mut StepRecord> {
        let rec = self.records.get_mut(step as usize)?;
        (rec.first_attempt >= 1 && (rec.first_attempt..=rec.last_attempt).contains(&attempt)).then_some(rec)
    }
}

/// How far a step got toward success; failures and silence rank lowest.
fn success_rank(status: StepStatus) -> u8 {
    match status {
        StepStatus::Read => 4,
        StepStatus::Delivered => 3,
        StepStatus::Accepted => 2,
        StepStatus::InFlight | StepStatus::TimedOut | StepStatus::Pending | StepStatus::Failed => 0,
    }
}

/// Whether a report moving a step from `old` to `new` tells something new.
/// Success wins over a contradicting failure; nothing undoes a success.
fn improves(old: StepStatus, new: StepStatus) -> bool {
    use StepStatus::*;
    match new {
        Accepted => matches!(old, InFlight | TimedOut),
        Failed => matches!(old, InFlight | TimedOut | Accepted),
        Delivered => matches!(old, InFlight | TimedOut | Accepted | Failed),
        Read => old != Read && old != Pending,
        Pending | InFlight | TimedOut => false,
    }
}

fn timeline(kind: Kind, step: Option<u8>, attempt: Option<u16>, detail: Option<&'static str>) -> Action {
    Action::Timeline {
        kind,
        step,
        attempt,
        detail,
    }
}

fn notify(notice: Notice, step: u8) -> Action {
    Action::Notify {
        notice,
        step: Some(step),
        outcome: None,
    }
}
