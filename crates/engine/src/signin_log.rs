//! Sign-ins made visible: refused REGISTERs (and INVITEs from users) are
//! logged at info with the source, the user name and the reason, at most
//! once a minute per source, so that an administrator whose softphone does
//! not sign in has a line to read and a guesser cannot flood the log.
//!
//! It never logs a secret, and the reason is for the log only: the answer
//! on the wire is the same for every failure (no user enumeration).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Quiet time per source after a logged refusal.
const INTERVAL: Duration = Duration::from_secs(60);
/// Sources remembered at most (a flood from many addresses forgets old ones).
const MAX_SOURCES: usize = 4096;

#[derive(Default)]
pub(crate) struct SignInLog {
    /// When each source was last logged, and refusals not logged since.
    last: HashMap<IpAddr, (Instant, u64)>,
}

impl SignInLog {
    /// Logs a refusal unless this source was logged within the interval.
    pub(crate) fn refused(
        &mut self,
        now: Instant,
        source: IpAddr,
        user: &str,
        method: &str,
        reason: &str,
    ) {
        if let Some((at, quiet)) = self.last.get_mut(&source) {
            if now.saturating_duration_since(*at) < INTERVAL {
                *quiet += 1;
                return;
            }
            let suppressed = std::mem::take(quiet);
            *at = now;
            log(source, user, method, reason, suppressed);
            return;
        }
        if self.last.len() >= MAX_SOURCES {
            self.last
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < INTERVAL);
            if self.last.len() >= MAX_SOURCES {
                self.last.clear();
            }
        }
        self.last.insert(source, (now, 0));
        log(source, user, method, reason, 0);
    }
}

fn log(source: IpAddr, user: &str, method: &str, reason: &str, suppressed: u64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods)] // a base instant; the test moves time by hand
    fn one_line_per_source_per_interval() {
        let mut log = SignInLog::default();
        let t0 = Instant::now();
        let a: IpAddr = [127, 0, 0, 2].into();
        log.refused(t0, a, "alice", "REGISTER", "wrong password");
        log.refused(
            t0 + Duration::from_secs(1),
            a,
            "alice",
            "REGISTER",
            "wrong password",
        );
        assert_eq!(log.last[&a], (t0, 1));
        log.refused(t0 + INTERVAL, a, "alice", "REGISTER", "wrong password");
        assert_eq!(log.last[&a], (t0 + INTERVAL, 0));
    }
}
