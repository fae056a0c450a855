//! How calls end. Busy state has one owner: a call holds the answering
//! user's lease from the moment the leg is answered, and
//! [`Engine::end_call`] is the only place that removes a call and releases
//! it. Every way a call can end (BYE from either side, CANCEL, failure,
//! ring timeout, a 2xx never ACKed, the maximum duration) goes through it,
//! so no count can leak, and each emits exactly one call record.

use std::time::Instant;

use jiff::Timestamp;
use presence::Occupancy;
use routing::Plan;
use sip::build::{reason_phrase, response_to};
use sip::Method;

use super::fork::RequestSummary;
use super::plan::TierEnd;
use super::{Call, CallKey, CallState, CallTimer, LegState, Side};
use crate::events::{CallOutcome, CallRecord, LegOutcome, Party, RingAttempt, Skipped};
use crate::{Backend, Engine, Event, TxCtx, Workspace};

impl<B: Backend> Engine<B> {
    pub(crate) fn on_call_timer(&mut self, now: Instant, key: CallKey, timer: CallTimer) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        match (timer, call.state) {
            (CallTimer::RingTimeout, CallState::Ringing) => {
                self.tier_over(now, key, TierEnd::TimedOut)
            }
            (CallTimer::StillRinging, CallState::Ringing) => {
                let inbound_tx = call.caller.tx;
                let tag = call.caller.dialog.local_tag().to_string();
                let (status, reason) = if call.caller.sent_early_media {
                    (183, "Session Progress")
                } else {
                    (180, "Ringing")
                };
                let transport = call.caller.dialog.peer.transport;
                let contact = sip::build::contact_value(self.local_addr(transport), transport);
                if let Some(req) = self.tl.request(inbound_tx) {
                    let mut again = response_to(req, status, reason, Some(&tag), true);
                    again.push(sip::HeaderName::Contact, &contact);
                    self.send_provisional(now, key, again);
                }
                self.calls.arm(
                    key,
                    now + super::fork::STILL_RINGING,
                    CallTimer::StillRinging,
                );
            }
            (CallTimer::ReliableProvisional, _) => self.on_reliable_timer(now, key),
            (CallTimer::Liveness, _) => self.on_liveness_timer(now, key),
            (CallTimer::SessionCaller, _) => self.on_session_timer(now, key, true),
            (CallTimer::SessionCallee, _) => self.on_session_timer(now, key, false),
            (CallTimer::Media, _) => self.on_media_timer(now, key),
            (CallTimer::MaxDuration, CallState::Media) => {
                self.send_bye(now, key, Side::Caller);
                self.end_call(now, key, CallOutcome::MaxDuration);
            }
            (CallTimer::MaxDuration, CallState::Answered(winner)) => {
                if !call.callee_hung_up {
                    self.send_bye(now, key, Side::Leg(winner));
                }
                self.send_bye(now, key, Side::Caller);
                self.end_call(now, key, CallOutcome::MaxDuration);
            }
            _ => {}
        }
    }

    /// Sends BYE on one side of a call.
    pub(crate) fn send_bye(&mut self, now: Instant, key: CallKey, side: Side) {
        let Some(dialog) = self.calls.get_mut(key).and_then(|c| c.dialog_mut(side)) else {
            return;
        };
        let local = crate::addressing::local_addr(&self.cfg, dialog.peer.transport);
        let bye = dialog.request(&mut self.ids, local, Method::Bye);
        let to = dialog.next_hop();
        self.tl.new_client(now, to, bye, TxCtx::Fire);
    }

    /// Ends a call that never got answered: the caller hears `status`.
    pub(crate) fn fail_call(
        &mut self,
        now: Instant,
        key: CallKey,
        status: u16,
        outcome: CallOutcome,
    ) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        tracing::debug!(call_id = %call.caller.dialog.call_id, status, "call failed");
        if call.caller.answered_by_us {
            // Answered already (a menu's choice rang nobody): hang up.
            self.send_bye(now, key, Side::Caller);
            return self.end_call(now, key, outcome);
        }
        let inbound_tx = call.caller.tx;
        let tag = call.caller.dialog.local_tag().to_string();
        if let Some(req) = self.tl.request(inbound_tx) {
            let reply = response_to(req, status, reason_phrase(status), Some(&tag), false);
            self.tl.respond(now, inbound_tx, &reply);
        }
        self.end_call(now, key, outcome);
    }

    pub(crate) fn on_caller_cancelled(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        match call.state {
            CallState::Ringing => self.fail_call(now, key, 487, CallOutcome::CallerCancelled),
            // Answered, but the 200 still waits for a PRACK: the caller
            // never had it, so the CANCEL wins and the device is hung up.
            CallState::Answered(winner)
                if call
                    .caller
                    .reliable
                    .as_ref()
                    .is_some_and(|r| r.holds_answer()) =>
            {
                self.send_bye(now, key, Side::Leg(winner));
                self.fail_call(now, key, 487, CallOutcome::CallerCancelled);
            }
            CallState::Answered(_) | CallState::Media => {}
        }
    }

    /// §13.3.1.4: our 2xx was never acknowledged; end the session.
    pub(crate) fn on_caller_never_acked(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let callee_gone = call.callee_hung_up;
        if let CallState::Answered(winner) = call.state {
            if !callee_gone {
                self.send_bye(now, key, Side::Leg(winner));
            }
            self.send_bye(now, key, Side::Caller);
        } else if call.state == CallState::Media {
            self.send_bye(now, key, Side::Caller);
        }
        self.end_call(now, key, CallOutcome::NotAcknowledged);
    }

    /// The single exit of a call: releases the busy lease, forgets the
    /// dialogs and timers, stops any device still ringing, and emits the
    /// call record.
    pub(crate) fn end_call(&mut self, now: Instant, key: CallKey, outcome: CallOutcome) {
        let Some(mut call) = self.calls.remove(key) else {
            return;
        };
        for lease in [call.lease.take(), call.caller_lease.take()]
            .into_iter()
            .flatten()
        {
            let active_calls = call.workspace.presence.release(&lease);
            let busy = active_calls >= self.max_calls_now(&lease.user);
            self.emit(Event::BusyChanged {
                user: lease.user,
                active_calls,
                busy,
            });
        }
        if let Some(media) = call.media.take() {
            let session = media.session;
            self.out
                .push_back(crate::Output::Media(crate::media::MediaCommand::Close {
                    session,
                }));
            self.media_ports.give_back(media.port);
            if let Some(port) = media.relay_port {
                self.media_ports.give_back(port);
            }
        }
        for leg in &mut call.legs {
            if leg.state == LegState::Ringing && !leg.cancel_sent {
                leg.cancel_sent = true;
                let tx = leg.tx;
                self.send_cancel(now, tx, None);
            }
            // Legs still `Calling` are cancelled when their first 1xx comes
            // (the provisional handler finds the call gone).
            if matches!(leg.state, LegState::Calling | LegState::Ringing) {
                leg.finish(LegOutcome::Cancelled);
            }
        }
        tracing::debug!(
            call_id = %call.caller.dialog.call_id,
            number = call.e164().as_deref().unwrap_or(""),
            ?outcome,
            "call ended"
        );
        self.counters.calls_ended += 1;
        if call.answered.is_some() {
            self.counters.calls_completed += 1;
        }
        let record = record_of(&call, self.clock.timestamp(now), outcome);
        self.emit(Event::CallEnded(Box::new(record)));
    }

    /// Tells the record store that the call is up (see [`Event::CallAnswered`]).
    pub(crate) fn announce_answered(&mut self, key: CallKey) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let at = call.answered.unwrap_or(call.started);
        let record = record_of(call, at, CallOutcome::Interrupted);
        self.emit(Event::CallAnswered(Box::new(record)));
    }

    /// The record of an INVITE refused before any leg existed.
    pub(crate) fn reject_record(
        &mut self,
        workspace: &Workspace<B::View>,
        refused: Refused,
        plan: &Plan,
        at: Timestamp,
    ) {
        self.counters.calls_ended += 1;
        let Refused {
            summary,
            dialled,
            direction,
            caller_user,
            status,
        } = refused;
        let record = CallRecord {
            call_id: summary.call_id,
            direction,
            caller_user: caller_user.map(|u| workspace.directory.user(u).id.clone()),
            number: plan
                .number
                .map(|n| workspace.directory.number(n).e164.clone()),
            dialled,
            caller: summary.caller,
            started: at,
            answered: None,
            ended: at,
            rang: Vec::new(),
            answered_by: None,
            skipped: skipped(workspace, &plan.skipped),
            voicemail: false,
            outcome: CallOutcome::Rejected { status },
        };
        self.emit(Event::CallEnded(Box::new(record)));
    }

    /// A user's `max_calls` in the workspace new calls are routed with (it
    /// may have changed since a call was routed); 1 for a user since removed.
    pub(crate) fn max_calls_now(&self, user: &str) -> u32 {
        let workspace = self.workspace.load();
        workspace
            .directory
            .user_index(user)
            .map_or(1, |i| workspace.directory.user(i).max_calls)
    }

    /// The daemon stops and its grace period is over: every call ends, with
    /// a BYE on each side that is up and 503 to a caller still ringing.
    /// Returns how many calls there were.
    pub(crate) fn hang_up_all(&mut self, now: Instant) -> usize {
        let keys = self.calls.keys();
        for &key in &keys {
            let Some(call) = self.calls.get(key) else {
                continue;
            };
            match call.state {
                CallState::Answered(winner) => {
                    if !call.callee_hung_up {
                        self.send_bye(now, key, Side::Leg(winner));
                    }
                    self.send_bye(now, key, Side::Caller);
                    self.end_call(now, key, CallOutcome::Shutdown);
                }
                CallState::Media => {
                    self.send_bye(now, key, Side::Caller);
                    self.end_call(now, key, CallOutcome::Shutdown);
                }
                CallState::Ringing => {
                    self.fail_call(now, key, 503, CallOutcome::Rejected { status: 503 })
                }
            }
        }
        keys.len()
    }

    /// A stream connection closed (its transactions already ended, so a leg
    /// ringing over it has failed): every call with an answered side over
    /// it ends. The other side of an answered call gets a BYE; a caller
    /// whose own connection went is gone, and its legs stop ringing.
    pub(crate) fn connection_lost(&mut self, now: Instant, connection: u64) {
        let over = |peer: sip::transaction::Peer| {
            matches!(
                peer.transport,
                sip::transaction::Transport::Tcp(id) | sip::transaction::Transport::Tls(id)
                    if id == connection
            )
        };
        for key in self.calls.keys() {
            let Some(call) = self.calls.get(key) else {
                continue;
            };
            let caller_lost = over(call.caller.dialog.peer);
            let winner_lost = match call.state {
                CallState::Answered(winner) => {
                    call.leg(winner).is_some_and(|l| over(l.dialog.peer))
                }
                _ => false,
            };
            if !caller_lost && !winner_lost {
                continue;
            }
            tracing::info!(call_id = %call.caller.dialog.call_id, caller_lost, "a phone's connection closed during its call");
            // Gone without a BYE is hung up, as far as the call goes (a
            // caller's INVITE transaction went with the connection, so a
            // ringing call ends without a response nobody could get).
            if caller_lost {
                self.hang_up(now, key, Side::Caller);
            } else if let CallState::Answered(winner) = call.state {
                self.hang_up(now, key, Side::Leg(winner));
            }
        }
    }

    /// BYE from `side` of an answered call (or `side` gone without one: its
    /// connection closed, or its liveness probe failed): the other side is
    /// hung up too. No BYE to a caller before it ACKs our 2xx (§15).
    pub(crate) fn hang_up(&mut self, now: Instant, key: CallKey, side: Side) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        match (call.state, side) {
            (CallState::Answered(winner), Side::Caller) => {
                if !call.callee_hung_up {
                    self.send_bye(now, key, Side::Leg(winner));
                }
                let outcome = CallOutcome::Completed {
                    hung_up_by: Party::Caller,
                };
                self.end_call(now, key, outcome);
            }
            (CallState::Answered(winner), Side::Leg(leg)) if leg == winner => {
                if !call.caller.acked {
                    // §15: no BYE to the caller before it ACKs our 2xx.
                    if let Some(call) = self.calls.get_mut(key) {
                        call.callee_hung_up = true;
                    }
                    return;
                }
                self.send_bye(now, key, Side::Caller);
                let outcome = CallOutcome::Completed {
                    hung_up_by: Party::Callee,
                };
                self.end_call(now, key, outcome);
            }
            (CallState::Ringing, Side::Caller) if call.caller.answered_by_us => {
                // Hung up while a menu's choice rang.
                let outcome = CallOutcome::Completed {
                    hung_up_by: Party::Caller,
                };
                self.end_call(now, key, outcome);
            }
            (CallState::Ringing, Side::Caller) => {
                self.fail_call(now, key, 487, CallOutcome::CallerCancelled)
            }
            (CallState::Media, Side::Caller) => {
                let outcome = CallOutcome::Completed {
                    hung_up_by: Party::Caller,
                };
                self.end_call(now, key, outcome);
            }
            _ => {}
        }
    }
}

