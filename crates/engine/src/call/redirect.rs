//! A device's `3xx` (RFC 3261 §8.1.3.4): the phone sends the call
//! elsewhere ("forward all calls to..."). A redirect to one of the
//! workspace's users rings that user's devices in the same tier, subject to
//! their gates (as if they were dialled); one to one of the workspace's
//! numbers moves the whole call to that number's plan (hours, routing,
//! destinations), like the `number` destination. Each followed redirect
//! counts toward the call's destination budget, and a user or number the
//! call already reached is not followed again (no loops).
//!
//! An external target is not followed: a phone must not be able to send
//! calls out through the trunk until outbound rules decide what may go out.
//! The leg then fails as any refusal does.

use std::sync::Arc;
use std::time::Instant;

use sip::header::{Scheme, Uri};
use sip::{HeaderName, Message, NameAddr};

use super::plan::MAX_DESTINATIONS;
use super::{CallKey, CallState, CallTimer, LegId, LegState};
use crate::{Backend, Engine};

/// Where a redirect points, in the workspace.
enum RedirectTarget {
    User(directory::UserIdx),
    Number(directory::NumberIdx),
    Elsewhere(String),
}

impl<B: Backend> Engine<B> {
    /// Follows the 3xx `response` of `leg_id` when it names a user or a
    /// number of the workspace; false when the leg simply failed.
    pub(crate) fn follow_redirect(
        &mut self,
        now: Instant,
        key: CallKey,
        leg_id: LegId,
        response: &Message,
    ) -> bool {
        let at = self.clock.timestamp(now);
        let Some(call) = self.calls.get_mut(key) else {
            return false;
        };
        if call.state != CallState::Ringing {
            return false;
        }
        let workspace = Arc::clone(&call.workspace);
        let directory = &workspace.directory;
        let ours: Vec<std::net::IpAddr> = [self.cfg.udp_addr, self.cfg.tcp_addr]
            .into_iter()
            .flatten()
            .map(|a| a.ip())
            .collect();
        let target = match redirect_target(response, directory, &self.cfg.domain, &ours) {
            Some(target) => target,
            None => {
                tracing::info!(
                    status = response.status(),
                    "a device redirected the call without a usable Contact"
                );
                return false;
            }
        };
        if call.destinations >= MAX_DESTINATIONS {
            tracing::warn!(
                "a redirect past the call's {MAX_DESTINATIONS} destinations: not followed"
            );
            return false;
        }
        match target {
            RedirectTarget::Elsewhere(to) => {
                tracing::info!(%to, "a device redirected the call outside the workspace: not followed (no outbound rule allows it)");
                false
            }
            RedirectTarget::User(user) => {
                let reached = call
                    .legs
                    .iter()
                    .any(|l| l.target.user().is_some_and(|(u, _)| u == user));
                if reached {
                    tracing::debug!("a redirect to a user this call already rang: not followed");
                    return false;
                }
                call.destinations += 1;
                let (users, gated) = routing::ringable(
                    directory,
                    &workspace.presence,
                    &[user],
                    &call.declined,
                    call.caller_user,
                    at,
                );
                for verdict in gated {
                    if let Some(gate) = verdict.stopped_by {
                        call.note_skipped(verdict.user, gate);
                    }
                }
                let line = call
                    .current_number()
                    .map(|n| directory.number(n).name.clone())
                    .unwrap_or_default();
                let legs = self.fork_users(now, key, &workspace, &line, &users);
                if legs.is_empty() {
                    return false;
                }
                tracing::debug!(user = %directory.user(user).id, "redirect followed: ringing the user");
                self.calls.add_legs(key, legs);
                true
            }
            RedirectTarget::Number(number) => {
                if Some(number) == call.current_number() || Some(number) == call.number {
                    tracing::debug!("a redirect to the number being called: not followed");
                    return false;
                }
                call.destinations += 1;
                tracing::debug!(number = %directory.number(number).e164, "redirect followed: the call moves to the number");
                // The whole call goes there: the rest of this tier stops.
                let ringing: Vec<LegId> = (call.tier_from..call.legs.len())
                    .map(|i| LegId(i as u16))
                    .filter(|&i| {
                        i != leg_id
                            && call.leg(i).is_some_and(|l| {
                                matches!(l.state, LegState::Calling | LegState::Ringing)
                            })
                    })
                    .collect();
                call.plan = routing::plan_number_for(
                    directory,
                    &workspace.presence,
                    number,
                    at,
                    call.caller_user,
                );
                self.calls.disarm(key, CallTimer::RingTimeout);
                for leg in ringing {
                    self.cancel_leg(now, key, leg, false);
                }
                self.start_plan(now, key);
                true
            }
        }
    }
}

/// The first Contact of a 3xx, read against the workspace: a user of ours
/// (by id, at our domain or an address of ours), a number of ours (any
/// host, or `tel:`), or somewhere else.
fn redirect_target(
    response: &Message,
    directory: &directory::Directory,
    domain: &str,
    our_ips: &[std::net::IpAddr],
) -> Option<RedirectTarget> {
    // The most preferred Contact (highest `q`, RFC 3261 §8.1.3.4; the
    // first among equals).
    let contact = response
        .values(HeaderName::Contact)
        .filter_map(NameAddr::parse)
        .enumerate()
        .max_by(|(i, a), (j, b)| q_of(a).total_cmp(&q_of(b)).then(j.cmp(i)))
        .map(|(_, c)| c)?;
    let uri = Uri::parse(contact.uri).ok()?;
    let user = uri.user?.split(';').next().unwrap_or("");
    if let Some(number) =
        directory::normalize_e164(user).and_then(|n| directory.number_index(n.as_str()))
    {
        return Some(RedirectTarget::Number(number));
    }
    let ours = uri.scheme != Scheme::Tel
        && (uri.host.eq_ignore_ascii_case(domain)
            || sip::header::host_ip(uri.host).is_some_and(|ip| our_ips.contains(&ip)));
    match directory.user_index(user) {
        Some(idx) if ours => Some(RedirectTarget::User(idx)),
        _ => Some(RedirectTarget::Elsewhere(contact.uri.to_string())),
    }
}

/// A Contact's `q` (1.0 when absent or unreadable).
fn q_of(contact: &NameAddr<'_>) -> f32 {
    contact
        .params
        .get("q")
        .flatten()
        .and_then(|q| q.parse::<f32>().ok())
        .unwrap_or(1.0)
}
