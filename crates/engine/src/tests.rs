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
use crate::call::CallCounts;
use sip::transaction::Transport;

const TRUNK: &str = "127.0.0.1:5070";
const BOB_1: &str = "127.0.0.1:5081";
const BOB_2: &str = "127.0.0.1:5082";
const ALICE: &str = "127.0.0.1:5083";

struct Sim {
    engine: Engine,
    presence: Arc<Presence>,
    workspace: WorkspaceReader,
    t0: Instant,
    now: Instant,
    sent: Vec<(SocketAddr, Message)>,
    events: Vec<Event>,
    media: Vec<media::MediaCommand>,
    /// The number of the last `Play` sent to each session.
    last_play: std::collections::HashMap<u64, u32>,
    /// The last `Output::Persist` asked for.
    persist: Option<u64>,
}

const T0_MS: i64 = 1_700_000_000_000;

/// Sales +15550100 with these users (in this order, so indices differ
/// between two calls of it) and this ring list; every user a member.
fn sales(users: &[&str], ring: &[&str], bob_max_calls: u32) -> Directory {
    let spec = WorkspaceSpec {
        domain: "sim.test".into(),
        seats: 5,
        trunks: vec![TrunkSpec {
            name: "carrier".into(),
            sources: vec!["127.0.0.1/32".into()],
            ..TrunkSpec::default()
        }],
        users: users
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
            members: users.iter().map(|u| u.to_string()).collect(),
            strategy: Strategy::Simultaneous,
            ring: ring.iter().map(|u| u.to_string()).collect(),
            ring_timeout_secs: Some(30),
            ..NumberSpec::default()
        }],
        ..Default::default()
    };
    Directory::from_workspace(spec, Path::new("sim")).unwrap()
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
        let directory = sales(&["alice", "bob"], &["alice", "bob"], bob_max_calls);
        Sim::with_directory(directory, tweak)
    }

    fn with_directory(directory: Directory, tweak: impl FnOnce(&mut EngineConfig)) -> Sim {
        let presence = Arc::new(Presence::new());
        let mut cfg = EngineConfig::new("sim.test");
        cfg.udp_addr = Some("127.0.0.1:5060".parse().unwrap());
        tweak(&mut cfg);
        // The one place a test reads the clock: an origin for fake instants.
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let engine = Engine::new(
            cfg,
            directory,
            Arc::clone(&presence),
            WallClock::new(t0, Timestamp::from_millisecond(T0_MS).unwrap()),
            IdGenerator::with_seed(42),
        );
        Sim {
            workspace: engine.workspace(),
            engine,
            presence,
            t0,
            now: t0,
            sent: Vec::new(),
            events: Vec::new(),
            media: Vec::new(),
            last_play: std::collections::HashMap::new(),
            persist: None,
        }
    }

    /// Signs a device in directly (the registrar has its own tests).
    fn sign_in(&self, user: &str, addr: &str) {
        let contact = format!("sip:{user}@{addr}");
        self.presence.user(user).update(T0_MS as u64, |list| {
            list.push(Binding {
                contact,
                expires_at_ms: T0_MS as u64 + 3_600_000,
                call_id: format!("reg-{addr}"),
                cseq: 1,
                source: addr.parse().unwrap(),
                transport: BindingTransport::Udp,
                instance: None,
                reg_id: None,
            })
        });
    }

    fn deliver(&mut self, from: &str, message: &Message) {
        let bytes = Bytes::from(message.encode());
        let input = Input::Receive {
            from: udp(from),
            bytes,
        };
        self.engine.handle_input(self.now, input);
        self.collect();
    }

    fn advance_to(&mut self, secs: f64) {
        let target = self.t0 + Duration::from_secs_f64(secs);
        // Fire every deadline on the way, in order, like the driver does.
        while let Some(at) = self.collect() {
            if at > target {
                break;
            }
            self.now = at.max(self.now);
            self.engine.handle_input(self.now, Input::Timeout);
        }
        self.now = target;
        self.engine.handle_input(self.now, Input::Timeout);
        self.collect();
    }

    /// Drains the engine's output; returns its next deadline.
    fn collect(&mut self) -> Option<Instant> {
        loop {
            match self.engine.poll_output() {
                Output::Transmit(t) => self
                    .sent
                    .push((t.to.addr, Message::parse(&t.bytes).unwrap())),
                Output::Event(e) => self.events.push(e),
                Output::Media(c) => {
                    if let media::MediaCommand::Play { session, play, .. } = &c {
                        self.last_play.insert(*session, *play);
                    }
                    self.media.push(c)
                }
                Output::Persist { through } => self.persist = Some(through),
                Output::Timeout(at) => return at,
            }
        }
    }

    /// The call records emitted so far, taken.
    fn records(&mut self) -> Vec<CallRecord> {
        let (records, rest): (Vec<_>, Vec<_>) = self
            .events
            .drain(..)
            .partition(|e| matches!(e, Event::CallEnded(_)));
        self.events = rest;
        records
            .into_iter()
            .filter_map(|e| match e {
                Event::CallEnded(r) => Some(*r),
                _ => None,
            })
            .collect()
    }

    /// The one record emitted since the last look.
    fn record(&mut self) -> CallRecord {
        let mut records = self.records();
        assert_eq!(records.len(), 1, "one record: {records:?}");
        records.remove(0)
    }

    fn calls_left(&self) -> CallCounts {
        self.engine.call_counts()
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

    fn at(&self) -> Timestamp {
        Timestamp::from_millisecond(T0_MS + (self.now - self.t0).as_millis() as i64).unwrap()
    }

    fn explain(&self) -> Vec<Option<routing::Gate>> {
        let ws = self.workspace.load();
        let number = routing::find_number(&ws.directory, "+15550100").unwrap();
        routing::explain(&ws.directory, &ws.presence, number, self.at())
            .verdicts(&ws.directory)
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
    assert_eq!(sim.calls_left(), CallCounts::default());
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
        sim.calls_left(),
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
    assert_eq!(sim.engine.stats(sim.now).transactions, 0);
    assert_eq!(sim.calls_left(), CallCounts::default());
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

// ---------------------------------------------------------------------------
// What the B2BUA did before the engine was reshaped and nothing checked:
// written first, to pass before and after the split.

fn trunk_invite_without_sdp(call_id: &str) -> Message {
    let raw = format!(
        "INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {TRUNK};branch=z9hG4bK-{call_id}\r\n\
         From: <sip:+15551230000@{TRUNK}>;tag=trunk-{call_id}\r\n\
         To: <sip:+15550100@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:trunk@{TRUNK}>\r\n\
         Max-Forwards: 70\r\n\r\n"
    );
    Message::parse(raw.as_bytes()).unwrap()
}

/// One side's view of an established dialog, to send requests in it.
struct Side {
    addr: &'static str,
    call_id: String,
    /// Our From (with our tag) and To (with theirs).
    from: String,
    to: String,
    target: String,
    cseq: u32,
}

impl Side {
    /// The trunk's side, from its INVITE and the 200 it got.
    fn caller(invite: &Message, ok: &Message) -> Side {
        Side {
            addr: TRUNK,
            call_id: invite.call_id().unwrap().to_string(),
            from: invite.header(HeaderName::From).unwrap().to_string(),
            to: ok.header(HeaderName::To).unwrap().to_string(),
            target: contact_uri(ok),
            cseq: 1,
        }
    }

    /// A phone's side, from the INVITE it got and the tag it answered with.
    fn phone(addr: &'static str, invite: &Message, tag: &str) -> Side {
        Side {
            addr,
            call_id: invite.call_id().unwrap().to_string(),
            from: format!("{};tag={tag}", invite.header(HeaderName::To).unwrap()),
            to: invite.header(HeaderName::From).unwrap().to_string(),
            target: contact_uri(invite),
            cseq: 100,
        }
    }

    fn request(&mut self, method: Method, body: &str) -> Message {
        self.cseq += 1;
        self.request_at(method, self.cseq, body)
    }

    fn request_at(&self, method: Method, cseq: u32, body: &str) -> Message {
        let mut m = Message::request(method.clone(), &self.target);
        m.push(
            HeaderName::Via,
            &format!(
                "SIP/2.0/UDP {};branch=z9hG4bK-{}-{}-{}",
                self.addr,
                self.call_id,
                method.as_str(),
                cseq
            ),
        );
        m.push(HeaderName::MaxForwards, "70");
        m.push(HeaderName::From, &self.from);
        m.push(HeaderName::To, &self.to);
        m.push(HeaderName::CallId, &self.call_id);
        m.push(HeaderName::CSeq, &format!("{cseq} {}", method.as_str()));
        m.push(HeaderName::Contact, &format!("<sip:peer@{}>", self.addr));
        if !body.is_empty() {
            m.push(HeaderName::ContentType, "application/sdp");
            m.set_body(Bytes::from(body.to_string()));
        }
        m
    }
}

fn contact_uri(m: &Message) -> String {
    m.values(HeaderName::Contact)
        .next()
        .and_then(sip::NameAddr::parse)
        .unwrap()
        .uri
        .to_string()
}

fn with_sdp(mut m: Message, sdp: &str) -> Message {
    m.push(HeaderName::ContentType, "application/sdp");
    m.set_body(Bytes::from(sdp.to_string()));
    m
}

/// The final statuses among `messages` (100 Trying left out).
fn statuses(messages: &[Message]) -> Vec<u16> {
    messages
        .iter()
        .filter_map(|m| m.status())
        .filter(|&s| s >= 200)
        .collect()
}

/// A trunk call answered by bob on BOB_1 and ACKed: the two sides' dialogs.
fn answered_call(sim: &mut Sim, call_id: &str) -> (Side, Side) {
    sim.sign_in("bob", BOB_1);
    let invite = trunk_invite(call_id);
    sim.deliver(TRUNK, &invite);
    let ib = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 200, "bob-tag"));
    assert_eq!(sim.take_requests(BOB_1, Method::Ack).len(), 1);
    let ok = sim
        .take(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    let caller = Side::caller(&invite, &ok);
    sim.deliver(TRUNK, &caller.request_at(Method::Ack, 1, ""));
    (caller, Side::phone(BOB_1, &ib, "bob-tag"))
}

#[test]
fn late_offer_the_device_offers_in_its_200_and_the_caller_answers_in_the_ack() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    let invite = trunk_invite_without_sdp("lo1");
    sim.deliver(TRUNK, &invite);
    let ib = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    assert!(ib.body().is_empty(), "no offer to pass on");
    sim.deliver(BOB_1, &with_sdp(reply(&ib, 200, "b"), "v=0\r\no=offer\r\n"));
    assert!(
        sim.take_requests(BOB_1, Method::Ack).is_empty(),
        "the device's ACK must carry the caller's answer: it waits for it"
    );
    let ok = sim
        .take(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    assert_eq!(
        &ok.body()[..],
        b"v=0\r\no=offer\r\n",
        "the offer reaches the caller"
    );
    let caller = Side::caller(&invite, &ok);
    let mut ack = caller.request_at(Method::Ack, 1, "v=0\r\no=answer\r\n");
    ack.remove_first_value(HeaderName::Contact);
    sim.deliver(TRUNK, &ack);
    let acks = sim.take_requests(BOB_1, Method::Ack);
    assert_eq!(acks.len(), 1);
    assert_eq!(&acks[0].body()[..], b"v=0\r\no=answer\r\n");
    assert_eq!(
        acks[0].header(HeaderName::ContentType),
        Some("application/sdp")
    );
    assert_eq!(sim.busy("bob"), 1);
}

#[test]
fn a_re_invite_while_another_is_pending_is_refused_with_491() {
    let mut sim = Sim::new(|_| {});
    let (mut caller, mut phone) = answered_call(&mut sim, "ri1");
    sim.deliver(TRUNK, &caller.request(Method::Invite, "v=0\r\no=hold\r\n"));
    let relayed = sim.take_requests(BOB_1, Method::Invite);
    assert_eq!(relayed.len(), 1);
    assert_eq!(&relayed[0].body()[..], b"v=0\r\no=hold\r\n");
    // Glare: the phone's own re-INVITE crosses the one still pending.
    sim.deliver(BOB_1, &phone.request(Method::Invite, "v=0\r\no=phone\r\n"));
    let to_phone = sim.take(BOB_1);
    assert_eq!(statuses(&to_phone), vec![491], "§14.1");
    assert!(sim.take_requests(TRUNK, Method::Invite).is_empty());
    // The pending one completes normally, ACK passed on with its body.
    sim.deliver(
        BOB_1,
        &with_sdp(reply(&relayed[0], 200, "bob-tag"), "v=0\r\no=held\r\n"),
    );
    let ok: Vec<Message> = sim
        .take(TRUNK)
        .into_iter()
        .filter(|m| m.status() == Some(200))
        .collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(&ok[0].body()[..], b"v=0\r\no=held\r\n");
    let mut ack = caller.request_at(Method::Ack, caller.cseq, "");
    ack.remove_first_value(HeaderName::Contact);
    sim.deliver(TRUNK, &ack);
    assert_eq!(sim.take_requests(BOB_1, Method::Ack).len(), 1);
    // Now a new re-INVITE from the phone is relayed.
    sim.deliver(BOB_1, &phone.request(Method::Invite, "v=0\r\no=phone2\r\n"));
    assert_eq!(sim.take_requests(TRUNK, Method::Invite).len(), 1);
}

#[test]
fn update_and_info_are_relayed_in_the_dialog_both_ways() {
    let mut sim = Sim::new(|_| {});
    let (mut caller, mut phone) = answered_call(&mut sim, "ui1");
    // INFO from the caller reaches the phone; its 200 comes back.
    let mut info = caller.request(Method::Info, "");
    info.push(HeaderName::ContentType, "application/dtmf-relay");
    info.set_body(Bytes::from_static(b"Signal=5\r\nDuration=160\r\n"));
    sim.deliver(TRUNK, &info);
    let relayed = sim.take_requests(BOB_1, Method::Info);
    assert_eq!(relayed.len(), 1);
    assert_eq!(&relayed[0].body()[..], b"Signal=5\r\nDuration=160\r\n");
    assert_eq!(
        relayed[0].header(HeaderName::ContentType),
        Some("application/dtmf-relay")
    );
    assert_eq!(relayed[0].call_id(), Some(phone.call_id.as_str()));
    sim.deliver(BOB_1, &reply(&relayed[0], 200, "bob-tag"));
    assert_eq!(statuses(&sim.take(TRUNK)), vec![200]);
    // UPDATE from the phone reaches the caller; a 488 comes back as 488.
    sim.deliver(BOB_1, &phone.request(Method::Update, "v=0\r\no=upd\r\n"));
    let relayed = sim.take_requests(TRUNK, Method::Update);
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0].call_id(), Some(caller.call_id.as_str()));
    assert_eq!(&relayed[0].body()[..], b"v=0\r\no=upd\r\n");
    sim.deliver(
        TRUNK,
        &response_to(&relayed[0], 488, "Not Acceptable Here", None, false),
    );
    assert_eq!(statuses(&sim.take(BOB_1)), vec![488]);
    assert_eq!(sim.busy("bob"), 1, "the call is still up");
}

