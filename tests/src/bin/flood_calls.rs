//! flood_calls: calls completed per second while an INVITE flood runs,
//! against the same without it. A carrier places `RATE` calls a second
//! from 127.0.0.1 to bob's number (bob answers at once, the carrier hangs
//! up after a second); the flood sends `FLOOD` unacknowledged INVITEs a
//! second to a line nobody answers, first from another address of the
//! same carrier (127.0.0.2), then from the carrier's own address. Each
//! phase lasts `SECONDS`; calls still in progress when a phase ends count
//! in it only if they complete within 10 s. The daemon is the release
//! binary with `overload_transactions = 30000` (about what 200 calls/s
//! leave lingering: each call's transactions stay 32 s).
//!
//! Bounded (every phase has a duration, every wait a timeout), loopback
//! only, the daemon stopped at the end.
//!
//!   cargo build --release -p switchboard -p switchboard-tests --bins
//!   target/release/flood_calls [RATE=200] [FLOOD=20000] [SECONDS=20] [BINARY=target/release/switchboard]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_tests::sip::{HeaderName, Message, Method};
use switchboard_tests::{sdp_answer, Ua};
use tokio::net::UdpSocket;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let rate = arg(0, 200);
    let flood = arg(1, 20_000);
    let seconds = arg(2, 20);
    let binary = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "target/release/switchboard".into());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flood_calls.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
domain = "switchboard.test"
sip_udp = "127.0.0.1:0"
data_dir = "{}"
overload_transactions = 30000
liveness_timeout = 3600
[plan]
seats = 2
[[trunks]]
name = "carrier"
sources = ["127.0.0.0/8"]
[[users]]
id = "bob"
name = "Bob"
status = "active"
password = "bob-password-1"
max_calls = 100000
[[users]]
id = "nobody"
name = "Nobody"
status = "active"
password = "nobody-password-1"
[[numbers]]
number = "+15550200"
name = "Bob"
timezone = "UTC"
members = ["bob"]
[numbers.routing]
strategy = "simultaneous"
ring = ["bob"]
[[numbers]]
number = "+15550300"
name = "Nobody"
timezone = "UTC"
members = ["nobody"]
[numbers.routing]
strategy = "simultaneous"
ring = ["nobody"]
"#,
            dir.path().join("data").display(),
        ),
    )
    .unwrap();
    let daemon = switchboard_tests::DaemonProcess::start(&binary, &config);
    let mut child = daemon.child;
    let server = daemon.udp;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut bob = Ua::bind("127.0.0.1", server).await;
        let ok = bob.register("bob", "bob-password-1", None, 3600).await;
        assert_eq!(ok.status(), Some(200), "bob signs in");
        tokio::spawn(phone(bob.into_socket()));
        let phases = [
            ("without a flood", None),
            (
                "flood from another address of the carrier (127.0.0.2)",
                Some("127.0.0.2"),
            ),
            (
                "flood from the carrier's own address (127.0.0.1)",
                Some("127.0.0.1"),
            ),
        ];
        for (name, source) in phases {
            let running = Arc::new(AtomicBool::new(true));
            let sent = Arc::new(AtomicU64::new(0));
            let flooder = source.map(|ip| {
                let (running, sent) = (Arc::clone(&running), Arc::clone(&sent));
                let ip = ip.to_string();
                std::thread::spawn(move || flood_invites(&ip, server, flood, &running, &sent))
            });
            let (completed, shed) = carrier(server, rate, Duration::from_secs(seconds)).await;
            running.store(false, Ordering::Relaxed);
            if let Some(f) = flooder {
                f.join().unwrap();
            }
            println!(
                "{name}: {:.0} calls/s completed of {rate} offered ({completed} in {seconds} s; \
                 {shed} refused with 503); flood INVITEs sent: {}",
                completed as f64 / seconds as f64,
                sent.load(Ordering::Relaxed)
            );
            // Let the flood's transactions expire (Timer H) before the next phase.
            tokio::time::sleep(Duration::from_secs(40)).await;
        }
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// bob's phone: answers every INVITE with 200 at once, and every BYE.
async fn phone(socket: UdpSocket) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let Ok(m) = Message::parse(&buf[..n]) else {
            continue;
        };
        let reply = match m.method() {
            Some(Method::Invite) => {
                let mut ok =
                    switchboard_tests::sip::build::response_to(&m, 200, "OK", Some("bob"), false);
                ok.push(
                    HeaderName::Contact,
                    &format!("<sip:bob@{}>", socket.local_addr().unwrap()),
                );
                ok.push(HeaderName::ContentType, "application/sdp");
                ok.set_body(sdp_answer(40000).into_bytes().into());
                ok
            }
            Some(Method::Bye | Method::Options | Method::Cancel) => {
                switchboard_tests::sip::build::response_to(&m, 200, "OK", None, false)
            }
            _ => continue,
        };
        let _ = socket.send_to(&reply.encode(), from).await;
    }
}

