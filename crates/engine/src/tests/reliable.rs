//! Reliable provisionals (RFC 3262) on both sides of the B2BUA, in
//! simulated time.

use super::*;

/// A trunk INVITE that requires (or only supports) 100rel.
fn invite_100rel(call_id: &str, header: &str) -> Message {
    let raw = format!(
        "INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {TRUNK};branch=z9hG4bK-{call_id}\r\n\
         From: <sip:+15551230000@{TRUNK}>;tag=trunk-{call_id}\r\n\
         To: <sip:+15550100@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:trunk@{TRUNK}>\r\n\
         {header}: 100rel\r\n\
         Max-Forwards: 70\r\n\
         Content-Type: application/sdp\r\n\r\n\
         v=0\r\n"
    );
    Message::parse(raw.as_bytes()).unwrap()
}

fn provisionals(messages: &[Message], status: u16) -> Vec<&Message> {
    messages
        .iter()
        .filter(|m| m.status() == Some(status))
        .collect()
}

fn rseq(m: &Message) -> u32 {
    m.header(HeaderName::RSeq).unwrap().parse().unwrap()
}

/// The caller's PRACK for provisional `prov` (its RSeq) of `invite`.
fn prack(invite: &Message, prov: &Message, rack_rseq: u32, cseq: u32) -> Message {
    let side = Side::caller(invite, prov);
    let mut m = side.request_at(Method::Prack, cseq, "");
    m.push(HeaderName::RAck, &format!("{rack_rseq} 1 INVITE"));
    m
}

#[test]
fn a_carrier_requiring_100rel_gets_reliable_provisionals_retransmitted_until_pracked() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    let invite = invite_100rel("rel1", "Require");
    sim.deliver(TRUNK, &invite);
    assert!(
        statuses(&sim.take(TRUNK)).is_empty(),
        "no 420: 100rel is supported"
    );
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    assert_eq!(ib.header(HeaderName::Supported), Some("100rel, timer"));
    assert!(ib.header(HeaderName::Allow).unwrap().contains("PRACK"));

    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    let to_trunk = sim.take(TRUNK);
    let ringing = provisionals(&to_trunk, 180);
    assert_eq!(ringing.len(), 1);
    assert_eq!(ringing[0].header(HeaderName::Require), Some("100rel"));
    let first = rseq(ringing[0]);
    let ringing = ringing[0].clone();

    // Re-sent at T1, then 2*T1 later, while no PRACK comes.
    sim.advance_to(0.6);
    assert_eq!(provisionals(&sim.take(TRUNK), 180).len(), 1);
    sim.advance_to(1.4);
    assert!(provisionals(&sim.take(TRUNK), 180).is_empty());
    sim.advance_to(1.6);
    let again = sim.take(TRUNK);
    assert_eq!(provisionals(&again, 180).len(), 1);
    assert_eq!(rseq(provisionals(&again, 180)[0]), first, "same RSeq");

    // A PRACK for another RSeq matches nothing: 481.
    sim.deliver(TRUNK, &prack(&invite, &ringing, first + 5, 2));
    assert_eq!(statuses(&sim.take(TRUNK)), [481]);
    // The right one: 200, and the retransmissions stop.
    sim.deliver(TRUNK, &prack(&invite, &ringing, first, 3));
    let ok = sim.take(TRUNK);
    assert_eq!(statuses(&ok), [200]);
    assert_eq!(ok[0].cseq().unwrap().method, "PRACK");
    assert_eq!(ok[0].to_tag(), ringing.to_tag());
    sim.advance_to(10.0);
    assert!(provisionals(&sim.take(TRUNK), 180).is_empty());

    // Early media next: its own RSeq, one up.
    sim.deliver(BOB_1, &with_sdp(reply(&ib, 183, "b"), "v=0\r\no=bob\r\n"));
    let progress = sim.take(TRUNK);
    let progress = provisionals(&progress, 183)[0].clone();
    assert_eq!(rseq(&progress), first + 1);
    assert_eq!(&progress.body()[..], b"v=0\r\no=bob\r\n");

    // bob answers before the caller PRACKed the 183 with SDP: the 200
    // waits (RFC 3262 §3) and goes right after the PRACK.
    sim.deliver(BOB_1, &with_sdp(reply(&ib, 200, "b"), "v=0\r\no=bob\r\n"));
    assert_eq!(sim.take_requests(BOB_1, Method::Ack).len(), 1);
    assert!(statuses(&sim.take(TRUNK)).is_empty(), "the 200 is held");
    sim.deliver(TRUNK, &prack(&invite, &progress, first + 1, 4));
    let to_trunk = sim.take(TRUNK);
    assert_eq!(statuses(&to_trunk), [200, 200]);
    assert_eq!(to_trunk[0].cseq().unwrap().method, "PRACK");
    assert_eq!(to_trunk[1].cseq().unwrap().method, "INVITE");
    assert_eq!(&to_trunk[1].body()[..], b"v=0\r\no=bob\r\n");
    assert_eq!(sim.calls_left().answered, 1);
}

