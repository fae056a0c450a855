//! Session timers (RFC 4028) in simulated time, hop by hop: the caller's
//! side as UAS, the answering phone's as UAC. A side with a timer is not
//! probed with OPTIONS; it is refreshed by the daemon (UPDATE every half
//! interval) or must refresh itself before the interval less a third.

use super::*;
use sip::session_timer::{session_expires, Refresher, SessionExpires};

/// The trunk's INVITE with session-timer headers added.
fn invite_with(call_id: &str, extra: &str) -> Message {
    let raw = String::from_utf8(trunk_invite(call_id).encode()).unwrap();
    let raw = raw.replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{extra}"),
        1,
    );
    Message::parse(raw.as_bytes()).unwrap()
}

/// A call from the trunk answered by bob on BOB_1; the phone's 200 carries
/// `phone_extra`. Returns the trunk's and the phone's sides and the 200 the
/// trunk got.
fn answered_with(
    sim: &mut Sim,
    call_id: &str,
    trunk_extra: &str,
    phone_extra: &str,
) -> (Side, Side, Message) {
    sim.sign_in("bob", BOB_1);
    let invite = invite_with(call_id, trunk_extra);
    sim.deliver(TRUNK, &invite);
    let ib = invites_to(sim, BOB_1).pop().expect("bob rings");
    let mut ok = reply(&ib, 200, "bob-tag");
    for line in phone_extra.split("\r\n") {
        if let Some((name, value)) = line.split_once(": ") {
            ok.push_other(name, value);
        }
    }
    sim.deliver(BOB_1, &ok);
    let _ = sim.take(BOB_1);
    let to_trunk = sim
        .take(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .expect("the trunk's 200");
    let caller = Side::caller(&invite, &to_trunk);
    sim.deliver(TRUNK, &caller.request_at(Method::Ack, 1, ""));
    (caller, Side::phone(BOB_1, &ib, "bob-tag"), to_trunk)
}

fn answer_all(sim: &mut Sim, addr: &str, method: Method, status: u16) -> usize {
    let requests = sim.take_requests(addr, method);
    for request in &requests {
        sim.deliver(addr, &response_to(request, status, "X", None, false));
    }
    requests.len()
}

#[test]
fn legs_are_offered_a_session_timer() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("st-offer"));
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    assert_eq!(
        session_expires(&ib),
        Some(SessionExpires {
            secs: 120,
            refresher: None
        }),
        "liveness_timeout (120 s) is the interval"
    );
    assert_eq!(ib.header(HeaderName::MinSe), Some("90"));
    assert!(sip::session_timer::supports_timer(&ib));
}

