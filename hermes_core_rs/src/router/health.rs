//! Per-account health: EWMAs of success and latency, and a circuit breaker.
//!
//! ```text
//!      N consecutive failures, or failure rate over the last outcomes >= threshold
//!  Closed ─────────────────────────────────────────────────────────▶ Open
//!    ▲                                                                │ cooldown elapsed
//!    │ success                    failure                             ▼ (measured with `now`)
//!    └─────────────────────── HalfOpen ───────────────────────▶ Open again
//! ```
//!
//! Half-open admits one probe at a time: the router marks the account when it
//! picks it, and until the probe's outcome is recorded (or `probe_timeout_ms`
//! passes, so a lost outcome cannot wedge the account) the account is not
//! offered again. No clock is read: every transition takes `now_ms`.
//!
//! The failure-rate trip counts the failures among the last `failure_window`
//! outcomes (20 by default) rather than reading the success EWMA: with the EWMA's
//! weight of 0.2, three failures in a row took a provider failing one send in ten
//! past 50%, so a busy account's breaker opened every few thousand sends on noise.
//! Over 20 outcomes, 10 failures at a true rate of 10% have a chance of about 7 in
//! a million. The EWMAs are still kept and reported (`health`, `explain`).

/// Tuning of health tracking, shared by every account of a router.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthConfig {
    /// Weight of the newest outcome in the EWMAs (0 < alpha <= 1).
    pub ewma_alpha: f64,
    /// Consecutive failures that open the breaker.
    pub consecutive_failures: u32,
    /// Failure rate, over the last `failure_window` outcomes, that opens the breaker...
    pub failure_rate: f64,
    /// ...once at least this many outcomes were seen since it last closed.
    pub min_samples: u32,
    /// How many of the latest outcomes the failure rate is taken over (1..=64).
    pub failure_window: u32,
    /// Time an open breaker waits before letting a probe through.
    pub cooldown_ms: i64,
    /// Time after which an unanswered probe no longer blocks the next one.
    pub probe_timeout_ms: i64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            ewma_alpha: 0.2,
            consecutive_failures: 5,
            failure_rate: 0.5,
            min_samples: 10,
            failure_window: 20,
            cooldown_ms: 30_000,
            probe_timeout_ms: 30_000,
        }
    }
}

/// The most outcomes a failure window holds (one bit each).
pub const MAX_FAILURE_WINDOW: u32 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaker {
    Closed,
    Open { since_ms: i64 },
    HalfOpen { probe_sent_ms: Option<i64> },
}

impl Breaker {
    pub fn name(self) -> &'static str {
        match self {
            Breaker::Closed => "closed",
            Breaker::Open { .. } => "open",
            Breaker::HalfOpen { .. } => "half_open",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// EWMA of outcomes, 1.0 = every recent send succeeded.
    pub success_ewma: f64,
    /// EWMA of reported latencies; `None` until one is reported.
    pub latency_ewma_ms: Option<f64>,
    /// Outcomes since the breaker last closed.
    pub samples: u32,
    pub consecutive_failures: u32,
    /// The latest outcomes, newest in the lowest bit, 1 for a failure.
    recent_failures: u64,
    breaker: Breaker,
}

impl Default for Health {
    fn default() -> Self {
        // A new account is presumed healthy: it has to earn its way out.
        Health {
            success_ewma: 1.0,
            latency_ewma_ms: None,
            samples: 0,
            consecutive_failures: 0,
            recent_failures: 0,
            breaker: Breaker::Closed,
        }
    }
}

impl Health {
    /// The share of failures among the last `failure_window` outcomes since the breaker
    /// last closed (fewer while fewer were seen); 0 before any.
    pub fn failure_rate(&self, cfg: &HealthConfig) -> f64 {
        let n = self.samples.min(cfg.failure_window.clamp(1, MAX_FAILURE_WINDOW));
        if n == 0 {
            return 0.0;
        }
        let mask = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        f64::from((self.recent_failures & mask).count_ones()) / f64::from(n)
    }

    /// The breaker as of `now`: an open breaker whose cooldown has elapsed is
    /// half-open with no probe sent.
    pub fn breaker_at(&self, cfg: &HealthConfig, now_ms: i64) -> Breaker {
        match self.breaker {
            Breaker::Open { since_ms } if now_ms >= since_ms.saturating_add(cfg.cooldown_ms) => {
                Breaker::HalfOpen { probe_sent_ms: None }
            }
            b => b,
        }
    }

    /// Whether the account may be offered a send at `now`.
    pub fn admits(&self, cfg: &HealthConfig, now_ms: i64) -> bool {
        match self.breaker_at(cfg, now_ms) {
            Breaker::Closed => true,
            Breaker::Open { .. } => false,
            Breaker::HalfOpen { probe_sent_ms } => {
                probe_sent_ms.is_none_or(|sent| now_ms >= sent.saturating_add(cfg.probe_timeout_ms))
            }
        }
    }

