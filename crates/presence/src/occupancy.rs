//! [`Occupancy`]: which users are in a call, under leases, and its local
//! implementation on [`PresenceView`].
//!
//! A call takes a lease on its user when it is answered and releases it when
//! it ends. A lease lapses by itself at its expiry, so a holder that died
//! (a crashed node, or a bug that lost a call) cannot keep a user busy
//! forever: on a shared store, `take` is one ZADD with the expiry as score,
//! `release` one ZREM, and the count a ZCOUNT from now on.

use crate::{PresenceView, UserRef};
use directory::UserIdx;

/// Busy state: answered calls per user.
pub trait Occupancy {
    /// Calls the user is in now.
    fn active_calls(&self, user: UserRef<'_>) -> u32;

    /// Counts a call for `user` until it is released or `expires_at_ms`
    /// passes. `holder` names the call and must be unique among live leases.
    /// Taking never fails: a user who picked up is in the call; the count
    /// after it says whether they reached their limit.
    fn take(&self, user: UserRef<'_>, holder: u64, expires_at_ms: u64) -> Lease;

    /// Ends a lease; returns the calls the user is in after it. Releasing a
    /// lease twice (or one that lapsed) changes nothing.
    fn release(&self, lease: &Lease) -> u32;

    /// Drops lapsed leases; returns each user who lost some, with the
    /// calls they are left in.
    fn expire_leases(&self, now_ms: u64) -> Vec<(Box<str>, u32)>;
}

/// A call counted against a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub user: Box<str>,
    pub idx: UserIdx,
    pub holder: u64,
    pub expires_at_ms: u64,
    /// Calls the user was in right after this one was taken.
    pub active_after: u32,
}

impl Occupancy for PresenceView {
    fn active_calls(&self, user: UserRef<'_>) -> u32 {
        self.with(user, |p| p.active_calls())
    }

    fn take(&self, user: UserRef<'_>, holder: u64, expires_at_ms: u64) -> Lease {
        let active_after = self.with(user, |p| p.add_lease(holder, expires_at_ms));
        Lease {
            user: user.id.into(),
            idx: user.idx,
            holder,
            expires_at_ms,
            active_after,
        }
    }

    fn release(&self, lease: &Lease) -> u32 {
        let user = UserRef {
            idx: lease.idx,
            id: &lease.user,
        };
        self.with(user, |p| p.remove_lease(lease.holder))
    }

    fn expire_leases(&self, now_ms: u64) -> Vec<(Box<str>, u32)> {
        self.shared.expire_leases(now_ms)
    }
}