#[test]
fn a_cancel_before_the_legs_first_provisional_waits_for_it() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    let invite = trunk_invite("cx1");
    sim.deliver(TRUNK, &invite);
    let ib = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    let cancel = cancel_of(&invite);
    sim.deliver(TRUNK, &cancel);
    let mut to_trunk = statuses(&sim.take(TRUNK));
    to_trunk.sort();
    assert_eq!(to_trunk, vec![200, 487], "CANCEL answered, INVITE ended");
    assert!(
        sim.take_requests(BOB_1, Method::Cancel).is_empty(),
        "§9.1: no CANCEL before a provisional response"
    );
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    let cancels = sim.take_requests(BOB_1, Method::Cancel);
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].call_id(), ib.call_id());
    sim.deliver(BOB_1, &reply(&ib, 487, "b"));
    assert_eq!(sim.take_requests(BOB_1, Method::Ack).len(), 1, "487 ACKed");
    assert_eq!(sim.busy("bob"), 0);
    sim.advance_to(40.0);
    assert_eq!(sim.calls_left(), CallCounts::default());
    assert_eq!(sim.engine.stats(sim.now).transactions, 0);
}

#[test]
fn a_stray_2xx_after_the_call_ended_is_acked_and_hung_up() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("st1"));
    let ib = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    sim.advance_to(30.0);
    assert_eq!(sim.take_requests(BOB_1, Method::Cancel).len(), 1);
    assert_eq!(sim.calls_left().ringing, 0, "the call failed with 480");
    // The phone was picked up as the CANCEL crossed: its 200 finds no call.
    sim.deliver(BOB_1, &reply(&ib, 200, "b"));
    let to_bob = sim.take(BOB_1);
    let methods: Vec<_> = to_bob.iter().filter_map(|m| m.method().cloned()).collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
    assert_eq!(to_bob[1].call_id(), ib.call_id());
    assert!(to_bob[1].header(HeaderName::To).unwrap().contains("tag=b"));
    // A retransmission of that 2xx is ACKed again, not hung up twice.
    sim.deliver(BOB_1, &reply(&ib, 200, "b"));
    let again: Vec<_> = sim
        .take(BOB_1)
        .iter()
        .filter_map(|m| m.method().cloned())
        .collect();
    assert_eq!(again, vec![Method::Ack]);
    assert_eq!(sim.busy("bob"), 0);
}

/// Found by the simulation (seed 0x5eed0019): a phone that answers after
/// its INVITE transaction gave up (Timer B, 32 s without a response) got
/// no ACK, kept the call up on its own, and refreshed it for ever.
#[test]
fn a_2xx_after_the_invite_gave_up_is_acked_and_ended_where_it_came_from() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("late-2xx"));
    let invite = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    // Nothing from the phone: the ring timeout cancels it at 30 s, and its
    // transaction is gone 32 s later (§9.1).
    sim.advance_to(100.0);
    let _ = sim.take(BOB_1);
    let mut ok = reply(&invite, 200, "late");
    // Its Contact names another address: the answer goes to the sender.
    ok.set(HeaderName::Contact, "<sip:bob@127.0.0.1:9999>");
    sim.deliver(BOB_1, &ok);
    let sent = sim.take(BOB_1);
    let methods: Vec<_> = sent.iter().filter_map(|m| m.method().cloned()).collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye], "{sent:?}");
    assert_eq!(sent[1].cseq().unwrap().seq, invite.cseq().unwrap().seq + 1);
    assert_eq!(sent[1].to_tag(), Some("late"));
    assert!(sim.take("127.0.0.1:9999").is_empty());
    // A copy of the 2xx gets them again; nothing is kept.
    sim.deliver(BOB_1, &ok);
    let again = sim.take(BOB_1);
    assert_eq!(again.len(), 2, "{again:?}");
    // A 2xx whose top Via is not ours answers nobody here: dropped.
    let mut forged = ok.clone();
    forged.set(
        HeaderName::Via,
        "SIP/2.0/UDP 127.0.0.1:7777;branch=z9hG4bKforged",
    );
    sim.deliver(BOB_1, &forged);
    assert!(sim.take(BOB_1).is_empty());
    assert_eq!(sim.engine.stats(sim.now).transactions, 0);
}

/// Found by the simulation (seed 0x5eed0042): a phone's re-INVITE is
/// relayed to the carrier, the carrier answers 200, and the phone never
/// ACKs (it crashed). The call ends, and the carrier's 2xx got no ACK at
/// all: it kept resending it. It gets the daemon's ACK, then the BYE.
#[test]
fn a_relayed_re_invite_its_sender_never_acks_is_acked_on_the_other_side_then_ended() {
    let mut sim = Sim::new(|_| {});
    let (_caller, mut phone) = answered_call(&mut sim, "reack");
    let _ = sim.take(TRUNK);
    sim.deliver(
        BOB_1,
        &phone.request(Method::Invite, "v=0\r\no=b 2 2 IN IP4 127.0.0.1\r\n"),
    );
    let relayed = sim
        .take_requests(TRUNK, Method::Invite)
        .pop()
        .expect("relayed");
    let mut ok = response_to(&relayed, 200, "OK", None, false);
    ok.push(HeaderName::Contact, &format!("<sip:trunk@{TRUNK}>"));
    sim.deliver(TRUNK, &ok);
    // bob gets the 200 and never ACKs it.
    sim.advance_to(40.0);
    let to_trunk = sim.take(TRUNK);
    let seq = relayed.cseq().unwrap().seq;
    let acked = to_trunk
        .iter()
        .any(|m| m.method() == Some(&Method::Ack) && m.cseq().is_some_and(|c| c.seq == seq));
    assert!(acked, "the carrier's 2xx is ACKed: {to_trunk:?}");
    assert!(to_trunk.iter().any(|m| m.method() == Some(&Method::Bye)));
    assert_eq!(sim.busy("bob"), 0);
}

