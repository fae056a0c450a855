//! The destinations the daemon answers itself (message, voicemail, IVR),
//! in simulated time: the SIP side over the simulated network, the media
//! side as the commands the engine gives and the events fed back.

use super::*;
use crate::media::{Builtin, MediaCommand, MediaEvent, Sound};
use directory::{DestinationSpec, MenuSpec, VoicemailSpec};

/// Sales (+15550100) rings alice; closed now, `outside` is `dest`; it
/// has a menu ("1" voicemail, "2" the after-hours menu, "3" a message).
fn media_line(dest: DestinationSpec) -> Directory {
    let mut spec = WorkspaceSpec {
        domain: "sim.test".into(),
        seats: 5,
        trunks: vec![TrunkSpec {
            name: "carrier".into(),
            sources: vec!["127.0.0.1/32".into()],
            ..TrunkSpec::default()
        }],
        users: vec![UserSpec {
            id: "alice".into(),
            name: "alice".into(),
            password: "pw".into(),
            ..UserSpec::default()
        }],
        numbers: vec![NumberSpec {
            number: "+15550100".into(),
            name: "Sales".into(),
            timezone: "UTC".into(),
            members: vec!["alice".into()],
            ring: vec!["alice".into()],
            hours: Some(closed_now()),
            outside: Some(dest),
            ivr: Some(MenuSpec {
                greeting: "menu.wav".into(),
                timeout_secs: Some(5),
                retries: Some(1),
                fallback: Some(DestinationSpec::Voicemail),
                options: vec![
                    ("1".into(), DestinationSpec::Voicemail),
                    (
                        "2".into(),
                        DestinationSpec::Ivr {
                            menu: Some("after".into()),
                        },
                    ),
                    (
                        "3".into(),
                        DestinationSpec::Message {
                            prompt: "bye.wav".into(),
                        },
                    ),
                    (
                        "4".into(),
                        DestinationSpec::Ring {
                            users: vec!["alice".into()],
                            strategy: Strategy::Simultaneous,
                            step_timeout_secs: None,
                            ring_timeout_secs: Some(20),
                        },
                    ),
                ],
                ..MenuSpec::default()
            }),
            voicemail: Some(VoicemailSpec {
                max_length_secs: Some(60),
                ..VoicemailSpec::default()
            }),
            ..NumberSpec::default()
        }],
        ..Default::default()
    };
    spec.menus = vec![(
        "after".into(),
        MenuSpec {
            greeting: "after.wav".into(),
            fallback: Some(DestinationSpec::Hangup { status: None }),
            ..MenuSpec::default()
        },
    )];
    Directory::from_workspace(spec, Path::new("/etc/sb/switchboard.toml")).unwrap()
}

fn sim_with(dest: DestinationSpec) -> Sim {
    Sim::with_directory(media_line(dest), |_| {})
}

const OFFER: &str = "v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
    m=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

fn invite_with_offer(call_id: &str) -> Message {
    let mut invite = trunk_invite(call_id);
    invite.set_body(Bytes::from_static(OFFER.as_bytes()));
    invite
}

impl Sim {
    fn media_taken(&mut self) -> Vec<MediaCommand> {
        std::mem::take(&mut self.media)
    }

    /// The current play of `session` has ended.
    fn done(&mut self, session: u64) {
        let play = self.last_play.get(&session).copied().unwrap_or(0);
        self.feed(MediaEvent::PromptsDone { session, play });
    }

    fn feed(&mut self, event: MediaEvent) {
        self.engine.handle_input(self.now, Input::Media(event));
        self.collect();
    }
}

fn prompt_path(_sim: &Sim, sound: &Sound) -> String {
    match sound {
        Sound::Prompt(p) => p.display().to_string(),
        other => format!("{other:?}"),
    }
}

