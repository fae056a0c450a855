//! The guard: per-source counters and temporary bans, like Kamailio's pike
//! with a fail2ban built in. A source that fails authentication (answers a
//! challenge sent to that very address with wrong credentials, or for a
//! user that does not exist or is not active) `max_failures` times within
//! the window is banned: its datagrams are dropped unanswered. Each new ban
//! of the same source lasts longer (the `ban_times` ladder, the last step
//! repeating); a source quiet for the longest step starts again from the
//! first. Requests past `max_requests_per_second` are dropped, but do not
//! ban: a UDP source address can be forged, and a ban on a forged flood
//! would lock out the address's real owner.
//!
//! Sources are keyed by address, IPv6 by its /64 (one host's whole prefix).
//!
//! Trunk sources and `[security] allow` are never banned (the caller
//! checks). Time is passed in; it holds a bounded table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use directory::Security;

/// Sources tracked at most; past it, the quiet ones are forgotten first.
const MAX_SOURCES: usize = 65_536;

#[derive(Clone, Copy, Debug)]
struct Source {
    /// Authentication failures in the window that started at `window`.
    window: Instant,
    failures: u32,
    /// Requests in the second that started at `second`.
    second: Instant,
    requests: u32,
    /// Bans so far (the ladder step of the next one), and the last one's end.
    bans: u32,
    banned_until: Option<Instant>,
    /// When the last ban ended (for the ladder's reset).
    last_ban_end: Option<Instant>,
}

/// The key of a source: the IPv4 address, or the IPv6 /64.
pub(crate) fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// A ban that just started, for the log and the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewBan {
    pub source: IpAddr,
    pub length: Duration,
    /// 1 for the first ban of this source, 2 for the next...
    pub count: u32,
    pub why: &'static str,
}

/// A ban in force, for the admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanInfo {
    pub source: IpAddr,
    pub remaining: Duration,
    pub count: u32,
}

#[derive(Default)]
pub(crate) struct Guard {
    sources: HashMap<IpAddr, Source>,
    /// Sources banned now (a fast "no ban at all" check for every datagram).
    banned: usize,
    pub(crate) bans_total: u64,
    pub(crate) dropped: u64,
}

impl Guard {
    /// Whether datagrams from `ip` are dropped now.
    #[inline]
    pub(crate) fn is_banned(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.banned == 0 {
            return false;
        }
        let Some(source) = self.sources.get_mut(&source_key(ip)) else {
            return false;
        };
        match source.banned_until {
            Some(until) if now < until => {
                self.dropped += 1;
                true
            }
            Some(until) => {
                source.banned_until = None;
                source.last_ban_end = Some(until);
                self.banned = self.banned.saturating_sub(1);
                false
            }
            None => false,
        }
    }

    /// The source's counters; `None` when the table is full of sources
    /// banned now (a new one is then not tracked: bounded memory first).
    fn source(&mut self, now: Instant, ip: IpAddr) -> Option<&mut Source> {
        let key = source_key(ip);
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&key) {
            // Forget the sources neither banned nor recently failing, then
            // the failing ones.
            self.sources
                .retain(|_, s| s.banned_until.is_some_and(|u| u > now) || s.failures > 0);
            if self.sources.len() >= MAX_SOURCES {
                self.sources
                    .retain(|_, s| s.banned_until.is_some_and(|u| u > now));
            }
            self.banned = self
                .sources
                .values()
                .filter(|s| s.banned_until.is_some())
                .count();
            if self.sources.len() >= MAX_SOURCES {
                return None;
            }
        }
        Some(self.sources.entry(key).or_insert(Source {
            window: now,
            failures: 0,
            second: now,
            requests: 0,
            bans: 0,
            banned_until: None,
            last_ban_end: None,
        }))
    }

    /// A request from `ip` (not a trunk, not allowed): whether it is over
    /// the source's rate and must be dropped.
    pub(crate) fn over_rate(&mut self, now: Instant, ip: IpAddr, rules: &Security) -> bool {
        if rules.max_requests_per_second == 0 {
            return false;
        }
        let Some(source) = self.source(now, ip) else {
            return false;
        };
        if now.saturating_duration_since(source.second) >= Duration::from_secs(1) {
            source.second = now;
            source.requests = 0;
        }
        source.requests = source.requests.saturating_add(1);
        if source.requests > rules.max_requests_per_second {
            self.dropped += 1;
            return true;
        }
        false
    }

    /// An authentication failure (or a request for an unknown user).
    pub(crate) fn failure(&mut self, now: Instant, ip: IpAddr, rules: &Security) -> Option<NewBan> {
        let source = self.source(now, ip)?;
        if now.saturating_duration_since(source.window) >= rules.failure_window {
            source.window = now;
            source.failures = 0;
        }
        source.failures += 1;
        if source.failures >= rules.max_failures {
            source.failures = 0;
            return self.ban(now, ip, rules, "authentication failures");
        }
        None
    }

    fn ban(
        &mut self,
        now: Instant,
        ip: IpAddr,
        rules: &Security,
        why: &'static str,
    ) -> Option<NewBan> {
        let longest = rules
            .ban_times
            .last()
            .copied()
            .unwrap_or(Duration::from_secs(60));
        let source = self.source(now, ip)?;
        // A long quiet spell since the last ban starts the ladder again.
        let last_end = source.banned_until.or(source.last_ban_end);
        if last_end.is_some_and(|end| now.saturating_duration_since(end) > longest) {
            source.bans = 0;
        }
        let step = (source.bans as usize).min(rules.ban_times.len().saturating_sub(1));
        let length = rules.ban_times.get(step).copied().unwrap_or(longest);
        let was_banned = source.banned_until.is_some_and(|u| u > now);
        source.bans += 1;
        source.banned_until = Some(now + length);
        let count = source.bans;
        if !was_banned {
            self.banned += 1;
        }
        self.bans_total += 1;
        Some(NewBan {
            source: source_key(ip),
            length,
            count,
            why,
        })
    }

    /// Lifts the ban of `ip`; whether there was one.
    pub(crate) fn lift(&mut self, now: Instant, ip: IpAddr) -> bool {
        match self.sources.get_mut(&source_key(ip)) {
            Some(source) if source.banned_until.is_some_and(|u| u > now) => {
                source.banned_until = None;
                source.bans = 0;
                source.failures = 0;
                self.banned = self.banned.saturating_sub(1);
                true
            }
            _ => false,
        }
    }

    /// Bans in force.
    pub(crate) fn list(&self, now: Instant) -> Vec<BanInfo> {
        let mut bans: Vec<BanInfo> = self
            .sources
            .iter()
            .filter_map(|(ip, s)| {
                let until = s.banned_until.filter(|u| *u > now)?;
                Some(BanInfo {
                    source: *ip,
                    remaining: until - now,
                    count: s.bans,
                })
            })
            .collect();
        bans.sort_by_key(|b| b.source);
        bans
    }

    pub(crate) fn active(&self, now: Instant) -> usize {
        self.sources
            .values()
            .filter(|s| s.banned_until.is_some_and(|u| u > now))
            .count()
    }
}

#[cfg(test)]
mod tests;
