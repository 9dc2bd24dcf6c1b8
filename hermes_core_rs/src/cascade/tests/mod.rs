//! Scenario tests of the cascade machine and engine, the persisted form, and
//! property tests of whole runs.

use super::*;

fn step(channel: Channel, timeout_ms: u64) -> Step {
    Step::new(channel, timeout_ms)
}

fn plan(steps: Vec<Step>) -> Plan {
    Plan {
        steps,
        send_at: None,
        expires_at: None,
    }
}

fn run(c: &mut Cascade, event: Event, now: u64) -> Vec<Action> {
    let mut out = Vec::new();
    c.handle(event, now, &mut out);
    out
}

fn dispatches(actions: &[Action]) -> Vec<(u8, u16, Option<Account>, Vec<Account>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Dispatch {
                step,
                attempt,
                provider,
                exclude,
                ..
            } => Some((*step, *attempt, provider.clone(), exclude.clone())),
            _ => None,
        })
        .collect()
}

fn finish(actions: &[Action]) -> Option<Outcome> {
    actions.iter().find_map(|a| match a {
        Action::Finish { outcome } => Some(*outcome),
        _ => None,
    })
}

fn kinds(actions: &[Action]) -> Vec<Kind> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Timeline { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect()
}

fn notices(actions: &[Action]) -> Vec<Notice> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify { notice, .. } => Some(*notice),
            _ => None,
        })
        .collect()
}

fn accepted(step: u8, attempt: u16) -> Event {
    Event::Accepted {
        step,
        attempt,
        account: Some("acct-1".into()),
    }
}

fn receipt(step: u8, attempt: u16, status: Receipt) -> Event {
    Event::Receipt { step, attempt, status }
}

/// The seed cascade: SMS never confirmed, email delivered after the 30 s timeout.
#[test]
fn sms_unconfirmed_falls_back_to_email_which_is_delivered() {
    let mut c = Cascade::new();
    let a = run(
        &mut c,
        Event::Start(plan(vec![step(Channel::Sms, 30_000), step(Channel::Email, 30_000)])),
        0,
    );
    assert_eq!(dispatches(&a), vec![(0, 1, None, vec![])]);
    assert!(a.contains(&Action::SetTimer { deadline: 30_000 }));
    // Accepted by the provider 200 ms in: the 30 s wait for a receipt starts now.
    let a = run(&mut c, accepted(0, 1), 200);
    assert_eq!(notices(&a), vec![Notice::Sent]);
    assert!(a.contains(&Action::SetTimer { deadline: 30_200 }));
    assert!(
        run(&mut c, Event::TimerFired { deadline: 30_000 }, 30_000).is_empty(),
        "the replaced timer is stale"
    );

    let a = run(&mut c, Event::TimerFired { deadline: 30_200 }, 30_200);
    assert_eq!(kinds(&a)[..2], [Kind::StepTimedOut, Kind::Fallback]);
    assert_eq!(dispatches(&a), vec![(1, 2, None, vec![])]);
    assert!(a.contains(&Action::SetTimer { deadline: 60_200 }));
    assert_eq!(
        c.records()[0].status,
        StepStatus::Accepted,
        "the SMS stays with its provider"
    );

    run(&mut c, accepted(1, 2), 30_300);
    let a = run(&mut c, receipt(1, 2, Receipt::Delivered), 35_000);
    assert_eq!(finish(&a), Some(Outcome::Delivered));
    assert!(a.contains(&Action::CancelTimer));
    assert_eq!(c.phase(), Phase::Finished(Outcome::Delivered));
    assert_eq!(c.timer(), None);

    // The SMS arrives after all: recorded and notified, nothing re-opened.
    let a = run(&mut c, receipt(0, 1, Receipt::Delivered), 40_000);
    assert_eq!(kinds(&a), vec![Kind::LateReceipt]);
    assert_eq!(notices(&a), vec![Notice::LateDelivered]);
    assert_eq!(c.records()[0].status, StepStatus::Delivered);
    assert_eq!(c.phase(), Phase::Finished(Outcome::Delivered));
    assert!(
        run(&mut c, receipt(0, 1, Receipt::Delivered), 40_001).is_empty(),
        "duplicate receipt"
    );
}