/// The 200 (or 183) the caller got, and the session the engine opened.
fn answered(sim: &mut Sim, status: u16) -> (Message, u64) {
    let reply = sim
        .take(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(status))
        .unwrap();
    let commands = sim.media_taken();
    let (opens, rest): (Vec<_>, Vec<_>) = commands
        .into_iter()
        .partition(|c| matches!(c, MediaCommand::Open { .. }));
    sim.media = rest;
    let open = opens
        .into_iter()
        .find_map(|c| match c {
            MediaCommand::Open {
                session,
                port,
                remote,
                law,
                telephone_event,
            } => {
                assert!((20000..=20999).contains(&port));
                assert_eq!(remote, Some("127.0.0.1:40000".parse().unwrap()));
                assert_eq!(law, ::media::g711::Law::A, "the caller's first codec");
                assert_eq!(telephone_event, Some(101));
                // The SDP names the same port.
                let sdp = std::str::from_utf8(reply.body()).unwrap();
                assert!(
                    sdp.contains(&format!("m=audio {port} RTP/AVP 8 101")),
                    "{sdp}"
                );
                Some(session)
            }
            _ => None,
        })
        .expect("a session opened");
    (reply, open)
}

#[test]
fn a_message_plays_as_early_media_then_480() {
    let mut sim = sim_with(DestinationSpec::Message {
        prompt: "closed.wav".into(),
    });
    sim.deliver(TRUNK, &invite_with_offer("m1"));
    let (progress, session) = answered(&mut sim, 183);
    assert_eq!(
        progress.header(HeaderName::ContentType),
        Some("application/sdp")
    );
    let plays: Vec<_> = sim.media.clone();
    assert!(
        matches!(&plays[..], [MediaCommand::Play { sounds, .. }] if prompt_path(&sim, &sounds[0]) == "/etc/sb/closed.wav")
    );
    sim.media.clear();
    sim.done(session);
    assert_eq!(
        finals_to_trunk(&mut sim),
        [480],
        "not billed: never answered"
    );
    assert!(sim.media_taken().contains(&MediaCommand::Close { session }));
    assert_eq!(sim.calls_left(), CallCounts::default());
}

#[test]
fn voicemail_greets_beeps_records_until_hash_then_says_goodbye_and_hangs_up() {
    let mut sim = sim_with(DestinationSpec::Voicemail);
    let invite = invite_with_offer("v1");
    sim.deliver(TRUNK, &invite);
    let (ok, session) = answered(&mut sim, 200);
    let caller = Side::caller(&invite, &ok);
    sim.deliver(TRUNK, &caller.request_at(Method::Ack, 1, ""));
    let check = sim.media_taken();
    assert!(
        matches!(&check[..], [MediaCommand::CheckMailbox { number, max_messages: 100, .. }] if number == "+15550100")
    );
    sim.feed(MediaEvent::Mailbox {
        session,
        full: false,
    });
    let greeting = sim.media_taken();
    let MediaCommand::Play { sounds, .. } = &greeting[0] else {
        panic!("{greeting:?}");
    };
    // The default greeting names the line by its number, then the beep.
    assert_eq!(
        sounds,
        &[
            Sound::Builtin(Builtin::YouHaveReached),
            Sound::Digits("15550100".into()),
            Sound::Builtin(Builtin::LeaveMessage),
            Sound::Builtin(Builtin::Beep),
        ]
    );
    sim.done(session);
    let record = sim.media_taken();
    let MediaCommand::Record { meta, silence, .. } = &record[0] else {
        panic!("{record:?}");
    };
    assert_eq!(meta.number, "+15550100");
    assert_eq!(meta.call_id, "v1");
    assert_eq!(*silence, Duration::from_secs(10));
    // '#' by SIP INFO ends the message.
    let mut caller = caller;
    let mut info = caller.request(Method::Info, "");
    info.push(HeaderName::ContentType, "application/dtmf-relay");
    info.set_body(Bytes::from_static(b"Signal=#\r\nDuration=160\r\n"));
    sim.deliver(TRUNK, &info);
    assert_eq!(finals_to_trunk(&mut sim), [200], "INFO answered 200");
    let after = sim.media_taken();
    assert_eq!(after[0], MediaCommand::StopRecording { session });
    assert!(
        matches!(&after[1], MediaCommand::Play { sounds, .. } if sounds == &[Sound::Builtin(Builtin::Goodbye)])
    );
    sim.done(session);
    assert_eq!(sim.take_requests(TRUNK, Method::Bye).len(), 1);
    assert!(sim.media_taken().contains(&MediaCommand::Close { session }));
    assert!(matches!(
        sim.record().outcome,
        CallOutcome::Completed {
            hung_up_by: Party::Callee
        }
    ));
}

