//! A new call: authorise the caller, ask routing for the plan, fork the
//! first tier (one leg per registered device of every user in it), and
//! follow the legs' answers: the first 1xx rings the caller, the first 2xx
//! wins and cancels the rest, and when every leg failed the call fails.
//!
//! The tier fork is the same for every strategy; cascade (one user per
//! tier) and the destinations after the tiers build on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use directory::{NumberIdx, Strategy, UserIdx, UserStatus};
use presence::{Occupancy, Registrations, UserRef};
use routing::dial::{Dialled, Refusal};
use routing::{IncomingCall, Plan};
use sip::build::{contact_value, quoted, response_to};
use sip::dialog::{tag_of, Dialog};
use sip::header::Uri;
use sip::transaction::{Peer, Transmit, TxId};
use sip::{HeaderName, Message, Method};

use super::end::Refused;
use super::plan::{TierEnd, TrunkCall};
use super::{Call, CallKey, CallState, CallTimer, Caller, Leg, LegId, LegState, LegTarget, Side};
use crate::addressing::{binding_peer, local_addr};
use crate::auth::AuthOutcome;
use crate::events::{Direction, LegOutcome};
use crate::{Backend, Engine, Event, Output, TxCtx, Workspace, ALLOW, SUPPORTED};

impl<B: Backend> Engine<B> {
    /// A new INVITE (no To tag): authorise, plan, fork.
    pub(crate) fn on_new_call(&mut self, now: Instant, from: Peer, request: Message) {
        let caller_call_id = request.call_id().unwrap_or("").to_string();
        if self.calls.has_caller_call_id(&caller_call_id) {
            // §8.2.2.2: the same request reaching us twice by different paths.
            self.reply_new(now, from, request, 482, None);
            return;
        }
        let caller_timer = match super::session_timer::caller_asks(&self.cfg, &request) {
            super::session_timer::CallerAsks::TooSmall(min) => {
                // RFC 4028 §9: the caller may ask again with a longer interval.
                let min = min.to_string();
                self.reply_new(now, from, request, 422, Some((HeaderName::MinSe, &min)));
                return;
            }
            super::session_timer::CallerAsks::Timer(timer) => Some(timer),
            super::session_timer::CallerAsks::Nothing => None,
        };
        if let Some(retry_after) = self.draining {
            // Stopping: the caller tries again later (or another node).
            let value = retry_after.to_string();
            self.reply_new(
                now,
                from,
                request,
                503,
                Some((HeaderName::RetryAfter, &value)),
            );
            return;
        }
        let workspace = self.workspace.load_full();
        // A phone is told from a trunk by what it says it is (one of our
        // users), not only by where it sends from: phones and trunks may
        // share an address (loopback, a NAT).
        let from_trunk = workspace
            .directory
            .trunk_for_source(from.addr.ip())
            .is_some()
            && !names_a_user(&request, &workspace.directory);
        // Challenges and refusals are stateless: a transaction exists only
        // for a trunk's call or once the caller's credentials check out.
        let caller_user = if from_trunk {
            None
        } else {
            match self.authorise_caller(now, from, &request, &workspace) {
                Some(user) => Some(user),
                None => return,
            }
        };
        let tx = self.tl.new_server(now, from, request, TxCtx::Plain);
        let Some(req) = self.tl.request(tx) else {
            return;
        };
        let at = self.clock.timestamp(now);
        let dialled = dialled_number(req.request_uri().unwrap_or("")).to_string();
        let start = match caller_user {
            None => {
                let plan = routing::decide(
                    &workspace.directory,
                    &workspace.presence,
                    &IncomingCall {
                        dialled: &dialled,
                        caller: None,
                    },
                    at,
                );
                if plan.number.is_none() {
                    // Not one of the workspace's numbers: 404 before any call exists.
                    let summary = req_summary(req);
                    self.respond_plain(now, tx, 404);
                    let refused = Refused {
                        summary,
                        dialled,
                        direction: Direction::Inbound,
                        caller_user: None,
                        status: 404,
                    };
                    self.reject_record(&workspace, refused, &plan, at);
                    return;
                }
                Start {
                    number: plan.number,
                    plan,
                    direction: Direction::Inbound,
                    out: None,
                }
            }
            Some(user) => match self.place(now, tx, &workspace, user, &dialled, at) {
                Some(start) => start,
                None => return,
            },
        };
        let Some(req) = self.tl.request(tx) else {
            return;
        };
        let number = start
            .number
            .map(|n| workspace.directory.number(n).e164.as_str());
        let span = tracing::debug_span!(
            "call",
            call_id = %caller_call_id,
            number = number.unwrap_or(""),
            direction = start.direction.as_str()
        );
        let _enter = span.enter();
        let local_tag = self.ids.tag();
        let caller = Caller {
            tx,
            dialog: Dialog::as_uas(req, from, &local_tag),
            invite_cseq: req.cseq().map(|c| c.seq).unwrap_or(1),
            uri: req_summary(req).caller,
            late_offer: req.body().is_empty(),
            sent_ringing: false,
            sent_early_media: false,
            acked: false,
            from_trunk,
            answered_by_us: false,
            invite: None,
            reliable: sip::reliable::wants_100rel(req).then(|| {
                let required = sip::reliable::names_100rel(req, HeaderName::Require);
                super::reliable::ReliableProvisionals::new(required, self.ids.u64() as u32)
            }),
        };
        let key = self.calls.next_key();
        let skipped = start.plan.skipped.clone();
        let call = Call {
            workspace: Arc::clone(&workspace),
            number: start.number,
            dialled,
            direction: start.direction,
            caller_user,
            caller,
            plan: start.plan,
            step: 0,
            tier_from: 0,
            attempt_deadline: now,
            declined: Vec::new(),
            callee_hung_up: false,
            skipped,
            destinations: 0,
            legs: Vec::new(),
            state: CallState::Ringing,
            lease: None,
            caller_lease: None,
            relayed_invite: None,
            media: None,
            leg_offer: None,
            timers: Vec::with_capacity(2),
            started: at,
            arrived: now,
            still_ringing: false,
            answered: None,
            voicemail: false,
            probes: Default::default(),
            session_timers: super::session_timer::SessionTimers {
                caller: caller_timer,
                callee: None,
            },
        };
        self.tl.set_context(tx, TxCtx::Inbound(key));
        self.calls.insert(key, call);
        match start.out {
            Some(to) => {
                let directory = &workspace.directory;
                // The line shown as caller ID.
                let shown = start
                    .number
                    .map(|n| directory.number(n).e164.clone())
                    .unwrap_or_else(|| "anonymous".to_string());
                let out = TrunkCall {
                    to: &to,
                    shown: &shown,
                    diversion: None,
                    asserted: true,
                };
                tracing::debug!(user = ?caller_user.map(|u| &directory.user(u).id), "calling out");
                self.ring_trunk(now, key, directory, out, OUTBOUND_TIMEOUT);
            }
            None => self.start_plan(now, key),
        }
    }

