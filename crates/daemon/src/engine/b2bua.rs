//! The B2BUA: one inbound dialog with the caller, one outbound leg per
//! device of every user who rings, first answer wins.
//!
//! Busy state has one owner: a call holds the answering user's occupancy
//! from the moment the leg is answered, and [`Engine::end_call`] is the only
//! place that removes a call and gives it back. Every way a call can end
//! (BYE from either side, CANCEL, failure, ring timeout, a 2xx never ACKed,
//! the maximum duration) goes through it, so no count can leak.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use directory::UserStatus;
use presence::{Binding, BindingTransport, UserPresence};
use routing::{Decision, IncomingCall};
use sip::build::{reason_phrase, response_to};
use sip::header::{host_ip, NameAddr, Scheme, Uri};
use sip::ids::IdGenerator;
use sip::transaction::{Peer, Transmit, Transport, TxId};
use sip::{HeaderName, Message, Method};

use super::registrar::AuthOutcome;
use super::{local_addr_for, Engine, EngineConfig, TxCtx, ALLOW};

pub(crate) type CallKey = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum CallTimer {
    RingTimeout,
    MaxDuration,
}

/// Calls in progress by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub ringing: usize,
    pub answered: usize,
    pub legs: usize,
    /// Armed call timers (ring timeout, maximum duration).
    pub timers: usize,
}

#[derive(Default)]
pub(crate) struct Calls {
    calls: HashMap<CallKey, Call>,
    next_key: CallKey,
    /// Caller-side Call-ID to call.
    by_caller_call_id: HashMap<Box<str>, CallKey>,
    /// Leg Call-ID to call and leg.
    by_leg_call_id: HashMap<Box<str>, (CallKey, u16)>,
    /// Legs still ringing, per user id: when the user answers one call,
    /// the others stop ringing.
    ringing_by_user: HashMap<Box<str>, Vec<(CallKey, u16)>>,
    /// Armed call timers. An ordered set rather than a heap with lazy
    /// deletion: a call's maximum-duration timer lies hours ahead, and an
    /// ended call must not leave it behind.
    timers: BTreeSet<(Instant, CallKey, CallTimer)>,
}