#[test]
fn a_voicemail_stops_at_its_maximum_length_and_a_full_mailbox_says_so() {
    let mut sim = sim_with(DestinationSpec::Voicemail);
    let invite = invite_with_offer("v2");
    sim.deliver(TRUNK, &invite);
    let (ok, session) = answered(&mut sim, 200);
    sim.deliver(
        TRUNK,
        &Side::caller(&invite, &ok).request_at(Method::Ack, 1, ""),
    );
    sim.media.clear();
    sim.feed(MediaEvent::Mailbox {
        session,
        full: false,
    });
    sim.done(session);
    sim.media.clear();
    sim.advance_to(61.0);
    assert_eq!(
        sim.media_taken()[0],
        MediaCommand::StopRecording { session }
    );

    let mut sim = sim_with(DestinationSpec::Voicemail);
    sim.deliver(TRUNK, &invite_with_offer("v3"));
    let (_, session) = answered(&mut sim, 200);
    sim.media.clear();
    sim.feed(MediaEvent::Mailbox {
        session,
        full: true,
    });
    assert!(
        matches!(&sim.media_taken()[..], [MediaCommand::Play { sounds, .. }] if sounds == &[Sound::Builtin(Builtin::MailboxFull)])
    );
    sim.done(session);
    assert_eq!(sim.take_requests(TRUNK, Method::Bye).len(), 1);
}

#[test]
fn a_caller_hanging_up_during_voicemail_closes_the_session() {
    let mut sim = sim_with(DestinationSpec::Voicemail);
    let invite = invite_with_offer("v4");
    sim.deliver(TRUNK, &invite);
    let (ok, session) = answered(&mut sim, 200);
    let mut caller = Side::caller(&invite, &ok);
    sim.deliver(TRUNK, &caller.request_at(Method::Ack, 1, ""));
    sim.feed(MediaEvent::Mailbox {
        session,
        full: false,
    });
    sim.media.clear();
    sim.deliver(TRUNK, &caller.request(Method::Bye, ""));
    assert!(sim.media_taken().contains(&MediaCommand::Close { session }));
    assert_eq!(sim.calls_left(), CallCounts::default());
}

#[test]
fn a_user_who_reaches_a_mailbox_is_busy_until_they_hang_up() {
    let mut sim = sim_with(DestinationSpec::Voicemail);
    let invite =
        super::outbound::place_offering(&mut sim, "alice", ALICE, "+15550100", "v5", OFFER);
    let ok = sim
        .take(ALICE)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .expect("the daemon answers with the mailbox");
    assert_eq!(sim.busy("alice"), 1, "on a call with the mailbox");
    let mut caller = Side::caller(&invite, &ok);
    caller.addr = ALICE;
    caller.cseq = 2;
    sim.deliver(ALICE, &caller.request_at(Method::Ack, 2, ""));
    sim.deliver(ALICE, &caller.request(Method::Bye, ""));
    assert_eq!(sim.busy("alice"), 0);
    assert_eq!(sim.calls_left(), CallCounts::default());
}

#[test]
fn an_ivr_key_barges_in_and_leads_to_its_destination() {
    let mut sim = sim_with(DestinationSpec::Ivr { menu: None });
    sim.deliver(TRUNK, &invite_with_offer("i1"));
    let (_, session) = answered(&mut sim, 200);
    let plays = sim.media_taken();
    assert!(
        matches!(&plays[..], [MediaCommand::Play { sounds, .. }] if prompt_path(&sim, &sounds[0]) == "/etc/sb/menu.wav")
    );
    // '2' during the greeting: it stops and the other menu plays.
    sim.feed(MediaEvent::Digit {
        session,
        digit: '2',
    });
    let next = sim.media_taken();
    assert_eq!(next[0], MediaCommand::StopPlaying { session });
    assert!(
        matches!(&next[1], MediaCommand::Play { sounds, .. } if prompt_path(&sim, &sounds[0]) == "/etc/sb/after.wav")
    );
}

