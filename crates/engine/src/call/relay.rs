//! Requests inside a call: each side has its own dialog, and what one side
//! sends in it (BYE, re-INVITE, UPDATE, INFO, and the ACKs of 2xx) is
//! rebuilt in the other side's dialog, with the end-to-end headers and the
//! body passed through unchanged. One re-INVITE at a time (§14.1).

use std::time::Instant;

use bytes::Bytes;
use sip::build::{contact_value, copy_end_to_end, response_to};
use sip::transaction::{Peer, Transport, TxId};
use sip::{HeaderName, Message, Method};

use super::{CallKey, CallState, LegId, LegState, RelayedInvite, Side};
use crate::addressing::local_addr;
use crate::{Backend, Engine, TxCtx};

impl<B: Backend> Engine<B> {
    /// An ACK that no transaction absorbed: the ACK to a 2xx.
    pub(crate) fn on_ack(&mut self, now: Instant, ack: Message) {
        let Some(call_id) = ack.call_id() else {
            return;
        };
        let Some((key, side)) = self.calls.find(call_id) else {
            return;
        };
        let seq = ack.cseq().map(|c| c.seq).unwrap_or(0);
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        // The ACK of our own 2xx carries our To tag; an ACK of a 503 we sent
        // statelessly (a copy of the INVITE shed by overload or a drain)
        // carries another, and confirms nothing.
        let ours = ack.to_tag() == Some(call.caller.dialog.local_tag());
        if side == Side::Caller && seq == call.caller.invite_cseq && ours {
            self.tl.confirm_2xx(call.caller.tx);
            call.caller.acked = true;
            if call.callee_hung_up {
                // The phone's BYE waited for this ACK (§15): now it goes on.
                self.send_bye(now, key, Side::Caller);
                let outcome = crate::events::CallOutcome::Completed {
                    hung_up_by: crate::events::Party::Callee,
                };
                return self.end_call(now, key, outcome);
            }
            if call.state == CallState::Media {
                // Late offer to a session of ours: the answer says where.
                if call.caller.late_offer && !ack.body().is_empty() {
                    self.on_media_answer(key, ack.body());
                }
                return;
            }
            // Late offer: the caller's answer goes to the device in our ACK.
            if let CallState::Answered(winner) = call.state {
                let Some(leg) = call.leg_mut(winner) else {
                    return;
                };
                if leg.ack.is_none() {
                    let answer = ack
                        .header(HeaderName::ContentType)
                        .map(|ct| (ct, ack.body().clone()));
                    let local = local_addr(&self.cfg, leg.dialog.peer.transport);
                    let msg = leg
                        .dialog
                        .ack(&mut self.ids, local, leg.invite_cseq, answer);
                    let bytes = Bytes::from(msg.encode());
                    leg.ack = Some(bytes.clone());
                    let to = leg.dialog.next_hop();
                    self.transmit(to, bytes);
                }
            }
            return;
        }
        if side == Side::Caller && seq == call.caller.invite_cseq {
            return; // the ACK of a stateless refusal
        }
        // The ACK for a relayed re-INVITE: pass it on with the same body.
        let Some(relay) = call.relayed_invite.as_ref() else {
            return;
        };
        if relay.from_side != side {
            return;
        }
        self.tl.confirm_2xx(relay.server_tx);
        let relay_cseq = relay.cseq;
        let target_side = call.other_side(side);
        let Some(dialog) = call.dialog(target_side) else {
            return;
        };
        let local = local_addr(&self.cfg, dialog.peer.transport);
        let answer = ack
            .header(HeaderName::ContentType)
            .map(|ct| (ct, ack.body().clone()));
        let msg = dialog.ack(&mut self.ids, local, relay_cseq, answer);
        let bytes = Bytes::from(msg.encode());
        let to = dialog.next_hop();
        if let Some(relay) = call.relayed_invite.as_mut() {
            relay.ack = Some(bytes.clone());
        }
        self.transmit(to, bytes);
    }

