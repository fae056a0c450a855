//! The daemon's one clock. Everything else is given the time: the engine
//! and the sans-IO crates take it as an argument, and `clippy.toml` forbids
//! `Instant::now` and `SystemTime::now` anywhere but here.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use jiff::Timestamp;

/// The monotonic time, for the engine's deadlines.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Instant {
    Instant::now()
}

/// The wall-clock time, for registration expiries and call records.
#[allow(clippy::disallowed_methods)]
pub fn wall() -> Timestamp {
    Timestamp::now()
}

/// Unix milliseconds of the wall clock (what presence keeps expiries in).
#[allow(clippy::disallowed_methods)]
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
