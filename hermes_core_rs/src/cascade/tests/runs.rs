//! Property tests of whole runs: random plans and event scripts, and damaged
//! persisted states.

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Fire,
    StaleFire(u64),
    Wait(u64),
    Accept(usize),
    Reject(usize, bool),
    ProviderError(usize, bool, Option<Account>),
    Receipt(usize, Receipt),
    Garbage(u8, u16, Receipt),
    Cancel,
    Expire,
}

fn a_step() -> impl Strategy<Value = Step> {
    (0u8..4, 1u64..60_000, 0u8..3, prop::option::of(0u8..4), 1u8..4).prop_map(|(c, t, s, p, m)| Step {
        channel: Channel::from_code(c).unwrap(),
        timeout_ms: t,
        success: Success::from_code(s).unwrap(),
        provider: p.map(|n| format!("acct-{n}")),
        max_attempts: m,
    })
}

fn a_plan() -> impl Strategy<Value = Plan> {
    (
        prop::collection::vec(a_step(), 0..5),
        prop::option::of(0u64..100_000),
        prop::option::of(0u64..200_000),
    )
        .prop_map(|(steps, s, e)| Plan {
            steps,
            send_at: s.map(|s| 1_000 + s),
            expires_at: e.map(|e| 1_000 + e),
        })
}

fn op() -> impl Strategy<Value = Op> {
    let receipt = (0u8..6).prop_map(|c| Receipt::from_code(c).unwrap());
    prop_oneof![
        4 => Just(Op::Fire),
        1 => (0u64..300_000).prop_map(Op::StaleFire),
        2 => (0u64..20_000).prop_map(Op::Wait),
        3 => any::<usize>().prop_map(Op::Accept),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(i, r)| Op::Reject(i, r)),
        2 => (any::<usize>(), any::<bool>(), prop::option::of(0u8..4)).prop_map(|(i, r, a)| Op::ProviderError(i, r, a.map(|n| format!("acct-{n}")))),
        4 => (any::<usize>(), receipt.clone()).prop_map(|(i, s)| Op::Receipt(i, s)),
        1 => (0u8..6, 0u16..12, receipt).prop_map(|(s, a, r)| Op::Garbage(s, a, r)),
        1 => Just(Op::Cancel),
        1 => Just(Op::Expire),
    ]
}

/// Tracks one run and checks every batch of actions against the rules.
struct Checker {
    plan: Plan,
    now: u64,
    timer: Option<u64>,
    finishes: usize,
    dispatched: Vec<(u8, u16)>,
}

impl Checker {
    fn apply(&mut self, c: &mut Cascade, event: Event) -> Result<Vec<Action>, TestCaseError> {
        let before = c.clone();
        let was_finished = c.is_finished();
        if let Event::TimerFired { deadline } = event {
            if self.timer == Some(deadline) {
                self.timer = None; // it fires exactly once, now
            }
        }
        let actions = run(c, event.clone(), self.now);
        for a in &actions {
            match a {
                Action::SetTimer { deadline } => {
                    prop_assert!(!was_finished, "timer set after the end");
                    self.timer = Some(*deadline); // replaces (cancels) any pending one
                }
                Action::CancelTimer => {
                    prop_assert!(self.timer.take().is_some(), "cancel of no timer");
                }
                Action::Finish { .. } => {
                    prop_assert!(!was_finished, "finished twice");
                    self.finishes += 1;
                }
                Action::Dispatch { step, attempt, .. } => {
                    prop_assert!(!was_finished, "dispatch after the end");
                    prop_assert!(
                        self.plan.send_at.is_none_or(|s| self.now >= s),
                        "dispatch before send_at"
                    );
                    prop_assert!(
                        self.plan.expires_at.is_none_or(|e| self.now < e),
                        "dispatch after expiry"
                    );
                    self.dispatched.push((*step, *attempt));
                }
                _ => {}
            }
        }
        prop_assert_eq!(
            self.timer,
            c.timer(),
            "the host's view of the timer matches the machine"
        );
        prop_assert!(c.timer_invariant());
        if *c != before {
            prop_assert!(
                !kinds(&actions).is_empty(),
                "a transition without a timeline entry: {:?}",
                event
            );
        }
        if let Event::Receipt { step, .. } = event {
            if was_finished && c.records().get(step as usize) != before.records().get(step as usize) {
                prop_assert!(kinds(&actions)
                    .iter()
                    .any(|k| matches!(k, Kind::LateReceipt | Kind::Receipt)));
            }
        }
        Ok(actions)
    }