#[test]
fn a_bye_crossing_a_re_invite_ends_the_call_and_leaves_nothing_behind() {
    let mut sim = Sim::new(|_| {});
    let (mut caller, mut phone) = answered_call(&mut sim, "bx1");
    sim.deliver(TRUNK, &caller.request(Method::Invite, "v=0\r\no=hold\r\n"));
    let relayed = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    // The phone hangs up instead of answering the re-INVITE.
    sim.deliver(BOB_1, &phone.request(Method::Bye, ""));
    assert_eq!(statuses(&sim.take(BOB_1)), vec![200]);
    let byes = sim.take_requests(TRUNK, Method::Bye);
    assert_eq!(byes.len(), 1);
    assert_eq!(sim.busy("bob"), 0);
    // The phone then refuses the re-INVITE of a dialog it ended.
    sim.deliver(BOB_1, &reply(&relayed, 481, "bob-tag"));
    assert_eq!(
        statuses(&sim.take(TRUNK)),
        vec![481],
        "the phone's answer, never a 2xx"
    );
    sim.deliver(TRUNK, &response_to(&byes[0], 200, "OK", None, false));
    sim.advance_to(40.0);
    assert_eq!(sim.calls_left(), CallCounts::default());
    assert_eq!(sim.engine.stats(sim.now).transactions, 0);
}

// ---------------------------------------------------------------------------
// Call records: one per call, for every way a call ends.

/// The CANCEL of `request` (§9.1): its Request-URI, top Via, From, To,
/// Call-ID and CSeq number.
fn cancel_of(request: &Message) -> Message {
    let mut cancel = Message::request(Method::Cancel, request.request_uri().unwrap());
    for name in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
    ] {
        cancel.push(name, request.header(name).unwrap());
    }
    let seq = request.cseq().unwrap().seq;
    cancel.push(HeaderName::CSeq, &format!("{seq} CANCEL"));
    cancel
}

fn trunk_invite_to(call_id: &str, number: &str) -> Message {
    let raw = trunk_invite(call_id).encode();
    let raw = String::from_utf8(raw.to_vec())
        .unwrap()
        .replace("sip:+15550100@", &format!("sip:{number}@"));
    Message::parse(raw.as_bytes()).unwrap()
}

fn gates(record: &CallRecord) -> Vec<(&str, routing::Gate)> {
    record
        .skipped
        .iter()
        .map(|s| (s.user.as_str(), s.gate))
        .collect()
}

#[test]
fn records_of_calls_refused_before_ringing_say_why_for_every_member() {
    let mut sim = Sim::new(|_| {});
    sim.deliver(TRUNK, &trunk_invite_to("r404", "+15559999"));
    let r = sim.record();
    assert_eq!(r.outcome, CallOutcome::Rejected { status: 404 });
    assert_eq!(
        (r.number.as_deref(), r.dialled.as_str()),
        (None, "+15559999")
    );
    assert_eq!(r.call_id, "r404");

    sim.deliver(TRUNK, &trunk_invite("r480"));
    let r = sim.record();
    assert_eq!(r.outcome, CallOutcome::Rejected { status: 480 });
    assert_eq!(r.number.as_deref(), Some("+15550100"));
    assert_eq!(r.caller, format!("sip:+15551230000@{TRUNK}"));
    assert!(r.rang.is_empty());
    use routing::Gate::*;
    assert_eq!(
        gates(&r),
        vec![("alice", NotSignedIn), ("bob", NotSignedIn)]
    );

    // Everyone routed is in a call: 486, and the record says busy.
    let (_caller, _phone) = answered_call(&mut sim, "up");
    sim.records();
    sim.deliver(TRUNK, &trunk_invite("r486"));
    assert_eq!(statuses(&sim.take(TRUNK)), vec![486]);
    let r = sim.record();
    assert_eq!(r.outcome, CallOutcome::Rejected { status: 486 });
    assert_eq!(gates(&r), vec![("alice", NotSignedIn), ("bob", Busy)]);
    assert_eq!(r.caller_status(), 486);
}

impl CallRecord {
    fn caller_status(&self) -> u16 {
        self.outcome.caller_status()
    }
}

#[test]
fn an_answered_call_records_who_answered_on_which_device_and_who_hung_up() {
    for (hang_up_side, by) in [("caller", Party::Caller), ("callee", Party::Callee)] {
        let mut sim = Sim::new(|_| {});
        sim.sign_in("alice", ALICE);
        let (mut caller, mut phone) = answered_call(&mut sim, "ok1");
        sim.take(ALICE);
        sim.advance_to(5.0);
        if hang_up_side == "caller" {
            sim.deliver(TRUNK, &caller.request(Method::Bye, ""));
        } else {
            sim.deliver(BOB_1, &phone.request(Method::Bye, ""));
        }
        let r = sim.record();
        assert_eq!(r.outcome, CallOutcome::Completed { hung_up_by: by });
        assert_eq!(r.answered_by_user(), Some("bob"));
        let answered = r.answered.unwrap();
        assert_eq!(answered, r.started, "answered at once in fake time");
        assert_eq!(r.ended.duration_since(answered).as_secs(), 5);
        let mut rang: Vec<_> = r
            .rang
            .iter()
            .map(|a| (a.user.as_str(), a.device.as_str(), a.outcome))
            .collect();
        rang.sort_by_key(|(user, _, _)| *user);
        assert_eq!(
            rang,
            vec![
                ("alice", "sip:alice@127.0.0.1:5083", LegOutcome::Cancelled),
                ("bob", "sip:bob@127.0.0.1:5081", LegOutcome::Answered),
            ]
        );
        assert!(r.skipped.is_empty());
        assert_eq!(sim.busy("bob"), 0);
    }
}

#[test]
fn a_call_that_nobody_takes_records_how_it_ended() {
    // The caller gives up.
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    let invite = trunk_invite("nb1");
    sim.deliver(TRUNK, &invite);
    let ib = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    sim.deliver(TRUNK, &cancel_of(&invite));
    let r = sim.record();
    assert_eq!(r.outcome, CallOutcome::CallerCancelled);
    assert_eq!(r.rang[0].outcome, LegOutcome::Cancelled);
    assert_eq!(r.answered, None);
    assert_eq!(r.caller_status(), 487);
    assert_eq!(gates(&r), vec![("alice", routing::Gate::NotSignedIn)]);

    // It rings out.
    sim.deliver(TRUNK, &trunk_invite("nb2"));
    let ib = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    sim.advance_to(30.0);
    let r = sim.record();
    assert_eq!(r.outcome, CallOutcome::NoAnswer { status: 480 });
    assert_eq!(r.ended.duration_since(r.started).as_secs(), 30);
    assert_eq!(r.rang[0].outcome, LegOutcome::Cancelled);

    // Every device refuses: busy.
    sim.sign_in("bob", BOB_2);
    sim.deliver(TRUNK, &trunk_invite("nb3"));
    for addr in [BOB_1, BOB_2] {
        let inv = sim.take_requests(addr, Method::Invite).pop().unwrap();
        sim.deliver(addr, &reply(&inv, 486, "b"));
    }
    let r = sim.record();
    assert_eq!(r.outcome, CallOutcome::Failed { status: 486 });
    let outcomes: Vec<_> = r.rang.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, vec![LegOutcome::Refused(486); 2]);

    // A device that never answers at all, and one that declines: 480.
    sim.deliver(TRUNK, &trunk_invite("nb4"));
    let i1 = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    sim.deliver(BOB_1, &reply(&i1, 603, "b"));
    sim.advance_to(30.0 + 30.0);
    let r = sim.record();
    assert_eq!(
        r.outcome,
        CallOutcome::NoAnswer { status: 480 },
        "the ring timeout came first"
    );
    let outcomes: Vec<_> = r.rang.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        vec![LegOutcome::Refused(603), LegOutcome::Cancelled]
    );
}

#[test]
fn a_caller_hanging_up_while_it_rings_and_a_device_that_never_answers_are_recorded() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.sign_in("bob", BOB_2);
    let invite = trunk_invite("hb1");
    sim.deliver(TRUNK, &invite);
    let i1 = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    sim.deliver(BOB_1, &reply(&i1, 180, "b1"));
    // BOB_2 never says anything; the caller sends BYE (no dialog yet on
    // its side, but the To tag of our 180 is the one it would use).
    let ringing = sim
        .take(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(180))
        .unwrap();
    let caller = Side::caller(&invite, &ringing);
    sim.deliver(TRUNK, &caller.request_at(Method::Bye, 2, ""));
    let finals = statuses(&sim.take(TRUNK));
    assert!(finals.contains(&200) && finals.contains(&487), "{finals:?}");
    let r = sim.record();
    assert_eq!(r.outcome, CallOutcome::CallerCancelled);
    let outcomes: Vec<_> = r.rang.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, vec![LegOutcome::Cancelled, LegOutcome::Cancelled]);

    // A call whose only device never answers at all (Timer B before the
    // ring timeout): no response is recorded.
    let mut sim = Sim::new(|cfg| cfg.timers.t1 = Duration::from_millis(100));
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("nr1"));
    sim.advance_to(6.5);
    let r = sim.record();
    assert_eq!(r.outcome, CallOutcome::Failed { status: 480 });
    assert_eq!(r.rang[0].outcome, LegOutcome::NoResponse);
}

#[test]
fn an_answered_call_the_daemon_ends_itself_says_so() {
    // The caller never ACKs the 200.
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("na1"));
    let ib = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 200, "b"));
    sim.advance_to(32.0);
    let r = sim.record();
    assert_eq!(r.outcome, CallOutcome::NotAcknowledged);
    assert_eq!(r.answered_by_user(), Some("bob"));

    // The maximum duration.
    let mut sim = Sim::new(|cfg| cfg.max_call_duration = Duration::from_secs(60));
    answered_call(&mut sim, "md1");
    sim.advance_to(60.0);
    let r = sim.record();
    assert_eq!(r.outcome, CallOutcome::MaxDuration);
    assert_eq!(r.ended.duration_since(r.answered.unwrap()).as_secs(), 60);
}

