//! Where a call goes when a number is closed or nobody takes it: the
//! `[numbers.outside]` and `[numbers.no_answer]` tables, parsed from plain
//! data into a [`Destination`] whose users and numbers are indices of the
//! same snapshot (menus and prompts included).

use std::collections::HashMap;
use std::time::Duration;

use crate::directory::{Errors, NumberIdx, Strategy, UserIdx};
use crate::e164::normalize_e164;
use crate::media::{MenuIdx, MenuNames, PromptIdx, Prompts};

/// A destination as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationSpec {
    /// `{ action = "hangup", status = 480 }`; no status: 480, or 486 when
    /// every user who could have rung was busy.
    Hangup { status: Option<u16> },
    /// `{ action = "ring", users = [...], strategy, step_timeout, ring_timeout }`.
    Ring {
        users: Vec<String>,
        strategy: Strategy,
        step_timeout_secs: Option<u32>,
        ring_timeout_secs: Option<u32>,
    },
    /// `{ action = "number", number = "+15550200" }`.
    Number { number: String },
    /// `{ action = "forward", to = "+33612345678", caller_id = "caller" }`.
    Forward { to: String, caller_id: CallerId },
    /// `{ action = "voicemail" }`: the mailbox of the number being called.
    Voicemail,
    /// `{ action = "ivr" }` (the number's own menu) or
    /// `{ action = "ivr", menu = "NAME" }` (one of `[menus]`).
    Ivr { menu: Option<String> },
    /// `{ action = "message", prompt = "prompts/closed.wav" }`: played as
    /// early media, then 480.
    Message { prompt: String },
}

/// Whose number a forwarded call shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CallerId {
    /// The original caller's (the carrier sees who is really calling).
    #[default]
    Caller,
    /// The forwarding number's own.
    Number,
}

/// A checked destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// End the call with this status; `None`: 480, or 486 when every user
    /// who could have rung was busy.
    Hangup { status: Option<u16> },
    /// Ring these users, with the same gates and busy state as routing.
    Ring(RingGroup),
    /// Route as if this number had been dialled (with its hours).
    Number(NumberIdx),
    /// An external number (E.164) through the trunk's outbound side.
    Forward { to: String, caller_id: CallerId },
    /// The daemon answers and records a message in the mailbox of the
    /// number being called.
    Voicemail,
    /// The daemon answers and plays this menu.
    Ivr(MenuIdx),
    /// A prompt played as early media, then 480.
    Message(PromptIdx),
}

impl Destination {
    /// Today's answer when nobody takes a call: 480, or 486 when busy.
    pub const DEFAULT_NO_ANSWER: Destination = Destination::Hangup { status: None };
    /// Where a closed number's calls go when `outside` is not set.
    pub const DEFAULT_OUTSIDE: Destination = Destination::Hangup { status: Some(480) };

    /// A short name for logs and `explain`.
    pub fn action(&self) -> &'static str {
        match self {
            Destination::Hangup { .. } => "hangup",
            Destination::Ring(_) => "ring",
            Destination::Number(_) => "number",
            Destination::Forward { .. } => "forward",
            Destination::Voicemail => "voicemail",
            Destination::Ivr(_) => "ivr",
            Destination::Message(_) => "message",
        }
    }
}

/// Users rung together or one after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingGroup {
    /// In order (the cascade order).
    pub users: Vec<UserIdx>,
    pub strategy: Strategy,
    /// How long each user rings in a cascade.
    pub step_timeout: Duration,
    /// How long the whole attempt may ring.
    pub ring_timeout: Duration,
}

pub(crate) const DEFAULT_STEP_TIMEOUT_SECS: u32 = 20;
pub(crate) const MAX_RING_TIMEOUT_SECS: u32 = 600;
/// A cascade's default bound: its steps added up, at most this.
const MAX_DEFAULT_CASCADE_SECS: u32 = 120;

/// The whole-attempt bound: as configured, else 30 s for simultaneous and
/// the steps added up (at most 120 s) for cascade.
pub(crate) fn default_ring_timeout(
    strategy: Strategy,
    step_timeout_secs: u32,
    users: usize,
    configured: Option<u32>,
) -> u32 {
    configured.unwrap_or(match strategy {
        Strategy::Simultaneous => crate::directory::DEFAULT_RING_TIMEOUT_SECS,
        Strategy::Cascade => {
            let steps = step_timeout_secs.saturating_mul(users.max(1) as u32);
            steps.min(MAX_DEFAULT_CASCADE_SECS)
        }
    })
}

/// Checks a timeout in seconds under `key`.
pub(crate) fn check_timeout(secs: u32, key: &str, errors: &mut Errors<'_>) -> Duration {
    if !(1..=MAX_RING_TIMEOUT_SECS).contains(&secs) {
        errors.push(
            key,
            format!("must be between 1 and {MAX_RING_TIMEOUT_SECS} seconds, got {secs}"),
        );
    }
    Duration::from_secs(u64::from(secs))
}

