//! Carrying a call's plan out: the tiers one after another, each checked
//! against the gates again when its turn comes (so a cascade skips whoever
//! became busy or signed out), bounded by the whole attempt's timeout; then
//! the destination. A destination may start a new plan (a ring group,
//! another number with its own hours) or a leg to the trunk (forward); a
//! call follows at most [`MAX_DESTINATIONS`] of them, then hangs up with 482.

use std::sync::Arc;
use std::time::{Duration, Instant};

use directory::{CallerId, Destination};
use sip::auth;
use sip::build::via_value;
use sip::dialog::Dialog;
use sip::header::Uri;
use sip::transaction::{Peer, Transport, TxId};
use sip::{HeaderName, Message, Method};

use super::{CallKey, CallState, CallTimer, Leg, LegId, LegState, LegTarget};
use crate::events::CallOutcome;
use crate::{Backend, Engine, TxCtx, ALLOW};

/// Destinations a call may follow before it is hung up with 482.
pub(crate) const MAX_DESTINATIONS: u8 = 8;

/// How long a forward through the trunk may ring, unless the number's own
/// `ring_timeout` is longer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(60);

/// A call out through the trunk: whom, shown as whom, and why.
pub(crate) struct TrunkCall<'a> {
    /// The number called (the Request-URI's user part).
    pub(crate) to: &'a str,
    /// The From's user part: the caller's number, or one of our lines.
    pub(crate) shown: &'a str,
    /// A `Diversion` (RFC 5806) for a forwarded call.
    pub(crate) diversion: Option<&'a str>,
    /// `shown` is one of our lines: also in `P-Asserted-Identity`.
    pub(crate) asserted: bool,
}

/// Why a tier stopped ringing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TierEnd {
    /// Its timeout (or the whole attempt's) passed.
    TimedOut,
    /// Every leg refused, failed or was cancelled (or nobody could ring).
    EveryLegFailed,
}

impl<B: Backend> Engine<B> {
    /// Starts the call's (new) plan: its first tier, or its destination.
    pub(crate) fn start_plan(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.step = 0;
        call.attempt_deadline = now + call.plan.ring_timeout;
        self.arm_still_ringing(now, key);
        self.start_tier(now, key, TierEnd::EveryLegFailed);
    }

    /// §13.3.1.1: a call that may ring past a minute tells its caller so
    /// every minute (most ring 30 s and never need the timer).
    fn arm_still_ringing(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let due = call.arrived + super::fork::STILL_RINGING;
        if !call.still_ringing && call.attempt_deadline > due {
            call.still_ringing = true;
            self.calls.arm(key, due.max(now), CallTimer::StillRinging);
        }
    }

    /// Rings tier `step` with whoever of it can ring now; a tier where
    /// nobody can is skipped at once. `previous` is how the tier before
    /// ended, which the destination is followed with if no tier is left.
    fn start_tier(&mut self, now: Instant, key: CallKey, previous: TierEnd) {
        let at = self.clock.timestamp(now);
        loop {
            let Some(call) = self.calls.get(key) else {
                return;
            };
            if call.state != CallState::Ringing {
                return;
            }
            let Some(tier) = call.plan.tiers.get(call.step) else {
                return self.follow_destination(now, key, previous);
            };
            if now >= call.attempt_deadline {
                return self.follow_destination(now, key, TierEnd::TimedOut);
            }
            let workspace = Arc::clone(&call.workspace);
            let (users, gated) = routing::ringable(
                &workspace.directory,
                &workspace.presence,
                &tier.users,
                &call.declined,
                call.caller_user,
                at,
            );
            let deadline = (now + tier.timeout).min(call.attempt_deadline);
            let line = call
                .plan
                .number
                .map(|n| workspace.directory.number(n).name.clone())
                .unwrap_or_default();
            let first = call.legs.len();
            let legs = self.fork_users(now, key, &workspace, &line, &users);
            let Some(call) = self.calls.get_mut(key) else {
                return;
            };
            for verdict in gated {
                if let Some(gate) = verdict.stopped_by {
                    call.note_skipped(verdict.user, gate);
                }
            }
            if legs.is_empty() {
                tracing::debug!(step = call.step, "nobody in this tier can ring: next");
                call.step += 1;
                continue;
            }
            call.tier_from = first;
            self.calls.add_legs(key, legs);
            self.calls.arm(key, deadline, CallTimer::RingTimeout);
            return;
        }
    }

