//! Calls users place, in simulated time: out through the trunk, to a
//! colleague, to one of the workspace's numbers. The caller is busy from
//! answer to end, whichever way the call ends, and never rung by their own
//! call.

use super::*;

/// An INVITE from `user`'s phone at `from` to `dialled`, answering the
/// engine's 407 when `challenge` is given.
fn user_invite(
    user: &str,
    from: &str,
    dialled: &str,
    call_id: &str,
    challenge: Option<&Message>,
    sdp: &str,
) -> Message {
    let uri = format!("sip:{dialled}@sim.test");
    let cseq = if challenge.is_some() { 2 } else { 1 };
    let mut m = Message::request(Method::Invite, &uri);
    m.push(
        HeaderName::Via,
        &format!("SIP/2.0/UDP {from};branch=z9hG4bK-{call_id}-{cseq}"),
    );
    m.push(
        HeaderName::From,
        &format!("<sip:{user}@sim.test>;tag=ph-{call_id}"),
    );
    m.push(HeaderName::To, &format!("<{uri}>"));
    m.push(HeaderName::CallId, call_id);
    m.push(HeaderName::CSeq, &format!("{cseq} INVITE"));
    m.push(HeaderName::Contact, &format!("<sip:{user}@{from}>"));
    m.push(HeaderName::MaxForwards, "70");
    if let Some(challenge) = challenge {
        let line = challenge
            .header_lines(HeaderName::ProxyAuthenticate)
            .find(|l| l.contains("MD5"))
            .unwrap();
        let parsed = sip::auth::parse_challenge(line).unwrap();
        let value = sip::auth::authorization(&parsed, user, "pw", "INVITE", &uri, "c0ffee");
        m.push(HeaderName::ProxyAuthorization, &value);
    }
    with_sdp(m, sdp)
}

/// `user` at `from` dials `dialled`: the 407, then the INVITE with
/// credentials, which is returned.
fn place(sim: &mut Sim, user: &str, from: &str, dialled: &str, call_id: &str) -> Message {
    place_offering(sim, user, from, dialled, call_id, "v=0\r\n")
}

/// [`place`] with this SDP offer.
pub(super) fn place_offering(
    sim: &mut Sim,
    user: &str,
    from: &str,
    dialled: &str,
    call_id: &str,
    sdp: &str,
) -> Message {
    sim.deliver(from, &user_invite(user, from, dialled, call_id, None, sdp));
    let challenge = sim
        .take(from)
        .into_iter()
        .find(|m| m.status() == Some(407))
        .expect("a 407 for the phone's first INVITE");
    let invite = user_invite(user, from, dialled, call_id, Some(&challenge), sdp);
    sim.deliver(from, &invite);
    invite
}

/// The final responses `addr` got so far.
fn finals(sim: &mut Sim, addr: &str) -> Vec<Message> {
    sim.take(addr)
        .into_iter()
        .filter(|m| m.status().is_some_and(|s| s >= 200))
        .collect()
}

/// The phone ACKs the 200 it got for `invite`.
fn ack_answer(sim: &mut Sim, from: &str, invite: &Message) {
    let ok = finals(sim, from)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .expect("a 200 for the phone");
    let mut ack = Message::request(Method::Ack, &contact_uri(&ok));
    ack.push(
        HeaderName::Via,
        &format!(
            "SIP/2.0/UDP {from};branch=z9hG4bK-ack-{}",
            ok.call_id().unwrap()
        ),
    );
    ack.push(HeaderName::From, invite.header(HeaderName::From).unwrap());
    ack.push(HeaderName::To, ok.header(HeaderName::To).unwrap());
    ack.push(HeaderName::CallId, invite.call_id().unwrap());
    ack.push(HeaderName::CSeq, "2 ACK");
    sim.deliver(from, &ack);
}