/// A user's or trunk's INVITE refused before any call existed, as its
/// record needs it.
pub(crate) struct Refused {
    pub(crate) summary: RequestSummary,
    pub(crate) dialled: String,
    pub(crate) direction: crate::events::Direction,
    pub(crate) caller_user: Option<directory::UserIdx>,
    pub(crate) status: u16,
}

/// Every member who did not ring, with its gate.
fn skipped<V>(workspace: &Workspace<V>, verdicts: &[routing::MemberVerdict]) -> Vec<Skipped> {
    verdicts
        .iter()
        .filter_map(|v| {
            v.stopped_by.map(|gate| Skipped {
                user: workspace.directory.user(v.user).id.clone(),
                gate,
            })
        })
        .collect()
}

fn record_of<V>(call: &Call<V>, ended: Timestamp, outcome: CallOutcome) -> CallRecord {
    let answered_by = match call.state {
        CallState::Answered(leg) => Some(usize::from(leg.0)),
        CallState::Media => None,
        CallState::Ringing => None,
    };
    let skipped = skipped(&call.workspace, &call.skipped);
    let number = call.e164();
    let caller_user = call
        .caller_user
        .map(|u| call.workspace.directory.user(u).id.clone());
    let rang = call
        .legs
        .iter()
        .map(|leg| {
            let (user, device) = leg.target.party();
            RingAttempt {
                user,
                device,
                outcome: leg.outcome.unwrap_or(LegOutcome::Cancelled),
            }
        })
        .collect();
    CallRecord {
        call_id: call.caller.dialog.call_id.clone(),
        direction: call.direction,
        caller_user,
        number,
        dialled: call.dialled.clone(),
        caller: call.caller.uri.clone(),
        started: call.started,
        answered: call.answered,
        ended,
        rang,
        answered_by,
        skipped,
        voicemail: call.voicemail,
        outcome,
    }
}