#[test]
fn an_ivr_replays_on_timeout_and_wrong_keys_then_falls_back() {
    let mut sim = sim_with(DestinationSpec::Ivr { menu: None });
    sim.deliver(TRUNK, &invite_with_offer("i2"));
    let (_, session) = answered(&mut sim, 200);
    sim.media.clear();
    sim.done(session);
    // No key for 5 s: the greeting again (retries = 1).
    sim.advance_to(5.5);
    let replay = sim.media_taken();
    assert!(
        matches!(&replay[..], [MediaCommand::Play { sounds, .. }] if sounds.len() == 1 && prompt_path(&sim, &sounds[0]) == "/etc/sb/menu.wav")
    );
    sim.done(session);
    // A wrong key now spends the last retry: the fallback (voicemail).
    sim.feed(MediaEvent::Digit {
        session,
        digit: '9',
    });
    let after = sim.media_taken();
    assert!(
        after
            .iter()
            .any(|c| matches!(c, MediaCommand::CheckMailbox { .. })),
        "{after:?}"
    );
}

#[test]
fn an_offer_without_g711_gets_488() {
    let mut sim = sim_with(DestinationSpec::Voicemail);
    let mut invite = trunk_invite("o1");
    invite.set_body(Bytes::from_static(
        b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n",
    ));
    sim.deliver(TRUNK, &invite);
    assert_eq!(finals_to_trunk(&mut sim), [488]);
    assert!(sim.media_taken().is_empty());
}

#[test]
fn a_menu_key_that_rings_offers_the_relay_and_bridges_whoever_answers() {
    let mut sim = sim_with(DestinationSpec::Ivr { menu: None });
    sim.sign_in("alice", ALICE);
    let invite = invite_with_offer("t1");
    sim.deliver(TRUNK, &invite);
    let (ok, session) = answered(&mut sim, 200);
    sim.deliver(
        TRUNK,
        &Side::caller(&invite, &ok).request_at(Method::Ack, 1, ""),
    );
    sim.media.clear();
    sim.feed(MediaEvent::Digit {
        session,
        digit: '4',
    });
    let commands = sim.media_taken();
    let port = commands
        .iter()
        .find_map(|c| match c {
            MediaCommand::PrepareBridge { port, .. } => Some(*port),
            _ => None,
        })
        .unwrap_or_else(|| panic!("a relay port: {commands:?}"));
    assert!(commands.iter().any(|c| matches!(c, MediaCommand::Play { sounds, .. } if sounds == &[Sound::Builtin(Builtin::Ringback)])));
    let ia = invites_to(&mut sim, ALICE).pop().expect("alice rings");
    let sdp = std::str::from_utf8(ia.body()).unwrap();
    assert!(
        sdp.contains(&format!("m=audio {port} RTP/AVP 0 8 101")),
        "{sdp}"
    );
    assert!(
        sim.take(TRUNK).iter().all(|m| m.status().is_none()),
        "no provisional to an answered caller"
    );
    let answer = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 41000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";
    sim.deliver(ALICE, &with_sdp(reply(&ia, 200, "a"), answer));
    assert_eq!(sim.take_requests(ALICE, Method::Ack).len(), 1);
    let bridge = sim.media_taken();
    assert!(bridge.iter().any(|c| matches!(c, MediaCommand::Bridge { remote: Some(r), law: ::media::g711::Law::A, .. } if r.port() == 41000)), "{bridge:?}");
    assert!(
        sim.take(TRUNK).iter().all(|m| m.status() != Some(200)),
        "the caller has its 200 already"
    );
    assert_eq!(sim.busy("alice"), 1);
    // The caller hangs up: alice gets the BYE, the sessions close.
    let mut caller = Side::caller(&invite, &ok);
    caller.cseq = 5;
    sim.deliver(TRUNK, &caller.request(Method::Bye, ""));
    assert_eq!(sim.take_requests(ALICE, Method::Bye).len(), 1);
    assert!(sim.media_taken().contains(&MediaCommand::Close { session }));
    assert_eq!(sim.busy("alice"), 0);
}

#[test]
fn nobody_taking_a_menus_choice_hangs_up_the_answered_caller() {
    let mut sim = sim_with(DestinationSpec::Ivr { menu: None });
    let invite = invite_with_offer("t2");
    sim.deliver(TRUNK, &invite);
    let (ok, session) = answered(&mut sim, 200);
    sim.deliver(
        TRUNK,
        &Side::caller(&invite, &ok).request_at(Method::Ack, 1, ""),
    );
    // alice is not signed in: nobody can ring.
    sim.feed(MediaEvent::Digit {
        session,
        digit: '4',
    });
    assert_eq!(sim.take_requests(TRUNK, Method::Bye).len(), 1);
    assert!(sim.media_taken().contains(&MediaCommand::Close { session }));
}

