//! Limits on what peers can make the engine hold: live transactions (the
//! overload threshold), calls in progress, legs of one call, devices of one
//! user. This module counts each time one is reached, for the metrics, and
//! logs it at most once a minute per limit, so that a flood leaves a trace
//! without drowning the log. It refuses nothing itself: the caller compares
//! with its configured limit and answers the peer.

use std::time::{Duration, Instant};

/// One of the engine's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `overload_transactions`: new INVITEs (and later REGISTERs) get 503.
    Transactions,
    /// `max_calls`: new INVITEs get 503.
    Calls,
    /// `max_legs_per_call`: no more devices ring for that call.
    LegsPerCall,
    /// `max_bindings_per_user`: the REGISTER adding one more gets 403.
    BindingsPerUser,
}

impl Limit {
    pub const ALL: [Limit; 4] = [
        Limit::Transactions,
        Limit::Calls,
        Limit::LegsPerCall,
        Limit::BindingsPerUser,
    ];

    /// The name in metrics (`limit` label) and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Transactions => "transactions",
            Limit::Calls => "calls",
            Limit::LegsPerCall => "legs_per_call",
            Limit::BindingsPerUser => "bindings_per_user",
        }
    }
}

/// How often a limit being hit is logged, at most.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Times each limit was reached since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitCounts([u64; Limit::ALL.len()]);

impl LimitCounts {
    pub fn get(&self, limit: Limit) -> u64 {
        self.0[limit as usize]
    }
}

/// Times each limit was reached since start, and when each was last logged.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LimitHits {
    hits: [u64; Limit::ALL.len()],
    logged: [Option<Instant>; Limit::ALL.len()],
}

impl LimitHits {
    /// `limit` was reached: `value` of `max`.
    pub(crate) fn hit(&mut self, now: Instant, limit: Limit, value: usize, max: usize) {
        let i = limit as usize;
        self.hits[i] += 1;
        let due = self.logged[i].is_none_or(|at| now.saturating_duration_since(at) >= LOG_EVERY);
        if due {
            tracing::warn!(
                limit = limit.as_str(),
                value,
                max,
                hits_so_far = self.hits[i],
                "limit reached (logged once a minute at most)"
            );
            self.logged[i] = Some(now);
        }
    }

    pub(crate) fn counts(&self) -> LimitCounts {
        LimitCounts(self.hits)
    }

    /// When `limit` was last logged (for the tests, in `tests/overload.rs`).
    #[cfg(test)]
    pub(crate) fn logged_at(&self, limit: Limit) -> Option<Instant> {
        self.logged[limit as usize]
    }
}

/// How often, while overloaded, who fills the transaction table is looked
/// at again.
/// (A flood admitted for that long adds that much of itself.)
const HEAVY_EVERY: Duration = Duration::from_millis(100);

/// The sources that fill the transaction table while it is past the
/// overload threshold: each holding a quarter or more of a sample of its
/// server transactions. Their new INVITEs are shed first, so that a flood
/// from one carrier or attacker does not shut everyone else out; past a
/// second threshold every new INVITE is shed.
#[derive(Debug, Default)]
pub(crate) struct HeavySources {
    looked: Option<Instant>,
    heavy: Vec<std::net::IpAddr>,
}

impl HeavySources {
    /// Whether `ip` is one of them; `sample` (live server transactions by
    /// source, and their total) is taken at most every 100 ms.
    pub(crate) fn is_heavy(
        &mut self,
        now: Instant,
        ip: std::net::IpAddr,
        sample: impl FnOnce() -> (std::collections::HashMap<std::net::IpAddr, u32>, u32),
    ) -> bool {
        let stale = self
            .looked
            .is_none_or(|at| now.saturating_duration_since(at) >= HEAVY_EVERY);
        if stale {
            let (by_source, total) = sample();
            self.heavy = by_source
                .into_iter()
                .filter(|&(_, n)| n.saturating_mul(4) >= total)
                .map(|(ip, _)| ip)
                .collect();
            self.looked = Some(now);
            if !self.heavy.is_empty() {
                tracing::debug!(heavy = ?self.heavy, total, "sources filling the transaction table");
            }
        }
        self.heavy.contains(&ip)
    }
}
