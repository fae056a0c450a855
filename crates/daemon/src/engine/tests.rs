//! The B2BUA under a manual clock and a simulated network: every instant is
//! `t0 + d`, nothing sleeps, and 30 s of ringing or 32 s of waiting for an
//! ACK run in microseconds.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use directory::{NumberSpec, Strategy, TrunkSpec, UserSpec, WorkspaceSpec};
use presence::{Binding, BindingTransport};
use sip::build::response_to;

use super::*;

const TRUNK: &str = "127.0.0.1:5070";
const BOB_1: &str = "127.0.0.1:5081";
const BOB_2: &str = "127.0.0.1:5082";
const ALICE: &str = "127.0.0.1:5083";

struct Sim {
    engine: Engine,
    presence: Arc<Presence>,
    workspace: Arc<ArcSwap<Workspace>>,
    t0: Instant,
    now: Instant,
    sent: Vec<(SocketAddr, Message)>,
}

fn udp(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
    }
}

impl Sim {
    fn new(tweak: impl FnOnce(&mut EngineConfig)) -> Sim {
        Sim::with_bob_max_calls(tweak, 1)
    }

    fn with_bob_max_calls(tweak: impl FnOnce(&mut EngineConfig), bob_max_calls: u32) -> Sim {
        let spec = WorkspaceSpec {
            domain: "sim.test".into(),
            seats: 5,
            trunks: vec![TrunkSpec {
                name: "carrier".into(),
                sources: vec!["127.0.0.1/32".into()],
            }],
            users: ["alice", "bob"]
                .iter()
                .map(|id| UserSpec {
                    id: id.to_string(),
                    name: id.to_string(),
                    password: "pw".into(),
                    max_calls: if *id == "bob" { bob_max_calls } else { 1 },
                    ..UserSpec::default()
                })
                .collect(),
            numbers: vec![NumberSpec {
                number: "+15550100".into(),
                name: "Sales".into(),
                timezone: "UTC".into(),
                members: vec!["alice".into(), "bob".into()],
                strategy: Strategy::Simultaneous,
                ring: vec!["alice".into(), "bob".into()],
                ring_timeout_secs: 30,
            }],
        };
        let directory = Directory::from_workspace(spec, Path::new("sim")).unwrap();
        let presence = Arc::new(Presence::new());
        let workspace = Arc::new(ArcSwap::from_pointee(Workspace::new(directory, &presence)));
        let mut cfg = EngineConfig::new("sim.test");
        cfg.udp_addr = Some("127.0.0.1:5060".parse().unwrap());
        tweak(&mut cfg);
        let t0 = Instant::now();
        let engine = Engine::new(
            cfg,
            Arc::clone(&workspace),
            Arc::clone(&presence),
            WallClock::new(t0, 1_700_000_000_000),
            IdGenerator::with_seed(42),
        );
        Sim {
            engine,
            presence,
            workspace,
            t0,
            now: t0,
            sent: Vec::new(),
        }
    }

    /// Signs a device in directly (the registrar has its own tests).
    fn sign_in(&self, user: &str, addr: &str) {
        let contact = format!("sip:{user}@{addr}");
        self.presence.user(user).update(1_700_000_000_000, |list| {
            list.push(Binding {
                contact,
                expires_at_ms: 1_700_000_000_000 + 3_600_000,
                call_id: format!("reg-{addr}"),
                cseq: 1,
                source: addr.parse().unwrap(),
                transport: BindingTransport::Udp,
                instance: None,
            })
        });
    }

    fn deliver(&mut self, from: &str, message: &Message) {
        let bytes = Bytes::from(message.encode());
        self.engine.handle_datagram(self.now, udp(from), bytes);
        self.collect();
    }

    fn advance_to(&mut self, secs: f64) {
        let target = self.t0 + Duration::from_secs_f64(secs);
        // Fire every deadline on the way, in order, like the driver does.
        while let Some(at) = self.engine.poll_timeout() {
            if at > target {
                break;
            }
            self.now = at.max(self.now);
            self.engine.handle_timeout(self.now);
            self.collect();
        }
        self.now = target;
        self.engine.handle_timeout(self.now);
        self.collect();
    }

