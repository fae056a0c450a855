//! What leaves the engine besides bytes, and what comes into it besides
//! SIP: [`Event`]s (call records, registration and busy changes) that the
//! driver hands to other tasks, and [`Command`]s it applies between inputs.
//!
//! Values only: the engine never writes a record or a metric itself.

use directory::Directory;
use jiff::Timestamp;
use routing::Gate;

/// Something other tasks may want to know, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A call reached its end, however it ended (one per caller INVITE that
    /// got past authentication).
    CallEnded(Box<CallRecord>),
    /// A call was answered (by a device, the carrier, or our mailbox or
    /// menu): its record so far, with outcome [`CallOutcome::Interrupted`]
    /// and `ended` at the answer. A store keeps it until the call's
    /// `CallEnded`, so that a call still up when the process died gets a
    /// record at the next start.
    CallAnswered(Box<CallRecord>),
    /// A user's number of signed-in devices changed (a REGISTER that added
    /// or removed one, or a stream connection that closed). Expiry is
    /// swept outside the engine and not reported here.
    RegistrationChanged { user: Box<str>, devices: usize },
    /// A user's count of calls changed: a call was answered or ended.
    BusyChanged {
        user: Box<str>,
        active_calls: u32,
        /// At or above the user's `max_calls`: skipped by new calls.
        busy: bool,
    },
}

/// The record of one call, for call history and `explain`-style answers to
/// "why did nobody pick up?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// The caller's Call-ID.
    pub call_id: String,
    pub direction: Direction,
    /// The workspace user who placed the call (outbound and internal).
    pub caller_user: Option<String>,
    /// What was dialled, as in the Request-URI.
    pub dialled: String,
    /// The number in E.164, when it is one of the workspace's: the number
    /// dialled, or for an outbound call the caller's line shown as caller ID.
    pub number: Option<String>,
    /// The caller's address (the From URI).
    pub caller: String,
    /// When the INVITE arrived, was answered, and the call ended.
    pub started: Timestamp,
    pub answered: Option<Timestamp>,
    pub ended: Timestamp,
    /// Every device rung, in the order the legs were created.
    pub rang: Vec<RingAttempt>,
    /// The index in `rang` of the leg that answered.
    pub answered_by: Option<usize>,
    /// Every member of the number who did not ring, with the gate that
    /// stopped them.
    pub skipped: Vec<Skipped>,
    /// The caller reached voicemail (the recording started).
    pub voicemail: bool,
    pub outcome: CallOutcome,
}

impl CallRecord {
    /// The user who took the call.
    pub fn answered_by_user(&self) -> Option<&str> {
        self.answered_by
            .and_then(|i| self.rang.get(i))
            .map(|a| a.user.as_str())
    }
}

/// Who placed a call and where it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From a trunk to one of the workspace's numbers.
    Inbound,
    /// From a user, out through the trunk.
    Outbound,
    /// From a user to a colleague or one of the workspace's numbers.
    Internal,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
        }
    }
}

/// One leg of a call: a user's device that was rung, or the trunk a call
/// was forwarded through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingAttempt {
    /// The user's id; for a forward, `trunk:` and the trunk's name.
    pub user: String,
    /// The device's registered Contact; for a forward, the number.
    pub device: String,
    pub outcome: LegOutcome,
}

/// How one leg ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegOutcome {
    /// This device took the call.
    Answered,
    /// The device refused with this final status (486, 603, ...).
    Refused(u16),
    /// Stopped ringing: someone else answered, the caller gave up, the ring
    /// timeout passed, or its user became busy with another call.
    Cancelled,
    /// Answered after the call was taken elsewhere (or had ended): hung up.
    AnsweredTooLate,
    /// Never answered the INVITE at all (Timer B).
    NoResponse,
    /// Sent the call elsewhere with this 3xx; `followed` when the target
    /// was one of the workspace's users or numbers and the call went there.
    Redirected { status: u16, followed: bool },
}

/// A member who did not ring, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub user: String,
    pub gate: Gate,
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// Answered and hung up by one side.
    Completed { hung_up_by: Party },
    /// Refused before anything rang: 404 (not a number), 480 (nobody can
    /// ring), 486 (everyone routed is busy).
    Rejected { status: u16 },
    /// The caller cancelled (or hung up) while it rang: 487.
    CallerCancelled,
    /// Rang until the ring timeout, then hung up with `status` (480
    /// unless the number's `no_answer` says otherwise).
    NoAnswer { status: u16 },
    /// Every device refused or failed: 486 when all were busy, else 480.
    Failed { status: u16 },
    /// Answered, but the caller never acknowledged the 200 (§13.3.1.4).
    NotAcknowledged,
    /// Answered and ended by the maximum call duration.
    MaxDuration,
    /// Answered and hung up by the daemon as it stopped (its grace period
    /// for calls in progress ran out).
    Shutdown,
    /// Answered and still up when the daemon died (`kill -9`, a crash, a
    /// power cut): recorded at the next start from what was kept at the
    /// answer, never by a running engine.
    Interrupted,
}