#[test]
fn a_second_reliable_provisional_waits_for_the_prack_of_the_first() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    let invite = invite_100rel("rel2", "Require");
    sim.deliver(TRUNK, &invite);
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    let ringing = provisionals(&sim.take(TRUNK), 180)[0].clone();
    // bob's early media comes while the 180 is unacknowledged: queued.
    sim.deliver(BOB_1, &with_sdp(reply(&ib, 183, "b"), "v=0\r\no=bob\r\n"));
    assert!(provisionals(&sim.take(TRUNK), 183).is_empty());
    sim.deliver(TRUNK, &prack(&invite, &ringing, rseq(&ringing), 2));
    let to_trunk = sim.take(TRUNK);
    assert_eq!(statuses(&to_trunk), [200]);
    let progress = provisionals(&to_trunk, 183);
    assert_eq!(progress.len(), 1, "sent once the 180 is PRACKed");
    assert_eq!(rseq(progress[0]), rseq(&ringing) + 1);
}

#[test]
fn early_media_never_pins_the_answer_of_a_call_that_rings_several_legs() {
    // Required 100rel, two legs: a reliable 18x's SDP would be the answer
    // (RFC 3262 §5) and the winner's 200 ignored, so only "ringing" goes.
    let mut sim = Sim::new(|_| {});
    sim.sign_in("alice", ALICE);
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &invite_100rel("rel7", "Require"));
    let ia = invites_to(&mut sim, ALICE).pop().unwrap();
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &with_sdp(reply(&ib, 183, "b"), "v=0\r\no=bob\r\n"));
    let to_trunk = sim.take(TRUNK);
    let ringing = provisionals(&to_trunk, 180);
    assert_eq!(ringing.len(), 1, "a reliable 180 instead");
    assert!(ringing[0].body().is_empty());
    assert!(provisionals(&to_trunk, 183).is_empty());
    let _ = ia;
    // Only supported: early media goes, unreliably (no RSeq), so the 200
    // of whichever leg wins still sets the session.
    let mut sim = Sim::new(|_| {});
    sim.sign_in("alice", ALICE);
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &invite_100rel("rel8", "Supported"));
    let ia = invites_to(&mut sim, ALICE).pop().unwrap();
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &with_sdp(reply(&ib, 183, "b"), "v=0\r\no=bob\r\n"));
    let to_trunk = sim.take(TRUNK);
    let progress = provisionals(&to_trunk, 183);
    assert_eq!(progress.len(), 1);
    assert_eq!(progress[0].header(HeaderName::RSeq), None);
    assert_eq!(&progress[0].body()[..], b"v=0\r\no=bob\r\n");
    sim.deliver(ALICE, &with_sdp(reply(&ia, 200, "a"), "v=0\r\no=alice\r\n"));
    let ok = sim
        .take(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    assert_eq!(&ok.body()[..], b"v=0\r\no=alice\r\n");
}

#[test]
fn legs_of_a_late_offer_call_do_not_offer_100rel() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite_without_sdp("rel9"));
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    assert_eq!(
        ib.header(HeaderName::Supported),
        Some("timer"),
        "session timers, not 100rel"
    );
}

#[test]
fn a_caller_that_never_pracks_gets_a_5xx_after_64_t1_and_the_phones_stop() {
    // Rings longer than 64*T1, so that the PRACK's absence ends it.
    let directory = line(Strategy::Simultaneous, &["bob"], |n| {
        n.ring_timeout_secs = Some(90)
    });
    let mut sim = Sim::with_directory(directory, |_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &invite_100rel("rel3", "Require"));
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    sim.advance_to(31.9);
    let sent = provisionals(&sim.take(TRUNK), 180).len();
    assert_eq!(sent, 7, "at 0, then 1, 3, 7, 15, 31 and 63 T1 (T1 = 0.5 s)");
    sim.advance_to(32.1);
    assert_eq!(statuses(&sim.take(TRUNK)), [500], "a 5xx (RFC 3262 §3)");
    assert_eq!(sim.take_requests(BOB_1, Method::Cancel).len(), 1);
    assert_eq!(sim.record().outcome, CallOutcome::Failed { status: 500 });
}

