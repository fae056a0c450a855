//! The destinations where the daemon answers the caller itself: a
//! `message` (played as early media, then 480), `voicemail` (greeting,
//! beep, a recording until `#`, silence, the maximum length or a hang-up)
//! and `ivr` (a greeting, a key, its destination; replays on timeout or a
//! wrong key, then the fallback). The audio is the media runtime's: this
//! module sends it [`MediaCommand`]s and follows its [`MediaEvent`]s.
//!
//! A menu key that rings users, another number or an external one keeps
//! the caller (already answered) on a ringback tone while the legs ring
//! with the relay's offer; whoever picks up is bridged to the caller by the
//! media runtime's RTP relay.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use directory::{Destination, MenuIdx};
use media::sdp::{self, Local};
use sip::build::{contact_value, response_to};
use sip::HeaderName;

use super::{CallKey, CallState, CallTimer, Side};
use crate::events::{CallOutcome, Party};
use crate::media::{Builtin, MediaCommand, MediaEvent, MediaId, Sound, VoicemailMeta};
use crate::{Backend, Engine, Output, ALLOW};

/// A key by INFO and by RFC 4733 this close together is one press.
const SAME_KEY_WINDOW: Duration = Duration::from_millis(500);

/// A voicemail ends after this much quiet following speech.
const VOICEMAIL_SILENCE: Duration = Duration::from_secs(10);