    fn collect(&mut self) {
        while let Some(t) = self.engine.poll_transmit() {
            self.sent
                .push((t.to.addr, Message::parse(&t.bytes).unwrap()));
        }
    }

    /// Takes what was sent to `addr` so far.
    fn take(&mut self, addr: &str) -> Vec<Message> {
        let addr: SocketAddr = addr.parse().unwrap();
        let (mine, rest): (Vec<_>, Vec<_>) = self.sent.drain(..).partition(|(a, _)| *a == addr);
        self.sent = rest;
        mine.into_iter().map(|(_, m)| m).collect()
    }

    fn take_requests(&mut self, addr: &str, method: Method) -> Vec<Message> {
        self.take(addr)
            .into_iter()
            .filter(|m| m.method() == Some(&method))
            .collect()
    }

    fn busy(&self, user: &str) -> u32 {
        self.presence.user(user).active_calls()
    }

    fn explain(&self) -> Vec<Option<routing::Gate>> {
        let ws = self.workspace.load();
        let number = routing::find_number(&ws.directory, "+15550100").unwrap();
        routing::explain(
            &ws.directory,
            &ws.presence,
            number,
            self.engine.now_unix_ms(self.now),
        )
        .into_iter()
        .map(|v| v.stopped_by)
        .collect()
    }
}

fn trunk_invite(call_id: &str) -> Message {
    let raw = format!(
        "INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {TRUNK};branch=z9hG4bK-{call_id}\r\n\
         From: <sip:+15551230000@{TRUNK}>;tag=trunk-{call_id}\r\n\
         To: <sip:+15550100@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:trunk@{TRUNK}>\r\n\
         Max-Forwards: 70\r\n\
         Content-Type: application/sdp\r\n\r\n\
         v=0\r\n"
    );
    Message::parse(raw.as_bytes()).unwrap()
}

fn reply(request: &Message, status: u16, tag: &str) -> Message {
    let mut r = response_to(request, status, "X", Some(tag), false);
    // The phone answers from the contact it registered.
    r.push(
        HeaderName::Contact,
        &format!("<{}>", request.request_uri().unwrap()),
    );
    r
}

#[test]
fn caller_that_never_acks_is_hung_up_after_64_t1_and_the_user_is_freed() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("c1"));
    let invite = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    sim.deliver(BOB_1, &reply(&invite, 180, "b1"));
    sim.deliver(BOB_1, &reply(&invite, 200, "b1"));
    assert_eq!(sim.take_requests(BOB_1, Method::Ack).len(), 1);
    assert_eq!(sim.busy("bob"), 1);
    assert_eq!(
        sim.explain(),
        vec![Some(routing::Gate::NotSignedIn), Some(routing::Gate::Busy)]
    );

    // The 2xx goes out again at 0.5, 1.5, 3.5 ... while no ACK comes.
    sim.advance_to(4.0);
    let oks = sim
        .take(TRUNK)
        .into_iter()
        .filter(|m| m.status() == Some(200))
        .count();
    assert_eq!(oks, 4, "first send plus retransmits at 0.5, 1.5, 3.5 s");
    sim.advance_to(31.9);
    assert!(sim.take_requests(BOB_1, Method::Bye).is_empty());
    assert_eq!(sim.busy("bob"), 1);
    sim.advance_to(32.0);
    assert_eq!(sim.take_requests(BOB_1, Method::Bye).len(), 1);
    assert_eq!(sim.take_requests(TRUNK, Method::Bye).len(), 1);
    assert_eq!(sim.busy("bob"), 0);
    assert_eq!(sim.engine.call_counts(), CallCounts::default());
}

