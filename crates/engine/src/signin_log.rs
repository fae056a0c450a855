//! Sign-ins made visible: a device that signs in or out, and a refused
//! REGISTER (or INVITE from a user), are logged at info with the source,
//! the user name and the reason, so that an administrator whose softphone
//! does not sign in has a line to read. Each kind has a budget per source
//! and per window (refusals: one a minute; sign-in changes: ten per ten
//! seconds), so a guesser or a REGISTER storm cannot flood the log; the
//! next line logged says how many were left out.
//!
//! It never logs a secret, and the reason is for the log only: the answer
//! on the wire is the same for every failure (no user enumeration).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Sources remembered at most (a flood from many addresses forgets old ones).
const MAX_SOURCES: usize = 4096;

/// A per-source budget of lines per window.
struct Budget {
    window: Duration,
    lines: u32,
    /// Per source: the window's start, lines logged in it, lines left out.
    sources: HashMap<IpAddr, (Instant, u32, u64)>,
}

impl Budget {
    fn new(window: Duration, lines: u32) -> Budget {
        Budget {
            window,
            lines,
            sources: HashMap::new(),
        }
    }

    /// `Some(left out since the last line)` when a line may be logged now.
    fn take(&mut self, now: Instant, source: IpAddr) -> Option<u64> {
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&source) {
            let window = self.window;
            self.sources
                .retain(|_, (start, _, _)| now.saturating_duration_since(*start) < window);
            if self.sources.len() >= MAX_SOURCES {
                self.sources.clear();
            }
        }
        let entry = self.sources.entry(source).or_insert((now, 0, 0));
        if now.saturating_duration_since(entry.0) >= self.window {
            entry.0 = now;
            entry.1 = 0;
        }
        if entry.1 < self.lines {
            entry.1 += 1;
            Some(std::mem::take(&mut entry.2))
        } else {
            entry.2 += 1;
            None
        }
    }
}

pub(crate) struct SignInLog {
    refusals: Budget,
    changes: Budget,
}

impl Default for SignInLog {
    fn default() -> Self {
        SignInLog {
            refusals: Budget::new(Duration::from_secs(60), 1),
            changes: Budget::new(Duration::from_secs(10), 10),
        }
    }
}

impl SignInLog {
    /// A refused REGISTER or INVITE.
    pub(crate) fn refused(
        &mut self,
        now: Instant,
        source: IpAddr,
        user: &str,
        method: &str,
        reason: &str,
    ) {
        let Some(suppressed) = self.refusals.take(now, source) else {
            return;
        };
        // One fixed shape, for people and for tools such as fail2ban.
        tracing::info!(
            %source,
            user = %user.escape_debug(),
            method,
            reason,
            suppressed,
            "authentication refused"
        );
    }

    /// A REGISTER that added or removed a device.
    pub(crate) fn changed(
        &mut self,
        now: Instant,
        source: SocketAddr,
        user: &str,
        transport: &str,
        contacts: &[&str],
    ) {
        let Some(suppressed) = self.changes.take(now, source.ip()) else {
            return;
        };
        tracing::info!(
            user,
            %source,
            transport,
            devices = contacts.len(),
            ?contacts,
            suppressed,
            "sign-in changed"
        );
    }
}

#[cfg(test)]
mod tests;
