//! ICMP reports that a UDP destination refused what was sent to it (port
//! or host unreachable): the client transactions waiting on that address
//! fail at once (RFC 3261 §17.1.4, a transport error), so a leg to a phone
//! whose softphone quit ends now instead of at the ring timeout, and a
//! liveness probe to a vanished phone ends its call now.
//!
//! Each report walks the transaction table, and a peer can make reports
//! come (a flood whose source port is closed bounces every 503), so the
//! walks are budgeted per second; a report past the budget is ignored and
//! its transactions time out as they would without ICMP. It owns only that
//! budget; it must not do IO or read a clock.

use std::time::{Duration, Instant};

/// Table walks per second, at most.
const WALKS_PER_SECOND: u32 = 100;

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UnreachableBudget {
    window: Option<Instant>,
    walks: u32,
}

impl UnreachableBudget {
    /// Whether one more walk fits in this second.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        match self.window {
            Some(start) if now.saturating_duration_since(start) < Duration::from_secs(1) => {}
            _ => {
                self.window = Some(now);
                self.walks = 0;
            }
        }
        let fits = self.walks < WALKS_PER_SECOND;
        self.walks += u32::from(fits);
        fits
    }
}
