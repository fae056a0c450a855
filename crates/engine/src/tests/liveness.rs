//! Sides that vanish without a BYE, in simulated time: every half
//! `liveness_timeout` each side of an answered call gets an in-dialog
//! OPTIONS; a side that does not answer by the next round (or answers 481)
//! is gone, and the call ends with a BYE to the other side.

use super::*;

/// An answered trunk call to bob (on BOB_1) with a 20 s liveness timeout.
fn answered(call_id: &str) -> Sim {
    let mut sim = Sim::new(|cfg| cfg.liveness_timeout = Duration::from_secs(20));
    answered_call(&mut sim, call_id);
    let _ = sim.take(BOB_1);
    assert_eq!(sim.busy("bob"), 1);
    sim
}

/// Answers every OPTIONS `addr` got with `status`.
fn answer_probes(sim: &mut Sim, addr: &str, status: u16) -> usize {
    let probes = sim.take_requests(addr, Method::Options);
    for probe in &probes {
        let answer = response_to(probe, status, "X", None, false);
        sim.deliver(addr, &answer);
    }
    probes.len()
}

#[test]
fn sides_that_answer_their_probes_keep_the_call_up() {
    let mut sim = answered("live1");
    for round in 1..=6 {
        sim.advance_to(10.0 * f64::from(round) + 0.2);
        assert_eq!(
            answer_probes(&mut sim, TRUNK, 200),
            1,
            "round {round}: the carrier"
        );
        // A phone that does not do OPTIONS in a dialog still answers.
        assert_eq!(
            answer_probes(&mut sim, BOB_1, 405),
            1,
            "round {round}: the phone"
        );
    }
    assert_eq!(sim.busy("bob"), 1, "still on the call after a minute");
    assert!(sim.take_requests(TRUNK, Method::Bye).is_empty());
}

#[test]
fn a_phone_that_vanishes_is_noticed_within_the_liveness_timeout() {
    let mut sim = answered("live2");
    sim.advance_to(10.2);
    assert_eq!(answer_probes(&mut sim, TRUNK, 200), 1);
    // bob's phone is gone: its probe goes unanswered (retransmitted).
    assert!(!sim.take_requests(BOB_1, Method::Options).is_empty());
    sim.advance_to(20.2);
    assert_eq!(
        sim.take_requests(TRUNK, Method::Bye).len(),
        1,
        "the carrier is told"
    );
    assert_eq!(sim.busy("bob"), 0, "bob is free within 20 s");
    let record = sim
        .records()
        .into_iter()
        .find(|r| r.call_id == "live2")
        .unwrap();
    assert_eq!(
        record.outcome,
        CallOutcome::Completed {
            hung_up_by: Party::Callee
        }
    );
}

#[test]
fn a_481_to_a_probe_ends_the_call_at_once() {
    let mut sim = answered("live3");
    sim.advance_to(10.2);
    answer_probes(&mut sim, BOB_1, 200);
    // The carrier lost the dialog (it restarted): 481.
    assert_eq!(answer_probes(&mut sim, TRUNK, 481), 1);
    assert_eq!(sim.take_requests(BOB_1, Method::Bye).len(), 1);
    assert_eq!(sim.busy("bob"), 0);
}