/// What the daemon is doing with a caller it answered.
pub(crate) struct MediaCall {
    pub(crate) session: MediaId,
    pub(crate) port: u16,
    /// The relay's port toward the legs, once a menu's choice rings.
    pub(crate) relay_port: Option<u16>,
    /// `Play` commands sent so far: the number of the current one.
    pub(crate) plays: u32,
    /// The last key, when, and whether it came by SIP INFO.
    pub(crate) last_key: Option<(char, Instant, bool)>,
    pub(crate) step: MediaStep,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MediaStep {
    /// A message as early media; 480 once played.
    Message,
    /// Voicemail: is the mailbox full?
    MailboxCheck,
    /// Voicemail: the greeting and the beep.
    Greeting,
    /// Voicemail: recording.
    Recording,
    /// A last prompt, then BYE.
    Closing,
    /// A menu: `tries` replays so far; `waiting` once its greeting ended.
    Ivr {
        menu: MenuIdx,
        tries: u32,
        waiting: bool,
    },
    /// A menu's choice rings; the caller hears ringback, then the relay.
    Transfer,
}

impl<B: Backend> Engine<B> {
    /// Follows a media destination of the call's plan.
    pub(crate) fn start_media(&mut self, now: Instant, key: CallKey, destination: Destination) {
        let already = self.calls.get(key).is_some_and(|c| c.media.is_some());
        if already {
            // From a menu key: the session goes on with the new step.
            return self.media_step(now, key, destination);
        }
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let workspace = std::sync::Arc::clone(&call.workspace);
        let early = matches!(destination, Destination::Message(_));
        let late_offer = call.caller.late_offer;
        if early && late_offer {
            // An offer in an unreliable 183 is not allowed (§13.2.1).
            tracing::info!("a message destination for a call without SDP: 480 without the message");
            return self.fail_call(now, key, 480, CallOutcome::Failed { status: 480 });
        }
        let had_early_media = call.caller.sent_early_media;
        if early && had_early_media {
            // A phone's early media set this early dialog's session: a
            // second SDP in it would be ignored (§13.2.1), and so would
            // the message.
            tracing::info!("a message after a phone's early media cannot be heard: 480 without it");
            return self.fail_call(now, key, 480, CallOutcome::Failed { status: 480 });
        }
        let offer = match self.tl.request(call.caller.tx) {
            Some(req) if !late_offer => Some(sdp::parse_offer(req.body())),
            _ => None,
        };
        let Some(port) = self
            .media_ports
            .take(&workspace.directory.media().rtp_ports)
        else {
            tracing::warn!("no RTP port left in [media] rtp_ports: 503");
            return self.fail_call(now, key, 503, CallOutcome::Failed { status: 503 });
        };
        let ip = self.media_ip(&workspace);
        let local = Local {
            rtp: SocketAddr::new(ip, port),
            session_id: self.ids.u64() >> 1,
            version: 1,
        };
        let (body, remote, law, telephone_event) = match offer {
            Some(Ok(offer)) => match sdp::answer(&offer, local) {
                Ok((body, law)) => {
                    let remote = (offer.rtp.port() != 0 && !offer.rtp.ip().is_unspecified())
                        .then_some(offer.rtp);
                    (body, remote, law, offer.telephone_event)
                }
                Err(e) => {
                    self.media_ports.give_back(port);
                    tracing::info!(error = %e, "the caller's offer cannot be answered: 488");
                    return self.fail_call(now, key, 488, CallOutcome::Failed { status: 488 });
                }
            },
            Some(Err(e)) => {
                self.media_ports.give_back(port);
                tracing::info!(error = %e, "the caller's SDP cannot be read: 488");
                return self.fail_call(now, key, 488, CallOutcome::Failed { status: 488 });
            }
            None => (
                sdp::offer(local),
                None,
                media::g711::Law::Mu,
                Some(sdp::OUR_TELEPHONE_EVENT),
            ),
        };
        let session = key;
        self.out.push_back(Output::Media(MediaCommand::Open {
            session,
            port,
            remote,
            law,
            telephone_event,
        }));
        let status = if early { 183 } else { 200 };
        let at = self.clock.timestamp(now);
        let max_deadline = now + self.cfg.max_call_duration;
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.media = Some(Box::new(MediaCall {
            session,
            port,
            relay_port: None,
            plays: 0,
            last_key: None,
            step: MediaStep::Closing,
        }));
        let inbound_tx = call.caller.tx;
        if had_early_media && !early {
            // The early dialog's session is a phone's: our answer comes in
            // a dialog of its own (a new To tag), which the caller takes as
            // a fork answering (§13.2.2.4), with our SDP.
            let to = self
                .tl
                .request(inbound_tx)
                .and_then(|r| r.header(HeaderName::To))
                .unwrap_or("")
                .to_string();
            let fresh = self.ids.tag();
            if let Some(call) = self.calls.get_mut(key) {
                call.caller.dialog.local = format!("{to};tag={fresh}");
            }
        }
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let tag = call.caller.dialog.local_tag().to_string();
        let transport = call.caller.dialog.peer.transport;
        if !early {
            call.state = CallState::Media;
            call.answered = Some(at);
            call.caller.answered_by_us = true;
            call.caller.invite = self.tl.request(inbound_tx).cloned().map(Box::new);
            // A user who called a mailbox or a menu is on a call too.
            let lease_until = self.clock.unix_ms(max_deadline) + super::fork::LEASE_MARGIN_MS;
            self.lease_caller(now, key, lease_until);
        }
        if let Some(req) = self.tl.request(inbound_tx) {
            let reason = if early { "Session Progress" } else { "OK" };
            let mut reply = response_to(req, status, reason, Some(&tag), true);
            reply.push(
                HeaderName::Contact,
                &contact_value(self.local_addr(transport), transport),
            );
            reply.push(HeaderName::Allow, ALLOW);
            let caller_timer = self
                .calls
                .get(key)
                .and_then(|c| c.session_timers.caller)
                .and_then(|t| super::session_timer::for_media_call(t, Some(req)));
            if !early {
                if let Some(call) = self.calls.get_mut(key) {
                    call.session_timers.caller = caller_timer;
                }
                if let Some(timer) = caller_timer {
                    super::session_timer::push(timer, &mut reply);
                }
            }
            reply.push(HeaderName::ContentType, "application/sdp");
            reply.set_body(body.into());
            if early {
                self.tl.respond(now, inbound_tx, &reply);
            } else {
                self.send_answer(now, key, reply);
                self.calls.disarm(key, CallTimer::RingTimeout);
                self.calls.disarm(key, CallTimer::StillRinging);
                self.calls.arm(key, max_deadline, CallTimer::MaxDuration);
                self.arm_liveness(now, key);
                self.arm_session_timers(now, key);
                self.announce_answered(key);
            }
        }
        self.media_step(now, key, destination);
    }

