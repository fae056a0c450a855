//! A phone's stream connection closing during a call, in simulated time:
//! the call ends at once (BYE to the other side, busy released) instead of
//! when the other side hangs up, and a leg ringing over it fails.

use super::*;

/// bob signed in over TCP connection 5 from BOB_1.
fn bob_over_tcp(sim: &Sim) {
    sim.presence.user("bob").update(T0_MS as u64, |list| {
        list.push(Binding {
            contact: format!("sip:bob@{BOB_1};transport=tcp"),
            expires_at_ms: T0_MS as u64 + 3_600_000,
            call_id: "reg-tcp".into(),
            cseq: 1,
            source: BOB_1.parse().unwrap(),
            transport: BindingTransport::Tcp {
                connection: Some(5),
            },
            instance: None,
            reg_id: None,
        })
    });
}

#[test]
fn an_answered_call_ends_when_the_phones_connection_closes() {
    let mut sim = Sim::new(|_| {});
    bob_over_tcp(&sim);
    let invite = trunk_invite("lost1");
    sim.deliver(TRUNK, &invite);
    let ib = invites_to(&mut sim, BOB_1)
        .pop()
        .expect("bob rings over TCP");
    sim.deliver(BOB_1, &reply(&ib, 200, "b"));
    let ok = sim
        .take(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    let caller = Side::caller(&invite, &ok);
    sim.deliver(TRUNK, &caller.request_at(Method::Ack, 1, ""));
    assert_eq!(sim.busy("bob"), 1);
    sim.engine
        .handle_input(sim.now, Input::ConnectionClosed { connection: 5 });
    sim.collect();
    assert_eq!(sim.take_requests(TRUNK, Method::Bye).len(), 1);
    assert_eq!(sim.busy("bob"), 0, "free for the next call");
    sim.advance_to(120.0);
    assert_eq!(
        sim.engine.stats(sim.now).transactions,
        0,
        "nothing left behind"
    );
    let record = sim
        .records()
        .into_iter()
        .find(|r| r.call_id == "lost1")
        .unwrap();
    assert_eq!(
        record.outcome,
        CallOutcome::Completed {
            hung_up_by: Party::Callee
        }
    );
    assert_eq!(
        (sim.calls_left().ringing, sim.calls_left().answered),
        (0, 0)
    );
}

#[test]
fn a_leg_ringing_over_a_closed_connection_fails_at_once() {
    let mut sim = Sim::new(|_| {});
    bob_over_tcp(&sim);
    sim.deliver(TRUNK, &trunk_invite("lost2"));
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    let _ = sim.take(TRUNK);
    sim.engine
        .handle_input(sim.now, Input::ConnectionClosed { connection: 5 });
    sim.collect();
    // bob was the only one ringing: the caller hears 480 now, not after
    // the ring timeout.
    assert!(statuses(&sim.take(TRUNK)).contains(&480));
    assert_eq!(
        (sim.calls_left().ringing, sim.calls_left().answered),
        (0, 0)
    );
    // Nothing is left behind: the leg's transaction went with the
    // connection (in Proceeding no timer would ever have ended it).
    sim.advance_to(120.0);
    assert_eq!(sim.engine.stats(sim.now).transactions, 0);
}
