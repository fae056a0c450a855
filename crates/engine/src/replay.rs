//! The engine's input path replayed from bytes: the harness shared by the
//! fuzz target `engine_input` (fuzz/) and by the test that replays its
//! seeds and findings on every test run, so a finding becomes a regression
//! test by copying its file.
//!
//! The input is a list of records. One byte picks the source (the trunk,
//! two signed-in phones over UDP, a stranger, the carrier, an IPv6 address,
//! a phone over TCP, a phone over TLS) or, from 0xf0 up, closes the TCP or
//! TLS connection; two bytes (little-endian) say how many milliseconds
//! pass first; two more give the datagram's length, then its bytes.
//!
//! It panics on a broken promise: a message the engine sends that does not
//! parse, or a transaction still alive ten minutes after the last input.
//! The clock is the caller's `t0` and moves only by the records.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use directory::{
    Directory, NumberSpec, OutboundSpec, Strategy, TrunkSpec, UserSpec, WorkspaceSpec,
};
use jiff::Timestamp;
use presence::{Binding, BindingTransport, Presence};
use sip::ids::IdGenerator;
use sip::transaction::{Peer, Transport};
use sip::Message;

use crate::{Engine, EngineConfig, Input, Output, WallClock};

const T0_MS: i64 = 1_700_000_000_000;

/// The stream connections a record may arrive on or close.
const TCP_CONNECTION: u64 = 1;
const TLS_CONNECTION: u64 = (1 << 40) + 1;

fn source(byte: u8) -> Peer {
    let (transport, addr) = match byte % 8 {
        0 => (Transport::Udp, "127.0.0.1:5070"), // the trunk
        1 => (Transport::Udp, "127.0.0.1:5081"), // bob's phone
        2 => (Transport::Udp, "127.0.0.1:5083"), // alice's phone
        3 => (Transport::Udp, "127.0.0.2:5090"), // a stranger
        4 => (Transport::Udp, "127.0.0.1:5099"), // the carrier
        5 => (Transport::Udp, "[::1]:5099"),
        6 => (Transport::Tcp(TCP_CONNECTION), "127.0.0.3:40000"),
        _ => (Transport::Tls(TLS_CONNECTION), "127.0.0.4:40001"),
    };
    Peer {
        transport,
        addr: addr
            .parse()
            .unwrap_or_else(|_| ([127, 0, 0, 1], 5070).into()),
    }
}

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
        users: vec![
            user("alice", "101"),
            user("bob", "102"),
            user("carol", "103"),
        ],
        numbers: vec![NumberSpec {
            number: "+15550100".into(),
            name: "Sales".into(),
            timezone: "UTC".into(),
            members: vec!["alice".into(), "bob".into(), "carol".into()],
            strategy: Strategy::Simultaneous,
            ring: vec!["alice".into(), "bob".into(), "carol".into()],
            ring_timeout_secs: Some(30),
            ..NumberSpec::default()
        }],
        ..Default::default()
    };
    match Directory::from_workspace(spec, std::path::Path::new("replay")) {
        Ok(directory) => directory,
        Err(e) => panic!("the replay workspace is invalid: {e}"),
    }
}

fn sign_in(presence: &Presence, user: &str, addr: &str, transport: BindingTransport) {
    let Ok(source) = addr.parse() else {
        return;
    };
    presence.user(user).update(T0_MS as u64, |list| {
        list.push(Binding {
            contact: format!("sip:{user}@{addr}"),
            expires_at_ms: T0_MS as u64 + 3_600_000,
            call_id: format!("reg-{addr}"),
            cseq: 1,
            source,
            transport,
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
                    panic!(
                        "the engine sent a message that does not parse ({e:?}): {:?}",
                        t.bytes
                    );
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

/// Replays `data` into a fresh engine whose clock starts at `t0`.
pub fn run(data: &[u8], t0: Instant) {
    let presence = Arc::new(Presence::new());
    let mut cfg = EngineConfig::new("fuzz.test");
    cfg.udp_addr = Some(([127, 0, 0, 1], 5060).into());
    cfg.tcp_addr = cfg.udp_addr;
    cfg.tls_addr = Some(([127, 0, 0, 1], 5061).into());
    let Ok(base_time) = Timestamp::from_millisecond(T0_MS) else {
        return;
    };
    let mut engine = Engine::new(
        cfg,
        directory(),
        Arc::clone(&presence),
        WallClock::new(t0, base_time),
        IdGenerator::with_seed(7),
    );
    sign_in(&presence, "bob", "127.0.0.1:5081", BindingTransport::Udp);
    sign_in(&presence, "alice", "127.0.0.1:5083", BindingTransport::Udp);
    sign_in(
        &presence,
        "carol",
        "127.0.0.4:40001",
        BindingTransport::Tls {
            connection: Some(TLS_CONNECTION),
        },
    );
    let mut now = t0;
    let mut rest = data;
    while rest.len() >= 5 {
        let kind = rest[0];
        let wait = u64::from(u16::from_le_bytes([rest[1], rest[2]]));
        let len = usize::from(u16::from_le_bytes([rest[3], rest[4]]));
        let end = (5 + len).min(rest.len());
        let datagram = &rest[5..end];
        rest = &rest[end..];
        if wait > 0 {
            let target = now + Duration::from_millis(wait);
            run_until(&mut engine, &mut now, target);
        }
        let input = if kind >= 0xf0 {
            let connection = if kind.is_multiple_of(2) {
                TCP_CONNECTION
            } else {
                TLS_CONNECTION
            };
            Input::ConnectionClosed { connection }
        } else {
            Input::Receive {
                from: source(kind),
                bytes: Bytes::copy_from_slice(datagram),
            }
        };
        engine.handle_input(now, input);
        drain(&mut engine);
    }
    let end = now + Duration::from_secs(600);
    run_until(&mut engine, &mut now, end);
    let stats = engine.stats(now);
    assert_eq!(stats.transactions, 0, "transactions left: {stats:?}");
}
