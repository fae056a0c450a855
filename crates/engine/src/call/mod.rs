//! A call: the caller's dialog, the plan it follows, its legs, and its
//! state, as types. The engine's call logic is split by job:
//!
//! - [`table`]: the table of calls, its indexes, and the one timer table
//!   for everything a call arms;
//! - [`fork`]: a new call is routed and a tier of users is forked, one leg
//!   per device; the legs' answers decide who wins;
//! - [`plan`]: the call carries its plan out: tier after tier (cascade),
//!   each checked again when its turn comes, then the destination (hang up,
//!   ring a group, another number, forward through the trunk);
//! - [`redirect`]: a device's 3xx, followed inside the workspace;
//! - [`reliable`]: reliable provisionals (RFC 3262) on each side;
//! - [`relay`]: requests inside an established call pass from one side to
//!   the other (BYE, re-INVITE, UPDATE, INFO, ACK);
//! - [`answer`]: the destinations where the daemon answers (message,
//!   voicemail, IVR), through the media runtime;
//! - [`liveness`]: in-dialog OPTIONS to both sides of an answered call,
//!   so a side that vanished without a BYE ends the call;
//! - [`session_timer`]: session timers (RFC 4028) instead of the probes on
//!   a side that supports them;
//! - [`end`]: the single exit of a call, which releases busy state and
//!   emits the call record.
//!
//! It must not do IO or read a clock; it speaks through the engine's
//! transaction layer and output queue.

mod answer;
mod end;
mod fork;
mod liveness;
mod plan;
mod redirect;
mod relay;
mod reliable;
mod sdp;
mod session_timer;
mod table;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use directory::{NumberIdx, UserIdx};
use jiff::Timestamp;
use presence::Lease;
use routing::{Gate, MemberVerdict, Plan};
use sip::dialog::Dialog;
use sip::transaction::TxId;
use sip::Message;

use crate::events::LegOutcome;
use crate::Workspace;

pub use table::CallCounts;
pub(crate) use table::{CallKey, Calls};

/// A leg's place in its call's list of legs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct LegId(pub(crate) u16);

/// What a call arms in the timer table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum CallTimer {
    /// The current tier rang for its timeout.
    RingTimeout,
    /// An answered call reached the maximum duration.
    MaxDuration,
    /// A minute of ringing: the caller gets another provisional (§13.3.1.1)
    /// so that an upstream Timer C does not give up.
    StillRinging,
    /// A menu waited for a key long enough, or a recording reached its
    /// maximum length.
    Media,
    /// The caller's reliable provisional is due again (RFC 3262 §3).
    ReliableProvisional,
    /// Time to check both sides are still there (in-dialog OPTIONS).
    Liveness,
    /// The caller's session timer: refresh it, or it expired.
    SessionCaller,
    /// The answering leg's session timer.
    SessionCallee,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallState {
    Ringing,
    /// Answered by this leg.
    Answered(LegId),
    /// Answered by the daemon itself (voicemail, IVR).
    Media,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LegState {
    /// INVITE sent, nothing heard: a CANCEL must wait (RFC 3261 §9.1).
    Calling,
    /// A provisional response came: the leg can be cancelled.
    Ringing,
    Answered,
    /// Final non-2xx, timeout, or cancelled.
    Done,
}

/// Which side of a call a request came from or goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Caller,
    Leg(LegId),
}

/// Whom a leg calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LegTarget {
    /// One registered device of a user. (Legs to a trunk, for forwarding and
    /// outbound calls, and to the media endpoint, for IVR and voicemail,
    /// are further variants when those land.)
    Device {
        user: UserIdx,
        user_id: Box<str>,
        contact: String,
    },
    /// An external number through a trunk's outbound side (`forward`).
    Trunk { trunk: Box<str>, to: String },
}

impl LegTarget {
    /// Who and where, as records and the admin API name them: the user id
    /// and the device's Contact, or `trunk:NAME` and the number.
    pub(crate) fn party(&self) -> (String, String) {
        match self {
            LegTarget::Device {
                user_id, contact, ..
            } => (user_id.to_string(), contact.clone()),
            LegTarget::Trunk { trunk, to } => (format!("trunk:{trunk}"), to.clone()),
        }
    }

    /// The user this leg rings, if it rings one.
    pub(crate) fn user(&self) -> Option<(UserIdx, &str)> {
        match self {
            LegTarget::Device { user, user_id, .. } => Some((*user, user_id)),
            LegTarget::Trunk { .. } => None,
        }
    }
}

