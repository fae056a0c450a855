//! Routing: what a call to a number does, as a [`Plan`].
//!
//! [`decide`] and [`explain`] are pure functions of the directory snapshot,
//! the users' live state (through the presence traits), the call and the
//! time, which is passed in as a [`jiff::Timestamp`] and never read here.
//! They do no IO and keep no state. Both build the plan with the same code
//! and every member's verdict with the one [`gate`] function, so what a call
//! does and what `explain` says cannot disagree.
//!
//! A plan is: whether the number is open now ([`hours`]), ordered tiers of
//! users to ring (one tier of every free routed user for `simultaneous`,
//! one tier per routed user for `cascade`), the whole attempt's bound, then
//! the [`Destination`] for when no tier answers: the number's `no_answer`
//! while open, its `outside` while closed.
//!
//! A user rings for a number only when every gate opens, in this order:
//! 1. the user is an active member (not `invited`);
//! 2. the user is signed in (at least one live registration);
//! 3. the user is in the number's routing (which implies assigned);
//! 4. the user is not busy (answered calls below the user's `max_calls`);
//! 5. the user is inside their own hours, if they have any.
//!
//! In a cascade the gates are checked again when each user's turn comes
//! ([`ringable`]), so whoever became busy or signed out meanwhile is skipped
//! without waiting.

pub mod dial;
pub mod hours;

use std::time::Duration;

use directory::{
    normalize_e164, Destination, Directory, NumberIdx, RingGroup, Strategy, UserIdx, UserStatus,
};
use jiff::Timestamp;
use presence::{Occupancy, Registrations, UserRef};

pub use hours::{OpenReason, Openness};

/// The call being routed, as far as routing cares.
#[derive(Clone, Copy, Debug)]
pub struct IncomingCall<'a> {
    /// The user part of the Request-URI (or a `tel:` number) as dialled.
    pub dialled: &'a str,
    /// The user placing the call, when it is one of the workspace's: never
    /// rung by their own call (gate `caller`).
    pub caller: Option<UserIdx>,
}

/// What a call does, step by step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The number dialled, when it is one of the workspace's.
    pub number: Option<NumberIdx>,
    /// Whether the number is open at the plan's instant, and why.
    pub open: Openness,
    /// Who rings, tier after tier. Empty when nobody can ring now (or the
    /// number is closed).
    pub tiers: Vec<Tier>,
    /// How long all the tiers together may ring.
    pub ring_timeout: Duration,
    /// Where the call goes when no tier answers (or there is none).
    pub then: Destination,
    /// Every member of the number who does not ring now, with the gate that
    /// stops them: routed members in routing order, then the others.
    /// (Only the stopped ones: on the call path most members ring, and an
    /// empty list costs nothing.)
    pub skipped: Vec<MemberVerdict>,
}

impl Plan {
    /// The tier rung first.
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

    /// The status the caller gets when the plan ends in a hangup before
    /// anything rang: the configured one, else 486 when a routed user was
    /// only busy and 480 otherwise. `None` for the other destinations.
    pub fn hangup_status(&self) -> Option<u16> {
        match self.then {
            Destination::Hangup { status: Some(s) } => Some(s),
            Destination::Hangup { status: None } => {
                let busy = self
                    .skipped
                    .iter()
                    .any(|v| v.stopped_by == Some(Gate::Busy));
                Some(if busy { 486 } else { 480 })
            }
            _ => None,
        }
    }

    /// A plan that hangs up at once with `status`.
    fn hang_up(number: Option<NumberIdx>, status: u16) -> Plan {
        Plan {
            number,
            open: Openness::ALWAYS,
            tiers: Vec::new(),
            ring_timeout: Duration::ZERO,
            then: Destination::Hangup {
                status: Some(status),
            },
            skipped: Vec::new(),
        }
    }
}

/// Users rung together for a while.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tier {
    /// In routing order. In a cascade, one user.
    pub users: Vec<UserIdx>,
    pub strategy: Strategy,
    /// How long the tier rings before the next step.
    pub timeout: Duration,
}

/// The first gate that keeps a member from ringing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gate {
    NotActive,
    NotSignedIn,
    NotInRouting,
    Busy,
    OutsideUserHours,
    /// Set do-not-disturb.
    DoNotDisturb,
    /// Declined this call already (in a cascade, not rung again).
    Declined,
    /// Placed this call (a user dialling their own line is not rung).
    Caller,
}

impl Gate {
    /// The stable name (for `explain --json`, records and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::NotActive => "not_active",
            Gate::NotSignedIn => "not_signed_in",
            Gate::NotInRouting => "not_in_routing",
            Gate::Busy => "busy",
            Gate::OutsideUserHours => "outside_user_hours",
            Gate::DoNotDisturb => "do_not_disturb",
            Gate::Declined => "declined",
            Gate::Caller => "caller",
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
        Some(number) => plan_number_for(directory, presence, number, at, call.caller),
        None => Plan::hang_up(None, 404),
    }
}

