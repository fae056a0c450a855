//! media_load: how many media sessions the daemon holds with its packets
//! on time. It starts the daemon binary on loopback with a number whose
//! menu plays a long prompt, places SESSIONS calls to it from the trunk
//! (each with its own RTP socket), listens to every stream for SECONDS, and
//! reports how many packets arrived more than 5 ms after their slot (the
//! first packet's arrival plus 20 ms per packet, by RTP timestamp), the
//! p99 and the worst lateness, and packets lost. Meanwhile it pings the
//! daemon with OPTIONS every 10 ms and reports the round trips: the
//! signalling the engine does while the media thread works (run it with 0
//! sessions for the baseline). Bounded: every wait has a
//! timeout, the daemon is stopped at the end, and all traffic is loopback.
//!
//!   cargo build --release -p switchboard -p switchboard-tests --bins
//!   target/release/media_load [SESSIONS=500] [SECONDS=20] [BINARY=target/release/switchboard]
//!
//! With `SB_ATTACH=HOST:PORT` it starts no daemon and calls that one's
//! `SB_MEDIA_NUMBER` (default +15550900), whose menu must play all along
//! (benches/load/run.sh does that with MEDIA_SESSIONS, during its calls).
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::rtp::{classify, Datagram};
use tokio::net::UdpSocket;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sessions: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(500);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let binary = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "target/release/switchboard".into());
    let dir = tempfile::tempdir().unwrap();
    // A prompt longer than the measurement: the menu plays all along.
    let long: Vec<i16> = (0..8000 * (seconds as usize + 30))
        .map(|i| (4000.0 * (2.0 * std::f32::consts::PI * 400.0 * i as f32 / 8000.0).sin()) as i16)
        .collect();
    std::fs::write(dir.path().join("long.wav"), media::wav::encode(&long)).unwrap();
    let config = dir.path().join("load.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
domain = "load.test"
sip_udp = "127.0.0.1:0"
data_dir = "{}"
[plan]
seats = 1
[[trunks]]
name = "carrier"
sources = ["127.0.0.1/32"]
[[numbers]]
number = "+15550900"
name = "Menu"
timezone = "UTC"
members = []
[numbers.routing]
strategy = "simultaneous"
ring = []
[numbers.hours]
[numbers.outside]
action = "ivr"
[numbers.ivr]
greeting = "long.wav"
timeout = 60
fallback = {{ action = "hangup" }}
[media]
rtp_ports = "30000-{}"
"#,
            dir.path().join("data").display(),
            30000 + 2 * sessions + 10
        ),
    )
    .unwrap();
    let number = std::env::var("SB_MEDIA_NUMBER").unwrap_or_else(|_| "+15550900".into());
    let (mut child, server): (Option<std::process::Child>, SocketAddr) =
        match std::env::var("SB_ATTACH") {
            Ok(addr) => (None, addr.parse().expect("SB_ATTACH is HOST:PORT")),
            Err(_) => {
                let daemon = switchboard_tests::DaemonProcess::start(&binary, &config);
                (Some(daemon.child), daemon.udp)
            }
        };
    let sip = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let local = sip.local_addr().unwrap();

    // Calls, 100 a second, each with its own RTP socket, listened to from
    // before its INVITE (so no packet waits in a buffer unread).
    let measure = Duration::from_secs(seconds);
    let mut listeners = Vec::new();
    for i in 0..sessions {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let rtp_port = socket.local_addr().unwrap().port();
        listeners.push(tokio::spawn(listen(socket, measure)));
        let sdp = format!(
            "v=0\r\no=l 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\n",
            rtp_port
        );
        let invite = format!(
            "INVITE sip:{number}@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKload{i}\r\n\
             From: <sip:+15551230000@127.0.0.1>;tag=l{i}\r\nTo: <sip:{number}@127.0.0.1>\r\n\
             Call-ID: load-{i}\r\nCSeq: 1 INVITE\r\nContact: <sip:l@{local}>\r\nMax-Forwards: 70\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        sip.send_to(invite.as_bytes(), server).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ACK every 200 (the daemon re-sends it until then).
    let acker = {
        let sip = Arc::clone(&sip);
        tokio::spawn(async move {
            let mut acked = std::collections::HashSet::new();
            let mut buf = vec![0u8; 65536];
            while let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_secs(5), sip.recv_from(&mut buf)).await
            {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if !text.starts_with("SIP/2.0 200") {
                    continue;
                }
                let header = |name: &str| {
                    text.lines()
                        .find(|l| l.starts_with(name))
                        .unwrap_or("")
                        .to_string()
                };
                let call_id = header("Call-ID:");
                let to = header("To:");
                let from = header("From:");
                let ack = format!(
                    "ACK sip:switchboard@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKack{}\r\n\
                     {from}\r\n{to}\r\n{call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                    acked.len()
                );
                let _ = sip.send_to(ack.as_bytes(), server).await;
                acked.insert(call_id);
            }
            acked.len()
        })
    };

    // Signalling while the streams run: OPTIONS round trips.
    let pinger = tokio::spawn(ping(server, measure));
    let mut all = Vec::new();
    let mut expected = 0;
    let mut streams = 0;
    for l in listeners {
        let (lat, exp) = l.await.unwrap();
        if !lat.is_empty() {
            streams += 1;
        }
        expected += exp;
        all.extend(lat);
    }
    let answered = acker.await.unwrap_or(0);
    let mut rtts = pinger.await.unwrap_or_default();
    rtts.sort_unstable();
    let rtt = |p: f64| {
        rtts.get(((rtts.len() as f64) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    if let Some(child) = child.as_mut() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    all.sort_unstable();
    let late = all.iter().filter(|&&l| l > 5_000).count();
    let pct = |p: f64| {
        all.get(((all.len() as f64) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    println!("sessions asked      {sessions}");
    println!("calls answered      {answered}");
    println!("streams heard       {streams}");
    println!("packets received    {}", all.len());
    println!(
        "packets lost        {}",
        expected.saturating_sub(all.len() as u64)
    );
    println!(
        "late (> 5 ms)       {late} ({:.3} %)",
        100.0 * late as f64 / all.len().max(1) as f64
    );
    println!(
        "lateness p50/p99/max  {} / {} / {} µs",
        pct(0.5),
        pct(0.99),
        all.last().copied().unwrap_or(0)
    );
    println!(
        "OPTIONS round trip  {} pings, p50/p99/max {} / {} / {} µs",
        rtts.len(),
        rtt(0.5),
        rtt(0.99),
        rtts.last().copied().unwrap_or(0)
    );
}

/// One stream: each packet's lateness against its slot (the first
/// packet's arrival plus 20 ms per packet, by RTP timestamp), and how many
/// packets the timestamps say were sent.
async fn listen(socket: UdpSocket, measure: Duration) -> (Vec<u64>, u64) {
    let mut buf = [0u8; 2048];
    let mut first: Option<(Instant, u32)> = None;
    let mut lateness_us: Vec<u64> = Vec::new();
    let mut expected = 0u64;
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf)).await
    {
        let now = Instant::now();
        let Datagram::Rtp(p) = classify(&buf[..n]) else {
            continue;
        };
        let (t0, ts0) = *first.get_or_insert((now, p.timestamp));
        let slot = u64::from(p.timestamp.wrapping_sub(ts0)) / 160;
        let due = t0 + Duration::from_millis(20 * slot);
        lateness_us.push(now.saturating_duration_since(due).as_micros() as u64);
        expected = slot + 1;
        if now.duration_since(t0) >= measure {
            break;
        }
    }
    (lateness_us, expected)
}

/// OPTIONS to the daemon every 10 ms for `measure`: the round trips, in µs.
async fn ping(server: SocketAddr, measure: Duration) -> Vec<u64> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let mut rtts = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let mut i = 0u64;
    while start.elapsed() < measure {
        i += 1;
        let options = format!(
            "OPTIONS sip:switchboard@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKping{i}\r\n\
             From: <sip:ping@127.0.0.1>;tag=p{i}\r\nTo: <sip:switchboard@127.0.0.1>\r\n\
             Call-ID: ping-{i}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let sent = Instant::now();
        socket.send_to(options.as_bytes(), server).await.unwrap();
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await
        {
            rtts.push(sent.elapsed().as_micros() as u64);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rtts
}
