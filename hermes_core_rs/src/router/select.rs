//! The selection rule and its explanation (see `mod.rs`).

use super::health::Breaker;
use super::Router;
use crate::validate::Channel;

/// Why a candidate was or was not chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Chosen,
    /// Eligible at the best priority, but the weighted draw went elsewhere.
    NotDrawn,
    /// Eligible, but an account with a lower priority number was eligible.
    LowerPriority,
    /// The caller excluded it (already tried for this message).
    Excluded,
    /// No cost for the destination country and no default cost.
    NoRouteToCountry,
    /// The breaker is open; a probe is let through from `until_ms`.
    CircuitOpen { until_ms: i64 },
    /// Half-open with a probe already in flight.
    ProbeInFlight,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Chosen => "chosen",
            Verdict::NotDrawn => "not_drawn",
            Verdict::LowerPriority => "lower_priority",
            Verdict::Excluded => "excluded",
            Verdict::NoRouteToCountry => "no_route_to_country",
            Verdict::CircuitOpen { .. } => "circuit_open",
            Verdict::ProbeInFlight => "probe_in_flight",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub account_id: String,
    pub priority: u32,
    pub weight: u32,
    pub cost: Option<f64>,
    pub breaker: Breaker,
    pub success_ewma: f64,
    pub latency_ewma_ms: Option<f64>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub chosen: Option<String>,
    /// Every account of the tenant and channel, in configuration order.
    pub candidates: Vec<Candidate>,
}

/// A stable 64-bit seed from a message id and attempt number: FNV-1a over the
/// id, then the attempt, through the splitmix64 finaliser. Stable across
/// processes and releases (std's hasher is neither), so a replay picks the
/// same account.
pub fn seed_for(message_id: &str, attempt: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in message_id.as_bytes().iter().chain(&attempt.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Router {
    /// Pick an account for one send and mark a half-open pick as its probe.
    pub fn select(
        &mut self,
        tenant: &str,
        channel: Channel,
        country: Option<[u8; 2]>,
        exclude: &[&str],
        seed: u64,
        now_ms: i64,
    ) -> Selection {
        let selection = self.explain(tenant, channel, country, exclude, seed, now_ms);
        if let Some(id) = &selection.chosen {
            let cfg = self.config;
            if let Some(&i) = self.by_id.get(id) {
                self.accounts[i].health.mark_picked(&cfg, now_ms);
            }
        }
        selection
    }

    /// What `select` would pick, and why, without changing any state.
    pub fn explain(
        &self,
        tenant: &str,
        channel: Channel,
        country: Option<[u8; 2]>,
        exclude: &[&str],
        seed: u64,
        now_ms: i64,
    ) -> Selection {
        let cfg = &self.config;
        let indices: &[usize] = self.by_route.get(&(tenant.to_string(), channel)).map_or(&[], Vec::as_slice);
        let mut candidates: Vec<Candidate> = indices
            .iter()
            .map(|&i| {
                let a = &self.accounts[i];
                let cost = a.spec.cost_for(country);
                let breaker = a.health.breaker_at(cfg, now_ms);
                let verdict = if exclude.contains(&a.spec.id.as_str()) {
                    Verdict::Excluded
                } else if cost.is_none() {
                    Verdict::NoRouteToCountry
                } else if let Breaker::Open { .. } = breaker {
                    Verdict::CircuitOpen { until_ms: a.health.reopens_at(cfg).unwrap_or(now_ms) }
                } else if !a.health.admits(cfg, now_ms) {
                    Verdict::ProbeInFlight
                } else {
                    Verdict::NotDrawn
                };
                Candidate {
                    account_id: a.spec.id.clone(),
                    priority: a.spec.priority,
                    weight: a.spec.weight,
                    cost,
                    breaker,
                    success_ewma: a.health.success_ewma,
                    latency_ewma_ms: a.health.latency_ewma_ms,
                    verdict,
                }
            })
            .collect();

        let Some(best) = candidates.iter().filter(|c| c.verdict == Verdict::NotDrawn).map(|c| c.priority).min() else {
            return Selection { chosen: None, candidates };
        };
        let mut level: Vec<usize> = Vec::new();
        for (k, c) in candidates.iter_mut().enumerate() {
            if c.verdict == Verdict::NotDrawn {
                if c.priority == best {
                    level.push(k);
                } else {
                    c.verdict = Verdict::LowerPriority;
                }
            }
        }
        // Cheapest first, then by id: a stable order for the draw, and the
        // winner when no account in the level has a weight.
        level.sort_by(|&x, &y| {
            let (cx, cy) = (&candidates[x], &candidates[y]);
            cx.cost.unwrap_or(f64::INFINITY)
                .total_cmp(&cy.cost.unwrap_or(f64::INFINITY))
                .then_with(|| cx.account_id.cmp(&cy.account_id))
        });
        let total: u64 = level.iter().map(|&k| u64::from(candidates[k].weight)).sum();
        let pick = if total == 0 {
            level[0]
        } else {
            let mut ticket = mix(seed) % total;
            *level
                .iter()
                .find(|&&k| {
                    let w = u64::from(candidates[k].weight);
                    if ticket < w {
                        true
                    } else {
                        ticket -= w;
                        false
                    }
                })
                .expect("the ticket is below the total weight")
        };
        candidates[pick].verdict = Verdict::Chosen;
        let chosen = Some(candidates[pick].account_id.clone());
        Selection { chosen, candidates }
    }
}