    /// A request inside a dialog (BYE, re-INVITE, INFO, UPDATE, ...).
    pub(crate) fn on_in_dialog(&mut self, now: Instant, from: Peer, request: Message) {
        let method = request.method().cloned().unwrap_or(Method::Bye);
        let found = request.call_id().and_then(|id| self.calls.find(id));
        let Some((key, side)) = found else {
            self.reply_new(now, from, request, 481, None);
            return;
        };
        if let Some(call) = self.calls.get_mut(key) {
            if call.state == CallState::Ringing {
                call.settle_early_dialogs();
            }
        }
        // §12.2.2: knowing a Call-ID is not enough to hang up someone's call.
        let in_dialog = self
            .calls
            .get(key)
            .and_then(|call| call.dialog(side))
            .is_some_and(|d| d.matches(&request));
        if !in_dialog {
            self.reply_new(now, from, request, 481, None);
            return;
        }
        let cseq = request.cseq().map(|c| c.seq).unwrap_or(0);
        let max_forwards = request.max_forwards().unwrap_or(70);
        let server_tx = self.tl.new_server(now, from, request, TxCtx::Plain);
        let in_order = self
            .calls
            .get_mut(key)
            .and_then(|call| call.dialog_mut(side))
            .is_some_and(|d| d.accept_cseq(cseq));
        if !in_order {
            // §12.2.2: a request older than the last one in the dialog.
            return self.respond_with_reason(now, server_tx, 500, "CSeq Out Of Order");
        }
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let state = call.state;
        if method == Method::Prack {
            // Hop by hop: only the caller gets reliable provisionals from us.
            return match side {
                Side::Caller => self.on_prack(now, key, server_tx),
                Side::Leg(_) => self.respond_plain(now, server_tx, 481),
            };
        }
        if method == Method::Refer {
            // Transfer (RFC 3515) is not carried out yet: the phone is told
            // plainly, and keeps its call, rather than the REFER reaching a
            // carrier that could not resolve our users' addresses.
            let tag = self.ids.tag();
            if let Some(req) = self.tl.request(server_tx) {
                let mut reply = response_to(req, 405, "Method Not Allowed", Some(&tag), false);
                reply.push(HeaderName::Allow, crate::ALLOW);
                self.tl.respond(now, server_tx, &reply);
            }
            return;
        }
        if method == Method::Bye {
            self.respond_plain(now, server_tx, 200);
            self.hang_up(now, key, side);
            return;
        }
        let ours = state == CallState::Media
            || (state == CallState::Ringing && call.caller.answered_by_us && side == Side::Caller);
        if ours {
            return self.in_media_dialog(now, key, server_tx, method);
        }
        let bridged = call.media.is_some() && matches!(state, CallState::Answered(_));
        let offer = self
            .tl
            .request(server_tx)
            .is_some_and(|r| !r.body().is_empty());
        if bridged && (method == Method::Invite || (method == Method::Update && offer)) {
            // Each side talks to the relay: passing one side's SDP to the
            // other would take the media (and its transcoding) around it.
            // Refused, the session stays as it is (hold is not followed).
            return self.respond_plain(now, server_tx, 488);
        }
        // RFC 3311 / 6086: UPDATE and INFO also travel in an early dialog:
        // from a ringing leg to the caller, and from the caller to the one
        // leg ringing in an early dialog (with several, which one is meant
        // is not known).
        let early = matches!(method, Method::Update | Method::Info) && state == CallState::Ringing;
        let early_target = match (early, side) {
            (true, Side::Leg(leg)) => call
                .leg(leg)
                .is_some_and(|l| l.state == LegState::Ringing)
                .then_some(Side::Caller),
            (true, Side::Caller) => {
                let mut early_legs = call.legs.iter().enumerate().filter(|(_, l)| {
                    l.state == LegState::Ringing && !l.dialog.remote_tag().is_empty()
                });
                match (early_legs.next(), early_legs.next()) {
                    (Some((i, _)), None) => Some(Side::Leg(LegId(i as u16))),
                    _ => None,
                }
            }
            (false, _) => None,
        };
        let relayable = match (state, side) {
            (CallState::Answered(_), Side::Caller) => true,
            (CallState::Answered(winner), Side::Leg(leg)) => leg == winner,
            _ => early_target.is_some(),
        };
        if !relayable {
            self.respond_plain(now, server_tx, 481);
            return;
        }
        // A relayed re-INVITE whose ACK went through is finished (its ACK is
        // only kept to answer 2xx retransmissions).
        let reinvite_pending = call
            .relayed_invite
            .as_ref()
            .is_some_and(|r| r.ack.is_none());
        if method == Method::Invite && reinvite_pending {
            let same_side = call
                .relayed_invite
                .as_ref()
                .is_some_and(|r| r.from_side == side);
            if same_side {
                // §14.2: the sender's own re-INVITE is still pending: try later.
                let retry_after = self.ids.u64() % 11;
                let tag = self.ids.tag();
                if let Some(req) = self.tl.request(server_tx) {
                    let mut reply =
                        response_to(req, 500, "Server Internal Error", Some(&tag), false);
                    reply.push(HeaderName::RetryAfter, &retry_after.to_string());
                    self.tl.respond(now, server_tx, &reply);
                }
            } else {
                // §14.1: glare with the other side's re-INVITE.
                self.respond_plain(now, server_tx, 491);
            }
            return;
        }
        if max_forwards == 0 {
            // It would go one hop further than its sender allowed.
            return self.respond_plain(now, server_tx, 483);
        }
        let target_side = early_target.unwrap_or_else(|| call.other_side(side));
        let Some(original) = self.tl.request(server_tx).cloned() else {
            return;
        };
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        // §12.2.2: re-INVITE and UPDATE refresh the sender's remote target.
        if let Some(dialog) = call.dialog_mut(side) {
            dialog.refresh_target(&method, &original);
        }
        let Some(dialog) = call.dialog_mut(target_side) else {
            return;
        };
        let local = local_addr(&self.cfg, dialog.peer.transport);
        let mut relayed = dialog.request(&mut self.ids, local, method.clone());
        relayed.remove_first_value(HeaderName::MaxForwards);
        relayed.push(
            HeaderName::MaxForwards,
            &(max_forwards - 1).min(70).to_string(),
        );
        let cseq = dialog.local_cseq;
        let to = dialog.next_hop();
        copy_end_to_end(&original, &mut relayed);
        // Session timers are hop by hop: the target side gets its own.
        super::session_timer::strip_option_tag(&mut relayed);
        let target_timer = call.session_timers.of(target_side);
        if let (Some(timer), Method::Invite | Method::Update) = (target_timer, &method) {
            super::session_timer::push(timer, &mut relayed);
        }
        relayed.set_body(original.body().clone());
        let client_tx = self
            .tl
            .new_client(now, to, relayed, TxCtx::Relay(key, server_tx));
        if method == Method::Invite {
            self.tl.set_context(server_tx, TxCtx::ReInvite(key));
        }
        // A re-INVITE answered only provisionally must still end (408).
        self.tl
            .set_deadline(client_tx, now + self.cfg.timers.t1 * 64);
        if method == Method::Invite {
            if let Some(call) = self.calls.get_mut(key) {
                call.relayed_invite = Some(RelayedInvite {
                    from_side: side,
                    server_tx,
                    client_tx,
                    cseq,
                    ack: None,
                    cancel_pending: false,
                });
            }
        }
    }

