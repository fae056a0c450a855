//! Overload, in simulated time: past `overload_transactions` live
//! transactions new INVITEs get 503 with Retry-After (statelessly), new
//! REGISTERs half later, while the calls up keep their BYEs; below
//! the threshold again, calls are taken.

use super::*;

#[test]
fn past_the_threshold_new_calls_are_shed_and_calls_up_go_on() {
    let mut sim = Sim::new(|cfg| cfg.overload_transactions = 4);
    sim.sign_in("bob", BOB_1);
    // One call up (its INVITE transactions linger for Timer L/M).
    let (mut caller, _phone) = answered_call(&mut sim, "ov1");
    // More calls ring until the table is past the threshold.
    for i in 0..3 {
        sim.deliver(TRUNK, &trunk_invite(&format!("ov-ring-{i}")));
    }
    let _ = sim.take(TRUNK);
    let before = sim.engine.stats(sim.now).transactions;
    assert!(before >= 4, "{before} transactions");
    let refused = sim.engine.stats(sim.now).overload_refused;
    // A new call: 503 with Retry-After, and no transaction for it.
    sim.deliver(TRUNK, &trunk_invite("ov-shed"));
    let shed = sim.take(TRUNK);
    assert_eq!(statuses(&shed), vec![503]);
    assert_eq!(shed[0].header(HeaderName::RetryAfter), Some("5"));
    assert_eq!(sim.engine.stats(sim.now).transactions, before);
    assert_eq!(sim.engine.stats(sim.now).overload_refused, refused + 1);
    // The call up still hangs up normally.
    sim.deliver(TRUNK, &caller.request(Method::Bye, ""));
    assert!(statuses(&sim.take(TRUNK)).contains(&200));
    assert_eq!(sim.take_requests(BOB_1, Method::Bye).len(), 1);
    // Once the transactions are gone, calls are taken again.
    sim.advance_to(200.0);
    let _ = sim.take(TRUNK);
    sim.deliver(TRUNK, &trunk_invite("ov-after"));
    assert!(!statuses(&sim.take(TRUNK)).contains(&503));
}

#[test]
fn past_max_calls_new_calls_get_503_and_are_counted() {
    let mut sim = Sim::new(|cfg| cfg.max_calls = 2);
    sim.sign_in("bob", BOB_1);
    sim.sign_in("alice", ALICE);
    sim.deliver(TRUNK, &trunk_invite("mc1"));
    sim.deliver(TRUNK, &trunk_invite("mc2"));
    let _ = sim.take(TRUNK);
    assert_eq!(sim.engine.stats(sim.now).calls_ringing, 2);
    sim.deliver(TRUNK, &trunk_invite("mc3"));
    let shed = sim.take(TRUNK);
    assert_eq!(statuses(&shed), vec![503]);
    assert_eq!(shed[0].header(HeaderName::RetryAfter), Some("5"));
    let stats = sim.engine.stats(sim.now);
    assert_eq!(stats.calls_ringing, 2, "no call made for it");
    assert_eq!(stats.limit_hits.get(crate::Limit::Calls), 1);
    assert_eq!(stats.limit_hits.get(crate::Limit::Transactions), 0);
    // A call ends: there is room again.
    sim.deliver(TRUNK, &cancel_of(&trunk_invite("mc1")));
    let _ = sim.take(TRUNK);
    sim.deliver(TRUNK, &trunk_invite("mc4"));
    assert!(!statuses(&sim.take(TRUNK)).contains(&503));
}

#[test]
fn a_call_rings_at_most_max_legs_per_call_devices() {
    let mut sim = Sim::new(|cfg| cfg.max_legs_per_call = 1);
    sim.sign_in("alice", ALICE);
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("ml1"));
    let rung = [ALICE, BOB_1]
        .iter()
        .map(|addr| sim.take_requests(addr, Method::Invite).len())
        .sum::<usize>();
    assert_eq!(rung, 1, "one device of the two");
    let stats = sim.engine.stats(sim.now);
    assert_eq!(stats.legs, 1);
    assert_eq!(stats.limit_hits.get(crate::Limit::LegsPerCall), 1);
}