/// One call of the carrier, as far as it got.
struct Call {
    invite: Message,
    started: Instant,
    next_send: Instant,
    interval: Duration,
    /// The BYE, once answered; sent (and again) until its 200.
    bye: Option<(Message, Instant)>,
}

/// Places `rate` calls a second for `length`, each hung up a second after
/// its answer; returns the calls completed (BYE answered) and those shed.
async fn carrier(server: SocketAddr, rate: u64, length: Duration) -> (u64, u64) {
    let mut ua = Ua::bind("127.0.0.1", server).await;
    let mut calls: HashMap<String, Call> = HashMap::new();
    let (mut completed, mut shed) = (0u64, 0u64);
    let start = Instant::now();
    let mut placed = 0u64;
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let end = start + length + Duration::from_secs(10);
    while Instant::now() < end && (Instant::now() < start + length || !calls.is_empty()) {
        let now = Instant::now();
        while now < start + length && start + gap * placed as u32 <= now {
            let invite = ua.invite("+15550200", "+15551234567");
            ua.send(&invite).await;
            let call_id = invite.call_id().unwrap().to_string();
            calls.insert(
                call_id,
                Call {
                    invite,
                    started: now,
                    next_send: now + Duration::from_millis(500),
                    interval: Duration::from_millis(500),
                    bye: None,
                },
            );
            placed += 1;
        }
        // Retransmissions (RFC 3261 timers A and E), and BYEs that are due.
        for call in calls.values_mut() {
            if call.next_send > now || now - call.started > Duration::from_secs(32) {
                continue;
            }
            match &call.bye {
                Some((bye, at)) if *at <= now => ua.send(bye).await,
                Some(_) => continue,
                None => ua.send(&call.invite).await,
            }
            call.interval = (call.interval * 2).min(Duration::from_secs(4));
            call.next_send = now + call.interval;
        }
        calls.retain(|_, c| now - c.started < Duration::from_secs(40));
        let Some(m) = ua.recv_within(Duration::from_millis(2)).await else {
            continue;
        };
        let (Some(status), Some(call_id)) = (m.status(), m.call_id().map(str::to_string)) else {
            continue;
        };
        let method = m.cseq().map(|c| c.method.to_string()).unwrap_or_default();
        match (method.as_str(), status) {
            ("INVITE", 200) => {
                let Some(call) = calls.get_mut(&call_id) else {
                    continue;
                };
                ua.ack_2xx(&call.invite, &m).await;
                if call.bye.is_none() {
                    let bye = ua.caller_request(Method::Bye, &call.invite, &m, 2);
                    let at = Instant::now() + Duration::from_secs(1);
                    call.bye = Some((bye, at));
                    call.next_send = at;
                    call.interval = Duration::from_millis(500);
                }
            }
            ("INVITE", 300..) => {
                if let Some(call) = calls.remove(&call_id) {
                    ua.ack_non_2xx(&call.invite, &m).await;
                    shed += u64::from(status == 503);
                }
            }
            ("BYE", 200..) if calls.remove(&call_id).is_some() => completed += 1,
            _ => {}
        }
    }
    (completed, shed)
}

/// Unacknowledged INVITEs from `ip`, `per_second`, each in a new Call-ID,
/// to the line nobody answers, until told to stop.
fn flood_invites(
    ip: &str,
    server: SocketAddr,
    per_second: u64,
    running: &AtomicBool,
    sent: &AtomicU64,
) {
    let socket = std::net::UdpSocket::bind((ip, 0)).unwrap();
    let local = socket.local_addr().unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while running.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * per_second as f64) as u64;
        if n >= due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let raw = format!(
            "INVITE sip:+15550300@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-fl{n}\r\n\
             From: <sip:+15559990000@{local}>;tag=fl{n}\r\nTo: <sip:+15550300@{server}>\r\n\
             Call-ID: flood-{n}@{local}\r\nCSeq: 1 INVITE\r\nContact: <sip:flood@{local}>\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = socket.send_to(raw.as_bytes(), server);
        n += 1;
        sent.store(n, Ordering::Relaxed);
    }
}