#[test]
fn retryable_provider_errors_fail_over_within_the_step_then_fall_back() {
    let mut sms = step(Channel::Sms, 30_000);
    sms.provider = Some("twilio-main".into());
    sms.max_attempts = 2;
    let mut c = Cascade::new();
    let a = run(&mut c, Event::Start(plan(vec![sms, step(Channel::Email, 30_000)])), 0);
    assert_eq!(dispatches(&a), vec![(0, 1, Some("twilio-main".into()), vec![])]);

    let err = |attempt, account: &str| Event::ProviderError {
        step: 0,
        attempt,
        account: Some(account.into()),
        retryable: true,
    };
    let a = run(&mut c, err(1, "twilio-main"), 100);
    assert_eq!(
        dispatches(&a),
        vec![(0, 2, None, vec!["twilio-main".into()])],
        "route elsewhere, excluding the failed account"
    );
    assert!(
        !a.iter().any(|x| matches!(x, Action::SetTimer { .. })),
        "the step keeps its deadline"
    );
    assert!(
        run(&mut c, err(1, "twilio-main"), 150).is_empty(),
        "a duplicate error for the old attempt"
    );

    let a = run(&mut c, err(2, "messente"), 200);
    assert_eq!(kinds(&a)[..3], [Kind::ProviderError, Kind::StepFailed, Kind::Fallback]);
    assert_eq!(
        dispatches(&a),
        vec![(1, 3, None, vec![])],
        "the next channel starts afresh"
    );
    assert!(a.contains(&Action::SetTimer { deadline: 30_200 }));
}

#[test]
fn retryable_rejection_fails_over_and_a_final_one_ends_the_step() {
    let mut c = Cascade::new();
    run(
        &mut c,
        Event::Start(plan(vec![step(Channel::Sms, 30_000), step(Channel::Email, 30_000)])),
        0,
    );
    let a = run(
        &mut c,
        Event::Rejected {
            step: 0,
            attempt: 1,
            account: Some("a3".into()),
            retryable: true,
        },
        10,
    );
    assert_eq!(dispatches(&a), vec![(0, 2, None, vec!["a3".into()])]);
    let a = run(
        &mut c,
        Event::Rejected {
            step: 0,
            attempt: 2,
            account: Some("a4".into()),
            retryable: false,
        },
        20,
    );
    assert_eq!(dispatches(&a), vec![(1, 3, None, vec![])]);
    assert_eq!(c.records()[0].status, StepStatus::Failed);
}

#[test]
fn a_failure_receipt_ends_the_step_early_and_the_last_step_failing_fails_the_cascade() {
    let mut c = Cascade::new();
    run(
        &mut c,
        Event::Start(plan(vec![step(Channel::Sms, 30_000), step(Channel::Email, 30_000)])),
        0,
    );
    run(&mut c, accepted(0, 1), 10);
    let a = run(&mut c, receipt(0, 1, Receipt::Undelivered), 500);
    assert_eq!(dispatches(&a), vec![(1, 2, None, vec![])]);
    let a = run(&mut c, receipt(1, 2, Receipt::Bounced), 600);
    assert_eq!(finish(&a), Some(Outcome::Failed));
    assert!(a.contains(&Action::CancelTimer));
}