#[test]
fn a_caller_that_does_not_ask_for_100rel_gets_plain_provisionals() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("rel4"));
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    let to_trunk = sim.take(TRUNK);
    let ringing = provisionals(&to_trunk, 180);
    assert_eq!(ringing.len(), 1);
    assert_eq!(ringing[0].header(HeaderName::RSeq), None);
    assert_eq!(ringing[0].header(HeaderName::Require), None);
    sim.advance_to(2.0);
    assert!(provisionals(&sim.take(TRUNK), 180).is_empty());
}

/// A phone's reliable provisional with `rseq`.
fn reliable(invite: &Message, status: u16, rseq: u32) -> Message {
    let mut r = reply(invite, status, "b");
    r.push(HeaderName::Require, "100rel");
    r.push(HeaderName::RSeq, &rseq.to_string());
    r
}

#[test]
fn a_phones_reliable_provisionals_are_pracked_once_each_in_order() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("rel5"));
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();

    sim.deliver(BOB_1, &with_sdp(reliable(&ib, 183, 5), "v=0\r\no=bob\r\n"));
    let pracks = sim.take_requests(BOB_1, Method::Prack);
    assert_eq!(pracks.len(), 1);
    let p = &pracks[0];
    assert_eq!(p.header(HeaderName::RAck), Some("5 1 INVITE"));
    assert_eq!(p.to_tag(), Some("b"), "in the early dialog");
    assert_eq!(p.request_uri(), ib.request_uri(), "to the contact it rang");
    assert_eq!(p.cseq().unwrap().seq, 2);
    // The caller (no 100rel) still gets the early media, unreliably.
    let progress = sim.take(TRUNK);
    assert_eq!(provisionals(&progress, 183).len(), 1);

    // Its retransmission is not PRACKed again, nor passed on.
    sim.deliver(BOB_1, &with_sdp(reliable(&ib, 183, 5), "v=0\r\no=bob\r\n"));
    assert!(sim.take_requests(BOB_1, Method::Prack).is_empty());
    // One out of order (7 after 5) is ignored; the next in order is PRACKed.
    sim.deliver(BOB_1, &reliable(&ib, 180, 7));
    assert!(sim.take_requests(BOB_1, Method::Prack).is_empty());
    sim.deliver(BOB_1, &reliable(&ib, 180, 6));
    let pracks = sim.take_requests(BOB_1, Method::Prack);
    assert_eq!(pracks.len(), 1);
    assert_eq!(pracks[0].header(HeaderName::RAck), Some("6 1 INVITE"));

    // Answered; the BYE later counts on from the PRACKs' CSeqs.
    sim.deliver(BOB_1, &with_sdp(reply(&ib, 200, "b"), "v=0\r\no=bob\r\n"));
    assert_eq!(sim.take_requests(BOB_1, Method::Ack).len(), 1);
    let ok = sim
        .take(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    let mut caller = Side::caller(&trunk_invite("rel5"), &ok);
    sim.deliver(TRUNK, &caller.request_at(Method::Ack, 1, ""));
    sim.deliver(TRUNK, &caller.request(Method::Bye, ""));
    let bye = sim.take_requests(BOB_1, Method::Bye).pop().unwrap();
    assert_eq!(bye.cseq().unwrap().seq, 4);
}

#[test]
fn options_lists_100rel_as_supported() {
    let mut sim = Sim::new(|_| {});
    let raw = format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {TRUNK};branch=z9hG4bK-opt\r\n\
         From: <sip:probe@{TRUNK}>;tag=p\r\n\
         To: <sip:127.0.0.1>\r\n\
         Call-ID: opt-supported\r\n\
         CSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\n\r\n"
    );
    sim.deliver(TRUNK, &Message::parse(raw.as_bytes()).unwrap());
    let ok = sim.take(TRUNK).pop().unwrap();
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.header(HeaderName::Supported), Some("100rel, timer"));
}

#[test]
fn a_cancel_while_the_200_waits_for_a_prack_wins_and_hangs_up_the_phone() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    let invite = invite_100rel("rel6", "Require");
    sim.deliver(TRUNK, &invite);
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &with_sdp(reply(&ib, 183, "b"), "v=0\r\no=bob\r\n"));
    sim.deliver(BOB_1, &with_sdp(reply(&ib, 200, "b"), "v=0\r\no=bob\r\n"));
    sim.take(BOB_1);
    assert!(statuses(&sim.take(TRUNK)).is_empty(), "the 200 is held");
    sim.deliver(TRUNK, &cancel_of(&invite));
    assert_eq!(statuses(&sim.take(TRUNK)), [200, 487]);
    assert_eq!(sim.take_requests(BOB_1, Method::Bye).len(), 1);
    assert_eq!(sim.record().outcome, CallOutcome::CallerCancelled);
    assert_eq!(sim.busy("bob"), 0);
}
