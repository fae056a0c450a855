//! A device's 3xx, in simulated time: followed to the workspace's users and
//! numbers, never out through the trunk, never in a loop.

use super::*;

fn redirect(invite: &Message, contact: &str) -> Message {
    let mut r = response_to(invite, 302, "Moved Temporarily", Some("b"), false);
    r.push(HeaderName::Contact, contact);
    r
}

fn bob_redirects_to(contact: &str) -> Sim {
    let mut sim = Sim::with_directory(line(Strategy::Simultaneous, &["bob"], |_| {}), |_| {});
    sim.sign_in("alice", ALICE);
    sim.sign_in("bob", BOB_1);
    sim.sign_in("dave", DAVE);
    sim.deliver(TRUNK, &trunk_invite("r1"));
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &redirect(&ib, contact));
    assert_eq!(
        sim.take_requests(BOB_1, Method::Ack).len(),
        1,
        "the 302 is ACKed"
    );
    sim
}

#[test]
fn a_redirect_to_a_user_rings_that_user_as_if_dialled() {
    let mut sim = bob_redirects_to("<sip:alice@sim.test>");
    let ia = invites_to(&mut sim, ALICE).pop().expect("alice rings");
    assert!(finals_to_trunk(&mut sim).is_empty(), "the call goes on");
    sim.deliver(ALICE, &reply(&ia, 200, "a"));
    assert_eq!(finals_to_trunk(&mut sim), [200]);
    assert_eq!(sim.busy("alice"), 1);
    assert_eq!(sim.calls_left().answered, 1);
}

#[test]
fn a_redirect_to_a_number_moves_the_call_to_that_numbers_plan() {
    let mut sim = bob_redirects_to("<sip:+15550200@127.0.0.1>");
    assert_eq!(invites_to(&mut sim, DAVE).len(), 1, "+15550200 rings dave");
    assert!(invites_to(&mut sim, ALICE).is_empty());
    assert!(finals_to_trunk(&mut sim).is_empty());
}

#[test]
fn a_redirect_outside_the_workspace_is_not_followed_and_the_leg_fails() {
    let mut sim = bob_redirects_to("<sip:+15559990000@127.0.0.1>");
    assert!(
        sim.take_requests(CARRIER, Method::Invite).is_empty(),
        "never out through the trunk"
    );
    assert_eq!(finals_to_trunk(&mut sim), [480]);
    let record = sim.record();
    assert_eq!(
        record.rang[0].outcome,
        LegOutcome::Redirected {
            status: 302,
            followed: false
        }
    );
}

#[test]
fn a_redirect_back_to_a_user_already_rung_is_not_followed() {
    let mut sim = bob_redirects_to("<sip:bob@sim.test>");
    assert!(invites_to(&mut sim, BOB_1).is_empty());
    assert_eq!(finals_to_trunk(&mut sim), [480]);
}

#[test]
fn a_followed_redirect_is_recorded_as_such() {
    let mut sim = bob_redirects_to("<sip:+15550200@127.0.0.1>");
    let id = invites_to(&mut sim, DAVE).pop().unwrap();
    sim.deliver(DAVE, &reply(&id, 486, "d"));
    assert_eq!(finals_to_trunk(&mut sim), [486]);
    let record = sim.record();
    assert_eq!(
        record.rang[0].outcome,
        LegOutcome::Redirected {
            status: 302,
            followed: true
        }
    );
    assert_eq!(record.rang[1].user, "dave");
}

#[test]
fn a_603_from_every_device_still_leads_to_no_answer_handling() {
    let dir = line(Strategy::Simultaneous, &["alice", "bob"], |n| {
        n.no_answer = Some(directory::DestinationSpec::Number {
            number: "+15550200".into(),
        })
    });
    let mut sim = Sim::with_directory(dir, |_| {});
    for (user, addr) in [("alice", ALICE), ("bob", BOB_1), ("dave", DAVE)] {
        sim.sign_in(user, addr);
    }
    sim.deliver(TRUNK, &trunk_invite("r603"));
    for addr in [ALICE, BOB_1] {
        let i = invites_to(&mut sim, addr).pop().unwrap();
        sim.deliver(addr, &reply(&i, 603, "x"));
    }
    assert_eq!(invites_to(&mut sim, DAVE).len(), 1, "no_answer: +15550200");
    assert!(finals_to_trunk(&mut sim).is_empty());
}

#[test]
fn the_most_preferred_contact_is_followed_and_only_301_or_302_are() {
    let mut sim =
        bob_redirects_to("<sip:+15559990000@127.0.0.1>;q=0.1, <sip:alice@sim.test>;q=0.9");
    assert_eq!(invites_to(&mut sim, ALICE).len(), 1, "q=0.9 wins");

    let mut sim = Sim::with_directory(line(Strategy::Simultaneous, &["bob"], |_| {}), |_| {});
    sim.sign_in("alice", ALICE);
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("r305"));
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    let mut proxy = response_to(&ib, 305, "Use Proxy", Some("b"), false);
    proxy.push(HeaderName::Contact, "<sip:alice@sim.test>");
    sim.deliver(BOB_1, &proxy);
    assert!(
        invites_to(&mut sim, ALICE).is_empty(),
        "305 names a proxy, not a user"
    );
    assert_eq!(finals_to_trunk(&mut sim), [480]);
}