#[test]
fn every_limit_hit_counts_and_each_limit_is_logged_apart_once_a_minute() {
    use crate::limits::{Limit, LimitHits};
    let t0 = Sim::new(|_| {}).now;
    let mut hits = LimitHits::default();
    hits.hit(t0, Limit::Calls, 10, 10);
    hits.hit(t0 + Duration::from_secs(1), Limit::Calls, 10, 10);
    assert_eq!(
        hits.logged_at(Limit::Calls),
        Some(t0),
        "not again within a minute"
    );
    hits.hit(t0 + Duration::from_secs(1), Limit::LegsPerCall, 5, 5);
    assert_eq!(
        hits.logged_at(Limit::LegsPerCall),
        Some(t0 + Duration::from_secs(1))
    );
    hits.hit(t0 + Duration::from_secs(61), Limit::Calls, 10, 10);
    assert_eq!(
        hits.logged_at(Limit::Calls),
        Some(t0 + Duration::from_secs(61))
    );
    let counts = hits.counts();
    assert_eq!(counts.get(Limit::Calls), 3);
    assert_eq!(counts.get(Limit::LegsPerCall), 1);
    assert_eq!(counts.get(Limit::Transactions), 0);
}

/// bob on +15550100, and a carrier whose sources are all of 127/8 (two
/// of its addresses: a flood from one, calls from the other).
fn two_carrier_addresses() -> Directory {
    let spec = WorkspaceSpec {
        domain: "sim.test".into(),
        seats: 5,
        trunks: vec![TrunkSpec {
            name: "carrier".into(),
            sources: vec!["127.0.0.0/8".into()],
            ..TrunkSpec::default()
        }],
        users: vec![UserSpec {
            id: "bob".into(),
            name: "bob".into(),
            password: "pw".into(),
            ..UserSpec::default()
        }],
        numbers: vec![NumberSpec {
            number: "+15550100".into(),
            name: "Sales".into(),
            timezone: "UTC".into(),
            members: vec!["bob".into()],
            ring: vec!["bob".into()],
            ..NumberSpec::default()
        }],
        ..Default::default()
    };
    Directory::from_workspace(spec, Path::new("sim")).unwrap()
}

#[test]
fn past_the_threshold_the_source_filling_the_table_is_shed_first() {
    const FLOOD: &str = "127.0.0.9:5070";
    let mut sim = Sim::with_directory(two_carrier_addresses(), |cfg| {
        cfg.overload_transactions = 80;
    });
    sim.sign_in("bob", BOB_1);
    // The flood fills the table past 80 (a server and a leg transaction
    // per call), then is refused.
    let mut shed = 0;
    for i in 0..60 {
        sim.deliver(FLOOD, &trunk_invite(&format!("flood-{i}")));
        shed += statuses(&sim.take(FLOOD))
            .iter()
            .filter(|&&s| s == 503)
            .count();
    }
    let live = sim.engine.stats(sim.now).transactions;
    assert!((80..90).contains(&live), "{live}");
    assert_eq!(shed, 60 - 40, "the flood is shed past the threshold");
    // Another address of the carrier still gets its calls through...
    for i in 0..4 {
        sim.deliver(TRUNK, &trunk_invite(&format!("legit-{i}")));
        assert!(!statuses(&sim.take(TRUNK)).contains(&503), "call {i}");
    }
    // ...until the table is a quarter past the threshold: then everyone
    // waits.
    for i in 4..14 {
        sim.deliver(TRUNK, &trunk_invite(&format!("legit-{i}")));
    }
    assert!(sim.engine.stats(sim.now).transactions >= 100);
    sim.deliver(TRUNK, &trunk_invite("legit-late"));
    assert_eq!(statuses(&sim.take(TRUNK)).last(), Some(&503));
}