    fn pick(&self, i: usize) -> Option<(u8, u16)> {
        (!self.dispatched.is_empty()).then(|| self.dispatched[i % self.dispatched.len()])
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Damaged persisted states either fail to decode or decode to a state
    /// the machine handles without panicking.
    #[test]
    fn damaged_states_are_refused_or_safe(
        plan in a_plan(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        ops in prop::collection::vec(op(), 0..12),
    ) {
        let mut c = Cascade::new();
        run(&mut c, Event::Start(plan), 1_000);
        run(&mut c, Event::ProviderError { step: 0, attempt: 1, account: Some("a".into()), retryable: true }, 1_500);
        let mut bytes = c.to_bytes();
        for (at, value) in flips {
            let n = bytes.len();
            bytes[4 + at % (n - 4)] = value; // past the header, which has its own checks
        }
        if let Ok(mut damaged) = Cascade::from_bytes(&bytes) {
            let mut now = 2_000;
            for op in ops {
                now += 7_000;
                let event = match op {
                    Op::Fire | Op::Wait(_) | Op::Cancel => match damaged.timer() {
                        Some(d) => Event::TimerFired { deadline: d },
                        None => Event::Cancel,
                    },
                    Op::StaleFire(d) => Event::TimerFired { deadline: d },
                    Op::Accept(i) => Event::Accepted { step: (i % 4) as u8, attempt: (i % 9) as u16, account: None },
                    Op::Reject(i, r) => Event::Rejected { step: (i % 4) as u8, attempt: (i % 9) as u16, account: None, retryable: r },
                    Op::ProviderError(i, r, a) => Event::ProviderError { step: (i % 4) as u8, attempt: (i % 9) as u16, account: a, retryable: r },
                    Op::Receipt(i, status) => Event::Receipt { step: (i % 4) as u8, attempt: (i % 9) as u16, status },
                    Op::Garbage(step, attempt, status) => Event::Receipt { step, attempt, status },
                    Op::Expire => Event::Expire,
                };
                run(&mut damaged, event, now);
                prop_assert!(damaged.timer_invariant());
            }
        }
    }

    #[test]
    fn every_run_ends_once_with_timers_accounted(plan in a_plan(), ops in prop::collection::vec(op(), 0..40)) {
        let mut c = Cascade::new();
        let mut k = Checker { plan: plan.clone(), now: 1_000, timer: None, finishes: 0, dispatched: vec![] };
        k.apply(&mut c, Event::Start(plan))?;
        for op in ops {
            let event = match op {
                Op::Fire => match k.timer {
                    Some(d) => {
                        k.now = k.now.max(d);
                        Event::TimerFired { deadline: d }
                    }
                    None => continue,
                },
                Op::StaleFire(d) if Some(d) != k.timer => Event::TimerFired { deadline: d },
                Op::StaleFire(_) => continue,
                Op::Wait(ms) => {
                    // Time passes without the timer being ticked (a slow host).
                    k.now += ms;
                    continue;
                }
                Op::Accept(i) => match k.pick(i) {
                    Some((step, attempt)) => Event::Accepted { step, attempt, account: None },
                    None => continue,
                },
                Op::Reject(i, retryable) => match k.pick(i) {
                    Some((step, attempt)) => Event::Rejected { step, attempt, account: None, retryable },
                    None => continue,
                },
                Op::ProviderError(i, retryable, account) => match k.pick(i) {
                    Some((step, attempt)) => Event::ProviderError { step, attempt, account, retryable },
                    None => continue,
                },
                Op::Receipt(i, status) => match k.pick(i) {
                    Some((step, attempt)) => Event::Receipt { step, attempt, status },
                    None => continue,
                },
                Op::Garbage(step, attempt, status) => Event::Receipt { step, attempt, status },
                Op::Cancel => Event::Cancel,
                Op::Expire => Event::Expire,
            };
            let stale = matches!(event, Event::TimerFired { deadline } if Some(deadline) != k.timer);
            let actions = k.apply(&mut c, event)?;
            if stale {
                prop_assert!(actions.is_empty(), "a stale timer did something");
            }
        }
        // Left alone, the timers finish every cascade.
        let mut fires = 0;
        while let Some(d) = k.timer {
            k.now = k.now.max(d);
            k.apply(&mut c, Event::TimerFired { deadline: d })?;
            fires += 1;
            prop_assert!(fires <= 2 * c.plan().steps.len() + 2, "timers never finish the cascade");
        }
        prop_assert!(c.is_finished(), "a live cascade without a timer");
        prop_assert_eq!(k.finishes, 1);
    }
}