    /// What a user's call does ([`routing::dial::dial`]), or its refusal,
    /// answered on `tx` with a reason phrase and a `Warning` saying why,
    /// logged and recorded.
    fn place(
        &mut self,
        now: Instant,
        tx: TxId,
        workspace: &Workspace<B::View>,
        user: UserIdx,
        dialled: &str,
        at: jiff::Timestamp,
    ) -> Option<Start> {
        let directory = &workspace.directory;
        let outbound = |line: Option<NumberIdx>, to: String| Start {
            number: line,
            plan: empty_plan(line, OUTBOUND_TIMEOUT),
            direction: Direction::Outbound,
            out: Some(to),
        };
        match routing::dial::dial(directory, &workspace.presence, user, dialled, at) {
            Ok(Dialled::Emergency { to, line }) => {
                tracing::warn!(user = %directory.user(user).id, %to, "emergency call");
                // A user without a line shows the workspace's first number.
                let shown =
                    line.or_else(|| (!directory.numbers().is_empty()).then_some(NumberIdx(0)));
                Some(outbound(shown, to))
            }
            Ok(Dialled::External { to, line }) => Some(outbound(Some(line), to)),
            Ok(Dialled::User(target)) => {
                let mut plan = empty_plan(None, INTERNAL_RING_TIMEOUT);
                plan.tiers.push(routing::Tier {
                    users: vec![target],
                    strategy: Strategy::Simultaneous,
                    timeout: INTERNAL_RING_TIMEOUT,
                });
                Some(Start {
                    number: None,
                    plan,
                    direction: Direction::Internal,
                    out: None,
                })
            }
            Ok(Dialled::Number(number)) => Some(Start {
                number: Some(number),
                plan: routing::plan_number_for(
                    directory,
                    &workspace.presence,
                    number,
                    at,
                    Some(user),
                ),
                direction: Direction::Internal,
                out: None,
            }),
            Err(refusal) => {
                let status = refusal.status();
                let why = refusal.reason();
                tracing::info!(
                    user = %directory.user(user).id,
                    dialled,
                    why = refusal.code(),
                    pattern = ?match &refusal { Refusal::Denied { pattern } => pattern.as_deref(), _ => None },
                    status,
                    "call refused"
                );
                let tag = self.ids.tag();
                let req = self.tl.request(tx)?;
                let summary = req_summary(req);
                let mut reply = response_to(req, status, why, Some(&tag), false);
                reply.push_other(
                    "Warning",
                    &format!("399 {} {}", self.cfg.domain, quoted(why)),
                );
                self.tl.respond(now, tx, &reply);
                let (direction, line) = if routing::dial::goes_out(directory, dialled) {
                    (
                        Direction::Outbound,
                        directory.user(user).lines.first().copied(),
                    )
                } else {
                    (Direction::Internal, None)
                };
                let refused = Refused {
                    summary,
                    dialled: dialled.to_string(),
                    direction,
                    caller_user: Some(user),
                    status,
                };
                self.reject_record(workspace, refused, &empty_plan(line, Duration::ZERO), at);
                None
            }
        }
    }

    /// Digest auth of a caller that is not a trunk, before any
    /// transaction exists: the user placing the call, or `None` when the
    /// INVITE was answered (challenged or refused, statelessly).
    fn authorise_caller(
        &mut self,
        now: Instant,
        from: Peer,
        request: &Message,
        workspace: &Workspace<B::View>,
    ) -> Option<UserIdx> {
        let from_ip = from.addr.ip();
        let outcome = self.authenticate(now, request, HeaderName::ProxyAuthorization, from_ip);
        match self.accept_credentials(now, outcome) {
            AuthOutcome::User { id, .. } => {
                // Like signing in: only active members may place calls.
                let active = workspace
                    .directory
                    .user_index(&id)
                    .filter(|&i| workspace.directory.user(i).status == UserStatus::Active);
                if active.is_none() {
                    self.signin_log
                        .refused(now, from_ip, &id, "INVITE", "account not active");
                    self.auth_failed(now, from_ip);
                    self.refuse_stateless(from, request, 403);
                }
                active
            }
            AuthOutcome::Challenge { stale } => {
                self.challenge_stateless(now, from, request, 407, stale);
                None
            }
            AuthOutcome::Forbidden { user, reason } => {
                self.signin_log
                    .refused(now, from_ip, &user, "INVITE", reason);
                self.auth_failed(now, from_ip);
                self.refuse_stateless(from, request, 403);
                None
            }
        }
    }