    /// A request from a caller the daemon answered itself: DTMF by INFO
    /// is a key (answered 200, never 405/415), a re-INVITE is refused
    /// without changing the session, the rest is acknowledged.
    fn in_media_dialog(&mut self, now: Instant, key: CallKey, server_tx: TxId, method: Method) {
        match method {
            Method::Invite => self.on_media_reinvite(now, server_tx),
            Method::Info => {
                let digit = self.tl.request(server_tx).and_then(|req| {
                    let ct = req.header(HeaderName::ContentType)?;
                    media::dtmf::digit_of_info(ct, req.body())
                });
                self.respond_plain(now, server_tx, 200);
                if let Some(digit) = digit {
                    self.on_caller_digit(now, key, digit);
                }
            }
            Method::Update => {
                // An offer in it would change the session: refused (488).
                let offer = self
                    .tl
                    .request(server_tx)
                    .is_some_and(|r| !r.body().is_empty());
                if offer {
                    return self.respond_plain(now, server_tx, 488);
                }
                let tag = self.ids.tag();
                let timer = self.calls.get(key).and_then(|c| c.session_timers.caller);
                if let Some(req) = self.tl.request(server_tx) {
                    let mut ok = response_to(req, 200, "OK", Some(&tag), false);
                    if let Some(timer) = timer {
                        super::session_timer::push(timer, &mut ok);
                    }
                    self.tl.respond(now, server_tx, &ok);
                }
                // RFC 4028 §10: an UPDATE answered 2xx is a refresh.
                self.session_refreshed(now, key, Side::Caller);
            }
            Method::Options => self.respond_plain(now, server_tx, 200),
            _ => self.respond_plain(now, server_tx, 501),
        }
    }

