//! Reliable provisional responses (RFC 3262), hop by hop on each side of
//! the B2BUA:
//!
//! - toward a caller that supports or requires `100rel`, every provisional
//!   past 100 goes reliably: with an RSeq, re-sent (T1, doubling) until its
//!   PRACK comes, one at a time (the next waits in a queue of one), and a
//!   2xx waits for the PRACK of a provisional that carried SDP (§3);
//! - from a phone or carrier, a reliable provisional is PRACKed in its
//!   early dialog, once, in RSeq order (§4); out-of-order ones are ignored.
//!
//! It must not relay PRACKs across the call: each side's reliability is
//! its own.

use std::time::{Duration, Instant};

use sip::build::response_to;
use sip::dialog::{tag_of, Dialog};
use sip::reliable::{RAck, MAX_RSEQ};
use sip::transaction::TxId;
use sip::{HeaderName, Message, Method};

use super::{CallKey, CallState, CallTimer, LegId, Side};
use crate::addressing::local_addr;
use crate::events::CallOutcome;
use crate::{Backend, Engine, TxCtx};

/// The caller's side of RFC 3262, for a caller that asked for it.
pub(crate) struct ReliableProvisionals {
    /// The caller requires 100rel (else it only supports it).
    required: bool,
    next_rseq: u32,
    unacked: Option<Unacked>,
    /// The next provisional, sent once `unacked` is PRACKed.
    queued: Option<Message>,
    /// A 2xx waiting for the PRACK of a provisional with SDP (§3 MUST NOT).
    held_answer: Option<Message>,
}

/// The reliable provisional sent last and not yet PRACKed.
struct Unacked {
    rseq: u32,
    response: Message,
    has_sdp: bool,
    interval: Duration,
    give_up: Instant,
    /// False once a final response went: it is then only waited for.
    retransmitting: bool,
}

impl ReliableProvisionals {
    /// `first_rseq` comes from the engine's generator (§3: random, below 2^31).
    pub(crate) fn new(required: bool, first_rseq: u32) -> Box<ReliableProvisionals> {
        Box::new(ReliableProvisionals {
            required,
            next_rseq: first_rseq % (MAX_RSEQ / 2) + 1,
            unacked: None,
            queued: None,
            held_answer: None,
        })
    }

    pub(crate) fn required(&self) -> bool {
        self.required
    }

    /// The answer waits for a PRACK.
    pub(crate) fn holds_answer(&self) -> bool {
        self.held_answer.is_some()
    }
}