    /// One leg per registered device of each of `users`, each an INVITE
    /// with the caller's offer; their ids follow the call's legs so far.
    pub(crate) fn fork_users(
        &mut self,
        now: Instant,
        key: CallKey,
        workspace: &Workspace<B::View>,
        line: &str,
        users: &[UserIdx],
    ) -> Vec<Leg> {
        let Some(first) = self.calls.get(key).map(|c| c.legs.len()) else {
            return Vec::new();
        };
        let Some(req) = super::caller_invite(&self.tl, &self.calls, key) else {
            return Vec::new();
        };
        let max_forwards = req.max_forwards().unwrap_or(70).saturating_sub(1).min(70);
        let (content_type, body) = super::leg_offer(&self.calls, key, req);
        let call = self.calls.get(key);
        let trusted = call.is_some_and(|c| c.caller.from_trunk);
        let (caller_name, caller_user) = match call.and_then(|c| c.caller_user) {
            // One of ours: shown as the directory knows them.
            Some(u) => {
                let placing = workspace.directory.user(u);
                let dial_back = placing.extension.as_ref().unwrap_or(&placing.id);
                (placing.name.clone(), dial_back.clone())
            }
            None => caller_identity(req, trusted),
        };
        let display = if line.is_empty() {
            quoted(&caller_name)
        } else {
            quoted(&format!("{caller_name} ({line})"))
        };
        let now_ms = self.clock.unix_ms(now);
        let mut legs = Vec::new();
        for &user_idx in users {
            let user = workspace.directory.user(user_idx);
            let who = UserRef {
                idx: user_idx,
                id: &user.id,
            };
            for binding in one_flow_per_instance(workspace.presence.lookup(who, now_ms)) {
                let count = first + legs.len();
                let max = self.cfg.max_legs_per_call;
                let Some(leg) = leg_id(count).filter(|_| count < max) else {
                    self.limit_hits
                        .hit(now, crate::Limit::LegsPerCall, count, max);
                    return legs;
                };
                let Some(peer) = binding_peer(&binding) else {
                    // Signed in over a TLS connection that is gone.
                    continue;
                };
                let local_addr = self.local_addr(peer.transport);
                let call_id = self.ids.call_id();
                let local = format!(
                    "{display} <sip:{caller_user}@{}>;tag={}",
                    self.cfg.domain,
                    self.ids.tag()
                );
                let remote = format!(
                    "{} <sip:{}@{}>",
                    quoted(&user.name),
                    user.id,
                    self.cfg.domain
                );
                let target = LegTarget::Device {
                    user: user_idx,
                    user_id: user.id.as_str().into(),
                    contact: binding.contact.clone(),
                };
                let dialog = Dialog::uac(peer, call_id, local, remote, binding.contact);
                let mut invite = dialog.invite(&mut self.ids, local_addr, max_forwards);
                invite.push(HeaderName::Allow, ALLOW);
                if body.is_empty() {
                    // Late offer: a reliable 18x would carry an offer our
                    // PRACK cannot answer (RFC 3262 §5), so none is invited.
                    invite.push(HeaderName::Supported, crate::SUPPORTED_LATE_OFFER);
                } else {
                    invite.push(HeaderName::Supported, SUPPORTED);
                }
                super::session_timer::offer(&self.cfg, &mut invite);
                if let Some(ct) = &content_type {
                    invite.push(HeaderName::ContentType, ct);
                }
                invite.set_body(body.clone());
                let leg_tx = self.tl.new_client(now, peer, invite, TxCtx::Leg(key, leg));
                tracing::debug!(user = %user.id, contact = %dialog.remote_target, "ringing device");
                legs.push(Leg::new(target, leg_tx, dialog));
            }
        }
        legs
    }