/// One outbound INVITE of a call and the dialog it creates.
pub(crate) struct Leg {
    pub(crate) target: LegTarget,
    pub(crate) tx: TxId,
    pub(crate) dialog: Dialog,
    pub(crate) invite_cseq: u32,
    pub(crate) state: LegState,
    pub(crate) cancel_requested: bool,
    pub(crate) cancel_sent: bool,
    /// Cancelled because its user became busy elsewhere: counts as busy.
    pub(crate) cancelled_busy: bool,
    /// The `Reason` its CANCEL carries (when another leg answered).
    pub(crate) cancel_reason: Option<&'static str>,
    /// A trunk leg answered its carrier's challenge already.
    pub(crate) auth_tried: bool,
    /// The leg's first provisional past 100 came; its To (kept as written,
    /// in `early_to`) is read only if an early-dialog request needs it.
    pub(crate) early_dialog: bool,
    pub(crate) early_to: Option<Box<str>>,
    /// A trunk leg's INVITE, to send again with credentials (the
    /// transaction lets its copy go once answered).
    pub(crate) retry: Option<Box<Message>>,
    /// The RSeq of the last reliable provisional PRACKed (RFC 3262 §4).
    pub(crate) last_rseq: Option<u32>,
    /// For the call record; `None` while the leg is still up.
    pub(crate) outcome: Option<LegOutcome>,
    /// The ACK for this leg's 2xx, re-sent when the 2xx is.
    pub(crate) ack: Option<Bytes>,
    /// Tags of other dialogs a forking proxy behind the leg answered with,
    /// already ACKed and BYEd (§13.2.2.4): their 2xx retransmissions are
    /// ACKed again, not ended again.
    pub(crate) ended_forks: Vec<Box<str>>,
}

impl Leg {
    /// A leg whose INVITE (CSeq 1) just went out in transaction `tx`; its
    /// dialog is ours until the other side answers.
    pub(crate) fn new(target: LegTarget, tx: TxId, dialog: Dialog) -> Leg {
        Leg {
            target,
            tx,
            dialog,
            invite_cseq: 1,
            state: LegState::Calling,
            cancel_requested: false,
            cancel_sent: false,
            cancelled_busy: false,
            cancel_reason: None,
            auth_tried: false,
            retry: None,
            early_dialog: false,
            early_to: None,
            last_rseq: None,
            outcome: None,
            ack: None,
            ended_forks: Vec::new(),
        }
    }

    /// Marks the leg over with `outcome`, unless it already has one.
    pub(crate) fn finish(&mut self, outcome: LegOutcome) {
        self.state = LegState::Done;
        self.outcome.get_or_insert(outcome);
    }
}

/// The caller's side: the server INVITE transaction and our dialog with it.
pub(crate) struct Caller {
    pub(crate) tx: TxId,
    pub(crate) dialog: Dialog,
    pub(crate) invite_cseq: u32,
    /// The caller's From URI, for the record.
    pub(crate) uri: String,
    /// The INVITE had no SDP: the leg's 2xx carries the offer and the
    /// caller's ACK the answer, so the leg's ACK waits for it.
    pub(crate) late_offer: bool,
    pub(crate) sent_ringing: bool,
    /// An 18x with a leg's SDP went to the caller (early media).
    pub(crate) sent_early_media: bool,
    /// The caller ACKed our 2xx.
    pub(crate) acked: bool,
    /// The call came from a trunk (its identity headers are trusted).
    pub(crate) from_trunk: bool,
    /// The daemon answered the caller itself (voicemail, IVR): no more
    /// provisionals, and whoever answers later is bridged by RTP relay.
    pub(crate) answered_by_us: bool,
    /// The INVITE, kept once the daemon answered (its transaction lets it
    /// go) for the legs a menu's choice rings.
    pub(crate) invite: Option<Box<Message>>,
    /// The caller supports or requires 100rel: provisionals go reliably.
    pub(crate) reliable: Option<Box<reliable::ReliableProvisionals>>,
}

/// A re-INVITE relayed from one side to the other, waiting for the ACK.
pub(crate) struct RelayedInvite {
    pub(crate) from_side: Side,
    pub(crate) server_tx: TxId,
    pub(crate) client_tx: TxId,
    pub(crate) cseq: u32,
    pub(crate) ack: Option<Bytes>,
    /// Its sender cancelled it before the other side said anything: the
    /// CANCEL waits for a provisional (§9.1).
    pub(crate) cancel_pending: bool,
}