/// What a call to `number` would do at `at`: the same plan [`decide`]
/// gives the call ([`Plan::verdicts`] lists every member's gate, and
/// [`hours::next_change`] when the number next opens or closes).
pub fn explain<P>(directory: &Directory, presence: &P, number: NumberIdx, at: Timestamp) -> Plan
where
    P: Registrations + Occupancy + ?Sized,
{
    plan_number(directory, presence, number, at)
}

/// The plan of a call to `idx` (dialled, or reached as a `number`
/// destination) at `at`.
pub fn plan_number<P>(directory: &Directory, presence: &P, idx: NumberIdx, at: Timestamp) -> Plan
where
    P: Registrations + Occupancy + ?Sized,
{
    plan_number_for(directory, presence, idx, at, None)
}

/// [`plan_number`] for a call placed by `caller` (one of the workspace's
/// users), who is skipped with gate `caller`.
pub fn plan_number_for<P>(
    directory: &Directory,
    presence: &P,
    idx: NumberIdx,
    at: Timestamp,
    caller: Option<UserIdx>,
) -> Plan
where
    P: Registrations + Occupancy + ?Sized,
{
    let number = directory.number(idx);
    let routing = &number.routing;
    let open = hours::state(number.hours.as_ref(), &number.timezone, at);
    let mut users = Vec::with_capacity(routing.ring.len());
    let mut skipped = Vec::new();
    // Routed members in routing order (the tier's order), then the rest.
    let routed = routing.ring.iter().map(|&user| (user, true));
    let others = routing.not_in_ring.iter().map(|&user| (user, false));
    let total = number.members.len();
    for (seen, (user, in_routing)) in routed.chain(others).enumerate() {
        let stopped_by = if Some(user) == caller {
            Some(Gate::Caller)
        } else {
            gate(directory, presence, user, in_routing, at)
        };
        match stopped_by {
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
    if !open.open {
        return Plan {
            number: Some(idx),
            open,
            tiers: Vec::new(),
            ring_timeout: Duration::ZERO,
            then: number.outside.clone(),
            skipped,
        };
    }
    let tiers = if users.is_empty() {
        Vec::new()
    } else {
        match routing.strategy {
            Strategy::Simultaneous => vec![Tier {
                users,
                strategy: Strategy::Simultaneous,
                timeout: number.ring_timeout,
            }],
            // Every routed user in order: each is checked again at their turn.
            Strategy::Cascade => cascade(&routing.ring, routing.step_timeout),
        }
    };
    Plan {
        number: Some(idx),
        open,
        tiers,
        ring_timeout: number.ring_timeout,
        then: number.no_answer.clone(),
        skipped,
    }
}

fn cascade(users: &[UserIdx], step: Duration) -> Vec<Tier> {
    users
        .iter()
        .map(|&user| Tier {
            users: vec![user],
            strategy: Strategy::Cascade,
            timeout: step,
        })
        .collect()
}

/// The tiers of a `ring` destination, and its whole bound. A simultaneous
/// group rings whoever is free when it starts ([`ringable`]).
pub fn ring_group_tiers(group: &RingGroup) -> (Vec<Tier>, Duration) {
    let tiers = match group.strategy {
        Strategy::Simultaneous => vec![Tier {
            users: group.users.clone(),
            strategy: Strategy::Simultaneous,
            timeout: group.ring_timeout,
        }],
        Strategy::Cascade => cascade(&group.users, group.step_timeout),
    };
    (tiers, group.ring_timeout)
}

/// Of `users`, those who can ring at `at`, in order (the gates of a routed
/// user, not `declined` in this call, and not its `caller`), and the others
/// with the gate that stops them. For a tier whose turn has come.
pub fn ringable<P>(
    directory: &Directory,
    presence: &P,
    users: &[UserIdx],
    declined: &[UserIdx],
    caller: Option<UserIdx>,
    at: Timestamp,
) -> (Vec<UserIdx>, Vec<MemberVerdict>)
where
    P: Registrations + Occupancy + ?Sized,
{
    let mut ring = Vec::with_capacity(users.len());
    let mut skipped = Vec::new();
    for &user in users {
        let stopped_by = if Some(user) == caller {
            Some(Gate::Caller)
        } else if declined.contains(&user) {
            Some(Gate::Declined)
        } else {
            gate(directory, presence, user, true, at)
        };
        match stopped_by {
            None => ring.push(user),
            Some(_) => skipped.push(MemberVerdict { user, stopped_by }),
        }
    }
    (ring, skipped)
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
    if user.do_not_disturb {
        return Some(Gate::DoNotDisturb);
    }
    if presence.active_calls(who) >= user.max_calls {
        return Some(Gate::Busy);
    }
    if let Some(own) = &user.hours {
        if !hours::state(Some(&own.schedule), &own.timezone, at).open {
            return Some(Gate::OutsideUserHours);
        }
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
