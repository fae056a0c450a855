//! The engine's input path: a stream of datagrams from several sources
//! (the trunk, two signed-in phones, strangers over IPv4 and IPv6) into one
//! engine, with a manual clock moved between them.
//!
//! The input is a list of records: one byte picks the source, two bytes
//! (little-endian) say how many milliseconds pass before the datagram, two
//! more its length, then its bytes. A panic is a finding; so is a message
//! the engine sends that does not parse, and a transaction still alive ten
//! minutes after the last datagram (every transaction ends by its timers).

#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use directory::{Directory, NumberSpec, OutboundSpec, Strategy, TrunkSpec, UserSpec, WorkspaceSpec};
use engine::{Engine, EngineConfig, Input, Output, WallClock};
use libfuzzer_sys::fuzz_target;
use presence::{Binding, BindingTransport, Presence};
use sip::ids::IdGenerator;
use sip::transaction::{Peer, Transport};
use sip::Message;

const SOURCES: [&str; 6] = [
    "127.0.0.1:5070", // the trunk
    "127.0.0.1:5081", // bob's phone
    "127.0.0.1:5083", // alice's phone
    "127.0.0.2:5090", // a stranger
    "127.0.0.1:5099", // the carrier behind the trunk's outbound side
    "[::1]:5099",
];

const T0_MS: i64 = 1_700_000_000_000;

fn directory() -> Directory {
    let user = |id: &str, ext: &str| UserSpec {
        id: id.into(),
        name: id.into(),
        password: "pw".into(),
        extension: Some(ext.into()),
        ..UserSpec::default()
    };
    let spec = WorkspaceSpec {
        domain: "fuzz.test".into(),
        seats: 5,
        trunks: vec![TrunkSpec {
            name: "carrier".into(),
            sources: vec!["127.0.0.1/32".into()],
            outbound: Some(OutboundSpec {
                address: "127.0.0.1:5099".into(),
                username: Some("acct".into()),
                password: Some("secret".into()),
            }),
        }],
        users: vec![user("alice", "101"), user("bob", "102")],
        numbers: vec![NumberSpec {
            number: "+15550100".into(),
            name: "Sales".into(),
            timezone: "UTC".into(),
            members: vec!["alice".into(), "bob".into()],
            strategy: Strategy::Simultaneous,
            ring: vec!["alice".into(), "bob".into()],
            ring_timeout_secs: Some(30),
            ..NumberSpec::default()
        }],
        ..Default::default()
    };
    Directory::from_workspace(spec, std::path::Path::new("fuzz")).expect("the fuzz workspace")
}

fn sign_in(presence: &Presence, user: &str, addr: &str) {
    presence.user(user).update(T0_MS as u64, |list| {
        list.push(Binding {
            contact: format!("sip:{user}@{addr}"),
            expires_at_ms: T0_MS as u64 + 3_600_000,
            call_id: format!("reg-{addr}"),
            cseq: 1,
            source: addr.parse().expect("an address"),
            transport: BindingTransport::Udp,
            instance: None,
            reg_id: None,
        })
    });
}

/// Drains the engine; every message it sends must parse.
fn drain(engine: &mut Engine) -> Option<Instant> {
    loop {
        match engine.poll_output() {
            Output::Transmit(t) => {
                if let Err(e) = Message::parse(&t.bytes) {
                    panic!("the engine sent a message that does not parse ({e:?}): {:?}", t.bytes);
                }
            }
            Output::Timeout(at) => return at,
            _ => {}
        }
    }
}

fn run_until(engine: &mut Engine, now: &mut Instant, target: Instant) {
    while let Some(at) = drain(engine) {
        if at > target {
            break;
        }
        *now = at.max(*now);
        engine.handle_input(*now, Input::Timeout);
    }
    *now = target.max(*now);
    engine.handle_input(*now, Input::Timeout);
    drain(engine);
}

fuzz_target!(|data: &[u8]| {
    let presence = Arc::new(Presence::new());
    let mut cfg = EngineConfig::new("fuzz.test");
    cfg.udp_addr = Some("127.0.0.1:5060".parse().expect("an address"));
    let t0 = Instant::now();
    let mut engine = Engine::new(
        cfg,
        directory(),
        Arc::clone(&presence),
        WallClock::new(t0, jiff::Timestamp::from_millisecond(T0_MS).expect("a time")),
        IdGenerator::with_seed(7),
    );
    sign_in(&presence, "bob", "127.0.0.1:5081");
    sign_in(&presence, "alice", "127.0.0.1:5083");
    let mut now = t0;
    let mut rest = data;
    while rest.len() >= 5 {
        let source = SOURCES[usize::from(rest[0]) % SOURCES.len()];
        let wait = u64::from(u16::from_le_bytes([rest[1], rest[2]]));
        let len = usize::from(u16::from_le_bytes([rest[3], rest[4]]));
        let end = (5 + len).min(rest.len());
        let datagram = &rest[5..end];
        rest = &rest[end..];
        if wait > 0 {
            let target = now + Duration::from_millis(wait);
            run_until(&mut engine, &mut now, target);
        }
        let from = Peer {
            transport: Transport::Udp,
            addr: source.parse().expect("an address"),
        };
        engine.handle_input(
            now,
            Input::Receive {
                from,
                bytes: Bytes::copy_from_slice(datagram),
            },
        );
        drain(&mut engine);
    }
    let end = now + Duration::from_secs(600);
    run_until(&mut engine, &mut now, end);
    let stats = engine.stats(now);
    assert_eq!(stats.transactions, 0, "transactions left: {stats:?}");
});