    pub(crate) fn on_leg_provisional(
        &mut self,
        now: Instant,
        tx: TxId,
        key: CallKey,
        leg_id: LegId,
        response: Message,
    ) {
        let status = response.status().unwrap_or(100);
        if self.calls.get(key).is_none() {
            // The call is over: this device is still ringing, stop it.
            self.send_cancel(now, tx, None);
            return;
        }
        if let Some(rseq) = sip::reliable::reliable_rseq(&response) {
            if !self.prack_leg(now, key, leg_id, tx, &response, rseq) {
                // A retransmission, or out of order (RFC 3262 §4).
                return;
            }
        }
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let call_ringing = call.state == CallState::Ringing;
        let Some(leg) = call.leg_mut(leg_id) else {
            return;
        };
        if leg.state == LegState::Calling {
            leg.state = LegState::Ringing;
        }
        // The first provisional past 100 may open an early dialog (§12.1),
        // for UPDATE and INFO before the answer. It is kept as it came and
        // read only if such a request arrives: parsing its headers on every
        // call would cost the call path for a rare case.
        if !leg.early_dialog && status > 100 {
            leg.early_dialog = true;
            leg.early_to = response.header(HeaderName::To).map(Box::from);
        }
        if leg.cancel_requested && !leg.cancel_sent {
            leg.cancel_sent = true;
            let reason = leg.cancel_reason;
            self.send_cancel(now, tx, reason);
            return;
        }
        if !(180..=183).contains(&status) || !call_ringing || call.caller.answered_by_us {
            return;
        }
        // Early media: the first 18x with SDP reaches the caller with that
        // SDP (a gateway's announcement, a phone's ringback); later ones do
        // not replace it. Without SDP, one 180 tells the caller it rings.
        // (Not in a late-offer call: there an 18x's SDP would be an offer
        // in an unreliable response, which RFC 3261 §13.2.1 does not allow.)
        // A caller that requires 100rel takes the SDP of a reliable 18x as
        // the answer (RFC 3262 §5) and ignores the 200's (§13.2.1): with
        // several legs ringing, the one that answers may not be the one
        // that sent early media, so the caller just hears it rings.
        let pinned_answer = call.caller.reliable.as_ref().is_some_and(|r| r.required())
            && call
                .legs
                .iter()
                .filter(|l| matches!(l.state, LegState::Calling | LegState::Ringing))
                .count()
                > 1;
        let early_media = !call.caller.late_offer
            && !pinned_answer
            && !response.body().is_empty()
            && response
                .header(HeaderName::ContentType)
                .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/sdp"));
        let send = if early_media {
            !call.caller.sent_early_media
        } else {
            !call.caller.sent_ringing && !call.caller.sent_early_media
        };
        if !send {
            return;
        }
        call.caller.sent_ringing = true;
        call.caller.sent_early_media |= early_media;
        let inbound_tx = call.caller.tx;
        let transport = call.caller.dialog.peer.transport;
        let tag = call.caller.dialog.local_tag().to_string();
        let contact = contact_value(self.local_addr(transport), transport);
        if let Some(req) = self.tl.request(inbound_tx) {
            let mut ringing = if early_media {
                let reason = response.reason().unwrap_or("Session Progress");
                let mut r = response_to(req, status, reason, Some(&tag), true);
                r.push(HeaderName::ContentType, "application/sdp");
                r.set_body(response.body().clone());
                r
            } else {
                response_to(req, 180, "Ringing", Some(&tag), true)
            };
            ringing.push(HeaderName::Contact, &contact);
            self.send_provisional(now, key, ringing);
        }
    }

    pub(crate) fn on_leg_final(
        &mut self,
        now: Instant,
        tx: TxId,
        key: CallKey,
        leg_id: LegId,
        response: Message,
    ) {
        let status = response.status().unwrap_or(500);
        let Some(call) = self.calls.get_mut(key) else {
            if (200..300).contains(&status) {
                self.ack_and_bye_stray(now, tx, &response);
            }
            return;
        };
        let call_ringing = call.state == CallState::Ringing;
        let late_offer = call.caller.late_offer;
        let Some(leg) = call.leg_mut(leg_id) else {
            return;
        };
        let user_id = leg.target.user().map(|(_, id)| Box::<str>::from(id));
        if let Some(user) = &user_id {
            self.calls.stop_ringing(user, key, leg_id);
        }
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let Some(leg) = call.leg_mut(leg_id) else {
            return;
        };
        if !(200..300).contains(&status) {
            if matches!(status, 401 | 407) && !leg.auth_tried && !leg.cancel_requested {
                if let LegTarget::Trunk { .. } = leg.target {
                    // The carrier challenges: once, with the trunk's credentials.
                    leg.auth_tried = true;
                    self.retry_with_credentials(now, key, leg_id, tx, &response);
                    return;
                }
            }
            // 301 and 302 name where the user is now; 300's choices, 305's
            // proxy and 380's service are not a user to ring.
            let redirect = matches!(status, 301 | 302)
                && !leg.cancel_requested
                && call_ringing
                && leg.target.user().is_some();
            if redirect {
                leg.finish(LegOutcome::Redirected {
                    status,
                    followed: false,
                });
                if self.follow_redirect(now, key, leg_id, &response) {
                    if let Some(leg) = self.calls.get_mut(key).and_then(|c| c.leg_mut(leg_id)) {
                        leg.outcome = Some(LegOutcome::Redirected {
                            status,
                            followed: true,
                        });
                    }
                }
                return self.fail_if_every_leg_failed(now, key);
            }
            let declined = matches!(status, 486 | 603) && !leg.cancel_requested;
            let outcome = if leg.cancel_requested {
                LegOutcome::Cancelled
            } else {
                LegOutcome::Refused(status)
            };
            leg.finish(outcome);
            if declined && self.declined(now, key, leg_id) {
                return;
            }
            self.fail_if_every_leg_failed(now, key);
            return;
        }
        // A 2xx: the leg's dialog is now confirmed from its side.
        leg.dialog.confirm(&response);
        if leg.dialog.strict_route() {
            tracing::info!(
                route = leg.dialog.route_set.first().map(String::as_str).unwrap_or(""),
                "a strict router (Record-Route without ;lr) on a leg: its requests are routed the strict way (RFC 3261 §12.2.1.1)"
            );
        }
        // A leg cancelled only because its tier's time ran out (no other leg
        // answered, its user is not busy elsewhere) that picks up as the
        // CANCEL crosses still takes the call: someone is on the line.
        let out_of_time =
            leg.cancel_requested && leg.cancel_reason.is_none() && !leg.cancelled_busy;
        let won = call_ringing && (!leg.cancel_requested || out_of_time);
        if !won {
            // Answered too late (another device won, or the call ended).
            leg.finish(LegOutcome::AnsweredTooLate);
            let local = local_addr(&self.cfg, leg.dialog.peer.transport);
            // In a late-offer call its 2xx carried an offer: the ACK must
            // answer it (§13.2.2.4); it refuses every stream before the BYE.
            let answer = late_offer
                .then(|| super::sdp::refuse_all(response.body()))
                .flatten()
                .map(|sdp| ("application/sdp", sdp));
            let ack = leg
                .dialog
                .ack(&mut self.ids, local, leg.invite_cseq, answer);
            let bytes = Bytes::from(ack.encode());
            // Kept so a retransmitted 2xx is ACKed again.
            leg.ack = Some(bytes.clone());
            let to = leg.dialog.next_hop();
            self.transmit(to, bytes);
            self.send_bye(now, key, Side::Leg(leg_id));
            self.fail_if_every_leg_failed(now, key);
            return;
        }
        self.answer(now, key, leg_id, &response);
    }

