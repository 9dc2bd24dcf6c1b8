//! Provider routing: which of a tenant's provider accounts gets a send.
//!
//! Per tenant and channel there are provider accounts, each with a priority
//! (lower number = preferred), a weight, and a cost per destination country
//! (with an optional default; an account without a cost for a country and no
//! default does not serve it). Health comes from recorded outcomes
//! (`health.rs`: EWMAs and a circuit breaker).
//!
//! `select` is deterministic for a given seed (the message id and attempt):
//! 1. drop the accounts the caller excludes (those already tried), those that
//!    do not serve the country, and those whose breaker does not admit a send;
//! 2. keep the lowest priority number among the rest;
//! 3. within it, draw by weight with the seed, walking the candidates
//!    cheapest first (then by id) so the draw is stable; if every weight there
//!    is zero (standby accounts), the cheapest wins.
//!
//! Every decision can be explained: each candidate with its verdict.

pub mod health;
mod select;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::validate::Channel;
pub use health::{Breaker, Health, HealthConfig, MAX_FAILURE_WINDOW};
pub use select::{seed_for, Candidate, Selection, Verdict};

/// A provider account as the tenant configured it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSpec {
    pub id: String,
    pub tenant: String,
    pub channel: Channel,
    pub priority: u32,
    pub weight: u32,
    /// Cost of one send to a country with no entry in `costs`; `None` means
    /// the account serves only the countries listed.
    pub default_cost: Option<f64>,
    /// ISO 3166-1 alpha-2 country -> cost of one send there.
    pub costs: Vec<([u8; 2], f64)>,
}

impl AccountSpec {
    pub fn cost_for(&self, country: Option<[u8; 2]>) -> Option<f64> {
        country
            .and_then(|c| self.costs.iter().find(|(k, _)| *k == c).map(|(_, cost)| *cost))
            .or(self.default_cost)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) spec: AccountSpec,
    pub(crate) health: Health,
}

/// The accounts of every tenant, with their health.
#[derive(Debug, Clone, Default)]
pub struct Router {
    pub(crate) config: HealthConfig,
    pub(crate) accounts: Vec<Account>,
    by_id: HashMap<String, usize>,
    pub(crate) by_route: HashMap<(String, Channel), Vec<usize>>,
}

impl Router {
    pub fn new(config: HealthConfig) -> Router {
        Router { config, ..Router::default() }
    }

    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// Add an account, or replace the configuration of an existing id while
    /// keeping its health.
    pub fn add_account(&mut self, spec: AccountSpec) {
        if let Some(&i) = self.by_id.get(&spec.id) {
            let old = &self.accounts[i].spec;
            let key = (old.tenant.clone(), old.channel);
            if key != (spec.tenant.clone(), spec.channel) {
                if let Some(v) = self.by_route.get_mut(&key) {
                    v.retain(|&j| j != i);
                }
                self.by_route.entry((spec.tenant.clone(), spec.channel)).or_default().push(i);
            }
            self.accounts[i].spec = spec;
            return;
        }
        let i = self.accounts.len();
        self.by_id.insert(spec.id.clone(), i);
        self.by_route.entry((spec.tenant.clone(), spec.channel)).or_default().push(i);
        self.accounts.push(Account { spec, health: Health::default() });
    }

    /// Record the outcome of a send through `account_id`. Returns false for
    /// an unknown account.
    pub fn record_outcome(&mut self, account_id: &str, success: bool, latency_ms: Option<f64>, now_ms: i64) -> bool {
        let Some(&i) = self.by_id.get(account_id) else { return false };
        let cfg = self.config;
        self.accounts[i].health.record(&cfg, success, latency_ms, now_ms);
        true
    }

    pub fn health(&self, account_id: &str) -> Option<&Health> {
        self.by_id.get(account_id).map(|&i| &self.accounts[i].health)
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}