    /// The tier being rung is over: the next tier, or the destination.
    pub(crate) fn tier_over(&mut self, now: Instant, key: CallKey, end: TierEnd) {
        self.calls.disarm(key, CallTimer::RingTimeout);
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let ringing: Vec<LegId> = (call.tier_from..call.legs.len())
            .map(|i| LegId(i as u16))
            .filter(|&i| {
                call.leg(i)
                    .is_some_and(|l| matches!(l.state, LegState::Calling | LegState::Ringing))
            })
            .collect();
        call.step += 1;
        let more = call.step < call.plan.tiers.len() && now < call.attempt_deadline;
        for leg in ringing {
            self.cancel_leg(now, key, leg, false);
        }
        if more {
            self.start_tier(now, key, end);
        } else {
            self.follow_destination(now, key, end);
        }
    }

    /// Nobody took the call from the plan's tiers: where it goes now.
    pub(crate) fn follow_destination(&mut self, now: Instant, key: CallKey, end: TierEnd) {
        let at = self.clock.timestamp(now);
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let then = call.plan.then.clone();
        // A hangup ends the call; only destinations that go on count.
        if !matches!(then, Destination::Hangup { .. }) {
            call.destinations += 1;
        }
        if call.destinations > MAX_DESTINATIONS {
            tracing::warn!("a call followed {MAX_DESTINATIONS} destinations: hung up");
            return self.fail_call(now, key, 482, CallOutcome::Failed { status: 482 });
        }
        let rang = !call.legs.is_empty();
        tracing::debug!(action = then.action(), "destination");
        match then {
            Destination::Hangup { status } => {
                let status = match status {
                    Some(s) => s,
                    None if rang => call.failure_status(),
                    None => call.plan.hangup_status().unwrap_or(480),
                };
                let outcome = match (rang, end) {
                    (false, _) => CallOutcome::Rejected { status },
                    (true, TierEnd::TimedOut) => CallOutcome::NoAnswer { status },
                    (true, TierEnd::EveryLegFailed) => CallOutcome::Failed { status },
                };
                self.fail_call(now, key, status, outcome);
            }
            Destination::Ring(group) => {
                let (tiers, bound) = routing::ring_group_tiers(&group);
                call.plan.tiers = tiers;
                call.plan.ring_timeout = bound;
                call.plan.then = Destination::DEFAULT_NO_ANSWER;
                self.start_plan(now, key);
            }
            Destination::Number(number) => {
                let workspace = Arc::clone(&call.workspace);
                call.plan = routing::plan_number_for(
                    &workspace.directory,
                    &workspace.presence,
                    number,
                    at,
                    call.caller_user,
                );
                self.start_plan(now, key);
            }
            media @ (Destination::Voicemail | Destination::Ivr(_) | Destination::Message(_)) => {
                self.start_media(now, key, media)
            }
            Destination::Forward { to, caller_id } => {
                // Outside hours the number forwards by the clock; else
                // because nobody answered (RFC 5806 reasons).
                let reason = match (call.plan.open.open, rang) {
                    (false, _) => "time-of-day",
                    (true, true) => "no-answer",
                    (true, false) => "unavailable",
                };
                let Some(number) = call.current_number() else {
                    return self.fail_call(now, key, 480, CallOutcome::Failed { status: 480 });
                };
                let workspace = Arc::clone(&call.workspace);
                let directory = &workspace.directory;
                let timeout = directory.number(number).ring_timeout.max(FORWARD_TIMEOUT);
                let e164 = directory.number(number).e164.clone();
                // One of our users calling: their line, never what their
                // phone's From claims (the carrier would show it).
                let placing = call.caller_user.map(|u| {
                    let user = directory.user(u);
                    user.lines
                        .first()
                        .map_or_else(|| e164.clone(), |&l| directory.number(l).e164.clone())
                });
                let shown = match (caller_id, placing) {
                    (CallerId::Number, _) => e164.clone(),
                    (CallerId::Caller, Some(line)) => line,
                    (CallerId::Caller, None) => super::caller_invite(&self.tl, &self.calls, key)
                        .and_then(|req| req.from_header())
                        .and_then(|f| Uri::parse(f.uri).ok())
                        .and_then(|u| u.user.map(str::to_string))
                        .unwrap_or_else(|| e164.clone()),
                };
                let diversion =
                    format!("<sip:{e164}@{}>;reason={reason};counter=1", self.cfg.domain);
                let out = TrunkCall {
                    to: &to,
                    shown: &shown,
                    diversion: Some(&diversion),
                    asserted: false,
                };
                self.ring_trunk(now, key, directory, out, timeout);
            }
        }
    }

