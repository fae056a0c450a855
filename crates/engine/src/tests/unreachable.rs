//! ICMP "unreachable" reports for UDP destinations, in simulated time: a
//! leg to a phone whose port is closed fails at once and the call moves on;
//! a probe to a vanished phone ends its call at once; the reports are
//! budgeted per second.

use super::*;
use crate::unreachable::UnreachableBudget;

fn unreachable(sim: &mut Sim, addr: &str) {
    let to = addr.parse().unwrap();
    sim.engine.handle_input(sim.now, Input::Unreachable { to });
    sim.collect();
}

#[test]
fn a_leg_to_a_closed_port_fails_at_once_and_the_call_goes_on_to_its_destination() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("icmp1"));
    assert_eq!(invites_to(&mut sim, BOB_1).len(), 1);
    sim.advance_to(0.1);
    unreachable(&mut sim, BOB_1);
    // Nobody else rings: the call ends now, not at the 30 s ring timeout.
    let finals: Vec<u16> = finals_to_trunk(&mut sim)
        .into_iter()
        .filter(|s| *s >= 200)
        .collect();
    assert_eq!(finals.len(), 1, "a final answer at once: {finals:?}");
    assert!(finals[0] >= 400, "{finals:?}");
    assert_eq!(sim.busy("bob"), 0);
    let record = sim.record();
    assert_eq!(record.call_id, "icmp1");
    assert!(invites_to(&mut sim, BOB_1).is_empty(), "no retransmission");
}

#[test]
fn a_report_for_another_address_changes_nothing() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("icmp2"));
    let invite = invites_to(&mut sim, BOB_1).remove(0);
    let _ = sim.take(TRUNK);
    unreachable(&mut sim, "127.0.0.1:9");
    assert!(finals_to_trunk(&mut sim).is_empty());
    sim.deliver(BOB_1, &reply(&invite, 200, "b"));
    assert_eq!(finals_to_trunk(&mut sim), vec![200]);
}

#[test]
fn a_probe_to_a_vanished_phone_ends_the_call_at_once() {
    let mut sim = Sim::new(|cfg| cfg.liveness_timeout = Duration::from_secs(20));
    answered_call(&mut sim, "icmp3");
    let _ = sim.take(BOB_1);
    assert_eq!(sim.busy("bob"), 1);
    sim.advance_to(10.1);
    assert_eq!(sim.take_requests(BOB_1, Method::Options).len(), 1);
    unreachable(&mut sim, BOB_1);
    assert_eq!(sim.take_requests(TRUNK, Method::Bye).len(), 1);
    assert_eq!(sim.busy("bob"), 0, "free at once, not after 20 s");
}

#[test]
#[allow(clippy::disallowed_methods)] // an origin for fake instants
fn the_budget_refills_each_second() {
    let start = Instant::now();
    let mut budget = UnreachableBudget::default();
    for _ in 0..100 {
        assert!(budget.take(start));
    }
    assert!(!budget.take(start + Duration::from_millis(999)));
    assert!(budget.take(start + Duration::from_secs(1)));
}
