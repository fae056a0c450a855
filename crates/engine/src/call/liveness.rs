//! Whether both sides of an answered call are still there: an in-dialog
//! OPTIONS to each side every half `liveness_timeout` (RFC 3261 §11 inside
//! a dialog; any answer but 481 or 408 says the peer holds the dialog), so
//! a phone that vanished without a BYE (Wi-Fi gone, crashed, unplugged) is
//! noticed within `liveness_timeout`: its call ends with a BYE to the other
//! side and its user is free again. A side that negotiated a session timer
//! (RFC 4028, [`super::session_timer`]) is not probed. It must not touch
//! media: calls routed straight to phones carry no RTP through the daemon.

use std::time::Instant;

use sip::Method;

use super::{CallKey, CallState, CallTimer, Side};
use crate::{Backend, Engine, TxCtx};

/// Which probe of a call is out: the caller's, the answering leg's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Probes {
    pub(crate) caller: bool,
    pub(crate) callee: bool,
}

impl<B: Backend> Engine<B> {
    /// Arms the first probe of a call just answered (once per call).
    pub(crate) fn arm_liveness(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        if call.timers.iter().any(|(_, t)| *t == CallTimer::Liveness) {
            return;
        }
        let interval = self.cfg.liveness_timeout / 2;
        self.calls.arm(key, now + interval, CallTimer::Liveness);
    }

    /// A probe round: a side whose last probe is still unanswered is gone;
    /// else each side gets a new OPTIONS.
    pub(crate) fn on_liveness_timer(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let mut sides: Vec<Side> = match call.state {
            CallState::Answered(winner) if !call.callee_hung_up => {
                vec![Side::Caller, Side::Leg(winner)]
            }
            CallState::Answered(_) | CallState::Media => vec![Side::Caller],
            CallState::Ringing if call.caller.answered_by_us => vec![Side::Caller],
            CallState::Ringing => return,
        };
        // A side with a session timer is watched by it instead.
        sides.retain(|&side| call.session_timers.of(side).is_none());
        if sides.is_empty() {
            return;
        }
        let probes = call.probes;
        for &side in &sides {
            let pending = match side {
                Side::Caller => probes.caller,
                Side::Leg(_) => probes.callee,
            };
            if pending {
                return self.side_lost(now, key, side, "no answer to a liveness probe");
            }
        }
        for side in sides {
            let Some(dialog) = self.calls.get_mut(key).and_then(|c| c.dialog_mut(side)) else {
                continue;
            };
            let local = crate::addressing::local_addr(&self.cfg, dialog.peer.transport);
            let options = dialog.request(&mut self.ids, local, Method::Options);
            let to = dialog.next_hop();
            self.tl
                .new_client(now, to, options, TxCtx::Probe(key, side));
            if let Some(call) = self.calls.get_mut(key) {
                match side {
                    Side::Caller => call.probes.caller = true,
                    Side::Leg(_) => call.probes.callee = true,
                }
            }
        }
        let interval = self.cfg.liveness_timeout / 2;
        self.calls.arm(key, now + interval, CallTimer::Liveness);
    }

    /// The answer to a probe (`None`: none came).
    pub(crate) fn on_probe_answer(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        status: Option<u16>,
    ) {
        match status {
            // The peer does not know the dialog (it restarted), or nothing
            // answered: the side is gone.
            Some(481 | 408) | None => self.side_lost(now, key, side, "a liveness probe failed"),
            Some(_) => {
                if let Some(call) = self.calls.get_mut(key) {
                    match side {
                        Side::Caller => call.probes.caller = false,
                        Side::Leg(_) => call.probes.callee = false,
                    }
                }
            }
        }
    }

    /// `side` of an answered call stopped doing its part (refreshing its
    /// session, sending RTP) but may still be there: it gets a BYE too, and
    /// the other side is hung up.
    pub(crate) fn drop_side(&mut self, now: Instant, key: CallKey, side: Side, why: &'static str) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        tracing::info!(call_id = %call.caller.dialog.call_id, ?side, why, "hanging up a silent side");
        self.send_bye(now, key, side);
        self.hang_up(now, key, side);
    }

    /// `side` of an answered call is gone: the other side is hung up.
    fn side_lost(&mut self, now: Instant, key: CallKey, side: Side, why: &'static str) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        tracing::info!(call_id = %call.caller.dialog.call_id, ?side, why, "a side of the call is gone: hanging up");
        self.hang_up(now, key, side);
    }
}