#[test]
fn exhausted_cascade_with_a_provider_holding_the_message_ends_accepted() {
    let mut c = Cascade::new();
    run(&mut c, Event::Start(plan(vec![step(Channel::Email, 1_000)])), 0);
    run(&mut c, accepted(0, 1), 10);
    let a = run(&mut c, Event::TimerFired { deadline: 1_010 }, 1_010);
    assert_eq!(finish(&a), Some(Outcome::Accepted));
    let mut c = Cascade::new();
    run(&mut c, Event::Start(plan(vec![step(Channel::Email, 1_000)])), 0);
    let a = run(&mut c, Event::TimerFired { deadline: 1_000 }, 1_000);
    assert_eq!(finish(&a), Some(Outcome::Failed), "never accepted by anyone");
    assert!(
        !a.contains(&Action::CancelTimer),
        "the timer that fired is gone already"
    );
}

#[test]
fn send_at_dispatches_nothing_before_it() {
    let mut c = Cascade::new();
    let p = Plan {
        send_at: Some(5_000),
        ..plan(vec![step(Channel::Sms, 30_000)])
    };
    let a = run(&mut c, Event::Start(p), 0);
    assert!(dispatches(&a).is_empty());
    assert_eq!(notices(&a), vec![Notice::Scheduled]);
    assert!(a.contains(&Action::SetTimer { deadline: 5_000 }));
    assert!(
        run(&mut c, receipt(0, 1, Receipt::Delivered), 10).is_empty(),
        "no attempt exists yet"
    );
    let a = run(&mut c, Event::TimerFired { deadline: 5_000 }, 5_003);
    assert_eq!(dispatches(&a), vec![(0, 1, None, vec![])]);
    assert!(a.contains(&Action::SetTimer { deadline: 35_003 }));
}

#[test]
fn an_expired_cascade_never_falls_back() {
    let p = |expires| Plan {
        expires_at: Some(expires),
        ..plan(vec![step(Channel::Sms, 30_000), step(Channel::Email, 30_000)])
    };
    // The expiry comes before the step timeout: the one timer is the expiry.
    let mut c = Cascade::new();
    let a = run(&mut c, Event::Start(p(10_000)), 0);
    assert!(a.contains(&Action::SetTimer { deadline: 10_000 }));
    let a = run(&mut c, Event::TimerFired { deadline: 10_000 }, 10_000);
    assert_eq!(finish(&a), Some(Outcome::Expired));
    assert!(dispatches(&a).is_empty());
    // A failure reported after the expiry passed (before its timer ticked).
    let mut c = Cascade::new();
    run(&mut c, Event::Start(p(10_000)), 0);
    let a = run(
        &mut c,
        Event::Rejected {
            step: 0,
            attempt: 1,
            account: None,
            retryable: false,
        },
        10_500,
    );
    assert_eq!(finish(&a), Some(Outcome::Expired));
    assert!(dispatches(&a).is_empty());
    // A worker down past both deadlines: the timeout fires late, expiry wins.
    let mut c = Cascade::new();
    run(&mut c, Event::Start(p(40_000)), 0);
    let a = run(&mut c, Event::TimerFired { deadline: 30_000 }, 45_000);
    assert_eq!(finish(&a), Some(Outcome::Expired));
    // Already expired at start; the Expire event is honoured only once due.
    let mut c = Cascade::new();
    assert_eq!(finish(&run(&mut c, Event::Start(p(0)), 0)), Some(Outcome::Expired));
    let mut c = Cascade::new();
    run(&mut c, Event::Start(p(10_000)), 0);
    assert!(run(&mut c, Event::Expire, 9_999).is_empty());
    assert_eq!(finish(&run(&mut c, Event::Expire, 10_000)), Some(Outcome::Expired));
}