impl<B: Backend> Engine<B> {
    /// Sends a provisional to the caller: reliably if it asked for 100rel
    /// (queued behind an unacknowledged one), else as it is.
    pub(crate) fn send_provisional(&mut self, now: Instant, key: CallKey, response: Message) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let tx = call.caller.tx;
        let Some(reliable) = call.caller.reliable.as_mut() else {
            return self.tl.respond(now, tx, &response);
        };
        if !reliable.required && !response.body().is_empty() {
            // Early media to a caller that only supports 100rel goes
            // unreliably: its SDP is then no answer (RFC 3262 §5), and the
            // 200 of whichever leg wins still sets the session.
            return self.tl.respond(now, tx, &response);
        }
        if reliable.unacked.is_some() {
            // One at a time (§3); early media is not replaced by a ringing.
            let keep_queued = reliable
                .queued
                .as_ref()
                .is_some_and(|q| !q.body().is_empty() && response.body().is_empty());
            if !keep_queued {
                reliable.queued = Some(response);
            }
            return;
        }
        self.send_reliable(now, key, response);
    }

    fn send_reliable(&mut self, now: Instant, key: CallKey, mut response: Message) {
        let t1 = self.cfg.timers.t1;
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let tx = call.caller.tx;
        let Some(reliable) = call.caller.reliable.as_mut() else {
            return;
        };
        let rseq = reliable.next_rseq;
        reliable.next_rseq = rseq % MAX_RSEQ + 1;
        response.push(HeaderName::Require, sip::reliable::OPTION_TAG);
        response.push(HeaderName::RSeq, &rseq.to_string());
        self.tl.respond(now, tx, &response);
        let has_sdp = !response.body().is_empty();
        reliable.unacked = Some(Unacked {
            rseq,
            response,
            has_sdp,
            interval: t1,
            give_up: now + t1 * 64,
            retransmitting: true,
        });
        self.calls
            .arm(key, now + t1, CallTimer::ReliableProvisional);
    }

    /// The 2xx for the caller: sent now, or held until the PRACK of a
    /// provisional that carried SDP. Other unacknowledged ones are no
    /// longer re-sent (§3), but their PRACK is still answered.
    pub(crate) fn send_answer(&mut self, now: Instant, key: CallKey, ok: Message) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let tx = call.caller.tx;
        if let Some(reliable) = call.caller.reliable.as_mut() {
            reliable.queued = None;
            if let Some(unacked) = reliable.unacked.as_mut() {
                if unacked.has_sdp {
                    reliable.held_answer = Some(ok);
                    return;
                }
                unacked.retransmitting = false;
                self.calls.disarm(key, CallTimer::ReliableProvisional);
            }
        }
        self.tl.respond(now, tx, &ok);
    }

    /// Re-sends the unacknowledged provisional, or gives up after 64*T1:
    /// the caller gets a 5xx (§3) and the call ends.
    pub(crate) fn on_reliable_timer(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let tx = call.caller.tx;
        let state = call.state;
        let Some(unacked) = call
            .caller
            .reliable
            .as_mut()
            .and_then(|r| r.unacked.as_mut())
            .filter(|u| u.retransmitting)
        else {
            return;
        };
        if now >= unacked.give_up {
            tracing::info!("the caller never acknowledged a reliable provisional (PRACK)");
            let callee_gone = self.calls.get(key).is_some_and(|c| c.callee_hung_up);
            if let (CallState::Answered(winner), false) = (state, callee_gone) {
                self.send_bye(now, key, Side::Leg(winner));
            }
            return self.fail_call(now, key, 500, CallOutcome::Failed { status: 500 });
        }
        unacked.interval *= 2;
        let next = (now + unacked.interval).min(unacked.give_up);
        let again = unacked.response.clone();
        self.tl.respond(now, tx, &again);
        self.calls.arm(key, next, CallTimer::ReliableProvisional);
    }

    /// A PRACK from the caller (`server_tx` holds it).
    pub(crate) fn on_prack(&mut self, now: Instant, key: CallKey, server_tx: TxId) {
        let rack = self.tl.request(server_tx).and_then(RAck::of);
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let invite_cseq = call.caller.invite_cseq;
        let ringing = call.state == CallState::Ringing;
        let tx = call.caller.tx;
        let tag = call.caller.dialog.local_tag().to_string();
        let acked = match (call.caller.reliable.as_mut(), rack) {
            (Some(reliable), Some(rack)) => {
                let matches = reliable.unacked.as_ref().is_some_and(|u| {
                    u.rseq == rack.rseq && rack.cseq == invite_cseq && rack.method == Method::Invite
                });
                matches.then(|| {
                    reliable.unacked = None;
                    (reliable.held_answer.take(), reliable.queued.take())
                })
            }
            _ => None,
        };
        let Some((held_answer, queued)) = acked else {
            // §3: a PRACK that matches no unacknowledged provisional.
            return self.respond_plain(now, server_tx, 481);
        };
        self.calls.disarm(key, CallTimer::ReliableProvisional);
        if let Some(req) = self.tl.request(server_tx) {
            let ok = response_to(req, 200, "OK", Some(&tag), false);
            self.tl.respond(now, server_tx, &ok);
        }
        if let Some(answer) = held_answer {
            self.tl.respond(now, tx, &answer);
        } else if let (Some(next), true) = (queued, ringing) {
            self.send_reliable(now, key, next);
        }
    }

    /// A reliable provisional from a leg (RSeq `rseq`): PRACKed in its
    /// early dialog when it is the next in order. False when it is a
    /// retransmission or out of order, and must not be processed further.
    pub(crate) fn prack_leg(
        &mut self,
        now: Instant,
        key: CallKey,
        leg_id: LegId,
        tx: TxId,
        response: &Message,
        rseq: u32,
    ) -> bool {
        let Some(rack) = RAck::for_response(response, rseq) else {
            return false;
        };
        let (Some(request), Some(peer)) = (self.tl.request(tx), self.tl.peer(tx)) else {
            return false;
        };
        let Some(leg) = self.calls.get_mut(key).and_then(|c| c.leg_mut(leg_id)) else {
            return false;
        };
        let tag = tag_of(response.header(HeaderName::To).unwrap_or(""));
        let their_dialog = leg.dialog.remote_tag().is_empty() || leg.dialog.remote_tag() == tag;
        let local = local_addr(&self.cfg, peer.transport);
        let (mut prack, to) = if their_dialog {
            if leg
                .last_rseq
                .is_some_and(|last| rseq != last.wrapping_add(1))
            {
                return false;
            }
            leg.last_rseq = Some(rseq);
            // The early dialog (§12.1): their tag, target and route set.
            leg.dialog.confirm(response);
            leg.early_dialog = true;
            leg.early_to = None;
            let prack = leg.dialog.request(&mut self.ids, local, Method::Prack);
            (prack, leg.dialog.next_hop())
        } else {
            // A second early dialog (a fork behind the leg): PRACKed on its own.
            let mut dialog = Dialog::from_response(request, peer, response);
            let prack = dialog.request(&mut self.ids, local, Method::Prack);
            (prack, dialog.next_hop())
        };
        prack.push(HeaderName::RAck, &rack.value());
        self.tl.new_client(now, to, prack, TxCtx::Fire);
        true
    }
}