pub(crate) struct Call<V> {
    /// The snapshot the call was routed with, kept until it ends: its user
    /// indices, and the presence view its lease goes back to.
    pub(crate) workspace: Arc<Workspace<V>>,
    /// The number the call is for: the one dialled, or for an outbound
    /// call the caller's line (none for a call to a colleague, or an
    /// emergency call from a user without a line).
    pub(crate) number: Option<NumberIdx>,
    pub(crate) dialled: String,
    pub(crate) direction: crate::events::Direction,
    /// The workspace user who placed the call (outbound and internal).
    pub(crate) caller_user: Option<UserIdx>,
    pub(crate) caller: Caller,
    /// What the call does, and how far it got: the tier being rung, the
    /// first of its legs, and when the whole attempt must stop.
    pub(crate) plan: Plan,
    pub(crate) step: usize,
    pub(crate) tier_from: usize,
    pub(crate) attempt_deadline: Instant,
    /// Users who declined this call (a cascade does not ring them again).
    pub(crate) declined: Vec<UserIdx>,
    /// For the record: every user who did not ring, with the last gate
    /// that stopped them (when the call was routed, or when their turn came).
    pub(crate) skipped: Vec<MemberVerdict>,
    /// Destinations followed so far (bounded: a plan may not go on forever).
    pub(crate) destinations: u8,
    /// The answering phone hung up before the caller ACKed the 200: the
    /// caller's BYE waits for the ACK (§15).
    pub(crate) callee_hung_up: bool,
    pub(crate) legs: Vec<Leg>,
    pub(crate) state: CallState,
    /// The answering user's occupancy, held from answer to end.
    pub(crate) lease: Option<Lease>,
    /// The calling user's, over the same span (a user placing a call is
    /// busy with it like one taking a call).
    pub(crate) caller_lease: Option<Lease>,
    pub(crate) relayed_invite: Option<RelayedInvite>,
    /// The daemon's own media for this call (message, voicemail, IVR).
    pub(crate) media: Option<Box<answer::MediaCall>>,
    /// The SDP legs are offered instead of the caller's: the relay's port,
    /// once the daemon answered the caller.
    pub(crate) leg_offer: Option<Bytes>,
    /// This call's entries in the timer table, removed when it ends.
    pub(crate) timers: Vec<(Instant, CallTimer)>,
    pub(crate) started: Timestamp,
    /// When the INVITE came, and whether the minute-by-minute provisional
    /// is armed (only for calls that may ring that long).
    pub(crate) arrived: Instant,
    pub(crate) still_ringing: bool,
    pub(crate) answered: Option<Timestamp>,
    /// The caller reached a mailbox (its recording started).
    pub(crate) voicemail: bool,
    /// Liveness probes sent and not answered yet.
    pub(crate) probes: liveness::Probes,
    /// Each side's session timer (RFC 4028), where one was negotiated.
    pub(crate) session_timers: session_timer::SessionTimers,
}

/// What the admin API shows of a call in progress.
pub(crate) fn info<V>(call: &Call<V>) -> crate::events::CallInfo {
    let (state, answered_by) = match call.state {
        CallState::Ringing => ("ringing", None),
        CallState::Answered(leg) => (
            "answered",
            call.legs.get(usize::from(leg.0)).map(|l| l.target.party()),
        ),
        CallState::Media => ("media", None),
    };
    crate::events::CallInfo {
        call_id: call.caller.dialog.call_id.clone(),
        direction: call.direction,
        dialled: call.dialled.clone(),
        number: call.e164(),
        caller: call.caller.uri.clone(),
        state,
        ringing: call
            .legs
            .iter()
            .filter(|l| matches!(l.state, LegState::Calling | LegState::Ringing))
            .map(|l| l.target.party())
            .collect(),
        answered_by,
        started: call.started,
        answered: call.answered,
    }
}

/// The caller's INVITE: from its transaction, or the copy the call kept
/// once the daemon answered it (the transaction lets it go). Takes the two
/// tables rather than the engine, so the id generator stays free to use.
pub(crate) fn caller_invite<'a, V>(
    tl: &'a sip::transaction::Transactions<crate::TxCtx>,
    calls: &'a Calls<V>,
    key: CallKey,
) -> Option<&'a Message> {
    let call = calls.get(key)?;
    tl.request(call.caller.tx).or(call.caller.invite.as_deref())
}