#[test]
fn a_late_success_on_an_earlier_step_ends_the_running_one() {
    let mut c = Cascade::new();
    let steps = vec![
        step(Channel::Sms, 30_000),
        step(Channel::Email, 30_000),
        step(Channel::Push, 30_000),
    ];
    run(&mut c, Event::Start(plan(steps)), 0);
    run(&mut c, Event::TimerFired { deadline: 30_000 }, 30_000);
    let a = run(&mut c, receipt(0, 1, Receipt::Delivered), 31_000);
    assert_eq!(kinds(&a)[0], Kind::LateReceipt);
    assert_eq!(notices(&a), vec![Notice::LateDelivered, Notice::Finished]);
    assert_eq!(finish(&a), Some(Outcome::Delivered));
    assert!(a.contains(&Action::CancelTimer));
    assert_eq!(c.step(), 0, "the step that succeeded");
    // The email that was in flight reports later: late, nothing dispatched.
    let a = run(&mut c, receipt(1, 2, Receipt::Delivered), 32_000);
    assert_eq!(notices(&a), vec![Notice::LateDelivered]);
    assert!(dispatches(&a).is_empty() && finish(&a).is_none());
}

#[test]
fn success_criteria_accepted_delivered_read() {
    // Push: accepted is success.
    let mut c = Cascade::new();
    run(
        &mut c,
        Event::Start(plan(vec![step(Channel::Push, 5_000), step(Channel::Sms, 5_000)])),
        0,
    );
    assert_eq!(finish(&run(&mut c, accepted(0, 1), 10)), Some(Outcome::Accepted));
    assert_eq!(
        notices(&run(&mut c, receipt(0, 1, Receipt::Delivered), 20)),
        vec![Notice::Delivered]
    );
    // WhatsApp waiting to be read: delivered is news, not success.
    let mut wa = step(Channel::Whatsapp, 60_000);
    wa.success = Success::Read;
    let mut c = Cascade::new();
    run(&mut c, Event::Start(plan(vec![wa, step(Channel::Sms, 5_000)])), 0);
    let a = run(&mut c, receipt(0, 1, Receipt::Delivered), 100);
    assert_eq!(notices(&a), vec![Notice::Delivered]);
    assert!(finish(&a).is_none());
    assert_eq!(
        finish(&run(&mut c, receipt(0, 1, Receipt::Read), 200)),
        Some(Outcome::Read)
    );
    // A read receipt satisfies a delivered step (WhatsApp can skip delivered).
    let mut c = Cascade::new();
    run(&mut c, Event::Start(plan(vec![step(Channel::Whatsapp, 5_000)])), 0);
    assert_eq!(
        finish(&run(&mut c, receipt(0, 1, Receipt::Read), 10)),
        Some(Outcome::Read)
    );
}

#[test]
fn a_timer_fired_before_its_time_waits_for_the_real_deadline() {
    let mut c = Cascade::new();
    run(&mut c, Event::Start(plan(vec![step(Channel::Sms, 30_000)])), 0);
    // A state whose timer says 10 s while the step runs to 30 s.
    c.timer = Some(10_000);
    let a = run(&mut c, Event::TimerFired { deadline: 10_000 }, 10_000);
    assert_eq!(a, vec![Action::SetTimer { deadline: 30_000 }]);
    let mut e = Engine::new(0);
    let mut skewed = Cascade::new();
    run(&mut skewed, Event::Start(plan(vec![step(Channel::Sms, 30_000)])), 0);
    skewed.timer = Some(5);
    e.insert(1, skewed);
    let mut out = Vec::new();
    e.tick(20_000, &mut out); // terminates, re-armed for the step's deadline
    assert_eq!(out, vec![(1, Action::SetTimer { deadline: 30_000 })]);
}

#[test]
fn cancel_ends_once_and_duplicates_change_nothing() {
    let mut c = Cascade::new();
    let p = plan(vec![step(Channel::Sms, 30_000)]);
    run(&mut c, Event::Start(p.clone()), 0);
    assert!(run(&mut c, Event::Start(p), 1).is_empty(), "duplicate start");
    run(&mut c, accepted(0, 1), 2);
    assert!(run(&mut c, accepted(0, 1), 3).is_empty(), "duplicate accepted");
    let a = run(&mut c, Event::Cancel, 4);
    assert_eq!(finish(&a), Some(Outcome::Cancelled));
    assert!(a.contains(&Action::CancelTimer));
    assert!(run(&mut c, Event::Cancel, 5).is_empty());
    assert!(run(&mut c, Event::TimerFired { deadline: 30_000 }, 30_000).is_empty());
    let a = run(&mut c, receipt(0, 1, Receipt::Delivered), 6);
    assert_eq!(
        notices(&a),
        vec![Notice::LateDelivered],
        "after a cancel, delivery is still reported"
    );
}

