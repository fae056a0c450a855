//! Routing: what a call to a number does, as a [`Plan`].
//!
//! [`decide`] and [`explain`] are pure functions of the directory snapshot,
//! the users' live state (through the presence traits), the call and the
//! time, which is passed in as a [`jiff::Timestamp`] and never read here.
//! They do no IO and keep no state. Both build the plan with the same code
//! and every member's verdict with the one [`gate`] function, so what a call
//! does and what `explain` says cannot disagree.
//!
//! A plan is ordered tiers of users to ring (each with its strategy and
//! timeout), then the [`Destination`] for when no tier answers. Today a
//! number has one tier; business hours, cascade and the media destinations
//! add steps to the same shape.
//!
//! A user rings for a number only when every gate opens, in this order:
//! 1. the user is an active member (not `invited`);
//! 2. the user is signed in (at least one live registration);
//! 3. the user is in the number's routing (which implies assigned);
//! 4. the user is not busy (answered calls below the user's `max_calls`).

use std::time::Duration;

use directory::{normalize_e164, Directory, NumberIdx, Strategy, UserIdx, UserStatus};
use jiff::Timestamp;
use presence::{Occupancy, Registrations, UserRef};

/// The call being routed, as far as routing cares.
#[derive(Clone, Copy, Debug)]
pub struct IncomingCall<'a> {
    /// The user part of the Request-URI (or a `tel:` number) as dialled.
    pub dialled: &'a str,
}

/// What a call does, step by step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The number dialled, when it is one of the workspace's.
    pub number: Option<NumberIdx>,
    /// Who rings, tier after tier. Empty when nobody can ring now.
    pub tiers: Vec<Tier>,
    /// Where the call goes when no tier answers (or there is none).
    pub then: Destination,
    /// Every member of the number who does not ring, with the gate that
    /// stops them: routed members in routing order, then the others.
    /// (Only the stopped ones: on the call path most members ring, and an
    /// empty list costs nothing.)
    pub skipped: Vec<MemberVerdict>,
}

impl Plan {
    /// The first tier's users (the ones the call rings first).
    pub fn first_tier(&self) -> Option<&Tier> {
        self.tiers.first()
    }

    /// Every member of the plan's number, in member order, with the gate
    /// that stops them (`None`: they ring). What `explain` shows.
    pub fn verdicts(&self, directory: &Directory) -> Vec<MemberVerdict> {
        let Some(number) = self.number else {
            return Vec::new();
        };
        directory
            .number(number)
            .members
            .iter()
            .map(|&user| MemberVerdict {
                user,
                stopped_by: self
                    .skipped
                    .iter()
                    .find(|v| v.user == user)
                    .and_then(|v| v.stopped_by),
            })
            .collect()
    }
}

/// Users rung together for a while.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tier {
    /// In routing order.
    pub users: Vec<UserIdx>,
    /// How the tier rings. `Cascade` is still rung like `Simultaneous` by
    /// the engine (ringing one after another is the business-hours issue).
    pub strategy: Strategy,
    /// How long the tier rings before the next step.
    pub timeout: Duration,
}

/// The end of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Answer the caller with this final status now: nobody could ring.
    Reject { status: u16, reason: &'static str },
    /// After the tiers: `480 Temporarily Unavailable`, or `486 Busy Here`
    /// when every device that was rung answered busy (or its user became
    /// busy with another call).
    Unavailable,
}

/// The first gate that keeps a member from ringing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// One member's verdict.
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

/// The plan for `call` at `at`.
pub fn decide<P>(
    directory: &Directory,
    presence: &P,
    call: &IncomingCall<'_>,
    at: Timestamp,
) -> Plan
where
    P: Registrations + Occupancy + ?Sized,
{
    match find_number(directory, call.dialled) {
        Some(number) => plan_number(directory, presence, number, at),
        None => Plan {
            number: None,
            tiers: Vec::new(),
            then: Destination::Reject {
                status: 404,
                reason: "Not Found",
            },
            skipped: Vec::new(),
        },
    }
}

/// What a call to `number` would do at `at`: the same plan [`decide`]
/// gives the call ([`Plan::verdicts`] lists every member's gate).
pub fn explain<P>(directory: &Directory, presence: &P, number: NumberIdx, at: Timestamp) -> Plan
where
    P: Registrations + Occupancy + ?Sized,
{
    plan_number(directory, presence, number, at)
}

fn plan_number<P>(directory: &Directory, presence: &P, idx: NumberIdx, at: Timestamp) -> Plan
where
    P: Registrations + Occupancy + ?Sized,
{
    let number = directory.number(idx);
    let routing = &number.routing;
    let mut users = Vec::with_capacity(routing.ring.len());
    let mut skipped = Vec::new();
    // Routed members in routing order (the tier's order), then the rest.
    let routed = routing.ring.iter().map(|&user| (user, true));
    let others = routing.not_in_ring.iter().map(|&user| (user, false));
    let total = number.members.len();
    for (seen, (user, in_routing)) in routed.chain(others).enumerate() {
        match gate(directory, presence, user, in_routing, at) {
            None => users.push(user),
            Some(gate) => {
                if skipped.capacity() == 0 {
                    // One allocation, sized for everyone still to come.
                    skipped.reserve_exact(total - seen);
                }
                skipped.push(MemberVerdict {
                    user,
                    stopped_by: Some(gate),
                });
            }
        }
    }
    if users.is_empty() {
        // Nobody can ring: busy when a routed user is only busy.
        let busy = skipped.iter().any(|v| v.stopped_by == Some(Gate::Busy));
        let (status, reason) = if busy {
            (486, "Busy Here")
        } else {
            (480, "Temporarily Unavailable")
        };
        return Plan {
            number: Some(idx),
            tiers: Vec::new(),
            then: Destination::Reject { status, reason },
            skipped,
        };
    }
    Plan {
        number: Some(idx),
        tiers: vec![Tier {
            users,
            strategy: routing.strategy,
            timeout: number.ring_timeout,
        }],
        then: Destination::Unavailable,
        skipped,
    }
}

/// The first gate that stops member `idx` of a number from ringing at `at`
/// (`in_routing`: whether the number's routing lists them), or `None` when
/// they ring. The one place the gates are written.
#[inline]
pub fn gate<P>(
    directory: &Directory,
    presence: &P,
    idx: UserIdx,
    in_routing: bool,
    at: Timestamp,
) -> Option<Gate>
where
    P: Registrations + Occupancy + ?Sized,
{
    let user = directory.user(idx);
    let who = UserRef { idx, id: &user.id };
    if user.status != UserStatus::Active {
        return Some(Gate::NotActive);
    }
    if !presence.is_signed_in(who, unix_ms(at)) {
        return Some(Gate::NotSignedIn);
    }
    if !in_routing {
        return Some(Gate::NotInRouting);
    }
    if presence.active_calls(who) >= user.max_calls {
        return Some(Gate::Busy);
    }
    None
}

/// Unix milliseconds of a timestamp (presence keeps expiries in them); an
/// instant before 1970 counts as 0.
pub fn unix_ms(at: Timestamp) -> u64 {
    u64::try_from(at.as_millisecond()).unwrap_or(0)
}

#[cfg(test)]
mod tests;