/// The Content-Type and body a leg's INVITE offers: the relay's SDP once
/// the daemon answered the caller, else the caller's own.
pub(crate) fn leg_offer<V>(
    calls: &Calls<V>,
    key: CallKey,
    invite: &Message,
) -> (Option<String>, Bytes) {
    match calls.get(key).and_then(|c| c.leg_offer.clone()) {
        Some(offer) => (Some("application/sdp".to_string()), offer),
        None => (
            invite
                .header(sip::HeaderName::ContentType)
                .map(str::to_string),
            invite.body().clone(),
        ),
    }
}

impl<V> Call<V> {
    /// The call's number in E.164 (see [`Call::number`]).
    pub(crate) fn e164(&self) -> Option<String> {
        self.number
            .map(|n| self.workspace.directory.number(n).e164.clone())
    }

    /// The number whose plan the call follows now (a destination may have
    /// moved it to another), else the one it was placed to or from.
    pub(crate) fn current_number(&self) -> Option<directory::NumberIdx> {
        self.plan.number.or(self.number)
    }

    pub(crate) fn leg(&self, id: LegId) -> Option<&Leg> {
        self.legs.get(usize::from(id.0))
    }

    pub(crate) fn leg_mut(&mut self, id: LegId) -> Option<&mut Leg> {
        self.legs.get_mut(usize::from(id.0))
    }

    /// Records that `user` was skipped by `gate` (the latest gate wins).
    pub(crate) fn note_skipped(&mut self, user: UserIdx, gate: Gate) {
        match self.skipped.iter_mut().find(|v| v.user == user) {
            Some(v) => v.stopped_by = Some(gate),
            None => self.skipped.push(MemberVerdict {
                user,
                stopped_by: Some(gate),
            }),
        }
    }

    /// Gives every ringing leg whose first provisional had a To tag its
    /// early dialog (§12.1), for an UPDATE or INFO before the answer.
    pub(crate) fn settle_early_dialogs(&mut self) {
        for leg in &mut self.legs {
            if leg.state != LegState::Ringing {
                continue;
            }
            if let Some(to) = leg.early_to.take() {
                if !sip::dialog::tag_of(&to).is_empty() {
                    // Their tag; the target stays the Contact we called.
                    leg.dialog.remote = to.into();
                    leg.dialog.remote_cseq = None;
                }
            }
        }
    }

    /// Every leg of the tier being rung has ended.
    pub(crate) fn tier_done(&self) -> bool {
        self.legs[self.tier_from.min(self.legs.len())..]
            .iter()
            .all(|l| l.state == LegState::Done)
    }

    /// 486 when every device was busy (or its user became busy), else 480;
    /// an outbound call gives its caller the carrier's own refusal.
    pub(crate) fn failure_status(&self) -> u16 {
        if self.direction == crate::events::Direction::Outbound {
            if let Some(LegOutcome::Refused(status)) = self.legs.last().and_then(|l| l.outcome) {
                return match status {
                    // The carrier refused the trunk's credentials: not a
                    // challenge the phone could answer.
                    401 | 407 => 403,
                    // §16.7: a 503 is not passed on (it would take the
                    // daemon for the unavailable one).
                    503 => 500,
                    300..=399 => 480,
                    other => other,
                };
            }
        }
        // A leg that sent the call on (a followed redirect) is not who failed.
        let mut tried = self.legs.iter().filter(|l| {
            !matches!(
                l.outcome,
                Some(LegOutcome::Redirected { followed: true, .. })
            )
        });
        let all_busy = tried.clone().next().is_some()
            && tried.all(|l| {
                l.cancelled_busy || matches!(l.outcome, Some(LegOutcome::Refused(486 | 600)))
            });
        if all_busy {
            486
        } else {
            480
        }
    }

    /// The other side of a request from `side`: an answered call's caller
    /// and winning leg talk to each other; anything else goes to the caller.
    pub(crate) fn other_side(&self, side: Side) -> Side {
        match (side, self.state) {
            (Side::Caller, CallState::Answered(winner)) => Side::Leg(winner),
            _ => Side::Caller,
        }
    }

    pub(crate) fn dialog(&self, side: Side) -> Option<&Dialog> {
        match side {
            Side::Caller => Some(&self.caller.dialog),
            Side::Leg(id) => self.leg(id).map(|l| &l.dialog),
        }
    }

    pub(crate) fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::Caller => Some(&mut self.caller.dialog),
            Side::Leg(id) => self.leg_mut(id).map(|l| &mut l.dialog),
        }
    }
}