#[test]
fn ring_timeout_fires_at_its_time_cancels_the_legs_and_answers_480() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.sign_in("bob", BOB_2);
    sim.deliver(TRUNK, &trunk_invite("c2"));
    let i1 = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    let i2 = sim.take_requests(BOB_2, Method::Invite).pop().unwrap();
    sim.deliver(BOB_1, &reply(&i1, 180, "b1"));
    // BOB_2 never answers at all: it may only be cancelled after a 1xx.
    sim.advance_to(29.9);
    assert!(!sim
        .take(TRUNK)
        .iter()
        .any(|m| m.status().is_some_and(|s| s >= 200)));
    sim.advance_to(30.0);
    let finals: Vec<u16> = sim
        .take(TRUNK)
        .iter()
        .filter_map(|m| m.status())
        .filter(|&s| s >= 200)
        .collect();
    assert_eq!(finals, vec![480]);
    assert_eq!(sim.take_requests(BOB_1, Method::Cancel).len(), 1);
    assert!(sim.take_requests(BOB_2, Method::Cancel).is_empty());
    // Its late 180 is answered with CANCEL even though the call is gone.
    sim.deliver(BOB_2, &reply(&i2, 180, "b2"));
    assert_eq!(sim.take_requests(BOB_2, Method::Cancel).len(), 1);
}

#[test]
fn a_device_answering_after_the_winner_gets_ack_and_bye() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("alice", ALICE);
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("c3"));
    let ia = sim.take_requests(ALICE, Method::Invite).pop().unwrap();
    let ib = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    sim.deliver(ALICE, &reply(&ia, 180, "a"));
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    assert_eq!(
        sim.take(TRUNK)
            .iter()
            .filter(|m| m.status() == Some(180))
            .count(),
        1,
        "180 once"
    );
    sim.deliver(ALICE, &reply(&ia, 200, "a"));
    assert_eq!(sim.take_requests(BOB_1, Method::Cancel).len(), 1);
    // The CANCEL crossed bob's 200: bob is ACKed and hung up, never busy.
    sim.deliver(BOB_1, &reply(&ib, 200, "b"));
    let to_bob = sim.take(BOB_1);
    assert!(to_bob.iter().any(|m| m.method() == Some(&Method::Ack)));
    assert!(to_bob.iter().any(|m| m.method() == Some(&Method::Bye)));
    assert_eq!((sim.busy("alice"), sim.busy("bob")), (1, 0));
}

#[test]
fn a_user_who_answers_one_call_stops_ringing_for_the_others() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("c4"));
    sim.deliver(TRUNK, &trunk_invite("c5"));
    let invites = sim.take_requests(BOB_1, Method::Invite);
    assert_eq!(invites.len(), 2);
    for (i, inv) in invites.iter().enumerate() {
        sim.deliver(BOB_1, &reply(inv, 180, &format!("t{i}")));
    }
    sim.deliver(BOB_1, &reply(&invites[0], 200, "t0"));
    let cancels = sim.take_requests(BOB_1, Method::Cancel);
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].call_id(), invites[1].call_id());
    // The cancelled leg's 487 fails the other call with 486: bob is busy.
    sim.deliver(BOB_1, &reply(&invites[1], 487, "t1"));
    let finals: Vec<u16> = sim
        .take(TRUNK)
        .iter()
        .filter_map(|m| m.status())
        .filter(|&s| s >= 200)
        .collect();
    assert_eq!(finals, vec![200, 486]);
}

#[test]
fn maximum_call_duration_hangs_up_both_sides() {
    let mut sim = Sim::new(|cfg| cfg.max_call_duration = Duration::from_secs(60));
    sim.sign_in("bob", BOB_1);
    let invite = trunk_invite("c6");
    sim.deliver(TRUNK, &invite);
    let ib = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 200, "b"));
    let ok = sim
        .take(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    let mut ack = Message::request(Method::Ack, "sip:switchboard@127.0.0.1:5060");
    ack.push(
        HeaderName::Via,
        &format!("SIP/2.0/UDP {TRUNK};branch=z9hG4bK-ack6"),
    );
    ack.push(HeaderName::From, invite.header(HeaderName::From).unwrap());
    ack.push(HeaderName::To, ok.header(HeaderName::To).unwrap());
    ack.push(HeaderName::CallId, "c6");
    ack.push(HeaderName::CSeq, "1 ACK");
    sim.deliver(TRUNK, &ack);
    sim.advance_to(59.0);
    assert_eq!(sim.busy("bob"), 1);
    assert!(
        sim.take_requests(TRUNK, Method::Bye).is_empty(),
        "the ACK stopped the 2xx and no BYE yet"
    );
    sim.advance_to(60.0);
    assert_eq!(sim.take_requests(TRUNK, Method::Bye).len(), 1);
    assert_eq!(sim.take_requests(BOB_1, Method::Bye).len(), 1);
    assert_eq!(sim.busy("bob"), 0);
    assert_eq!(
        sim.engine.call_counts(),
        CallCounts::default(),
        "no call or timer left behind"
    );
}