/// A BYE inside the dialog the callee's side `invite` (as received) and
/// `tag` set up, from that side.
fn bye_from_callee(invite: &Message, tag: &str, from: &str) -> Message {
    let mut bye = Message::request(Method::Bye, &contact_uri(invite));
    bye.push(
        HeaderName::Via,
        &format!("SIP/2.0/UDP {from};branch=z9hG4bK-bye-{tag}"),
    );
    let to = invite.header(HeaderName::To).unwrap();
    bye.push(HeaderName::From, &format!("{to};tag={tag}"));
    bye.push(HeaderName::To, invite.header(HeaderName::From).unwrap());
    bye.push(HeaderName::CallId, invite.call_id().unwrap());
    bye.push(HeaderName::CSeq, "10 BYE");
    bye
}

#[test]
fn a_call_out_holds_the_callers_lease_until_the_carrier_hangs_up() {
    let mut sim = Sim::with_directory(line(Strategy::Simultaneous, &["alice"], |_| {}), |_| {});
    sim.sign_in("alice", ALICE);
    let invite = place(&mut sim, "alice", ALICE, "+33612345678", "o1");
    let out = invites_to(&mut sim, CARRIER)
        .pop()
        .expect("a leg to the carrier");
    assert_eq!(out.request_uri(), Some("sip:+33612345678@127.0.0.1:5099"));
    assert!(out.from_header().unwrap().uri.starts_with("sip:+15550100@"));
    sim.deliver(CARRIER, &reply(&out, 180, "car"));
    assert_eq!(sim.busy("alice"), 0, "ringing does not count");
    sim.deliver(CARRIER, &reply(&out, 200, "car"));
    ack_answer(&mut sim, ALICE, &invite);
    assert_eq!(sim.busy("alice"), 1, "answered: alice is busy");
    // A trunk call to her line now skips her.
    sim.deliver(TRUNK, &trunk_invite("in1"));
    assert!(invites_to(&mut sim, ALICE).is_empty());
    let _ = sim.take(TRUNK);
    let _ = sim.records();

    sim.deliver(CARRIER, &bye_from_callee(&out, "car", CARRIER));
    assert_eq!(sim.take_requests(ALICE, Method::Bye).len(), 1);
    assert_eq!(sim.busy("alice"), 0, "the call's end releases her");
    let record = sim.record();
    assert_eq!(record.direction, Direction::Outbound);
    assert_eq!(record.caller_user.as_deref(), Some("alice"));
    assert_eq!(record.number.as_deref(), Some("+15550100"));
    assert_eq!(record.call_id, invite.call_id().unwrap());
}

#[test]
fn an_internal_call_leases_both_users_and_the_maximum_duration_frees_both() {
    let mut sim = Sim::with_directory(line(Strategy::Simultaneous, &["alice"], |_| {}), |cfg| {
        cfg.max_call_duration = Duration::from_secs(60)
    });
    sim.sign_in("alice", ALICE);
    sim.sign_in("bob", BOB_1);
    let invite = place(&mut sim, "alice", ALICE, "bob", "i1");
    let ib = invites_to(&mut sim, BOB_1)
        .pop()
        .expect("bob's phone rings");
    assert_eq!(ib.from_header().unwrap().display_name(), Some("alice"));
    sim.deliver(BOB_1, &reply(&ib, 200, "b"));
    ack_answer(&mut sim, ALICE, &invite);
    assert_eq!((sim.busy("alice"), sim.busy("bob")), (1, 1));
    sim.advance_to(61.0);
    assert_eq!((sim.busy("alice"), sim.busy("bob")), (0, 0));
    assert_eq!(sim.calls_left(), CallCounts::default());
    let record = sim
        .records()
        .into_iter()
        .find(|r| r.call_id == "i1")
        .unwrap();
    assert_eq!(record.direction, Direction::Internal);
    assert_eq!(record.outcome, CallOutcome::MaxDuration);
}

#[test]
fn a_call_out_cancelled_while_it_rings_never_made_anyone_busy() {
    let mut sim = Sim::with_directory(line(Strategy::Simultaneous, &["alice"], |_| {}), |_| {});
    let invite = place(&mut sim, "alice", ALICE, "+33612345678", "o2");
    let out = invites_to(&mut sim, CARRIER).pop().unwrap();
    sim.deliver(CARRIER, &reply(&out, 180, "car"));
    sim.deliver(ALICE, &cancel_of(&invite));
    assert_eq!(sim.take_requests(CARRIER, Method::Cancel).len(), 1);
    assert!(finals(&mut sim, ALICE)
        .iter()
        .any(|m| m.status() == Some(487)));
    assert_eq!(sim.busy("alice"), 0);
    assert_eq!(sim.record().outcome, CallOutcome::CallerCancelled);
}