    /// The other side answered a relayed request (or never did).
    pub(crate) fn on_relay_final(
        &mut self,
        now: Instant,
        key: CallKey,
        server_tx: TxId,
        response: Option<Message>,
    ) {
        let Some(original) = self.tl.request(server_tx) else {
            return;
        };
        // A 2xx to a target refresh request refreshes the responder's target.
        if let (Some(resp), Some(call), Some(method)) =
            (&response, self.calls.get_mut(key), original.method())
        {
            // (In an early dialog the sides are not yet paired: no refresh.)
            let answered = matches!(call.state, CallState::Answered(_));
            if answered && resp.status().is_some_and(|s| (200..300).contains(&s)) {
                let origin = if original.call_id() == Some(call.caller.dialog.call_id.as_str()) {
                    Side::Caller
                } else {
                    call.other_side(Side::Caller)
                };
                let responder = call.other_side(origin);
                if let Some(dialog) = call.dialog_mut(responder) {
                    dialog.refresh_target(method, resp);
                }
            }
        }
        let Some(original) = self.tl.request(server_tx) else {
            return;
        };
        // The side that sent the request, and its session timer.
        let origin_timer = self.calls.get(key).and_then(|call| {
            let origin = if original.call_id() == Some(call.caller.dialog.call_id.as_str()) {
                Side::Caller
            } else {
                call.other_side(Side::Caller)
            };
            Some((origin, call.session_timers.of(origin)?))
        });
        let mut refreshed = None;
        let reply = match &response {
            Some(resp) => {
                let status = resp.status().unwrap_or(500);
                let mut reply =
                    response_to(original, status, resp.reason().unwrap_or(""), None, false);
                copy_end_to_end(resp, &mut reply);
                super::session_timer::strip_option_tag(&mut reply);
                let refresh = matches!(original.method(), Some(Method::Invite | Method::Update));
                if let (true, 200..=299, Some((origin, timer))) = (refresh, status, origin_timer) {
                    super::session_timer::push(timer, &mut reply);
                    refreshed = Some(origin);
                }
                if original.method() == Some(&Method::Invite) && (200..300).contains(&status) {
                    let transport = self
                        .tl
                        .peer(server_tx)
                        .map(|p| p.transport)
                        .unwrap_or(Transport::Udp);
                    reply.push(
                        HeaderName::Contact,
                        &contact_value(self.local_addr(transport), transport),
                    );
                }
                reply.set_body(resp.body().clone());
                reply
            }
            None => response_to(original, 408, "Request Timeout", None, false),
        };
        let is_2xx = reply.status().is_some_and(|s| (200..300).contains(&s));
        self.tl.respond(now, server_tx, &reply);
        if let Some(origin) = refreshed {
            // RFC 4028 §10: a refresh answered 2xx.
            self.session_refreshed(now, key, origin);
        }
        if let Some(call) = self.calls.get_mut(key) {
            let done = call
                .relayed_invite
                .as_ref()
                .is_some_and(|r| r.server_tx == server_tx && !is_2xx);
            if done {
                call.relayed_invite = None;
            }
        }
    }