#[test]
fn a_device_answering_after_the_winner_is_recorded_as_too_late() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("alice", ALICE);
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("tl1"));
    let ia = sim.take_requests(ALICE, Method::Invite).pop().unwrap();
    let ib = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    sim.deliver(ALICE, &reply(&ia, 200, "a"));
    sim.deliver(BOB_1, &reply(&ib, 200, "b"));
    let bye = sim
        .take(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    let mut caller = Side::caller(&trunk_invite("tl1"), &bye);
    sim.deliver(TRUNK, &caller.request(Method::Bye, ""));
    let r = sim.record();
    let by_user: Vec<_> = r
        .rang
        .iter()
        .map(|a| (a.user.as_str(), a.outcome))
        .collect();
    assert!(by_user.contains(&("alice", LegOutcome::Answered)));
    assert!(by_user.contains(&("bob", LegOutcome::AnsweredTooLate)));
}

#[test]
fn busy_changes_are_events_with_the_users_count() {
    let mut sim = Sim::with_bob_max_calls(|_| {}, 2);
    let (mut caller, _) = answered_call(&mut sim, "bc1");
    let busy: Vec<_> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::BusyChanged {
                user,
                active_calls,
                busy,
            } => Some((user.to_string(), *active_calls, *busy)),
            _ => None,
        })
        .collect();
    assert_eq!(
        busy,
        vec![("bob".to_string(), 1, false)],
        "below max_calls 2"
    );
    sim.events.clear();
    sim.deliver(TRUNK, &caller.request(Method::Bye, ""));
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::BusyChanged { user, active_calls: 0, busy: false } if &**user == "bob"
    )));
}

// ---------------------------------------------------------------------------
// The workspace changes while calls are up.

#[test]
fn replacing_the_workspace_keeps_live_calls_and_routes_new_ones_by_the_new_one() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("alice", ALICE);
    // Call 1 answered by bob, call 2 still ringing alice and bob.
    let (mut caller1, _) = answered_call(&mut sim, "sw1");
    sim.take(ALICE);
    sim.deliver(TRUNK, &trunk_invite("sw2"));
    let ringing_alice = sim.take_requests(ALICE, Method::Invite).pop().unwrap();
    assert!(
        sim.take_requests(BOB_1, Method::Invite).is_empty(),
        "bob is busy"
    );
    sim.deliver(ALICE, &reply(&ringing_alice, 180, "a2"));
    sim.records();

    // The new workspace: carol first (every index moves), bob taken out of
    // the routing, carol added to it.
    let next = sales(&["carol", "alice", "bob"], &["carol", "alice"], 1);
    let reply = sim
        .engine
        .handle_command(sim.now, Command::ReplaceWorkspace(next))
        .unwrap();
    assert_eq!(reply, CommandReply::WorkspaceReplaced { calls_up: 2 });
    sim.sign_in("carol", BOB_2);

    // Call 2 keeps ringing by its old plan and can be answered.
    sim.deliver(ALICE, &reply_ok(&ringing_alice, "a2"));
    assert_eq!(sim.busy("alice"), 1);
    // A new call follows the new routing: carol rings, bob (not routed) and
    // alice (busy, carried over by id) do not.
    sim.deliver(TRUNK, &trunk_invite("sw3"));
    assert_eq!(sim.take_requests(BOB_2, Method::Invite).len(), 1);
    assert!(sim.take_requests(BOB_1, Method::Invite).is_empty());
    assert!(sim.take_requests(ALICE, Method::Invite).is_empty());
    let ws = sim.workspace.load();
    let number = routing::find_number(&ws.directory, "+15550100").unwrap();
    let verdicts: Vec<_> = routing::explain(&ws.directory, &ws.presence, number, sim.at())
        .verdicts(&ws.directory)
        .iter()
        .map(|v| (ws.directory.user(v.user).id.clone(), v.stopped_by))
        .collect();
    use routing::Gate::*;
    assert_eq!(
        verdicts,
        vec![
            ("carol".into(), None),
            ("alice".into(), Some(Busy)),
            ("bob".into(), Some(NotInRouting)),
        ],
        "alice busy (carried over by id), bob out of the routing"
    );

    // Call 1, routed with the old snapshot, ends and frees bob.
    sim.deliver(TRUNK, &caller1.request(Method::Bye, ""));
    assert_eq!(sim.busy("bob"), 0);
    let ended: Vec<_> = sim.records().into_iter().map(|r| r.call_id).collect();
    assert!(ended.contains(&"sw1".to_string()));
}

#[test]
fn a_workspace_with_another_domain_is_refused_and_nothing_changes() {
    let mut sim = Sim::new(|_| {});
    let other = WorkspaceSpec {
        domain: "other.test".into(),
        seats: 1,
        ..WorkspaceSpec::default()
    };
    let other = Directory::from_workspace(other, Path::new("x")).unwrap();
    let err = sim
        .engine
        .handle_command(sim.now, Command::ReplaceWorkspace(other))
        .unwrap_err();
    assert!(matches!(err, CommandError::DomainChanged { .. }));
    assert_eq!(sim.workspace.load().directory.users().len(), 2);
}

#[test]
fn stats_count_calls_and_transactions() {
    let mut sim = Sim::new(|_| {});
    let (mut caller, _) = answered_call(&mut sim, "st1");
    let CommandReply::Stats(stats) = sim.engine.handle_command(sim.now, Command::Stats).unwrap()
    else {
        panic!("stats");
    };
    assert_eq!(
        (stats.calls_answered, stats.calls_ringing, stats.legs),
        (1, 0, 1)
    );
    assert_eq!(stats.registered_devices, 1);
    assert!(stats.transactions > 0);
    sim.deliver(TRUNK, &caller.request(Method::Bye, ""));
    let stats = sim.engine.stats(sim.now);
    assert_eq!((stats.calls_ended, stats.calls_completed), (1, 1));
    assert_eq!(stats.calls_answered, 0);
}

fn reply_ok(request: &Message, tag: &str) -> Message {
    reply(request, 200, tag)
}

// ---------------------------------------------------------------------------
// Plans carried out: cascade, destinations, hours (issue: business hours).

const CAROL: &str = "127.0.0.1:5084";
const DAVE: &str = "127.0.0.1:5085";
const CARRIER: &str = "127.0.0.1:5099";

/// alice, bob, carol, dave; +15550100 routes `ring` with `strategy`, and
/// +15550200 rings dave. `tweak` edits the Sales spec.
fn line(strategy: Strategy, ring: &[&str], tweak: impl FnOnce(&mut NumberSpec)) -> Directory {
    let users = ["alice", "bob", "carol", "dave"];
    let mut sales = NumberSpec {
        number: "+15550100".into(),
        name: "Sales".into(),
        timezone: "UTC".into(),
        members: users.iter().map(|u| u.to_string()).collect(),
        strategy,
        ring: ring.iter().map(|u| u.to_string()).collect(),
        ..NumberSpec::default()
    };
    tweak(&mut sales);
    let dave = NumberSpec {
        number: "+15550200".into(),
        name: "Dave".into(),
        timezone: "UTC".into(),
        members: vec!["dave".into()],
        ring: vec!["dave".into()],
        ..NumberSpec::default()
    };
    let spec = WorkspaceSpec {
        domain: "sim.test".into(),
        seats: 10,
        trunks: vec![TrunkSpec {
            name: "carrier".into(),
            sources: vec!["127.0.0.1/32".into()],
            outbound: Some(directory::OutboundSpec {
                address: CARRIER.into(),
                username: Some("acct".into()),
                password: Some("secret".into()),
            }),
        }],
        users: users
            .iter()
            .map(|id| UserSpec {
                id: id.to_string(),
                name: id.to_string(),
                password: "pw".into(),
                ..UserSpec::default()
            })
            .collect(),
        numbers: vec![sales, dave],
        ..Default::default()
    };
    Directory::from_workspace(spec, Path::new("sim")).unwrap()
}

fn invites_to(sim: &mut Sim, addr: &str) -> Vec<Message> {
    sim.take_requests(addr, Method::Invite)
}

fn finals_to_trunk(sim: &mut Sim) -> Vec<u16> {
    statuses(&sim.take(TRUNK))
}

#[test]
fn cascade_rings_one_user_at_a_time_for_its_step_in_routing_order() {
    let dir = line(Strategy::Cascade, &["alice", "bob", "carol"], |n| {
        n.step_timeout_secs = Some(20)
    });
    let mut sim = Sim::with_directory(dir, |_| {});
    for (user, addr) in [("alice", ALICE), ("bob", BOB_1), ("carol", CAROL)] {
        sim.sign_in(user, addr);
    }
    sim.deliver(TRUNK, &trunk_invite("cs1"));
    let ia = invites_to(&mut sim, ALICE).pop().unwrap();
    assert!(
        invites_to(&mut sim, BOB_1).is_empty(),
        "never two users at once"
    );
    sim.deliver(ALICE, &reply(&ia, 180, "a"));
    sim.advance_to(19.9);
    assert!(invites_to(&mut sim, BOB_1).is_empty());
    sim.advance_to(20.0);
    assert_eq!(sim.take_requests(ALICE, Method::Cancel).len(), 1);
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    sim.deliver(ALICE, &reply(&ia, 487, "a"));
    sim.advance_to(40.0);
    assert_eq!(sim.take_requests(BOB_1, Method::Cancel).len(), 1);
    let ic = invites_to(&mut sim, CAROL).pop().unwrap();
    sim.deliver(CAROL, &reply(&ic, 200, "c"));
    assert_eq!(finals_to_trunk(&mut sim), vec![200]);
    assert_eq!(sim.busy("carol"), 1);
    // The default bound of a cascade: its steps added up (3 x 20 s).
    let ws = sim.workspace.load();
    assert_eq!(
        ws.directory.number(directory::NumberIdx(0)).ring_timeout,
        Duration::from_secs(60)
    );
}

#[test]
fn cascade_skips_whoever_is_busy_or_signed_out_when_their_turn_comes() {
    let dir = line(Strategy::Cascade, &["alice", "bob", "carol"], |_| {});
    let mut sim = Sim::with_directory(dir, |_| {});
    for (user, addr) in [("alice", ALICE), ("bob", BOB_1), ("carol", CAROL)] {
        sim.sign_in(user, addr);
    }
    sim.deliver(TRUNK, &trunk_invite("cs2"));
    let ia = invites_to(&mut sim, ALICE).pop().unwrap();
    sim.deliver(ALICE, &reply(&ia, 180, "a"));
    // While alice rings, bob takes another call and carol signs out.
    let ws = sim.workspace.load();
    let bob = directory::UserIdx(1);
    presence::Occupancy::take(
        &ws.presence,
        presence::UserRef {
            idx: bob,
            id: "bob",
        },
        99,
        u64::MAX,
    );
    sim.presence
        .user("carol")
        .update(T0_MS as u64, |list| list.clear());
    sim.advance_to(20.0);
    assert!(invites_to(&mut sim, BOB_1).is_empty(), "busy: skipped");
    assert!(
        invites_to(&mut sim, CAROL).is_empty(),
        "signed out: skipped"
    );
    assert_eq!(
        finals_to_trunk(&mut sim),
        vec![480],
        "nobody left: the destination at once, at 20 s"
    );
    let r = sim.record();
    assert_eq!(r.outcome, CallOutcome::NoAnswer { status: 480 });
    assert_eq!(r.rang.len(), 1);
}