    /// `leg_id` won: ACK it (unless the caller's ACK must bring the
    /// answer), take its user's occupancy, give the caller the 200 with the
    /// device's SDP, and stop everything else ringing.
    fn answer(&mut self, now: Instant, key: CallKey, leg_id: LegId, response: &Message) {
        let at = self.clock.timestamp(now);
        let max_deadline = now + self.cfg.max_call_duration;
        let lease_until = self.clock.unix_ms(max_deadline) + LEASE_MARGIN_MS;
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.state = CallState::Answered(leg_id);
        call.answered = Some(at);
        call.session_timers.callee = super::session_timer::leg_answers(&self.cfg, response);
        let caller_timer = call.session_timers.caller;
        let late_offer = call.caller.late_offer;
        let bridged = call.caller.answered_by_us;
        let workspace = Arc::clone(&call.workspace);
        let Some(leg) = call.leg_mut(leg_id) else {
            return;
        };
        leg.state = LegState::Answered;
        leg.outcome = Some(LegOutcome::Answered);
        if !late_offer || bridged {
            let local = local_addr(&self.cfg, leg.dialog.peer.transport);
            let ack = leg.dialog.ack(&mut self.ids, local, leg.invite_cseq, None);
            let bytes = Bytes::from(ack.encode());
            leg.ack = Some(bytes.clone());
            let to = leg.dialog.next_hop();
            self.out.push_back(Output::Transmit(Transmit { to, bytes }));
        }
        let answering = leg
            .target
            .user()
            .map(|(idx, id)| (idx, Box::<str>::from(id)));
        let mut at_limit = false;
        if let Some((idx, user_id)) = &answering {
            let who = UserRef {
                idx: *idx,
                id: user_id,
            };
            // The lease outlives the call's own maximum: only a holder that
            // vanished lets it lapse.
            let holder = self.lease_base.wrapping_add(key);
            let lease = workspace.presence.take(who, holder, lease_until);
            at_limit = lease.active_after >= self.max_calls_now(user_id);
            tracing::debug!(user = %user_id, "answered");
            self.emit(Event::BusyChanged {
                user: user_id.clone(),
                active_calls: lease.active_after,
                busy: at_limit,
            });
            if let Some(call) = self.calls.get_mut(key) {
                call.lease = Some(lease);
            }
        }

        self.lease_caller(now, key, lease_until);

        if bridged {
            // The caller talks to the relay already: it now joins the leg.
            self.bridge(key, response);
        }
        // The caller gets the answer with the device's SDP.
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let inbound_tx = call.caller.tx;
        let tag = call.caller.dialog.local_tag().to_string();
        let transport = call.caller.dialog.peer.transport;
        let legs = call.legs.len();
        let request = if bridged {
            None
        } else {
            self.tl.request(inbound_tx)
        };
        if let Some(req) = request {
            let mut ok = response_to(req, 200, "OK", Some(&tag), true);
            ok.push(
                HeaderName::Contact,
                &contact_value(self.local_addr(transport), transport),
            );
            ok.push(HeaderName::Allow, ALLOW);
            if let Some(timer) = caller_timer {
                super::session_timer::push(timer, &mut ok);
            }
            if let Some(ct) = response.header(HeaderName::ContentType) {
                ok.push(HeaderName::ContentType, ct);
            }
            ok.set_body(response.body().clone());
            self.send_answer(now, key, ok);
        }
        self.calls.arm(key, max_deadline, CallTimer::MaxDuration);
        self.arm_liveness(now, key);
        self.arm_session_timers(now, key);
        self.calls.disarm(key, CallTimer::StillRinging);
        // Every other device of this call stops ringing, told that the call
        // was taken (so phones do not log a missed call)...
        for i in (0..legs as u16).map(LegId).filter(|&i| i != leg_id) {
            self.cancel_leg_with(now, key, i, false, Some(COMPLETED_ELSEWHERE));
        }
        // ...and so do this user's devices ringing for other calls, once the
        // user has reached their limit of calls.
        if let (true, Some((_, user_id))) = (at_limit, &answering) {
            for (other_key, other_leg) in self.calls.ringing_for(user_id, key) {
                self.cancel_leg(now, other_key, other_leg, true);
            }
        }
        self.announce_answered(key);
    }