#[test]
fn retransmitted_invite_is_absorbed_not_forked_twice() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    let invite = trunk_invite("c7");
    sim.deliver(TRUNK, &invite);
    sim.deliver(TRUNK, &invite);
    assert_eq!(sim.take_requests(BOB_1, Method::Invite).len(), 1);
    let trying = sim
        .take(TRUNK)
        .iter()
        .filter(|m| m.status() == Some(100))
        .count();
    assert_eq!(
        trying, 2,
        "the retransmission is answered with the last response"
    );
}

#[test]
fn identifiers_repeat_under_a_seeded_generator() {
    let run = || {
        let mut sim = Sim::new(|_| {});
        sim.sign_in("bob", BOB_1);
        sim.deliver(TRUNK, &trunk_invite("c8"));
        sim.take_requests(BOB_1, Method::Invite)
            .pop()
            .unwrap()
            .encode()
    };
    assert_eq!(run(), run());
}

#[test]
fn a_device_that_goes_silent_after_ringing_leaves_no_transaction_behind() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("c9"));
    let invite = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    sim.deliver(BOB_1, &reply(&invite, 180, "b1"));
    // Ring timeout at 30 s sends CANCEL; the device never answers anything.
    sim.advance_to(30.0);
    assert_eq!(sim.take_requests(BOB_1, Method::Cancel).len(), 1);
    // 64*T1 after the CANCEL (§9.1) everything is gone, the 480's ACK wait too.
    sim.advance_to(30.0 + 64.0 * 0.5 + 1.0);
    assert_eq!(sim.engine.transaction_count(), 0);
    assert_eq!(sim.engine.call_counts(), CallCounts::default());
}

#[test]
fn a_user_allowed_two_calls_keeps_ringing_for_the_second() {
    let mut sim = Sim::with_bob_max_calls(|_| {}, 2);
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("c10"));
    sim.deliver(TRUNK, &trunk_invite("c11"));
    let invites = sim.take_requests(BOB_1, Method::Invite);
    assert_eq!(invites.len(), 2);
    for (i, inv) in invites.iter().enumerate() {
        sim.deliver(BOB_1, &reply(inv, 180, &format!("t{i}")));
    }
    sim.deliver(BOB_1, &reply(&invites[0], 200, "t0"));
    assert!(
        sim.take_requests(BOB_1, Method::Cancel).is_empty(),
        "one call of two: the other keeps ringing"
    );
    sim.deliver(BOB_1, &reply(&invites[1], 200, "t1"));
    assert_eq!(sim.busy("bob"), 2);
    let oks = sim
        .take(TRUNK)
        .into_iter()
        .filter(|m| m.status() == Some(200))
        .count();
    assert_eq!(oks, 2);
}

/// Sans-IO only: these documentation addresses never reach a socket.
#[test]
fn a_private_contact_registered_from_a_public_address_is_called_at_the_source() {
    let sim = Sim::new(|_| {});
    let binding = |contact: &str, source: &str| Binding {
        contact: contact.into(),
        expires_at_ms: u64::MAX,
        call_id: "n".into(),
        cseq: 1,
        source: source.parse().unwrap(),
        transport: BindingTransport::Udp,
        instance: None,
    };
    let natted = sim
        .engine
        .binding_peer(&binding("sip:bob@10.0.0.5:5060", "203.0.113.7:40000"))
        .unwrap();
    assert_eq!(natted.addr, "203.0.113.7:40000".parse().unwrap());
    // A separate registering client on loopback: the Contact is right.
    let local = sim
        .engine
        .binding_peer(&binding("sip:bob@127.0.0.1:5081", "127.0.0.1:5090"))
        .unwrap();
    assert_eq!(local.addr, "127.0.0.1:5081".parse().unwrap());
}