#[test]
fn the_persisted_form_round_trips_and_refuses_damage() {
    let mut wa = step(Channel::Whatsapp, 60_000);
    wa.provider = Some("whatsapp-cloud-é".into());
    wa.success = Success::Read;
    let p = Plan {
        steps: vec![wa, step(Channel::Sms, 30_000)],
        send_at: Some(10),
        expires_at: Some(u64::MAX),
    };
    let mut c = Cascade::new();
    let events = [
        (Event::Start(p), 0),
        (Event::TimerFired { deadline: 10 }, 10),
        (
            Event::ProviderError {
                step: 0,
                attempt: 1,
                account: Some("a5".into()),
                retryable: true,
            },
            20,
        ),
        (accepted(0, 2), 30),
        (Event::TimerFired { deadline: 60_010 }, 60_010),
        (receipt(1, 3, Receipt::Read), 60_020),
    ];
    let mut states = vec![c.clone()];
    for (e, now) in events {
        run(&mut c, e, now);
        states.push(c.clone());
    }
    for s in &states {
        let bytes = s.to_bytes();
        assert_eq!(&Cascade::from_bytes(&bytes).unwrap(), s);
        for cut in 0..bytes.len() {
            assert!(Cascade::from_bytes(&bytes[..cut]).is_err(), "prefix {cut} accepted");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Cascade::from_bytes(&longer), Err(DecodeError::TrailingBytes));
    }
    let mut bad = states[2].to_bytes();
    bad[3] = 99;
    assert_eq!(Cascade::from_bytes(&bad), Err(DecodeError::UnsupportedVersion(99)));
    assert_eq!(Cascade::from_bytes(b"nope"), Err(DecodeError::BadMagic));
    // States the machine could not act on are refused, not left to panic later.
    let mut no_steps = Cascade::new();
    no_steps.phase = Phase::Scheduled;
    no_steps.timer = Some(5);
    assert!(Cascade::from_bytes(&no_steps.to_bytes()).is_err());
    let mut timerless = states[2].clone();
    timerless.timer = None;
    assert!(Cascade::from_bytes(&timerless.to_bytes()).is_err());
}

mod engine_tests {
    use super::*;

    fn seed_plan() -> Plan {
        plan(vec![step(Channel::Sms, 30_000), step(Channel::Email, 30_000)])
    }

    #[test]
    fn timers_drive_transitions_inside_the_engine() {
        let mut e = Engine::new(0);
        let mut out = Vec::new();
        e.apply((0..100u128).map(|id| (id, Event::Start(seed_plan()))), 0, &mut out);
        assert_eq!((e.len(), e.timers()), (100, 100));
        out.clear();
        e.tick(29_999, &mut out);
        assert!(out.is_empty());
        e.tick(30_000, &mut out);
        let emails = out
            .iter()
            .filter(|(_, a)| matches!(a, Action::Dispatch { step: 1, .. }))
            .count();
        assert_eq!(emails, 100);
        out.clear();
        e.apply(
            (0..50u128).map(|id| (id, receipt(1, 2, Receipt::Delivered))),
            31_000,
            &mut out,
        );
        assert_eq!(
            out.iter().filter(|(_, a)| matches!(a, Action::Finish { .. })).count(),
            50
        );
        assert_eq!(
            (e.len(), e.timers()),
            (50, 50),
            "finished cascades and their timers are gone"
        );
        out.clear();
        e.apply([(7u128, receipt(0, 1, Receipt::Delivered))], 32_000, &mut out);
        assert_eq!(out, vec![(7, Action::Unknown)]);
        out.clear();
        e.tick(60_000, &mut out);
        let failed = out
            .iter()
            .filter(|(_, a)| {
                *a == Action::Finish {
                    outcome: Outcome::Failed,
                }
            })
            .count();
        assert_eq!(failed, 50);
        assert!(e.is_empty() && e.timers() == 0);
    }