#[test]
fn dialling_their_own_line_rings_the_others_only() {
    let mut sim = Sim::with_directory(
        line(Strategy::Cascade, &["alice", "bob"], |n| {
            n.step_timeout_secs = Some(10)
        }),
        |_| {},
    );
    sim.sign_in("alice", ALICE);
    sim.sign_in("bob", BOB_1);
    place(&mut sim, "alice", ALICE, "+15550100", "own");
    // The cascade's first step is alice herself: skipped at once.
    assert!(invites_to(&mut sim, ALICE).is_empty());
    assert_eq!(invites_to(&mut sim, BOB_1).len(), 1);
}

#[test]
fn a_busy_colleague_and_a_denied_number_are_refused_with_their_reasons() {
    let mut sim = Sim::with_directory(line(Strategy::Simultaneous, &["alice"], |_| {}), |_| {});
    sim.sign_in("alice", ALICE);
    sim.sign_in("bob", BOB_1);
    sim.sign_in("carol", CAROL);
    // bob on a call with alice...
    place(&mut sim, "alice", ALICE, "bob", "i2");
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 200, "b"));
    let _ = sim.take(ALICE);
    // ...so carol's call to him gets 486 with a reason and a Warning.
    place(&mut sim, "carol", CAROL, "bob", "i3");
    let refused = finals(&mut sim, CAROL).pop().unwrap();
    assert_eq!(refused.status(), Some(486));
    assert_eq!(refused.reason(), Some("User busy"));
    let warning = refused.header_by_name("Warning").unwrap();
    assert_eq!(warning, "399 sim.test \"User busy\"");
    // carol has a line (Sales) but nobody has a number for "0612345678"
    // without a national rule: not a number at all.
    place(&mut sim, "carol", CAROL, "0612345678", "o3");
    let refused = finals(&mut sim, CAROL).pop().unwrap();
    assert_eq!(
        (refused.status(), refused.reason()),
        (Some(404), Some("No such user or number"))
    );
    assert!(invites_to(&mut sim, CARRIER).is_empty());
}

#[test]
fn hold_on_a_call_out_is_relayed_both_ways() {
    let mut sim = Sim::with_directory(line(Strategy::Simultaneous, &["alice"], |_| {}), |_| {});
    sim.sign_in("alice", ALICE);
    let invite = place(&mut sim, "alice", ALICE, "+33612345678", "h1");
    let out = invites_to(&mut sim, CARRIER).pop().unwrap();
    sim.deliver(CARRIER, &reply(&out, 200, "car"));
    let ok = finals(&mut sim, ALICE)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    let mut phone = Side::caller(&invite, &ok);
    phone.addr = ALICE;
    phone.cseq = 2;
    sim.deliver(ALICE, &phone.request_at(Method::Ack, 2, ""));
    // The phone puts the call on hold: the re-INVITE reaches the carrier.
    sim.deliver(
        ALICE,
        &phone.request(Method::Invite, "v=0\r\na=sendonly\r\n"),
    );
    let hold = invites_to(&mut sim, CARRIER)
        .pop()
        .expect("relayed re-INVITE");
    assert_eq!(hold.to_tag(), Some("car"), "inside the carrier's dialog");
    assert_eq!(&hold.body()[..], b"v=0\r\na=sendonly\r\n");
    sim.deliver(CARRIER, &reply(&hold, 200, "car"));
    assert!(finals(&mut sim, ALICE)
        .iter()
        .any(|m| m.status() == Some(200)));
    // The carrier sends an UPDATE back: it reaches the phone.
    let mut carrier = Side::phone(CARRIER, &out, "car");
    sim.deliver(CARRIER, &carrier.request(Method::Update, "v=0\r\no=c\r\n"));
    assert_eq!(sim.take_requests(ALICE, Method::Update).len(), 1);
    assert_eq!(sim.busy("alice"), 1, "still on the call");
}