    /// Starts `destination` on the call's session.
    fn media_step(&mut self, now: Instant, key: CallKey, destination: Destination) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let current = call.current_number();
        let Some(media) = call.media.as_mut() else {
            return;
        };
        let session = media.session;
        let Some(number_idx) = current else {
            return;
        };
        let workspace = std::sync::Arc::clone(&call.workspace);
        let number = workspace.directory.number(number_idx);
        let rings = !matches!(
            destination,
            Destination::Message(_)
                | Destination::Voicemail
                | Destination::Ivr(_)
                | Destination::Hangup { .. }
        );
        if call.caller.answered_by_us && !rings {
            // Back from ringing (nobody took a menu's choice): ours again.
            if media.step == MediaStep::Transfer {
                self.out
                    .push_back(Output::Media(MediaCommand::StopPlaying { session }));
            }
            call.state = CallState::Media;
        }
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let answered = call.state == CallState::Media;
        let Some(media) = call.media.as_mut() else {
            return;
        };
        match destination {
            Destination::Message(prompt) => {
                media.step = if answered {
                    MediaStep::Closing
                } else {
                    MediaStep::Message
                };
                let sound = prompt_sound(&workspace, prompt);
                self.play(session, vec![sound]);
            }
            Destination::Voicemail => {
                media.step = MediaStep::MailboxCheck;
                self.out
                    .push_back(Output::Media(MediaCommand::CheckMailbox {
                        session,
                        number: number.e164.clone(),
                        max_messages: number.voicemail.max_messages,
                    }));
            }
            Destination::Ivr(menu) => {
                media.step = MediaStep::Ivr {
                    menu,
                    tries: 0,
                    waiting: false,
                };
                let greeting = workspace.directory.menu(menu).greeting;
                let sound = prompt_sound(&workspace, greeting);
                self.play(session, vec![sound]);
            }
            Destination::Hangup { .. } => self.media_hang_up(now, key),
            ringing => self.start_transfer(now, key, ringing),
        }
    }