    /// When an open breaker will let a probe through.
    pub fn reopens_at(&self, cfg: &HealthConfig) -> Option<i64> {
        match self.breaker {
            Breaker::Open { since_ms } => Some(since_ms.saturating_add(cfg.cooldown_ms)),
            _ => None,
        }
    }

    /// The router picked this account at `now`; a half-open account is now
    /// waiting for its probe's outcome.
    pub fn mark_picked(&mut self, cfg: &HealthConfig, now_ms: i64) {
        if let Breaker::HalfOpen { .. } = self.breaker_at(cfg, now_ms) {
            self.breaker = Breaker::HalfOpen { probe_sent_ms: Some(now_ms) };
        }
    }

    pub fn record(&mut self, cfg: &HealthConfig, success: bool, latency_ms: Option<f64>, now_ms: i64) {
        let a = cfg.ewma_alpha;
        debug_assert!(a > 0.0 && a <= 1.0);
        self.success_ewma = a * f64::from(u8::from(success)) + (1.0 - a) * self.success_ewma;
        if let Some(l) = latency_ms.filter(|l| l.is_finite() && *l >= 0.0) {
            self.latency_ewma_ms = Some(self.latency_ewma_ms.map_or(l, |prev| a * l + (1.0 - a) * prev));
        }
        self.samples = self.samples.saturating_add(1);
        self.consecutive_failures = if success { 0 } else { self.consecutive_failures.saturating_add(1) };
        self.recent_failures = (self.recent_failures << 1) | u64::from(!success);

        self.breaker = match (self.breaker_at(cfg, now_ms), success) {
            (Breaker::Closed, true) => Breaker::Closed,
            (Breaker::Closed, false) => {
                let rate_tripped = self.samples >= cfg.min_samples && self.failure_rate(cfg) >= cfg.failure_rate;
                if self.consecutive_failures >= cfg.consecutive_failures || rate_tripped {
                    Breaker::Open { since_ms: now_ms }
                } else {
                    Breaker::Closed
                }
            }
            (Breaker::HalfOpen { .. }, true) => {
                // A fresh start: the failure-rate trip needs min_samples again.
                self.samples = 0;
                self.recent_failures = 0;
                Breaker::Closed
            }
            (Breaker::HalfOpen { .. }, false) => Breaker::Open { since_ms: now_ms },
            // Late outcomes of sends made before the trip move the EWMAs only.
            (open @ Breaker::Open { .. }, _) => open,
        };
    }