impl Calls {
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _, _)| *at)
    }

    pub(crate) fn due_timers(&mut self, now: Instant) -> Vec<(CallKey, CallTimer)> {
        let mut due = Vec::new();
        while let Some(&(at, key, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if self.calls.contains_key(&key) {
                due.push((key, timer));
            }
        }
        due
    }

    pub(crate) fn counts(&self) -> CallCounts {
        let mut counts = CallCounts {
            timers: self.timers.len(),
            ..CallCounts::default()
        };
        for call in self.calls.values() {
            match call.state {
                CallState::Ringing => counts.ringing += 1,
                CallState::Answered(_) => counts.answered += 1,
            }
            counts.legs += call.legs.len();
        }
        counts
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallState {
    Ringing,
    /// Answered by this leg.
    Answered(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LegState {
    /// INVITE sent, nothing heard: a CANCEL must wait (RFC 3261 §9.1).
    Calling,
    /// A provisional response came: the leg can be cancelled.
    Ringing,
    Answered,
    /// Final non-2xx, timeout, or cancelled.
    Done,
}

/// Which side of a call a request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Caller,
    Leg(u16),
}

/// One side's dialog, seen from Switchboard.
struct Dialog {
    peer: Peer,
    call_id: String,
    /// Our From (for requests we send) with our tag.
    local: String,
    /// Their address with their tag (our To).
    remote: String,
    remote_target: String,
    route_set: Vec<String>,
    local_cseq: u32,
}

struct Leg {
    user_id: Box<str>,
    presence: Arc<UserPresence>,
    tx: TxId,
    dialog: Dialog,
    invite_cseq: u32,
    state: LegState,
    cancel_requested: bool,
    cancel_sent: bool,
    /// Cancelled because its user became busy elsewhere: counts as busy.
    cancelled_busy: bool,
    final_status: u16,
    /// The ACK for this leg's 2xx, re-sent when the 2xx is.
    ack: Option<Bytes>,
}

/// A re-INVITE relayed from one side to the other, waiting for the ACK.
struct RelayedInvite {
    from_side: Side,
    server_tx: TxId,
    client_tx: TxId,
    cseq: u32,
    ack: Option<Bytes>,
}

struct Call {
    number: Box<str>,
    line_name: Box<str>,
    inbound_tx: TxId,
    inbound: Dialog,
    inbound_cseq: u32,
    /// The caller's INVITE had no SDP: the leg's 2xx carries the offer and
    /// the caller's ACK the answer, so the leg's ACK waits for it.
    late_offer: bool,
    legs: Vec<Leg>,
    state: CallState,
    sent_ringing: bool,
    busy: Option<Arc<UserPresence>>,
    relayed_invite: Option<RelayedInvite>,
    /// This call's entries in [`Calls::timers`], removed when it ends.
    timers: Vec<(Instant, CallTimer)>,
}

impl Call {
    fn all_legs_done(&self) -> bool {
        self.legs.iter().all(|l| l.state == LegState::Done)
    }

    /// 486 when every device was busy (or its user became busy), else 480.
    fn failure_status(&self) -> u16 {
        let all_busy = !self.legs.is_empty()
            && self
                .legs
                .iter()
                .all(|l| l.cancelled_busy || matches!(l.final_status, 486 | 600));
        if all_busy {
            486
        } else {
            480
        }
    }
}

impl Engine {
    /// A new INVITE (no To tag): authorise, decide, fork.
    pub(super) fn b2bua_new_call(&mut self, now: Instant, from: Peer, request: Message) {
        let caller_call_id = request.call_id().unwrap_or("").to_string();
        if self
            .calls
            .by_caller_call_id
            .contains_key(caller_call_id.as_str())
        {
            // §8.2.2.2: the same request reaching us twice by different paths.
            self.reply_new(now, from, request, 482, None);
            return;
        }
        let tx = self.tl.new_server(now, from, request, TxCtx::Plain);
        let workspace = self.workspace.load_full();
        let from_trunk = workspace
            .directory
            .trunk_for_source(from.addr.ip())
            .is_some();
        if !from_trunk {
            let outcome = match self.tl.request(tx) {
                Some(req) => self.authenticate(now, req, HeaderName::ProxyAuthorization),
                None => return,
            };
            match outcome {
                AuthOutcome::User(id) => {
                    // Like signing in: only active members may place calls.
                    let active = workspace
                        .directory
                        .user_index(&id)
                        .is_some_and(|i| workspace.directory.user(i).status == UserStatus::Active);
                    if !active {
                        self.respond_plain(now, tx, 403);
                        return;
                    }
                }
                AuthOutcome::Challenge { stale } => {
                    self.send_challenge(now, tx, 407, stale);
                    return;
                }
                AuthOutcome::Forbidden => {
                    self.respond_plain(now, tx, 403);
                    return;
                }
            }
        }
        let now_ms = self.now_unix_ms(now);
        let Some(req) = self.tl.request(tx) else {
            return;
        };
        let dialled = dialled_number(req.request_uri().unwrap_or(""));
        let decision = routing::decide(
            &workspace.directory,
            &workspace.presence,
            &IncomingCall { dialled },
            now_ms,
        );
        let (number_idx, users) = match decision {
            Decision::Reject { status, .. } => {
                tracing::debug!(call_id = %caller_call_id, status, "call refused by routing");
                self.respond_plain(now, tx, status);
                return;
            }
            Decision::Ring { number, users, .. } => (number, users),
        };
        let number = workspace.directory.number(number_idx);
        let span = tracing::debug_span!("call", call_id = %caller_call_id, number = %number.e164);
        let _enter = span.enter();

        // The caller's dialog, as the UAS (§12.1.1).
        let local_tag = self.ids.tag();
        let Some(req) = self.tl.request(tx) else {
            return;
        };
        let caller_from = req.header(HeaderName::From).unwrap_or("").to_string();
        let caller_to = req.header(HeaderName::To).unwrap_or("").to_string();
        let caller_target = req
            .values(HeaderName::Contact)
            .next()
            .and_then(NameAddr::parse)
            .map(|c| c.uri.to_string())
            .or_else(|| req.from_header().map(|f| f.uri.to_string()))
            .unwrap_or_default();
        let route_set: Vec<String> = req
            .values(HeaderName::RecordRoute)
            .map(str::to_string)
            .collect();
        let inbound_cseq = req.cseq().map(|c| c.seq).unwrap_or(1);
        let max_forwards = req.max_forwards().unwrap_or(70).saturating_sub(1).min(70);
        let caller_name = caller_display(req);
        let content_type = req.header(HeaderName::ContentType).map(str::to_string);
        let body = req.body().clone();
        let caller_user = req
            .from_header()
            .and_then(|f| Uri::parse(f.uri).ok())
            .and_then(|u| u.user)
            .unwrap_or("anonymous")
            .to_string();

        let key = self.calls.next_key;
        self.calls.next_key += 1;
        let display = format!("{} ({})", caller_name, number.name);
        let mut legs = Vec::new();
        for user_idx in users {
            let user = workspace.directory.user(user_idx);
            let presence = workspace.presence.user_arc(user_idx);
            for binding in presence.bindings(now_ms) {
                let leg_index = legs.len() as u16;
                let Some(peer) = self.binding_peer(&binding) else {
                    continue;
                };
                let local_addr = self.local_addr(peer.transport);
                let call_id = self.ids.call_id();
                let tag = self.ids.tag();
                let local = format!(
                    "{} <sip:{}@{}>;tag={}",
                    quote(&display),
                    caller_user,
                    self.cfg.domain,
                    tag
                );
                let remote = format!(
                    "{} <sip:{}@{}>",
                    quote(&user.name),
                    user.id,
                    self.cfg.domain
                );
                let mut invite = Message::request(Method::Invite, &binding.contact);
                invite.push(
                    HeaderName::Via,
                    &via_value(&mut self.ids, &self.cfg, peer.transport),
                );
                invite.push(HeaderName::MaxForwards, &max_forwards.to_string());
                invite.push(HeaderName::From, &local);
                invite.push(HeaderName::To, &remote);
                invite.push(HeaderName::CallId, &call_id);
                invite.push(HeaderName::CSeq, "1 INVITE");
                invite.push(
                    HeaderName::Contact,
                    &contact_value(local_addr, peer.transport),
                );
                invite.push(HeaderName::Allow, ALLOW);
                if let Some(ct) = &content_type {
                    invite.push(HeaderName::ContentType, ct);
                }
                invite.set_body(body.clone());
                let leg_tx = self
                    .tl
                    .new_client(now, peer, invite, TxCtx::Leg(key, leg_index));
                self.calls
                    .by_leg_call_id
                    .insert(call_id.as_str().into(), (key, leg_index));
                self.calls
                    .ringing_by_user
                    .entry(user.id.as_str().into())
                    .or_default()
                    .push((key, leg_index));
                tracing::debug!(user = %user.id, contact = %binding.contact, "ringing device");
                legs.push(Leg {
                    user_id: user.id.as_str().into(),
                    presence: Arc::clone(&presence),
                    tx: leg_tx,
                    dialog: Dialog {
                        peer,
                        call_id,
                        local,
                        remote,
                        remote_target: binding.contact.clone(),
                        route_set: Vec::new(),
                        local_cseq: 1,
                    },
                    invite_cseq: 1,
                    state: LegState::Calling,
                    cancel_requested: false,
                    cancel_sent: false,
                    cancelled_busy: false,
                    final_status: 0,
                    ack: None,
                });
            }
        }
        if legs.is_empty() {
            self.respond_plain(now, tx, 480);
            return;
        }
        let to_with_tag = if caller_to.contains(";tag=") {
            caller_to
        } else {
            format!("{caller_to};tag={local_tag}")
        };
        let call = Call {
            number: number.e164.as_str().into(),
            line_name: number.name.as_str().into(),
            inbound_tx: tx,
            inbound: Dialog {
                peer: from,
                call_id: caller_call_id.clone(),
                local: to_with_tag,
                remote: caller_from,
                remote_target: caller_target,
                route_set,
                local_cseq: 0,
            },
            inbound_cseq,
            late_offer: body.is_empty(),
            legs,
            state: CallState::Ringing,
            sent_ringing: false,
            busy: None,
            relayed_invite: None,
            timers: Vec::with_capacity(2),
        };
        self.tl.set_context(tx, TxCtx::Inbound(key));
        self.calls
            .by_caller_call_id
            .insert(caller_call_id.as_str().into(), key);
        self.calls.calls.insert(key, call);
        let ring_deadline = now + number.ring_timeout;
        self.calls
            .timers
            .insert((ring_deadline, key, CallTimer::RingTimeout));
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.timers.push((ring_deadline, CallTimer::RingTimeout));
        }
    }

    /// Where to send requests for a binding: the connection it registered
    /// on (TCP), else its Contact when that names an IP, else the address
    /// the REGISTER came from.
    pub(super) fn binding_peer(&self, binding: &Binding) -> Option<Peer> {
        if let BindingTransport::Tcp {
            connection: Some(id),
        } = binding.transport
        {
            return Some(Peer {
                transport: Transport::Tcp(id),
                addr: binding.source,
            });
        }
        // The Contact says where the device listens; behind NAT it names a
        // private address we cannot reach, and the REGISTER's public source
        // is the way back (what RFC 5626 flows formalise).
        let addr = match uri_addr(&binding.contact) {
            Some(contact) if is_private(contact.ip()) && is_public(binding.source.ip()) => {
                binding.source
            }
            Some(contact) => contact,
            None => binding.source,
        };
        Some(Peer {
            transport: Transport::Udp,
            addr,
        })
    }

    pub(super) fn b2bua_leg_provisional(
        &mut self,
        now: Instant,
        tx: TxId,
        key: CallKey,
        leg_index: u16,
        response: Message,
    ) {
        let status = response.status().unwrap_or(100);
        let Some(call) = self.calls.calls.get_mut(&key) else {
            // The call is over: this device is still ringing, stop it.
            self.send_cancel(now, tx);
            return;
        };
        let Some(leg) = call.legs.get_mut(leg_index as usize) else {
            return;
        };
        if leg.state == LegState::Calling {
            leg.state = LegState::Ringing;
        }
        if leg.cancel_requested && !leg.cancel_sent {
            leg.cancel_sent = true;
            self.send_cancel(now, tx);
            return;
        }
        if (180..=183).contains(&status) && call.state == CallState::Ringing && !call.sent_ringing {
            call.sent_ringing = true;
            let inbound_tx = call.inbound_tx;
            let tag = dialog_tag(&call.inbound.local).to_string();
            if let Some(req) = self.tl.request(inbound_tx) {
                let mut ringing = response_to(req, 180, "Ringing", Some(&tag), true);
                let addr = local_addr_for(&self.cfg, call.inbound.peer.transport);
                ringing.push(
                    HeaderName::Contact,
                    &contact_value(addr, call.inbound.peer.transport),
                );
                self.tl.respond(now, inbound_tx, &ringing);
            }
        }
    }

    pub(super) fn b2bua_leg_final(
        &mut self,
        now: Instant,
        tx: TxId,
        key: CallKey,
        leg_index: u16,
        response: Message,
    ) {
        let status = response.status().unwrap_or(500);
        let Some(call) = self.calls.calls.get_mut(&key) else {
            if (200..300).contains(&status) {
                self.ack_and_bye_stray(now, tx, &response);
            }
            return;
        };
        let Some(leg) = call.legs.get_mut(leg_index as usize) else {
            return;
        };
        let user_id = leg.user_id.clone();
        if !(200..300).contains(&status) {
            leg.state = LegState::Done;
            leg.final_status = status;
            unlist_ringing(&mut self.calls.ringing_by_user, &user_id, key, leg_index);
            let call = &self.calls.calls[&key];
            if call.state == CallState::Ringing && call.all_legs_done() {
                let status = call.failure_status();
                self.fail_call(now, key, status);
            }
            return;
        }
        // A 2xx: the leg's dialog is now confirmed from its side.
        leg.dialog.remote = response.header(HeaderName::To).unwrap_or("").to_string();
        if let Some(target) = response
            .values(HeaderName::Contact)
            .next()
            .and_then(NameAddr::parse)
        {
            leg.dialog.remote_target = target.uri.to_string();
        }
        leg.dialog.route_set = response
            .values(HeaderName::RecordRoute)
            .map(str::to_string)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        unlist_ringing(&mut self.calls.ringing_by_user, &user_id, key, leg_index);

        let won = call.state == CallState::Ringing && !leg.cancel_requested;
        if !won {
            // Answered too late (another device won, or the call ended).
            leg.state = LegState::Done;
            leg.final_status = 200;
            let local = Some(local_addr_for(&self.cfg, leg.dialog.peer.transport));
            let ack = build_ack(
                &mut self.ids,
                &leg.dialog,
                leg.invite_cseq,
                local,
                None,
                None,
            );
            let bytes = Bytes::from(ack.encode());
            // Kept so a retransmitted 2xx is ACKed again.
            leg.ack = Some(bytes.clone());
            self.out.push_back(Transmit {
                to: dialog_peer(&leg.dialog),
                bytes,
            });
            self.send_bye(now, key, Side::Leg(leg_index));
            let call = &self.calls.calls[&key];
            if call.state == CallState::Ringing && call.all_legs_done() {
                let status = call.failure_status();
                self.fail_call(now, key, status);
            }
            return;
        }
        leg.state = LegState::Answered;
        call.state = CallState::Answered(leg_index);
        tracing::debug!(call_id = %call.inbound.call_id, number = %call.number, user = %user_id, "answered");
        let late_offer = call.late_offer;
        if !late_offer {
            let ack = build_ack(
                &mut self.ids,
                &leg.dialog,
                leg.invite_cseq,
                Some(local_addr_for(&self.cfg, leg.dialog.peer.transport)),
                None,
                None,
            );
            let bytes = Bytes::from(ack.encode());
            leg.ack = Some(bytes.clone());
            self.out.push_back(Transmit {
                to: dialog_peer(&leg.dialog),
                bytes,
            });
        }
        leg.presence.call_started();
        call.busy = Some(Arc::clone(&leg.presence));

        // The caller gets the answer with the device's SDP.
        let inbound_tx = call.inbound_tx;
        let tag = dialog_tag(&call.inbound.local).to_string();
        let transport = call.inbound.peer.transport;
        if let Some(req) = self.tl.request(inbound_tx) {
            let mut ok = response_to(req, 200, "OK", Some(&tag), true);
            ok.push(
                HeaderName::Contact,
                &contact_value(self.local_addr(transport), transport),
            );
            ok.push(HeaderName::Allow, ALLOW);
            if let Some(ct) = response.header(HeaderName::ContentType) {
                ok.push(HeaderName::ContentType, ct);
            }
            ok.set_body(response.body().clone());
            self.tl.respond(now, inbound_tx, &ok);
        }
        let max_deadline = now + self.cfg.max_call_duration;
        self.calls
            .timers
            .insert((max_deadline, key, CallTimer::MaxDuration));
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.timers.push((max_deadline, CallTimer::MaxDuration));
        }
        // Every other device of this call stops ringing...
        let others: Vec<u16> = (0..self.calls.calls[&key].legs.len() as u16)
            .filter(|&i| i != leg_index)
            .collect();
        for i in others {
            self.cancel_leg(now, key, i, false);
        }
        // ...and so do this user's devices ringing for other calls, once the
        // user has reached their limit of calls.
        let at_limit = {
            let workspace = self.workspace.load();
            let max_calls = workspace
                .directory
                .user_index(&user_id)
                .map_or(1, |i| workspace.directory.user(i).max_calls);
            self.calls.calls[&key]
                .busy
                .as_ref()
                .is_some_and(|p| p.active_calls() >= max_calls)
        };
        let elsewhere = if at_limit {
            self.calls
                .ringing_by_user
                .get(&user_id)
                .cloned()
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        for (other_key, other_leg) in elsewhere {
            if other_key != key {
                self.cancel_leg(now, other_key, other_leg, true);
            }
        }
    }

    /// Stops one leg ringing: CANCEL now if it has answered provisionally,
    /// else as soon as it does (§9.1).
    fn cancel_leg(&mut self, now: Instant, key: CallKey, leg_index: u16, user_busy: bool) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(leg) = call.legs.get_mut(leg_index as usize) else {
            return;
        };
        if !matches!(leg.state, LegState::Calling | LegState::Ringing) || leg.cancel_requested {
            return;
        }
        leg.cancel_requested = true;
        leg.cancelled_busy |= user_busy;
        if leg.state == LegState::Ringing {
            leg.cancel_sent = true;
            let tx = leg.tx;
            self.send_cancel(now, tx);
        }
    }

    fn send_cancel(&mut self, now: Instant, invite_tx: TxId) {
        let (Some(cancel), Some(peer)) = (self.tl.cancel_for(invite_tx), self.tl.peer(invite_tx))
        else {
            return;
        };
        self.tl.new_client(now, peer, cancel, TxCtx::Fire);
        // §9.1: a device that never answers the INVITE after our CANCEL
        // must not keep the transaction alive.
        let deadline = now + self.cfg.timers.t1 * 64;
        self.tl.set_deadline(invite_tx, deadline);
    }

    /// A 2xx for a leg whose call is gone: confirm and end that dialog.
    fn ack_and_bye_stray(&mut self, now: Instant, tx: TxId, response: &Message) {
        let (Some(request), Some(peer)) = (self.tl.request(tx), self.tl.peer(tx)) else {
            return;
        };
        let mut dialog = stray_dialog(request, peer, response);
        let cseq = dialog.local_cseq;
        let local = Some(local_addr_for(&self.cfg, peer.transport));
        let ack = build_ack(&mut self.ids, &dialog, cseq, local, None, None);
        self.out.push_back(Transmit {
            to: dialog_peer(&dialog),
            bytes: Bytes::from(ack.encode()),
        });
        let bye = dialog_request(&mut self.ids, &self.cfg, &mut dialog, Method::Bye);
        let to = dialog_peer(&dialog);
        self.tl.new_client(now, to, bye, TxCtx::Fire);
    }

    pub(super) fn b2bua_leg_2xx_again(
        &mut self,
        key: CallKey,
        leg_index: u16,
        tx: TxId,
        response: &Message,
    ) {
        let ack = self
            .calls
            .calls
            .get(&key)
            .and_then(|c| c.legs.get(leg_index as usize))
            .map(|l| (l.ack.clone(), dialog_peer(&l.dialog)));
        match ack {
            Some((Some(bytes), to)) => self.out.push_back(Transmit { to, bytes }),
            Some((None, _)) => {}
            None => {
                // The call is gone; ACK so the device stops, the BYE already went.
                if let (Some(request), Some(peer)) = (self.tl.request(tx), self.tl.peer(tx)) {
                    let dialog = stray_dialog(request, peer, response);
                    let local = Some(local_addr_for(&self.cfg, peer.transport));
                    let ack =
                        build_ack(&mut self.ids, &dialog, dialog.local_cseq, local, None, None);
                    self.out.push_back(Transmit {
                        to: dialog_peer(&dialog),
                        bytes: Bytes::from(ack.encode()),
                    });
                }
            }
        }
    }

    pub(super) fn b2bua_leg_timeout(
        &mut self,
        now: Instant,
        _tx: TxId,
        key: CallKey,
        leg_index: u16,
    ) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(leg) = call.legs.get_mut(leg_index as usize) else {
            return;
        };
        if leg.state == LegState::Answered {
            return;
        }
        leg.state = LegState::Done;
        leg.final_status = 408;
        let user_id = leg.user_id.clone();
        unlist_ringing(&mut self.calls.ringing_by_user, &user_id, key, leg_index);
        let call = &self.calls.calls[&key];
        if call.state == CallState::Ringing && call.all_legs_done() {
            let status = call.failure_status();
            self.fail_call(now, key, status);
        }
    }

    /// Ends a call that never got answered: the caller hears `status`.
    fn fail_call(&mut self, now: Instant, key: CallKey, status: u16) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        tracing::debug!(call_id = %call.inbound.call_id, number = %call.number, status, "call failed");
        let inbound_tx = call.inbound_tx;
        let tag = dialog_tag(&call.inbound.local).to_string();
        if let Some(req) = self.tl.request(inbound_tx) {
            let reply = response_to(req, status, reason_phrase(status), Some(&tag), false);
            self.tl.respond(now, inbound_tx, &reply);
        }
        self.end_call(now, key);
    }

    pub(super) fn b2bua_caller_cancelled(&mut self, now: Instant, key: CallKey) {
        let ringing = self
            .calls
            .calls
            .get(&key)
            .is_some_and(|c| c.state == CallState::Ringing);
        if ringing {
            self.fail_call(now, key, 487);
        }
    }

    /// §13.3.1.4: our 2xx was never acknowledged; end the session.
    pub(super) fn b2bua_caller_never_acked(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        if let CallState::Answered(winner) = call.state {
            self.send_bye(now, key, Side::Leg(winner));
            self.send_bye(now, key, Side::Caller);
        }
        self.end_call(now, key);
    }

    /// An ACK that no transaction absorbed: the ACK to a 2xx.
    pub(super) fn b2bua_ack(&mut self, _now: Instant, ack: Message) {
        let Some(call_id) = ack.call_id() else {
            return;
        };
        let Some((key, side)) = self.calls.find(call_id) else {
            return;
        };
        let seq = ack.cseq().map(|c| c.seq).unwrap_or(0);
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if side == Side::Caller && seq == call.inbound_cseq {
            self.tl.confirm_2xx(call.inbound_tx);
            // Late offer: the caller's answer goes to the device in our ACK.
            if let CallState::Answered(winner) = call.state {
                let leg = &mut call.legs[winner as usize];
                if leg.ack.is_none() {
                    let body = ack.body().clone();
                    let ct = ack.header(HeaderName::ContentType).map(str::to_string);
                    let local = Some(local_addr_for(&self.cfg, leg.dialog.peer.transport));
                    let msg = build_ack(
                        &mut self.ids,
                        &leg.dialog,
                        leg.invite_cseq,
                        local,
                        ct.as_deref(),
                        Some(body),
                    );
                    let bytes = Bytes::from(msg.encode());
                    leg.ack = Some(bytes.clone());
                    self.out.push_back(Transmit {
                        to: dialog_peer(&leg.dialog),
                        bytes,
                    });
                }
            }
            return;
        }
        // The ACK for a relayed re-INVITE: pass it on with the same body.
        let Some(relay) = call.relayed_invite.as_mut() else {
            return;
        };
        if relay.from_side != side {
            return;
        }
        self.tl.confirm_2xx(relay.server_tx);
        let relay_cseq = relay.cseq;
        let target_side = other_side(call, side);
        let Some(dialog) = side_dialog(call, target_side) else {
            return;
        };
        let local = Some(local_addr_for(&self.cfg, dialog.peer.transport));
        let ct = ack.header(HeaderName::ContentType).map(str::to_string);
        let msg = build_ack(
            &mut self.ids,
            dialog,
            relay_cseq,
            local,
            ct.as_deref(),
            Some(ack.body().clone()),
        );
        let bytes = Bytes::from(msg.encode());
        let to = dialog_peer(dialog);
        if let Some(relay) = call.relayed_invite.as_mut() {
            relay.ack = Some(bytes.clone());
        }
        self.out.push_back(Transmit { to, bytes });
    }

    /// A request inside a dialog (BYE, re-INVITE, INFO, UPDATE, ...).
    pub(super) fn b2bua_in_dialog(&mut self, now: Instant, from: Peer, request: Message) {
        let method = request.method().cloned().unwrap_or(Method::Bye);
        let found = request.call_id().and_then(|id| self.calls.find(id));
        let Some((key, side)) = found else {
            self.reply_new(now, from, request, 481, None);
            return;
        };
        // §12.2.2: a request belongs to the dialog only when both tags match;
        // knowing a Call-ID is not enough to hang up someone's call.
        let tags_match = self
            .calls
            .calls
            .get(&key)
            .and_then(|call| side_dialog(call, side))
            .is_some_and(|d| {
                request.from_tag() == Some(dialog_tag(&d.remote))
                    && request.to_tag() == Some(dialog_tag(&d.local))
            });
        if !tags_match {
            self.reply_new(now, from, request, 481, None);
            return;
        }
        let server_tx = self.tl.new_server(now, from, request, TxCtx::Plain);
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let state = call.state;
        if method == Method::Bye {
            self.respond_plain(now, server_tx, 200);
            match (state, side) {
                (CallState::Answered(winner), Side::Caller) => {
                    self.send_bye(now, key, Side::Leg(winner));
                    self.end_call(now, key);
                }
                (CallState::Answered(winner), Side::Leg(i)) if i == winner => {
                    self.send_bye(now, key, Side::Caller);
                    self.end_call(now, key);
                }
                (CallState::Ringing, Side::Caller) => self.fail_call(now, key, 487),
                _ => {}
            }
            return;
        }
        let relayable = match (state, side) {
            (CallState::Answered(_), Side::Caller) => true,
            (CallState::Answered(winner), Side::Leg(i)) => i == winner,
            _ => false,
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
            // §14.1: one re-INVITE at a time.
            self.respond_plain(now, server_tx, 491);
            return;
        }
        let target_side = other_side(call, side);
        let Some(original) = self.tl.request(server_tx).cloned() else {
            return;
        };
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        // §12.2.2: re-INVITE and UPDATE refresh the sender's remote target.
        refresh_target(call, side, &method, &original);
        let Some(dialog) = side_dialog_mut(call, target_side) else {
            return;
        };
        let mut relayed = dialog_request(&mut self.ids, &self.cfg, dialog, method.clone());
        let cseq = dialog.local_cseq;
        let to = dialog_peer(dialog);
        copy_end_to_end(&original, &mut relayed);
        relayed.set_body(original.body().clone());
        let client_tx = self
            .tl
            .new_client(now, to, relayed, TxCtx::Relay(key, server_tx));
        // A re-INVITE answered only provisionally must still end (408).
        self.tl
            .set_deadline(client_tx, now + self.cfg.timers.t1 * 64);
        if method == Method::Invite {
            if let Some(call) = self.calls.calls.get_mut(&key) {
                call.relayed_invite = Some(RelayedInvite {
                    from_side: side,
                    server_tx,
                    client_tx,
                    cseq,
                    ack: None,
                });
            }
        }
    }

    /// The other side answered a relayed request (or never did).
    pub(super) fn b2bua_relay_final(
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
            (&response, self.calls.calls.get_mut(&key), original.method())
        {
            if resp.status().is_some_and(|s| (200..300).contains(&s)) {
                let origin = if original.call_id() == Some(call.inbound.call_id.as_str()) {
                    Side::Caller
                } else {
                    other_side(call, Side::Caller)
                };
                let responder = other_side(call, origin);
                refresh_target(call, responder, method, resp);
            }
        }
        let Some(original) = self.tl.request(server_tx) else {
            return;
        };
        let reply = match &response {
            Some(resp) => {
                let status = resp.status().unwrap_or(500);
                let mut reply =
                    response_to(original, status, resp.reason().unwrap_or(""), None, false);
                copy_end_to_end(resp, &mut reply);
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
        if let Some(call) = self.calls.calls.get_mut(&key) {
            let done = call
                .relayed_invite
                .as_ref()
                .is_some_and(|r| r.server_tx == server_tx && !is_2xx);
            if done {
                call.relayed_invite = None;
            }
        }
    }

    pub(super) fn b2bua_relay_2xx_again(&mut self, key: CallKey, client_tx: TxId) {
        let Some(call) = self.calls.calls.get(&key) else {
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
        let target = other_side(call, relay.from_side);
        if let Some(dialog) = side_dialog(call, target) {
            self.out.push_back(Transmit {
                to: dialog_peer(dialog),
                bytes,
            });
        }
    }

    pub(super) fn b2bua_stray_response(&mut self, _now: Instant, response: Message) {
        tracing::trace!(
            status = response.status(),
            "response matches no transaction"
        );
    }

    pub(super) fn on_call_timer(&mut self, now: Instant, key: CallKey, timer: CallTimer) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        match (timer, call.state) {
            (CallTimer::RingTimeout, CallState::Ringing) => self.fail_call(now, key, 480),
            (CallTimer::MaxDuration, CallState::Answered(winner)) => {
                self.send_bye(now, key, Side::Leg(winner));
                self.send_bye(now, key, Side::Caller);
                self.end_call(now, key);
            }
            _ => {}
        }
    }

    /// Sends BYE on one side of a call.
    fn send_bye(&mut self, now: Instant, key: CallKey, side: Side) {
        let Some(dialog) = self
            .calls
            .calls
            .get_mut(&key)
            .and_then(|call| side_dialog_mut(call, side))
        else {
            return;
        };
        let bye = dialog_request(&mut self.ids, &self.cfg, dialog, Method::Bye);
        let to = dialog_peer(dialog);
        self.tl.new_client(now, to, bye, TxCtx::Fire);
    }

    /// The single exit of a call: gives back the busy count, forgets the
    /// dialogs, and stops any device still ringing.
    pub(super) fn end_call(&mut self, now: Instant, key: CallKey) {
        let Some(mut call) = self.calls.calls.remove(&key) else {
            return;
        };
        if let Some(user) = call.busy.take() {
            user.call_ended();
        }
        for (at, timer) in call.timers.drain(..) {
            self.calls.timers.remove(&(at, key, timer));
        }
        self.calls
            .by_caller_call_id
            .remove(call.inbound.call_id.as_str());
        for (i, leg) in call.legs.iter().enumerate() {
            self.calls
                .by_leg_call_id
                .remove(leg.dialog.call_id.as_str());
            unlist_ringing(&mut self.calls.ringing_by_user, &leg.user_id, key, i as u16);
            if leg.state == LegState::Ringing && !leg.cancel_sent {
                self.send_cancel(now, leg.tx);
            }
            // Legs still `Calling` are cancelled when their first 1xx comes
            // (the provisional handler finds the call gone).
        }
        tracing::debug!(call_id = %call.inbound.call_id, number = %call.number, line = %call.line_name, "call ended");
    }
}

impl Calls {
    fn find(&self, call_id: &str) -> Option<(CallKey, Side)> {
        if let Some(&key) = self.by_caller_call_id.get(call_id) {
            return Some((key, Side::Caller));
        }
        self.by_leg_call_id
            .get(call_id)
            .map(|&(key, leg)| (key, Side::Leg(leg)))
    }
}

fn unlist_ringing(
    ringing: &mut HashMap<Box<str>, Vec<(CallKey, u16)>>,
    user_id: &str,
    key: CallKey,
    leg: u16,
) {
    if let Some(list) = ringing.get_mut(user_id) {
        list.retain(|&(k, l)| !(k == key && l == leg));
        if list.is_empty() {
            ringing.remove(user_id);
        }
    }
}

/// A Via for a request we originate, with a fresh branch and `rport`.
fn via_value(ids: &mut IdGenerator, cfg: &EngineConfig, transport: Transport) -> String {
    format!(
        "SIP/2.0/{} {};branch={};rport",
        transport.via_token(),
        local_addr_for(cfg, transport),
        ids.branch()
    )
}

/// Builds an in-dialog request (§12.2.1.1) with the next CSeq. A free
/// function over the engine's parts, so a dialog stored in a call can be
/// used in place while the generator is borrowed too.
fn dialog_request(
    ids: &mut IdGenerator,
    cfg: &EngineConfig,
    dialog: &mut Dialog,
    method: Method,
) -> Message {
    dialog.local_cseq += 1;
    let mut request = Message::request(method.clone(), &dialog.remote_target);
    let transport = dialog.peer.transport;
    request.push(HeaderName::Via, &via_value(ids, cfg, transport));
    request.push(HeaderName::MaxForwards, "70");
    request.push(HeaderName::From, &dialog.local);
    request.push(HeaderName::To, &dialog.remote);
    request.push(HeaderName::CallId, &dialog.call_id);
    let mut cseq = String::with_capacity(16);
    let _ = write!(cseq, "{} {}", dialog.local_cseq, method.as_str());
    request.push(HeaderName::CSeq, &cseq);
    for route in &dialog.route_set {
        request.push(HeaderName::Route, route);
    }
    let local = local_addr_for(cfg, transport);
    request.push(HeaderName::Contact, &contact_value(local, transport));
    request
}

/// The dialog a client INVITE transaction's 2xx created, for a leg whose
/// call is gone (so it can be ACKed and ended).
fn stray_dialog(request: &Message, peer: Peer, response: &Message) -> Dialog {
    Dialog {
        peer,
        call_id: request.call_id().unwrap_or("").to_string(),
        local: request.header(HeaderName::From).unwrap_or("").to_string(),
        remote: response.header(HeaderName::To).unwrap_or("").to_string(),
        remote_target: response
            .values(HeaderName::Contact)
            .next()
            .and_then(NameAddr::parse)
            .map(|c| c.uri.to_string())
            .or_else(|| request.request_uri().map(str::to_string))
            .unwrap_or_default(),
        route_set: response
            .values(HeaderName::RecordRoute)
            .map(str::to_string)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect(),
        local_cseq: request.cseq().map(|c| c.seq).unwrap_or(1),
    }
}

/// Takes a new remote target from the Contact of a target refresh request
/// (re-INVITE, UPDATE) or of its 2xx.
fn refresh_target(call: &mut Call, side: Side, method: &Method, message: &Message) {
    if !matches!(method, Method::Invite | Method::Update) {
        return;
    }
    let Some(contact) = message
        .values(HeaderName::Contact)
        .next()
        .and_then(NameAddr::parse)
    else {
        return;
    };
    if let Some(dialog) = side_dialog_mut(call, side) {
        dialog.remote_target = contact.uri.to_string();
    }
}

fn other_side(call: &Call, side: Side) -> Side {
    match (side, call.state) {
        (Side::Caller, CallState::Answered(winner)) => Side::Leg(winner),
        _ => Side::Caller,
    }
}

fn side_dialog(call: &Call, side: Side) -> Option<&Dialog> {
    match side {
        Side::Caller => Some(&call.inbound),
        Side::Leg(i) => call.legs.get(i as usize).map(|l| &l.dialog),
    }
}

fn side_dialog_mut(call: &mut Call, side: Side) -> Option<&mut Dialog> {
    match side {
        Side::Caller => Some(&mut call.inbound),
        Side::Leg(i) => call.legs.get_mut(i as usize).map(|l| &mut l.dialog),
    }
}

/// The ACK for a 2xx (§13.2.2.4): a new transaction-less request with the
/// INVITE's CSeq number.
fn build_ack(
    ids: &mut sip::ids::IdGenerator,
    dialog: &Dialog,
    cseq: u32,
    local: Option<SocketAddr>,
    content_type: Option<&str>,
    body: Option<Bytes>,
) -> Message {
    let mut ack = Message::request(Method::Ack, &dialog.remote_target);
    let transport = dialog.peer.transport;
    let local = local.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 5060)));
    ack.push(
        HeaderName::Via,
        &format!(
            "SIP/2.0/{} {};branch={};rport",
            transport.via_token(),
            local,
            ids.branch()
        ),
    );
    ack.push(HeaderName::MaxForwards, "70");
    ack.push(HeaderName::From, &dialog.local);
    ack.push(HeaderName::To, &dialog.remote);
    ack.push(HeaderName::CallId, &dialog.call_id);
    ack.push(HeaderName::CSeq, &format!("{cseq} ACK"));
    for route in &dialog.route_set {
        ack.push(HeaderName::Route, route);
    }
    if let (Some(ct), Some(body)) = (content_type, body) {
        if !body.is_empty() {
            ack.push(HeaderName::ContentType, ct);
            ack.set_body(body);
        }
    }
    ack
}