    /// A user who placed the call is in it too once it is answered (by a
    /// colleague, the carrier, or the daemon's voicemail or menu): leased
    /// like the user who answered, until `lease_until` at most. Once per call.
    pub(crate) fn lease_caller(&mut self, now: Instant, key: CallKey, lease_until: u64) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let (Some(idx), None) = (call.caller_user, &call.caller_lease) else {
            return;
        };
        let workspace = Arc::clone(&call.workspace);
        let user_id: Box<str> = workspace.directory.user(idx).id.as_str().into();
        let who = UserRef { idx, id: &user_id };
        let holder = self.lease_base.wrapping_add(key);
        let lease = workspace.presence.take(who, holder, lease_until);
        let at_limit = lease.active_after >= self.max_calls_now(&user_id);
        self.emit(Event::BusyChanged {
            user: user_id.clone(),
            active_calls: lease.active_after,
            busy: at_limit,
        });
        if let Some(call) = self.calls.get_mut(key) {
            call.caller_lease = Some(lease);
        }
        if at_limit {
            // Busy now: their devices stop ringing for other calls.
            for (other_key, other_leg) in self.calls.ringing_for(&user_id, key) {
                self.cancel_leg(now, other_key, other_leg, true);
            }
        }
    }

    /// Stops one leg ringing: CANCEL now if it has answered provisionally,
    /// else as soon as it does (§9.1).
    pub(crate) fn cancel_leg(
        &mut self,
        now: Instant,
        key: CallKey,
        leg_id: LegId,
        user_busy: bool,
    ) {
        self.cancel_leg_with(now, key, leg_id, user_busy, None);
    }

    /// [`Engine::cancel_leg`] with a `Reason` header (RFC 3326) on the CANCEL.
    pub(crate) fn cancel_leg_with(
        &mut self,
        now: Instant,
        key: CallKey,
        leg_id: LegId,
        user_busy: bool,
        reason: Option<&'static str>,
    ) {
        let Some(leg) = self.calls.get_mut(key).and_then(|c| c.leg_mut(leg_id)) else {
            return;
        };
        if !matches!(leg.state, LegState::Calling | LegState::Ringing) || leg.cancel_requested {
            return;
        }
        leg.cancel_requested = true;
        leg.cancelled_busy |= user_busy;
        leg.cancel_reason = reason;
        if leg.state == LegState::Ringing {
            leg.cancel_sent = true;
            let tx = leg.tx;
            self.send_cancel(now, tx, reason);
        }
    }

    pub(crate) fn send_cancel(&mut self, now: Instant, invite_tx: TxId, reason: Option<&str>) {
        let (Some(mut cancel), Some(peer)) =
            (self.tl.cancel_for(invite_tx), self.tl.peer(invite_tx))
        else {
            return;
        };
        if let Some(reason) = reason {
            cancel.push(HeaderName::Reason, reason);
        }
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
        let mut dialog = Dialog::from_response(request, peer, response);
        let local = self.local_addr(peer.transport);
        let ack = dialog.ack(&mut self.ids, local, dialog.local_cseq, None);
        self.transmit(dialog.next_hop(), Bytes::from(ack.encode()));
        // Past the CSeq a PRACK in this dialog may have taken (a gap is
        // allowed, §12.2.2; a repeat would get 500).
        dialog.local_cseq += 1;
        let bye = dialog.request(&mut self.ids, local, Method::Bye);
        self.tl.new_client(now, dialog.next_hop(), bye, TxCtx::Fire);
    }

    pub(crate) fn on_leg_2xx_again(
        &mut self,
        now: Instant,
        key: CallKey,
        leg_id: LegId,
        tx: TxId,
        response: &Message,
    ) {
        let tag = tag_of(response.header(HeaderName::To).unwrap_or(""));
        let other_dialog = self
            .calls
            .get_mut(key)
            .and_then(|c| c.leg_mut(leg_id))
            .filter(|l| l.dialog.remote_tag() != tag)
            .map(|l| {
                // The first 2xx of that dialog ends it; its retransmissions
                // are only ACKed again.
                let first = !l.ended_forks.iter().any(|t| **t == *tag);
                if first {
                    l.ended_forks.push(tag.into());
                }
                first
            });
        match other_dialog {
            // §13.2.2.4: a forking proxy behind the leg answered twice; the
            // second dialog is ACKed on its own and ended.
            Some(true) => return self.ack_and_bye_stray(now, tx, response),
            Some(false) => return self.ack_stray(tx, response),
            None => {}
        }
        let ack = self
            .calls
            .get(key)
            .and_then(|c| c.leg(leg_id))
            .map(|l| (l.ack.clone(), l.dialog.next_hop()));
        match ack {
            Some((Some(bytes), to)) => self.transmit(to, bytes),
            Some((None, _)) => {}
            // The call is gone; ACK so the device stops, the BYE already went.
            None => self.ack_stray(tx, response),
        }
    }

    /// A 2xx to an INVITE whose transaction is gone: a device that
    /// answered after our INVITE gave up (Timer B), or a late copy. A 2xx
    /// whose top Via is not ours is no answer to us (§18.1.2): dropped.
    /// One in a live call's dialogs is never hung up: the answered leg's
    /// INVITE 2xx gets its ACK again, the rest is dropped. A leg that did
    /// not win, or a call that is gone: ACKed and
    /// ended with a BYE (§13.2.2.4), both sent once to where the 2xx came
    /// from (never to its Contact, so a forged 2xx cannot aim them
    /// elsewhere); a copy of the 2xx gets them again.
    pub(crate) fn on_stray_2xx(&mut self, from: Peer, response: &Message) {
        let ours = self.local_addr(from.transport);
        let via_is_ours = response.top_via().is_some_and(|via| {
            via.port == Some(ours.port())
                && via.host.trim_matches(['[', ']']) == ours.ip().to_string()
        });
        if !via_is_ours {
            return;
        }
        let call_id = response.call_id().unwrap_or("");
        let tag = tag_of(response.header(HeaderName::To).unwrap_or(""));
        let Some(cseq) = response.cseq().map(|c| c.seq) else {
            return;
        };
        match self.calls.find(call_id) {
            // Our relayed re-INVITE's 2xx, late: the caller's dialog lives.
            Some((_, Side::Caller)) => return,
            Some((key, Side::Leg(leg))) => {
                let answered = self
                    .calls
                    .get(key)
                    .and_then(|c| c.leg(leg))
                    .filter(|l| l.state == LegState::Answered && l.dialog.remote_tag() == tag);
                if let Some(leg) = answered {
                    // The call's own dialog: its INVITE's 2xx gets the
                    // ACK again, a re-INVITE's is left alone.
                    if let (true, Some(ack)) = (leg.invite_cseq == cseq, leg.ack.clone()) {
                        let to = leg.dialog.next_hop();
                        self.transmit(to, ack);
                    }
                    return;
                }
                // A leg that did not win (it timed out, was cancelled):
                // its dialog is not kept, and ends below.
            }
            None => {}
        }
        let mut request = Message::request(Method::Invite, &format!("sip:{}", from.addr));
        request.push(
            HeaderName::From,
            response.header(HeaderName::From).unwrap_or(""),
        );
        request.push(HeaderName::CallId, call_id);
        request.push(HeaderName::CSeq, &format!("{cseq} INVITE"));
        let mut dialog = Dialog::from_response(&request, from, response);
        // Where it came from, not where its Contact points.
        dialog.remote_target = format!("sip:{}", from.addr);
        dialog.route_set.clear();
        let local = self.local_addr(from.transport);
        let ack = dialog.ack(&mut self.ids, local, cseq, None);
        self.transmit(from, Bytes::from(ack.encode()));
        dialog.local_cseq = cseq;
        let bye = dialog.request(&mut self.ids, local, Method::Bye);
        self.transmit(from, Bytes::from(bye.encode()));
        tracing::debug!(call_id, "a late 2xx: ACKed and ended");
    }

    /// ACKs a 2xx on the dialog it creates, which we do not keep.
    fn ack_stray(&mut self, tx: TxId, response: &Message) {
        if let (Some(request), Some(peer)) = (self.tl.request(tx), self.tl.peer(tx)) {
            let dialog = Dialog::from_response(request, peer, response);
            let local = self.local_addr(peer.transport);
            let ack = dialog.ack(&mut self.ids, local, dialog.local_cseq, None);
            self.transmit(dialog.next_hop(), Bytes::from(ack.encode()));
        }
    }

    pub(crate) fn on_leg_timeout(&mut self, now: Instant, _tx: TxId, key: CallKey, leg_id: LegId) {
        let Some(leg) = self.calls.get_mut(key).and_then(|c| c.leg_mut(leg_id)) else {
            return;
        };
        if leg.state == LegState::Answered {
            return;
        }
        let outcome = if leg.cancel_requested {
            LegOutcome::Cancelled
        } else {
            LegOutcome::NoResponse
        };
        leg.finish(outcome);
        let user = leg.target.user().map(|(_, id)| Box::<str>::from(id));
        if let Some(user) = user {
            self.calls.stop_ringing(&user, key, leg_id);
        }
        self.fail_if_every_leg_failed(now, key);
    }

    /// A ringing call whose current tier's legs have all ended without an
    /// answer has finished that tier.
    pub(crate) fn fail_if_every_leg_failed(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        if call.state == CallState::Ringing && call.tier_done() {
            self.tier_over(now, key, TierEnd::EveryLegFailed);
        }
    }

    /// A user declined (486/603): not rung again in this call (recorded as
    /// `declined`), and in a cascade the next user rings at once. True when
    /// the call moved on.
    fn declined(&mut self, now: Instant, key: CallKey, leg_id: LegId) -> bool {
        let Some(call) = self.calls.get_mut(key) else {
            return false;
        };
        let Some((user, _)) = call.leg(leg_id).and_then(|l| l.target.user()) else {
            return false;
        };
        if !call.declined.contains(&user) {
            call.declined.push(user);
            call.note_skipped(user, routing::Gate::Declined);
        }
        let cascade = call
            .plan
            .tiers
            .get(call.step)
            .is_some_and(|t| t.strategy == Strategy::Cascade);
        if cascade && call.state == CallState::Ringing {
            // The user's other devices are cancelled with the tier.
            self.tier_over(now, key, TierEnd::EveryLegFailed);
            return true;
        }
        false
    }
}

