//! What a user's call goes to: [`dial`] reads what a signed-in user dialled
//! and says whether it is an emergency number, a colleague (by id or
//! extension), one of the workspace's numbers, or a number out through the
//! trunk from one of the caller's lines, or why it cannot be placed.
//!
//! A pure function of the directory, the users' live state and the time,
//! like [`crate::decide`]; placing the call is the engine's.

use directory::{Directory, NumberIdx, Restriction, UserIdx};
use jiff::Timestamp;
use presence::{Occupancy, Registrations, UserRef};

use crate::{gate, Gate};

/// Where a user's call goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dialled {
    /// An emergency number, dialled as is: goes out whatever the
    /// restrictions, the caller's busy state or their lines; `line` is the
    /// caller's line when they have one.
    Emergency { to: String, line: Option<NumberIdx> },
    /// A colleague, who can ring now.
    User(UserIdx),
    /// One of the workspace's numbers: routed as an inbound call to it.
    Number(NumberIdx),
    /// Out through the trunk to `to` (E.164), showing `line`.
    External { to: String, line: NumberIdx },
}

/// Why a call cannot be placed. Each has the status the caller gets and a
/// reason phrase a person can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a colleague, not a number (nothing to call).
    NoSuchDestination,
    /// Dialling their own id or extension.
    Yourself,
    /// The caller is a member of no number, so has no caller ID to show.
    NoLine,
    /// `*k*`: the caller has fewer than `k` lines.
    NoSuchLine,
    /// A `deny` pattern (named) or the `allow` list refuses it.
    Denied { pattern: Option<String> },
    /// The workspace has no trunk with an outbound side.
    NoTrunk,
    /// The caller is on as many calls as their `max_calls`.
    CallerBusy,
    /// The colleague cannot ring now, and why.
    Colleague(Gate),
}

impl Refusal {
    /// The SIP status (RFC 3261 §21).
    pub fn status(&self) -> u16 {
        match self {
            Refusal::NoSuchDestination => 404,
            Refusal::Yourself | Refusal::NoLine | Refusal::NoSuchLine | Refusal::Denied { .. } => {
                403
            }
            Refusal::NoTrunk => 503,
            Refusal::CallerBusy => 486,
            Refusal::Colleague(Gate::Busy | Gate::DoNotDisturb) => 486,
            Refusal::Colleague(_) => 480,
        }
    }

    /// The reason phrase (also the `Warning` text).
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NoSuchDestination => "No such user or number",
            Refusal::Yourself => "Cannot call yourself",
            Refusal::NoLine => "No line to call from",
            Refusal::NoSuchLine => "No such line",
            Refusal::Denied { .. } => "Number not allowed",
            Refusal::NoTrunk => "No trunk for calls out",
            Refusal::CallerBusy => "Already on a call",
            Refusal::Colleague(Gate::Busy) => "User busy",
            Refusal::Colleague(Gate::DoNotDisturb) => "Do not disturb",
            Refusal::Colleague(Gate::NotSignedIn) => "User not signed in",
            Refusal::Colleague(Gate::OutsideUserHours) => "Outside the user's hours",
            Refusal::Colleague(_) => "User not available",
        }
    }

    /// A stable name, for logs and call records.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NoSuchDestination => "no_such_destination",
            Refusal::Yourself => "yourself",
            Refusal::NoLine => "no_line",
            Refusal::NoSuchLine => "no_such_line",
            Refusal::Denied { .. } => "not_allowed",
            Refusal::NoTrunk => "no_trunk",
            Refusal::CallerBusy => "caller_busy",
            Refusal::Colleague(g) => g.as_str(),
        }
    }
}

/// The line-choice prefix: `*k*` then the number calls from the caller's
/// `k`-th line (1 to 9, in the order `switchboard` lists them, the default
/// line first).
pub const LINE_PREFIX: char = '*';

/// Where `caller`'s call to `dialled` (the Request-URI's user part) goes.
pub fn dial<P>(
    directory: &Directory,
    presence: &P,
    caller: UserIdx,
    dialled: &str,
    at: Timestamp,
) -> Result<Dialled, Refusal>
where
    P: Registrations + Occupancy + ?Sized,
{
    let user = directory.user(caller);
    let rules = directory.outbound_rules();
    let (chosen, dialled) = match line_choice(dialled) {
        Some((k, rest)) => match user.lines.get(k - 1) {
            Some(&line) => (Some(line), rest),
            // An emergency call goes out whatever line was asked for.
            None if rules.is_emergency(rest) => (None, rest),
            None => return Err(Refusal::NoSuchLine),
        },
        None => (None, dialled),
    };
    let line = chosen.or_else(|| user.lines.first().copied());
    if rules.is_emergency(dialled) {
        if directory.outbound_trunk().is_none() {
            return Err(Refusal::NoTrunk);
        }
        let to = dialled.chars().filter(char::is_ascii_digit).collect();
        return Ok(Dialled::Emergency { to, line });
    }
    let who = UserRef {
        idx: caller,
        id: &user.id,
    };
    let busy = presence.active_calls(who) >= user.max_calls;
    let colleague = directory
        .user_index(dialled)
        .or_else(|| directory.user_by_extension(dialled));
    if let Some(target) = colleague {
        if target == caller {
            return Err(Refusal::Yourself);
        }
        if busy {
            return Err(Refusal::CallerBusy);
        }
        return match gate(directory, presence, target, true, at) {
            None => Ok(Dialled::User(target)),
            Some(g) => Err(Refusal::Colleague(g)),
        };
    }
    let Some(e164) = rules.normalise(dialled) else {
        return Err(Refusal::NoSuchDestination);
    };
    if let Some(number) = directory.number_index(e164.as_str()) {
        if busy {
            return Err(Refusal::CallerBusy);
        }
        return Ok(Dialled::Number(number));
    }
    // Restrictions first: a denied number is refused (and logged) as such,
    // whoever dials it.
    if let Err(r) = rules.check(e164.as_str()) {
        let pattern = match r {
            Restriction::Denied(p) => Some(p.text.clone()),
            Restriction::NotAllowed => None,
        };
        return Err(Refusal::Denied { pattern });
    }
    let Some(line) = line else {
        return Err(Refusal::NoLine);
    };
    if directory.outbound_trunk().is_none() {
        return Err(Refusal::NoTrunk);
    }
    if busy {
        return Err(Refusal::CallerBusy);
    }
    Ok(Dialled::External {
        to: e164.as_str().to_string(),
        line,
    })
}

/// Whether `dialled` (as `dial` reads it, a `*k*` prefix included) goes
/// out through the trunk rather than to a colleague or one of our numbers:
/// for the direction of a refused call's record.
pub fn goes_out(directory: &Directory, dialled: &str) -> bool {
    let dialled = line_choice(dialled).map_or(dialled, |(_, rest)| rest);
    let rules = directory.outbound_rules();
    if rules.is_emergency(dialled) {
        return true;
    }
    if directory.user_index(dialled).is_some() || directory.user_by_extension(dialled).is_some() {
        return false;
    }
    rules
        .normalise(dialled)
        .is_some_and(|e| directory.number_index(e.as_str()).is_none())
}

/// `*k*rest` → `(k, rest)` for k in 1..=9 and a non-empty rest.
fn line_choice(dialled: &str) -> Option<(usize, &str)> {
    let rest = dialled.strip_prefix(LINE_PREFIX)?;
    let mut chars = rest.chars();
    let k = chars.next()?.to_digit(10)?;
    let rest = chars.as_str().strip_prefix(LINE_PREFIX)?;
    (k >= 1 && !rest.is_empty()).then_some((k as usize, rest))
}