#[test]
fn a_decline_moves_on_at_once_and_the_user_is_not_rung_again() {
    let dir = line(Strategy::Cascade, &["alice", "bob"], |n| {
        n.no_answer = Some(directory::DestinationSpec::Ring {
            users: vec!["alice".into(), "dave".into()],
            strategy: Strategy::Simultaneous,
            step_timeout_secs: None,
            ring_timeout_secs: Some(15),
        })
    });
    let mut sim = Sim::with_directory(dir, |_| {});
    for (user, addr) in [("alice", ALICE), ("bob", BOB_1), ("dave", DAVE)] {
        sim.sign_in(user, addr);
    }
    sim.deliver(TRUNK, &trunk_invite("dc1"));
    let ia = invites_to(&mut sim, ALICE).pop().unwrap();
    sim.advance_to(1.0);
    sim.take(ALICE); // the INVITE's retransmissions
    sim.deliver(ALICE, &reply(&ia, 603, "a"));
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 486, "b"));
    // The ring group: alice declined already, so only dave.
    assert!(
        invites_to(&mut sim, ALICE).is_empty(),
        "declined: not rung again"
    );
    let id = invites_to(&mut sim, DAVE).pop().unwrap();
    sim.deliver(DAVE, &reply(&id, 180, "d"));
    sim.advance_to(16.0);
    assert_eq!(
        sim.take_requests(DAVE, Method::Cancel).len(),
        1,
        "the group's 15 s bound"
    );
    assert_eq!(finals_to_trunk(&mut sim), vec![480]);
}

#[test]
fn simultaneous_with_every_leg_declined_follows_no_answer_at_once() {
    let dir = line(Strategy::Simultaneous, &["alice", "bob"], |n| {
        n.no_answer = Some(directory::DestinationSpec::Number {
            number: "+15550200".into(),
        })
    });
    let mut sim = Sim::with_directory(dir, |_| {});
    for (user, addr) in [("alice", ALICE), ("bob", BOB_1), ("dave", DAVE)] {
        sim.sign_in(user, addr);
    }
    sim.deliver(TRUNK, &trunk_invite("sd1"));
    for addr in [ALICE, BOB_1] {
        let i = invites_to(&mut sim, addr).pop().unwrap();
        sim.deliver(addr, &reply(&i, 486, "x"));
    }
    let id = invites_to(&mut sim, DAVE).pop().unwrap();
    assert!(
        id.header(HeaderName::From).unwrap().contains("(Dave)"),
        "the other number's line: {}",
        id.header(HeaderName::From).unwrap()
    );
    sim.deliver(DAVE, &reply(&id, 200, "d"));
    assert_eq!(finals_to_trunk(&mut sim), vec![200]);
}

#[test]
fn the_ring_timeout_then_the_destination() {
    let dir = line(Strategy::Simultaneous, &["alice"], |n| {
        n.ring_timeout_secs = Some(10);
        n.no_answer = Some(directory::DestinationSpec::Hangup { status: Some(486) });
    });
    let mut sim = Sim::with_directory(dir, |_| {});
    sim.sign_in("alice", ALICE);
    sim.deliver(TRUNK, &trunk_invite("rt1"));
    let ia = invites_to(&mut sim, ALICE).pop().unwrap();
    sim.deliver(ALICE, &reply(&ia, 180, "a"));
    sim.advance_to(9.9);
    assert!(finals_to_trunk(&mut sim).is_empty());
    sim.advance_to(10.0);
    assert_eq!(
        finals_to_trunk(&mut sim),
        vec![486],
        "the configured hangup status"
    );
    assert_eq!(sim.record().outcome, CallOutcome::NoAnswer { status: 486 });
}

/// Hours that are closed at the simulation's start (a Tuesday, 22:13 UTC).
fn closed_now() -> directory::HoursSpec {
    let mut hours = directory::HoursSpec::default();
    hours.days[1] = vec!["08:00-18:00".into()];
    hours
}

#[test]
fn a_closed_number_sends_the_call_to_outside_without_ringing_anyone() {
    let dir = line(Strategy::Simultaneous, &["alice", "bob"], |n| {
        n.hours = Some(closed_now());
        n.outside = Some(directory::DestinationSpec::Ring {
            users: vec!["dave".into()],
            strategy: Strategy::Cascade,
            step_timeout_secs: Some(20),
            ring_timeout_secs: Some(60),
        });
    });
    let mut sim = Sim::with_directory(dir, |_| {});
    for (user, addr) in [("alice", ALICE), ("bob", BOB_1), ("dave", DAVE)] {
        sim.sign_in(user, addr);
    }
    sim.deliver(TRUNK, &trunk_invite("cl1"));
    assert!(invites_to(&mut sim, ALICE).is_empty());
    assert!(invites_to(&mut sim, BOB_1).is_empty());
    assert_eq!(invites_to(&mut sim, DAVE).len(), 1, "the on-call person");

    // Without `outside`: hung up with 480, and nothing rang.
    let dir = line(Strategy::Simultaneous, &["alice"], |n| {
        n.hours = Some(closed_now())
    });
    let mut sim = Sim::with_directory(dir, |_| {});
    sim.sign_in("alice", ALICE);
    sim.deliver(TRUNK, &trunk_invite("cl2"));
    assert!(invites_to(&mut sim, ALICE).is_empty());
    assert_eq!(finals_to_trunk(&mut sim), vec![480]);
    let r = sim.record();
    assert_eq!(r.outcome, CallOutcome::Rejected { status: 480 });
    assert!(r.rang.is_empty());
}

/// `hops + 1` numbers, each sending its unanswered calls to the next; the
/// last hangs up with 486. Nobody is signed in, so each plan moves on.
fn chain(hops: usize) -> Directory {
    let numbers: Vec<NumberSpec> = (0..=hops)
        .map(|i| NumberSpec {
            number: format!("+155501{i:02}"),
            name: format!("N{i}"),
            timezone: "UTC".into(),
            members: vec!["alice".into()],
            ring: vec!["alice".into()],
            no_answer: Some(if i < hops {
                directory::DestinationSpec::Number {
                    number: format!("+155501{:02}", i + 1),
                }
            } else {
                directory::DestinationSpec::Hangup { status: Some(486) }
            }),
            ..NumberSpec::default()
        })
        .collect();
    let spec = WorkspaceSpec {
        domain: "sim.test".into(),
        seats: 1,
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
        numbers,
        ..Default::default()
    };
    Directory::from_workspace(spec, Path::new("sim")).unwrap()
}

#[test]
fn a_call_follows_at_most_eight_destinations_then_482() {
    // Eight `number` hops: the last number's own answer (486).
    let mut sim = Sim::with_directory(chain(8), |_| {});
    sim.deliver(TRUNK, &trunk_invite_to("lp8", "+15550100"));
    assert_eq!(finals_to_trunk(&mut sim), vec![486]);
    // Nine: one too many, 482.
    let mut sim = Sim::with_directory(chain(9), |_| {});
    sim.deliver(TRUNK, &trunk_invite_to("lp9", "+15550100"));
    assert_eq!(finals_to_trunk(&mut sim), vec![482]);
}

#[test]
fn a_leg_cut_by_its_step_that_picks_up_as_the_cancel_crosses_takes_the_call() {
    let dir = line(Strategy::Cascade, &["alice", "bob"], |_| {});
    let mut sim = Sim::with_directory(dir, |_| {});
    sim.sign_in("alice", ALICE);
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("lt1"));
    let ia = invites_to(&mut sim, ALICE).pop().unwrap();
    sim.deliver(ALICE, &reply(&ia, 180, "a"));
    sim.advance_to(20.0);
    assert_eq!(sim.take_requests(ALICE, Method::Cancel).len(), 1);
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    // alice picked up just as her step ended: she is on the line.
    sim.deliver(ALICE, &reply(&ia, 200, "a"));
    assert_eq!(finals_to_trunk(&mut sim), vec![200]);
    assert_eq!(sim.busy("alice"), 1);
    let cancel = sim.take_requests(BOB_1, Method::Cancel).pop().unwrap();
    assert_eq!(
        cancel.header(HeaderName::Reason),
        Some("SIP;cause=200;text=\"Call completed elsewhere\"")
    );
}

#[test]
fn records_name_who_declined_and_who_was_skipped_at_their_turn() {
    let dir = line(Strategy::Cascade, &["alice", "bob", "carol"], |_| {});
    let mut sim = Sim::with_directory(dir, |_| {});
    for (user, addr) in [("alice", ALICE), ("bob", BOB_1), ("carol", CAROL)] {
        sim.sign_in(user, addr);
    }
    sim.deliver(TRUNK, &trunk_invite("rd1"));
    let ia = invites_to(&mut sim, ALICE).pop().unwrap();
    // bob signs out while alice rings; alice then declines.
    sim.presence
        .user("bob")
        .update(T0_MS as u64, |list| list.clear());
    sim.deliver(ALICE, &reply(&ia, 603, "a"));
    let ic = invites_to(&mut sim, CAROL).pop().unwrap();
    sim.deliver(CAROL, &reply(&ic, 486, "c"));
    let r = sim.record();
    use routing::Gate::*;
    let mut gates = gates(&r);
    gates.sort();
    assert_eq!(
        gates,
        vec![
            ("alice", Declined),
            ("bob", NotSignedIn),
            ("carol", Declined),
            ("dave", NotSignedIn),
        ]
    );
}