    /// Rings `out` through the trunk for at most `timeout`, as the call's
    /// only tier; a call that cannot (no trunk) fails with 480.
    pub(crate) fn ring_trunk(
        &mut self,
        now: Instant,
        key: CallKey,
        directory: &directory::Directory,
        out: TrunkCall<'_>,
        timeout: Duration,
    ) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.plan.tiers.clear();
        call.plan.then = Destination::DEFAULT_NO_ANSWER;
        call.step = 0;
        call.attempt_deadline = now + timeout;
        match self.trunk_leg(now, key, directory, out) {
            Some(leg) => {
                let Some(call) = self.calls.get_mut(key) else {
                    return;
                };
                call.tier_from = call.legs.len();
                let deadline = call.attempt_deadline;
                self.calls.add_legs(key, vec![leg]);
                self.calls.arm(key, deadline, CallTimer::RingTimeout);
                self.arm_still_ringing(now, key);
            }
            None => self.fail_call(now, key, 480, CallOutcome::Failed { status: 480 }),
        }
    }

    /// A leg to the trunk's outbound side calling `out.to`.
    fn trunk_leg(
        &mut self,
        now: Instant,
        key: CallKey,
        directory: &directory::Directory,
        out: TrunkCall<'_>,
    ) -> Option<Leg> {
        let TrunkCall {
            to,
            shown,
            diversion,
            asserted,
        } = out;
        let trunk = directory.outbound_trunk()?;
        let outbound = trunk.outbound.as_ref()?;
        let first = self.calls.get(key)?.legs.len();
        let req = super::caller_invite(&self.tl, &self.calls, key)?;
        let peer = Peer {
            transport: Transport::Udp,
            addr: outbound.address,
        };
        let local_addr = self.local_addr(Transport::Udp);
        let uri = format!("sip:{to}@{}", outbound.address);
        let local = format!("<sip:{shown}@{}>;tag={}", self.cfg.domain, self.ids.tag());
        let remote = format!("<{uri}>");
        let call_id = self.ids.call_id();
        let max_forwards = req.max_forwards().unwrap_or(70).saturating_sub(1).min(70);
        let (content_type, body) = super::leg_offer(&self.calls, key, req);
        let dialog = Dialog::uac(peer, call_id, local, remote, uri);
        let mut invite = dialog.invite(&mut self.ids, local_addr, max_forwards);
        if let Some(diversion) = diversion {
            invite.push_other("Diversion", diversion);
        }
        if asserted {
            // The carrier trusts us for the identity of our own lines
            // (RFC 3325); the From says the same for those that do not.
            invite.push(
                HeaderName::PAssertedIdentity,
                &format!("<sip:{shown}@{}>", self.cfg.domain),
            );
        }
        invite.push(HeaderName::Allow, ALLOW);
        if body.is_empty() {
            // Late offer: no reliable 18x, whose offer a PRACK must answer.
            invite.push(HeaderName::Supported, crate::SUPPORTED_LATE_OFFER);
        } else {
            invite.push(HeaderName::Supported, crate::SUPPORTED);
        }
        super::session_timer::offer(&self.cfg, &mut invite);
        if let Some(ct) = &content_type {
            invite.push(HeaderName::ContentType, ct);
        }
        invite.set_body(body);
        let leg_id = super::fork::leg_id(first)?;
        let retry = Some(Box::new(invite.clone()));
        let tx = self
            .tl
            .new_client(now, peer, invite, TxCtx::Leg(key, leg_id));
        tracing::debug!(trunk = %trunk.name, "calling out through the trunk");
        let target = LegTarget::Trunk {
            trunk: trunk.name.as_str().into(),
            to: to.to_string(),
        };
        let mut leg = Leg::new(target, tx, dialog);
        leg.retry = retry;
        Some(leg)
    }

    /// The carrier answered a trunk leg with 401/407: the same INVITE again,
    /// CSeq one up, with the trunk's credentials for that challenge.
    pub(crate) fn retry_with_credentials(
        &mut self,
        now: Instant,
        key: CallKey,
        leg_id: LegId,
        _tx: TxId,
        challenge: &Message,
    ) {
        let workspace = match self.calls.get(key) {
            Some(call) => Arc::clone(&call.workspace),
            None => return,
        };
        let status = challenge.status().unwrap_or(401);
        let (ask, answer) = if status == 407 {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        } else {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        };
        let creds = workspace
            .directory
            .outbound_trunk()
            .and_then(|t| t.outbound.as_ref())
            .and_then(|o| Some((o.username.clone()?, o.password.clone()?)));
        let parsed = challenge.header_lines(ask).find_map(auth::parse_challenge);
        let request = self
            .calls
            .get_mut(key)
            .and_then(|c| c.leg_mut(leg_id))
            .and_then(|l| l.retry.take());
        let (Some((username, password)), Some(parsed), Some(original)) = (creds, parsed, request)
        else {
            // No credentials, or a challenge we cannot answer: the leg fails.
            if let Some(leg) = self.calls.get_mut(key).and_then(|c| c.leg_mut(leg_id)) {
                leg.finish(crate::events::LegOutcome::Refused(status));
            }
            return self.fail_if_every_leg_failed(now, key);
        };
        let uri = original.request_uri().unwrap_or("").to_string();
        let cnonce = self.ids.tag();
        let value = auth::authorization(&parsed, &username, &password, "INVITE", &uri, &cnonce);
        let Some(leg) = self.calls.get_mut(key).and_then(|c| c.leg_mut(leg_id)) else {
            return;
        };
        let original = *original;
        leg.invite_cseq += 1;
        leg.dialog.local_cseq = leg.invite_cseq;
        let mut invite = Message::request(Method::Invite, &uri);
        let local_addr = crate::addressing::local_addr(&self.cfg, leg.dialog.peer.transport);
        invite.push(
            HeaderName::Via,
            &via_value(&mut self.ids, local_addr, leg.dialog.peer.transport),
        );
        for (name, raw, value) in original.headers() {
            if !matches!(
                name,
                HeaderName::Via | HeaderName::CSeq | HeaderName::ContentLength
            ) {
                invite.push_other(raw, value);
            }
        }
        invite.push(HeaderName::CSeq, &format!("{} INVITE", leg.invite_cseq));
        invite.push(answer, &value);
        invite.set_body(original.body().clone());
        let peer = leg.dialog.peer;
        let new_tx = self
            .tl
            .new_client(now, peer, invite, TxCtx::Leg(key, leg_id));
        if let Some(leg) = self.calls.get_mut(key).and_then(|c| c.leg_mut(leg_id)) {
            leg.tx = new_tx;
            leg.state = LegState::Calling;
        }
    }
}