/// RFC 5626 §5.3/§7: a device registered over several flows (one
/// instance, several reg-ids) is rung once, over the flow refreshed last;
/// devices without reg-id are left as they are.
fn one_flow_per_instance(mut bindings: Vec<presence::Binding>) -> Vec<presence::Binding> {
    if bindings.iter().all(|b| b.reg_id.is_none()) {
        return bindings;
    }
    let mut keep = vec![true; bindings.len()];
    for (i, b) in bindings.iter().enumerate() {
        let (Some(instance), Some(_)) = (&b.instance, b.reg_id) else {
            continue;
        };
        let newer_flow = bindings.iter().enumerate().any(|(j, o)| {
            j != i
                && o.reg_id.is_some()
                && o.instance.as_ref() == Some(instance)
                && (o.expires_at_ms, j) > (b.expires_at_ms, i)
        });
        keep[i] = !newer_flow;
    }
    let mut flags = keep.into_iter();
    bindings.retain(|_| flags.next().unwrap_or(true));
    bindings
}

/// The id of a call's leg number `n`: `None` past what a call may hold
/// (a `LegId` is 16 bits, and every loop over legs counts in it).
pub(crate) fn leg_id(n: usize) -> Option<LegId> {
    u16::try_from(n).ok().filter(|&n| n < u16::MAX).map(LegId)
}