    /// A menu's choice rings users, a number or an external number: the
    /// legs are offered the relay's port while the caller hears ringback.
    fn start_transfer(&mut self, now: Instant, key: CallKey, destination: Destination) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let workspace = std::sync::Arc::clone(&call.workspace);
        if call.caller.answered_by_us && call.state == CallState::Ringing {
            // Already ringing (a number whose plan rings): nothing to set up.
            return self.follow_transfer(now, key, destination);
        }
        let Some(port) = self
            .media_ports
            .take(&workspace.directory.media().rtp_ports)
        else {
            tracing::warn!("no RTP port left for the relay");
            return self.media_hang_up(now, key);
        };
        let ip = self.media_ip(&workspace);
        let offer = sdp::offer(Local {
            rtp: SocketAddr::new(ip, port),
            session_id: self.ids.u64() >> 1,
            version: 1,
        });
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let Some(media) = call.media.as_mut() else {
            self.media_ports.give_back(port);
            return;
        };
        if let Some(old) = media.relay_port.replace(port) {
            self.media_ports.give_back(old);
        }
        media.step = MediaStep::Transfer;
        let session = media.session;
        call.leg_offer = Some(offer.into());
        call.state = CallState::Ringing;
        self.out
            .push_back(Output::Media(MediaCommand::PrepareBridge { session, port }));
        self.out
            .push_back(Output::Media(MediaCommand::StopPlaying { session }));
        self.play(session, vec![Sound::Builtin(Builtin::Ringback)]);
        self.follow_transfer(now, key, destination);
    }

    fn follow_transfer(&mut self, now: Instant, key: CallKey, destination: Destination) {
        if let Some(call) = self.calls.get_mut(key) {
            call.plan.then = destination;
            call.plan.tiers.clear();
            call.step = 0;
            // The destination below counts itself.
            call.destinations = call.destinations.saturating_sub(1);
        }
        self.follow_destination(now, key, super::plan::TierEnd::EveryLegFailed);
    }

    /// A leg answered a call the daemon had answered: the relay joins them.
    pub(crate) fn bridge(&mut self, key: CallKey, response: &sip::Message) {
        let Some(media) = self.calls.get(key).and_then(|c| c.media.as_ref()) else {
            return;
        };
        let session = media.session;
        let (remote, law, telephone_event) = match sdp::parse_offer(response.body()) {
            Ok(answer) => (
                (answer.rtp.port() != 0).then_some(answer.rtp),
                answer.law.unwrap_or(media::g711::Law::Mu),
                answer.telephone_event,
            ),
            Err(e) => {
                tracing::info!(error = %e, "the leg's answer cannot be read: its RTP is learned from its packets");
                (None, media::g711::Law::Mu, None)
            }
        };
        self.out.push_back(Output::Media(MediaCommand::Bridge {
            session,
            remote,
            law,
            telephone_event,
        }));
        self.set_step(key, MediaStep::Closing);
    }

    /// The IP our SDP names: `[media] advertise`, else the SIP address.
    fn media_ip(&self, workspace: &crate::Workspace<B::View>) -> IpAddr {
        workspace
            .directory
            .media()
            .advertise
            .or(self.cfg.udp_addr.map(|a| a.ip()))
            .or(self.cfg.tcp_addr.map(|a| a.ip()))
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }

    fn play(&mut self, session: MediaId, sounds: Vec<Sound>) {
        let Some(media) = self.calls.get_mut(session).and_then(|c| c.media.as_mut()) else {
            return;
        };
        media.plays = media.plays.wrapping_add(1);
        let play = media.plays;
        self.out.push_back(Output::Media(MediaCommand::Play {
            session,
            sounds,
            play,
        }));
    }

    /// The daemon hangs up on a caller it answered.
    fn media_hang_up(&mut self, now: Instant, key: CallKey) {
        let answered = self
            .calls
            .get(key)
            .is_some_and(|c| c.state == CallState::Media);
        if answered {
            self.send_bye(now, key, Side::Caller);
            let outcome = CallOutcome::Completed {
                hung_up_by: Party::Callee,
            };
            self.end_call(now, key, outcome);
        } else {
            self.fail_call(now, key, 480, CallOutcome::Failed { status: 480 });
        }
    }

    /// An event from the media runtime.
    pub(crate) fn on_media_event(&mut self, now: Instant, event: MediaEvent) {
        if let MediaEvent::Digit { session, digit } = event {
            if self.same_key_twice(now, session, digit, false) {
                return;
            }
        }
        self.media_event(now, event);
    }

    /// A key sent two ways at once (SIP INFO and RFC 4733, as some phones
    /// do) counts once: the same digit by the other way within
    /// [`SAME_KEY_WINDOW`] is the same press.
    fn same_key_twice(&mut self, now: Instant, key: CallKey, digit: char, by_info: bool) -> bool {
        let Some(media) = self.calls.get_mut(key).and_then(|c| c.media.as_mut()) else {
            return false;
        };
        let twice = media.last_key.is_some_and(|(d, at, info)| {
            d == digit && info != by_info && now.saturating_duration_since(at) < SAME_KEY_WINDOW
        });
        media.last_key = Some((digit, now, by_info));
        twice
    }

    fn media_event(&mut self, now: Instant, event: MediaEvent) {
        let key = event.session();
        let Some((step, plays)) = self
            .calls
            .get(key)
            .and_then(|c| c.media.as_ref())
            .map(|m| (m.step.clone(), m.plays))
        else {
            return;
        };
        if let MediaEvent::PromptsDone { play, .. } = event {
            if play != plays {
                // The end of something since replaced (a key barged in).
                return;
            }
        }
        match (step, event) {
            (_, MediaEvent::Inactive { leg, .. }) => {
                let Some(call) = self.calls.get(key) else {
                    return;
                };
                let side = match (call.state, leg) {
                    (CallState::Answered(winner), true) => Side::Leg(winner),
                    (_, false) if call.caller.answered_by_us => Side::Caller,
                    _ => return,
                };
                self.drop_side(now, key, side, "no RTP for liveness_timeout");
            }
            (_, MediaEvent::Failed { reason, .. }) => {
                tracing::warn!(%reason, "media session failed");
                let answered = self
                    .calls
                    .get(key)
                    .is_some_and(|c| c.state == CallState::Media);
                if answered {
                    self.send_bye(now, key, Side::Caller);
                    self.end_call(now, key, CallOutcome::Failed { status: 500 });
                } else {
                    self.fail_call(now, key, 500, CallOutcome::Failed { status: 500 });
                }
            }
            (MediaStep::Message, MediaEvent::PromptsDone { .. }) => {
                self.fail_call(now, key, 480, CallOutcome::Failed { status: 480 })
            }
            (MediaStep::Closing, MediaEvent::PromptsDone { .. }) => self.media_hang_up(now, key),
            (MediaStep::MailboxCheck, MediaEvent::Mailbox { session, full }) => {
                self.set_step(
                    key,
                    if full {
                        MediaStep::Closing
                    } else {
                        MediaStep::Greeting
                    },
                );
                let sounds = if full {
                    vec![Sound::Builtin(Builtin::MailboxFull)]
                } else {
                    self.voicemail_greeting(key)
                };
                self.play(session, sounds);
            }
            (MediaStep::Greeting, MediaEvent::PromptsDone { session, .. }) => {
                self.start_recording(now, key, session)
            }
            (
                MediaStep::Recording,
                MediaEvent::Digit { digit: '#', .. } | MediaEvent::Silence { .. },
            ) => self.stop_recording(key),
            (MediaStep::Ivr { menu, tries, .. }, MediaEvent::PromptsDone { .. }) => {
                self.set_step(
                    key,
                    MediaStep::Ivr {
                        menu,
                        tries,
                        waiting: true,
                    },
                );
                let timeout = self
                    .calls
                    .get(key)
                    .map(|c| c.workspace.directory.menu(menu).timeout)
                    .unwrap_or(Duration::from_secs(5));
                self.calls.disarm(key, CallTimer::Media);
                self.calls.arm(key, now + timeout, CallTimer::Media);
            }
            (MediaStep::Ivr { .. }, MediaEvent::Digit { digit, .. }) => {
                self.on_menu_key(now, key, digit)
            }
            (_, MediaEvent::Recorded { kept, tenths, .. }) => {
                tracing::info!(
                    kept,
                    seconds = f64::from(tenths) / 10.0,
                    "voicemail recording finished"
                );
            }
            _ => {}
        }
    }

    /// A DTMF digit from a SIP INFO of the caller.
    pub(crate) fn on_caller_digit(&mut self, now: Instant, key: CallKey, digit: char) {
        if self.same_key_twice(now, key, digit, true) {
            return;
        }
        let session = key;
        self.media_event(now, MediaEvent::Digit { session, digit });
    }

    fn set_step(&mut self, key: CallKey, step: MediaStep) {
        if let Some(media) = self.calls.get_mut(key).and_then(|c| c.media.as_mut()) {
            media.step = step;
        }
    }

    /// The number's own greeting, else "you have reached" and its digits,
    /// "leave a message"; then the beep.
    fn voicemail_greeting(&self, key: CallKey) -> Vec<Sound> {
        let Some(call) = self.calls.get(key) else {
            return Vec::new();
        };
        let Some(number) = call
            .current_number()
            .map(|n| call.workspace.directory.number(n))
        else {
            return Default::default();
        };
        let mut sounds = match number.voicemail.greeting {
            Some(prompt) => vec![prompt_sound(&call.workspace, prompt)],
            None => vec![
                Sound::Builtin(Builtin::YouHaveReached),
                Sound::Digits(number.e164.trim_start_matches('+').to_string()),
                Sound::Builtin(Builtin::LeaveMessage),
            ],
        };
        sounds.push(Sound::Builtin(Builtin::Beep));
        sounds
    }

    fn start_recording(&mut self, now: Instant, key: CallKey, session: MediaId) {
        let id = format!("{}-{:08x}", self.clock.unix_ms(now), self.ids.u64() as u32);
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let Some(number) = call
            .current_number()
            .map(|n| call.workspace.directory.number(n))
        else {
            return Default::default();
        };
        let max_length = number.voicemail.max_length;
        if let Some(call) = self.calls.get_mut(key) {
            call.voicemail = true;
        }
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let Some(number) = call
            .current_number()
            .map(|n| call.workspace.directory.number(n))
        else {
            return Default::default();
        };
        let meta = VoicemailMeta {
            caller: call.caller.uri.clone(),
            number: number.e164.clone(),
            started: self.clock.timestamp(now),
            call_id: call.caller.dialog.call_id.clone(),
        };
        self.out.push_back(Output::Media(MediaCommand::Record {
            session,
            id,
            meta,
            silence: VOICEMAIL_SILENCE,
        }));
        self.set_step(key, MediaStep::Recording);
        self.calls.arm(key, now + max_length, CallTimer::Media);
    }

    fn stop_recording(&mut self, key: CallKey) {
        self.calls.disarm(key, CallTimer::Media);
        let session = key;
        self.out
            .push_back(Output::Media(MediaCommand::StopRecording { session }));
        self.set_step(key, MediaStep::Closing);
        self.play(session, vec![Sound::Builtin(Builtin::Goodbye)]);
    }

    /// The media timer: a menu waited long enough, or a recording reached
    /// its maximum length.
    pub(crate) fn on_media_timer(&mut self, now: Instant, key: CallKey) {
        let step = self
            .calls
            .get(key)
            .and_then(|c| c.media.as_ref())
            .map(|m| m.step.clone());
        match step {
            Some(MediaStep::Recording) => self.stop_recording(key),
            Some(MediaStep::Ivr { waiting: true, .. }) => self.menu_retry(now, key, false),
            _ => {}
        }
    }

    fn on_menu_key(&mut self, now: Instant, key: CallKey, digit: char) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let Some(MediaStep::Ivr { menu, .. }) = call.media.as_ref().map(|m| m.step.clone()) else {
            return;
        };
        // Barge-in: the key stops the greeting and counts.
        self.out
            .push_back(Output::Media(MediaCommand::StopPlaying { session: key }));
        let chosen = call.workspace.directory.menu(menu).option(digit).cloned();
        self.calls.disarm(key, CallTimer::Media);
        match chosen {
            Some(destination) => {
                tracing::debug!(%digit, action = destination.action(), "menu key");
                if let Some(call) = self.calls.get_mut(key) {
                    call.destinations += 1;
                    if call.destinations > super::plan::MAX_DESTINATIONS {
                        tracing::warn!("a menu led through too many destinations: hung up");
                        return self.media_hang_up(now, key);
                    }
                }
                self.media_step(now, key, destination);
            }
            None => self.menu_retry(now, key, true),
        }
    }

    /// No key in time, or a wrong one: the greeting again (after "invalid
    /// option" for a wrong key), until the retries are spent; then the
    /// fallback.
    fn menu_retry(&mut self, now: Instant, key: CallKey, wrong_key: bool) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let Some(MediaStep::Ivr { menu, tries, .. }) = call.media.as_ref().map(|m| m.step.clone())
        else {
            return;
        };
        let m = call.workspace.directory.menu(menu);
        let tries = tries + 1;
        if tries > m.retries {
            let fallback = m.fallback.clone();
            tracing::debug!(action = fallback.action(), "menu retries spent: fallback");
            self.set_step(
                key,
                MediaStep::Ivr {
                    menu,
                    tries,
                    waiting: false,
                },
            );
            if let Some(call) = self.calls.get_mut(key) {
                call.destinations += 1;
                if call.destinations > super::plan::MAX_DESTINATIONS {
                    return self.media_hang_up(now, key);
                }
            }
            if matches!(fallback, Destination::Ivr(m2) if m2 == menu) {
                // Its own fallback: nothing new would happen.
                return self.media_hang_up(now, key);
            }
            return self.media_step(now, key, fallback);
        }
        let mut sounds = Vec::new();
        if wrong_key {
            sounds.push(match m.invalid {
                Some(p) => prompt_sound(&call.workspace, p),
                None => Sound::Builtin(Builtin::InvalidOption),
            });
        }
        sounds.push(prompt_sound(&call.workspace, m.greeting));
        self.set_step(
            key,
            MediaStep::Ivr {
                menu,
                tries,
                waiting: false,
            },
        );
        self.play(key, sounds);
    }

    /// The caller's ACK to our 200 carried the answer to our offer.
    pub(crate) fn on_media_answer(&mut self, key: CallKey, body: &[u8]) {
        let Some(media) = self.calls.get(key).and_then(|c| c.media.as_ref()) else {
            return;
        };
        let session = media.session;
        match sdp::parse_offer(body) {
            Ok(answer) => {
                if let Some(law) = answer.law {
                    self.out.push_back(Output::Media(MediaCommand::Remote {
                        session,
                        remote: answer.rtp,
                        law,
                        telephone_event: answer.telephone_event,
                    }));
                }
            }
            Err(e) => tracing::info!(error = %e, "the caller's answer cannot be read"),
        }
    }

    /// A re-INVITE from a caller the daemon answered: refused with 488,
    /// which leaves the session as it was (hold and codec changes are not
    /// followed by the media endpoint).
    pub(crate) fn on_media_reinvite(&mut self, now: Instant, server_tx: sip::transaction::TxId) {
        if let Some(req) = self.tl.request(server_tx) {
            let reply = response_to(req, 488, "Not Acceptable Here", None, false);
            self.tl.respond(now, server_tx, &reply);
        }
    }
}

/// A prompt of `workspace`, as the media runtime finds it.
fn prompt_sound<V>(workspace: &crate::Workspace<V>, prompt: directory::PromptIdx) -> Sound {
    Sound::Prompt(workspace.directory.prompt(prompt).path.clone())
}