    pub fn breaker(&self) -> Breaker {
        self.breaker
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: HealthConfig = HealthConfig {
        ewma_alpha: 0.2,
        consecutive_failures: 3,
        failure_rate: 0.5,
        min_samples: 10,
        failure_window: 20,
        cooldown_ms: 1_000,
        probe_timeout_ms: 500,
    };

    /// The defaults' trips: five in a row, or half of the last 20.
    const CFG_FIVE: HealthConfig = HealthConfig { consecutive_failures: 5, ..CFG };

    #[test]
    fn consecutive_failures_open_the_breaker_and_a_success_resets_the_count() {
        let mut h = Health::default();
        h.record(&CFG, false, None, 0);
        h.record(&CFG, false, None, 1);
        h.record(&CFG, true, None, 2);
        h.record(&CFG, false, None, 3);
        h.record(&CFG, false, None, 4);
        assert_eq!(h.breaker(), Breaker::Closed);
        h.record(&CFG, false, None, 5);
        assert_eq!(h.breaker(), Breaker::Open { since_ms: 5 });
        assert!(!h.admits(&CFG, 5));
    }

    #[test]
    fn failure_rate_opens_the_breaker_once_there_are_enough_samples() {
        let cfg = HealthConfig { consecutive_failures: 100, ..CFG };
        let mut h = Health::default();
        // Success, failure, ...: 4 failures in 9 outcomes, then the 10th sample is the
        // 5th failure: half of the outcomes seen.
        let mut t = 0;
        for _ in 0..4 {
            h.record(&cfg, true, None, t);
            h.record(&cfg, false, None, t + 1);
            t += 2;
        }
        h.record(&cfg, true, None, t);
        assert_eq!(h.breaker(), Breaker::Closed);
        h.record(&cfg, false, None, t + 1);
        assert_eq!(h.failure_rate(&cfg), 0.5);
        assert_eq!(h.breaker(), Breaker::Open { since_ms: t + 1 });
    }

    #[test]
    fn runs_of_failures_at_a_low_rate_do_not_open_the_breaker() {
        // One failure in five, in runs of four: the EWMA of weight 0.2 this used to read
        // went past 50% on every run; the rate over 20 outcomes stays at 20%.
        let mut h = Health::default();
        let mut t = 0;
        for _ in 0..50 {
            for i in 0..20 {
                h.record(&CFG_FIVE, i < 16, None, t);
                t += 1;
            }
            assert_eq!(h.breaker(), Breaker::Closed, "at {t}, rate {}", h.failure_rate(&CFG_FIVE));
        }
        assert!(1.0 - h.success_ewma >= 0.5, "the EWMA alone would have tripped");
        assert!((h.failure_rate(&CFG_FIVE) - 0.2).abs() < 1e-9);
    }

    #[test]
    fn failures_that_left_the_window_no_longer_count() {
        let cfg = HealthConfig { consecutive_failures: 100, ..CFG };
        let mut h = Health::default();
        let mut t = 0;
        let mut rec = |h: &mut Health, ok: bool| {
            h.record(&cfg, ok, None, t);
            t += 1;
        };
        for _ in 0..9 {
            rec(&mut h, false);
            rec(&mut h, true);
            rec(&mut h, true);
        }
        // One failure in three: under half. Then 20 successes push them all out, and 9
        // failures among the next 20 stay under half again.
        assert_eq!(h.breaker(), Breaker::Closed);
        for _ in 0..20 {
            rec(&mut h, true);
        }
        assert_eq!(h.failure_rate(&cfg), 0.0);
        for i in 0..20 {
            rec(&mut h, i % 2 == 0 || i >= 18);
        }
        assert_eq!(h.breaker(), Breaker::Closed, "rate {}", h.failure_rate(&cfg));
        assert!((h.failure_rate(&cfg) - 0.45).abs() < 1e-9);
        rec(&mut h, false); // a success leaves the window: 10 failures of the last 20
        assert!(matches!(h.breaker(), Breaker::Open { .. }));
    }

    #[test]
    fn closing_after_a_probe_starts_the_window_afresh() {
        let cfg = HealthConfig { consecutive_failures: 100, ..CFG };
        let mut h = Health::default();
        for t in 0..10 {
            h.record(&cfg, t % 2 == 0, None, t);
        }
        assert!(matches!(h.breaker(), Breaker::Open { .. }));
        h.mark_picked(&cfg, 2_000);
        h.record(&cfg, true, None, 2_001);
        assert_eq!(h.breaker(), Breaker::Closed);
        assert_eq!(h.failure_rate(&cfg), 0.0);
        for t in 0..9 {
            h.record(&cfg, false, None, 3_000 + t);
        }
        assert_eq!(h.breaker(), Breaker::Closed, "9 samples since closing < min_samples");
    }

    #[test]
    fn the_rate_trip_waits_for_min_samples() {
        let cfg = HealthConfig { consecutive_failures: 100, ..CFG };
        let mut h = Health::default();
        for t in 0..9 {
            h.record(&cfg, false, None, t);
        }
        assert_eq!(h.breaker(), Breaker::Closed, "9 samples < min_samples");
        h.record(&cfg, false, None, 9);
        assert_eq!(h.breaker(), Breaker::Open { since_ms: 9 });
    }

    #[test]
    fn open_becomes_half_open_after_the_cooldown_then_closes_on_success() {
        let mut h = Health::default();
        for t in 0..3 {
            h.record(&CFG, false, None, t);
        }
        assert_eq!(h.breaker_at(&CFG, 1_001), Breaker::Open { since_ms: 2 });
        assert_eq!(h.reopens_at(&CFG), Some(1_002));
        assert_eq!(h.breaker_at(&CFG, 1_002), Breaker::HalfOpen { probe_sent_ms: None });
        assert!(h.admits(&CFG, 1_002));
        h.mark_picked(&CFG, 1_002);
        assert!(!h.admits(&CFG, 1_003), "one probe at a time");
        assert!(h.admits(&CFG, 1_502), "a lost probe stops blocking after probe_timeout");
        h.record(&CFG, true, Some(80.0), 1_100);
        assert_eq!(h.breaker(), Breaker::Closed);
        assert_eq!(h.samples, 0);
    }

    #[test]
    fn a_failed_probe_reopens_the_breaker_for_a_new_cooldown() {
        let mut h = Health::default();
        for t in 0..3 {
            h.record(&CFG, false, None, t);
        }
        h.mark_picked(&CFG, 2_000);
        h.record(&CFG, false, None, 2_010);
        assert_eq!(h.breaker(), Breaker::Open { since_ms: 2_010 });
        assert!(!h.admits(&CFG, 3_009));
        assert!(h.admits(&CFG, 3_010));
    }

    #[test]
    fn late_outcomes_while_open_move_the_ewma_but_not_the_breaker() {
        let mut h = Health::default();
        for t in 0..3 {
            h.record(&CFG, false, None, t);
        }
        let before = h.success_ewma;
        h.record(&CFG, true, None, 10);
        assert_eq!(h.breaker(), Breaker::Open { since_ms: 2 });
        assert!(h.success_ewma > before);
    }

    #[test]
    fn ewma_tracks_success_and_latency() {
        let mut h = Health::default();
        h.record(&CFG, true, Some(100.0), 0);
        assert_eq!(h.latency_ewma_ms, Some(100.0));
        h.record(&CFG, false, Some(200.0), 1);
        assert!((h.latency_ewma_ms.unwrap() - 120.0).abs() < 1e-9);
        assert!((h.success_ewma - 0.8).abs() < 1e-9);
        h.record(&CFG, true, Some(f64::NAN), 2);
        assert!((h.latency_ewma_ms.unwrap() - 120.0).abs() < 1e-9, "NaN latency is ignored");
    }
}