#[test]
fn a_caller_that_refreshes_keeps_the_call_and_one_that_stops_loses_it() {
    let mut sim = Sim::new(|_| {});
    let (mut caller, _phone, ok) = answered_with(
        &mut sim,
        "st1",
        "Supported: timer\r\nSession-Expires: 1800\r\n",
        "",
    );
    // The daemon keeps its bound (120 s), and the caller refreshes.
    assert_eq!(
        session_expires(&ok),
        Some(SessionExpires {
            secs: 120,
            refresher: Some(Refresher::Uac)
        })
    );
    assert!(ok.values(HeaderName::Require).any(|t| t == "timer"));
    sim.advance_to(60.2);
    // The phone (no timer in its 200) is probed; the caller is not.
    assert_eq!(answer_all(&mut sim, BOB_1, Method::Options, 200), 1);
    assert!(sim.take_requests(TRUNK, Method::Options).is_empty());
    // A refresh by UPDATE: relayed to the phone, its 200 back with the
    // caller's own Session-Expires.
    sim.deliver(TRUNK, &caller.request(Method::Update, ""));
    assert_eq!(answer_all(&mut sim, BOB_1, Method::Update, 200), 1);
    let refreshed = sim
        .take(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    assert_eq!(
        session_expires(&refreshed).map(|se| se.refresher),
        Some(Some(Refresher::Uac))
    );
    // 88 s after the first answer the call would have expired: it did not.
    sim.advance_to(100.0);
    answer_all(&mut sim, BOB_1, Method::Options, 200);
    assert!(sim.take_requests(TRUNK, Method::Bye).is_empty());
    assert_eq!(sim.busy("bob"), 1);
    // No more refreshes: 88 s after the last one (at 60.2 s), both sides
    // get a BYE.
    sim.advance_to(148.0);
    answer_all(&mut sim, BOB_1, Method::Options, 200);
    assert!(sim.take_requests(TRUNK, Method::Bye).is_empty(), "not yet");
    sim.advance_to(148.4);
    assert_eq!(sim.take_requests(TRUNK, Method::Bye).len(), 1);
    assert_eq!(sim.take_requests(BOB_1, Method::Bye).len(), 1);
    assert_eq!(sim.busy("bob"), 0);
}

#[test]
fn an_interval_below_90_s_gets_422_with_min_se() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(
        TRUNK,
        &invite_with("st2", "Supported: timer\r\nSession-Expires: 30\r\n"),
    );
    let answers = sim.take(TRUNK);
    let refused = answers
        .iter()
        .find(|m| m.status() == Some(422))
        .expect("422");
    assert_eq!(refused.header(HeaderName::MinSe), Some("90"));
    assert!(invites_to(&mut sim, BOB_1).is_empty(), "nobody rang");
    // Without `timer` support the interval is not the caller's to fix: the
    // call goes ahead (probed).
    sim.deliver(TRUNK, &invite_with("st3", "Session-Expires: 30\r\n"));
    assert_eq!(invites_to(&mut sim, BOB_1).len(), 1);
}

#[test]
fn a_caller_that_asks_the_daemon_to_refresh_gets_updates() {
    let mut sim = Sim::new(|_| {});
    let (_caller, _phone, ok) = answered_with(
        &mut sim,
        "st4",
        "Supported: timer\r\nSession-Expires: 300;refresher=uas\r\nAllow: INVITE, ACK, BYE, CANCEL, UPDATE\r\n",
        "",
    );
    assert_eq!(
        session_expires(&ok).map(|se| se.refresher),
        Some(Some(Refresher::Uas))
    );
    for round in 1..=3 {
        sim.advance_to(60.1 * f64::from(round));
        let updates = sim.take_requests(TRUNK, Method::Update);
        assert_eq!(updates.len(), 1, "round {round}");
        assert_eq!(
            session_expires(&updates[0]),
            Some(SessionExpires {
                secs: 120,
                refresher: Some(Refresher::Uac)
            }),
            "we send it and we refresh: uac in this transaction"
        );
        sim.deliver(TRUNK, &response_to(&updates[0], 200, "OK", None, false));
        answer_all(&mut sim, BOB_1, Method::Options, 200);
    }
    assert_eq!(sim.busy("bob"), 1);
    // The carrier lost the dialog: 481 to the refresh ends the call.
    sim.advance_to(240.2);
    let update = sim.take_requests(TRUNK, Method::Update).pop().unwrap();
    sim.deliver(TRUNK, &response_to(&update, 481, "Gone", None, false));
    assert_eq!(sim.take_requests(BOB_1, Method::Bye).len(), 1);
    assert_eq!(sim.busy("bob"), 0);
}

#[test]
fn a_caller_asking_for_refreshes_without_update_is_probed_instead() {
    let mut sim = Sim::new(|_| {});
    let (_caller, _phone, ok) = answered_with(
        &mut sim,
        "st5",
        "Supported: timer\r\nSession-Expires: 300;refresher=uas\r\nAllow: INVITE, ACK, BYE, CANCEL\r\n",
        "",
    );
    assert_eq!(session_expires(&ok), None, "no timer on that side");
    sim.advance_to(60.2);
    assert_eq!(sim.take_requests(TRUNK, Method::Options).len(), 1);
}