/// Where in-dialog requests go: the first Route if any, else the remote
/// target; an address we cannot read as IP falls back to where the peer
/// spoke from. Stream dialogs stay on their connection.
fn dialog_peer(dialog: &Dialog) -> Peer {
    if dialog.peer.transport.is_reliable() {
        return dialog.peer;
    }
    let target = dialog
        .route_set
        .first()
        .and_then(|r| NameAddr::parse(r))
        .map(|r| r.uri.to_string())
        .unwrap_or_else(|| dialog.remote_target.clone());
    Peer {
        transport: dialog.peer.transport,
        addr: uri_addr(&target).unwrap_or(dialog.peer.addr),
    }
}

/// RFC 1918 / RFC 4193 / link-local addresses: not reachable from outside.
fn is_private(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        std::net::IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// An address on the public side of a NAT (not private, loopback or unspecified).
fn is_public(ip: std::net::IpAddr) -> bool {
    !is_private(ip) && !ip.is_loopback() && !ip.is_unspecified()
}

/// The socket address a SIP URI names, when its host is an IP literal
/// (Switchboard never resolves names on the call path).
fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let uri = Uri::parse(uri).ok()?;
    if uri.scheme == Scheme::Tel {
        return None;
    }
    let ip = host_ip(uri.host)?;
    let default_port = if uri.scheme == Scheme::Sips {
        5061
    } else {
        5060
    };
    Some(SocketAddr::new(ip, uri.port.unwrap_or(default_port)))
}