/// What a destination may refer to.
pub(crate) struct Context<'a> {
    pub(crate) users: &'a HashMap<String, UserIdx>,
    pub(crate) numbers: &'a HashMap<String, NumberIdx>,
    pub(crate) has_outbound_trunk: bool,
    pub(crate) menus: &'a MenuNames,
    /// The menu `{ action = "ivr" }` means here: the number's own.
    pub(crate) own_menu: Option<MenuIdx>,
}

/// Checks `spec` under `key` (such as `numbers[0].outside`).
pub(crate) fn compile_destination(
    spec: &DestinationSpec,
    key: &str,
    context: &Context<'_>,
    prompts: &mut Prompts,
    errors: &mut Errors<'_>,
) -> Destination {
    match spec {
        DestinationSpec::Hangup { status } => {
            if let Some(s) = status {
                if !(400..=699).contains(s) {
                    errors.push(
                        format!("{key}.status"),
                        format!("must be a final failure status (400 to 699), got {s}"),
                    );
                } else if matches!(s, 401 | 407) {
                    errors.push(
                        format!("{key}.status"),
                        format!("{s} asks the caller for credentials, which a hangup cannot: use another status"),
                    );
                }
            }
            Destination::Hangup { status: *status }
        }
        DestinationSpec::Ring {
            users,
            strategy,
            step_timeout_secs,
            ring_timeout_secs,
        } => {
            let mut list = Vec::with_capacity(users.len());
            for (j, id) in users.iter().enumerate() {
                match context.users.get(id) {
                    Some(&u) if !list.contains(&u) => list.push(u),
                    Some(_) => errors.push(
                        format!("{key}.users[{j}]"),
                        format!("`{id}` is listed twice"),
                    ),
                    None => errors.push(
                        format!("{key}.users[{j}]"),
                        format!("`{id}` is not a user (no [[users]] entry has this id)"),
                    ),
                }
            }
            if users.is_empty() {
                errors.push(format!("{key}.users"), "must name at least one user");
            }
            let step = step_timeout_secs.unwrap_or(DEFAULT_STEP_TIMEOUT_SECS);
            let step_timeout = check_timeout(step, &format!("{key}.step_timeout"), errors);
            let total = default_ring_timeout(*strategy, step, users.len(), *ring_timeout_secs);
            let ring_timeout = check_timeout(total, &format!("{key}.ring_timeout"), errors);
            Destination::Ring(RingGroup {
                users: list,
                strategy: *strategy,
                step_timeout,
                ring_timeout,
            })
        }
        DestinationSpec::Number { number } => {
            let found =
                normalize_e164(number).and_then(|n| context.numbers.get(n.as_str()).copied());
            match found {
                Some(idx) => Destination::Number(idx),
                None => {
                    errors.push(
                        format!("{key}.number"),
                        format!("`{number}` is not one of the workspace's numbers"),
                    );
                    Destination::DEFAULT_NO_ANSWER
                }
            }
        }
        DestinationSpec::Forward { to, caller_id } => {
            if !context.has_outbound_trunk {
                errors.push(
                    format!("{key}.action"),
                    "forward needs a trunk with an outbound side ([[trunks]] outbound = { address = ... })",
                );
            }
            match normalize_e164(to) {
                Some(e164) => Destination::Forward {
                    to: e164.as_str().to_owned(),
                    caller_id: *caller_id,
                },
                None => {
                    errors.push(
                        format!("{key}.to"),
                        format!("`{to}` is not a valid E.164 number"),
                    );
                    Destination::DEFAULT_NO_ANSWER
                }
            }
        }
        DestinationSpec::Voicemail => Destination::Voicemail,
        DestinationSpec::Ivr { menu: None } => match context.own_menu {
            Some(menu) => Destination::Ivr(menu),
            None => {
                errors.push(
                    format!("{key}.menu"),
                    "`ivr` without a menu means the number's own [numbers.ivr], which is not configured here: add one, or name a [menus.NAME]",
                );
                Destination::DEFAULT_NO_ANSWER
            }
        },
        DestinationSpec::Ivr { menu: Some(name) } => match context.menus.get(name) {
            Some(&menu) => Destination::Ivr(menu),
            None => {
                errors.push(
                    format!("{key}.menu"),
                    format!("`{name}` is not a menu (no [menus.{name}] table)"),
                );
                Destination::DEFAULT_NO_ANSWER
            }
        },
        DestinationSpec::Message { prompt } => {
            Destination::Message(prompts.add(prompt, &format!("{key}.prompt"), errors))
        }
    }
}
