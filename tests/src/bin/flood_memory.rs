//! flood_memory: the daemon's memory under three floods, one after the
//! other, each from many loopback sources (127.0.1.x, so that no single
//! source's rate limit ends it early):
//!
//! 1. garbage: datagrams of random bytes that parse as nothing;
//! 2. unauthenticated INVITEs, each with a new Call-ID, from addresses that
//!    are no trunk (each gets a stateless 407);
//! 3. half-open TCP connections: as many as `tcp_max_connections` (set to
//!    CONNECTIONS here), each sending a message that never finishes, as
//!    large as `tcp_max_message` allows, then nothing.
//!
//! It prints the daemon's resident memory before, and its peak (VmHWM)
//! after each flood, then checks that the daemon still answers OPTIONS.
//! Bounded: every flood has a count, every wait a timeout; the daemon is
//! stopped at the end; all traffic is loopback.
//!
//!   cargo build --release -p switchboard -p switchboard-tests --bins
//!   target/release/flood_memory [DATAGRAMS=200000] [CONNECTIONS=2000] [BINARY=target/release/switchboard]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

/// Loopback sources the floods come from.
const SOURCES: u8 = 200;
/// Bytes each half-open connection sends (just under `tcp_max_message`).
const PARTIAL: usize = 60_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let datagrams: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let connections: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let binary = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "target/release/switchboard".into());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flood.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
domain = "flood.test"
sip_udp = "127.0.0.1:0"
sip_tcp = "127.0.0.1:0"
data_dir = "{}"
tcp_max_connections = {connections}
tcp_max_per_source = {}
tcp_message_timeout = 120
[plan]
seats = 1
[[trunks]]
name = "carrier"
sources = ["127.0.0.1/32"]
[[users]]
id = "alice"
name = "Alice"
status = "active"
password = "a-long-password"
[[numbers]]
number = "+15550100"
name = "Sales"
timezone = "UTC"
members = ["alice"]
[numbers.routing]
strategy = "simultaneous"
ring = ["alice"]
"#,
            dir.path().join("data").display(),
            connections.div_ceil(usize::from(SOURCES)) + 1,
        ),
    )
    .unwrap();
    let daemon = switchboard_tests::DaemonProcess::start(&binary, &config);
    let (mut child, udp) = (daemon.child, daemon.udp);
    let pid = child.id();
    let tcp = daemon.tcp.expect("a TCP listener");
    std::thread::sleep(Duration::from_millis(500));
    let kib = |field: &str| memory_kib(pid, field);
    println!("before: {} KiB resident", kib("VmRSS:"));

    let sockets: Vec<UdpSocket> = (1..=SOURCES)
        .map(|i| UdpSocket::bind(format!("127.0.1.{i}:0")).unwrap())
        .collect();
    // 1. Garbage.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for n in 0..datagrams {
        let len = 64 + (n % 900);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = sockets[n % sockets.len()].send_to(&bytes, udp);
        pace(n);
    }
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "garbage: {datagrams} datagrams, peak {} KiB, now {} KiB",
        kib("VmHWM:"),
        kib("VmRSS:")
    );
    // 2. Unauthenticated INVITEs with distinct Call-IDs.
    for n in 0..datagrams {
        let socket = &sockets[n % sockets.len()];
        let from = socket.local_addr().unwrap();
        let invite = format!(
            "INVITE sip:+15550100@flood.test SIP/2.0\r\n\
             Via: SIP/2.0/UDP {from};branch=z9hG4bKf{n}\r\n\
             From: <sip:alice@flood.test>;tag=f{n}\r\n\
             To: <sip:+15550100@flood.test>\r\n\
             Call-ID: flood-{n}-{}@{}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:alice@{from}>\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n",
            seed.wrapping_mul(n as u64 + 1),
            from.ip()
        );
        let _ = socket.send_to(invite.as_bytes(), udp);
        pace(n);
    }
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "unauthenticated INVITEs: {datagrams} with distinct Call-IDs, peak {} KiB, now {} KiB",
        kib("VmHWM:"),
        kib("VmRSS:")
    );
    // 3. Half-open TCP connections, each with an unfinished message.
    let mut head = b"INVITE sip:+15550100@flood.test SIP/2.0\r\n".to_vec();
    while head.len() < PARTIAL {
        head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let mut open = Vec::new();
    for n in 0..connections {
        let source = format!("127.0.1.{}:0", 1 + n % usize::from(SOURCES));
        let Ok(mut stream) = bind_connect(&source, tcp) else {
            continue;
        };
        if stream.write_all(&head).is_ok() {
            open.push(stream);
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "half-open TCP: {} connections holding {} bytes each, peak {} KiB, now {} KiB",
        open.len(),
        head.len(),
        kib("VmHWM:"),
        kib("VmRSS:")
    );
    drop(open);
    std::thread::sleep(Duration::from_secs(2));
    // Still serving.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let me = probe.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:flood.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe\r\n\
         From: <sip:probe@{me}>;tag=p\r\nTo: <sip:flood.test>\r\nCall-ID: probe@{me}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    probe.send_to(options.as_bytes(), udp).unwrap();
    let mut buf = [0u8; 4096];
    let answered = probe
        .recv_from(&mut buf)
        .map(|(n, _)| buf[..n].starts_with(b"SIP/2.0 200"))
        .unwrap_or(false);
    println!(
        "after the floods: OPTIONS answered 200: {answered}; {} KiB resident",
        kib("VmRSS:")
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(answered, "the daemon no longer answers");
}

/// A connection from a given loopback source (the default source is
/// 127.0.0.1, whose per-source limit the floods would hit first).
fn bind_connect(source: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&source.parse::<SocketAddr>().unwrap().into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(2))?;
    Ok(socket.into())
}

/// A short pause every few hundred datagrams, so that the kernel's socket
/// buffer (not the daemon) is not what drops them.
fn pace(n: usize) {
    if n % 500 == 499 {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A `Vm*` line of /proc/PID/status, in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