    /// Our 2xx to a relayed re-INVITE was never ACKed by its sender: the
    /// session ends on both sides (§13.3.1.4).
    pub(crate) fn on_reinvite_never_acked(&mut self, now: Instant, key: CallKey) {
        // The other side's 2xx to the relayed re-INVITE waits for an ACK
        // that will not come from its sender: it gets ours (§13.2.2.4), so
        // it stops resending, then the BYE.
        let relayed = self
            .calls
            .get(key)
            .and_then(|c| Some((c.relayed_invite.as_ref()?, c)))
            .filter(|(r, _)| r.ack.is_none())
            .map(|(r, c)| (c.other_side(r.from_side), r.cseq));
        if let Some((target, cseq)) = relayed {
            if let Some(dialog) = self.calls.get(key).and_then(|c| c.dialog(target)) {
                let local = local_addr(&self.cfg, dialog.peer.transport);
                let ack = dialog.ack(&mut self.ids, local, cseq, None);
                let to = dialog.next_hop();
                self.transmit(to, Bytes::from(ack.encode()));
            }
        }
        let Some(call) = self.calls.get(key) else {
            return;
        };
        if let CallState::Answered(winner) = call.state {
            self.send_bye(now, key, Side::Leg(winner));
            self.send_bye(now, key, Side::Caller);
        }
        self.end_call(now, key, crate::events::CallOutcome::NotAcknowledged);
    }

    /// The sender cancelled its pending re-INVITE: so does the relay, once
    /// the other side has answered provisionally (§9.1), and not after its
    /// final answer.
    pub(crate) fn cancel_relayed_reinvite(&mut self, now: Instant, key: CallKey) {
        let Some(relay) = self
            .calls
            .get_mut(key)
            .and_then(|c| c.relayed_invite.as_mut())
            .filter(|r| r.ack.is_none())
        else {
            return;
        };
        match self.tl.state(relay.client_tx) {
            Some(sip::transaction::State::Calling) => relay.cancel_pending = true,
            Some(sip::transaction::State::Proceeding) => {
                let client_tx = relay.client_tx;
                self.send_cancel(now, client_tx, None);
            }
            _ => {}
        }
    }

    /// A provisional to a relayed request: a CANCEL that waited for it goes.
    pub(crate) fn on_relay_provisional(&mut self, now: Instant, key: CallKey, client_tx: TxId) {
        let Some(relay) = self
            .calls
            .get_mut(key)
            .and_then(|c| c.relayed_invite.as_mut())
            .filter(|r| r.client_tx == client_tx && r.cancel_pending)
        else {
            return;
        };
        relay.cancel_pending = false;
        self.send_cancel(now, client_tx, None);
    }

    pub(crate) fn on_relay_2xx_again(&mut self, key: CallKey, client_tx: TxId) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let Some(relay) = &call.relayed_invite else {
            return;
        };
        if relay.client_tx != client_tx {
            return;
        }
        let Some(bytes) = relay.ack.clone() else {
            return;
        };
        let target = call.other_side(relay.from_side);
        if let Some(to) = call.dialog(target).map(|d| d.next_hop()) {
            self.transmit(to, bytes);
        }
    }
}