    #[test]
    fn dump_load_and_restore_rebuild_the_same_engine() {
        let mut e = Engine::new(1_000);
        let mut out = Vec::new();
        e.apply(
            (0..20u128).map(|id| (id << 64 | 5, Event::Start(seed_plan()))),
            1_000,
            &mut out,
        );
        e.apply([(3u128 << 64 | 5, accepted(0, 1))], 2_000, &mut out);
        let bytes = e.dump();
        let loaded = Engine::load(&bytes).unwrap();
        assert_eq!(loaded.dump(), bytes);
        assert_eq!(loaded.get(3 << 64 | 5), e.get(3 << 64 | 5));
        assert_eq!(loaded.next_deadline(), e.next_deadline());
        assert!(Engine::load(&bytes[..bytes.len() - 1]).is_err());

        // One cascade at a time, as a worker rebuilding from stored rows; the
        // deadline passed while it was down, so it fires on the first tick.
        let mut fresh = Engine::new(90_000);
        fresh.restore(3 << 64 | 5, &e.export(3 << 64 | 5).unwrap()).unwrap();
        let mut out = Vec::new();
        fresh.tick(90_000, &mut out);
        assert!(out.iter().any(|(_, a)| matches!(a, Action::Dispatch { step: 1, .. })));
        assert!(fresh.restore(1, b"HCS\x01").is_err());
    }
}

mod runs;


/// A job held up in a queue does not eat its step's wait for a receipt: the timeout
/// counts again from the provider's acceptance, never moves earlier, and `expires_at`
/// still bounds it.
#[test]
fn the_step_timeout_counts_from_the_providers_acceptance() {
    let mut c = Cascade::new();
    run(&mut c, Event::Start(plan(vec![step(Channel::Sms, 10_000), step(Channel::Email, 10_000)])), 0);
    // The job waited 8 s in the delivery queue; the provider took it then.
    let a = run(&mut c, accepted(0, 1), 8_000);
    assert!(a.contains(&Action::SetTimer { deadline: 18_000 }));
    assert_eq!(c.timer(), Some(18_000));
    assert!(run(&mut c, Event::TimerFired { deadline: 10_000 }, 10_000).is_empty());
    // A `sent` receipt after that changes nothing: the deadline only moves later.
    let a = run(&mut c, receipt(0, 1, Receipt::Sent), 9_000);
    assert!(!a.iter().any(|x| matches!(x, Action::SetTimer { .. })));
    let a = run(&mut c, receipt(0, 1, Receipt::Delivered), 17_000);
    assert_eq!(finish(&a), Some(Outcome::Delivered));

    // Accepted late, but the cascade expires first: the timer is the expiry.
    let mut c = Cascade::new();
    let mut p = plan(vec![step(Channel::Sms, 10_000), step(Channel::Email, 10_000)]);
    p.expires_at = Some(12_000);
    run(&mut c, Event::Start(p), 0);
    let a = run(&mut c, accepted(0, 1), 8_000);
    assert!(a.contains(&Action::SetTimer { deadline: 12_000 }));
    let a = run(&mut c, Event::TimerFired { deadline: 12_000 }, 12_000);
    assert_eq!(finish(&a), Some(Outcome::Expired));

    // Without an attempt result, a `sent` receipt from the provider starts the wait too.
    let mut c = Cascade::new();
    run(&mut c, Event::Start(plan(vec![step(Channel::Sms, 10_000)])), 0);
    let a = run(&mut c, receipt(0, 1, Receipt::Sent), 4_000);
    assert!(a.contains(&Action::SetTimer { deadline: 14_000 }));
}