fn contact_value(addr: SocketAddr, transport: Transport) -> String {
    match transport {
        Transport::Udp => format!("<sip:switchboard@{addr}>"),
        Transport::Tcp(_) => format!("<sip:switchboard@{addr};transport=tcp>"),
    }
}

/// The tag of a From/To value.
fn dialog_tag(value: &str) -> &str {
    NameAddr::parse(value).and_then(|n| n.tag()).unwrap_or("")
}

/// The number a Request-URI dials: the user part of a SIP URI (up to any
/// `;` user parameter) or a `tel:` number.
fn dialled_number(request_uri: &str) -> &str {
    match Uri::parse(request_uri) {
        Ok(uri) => uri
            .user
            .map(|u| u.split(';').next().unwrap_or(u))
            .unwrap_or(""),
        Err(_) => "",
    }
}

/// How the callee sees the caller: the caller's display name, else number.
fn caller_display(request: &Message) -> String {
    let Some(from) = request.from_header() else {
        return "Unknown".into();
    };
    if let Some(name) = from.display_name() {
        return name.replace('\\', "");
    }
    Uri::parse(from.uri)
        .ok()
        .and_then(|u| u.user)
        .unwrap_or("Unknown")
        .to_string()
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        if !c.is_control() {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Copies the end-to-end headers of a relayed message: everything except
/// what belongs to one hop or one dialog.
fn copy_end_to_end(from: &Message, to: &mut Message) {
    for (name, raw, value) in from.headers() {
        let hop_or_dialog = matches!(
            name,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::MaxForwards
                | HeaderName::ContentLength
                | HeaderName::Authorization
                | HeaderName::ProxyAuthorization
                | HeaderName::WwwAuthenticate
                | HeaderName::ProxyAuthenticate
        );
        if !hop_or_dialog {
            to.push_other(raw, value);
        }
    }
}
