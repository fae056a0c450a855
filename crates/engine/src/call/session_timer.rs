//! Session timers (RFC 4028) on each side of a call, negotiated hop by
//! hop as a B2BUA does: toward the caller the daemon is the UAS, toward the
//! answering leg the UAC. A side that negotiated a timer is refreshed or
//! watched by it instead of by the liveness probes: when the daemon is the
//! refresher it sends an `UPDATE` every half interval (its failure, 481 or
//! 408 or none, ends the call like a failed probe); when the peer is, a
//! session not refreshed by the interval less a third (at most 32 s less)
//! ends with a BYE to both sides. A side that does not support `timer` is
//! probed with OPTIONS as before. The interval is `liveness_timeout`, at
//! least 90 s (the RFC's floor for `Min-SE`).
//!
//! It must not do IO or read a clock. Refreshes are sent by `UPDATE` only:
//! a caller that asks the daemon to refresh but does not allow `UPDATE`
//! gets no session timer (its side is probed instead).

use std::time::{Duration, Instant};

use sip::session_timer::{self, Refresher, SessionExpires, MIN_SE_FLOOR};
use sip::{HeaderName, Message, Method};

use super::{CallKey, CallState, CallTimer, Side};
use crate::{Backend, Engine, EngineConfig, TxCtx};

/// A side's session timer, as negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SideTimer {
    pub(crate) secs: u32,
    /// The daemon refreshes (else the peer does, and the daemon watches).
    pub(crate) we_refresh: bool,
}

/// The timers of a call's two sides (`None`: that side is probed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SessionTimers {
    pub(crate) caller: Option<SideTimer>,
    pub(crate) callee: Option<SideTimer>,
}

impl SessionTimers {
    pub(crate) fn of(&self, side: Side) -> Option<SideTimer> {
        match side {
            Side::Caller => self.caller,
            Side::Leg(_) => self.callee,
        }
    }
}

/// The interval the daemon asks for and accepts at most.
pub(crate) fn our_interval(cfg: &EngineConfig) -> u32 {
    let secs = u32::try_from(cfg.liveness_timeout.as_secs()).unwrap_or(u32::MAX);
    secs.max(MIN_SE_FLOOR)
}

/// What the caller's INVITE asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallerAsks {
    /// No timer on this side: it is probed.
    Nothing,
    Timer(SideTimer),
    /// Its interval is below our minimum: `422` with this `Min-SE`.
    TooSmall(u32),
}

/// Reads the caller's INVITE (RFC 4028 §9, the daemon as UAS).
pub(crate) fn caller_asks(cfg: &EngineConfig, invite: &Message) -> CallerAsks {
    if !session_timer::supports_timer(invite) {
        // A Session-Expires a proxy added for a UAC that does not know
        // timers would make the daemon the refresher: probes do that job.
        return CallerAsks::Nothing;
    }
    let asked = session_timer::session_expires(invite);
    if asked.is_some_and(|se| se.secs < MIN_SE_FLOOR) {
        return CallerAsks::TooSmall(MIN_SE_FLOOR);
    }
    let floor = session_timer::min_se(invite)
        .unwrap_or(MIN_SE_FLOOR)
        .max(MIN_SE_FLOOR);
    let secs = asked
        .map_or(our_interval(cfg), |se| se.secs.min(our_interval(cfg)))
        .max(floor);
    // The caller refreshes unless it asked the daemon to.
    let we_refresh = asked.and_then(|se| se.refresher) == Some(Refresher::Uas);
    if we_refresh && !allows_update(invite) {
        return CallerAsks::Nothing;
    }
    CallerAsks::Timer(SideTimer { secs, we_refresh })
}

/// Reads the answering leg's 2xx (RFC 4028 §7.2, the daemon as UAC): no
/// `Session-Expires`, no timer. When the daemon refreshes, it does so at
/// its own interval if the leg's is longer (refreshing more often is
/// allowed), and only if the leg allows `UPDATE`; a leg that refreshes
/// itself less often than the daemon's bound is probed as well (no timer
/// here).
pub(crate) fn leg_answers(cfg: &EngineConfig, response: &Message) -> Option<SideTimer> {
    let se = session_timer::session_expires(response)?;
    let secs = se.secs.max(MIN_SE_FLOOR);
    // A missing refresher leaves it to the UAC: the daemon.
    let we_refresh = se.refresher != Some(Refresher::Uas);
    match we_refresh {
        true if allows_update(response) => Some(SideTimer {
            secs: secs.min(our_interval(cfg)),
            we_refresh,
        }),
        true => None,
        false => (secs <= our_interval(cfg)).then_some(SideTimer { secs, we_refresh }),
    }
}

/// Takes the `timer` tag out of `Require` and `Supported` (copied end to
/// end from the other side): session timers are negotiated hop by hop,
/// and [`push`] adds it where this hop has one.
pub(crate) fn strip_option_tag(message: &mut Message) {
    for header in [HeaderName::Require, HeaderName::Supported] {
        let kept: Vec<String> = message
            .values(header)
            .map(str::trim)
            .filter(|tag| !tag.eq_ignore_ascii_case(session_timer::OPTION_TAG))
            .map(str::to_string)
            .collect();
        if message.has_header(header) {
            message.remove(header);
            if !kept.is_empty() {
                message.push(header, &kept.join(", "));
            }
        }
    }
}