#[test]
fn a_late_offer_is_answered_with_our_offer_and_the_ack_says_where_to_send() {
    let mut sim = sim_with(DestinationSpec::Voicemail);
    let invite = trunk_invite_without_sdp("lo1");
    sim.deliver(TRUNK, &invite);
    let ok = sim
        .take(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    let sdp = std::str::from_utf8(ok.body()).unwrap();
    assert!(sdp.contains("RTP/AVP 0 8 101"), "{sdp}");
    assert!(sim
        .media_taken()
        .iter()
        .any(|c| matches!(c, MediaCommand::Open { remote: None, .. })));
    let mut ack = Side::caller(&invite, &ok).request_at(Method::Ack, 1, "");
    ack.push(HeaderName::ContentType, "application/sdp");
    ack.set_body(Bytes::from_static(
        b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 42000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n",
    ));
    sim.deliver(TRUNK, &ack);
    assert!(sim.media_taken().iter().any(|c| matches!(
        c,
        MediaCommand::Remote { remote, law: ::media::g711::Law::A, .. } if remote.port() == 42000
    )));
}

#[test]
fn the_end_of_a_replaced_play_is_ignored() {
    let mut sim = sim_with(DestinationSpec::Ivr { menu: None });
    sim.deliver(TRUNK, &invite_with_offer("pg1"));
    let (_, session) = answered(&mut sim, 200);
    let greeting = sim.last_play[&session];
    // '3' barges in: the message plays; the greeting's end arrives late.
    sim.feed(MediaEvent::Digit {
        session,
        digit: '3',
    });
    sim.media.clear();
    sim.feed(MediaEvent::PromptsDone {
        session,
        play: greeting,
    });
    assert!(
        sim.take_requests(TRUNK, Method::Bye).is_empty(),
        "not hung up early"
    );
    assert!(sim.media_taken().is_empty());
    sim.done(session);
    assert_eq!(sim.take_requests(TRUNK, Method::Bye).len(), 1);
}

#[test]
fn a_key_sent_by_info_and_by_rfc4733_counts_once() {
    let mut sim = sim_with(DestinationSpec::Ivr { menu: None });
    let invite = invite_with_offer("dup1");
    sim.deliver(TRUNK, &invite);
    let (ok, session) = answered(&mut sim, 200);
    let mut caller = Side::caller(&invite, &ok);
    sim.deliver(TRUNK, &caller.request_at(Method::Ack, 1, ""));
    // '2' (the after-hours menu) by RFC 4733, then the same press by INFO.
    sim.feed(MediaEvent::Digit {
        session,
        digit: '2',
    });
    let mut info = caller.request(Method::Info, "");
    info.push(HeaderName::ContentType, "application/dtmf-relay");
    info.set_body(Bytes::from_static(b"Signal=2\r\n"));
    sim.deliver(TRUNK, &info);
    let plays: Vec<_> = sim
        .media_taken()
        .into_iter()
        .filter(|c| matches!(c, MediaCommand::Play { .. }))
        .collect();
    // The greeting, then the other menu once (a second '2' there would be
    // a wrong key: "invalid option" and a replay).
    assert_eq!(plays.len(), 2, "{plays:?}");
    // A second press later is a key again.
    sim.advance_to(1.0);
    sim.deliver(TRUNK, &{
        let mut info = caller.request(Method::Info, "");
        info.push(HeaderName::ContentType, "application/dtmf-relay");
        info.set_body(Bytes::from_static(b"Signal=2\r\n"));
        info
    });
    assert!(sim
        .media_taken()
        .iter()
        .any(|c| matches!(c, MediaCommand::Play { sounds, .. } if sounds.first() == Some(&Sound::Builtin(Builtin::InvalidOption)))));
}

#[test]
fn a_key_to_another_number_follows_that_numbers_hours() {
    let mut spec = WorkspaceSpec {
        domain: "sim.test".into(),
        seats: 5,
        trunks: vec![TrunkSpec {
            name: "carrier".into(),
            sources: vec!["127.0.0.1/32".into()],
            ..TrunkSpec::default()
        }],
        users: vec![UserSpec {
            id: "alice".into(),
            name: "alice".into(),
            password: "pw".into(),
            ..UserSpec::default()
        }],
        ..Default::default()
    };
    spec.numbers = vec![
        NumberSpec {
            number: "+15550100".into(),
            name: "Menu".into(),
            timezone: "UTC".into(),
            no_answer: Some(DestinationSpec::Ivr { menu: None }),
            ivr: Some(MenuSpec {
                greeting: "menu.wav".into(),
                options: vec![(
                    "2".into(),
                    DestinationSpec::Number {
                        number: "+15550200".into(),
                    },
                )],
                ..MenuSpec::default()
            }),
            ..NumberSpec::default()
        },
        NumberSpec {
            number: "+15550200".into(),
            name: "Closed".into(),
            timezone: "UTC".into(),
            members: vec!["alice".into()],
            ring: vec!["alice".into()],
            hours: Some(closed_now()),
            outside: Some(DestinationSpec::Message {
                prompt: "closed.wav".into(),
            }),
            ..NumberSpec::default()
        },
    ];
    let directory = Directory::from_workspace(spec, Path::new("/etc/sb/switchboard.toml")).unwrap();
    let mut sim = Sim::with_directory(directory, |_| {});
    sim.sign_in("alice", ALICE);
    sim.deliver(TRUNK, &invite_with_offer("hrs1"));
    let (_, session) = answered(&mut sim, 200);
    sim.media.clear();
    sim.feed(MediaEvent::Digit {
        session,
        digit: '2',
    });
    // +15550200 is closed: alice does not ring, its closed message plays.
    assert!(invites_to(&mut sim, ALICE).is_empty());
    let plays: Vec<String> = sim
        .media_taken()
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Play { sounds, .. } => sounds.first().map(|s| prompt_path(&sim, s)),
            _ => None,
        })
        .collect();
    assert!(
        plays.contains(&"/etc/sb/closed.wav".to_string()),
        "{plays:?}"
    );
    sim.done(session);
    assert_eq!(sim.take_requests(TRUNK, Method::Bye).len(), 1);
}