#[test]
fn forward_goes_to_the_carrier_with_diversion_and_answers_its_challenge() {
    let dir = line(Strategy::Simultaneous, &["alice"], |n| {
        n.hours = Some(closed_now());
        n.outside = Some(directory::DestinationSpec::Forward {
            to: "+33612345678".into(),
            caller_id: directory::CallerId::Caller,
        });
    });
    let mut sim = Sim::with_directory(dir, |_| {});
    sim.sign_in("alice", ALICE);
    sim.deliver(TRUNK, &trunk_invite("fw1"));
    let first = invites_to(&mut sim, CARRIER).pop().unwrap();
    assert_eq!(first.request_uri(), Some("sip:+33612345678@127.0.0.1:5099"));
    let diversion = first
        .headers()
        .find(|(_, raw, _)| raw.eq_ignore_ascii_case("Diversion"))
        .map(|(_, _, v)| v);
    let diversion = diversion.expect("a Diversion header");
    assert!(
        diversion.contains("+15550100") && diversion.contains("reason=time-of-day"),
        "{diversion}"
    );
    assert!(
        first
            .header(HeaderName::From)
            .unwrap()
            .contains("+15551230000"),
        "the caller's number"
    );
    // The carrier wants credentials.
    let mut challenge = response_to(
        &first,
        407,
        "Proxy Authentication Required",
        Some("car"),
        false,
    );
    challenge.push(
        HeaderName::ProxyAuthenticate,
        &sip::auth::challenge("carrier.test", "n0nce", sip::auth::Algorithm::Md5, false),
    );
    sim.deliver(CARRIER, &challenge);
    let to_carrier = sim.take(CARRIER);
    assert!(
        to_carrier.iter().any(|m| m.method() == Some(&Method::Ack)),
        "the 407 is ACKed"
    );
    let second = to_carrier
        .iter()
        .find(|m| m.method() == Some(&Method::Invite))
        .expect("the INVITE again, with credentials");
    assert_eq!(second.cseq().unwrap().seq, 2);
    assert_eq!(second.call_id(), first.call_id());
    let creds =
        sip::auth::parse_credentials(second.header(HeaderName::ProxyAuthorization).unwrap())
            .unwrap();
    let ha1 = sip::auth::ha1(sip::auth::Algorithm::Md5, "acct", "carrier.test", "secret");
    assert!(sip::auth::verify(&creds, "INVITE", &ha1));
    sim.deliver(CARRIER, &reply(second, 200, "car"));
    assert_eq!(finals_to_trunk(&mut sim), vec![200]);
    assert!(invites_to(&mut sim, ALICE).is_empty());
}

#[test]
fn losing_legs_are_told_the_call_was_completed_elsewhere() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("alice", ALICE);
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("rs1"));
    let ia = invites_to(&mut sim, ALICE).pop().unwrap();
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    sim.deliver(ALICE, &reply(&ia, 200, "a"));
    let cancel = sim.take_requests(BOB_1, Method::Cancel).pop().unwrap();
    assert_eq!(
        cancel.header(HeaderName::Reason),
        Some("SIP;cause=200;text=\"Call completed elsewhere\"")
    );
    // A leg stopped by the ring timeout is not told so.
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("rs2"));
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    sim.advance_to(30.0);
    let cancel = sim.take_requests(BOB_1, Method::Cancel).pop().unwrap();
    assert_eq!(cancel.header(HeaderName::Reason), None);
}

#[test]
fn the_whole_cascade_is_bounded_by_the_ring_timeout() {
    let dir = line(Strategy::Cascade, &["alice", "bob", "carol"], |n| {
        n.step_timeout_secs = Some(20);
        n.ring_timeout_secs = Some(30);
    });
    let mut sim = Sim::with_directory(dir, |_| {});
    for (user, addr) in [("alice", ALICE), ("bob", BOB_1), ("carol", CAROL)] {
        sim.sign_in(user, addr);
    }
    sim.deliver(TRUNK, &trunk_invite("cb1"));
    let ia = invites_to(&mut sim, ALICE).pop().unwrap();
    sim.deliver(ALICE, &reply(&ia, 180, "a"));
    sim.advance_to(20.0);
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    sim.advance_to(29.9);
    assert!(finals_to_trunk(&mut sim).is_empty());
    sim.advance_to(30.0);
    assert_eq!(
        sim.take_requests(BOB_1, Method::Cancel).len(),
        1,
        "bob's step is cut at 30 s"
    );
    assert!(
        invites_to(&mut sim, CAROL).is_empty(),
        "carol's turn never comes"
    );
    assert_eq!(finals_to_trunk(&mut sim), vec![480]);
}

// ---------------------------------------------------------------------------
// SIP as carriers and phones speak it (the conformance issue, first items).

#[test]
fn early_media_the_first_18x_with_sdp_reaches_the_caller_with_it() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("alice", ALICE);
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("em1"));
    let ia = invites_to(&mut sim, ALICE).pop().unwrap();
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    // A bodiless 180 first: the caller hears it rings.
    sim.deliver(ALICE, &reply(&ia, 180, "a"));
    let to_trunk = sim.take(TRUNK);
    let ringing: Vec<_> = to_trunk
        .iter()
        .filter(|m| m.status() == Some(180))
        .collect();
    assert_eq!(ringing.len(), 1);
    assert!(ringing[0].body().is_empty());
    // bob's gateway plays an announcement: 183 with SDP goes through.
    sim.deliver(
        BOB_1,
        &with_sdp(reply(&ib, 183, "b"), "v=0\r\no=bob-early\r\n"),
    );
    let progress: Vec<_> = sim
        .take(TRUNK)
        .into_iter()
        .filter(|m| m.status() == Some(183))
        .collect();
    assert_eq!(progress.len(), 1);
    assert_eq!(&progress[0].body()[..], b"v=0\r\no=bob-early\r\n");
    assert_eq!(
        progress[0].header(HeaderName::ContentType),
        Some("application/sdp")
    );
    assert_eq!(
        progress[0].to_tag(),
        ringing[0].to_tag(),
        "one dialog with the caller"
    );
    // A later 18x with SDP from another leg does not replace it.
    sim.deliver(
        ALICE,
        &with_sdp(reply(&ia, 183, "a"), "v=0\r\no=alice-early\r\n"),
    );
    assert!(sim.take(TRUNK).iter().all(|m| m.status() != Some(183)));
    // alice answers: the caller gets her SDP in the 200.
    sim.deliver(
        ALICE,
        &with_sdp(reply(&ia, 200, "a"), "v=0\r\no=alice-answer\r\n"),
    );
    let ok = sim
        .take(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    assert_eq!(&ok.body()[..], b"v=0\r\no=alice-answer\r\n");
}

#[test]
fn a_bye_outside_any_dialog_gets_481() {
    let mut sim = Sim::new(|_| {});
    let raw = format!(
        "BYE sip:switchboard@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {TRUNK};branch=z9hG4bK-bye-notag\r\n\
         From: <sip:+15551230000@{TRUNK}>;tag=x1\r\nTo: <sip:+15550100@127.0.0.1>\r\n\
         Call-ID: no-such-call\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\n\r\n"
    );
    sim.deliver(TRUNK, &Message::parse(raw.as_bytes()).unwrap());
    assert_eq!(statuses(&sim.take(TRUNK)), vec![481]);
}

#[test]
fn options_for_a_number_not_in_the_workspace_gets_404() {
    let mut sim = Sim::new(|_| {});
    let options = |uri: &str, branch: &str| {
        let raw = format!(
            "OPTIONS {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {TRUNK};branch=z9hG4bK-{branch}\r\n\
             From: <sip:probe@{TRUNK}>;tag=o1\r\nTo: <{uri}>\r\n\
             Call-ID: opt-{branch}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n"
        );
        Message::parse(raw.as_bytes()).unwrap()
    };
    sim.deliver(TRUNK, &options("sip:+15559999@127.0.0.1", "o1"));
    assert_eq!(statuses(&sim.take(TRUNK)), vec![404]);
    for (uri, branch) in [
        ("sip:+15550100@127.0.0.1", "o2"),
        ("sip:127.0.0.1", "o3"),
        ("sip:alice@127.0.0.1", "o4"),
    ] {
        sim.deliver(TRUNK, &options(uri, branch));
        let answers = sim.take(TRUNK);
        assert_eq!(statuses(&answers), vec![200], "{uri}");
        assert!(answers[0].header(HeaderName::Allow).is_some());
    } // From elsewhere every user part gets the same 200: nothing to tell a
      // number, a user or nobody apart by.
    for (uri, branch) in [
        ("sip:+15559999@127.0.0.1", "o5"),
        ("sip:3416763534@127.0.0.1", "o6"),
        ("sip:alice@127.0.0.1", "o7"),
        ("sip:nobody@127.0.0.1", "o8"),
    ] {
        let raw = options(uri, branch).encode();
        let raw = String::from_utf8(raw.to_vec())
            .unwrap()
            .replace(TRUNK, "127.0.0.2:5070");
        sim.deliver("127.0.0.2:5070", &Message::parse(raw.as_bytes()).unwrap());
        assert_eq!(statuses(&sim.take("127.0.0.2:5070")), vec![200], "{uri}");
    }
}

#[test]
fn the_200_to_a_cancel_and_the_487_share_the_to_tag() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    let invite = trunk_invite("ct1");
    sim.deliver(TRUNK, &invite);
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 180, "b"));
    sim.take(TRUNK);
    sim.deliver(TRUNK, &cancel_of(&invite));
    let answers: Vec<Message> = sim
        .take(TRUNK)
        .into_iter()
        .filter(|m| m.status().is_some_and(|s| s >= 200))
        .collect();
    assert_eq!(answers.len(), 2);
    let ok = answers
        .iter()
        .find(|m| m.cseq().unwrap().method == "CANCEL")
        .unwrap();
    let terminated = answers.iter().find(|m| m.status() == Some(487)).unwrap();
    assert!(ok.to_tag().is_some());
    assert_eq!(ok.to_tag(), terminated.to_tag(), "§9.2");
}

#[test]
fn a_stateless_refusal_carries_a_to_tag_and_the_received_address() {
    let mut sim = Sim::new(|_| {});
    // A bad Content-Length: refused before any transaction exists.
    let raw = "OPTIONS sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK-stl;rport\r\n\
         From: <sip:probe@127.0.0.1>;tag=s1\r\nTo: <sip:127.0.0.1>\r\n\
         Call-ID: stateless-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\
         Require: foo-bar-ext\r\n\r\n";
    sim.deliver(TRUNK, &Message::parse(raw.as_bytes()).unwrap());
    let reply = sim
        .take(TRUNK)
        .pop()
        .expect("sent back to the source (rport)");
    assert_eq!(reply.status(), Some(420));
    assert!(reply.to_tag().is_some(), "§8.2.6.2");
    let via = reply.top_via().unwrap();
    assert_eq!(via.params.get("received").flatten(), Some("127.0.0.1"));
    assert_eq!(via.params.get("rport").flatten(), Some("5070"));
}