/// RFC 3326: what the other legs are told when one answered.
pub(crate) const COMPLETED_ELSEWHERE: &str = "SIP;cause=200;text=\"Call completed elsewhere\"";

/// How a new call starts: its plan, and for a call out the number the
/// trunk leg calls.
struct Start {
    number: Option<NumberIdx>,
    plan: Plan,
    direction: Direction,
    out: Option<String>,
}

/// A plan with no tier yet, hanging up (with the status the legs earn)
/// when its tiers are done.
fn empty_plan(number: Option<NumberIdx>, ring_timeout: Duration) -> Plan {
    Plan {
        number,
        open: routing::Openness::ALWAYS,
        tiers: Vec::new(),
        ring_timeout,
        then: directory::Destination::Hangup { status: None },
        skipped: Vec::new(),
    }
}

/// Whether a request says it comes from one of our users: credentials for
/// one, or a From of our domain naming a user id or extension. Such an
/// INVITE is a user's call wherever it comes from, and is authenticated.
fn names_a_user(request: &Message, directory: &directory::Directory) -> bool {
    let domain = directory.domain();
    // Credentials for our realm (a carrier's own, for its realm, do not count).
    let ours = request
        .header(HeaderName::ProxyAuthorization)
        .and_then(|v| sip::auth::parse_credentials(v).ok())
        .is_some_and(|c| c.realm.eq_ignore_ascii_case(domain));
    if ours {
        return true;
    }
    let Some(from) = request.from_header() else {
        return false;
    };
    let Ok(uri) = Uri::parse(from.uri) else {
        return false;
    };
    let (Some(user), true) = (uri.user, uri.host.eq_ignore_ascii_case(domain)) else {
        return false;
    };
    directory.user_index(user).is_some() || directory.user_by_extension(user).is_some()
}

/// How long an outbound call may ring before the daemon gives up (the
/// carrier's own Timer C is usually three minutes).
pub(crate) const OUTBOUND_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a call to a colleague rings.
const INTERNAL_RING_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a ringing call tells its caller it still rings (§13.3.1.1
/// asks for at least once a minute).
pub(crate) const STILL_RINGING: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a lease outlives the call's own maximum duration.
pub(crate) const LEASE_MARGIN_MS: u64 = 60_000;

/// What the record needs of a refused INVITE.
pub(crate) struct RequestSummary {
    pub(crate) call_id: String,
    pub(crate) caller: String,
}

fn req_summary(request: &Message) -> RequestSummary {
    RequestSummary {
        call_id: request.call_id().unwrap_or("").to_string(),
        caller: request
            .from_header()
            .map(|f| f.uri.to_string())
            .unwrap_or_default(),
    }
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
/// Who the callee sees calling: display name and user part. From a trunk
/// (a trusted peer, RFC 3325 §4) `P-Asserted-Identity` wins over From, and
/// `Privacy: id` or `header` hides the caller as `Anonymous`.
fn caller_identity(request: &Message, trusted: bool) -> (String, String) {
    if trusted {
        let private = request
            .header_lines(HeaderName::Privacy)
            .flat_map(|v| v.split(';'))
            .any(|p| {
                matches!(
                    p.trim().to_ascii_lowercase().as_str(),
                    "id" | "header" | "user"
                )
            });
        if private {
            return ("Anonymous".into(), "anonymous".into());
        }
        if let Some(asserted) = request
            .values(HeaderName::PAssertedIdentity)
            .filter_map(sip::NameAddr::parse)
            .find(|n| Uri::parse(n.uri).is_ok_and(|u| u.user.is_some()))
        {
            return shown_as(&asserted);
        }
    }
    match request.from_header() {
        Some(from) => shown_as(&from),
        None => ("Unknown".into(), "anonymous".into()),
    }
}

/// An identity's display name (else its user part, or "Unknown" for an
/// anonymous one) and user part.
fn shown_as(who: &sip::NameAddr<'_>) -> (String, String) {
    let user = Uri::parse(who.uri)
        .ok()
        .and_then(|u| u.user)
        .unwrap_or("anonymous")
        .to_string();
    let name = who
        .display_name()
        .map(|n| n.replace('\\', ""))
        .unwrap_or_else(|| {
            if user == "anonymous" {
                "Unknown".into()
            } else {
                user.clone()
            }
        });
    (name, user)
}
