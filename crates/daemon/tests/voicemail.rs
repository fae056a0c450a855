//! The real binary and voicemail on disk: a message being recorded when
//! the process is killed (-9) is a playable WAV, finished at the next
//! start, and `switchboard voicemail list|export|delete` works on it.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use media::g711::Law;
use media::rtp::{classify, Datagram, RtpSender};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

fn config(dir: &Path) -> std::path::PathBuf {
    let samples: Vec<i16> = (0..1600)
        .map(|i| (6000.0 * (2.0 * std::f32::consts::PI * 600.0 * i as f32 / 8000.0).sin()) as i16)
        .collect();
    std::fs::write(dir.join("greeting.wav"), media::wav::encode(&samples)).unwrap();
    let text = format!(
        r#"
[server]
domain = "switchboard.test"
sip_udp = "127.0.0.1:0"
data_dir = "{data}"

[plan]
seats = 1

[[trunks]]
name = "carrier"
sources = ["127.0.0.1/32"]

[[numbers]]
number = "+15550900"
name = "Mailbox"
timezone = "UTC"
members = []

[numbers.routing]
strategy = "simultaneous"
ring = []

[numbers.hours]

[numbers.outside]
action = "voicemail"

[numbers.voicemail]
greeting = "greeting.wav"

[media]
rtp_ports = "23000-23099"
"#,
        data = dir.join("data").display()
    );
    let path = dir.join("sb.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts the binary; returns it and its SIP port.
fn start(config: &Path) -> (Child, u16) {
    let mut child = Command::new(BIN)
        .args(["--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("udp=Some(127.0.0.1:").nth(1) {
                let _ = tx.send(rest.split(')').next().unwrap_or("").to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(p) => (child, p.parse().unwrap()),
        Err(_) => {
            let _ = child.kill();
            panic!("no 'listening' line in the log");
        }
    }
}

fn voicemail_cli(config: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("voicemail")
        .args(args)
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_message_cut_by_kill_9_is_playable_finished_at_restart_and_managed_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (mut child, port) = start(&config);
    let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    sip.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let local = sip.local_addr().unwrap();
    let sdp = format!(
        "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\n",
        rtp.local_addr().unwrap().port()
    );
    let invite = format!(
        "INVITE sip:+15550900@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKkill\r\n\
         From: <sip:+15551234567@127.0.0.1>;tag=k\r\nTo: <sip:+15550900@127.0.0.1>\r\n\
         Call-ID: kill-9\r\nCSeq: 1 INVITE\r\nContact: <sip:c@{local}>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    sip.send_to(invite.as_bytes(), ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 4096];
    let ok = loop {
        let (n, _) = sip.recv_from(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("SIP/2.0 200") {
            break text;
        }
    };
    let to = ok
        .lines()
        .find(|l| l.starts_with("To:"))
        .unwrap()
        .to_string();
    let ack = format!(
        "ACK sip:switchboard@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKkillack\r\n\
         From: <sip:+15551234567@127.0.0.1>;tag=k\r\n{to}\r\nCall-ID: kill-9\r\nCSeq: 1 ACK\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sip.send_to(ack.as_bytes(), ("127.0.0.1", port)).unwrap();
    // Greeting, beep, then quiet: the recording runs.
    let (mut heard, mut quiet, mut from): (bool, u32, Option<SocketAddr>) = (false, 0, None);
    // At most 15 s of packets (each recv also times out after 2 s).
    let mut packets = 0;
    while quiet < 5 {
        packets += 1;
        assert!(packets < 750, "the greeting never ended");
        let (n, f) = rtp.recv_from(&mut buf).unwrap();
        from = Some(f);
        if let Datagram::Rtp(p) = classify(&buf[..n]) {
            let loud = p
                .payload
                .iter()
                .any(|&c| Law::Mu.decode(c).unsigned_abs() > 1000);
            if loud {
                heard = true;
                quiet = 0;
            } else if heard {
                quiet += 1;
            }
        }
    }
    let from = from.unwrap();
    let mut sender = RtpSender::new(5, 1, 0);
    for i in 0..75 {
        let chunk: Vec<i16> = (0..160)
            .map(|j| {
                let t = (i * 160 + j) as f32 / 8000.0;
                (8000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()) as i16
            })
            .collect();
        let mut codes = Vec::new();
        Law::Mu.encode_into(&chunk, &mut codes);
        rtp.send_to(&sender.packet(0, &codes, 160), from).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    // kill -9 in the middle of the message.
    child.kill().unwrap();
    child.wait().unwrap();
    let mailbox = dir.path().join("data/voicemail/+15550900");
    let part = std::fs::read_dir(&mailbox)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".wav.part"))
        .expect("the message being recorded");
    let samples = media::wav::read_file(&part).unwrap();
    assert!(
        samples.len() >= 8000,
        "what was said is there: {} samples",
        samples.len()
    );
    // A valid RIFF header: its sizes are the file's, not a guess.
    let bytes = std::fs::read(&part).unwrap();
    let riff = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    let data = u32::from_le_bytes(bytes[40..44].try_into().unwrap()) as usize;
    assert_eq!(riff + 8, bytes.len(), "RIFF size");
    assert_eq!(data + 44, bytes.len(), "data size");

    // The next start finishes it.
    let (mut child, _) = start(&config);
    child.kill().unwrap();
    child.wait().unwrap();
    let listed = voicemail_cli(&config, &["list"]);
    assert!(
        listed.contains("+15550900") && listed.contains("+15551234567"),
        "{listed}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&voicemail_cli(&config, &["list", "+1 555 0900", "--json"])).unwrap();
    let id = json[0]["id"].as_str().unwrap().to_string();
    assert_eq!(json[0]["call_id"], "kill-9");
    let export = dir.path().join("export");
    voicemail_cli(&config, &["export", "--to", export.to_str().unwrap()]);
    let exported = media::wav::read_file(&export.join(format!("15550900-{id}.wav"))).unwrap();
    assert_eq!(exported.len(), samples.len());
    assert!(voicemail_cli(&config, &["delete", "+15550900", &id]).contains("1 messages deleted"));
    assert!(voicemail_cli(&config, &["list"]).contains("no messages"));
}