#[test]
fn options_with_max_forwards_zero_is_answered() {
    let mut sim = Sim::new(|_| {});
    let raw = format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {TRUNK};branch=z9hG4bK-mf0\r\n\
         From: <sip:probe@{TRUNK}>;tag=m0\r\nTo: <sip:127.0.0.1>\r\n\
         Call-ID: mf0\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 0\r\n\r\n"
    );
    sim.deliver(TRUNK, &Message::parse(raw.as_bytes()).unwrap());
    assert_eq!(statuses(&sim.take(TRUNK)), vec![200]);
}

#[test]
fn a_long_ringing_call_tells_the_caller_every_minute() {
    let dir = line(Strategy::Simultaneous, &["alice"], |n| {
        n.ring_timeout_secs = Some(200)
    });
    let mut sim = Sim::with_directory(dir, |_| {});
    sim.sign_in("alice", ALICE);
    sim.deliver(TRUNK, &trunk_invite("lr1"));
    let ia = invites_to(&mut sim, ALICE).pop().unwrap();
    sim.deliver(ALICE, &reply(&ia, 180, "a"));
    let ringing = |sim: &mut Sim| {
        sim.take(TRUNK)
            .iter()
            .filter(|m| m.status() == Some(180))
            .count()
    };
    assert_eq!(ringing(&mut sim), 1);
    sim.advance_to(59.0);
    assert_eq!(ringing(&mut sim), 0);
    sim.advance_to(60.0);
    assert_eq!(ringing(&mut sim), 1, "§13.3.1.1: at least once a minute");
    sim.advance_to(120.0);
    assert_eq!(ringing(&mut sim), 1);
}

#[test]
fn relayed_requests_count_max_forwards_down_and_stop_at_zero() {
    let mut sim = Sim::new(|_| {});
    let (mut caller, _) = answered_call(&mut sim, "mf1");
    let mut info = caller.request(Method::Info, "");
    info.remove_first_value(HeaderName::MaxForwards);
    info.push(HeaderName::MaxForwards, "9");
    sim.deliver(TRUNK, &info);
    let relayed = sim.take_requests(BOB_1, Method::Info).pop().unwrap();
    assert_eq!(relayed.max_forwards(), Some(8));
    let mut info = caller.request(Method::Info, "");
    info.remove_first_value(HeaderName::MaxForwards);
    info.push(HeaderName::MaxForwards, "0");
    sim.deliver(TRUNK, &info);
    assert_eq!(statuses(&sim.take(TRUNK)), vec![483]);
    assert!(sim.take_requests(BOB_1, Method::Info).is_empty());
}

#[test]
fn a_second_re_invite_from_the_same_side_gets_500_with_retry_after_and_old_cseqs_500() {
    let mut sim = Sim::new(|_| {});
    let (mut caller, _) = answered_call(&mut sim, "ri2");
    sim.deliver(TRUNK, &caller.request(Method::Invite, "v=0\r\no=1\r\n"));
    assert_eq!(sim.take_requests(BOB_1, Method::Invite).len(), 1);
    sim.deliver(TRUNK, &caller.request(Method::Invite, "v=0\r\no=2\r\n"));
    let answers: Vec<Message> = sim
        .take(TRUNK)
        .into_iter()
        .filter(|m| m.status().is_some_and(|s| s >= 200))
        .collect();
    assert_eq!(statuses(&answers), vec![500], "§14.2, not 491");
    let retry: u64 = answers[0]
        .header(HeaderName::RetryAfter)
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry <= 10);
    // A request older than the last one in the dialog: 500 (§12.2.2).
    let old = caller.request_at(Method::Info, 1, "");
    sim.deliver(TRUNK, &old);
    let answers = sim.take(TRUNK);
    assert_eq!(statuses(&answers), vec![500]);
    assert_eq!(
        answers
            .iter()
            .find(|m| m.status() == Some(500))
            .unwrap()
            .reason(),
        Some("CSeq Out Of Order")
    );
}

/// A REGISTER for `user` with the To and Request-URI naming `domain`,
/// answering the engine's challenge when `challenge` is given.
fn register(user: &str, domain: &str, cseq: u32, challenge: Option<&Message>) -> Message {
    let mut m = Message::request(Method::Register, &format!("sip:{domain}"));
    m.push(
        HeaderName::Via,
        &format!("SIP/2.0/UDP {ALICE};branch=z9hG4bK-reg-{cseq}"),
    );
    m.push(HeaderName::From, &format!("<sip:{user}@{domain}>;tag=r1"));
    m.push(HeaderName::To, &format!("<sip:{user}@{domain}>"));
    m.push(HeaderName::CallId, "reg-domain");
    m.push(HeaderName::CSeq, &format!("{cseq} REGISTER"));
    m.push(HeaderName::MaxForwards, "70");
    m.push(HeaderName::Contact, &format!("<sip:{user}@{ALICE}>"));
    m.push(HeaderName::Expires, "300");
    if let Some(challenge) = challenge {
        let line = challenge
            .header_lines(HeaderName::WwwAuthenticate)
            .find(|l| l.contains("MD5"))
            .unwrap();
        let parsed = sip::auth::parse_challenge(line).unwrap();
        let value = sip::auth::authorization(
            &parsed,
            user,
            "pw",
            "REGISTER",
            &format!("sip:{domain}"),
            "c0ffee",
        );
        m.push(HeaderName::Authorization, &value);
    }
    m
}

#[test]
fn the_registrar_refuses_a_domain_that_is_not_ours_with_404() {
    let mut sim = Sim::new(|_| {});
    // §10.3 step 1 comes before step 3: refused without a challenge.
    sim.deliver(ALICE, &register("alice", "example.com", 1, None));
    assert_eq!(statuses(&sim.take(ALICE)), vec![404]);
    assert!(!sim.presence.user("alice").is_signed_in(T0_MS as u64 + 1));
    // Our own domain is fine.
    sim.deliver(ALICE, &register("alice", "sim.test", 3, None));
    let challenge = sim.take(ALICE).pop().unwrap();
    sim.deliver(ALICE, &register("alice", "sim.test", 4, Some(&challenge)));
    let ok = sim.take(ALICE);
    assert_eq!(statuses(&ok), vec![200]);
    // §10.3 step 8: the registrar's clock, in RFC 1123 form (T0 is
    // 2023-11-14T22:13:20Z).
    assert_eq!(
        ok[0].header(HeaderName::Date),
        Some("Tue, 14 Nov 2023 22:13:20 GMT")
    );
}

#[test]
fn a_registers_200_waits_until_the_binding_is_on_disk() {
    let mut sim = Sim::new(|cfg| cfg.durable_registrations = true);
    sim.deliver(ALICE, &register("alice", "sim.test", 1, None));
    let challenge = sim.take(ALICE).pop().unwrap();
    let signed = register("alice", "sim.test", 2, Some(&challenge));
    sim.deliver(ALICE, &signed);
    // Bound in memory, but not acknowledged: the driver is asked to save.
    assert!(sim.take(ALICE).is_empty());
    assert!(sim.presence.user("alice").is_signed_in(T0_MS as u64 + 1));
    let first = sim.persist.take().expect("a save asked for");
    // A retransmission while the disk works is absorbed, not answered.
    sim.deliver(ALICE, &signed);
    assert!(sim.take(ALICE).is_empty());
    // A second phone's REGISTER joins the next batch.
    sim.deliver(ALICE, &register("bob", "sim.test", 3, None));
    let challenge = sim.take(ALICE).pop().unwrap();
    let mut bobs = register("bob", "sim.test", 4, Some(&challenge));
    bobs.set(HeaderName::CallId, "reg-bob");
    sim.deliver(ALICE, &bobs);
    let second = sim.persist.take().expect("a second save asked for");
    assert!(second > first);
    // The first batch is durable: only alice's 200 goes.
    sim.engine.handle_input(
        sim.now,
        Input::Persisted {
            through: first,
            saved: true,
        },
    );
    sim.collect();
    let ok = sim.take(ALICE);
    assert_eq!(statuses(&ok), vec![200]);
    assert_eq!(ok[0].call_id(), Some("reg-domain"));
    // Now the retransmission gets the same 200 from the transaction.
    sim.deliver(ALICE, &signed);
    assert_eq!(statuses(&sim.take(ALICE)), vec![200]);
    // The write of bob's batch failed: told to retry, never a false 200.
    sim.engine.handle_input(
        sim.now,
        Input::Persisted {
            through: second,
            saved: false,
        },
    );
    sim.collect();
    let refused = sim.take(ALICE);
    assert_eq!(statuses(&refused), vec![500]);
    assert_eq!(refused[0].header(HeaderName::RetryAfter), Some("5"));
    // Nothing is left waiting.
    sim.advance_to(120.0);
    assert_eq!(sim.engine.transaction_count(), 0);
}

#[test]
fn an_answered_call_is_announced_so_a_crash_cannot_lose_it() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("up1"));
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    assert!(!sim
        .events
        .iter()
        .any(|e| matches!(e, Event::CallAnswered(_))));
    sim.deliver(BOB_1, &reply(&ib, 200, "bob-tag"));
    let up: Vec<&CallRecord> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CallAnswered(r) => Some(r.as_ref()),
            _ => None,
        })
        .collect();
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].outcome, CallOutcome::Interrupted);
    assert_eq!(up[0].answered_by_user(), Some("bob"));
    assert_eq!(up[0].call_id, "up1");
    assert_eq!(Some(up[0].ended), up[0].answered);
}

#[test]
fn a_phones_bye_waits_for_the_callers_ack() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    let invite = trunk_invite("bw1");
    sim.deliver(TRUNK, &invite);
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 200, "bob-tag"));
    let ok = sim
        .take(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    let mut phone = Side::phone(BOB_1, &ib, "bob-tag");
    sim.deliver(BOB_1, &phone.request(Method::Bye, ""));
    assert_eq!(statuses(&sim.take(BOB_1)), vec![200]);
    assert!(
        sim.take_requests(TRUNK, Method::Bye).is_empty(),
        "§15: no BYE before the caller's ACK"
    );
    let caller = Side::caller(&invite, &ok);
    let mut ack = caller.request_at(Method::Ack, 1, "");
    ack.remove_first_value(HeaderName::Contact);
    sim.deliver(TRUNK, &ack);
    assert_eq!(sim.take_requests(TRUNK, Method::Bye).len(), 1);
    assert_eq!(
        sim.record().outcome,
        CallOutcome::Completed {
            hung_up_by: Party::Callee
        }
    );
    assert_eq!(sim.busy("bob"), 0);
}