impl CallOutcome {
    /// The final status the caller got for its INVITE.
    pub fn caller_status(self) -> u16 {
        match self {
            CallOutcome::Completed { .. }
            | CallOutcome::NotAcknowledged
            | CallOutcome::MaxDuration
            | CallOutcome::Shutdown
            | CallOutcome::Interrupted => 200,
            CallOutcome::Rejected { status }
            | CallOutcome::Failed { status }
            | CallOutcome::NoAnswer { status } => status,
            CallOutcome::CallerCancelled => 487,
        }
    }
}

/// One side of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party {
    Caller,
    Callee,
}

/// A change from outside, applied between two inputs.
// A directory is moved in rarely (a reload, an admin change): its size
// costs nothing on the call path, and boxing it would only add a step.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Command {
    /// Route new calls with this directory from now on. Calls already up
    /// keep the workspace they were routed with until they end, and busy
    /// state carries over by user id.
    ReplaceWorkspace(Directory),
    /// Counters and gauges for metrics.
    Stats,
    /// The calls in progress, for the admin API.
    Calls,
    /// The sources banned now.
    Bans,
    /// Lifts the ban of a source.
    Unban(std::net::IpAddr),
    /// The daemon is stopping: new calls get `503` with this `Retry-After`
    /// (seconds); calls in progress go on, and so do registrations.
    Drain { retry_after_secs: u32 },
    /// The grace period is over: every call is hung up (BYE on each side
    /// that is up, 503 to a caller still ringing).
    HangUpAll,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandReply {
    WorkspaceReplaced {
        calls_up: usize,
    },
    Stats(Stats),
    Calls(Vec<CallInfo>),
    Bans(Vec<crate::BanInfo>),
    /// Whether there was a ban to lift.
    Unbanned(bool),
    /// Draining: the calls still in progress.
    Draining {
        calls: usize,
    },
    /// The calls just hung up.
    HungUp {
        calls: usize,
    },
}

/// A call in progress, as the admin API lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallInfo {
    pub call_id: String,
    pub direction: Direction,
    pub dialled: String,
    /// In E.164, when it is one of the workspace's numbers.
    pub number: Option<String>,
    pub caller: String,
    /// `ringing`, `answered` (by a user or a forward) or `media` (the
    /// daemon answered: voicemail, menu, message).
    pub state: &'static str,
    /// Legs still ringing: the user (or `trunk:NAME`) and the device.
    pub ringing: Vec<(String, String)>,
    /// Who answered, and on which device.
    pub answered_by: Option<(String, String)>,
    pub started: Timestamp,
    pub answered: Option<Timestamp>,
}

/// Why a command was refused; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("the domain cannot change while the daemon runs (running `{running}`, asked `{requested}`): every signed-in device authenticated against it")]
    DomainChanged { running: String, requested: String },
}

/// Counters (since start) and gauges (now) of one engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub calls_ringing: usize,
    pub calls_answered: usize,
    pub legs: usize,
    /// Armed call timers (ring timeout, maximum duration).
    pub call_timers: usize,
    pub transactions: usize,
    /// Calls the daemon answered itself (voicemail, menu, message).
    pub calls_media: usize,
    /// Legs not answered yet.
    pub legs_ringing: usize,
    /// Messages re-sent on a timer, since start.
    pub retransmissions: u64,
    /// Datagrams and stream messages that did not parse, since start.
    pub parse_errors: u64,
    pub registered_devices: usize,
    /// Sources banned now, bans since start, datagrams dropped from them.
    pub bans_active: usize,
    pub bans_total: u64,
    pub banned_dropped: u64,
    /// Calls that ended, since start, and how many of them were answered.
    pub calls_ended: u64,
    pub calls_completed: u64,
    pub registrations: u64,
    /// New INVITEs and REGISTERs refused with 503 because the transaction
    /// table was past its threshold, since start.
    pub overload_refused: u64,
    /// Times each limit was reached, since start.
    pub limit_hits: crate::limits::LimitCounts,
}

/// The engine's running totals.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub parse_errors: u64,
    pub calls_ended: u64,
    pub calls_completed: u64,
    pub registrations: u64,
    pub overload_refused: u64,
}

impl Counters {
    pub(crate) fn snapshot(self) -> Stats {
        Stats {
            calls_ended: self.calls_ended,
            calls_completed: self.calls_completed,
            registrations: self.registrations,
            parse_errors: self.parse_errors,
            overload_refused: self.overload_refused,
            ..Stats::default()
        }
    }
}