/// The caller's timer on a call the daemon answers itself (voicemail,
/// menus, the relay): its media session refuses re-INVITEs (488), so a
/// caller refreshing by re-INVITE would never be refreshed. The daemon
/// refreshes by UPDATE instead when the caller allows it and did not ask
/// to refresh itself; otherwise no timer (the caller is probed, and its
/// RTP watched).
pub(crate) fn for_media_call(timer: SideTimer, invite: Option<&Message>) -> Option<SideTimer> {
    let invite = invite?;
    let asked_uac =
        session_timer::session_expires(invite).and_then(|se| se.refresher) == Some(Refresher::Uac);
    (allows_update(invite) && !asked_uac).then_some(SideTimer {
        we_refresh: true,
        ..timer
    })
}

fn allows_update(message: &Message) -> bool {
    message
        .values(HeaderName::Allow)
        .any(|m| m.trim().eq_ignore_ascii_case("UPDATE"))
}

/// The offer in an INVITE the daemon sends (a leg).
pub(crate) fn offer(cfg: &EngineConfig, invite: &mut Message) {
    invite.push(HeaderName::SessionExpires, &our_interval(cfg).to_string());
    invite.push(HeaderName::MinSe, &MIN_SE_FLOOR.to_string());
}

/// The `Session-Expires` of a message the daemon sends on a side with
/// `timer`. The refresher is named from the roles in this message's own
/// transaction (RFC 4028 §7.4, §9): `uac` is whoever sends the request,
/// so a request of ours says `uac` when we refresh, and a response of
/// ours says `uac` when the peer (who sent the request) does.
pub(crate) fn push(timer: SideTimer, message: &mut Message) {
    let refresher = if message.is_request() == timer.we_refresh {
        Refresher::Uac
    } else {
        Refresher::Uas
    };
    let se = SessionExpires {
        secs: timer.secs,
        refresher: Some(refresher),
    };
    message.push(HeaderName::SessionExpires, &se.value());
    if message.is_request() {
        message.push(HeaderName::Supported, session_timer::OPTION_TAG);
    }
    if message.status().is_some() || timer.we_refresh {
        message.push(HeaderName::Require, session_timer::OPTION_TAG);
    }
}

fn timer_of(side: Side) -> CallTimer {
    match side {
        Side::Caller => CallTimer::SessionCaller,
        Side::Leg(_) => CallTimer::SessionCallee,
    }
}

fn due_in(timer: SideTimer) -> Duration {
    let secs = if timer.we_refresh {
        timer.secs / 2
    } else {
        SessionExpires {
            secs: timer.secs,
            refresher: None,
        }
        .expiry_secs()
    };
    Duration::from_secs(u64::from(secs))
}

impl<B: Backend> Engine<B> {
    /// Arms each side's timer of a call just answered.
    pub(crate) fn arm_session_timers(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let timers = call.session_timers;
        for (timer, kind) in [
            (timers.caller, CallTimer::SessionCaller),
            (timers.callee, CallTimer::SessionCallee),
        ] {
            if let Some(timer) = timer {
                self.calls.disarm(key, kind);
                self.calls.arm(key, now + due_in(timer), kind);
            }
        }
    }

    /// A refresh (re-INVITE or UPDATE) from `side` of an answered call got
    /// a 2xx (RFC 4028 §10: only that refreshes): if the peer is its
    /// refresher, the session lives another interval.
    pub(crate) fn session_refreshed(&mut self, now: Instant, key: CallKey, side: Side) {
        let Some(timer) = self
            .calls
            .get(key)
            .filter(|c| c.answered.is_some())
            .and_then(|c| c.session_timers.of(side))
        else {
            return;
        };
        if !timer.we_refresh {
            self.calls.disarm(key, timer_of(side));
            self.calls.arm(key, now + due_in(timer), timer_of(side));
        }
    }

    /// A side's timer fired: the daemon refreshes it, or the peer did not.
    pub(crate) fn on_session_timer(&mut self, now: Instant, key: CallKey, caller: bool) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let side = match (caller, call.state) {
            (true, _) => Side::Caller,
            (false, CallState::Answered(winner)) if !call.callee_hung_up => Side::Leg(winner),
            (false, _) => return,
        };
        let Some(timer) = call.session_timers.of(side) else {
            return;
        };
        if !timer.we_refresh {
            // RFC 4028 §10: the side is told too.
            return self.drop_side(now, key, side, "session expired: no refresh came");
        }
        let Some(dialog) = self.calls.get_mut(key).and_then(|c| c.dialog_mut(side)) else {
            return;
        };
        let local = crate::addressing::local_addr(&self.cfg, dialog.peer.transport);
        let mut update = dialog.request(&mut self.ids, local, Method::Update);
        push(timer, &mut update);
        let to = dialog.next_hop();
        // Answered like a probe: 481, 408 or nothing means the side is gone.
        self.tl.new_client(now, to, update, TxCtx::Probe(key, side));
        self.calls.arm(key, now + due_in(timer), timer_of(side));
    }
}