#[test]
fn a_relayed_re_invite_whose_2xx_is_never_acked_ends_the_call() {
    let mut sim = Sim::new(|_| {});
    let (mut caller, _) = answered_call(&mut sim, "rn1");
    sim.advance_to(1.0);
    sim.take(TRUNK);
    sim.deliver(TRUNK, &caller.request(Method::Invite, "v=0\r\no=hold\r\n"));
    let relayed = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    sim.deliver(
        BOB_1,
        &with_sdp(reply(&relayed, 200, "bob-tag"), "v=0\r\no=held\r\n"),
    );
    // The trunk never ACKs that 200.
    sim.advance_to(1.0 + 32.0);
    assert_eq!(sim.take_requests(TRUNK, Method::Bye).len(), 1);
    assert_eq!(sim.take_requests(BOB_1, Method::Bye).len(), 1);
    assert_eq!(sim.busy("bob"), 0);
    assert_eq!(sim.calls_left().answered, 0, "the call does not wedge");
}

#[test]
fn cancelling_a_pending_re_invite_cancels_it_on_the_other_side() {
    let mut sim = Sim::new(|_| {});
    let (mut caller, _) = answered_call(&mut sim, "rc1");
    let reinvite = caller.request(Method::Invite, "v=0\r\no=move\r\n");
    sim.deliver(TRUNK, &reinvite);
    let relayed = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    sim.deliver(BOB_1, &reply(&relayed, 180, "bob-tag"));
    sim.take(TRUNK);
    let cancel = cancel_of(&reinvite);
    sim.deliver(TRUNK, &cancel);
    assert_eq!(statuses(&sim.take(TRUNK)), vec![200]);
    let relayed_cancel = sim
        .take_requests(BOB_1, Method::Cancel)
        .pop()
        .expect("§9.2");
    assert_eq!(relayed_cancel.call_id(), relayed.call_id());
    sim.deliver(BOB_1, &reply(&relayed, 487, "bob-tag"));
    assert_eq!(statuses(&sim.take(TRUNK)), vec![487]);
    assert_eq!(sim.busy("bob"), 1, "the call goes on");
}

#[test]
fn a_second_2xx_from_another_dialog_behind_the_leg_is_acked_and_ended_on_its_own() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite("f2"));
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(BOB_1, &reply(&ib, 200, "first"));
    assert_eq!(sim.take_requests(BOB_1, Method::Ack).len(), 1);
    // A forking proxy behind bob's contact: a second phone answers too.
    sim.deliver(BOB_1, &reply(&ib, 200, "second"));
    let to_bob = sim.take(BOB_1);
    let ack = to_bob
        .iter()
        .find(|m| m.method() == Some(&Method::Ack))
        .unwrap();
    assert_eq!(ack.to_tag(), Some("second"), "ACKed on its own dialog");
    let bye = to_bob
        .iter()
        .find(|m| m.method() == Some(&Method::Bye))
        .unwrap();
    assert_eq!(bye.to_tag(), Some("second"), "and ended");
    assert_eq!(sim.busy("bob"), 1, "the first dialog is the call");
    // Its 2xx again (our ACK was lost): ACKed again, but not BYEd twice.
    sim.deliver(BOB_1, &reply(&ib, 200, "second"));
    let to_bob = sim.take(BOB_1);
    let methods: Vec<_> = to_bob.iter().filter_map(|m| m.method().cloned()).collect();
    assert_eq!(methods, [Method::Ack], "one BYE per dialog");
}

#[test]
fn update_and_info_travel_in_the_early_dialog_both_ways() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    let invite = trunk_invite("ed1");
    sim.deliver(TRUNK, &invite);
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    // A phone that says Trying first (no tag), then rings.
    sim.deliver(BOB_1, &reply(&ib, 100, "bob-early"));
    sim.deliver(BOB_1, &reply(&ib, 183, "bob-early"));
    let progress = sim
        .take(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(180))
        .unwrap();
    // The phone sends INFO (DTMF) before it answers: it reaches the caller.
    let mut phone = Side::phone(BOB_1, &ib, "bob-early");
    let mut info = phone.request(Method::Info, "");
    info.push(HeaderName::ContentType, "application/dtmf-relay");
    info.set_body(Bytes::from_static(b"Signal=1\r\nDuration=100\r\n"));
    sim.deliver(BOB_1, &info);
    let relayed = sim
        .take_requests(TRUNK, Method::Info)
        .pop()
        .expect("RFC 6086 early INFO");
    assert_eq!(relayed.call_id(), invite.call_id());
    assert_eq!(
        relayed.from_tag(),
        progress.to_tag(),
        "our tag of the early dialog"
    );
    sim.deliver(TRUNK, &response_to(&relayed, 200, "OK", None, false));
    assert_eq!(statuses(&sim.take(BOB_1)), vec![200]);
    // The caller sends UPDATE in the early dialog: it reaches the one leg.
    let mut caller = Side::caller(&invite, &progress);
    caller.target = "sip:switchboard@127.0.0.1:5060".to_string();
    sim.deliver(
        TRUNK,
        &caller.request(Method::Update, "v=0\r\no=early-update\r\n"),
    );
    let update = sim
        .take_requests(BOB_1, Method::Update)
        .pop()
        .expect("RFC 3311 early UPDATE");
    assert_eq!(update.call_id(), ib.call_id());
    assert_eq!(update.to_tag(), Some("bob-early"));
    sim.deliver(BOB_1, &response_to(&update, 200, "OK", None, false));
    assert_eq!(statuses(&sim.take(TRUNK)), vec![200]);
}

#[test]
fn in_a_late_offer_call_the_losing_legs_ack_answers_its_offer() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("alice", ALICE);
    sim.sign_in("bob", BOB_1);
    sim.deliver(TRUNK, &trunk_invite_without_sdp("lo2"));
    let ia = invites_to(&mut sim, ALICE).pop().unwrap();
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    sim.deliver(
        ALICE,
        &with_sdp(reply(&ia, 200, "a"), "v=0\r\nm=audio 40000 RTP/AVP 0\r\n"),
    );
    sim.deliver(
        BOB_1,
        &with_sdp(reply(&ib, 200, "b"), "v=0\r\nm=audio 41000 RTP/AVP 0 8\r\n"),
    );
    let to_bob = sim.take(BOB_1);
    let ack = to_bob
        .iter()
        .find(|m| m.method() == Some(&Method::Ack))
        .unwrap();
    assert_eq!(ack.header(HeaderName::ContentType), Some("application/sdp"));
    let body = std::str::from_utf8(ack.body()).unwrap();
    assert!(
        body.contains("m=audio 0 RTP/AVP 0 8"),
        "every stream refused: {body}"
    );
    assert!(to_bob.iter().any(|m| m.method() == Some(&Method::Bye)));
}

#[test]
fn a_trunks_asserted_identity_is_shown_and_privacy_honoured() {
    let mut sim = Sim::new(|_| {});
    sim.sign_in("bob", BOB_1);
    let mut invite = trunk_invite("pai1");
    invite.push(
        HeaderName::PAssertedIdentity,
        "\"Acme Corp\" <sip:+15557770000@carrier.invalid>",
    );
    sim.deliver(TRUNK, &invite);
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    let from = ib.header(HeaderName::From).unwrap();
    assert!(
        from.contains("Acme Corp (Sales)") && from.contains("sip:+15557770000@"),
        "{from}"
    );
    assert!(
        ib.header(HeaderName::PAssertedIdentity).is_none(),
        "identity headers stay on the trunk's side"
    );
    let mut private = trunk_invite("pai2");
    private.push(
        HeaderName::PAssertedIdentity,
        "<sip:+15557770000@carrier.invalid>",
    );
    private.push(HeaderName::Privacy, "id");
    sim.deliver(TRUNK, &private);
    let ib = invites_to(&mut sim, BOB_1).pop().unwrap();
    let from = ib.header(HeaderName::From).unwrap();
    assert!(
        from.contains("Anonymous (Sales)")
            && from.contains("sip:anonymous@")
            && !from.contains("7770000"),
        "{from}"
    );
}

#[test]
fn a_cancel_of_a_re_invite_waits_for_the_other_sides_provisional() {
    let mut sim = Sim::new(|_| {});
    let (mut caller, _) = answered_call(&mut sim, "rc2");
    let reinvite = caller.request(Method::Invite, "v=0\r\no=move\r\n");
    sim.deliver(TRUNK, &reinvite);
    let relayed = sim.take_requests(BOB_1, Method::Invite).pop().unwrap();
    let cancel = cancel_of(&reinvite);
    sim.deliver(TRUNK, &cancel);
    assert!(
        sim.take_requests(BOB_1, Method::Cancel).is_empty(),
        "§9.1: not before a provisional"
    );
    sim.deliver(BOB_1, &reply(&relayed, 180, "bob-tag"));
    assert_eq!(sim.take_requests(BOB_1, Method::Cancel).len(), 1);
}

mod reliable;

#[test]
fn a_device_registered_over_two_flows_rings_once_over_the_newer_one() {
    let mut sim = Sim::new(|_| {});
    let instance = "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>";
    for (addr, reg_id, expires) in [(BOB_1, 1, 3_000_000), (BOB_2, 2, 3_600_000)] {
        sim.presence.user("bob").update(T0_MS as u64, |list| {
            list.push(Binding {
                contact: format!("sip:bob@{addr}"),
                expires_at_ms: T0_MS as u64 + expires,
                call_id: format!("reg-{addr}"),
                cseq: 1,
                source: addr.parse().unwrap(),
                transport: BindingTransport::Udp,
                instance: Some(instance.into()),
                reg_id: Some(reg_id),
            })
        });
    }
    sim.deliver(TRUNK, &trunk_invite("flows"));
    assert!(invites_to(&mut sim, BOB_1).is_empty());
    assert_eq!(invites_to(&mut sim, BOB_2).len(), 1, "RFC 5626: one flow");
}
mod answer;
mod input_fuzz;
mod liveness;
mod lost;
mod outbound;
mod overload;
mod redirect;
mod session_timer;
mod simulation;
mod unreachable;
