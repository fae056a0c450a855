//! Routing decisions: who rings when a call reaches a number.
//!
//! [`decide`] and [`explain`] are pure functions of the directory snapshot,
//! the users' live state, the call and the time (passed in, never read here).
//! They do no IO and take no lock: the call path calls [`decide`] once per
//! INVITE, and tests use [`explain`] to see which gate stops each member.
//!
//! A user rings for a number only when every gate opens, in this order:
//! 1. the user is an active member (not `invited`);
//! 2. the user is signed in (at least one live registration);
//! 3. the user is in the number's routing (which implies assigned);
//! 4. the user is not busy (answered calls below the user's `max_calls`).

use directory::{normalize_e164, Directory, NumberIdx, Strategy, UserIdx, UserStatus};
use presence::PresenceView;

/// The call being routed, as far as routing cares.
#[derive(Clone, Copy, Debug)]
pub struct IncomingCall<'a> {
    /// The user part of the Request-URI (or a `tel:` number) as dialled.
    pub dialled: &'a str,
}

/// What to do with a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Ring these users (routing order) with this strategy.
    Ring {
        number: NumberIdx,
        strategy: Strategy,
        users: Vec<UserIdx>,
    },
    /// Answer the caller with this final status.
    Reject {
        number: Option<NumberIdx>,
        status: u16,
        reason: &'static str,
    },
}

/// The first gate that keeps a member from ringing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    NotActive,
    NotSignedIn,
    NotInRouting,
    Busy,
}

impl Gate {
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::NotActive => "not active",
            Gate::NotSignedIn => "not signed in",
            Gate::NotInRouting => "not in routing",
            Gate::Busy => "busy",
        }
    }
}

/// One member's verdict from [`explain`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberVerdict {
    pub user: UserIdx,
    /// `None` when the member would ring.
    pub stopped_by: Option<Gate>,
}

impl MemberVerdict {
    pub fn rings(&self) -> bool {
        self.stopped_by.is_none()
    }
}

/// Finds the number a dialled string names: `+15550100`, `15550100`,
/// `tel:`/`sip:` user parts with visual separators, normalised to E.164.
pub fn find_number(directory: &Directory, dialled: &str) -> Option<NumberIdx> {
    let e164 = normalize_e164(dialled)?;
    directory.number_index(e164.as_str())
}

/// Who rings for `call` at `now_ms` (Unix milliseconds).
pub fn decide(
    directory: &Directory,
    presence: &PresenceView,
    call: &IncomingCall<'_>,
    now_ms: u64,
) -> Decision {
    let Some(number_idx) = find_number(directory, call.dialled) else {
        return Decision::Reject {
            number: None,
            status: 404,
            reason: "Not Found",
        };
    };
    let number = directory.number(number_idx);
    let mut users = Vec::with_capacity(number.routing.ring.len());
    let mut busy = 0usize;
    for &idx in &number.routing.ring {
        match gate_for_routed(directory, presence, idx, now_ms) {
            None => users.push(idx),
            Some(Gate::Busy) => busy += 1,
            Some(_) => {}
        }
    }
    if !users.is_empty() {
        return Decision::Ring {
            number: number_idx,
            strategy: number.routing.strategy,
            users,
        };
    }
    if busy > 0 {
        Decision::Reject {
            number: Some(number_idx),
            status: 486,
            reason: "Busy Here",
        }
    } else {
        Decision::Reject {
            number: Some(number_idx),
            status: 480,
            reason: "Temporarily Unavailable",
        }
    }
}

/// The gates of a user already known to be in the routing list.
fn gate_for_routed(
    directory: &Directory,
    presence: &PresenceView,
    idx: UserIdx,
    now_ms: u64,
) -> Option<Gate> {
    let user = directory.user(idx);
    if user.status != UserStatus::Active {
        return Some(Gate::NotActive);
    }
    let live = presence.user(idx);
    if !live.is_signed_in(now_ms) {
        return Some(Gate::NotSignedIn);
    }
    if live.active_calls() >= user.max_calls {
        return Some(Gate::Busy);
    }
    None
}

/// For every member of `number`, whether they would ring now and, if not,
/// the first gate that stops them.
pub fn explain(
    directory: &Directory,
    presence: &PresenceView,
    number: NumberIdx,
    now_ms: u64,
) -> Vec<MemberVerdict> {
    let n = directory.number(number);
    n.members
        .iter()
        .map(|&user| {
            let stopped_by = {
                let u = directory.user(user);
                let live = presence.user(user);
                if u.status != UserStatus::Active {
                    Some(Gate::NotActive)
                } else if !live.is_signed_in(now_ms) {
                    Some(Gate::NotSignedIn)
                } else if !n.routing.ring.contains(&user) {
                    Some(Gate::NotInRouting)
                } else if live.active_calls() >= u.max_calls {
                    Some(Gate::Busy)
                } else {
                    None
                }
            };
            MemberVerdict { user, stopped_by }
        })
        .collect()
}

#[cfg(test)]
mod tests;