#[test]
fn a_phone_that_refreshes_itself_is_not_probed_and_expires_when_it_stops() {
    let mut sim = Sim::new(|_| {});
    let (_caller, mut phone, _) =
        answered_with(&mut sim, "st6", "", "Session-Expires: 120;refresher=uas");
    sim.advance_to(60.2);
    assert_eq!(answer_all(&mut sim, TRUNK, Method::Options, 200), 1);
    assert!(sim.take_requests(BOB_1, Method::Options).is_empty());
    // The phone refreshes with UPDATE, relayed to the carrier.
    sim.deliver(BOB_1, &phone.request(Method::Update, ""));
    assert_eq!(answer_all(&mut sim, TRUNK, Method::Update, 200), 1);
    let refreshed = sim
        .take(BOB_1)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    assert_eq!(
        session_expires(&refreshed).map(|se| se.refresher),
        Some(Some(Refresher::Uac)),
        "the phone (who sent the refresh) stays the refresher"
    );
    // Then silence: 88 s after that refresh, the call ends.
    sim.advance_to(120.2);
    answer_all(&mut sim, TRUNK, Method::Options, 200);
    assert_eq!(sim.busy("bob"), 1);
    sim.advance_to(148.4);
    assert_eq!(sim.take_requests(TRUNK, Method::Bye).len(), 1);
    assert_eq!(sim.busy("bob"), 0);
}

#[test]
fn a_phone_that_leaves_refreshing_to_the_daemon_gets_updates() {
    let mut sim = Sim::new(|_| {});
    let _ = answered_with(
        &mut sim,
        "st7",
        "",
        "Session-Expires: 90;refresher=uac\r\nAllow: INVITE, ACK, BYE, CANCEL, UPDATE",
    );
    sim.advance_to(45.1);
    let updates = sim.take_requests(BOB_1, Method::Update);
    assert_eq!(updates.len(), 1);
    assert_eq!(
        session_expires(&updates[0]),
        Some(SessionExpires {
            secs: 90,
            refresher: Some(Refresher::Uac)
        })
    );
    assert!(sim.take_requests(BOB_1, Method::Options).is_empty());
    // No answer at all: the UPDATE gives up (Timer F, 32 s) and the call ends.
    sim.advance_to(45.1 + 32.1);
    assert_eq!(sim.take_requests(TRUNK, Method::Bye).len(), 1);
    assert_eq!(sim.busy("bob"), 0);
}

#[test]
fn a_phone_that_leaves_refreshing_to_the_daemon_without_update_is_probed() {
    let mut sim = Sim::new(|_| {});
    let _ = answered_with(&mut sim, "st8", "", "Session-Expires: 90;refresher=uac");
    sim.advance_to(60.2);
    let to_phone = sim.take(BOB_1);
    let methods: Vec<_> = to_phone
        .iter()
        .filter_map(|m| m.method().cloned())
        .collect();
    assert_eq!(methods, vec![Method::Options], "probed, not refreshed");
}

#[test]
fn require_timer_is_understood_and_not_passed_to_a_side_without_timers() {
    let mut sim = Sim::new(|_| {});
    // An INVITE insisting on timers is served (no 420).
    let (mut caller, _phone, ok) = answered_with(
        &mut sim,
        "st9",
        "Supported: timer\r\nRequire: timer\r\nSession-Expires: 120\r\n",
        "",
    );
    assert_eq!(ok.status(), Some(200));
    // Its refresh, with Require: timer, reaches the phone (which has no
    // timer) without it.
    let mut update = caller.request(Method::Update, "");
    update.push(HeaderName::Require, "timer");
    update.push(HeaderName::SessionExpires, "120;refresher=uac");
    sim.deliver(TRUNK, &update);
    let relayed = sim
        .take_requests(BOB_1, Method::Update)
        .pop()
        .expect("relayed");
    assert!(!sip::session_timer::supports_timer(&relayed), "{relayed}");
    assert_eq!(session_expires(&relayed), None);
}