#[test]
fn a_caller_silent_for_the_liveness_timeout_is_hung_up() {
    let mut sim = sim_with(DestinationSpec::Voicemail);
    let invite = invite_with_offer("v-quiet");
    sim.deliver(TRUNK, &invite);
    let (ok, session) = answered(&mut sim, 200);
    sim.deliver(
        TRUNK,
        &Side::caller(&invite, &ok).request_at(Method::Ack, 1, ""),
    );
    sim.media.clear();
    // The media runtime saw no RTP from the caller for liveness_timeout.
    sim.feed(MediaEvent::Inactive {
        session,
        leg: false,
    });
    assert_eq!(sim.take_requests(TRUNK, Method::Bye).len(), 1, "told");
    assert!(sim.media_taken().contains(&MediaCommand::Close { session }));
    assert_eq!(sim.calls_left(), CallCounts::default());
    // A report for a session already gone changes nothing.
    sim.feed(MediaEvent::Inactive {
        session,
        leg: false,
    });
    assert!(sim.take(TRUNK).is_empty());
}

#[test]
fn a_caller_of_a_mailbox_with_session_timers_is_refreshed_by_the_daemon_with_update() {
    // Its session refuses re-INVITEs, so the caller is not left to refresh.
    let mut sim = sim_with(DestinationSpec::Voicemail);
    let raw = String::from_utf8(invite_with_offer("v-timer").encode()).unwrap().replacen(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nSupported: timer\r\nSession-Expires: 600\r\nAllow: INVITE, ACK, BYE, CANCEL, UPDATE\r\n",
        1,
    );
    let invite = Message::parse(raw.as_bytes()).unwrap();
    sim.deliver(TRUNK, &invite);
    let (ok, _session) = answered(&mut sim, 200);
    assert_eq!(
        sip::session_timer::session_expires(&ok).and_then(|se| se.refresher),
        Some(sip::session_timer::Refresher::Uas),
        "{ok}"
    );
    sim.deliver(
        TRUNK,
        &Side::caller(&invite, &ok).request_at(Method::Ack, 1, ""),
    );
    sim.advance_to(60.1);
    assert_eq!(sim.take_requests(TRUNK, Method::Update).len(), 1);
}
