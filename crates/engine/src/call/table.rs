//! The table of calls in progress, its indexes (by the caller's Call-ID, by
//! each leg's Call-ID, the ringing legs of each user) and the one timer
//! table for everything a call arms. Removing a call removes it from every
//! index and every timer, so nothing of an ended call lingers.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::{Call, CallState, CallTimer, LegId, Side};

pub(crate) type CallKey = u64;

/// Calls in progress by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub ringing: usize,
    pub answered: usize,
    pub legs: usize,
    /// Legs not answered yet (their INVITE still pending).
    pub legs_ringing: usize,
    /// Calls with the daemon's own media (voicemail, menu, message).
    pub media: usize,
    /// Armed call timers (ring timeout, maximum duration).
    pub timers: usize,
}

pub(crate) struct Calls<V> {
    calls: HashMap<CallKey, Call<V>>,
    next_key: CallKey,
    by_caller_call_id: HashMap<Box<str>, CallKey>,
    by_leg_call_id: HashMap<Box<str>, (CallKey, LegId)>,
    /// Legs still ringing, per user id: when the user answers one call,
    /// the others may have to stop ringing.
    ringing_by_user: HashMap<Box<str>, Vec<(CallKey, LegId)>>,
    /// Armed call timers. An ordered set rather than a heap with lazy
    /// deletion: a call's maximum-duration timer lies hours ahead, and an
    /// ended call must not leave it behind.
    timers: BTreeSet<(Instant, CallKey, CallTimer)>,
}

impl<V> Default for Calls<V> {
    fn default() -> Self {
        Calls {
            calls: HashMap::new(),
            next_key: 0,
            by_caller_call_id: HashMap::new(),
            by_leg_call_id: HashMap::new(),
            ringing_by_user: HashMap::new(),
            timers: BTreeSet::new(),
        }
    }
}

impl<V> Calls<V> {
    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }

    /// A key for a call about to be inserted.
    pub(crate) fn next_key(&mut self) -> CallKey {
        let key = self.next_key;
        self.next_key += 1;
        key
    }

    pub(crate) fn has_caller_call_id(&self, call_id: &str) -> bool {
        self.by_caller_call_id.contains_key(call_id)
    }

    /// Adds a call (with the legs it has, usually none yet).
    pub(crate) fn insert(&mut self, key: CallKey, call: Call<V>) {
        self.by_caller_call_id
            .insert(call.caller.dialog.call_id.as_str().into(), key);
        self.calls.insert(key, call);
        self.index_legs(key, 0);
    }

    /// Appends `legs` to a call and indexes them.
    pub(crate) fn add_legs(&mut self, key: CallKey, legs: Vec<super::Leg>) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let from = call.legs.len();
        call.legs.extend(legs);
        self.index_legs(key, from);
    }

    fn index_legs(&mut self, key: CallKey, from: usize) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        for (i, leg) in call.legs.iter().enumerate().skip(from) {
            let id = LegId(i as u16);
            self.by_leg_call_id
                .insert(leg.dialog.call_id.as_str().into(), (key, id));
            if let Some((_, user)) = leg.target.user() {
                self.ringing_by_user
                    .entry(user.into())
                    .or_default()
                    .push((key, id));
            }
        }
    }

    /// The keys of every call, in no particular order.
    pub(crate) fn keys(&self) -> Vec<CallKey> {
        self.calls.keys().copied().collect()
    }

    /// Every call, in no particular order (for the admin API's list).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Call<V>> {
        self.calls.values()
    }

    pub(crate) fn get(&self, key: CallKey) -> Option<&Call<V>> {
        self.calls.get(&key)
    }

    pub(crate) fn get_mut(&mut self, key: CallKey) -> Option<&mut Call<V>> {
        self.calls.get_mut(&key)
    }

    /// The call and side a Call-ID belongs to.
    pub(crate) fn find(&self, call_id: &str) -> Option<(CallKey, Side)> {
        if let Some(&key) = self.by_caller_call_id.get(call_id) {
            return Some((key, Side::Caller));
        }
        self.by_leg_call_id
            .get(call_id)
            .map(|&(key, leg)| (key, Side::Leg(leg)))
    }

    /// Takes a call out of the table, its indexes and its timers.
    pub(crate) fn remove(&mut self, key: CallKey) -> Option<Call<V>> {
        let mut call = self.calls.remove(&key)?;
        for (at, timer) in call.timers.drain(..) {
            self.timers.remove(&(at, key, timer));
        }
        self.by_caller_call_id
            .remove(call.caller.dialog.call_id.as_str());
        for (i, leg) in call.legs.iter().enumerate() {
            self.by_leg_call_id.remove(leg.dialog.call_id.as_str());
            if let Some((_, user)) = leg.target.user() {
                self.stop_ringing(user, key, LegId(i as u16));
            }
        }
        Some(call)
    }

    /// A leg no longer rings for its user.
    pub(crate) fn stop_ringing(&mut self, user: &str, key: CallKey, leg: LegId) {
        if let Some(list) = self.ringing_by_user.get_mut(user) {
            list.retain(|&(k, l)| !(k == key && l == leg));
            if list.is_empty() {
                self.ringing_by_user.remove(user);
            }
        }
    }

    /// The legs ringing for `user` in calls other than `except`.
    pub(crate) fn ringing_for(&self, user: &str, except: CallKey) -> Vec<(CallKey, LegId)> {
        self.ringing_by_user
            .get(user)
            .map(|list| list.iter().filter(|(k, _)| *k != except).copied().collect())
            .unwrap_or_default()
    }

    /// Arms `timer` for `key` at `at`.
    pub(crate) fn arm(&mut self, key: CallKey, at: Instant, timer: CallTimer) {
        if let Some(call) = self.calls.get_mut(&key) {
            call.timers.push((at, timer));
            self.timers.insert((at, key, timer));
        }
    }

    /// Removes every armed `timer` of `key`.
    pub(crate) fn disarm(&mut self, key: CallKey, timer: CallTimer) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        for &(at, t) in call.timers.iter().filter(|(_, t)| *t == timer) {
            self.timers.remove(&(at, key, t));
        }
        call.timers.retain(|(_, t)| *t != timer);
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _, _)| *at)
    }

    /// Takes the timers due at `now`, earliest first.
    pub(crate) fn due_timers(&mut self, now: Instant) -> Vec<(CallKey, CallTimer)> {
        let mut due = Vec::new();
        while let Some(&(at, key, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some(call) = self.calls.get_mut(&key) {
                call.timers.retain(|&(a, t)| !(a == at && t == timer));
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
                CallState::Answered(_) | CallState::Media => counts.answered += 1,
            }
            counts.legs += call.legs.len();
            counts.legs_ringing += call
                .legs
                .iter()
                .filter(|l| matches!(l.state, super::LegState::Calling | super::LegState::Ringing))
                .count();
            counts.media += usize::from(call.media.is_some());
        }
        counts
    }
}
