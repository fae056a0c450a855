//! The real binary: `check`, refusal of bad configs, start on port 0 (the
//! bound port read from its log), answer, and a graceful stop on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

fn demo() -> String {
    format!(
        "{}/../../config/switchboard.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn check_accepts_the_demo_config() {
    let out = Command::new(BIN)
        .args(["check", "--config", &demo()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn a_bad_config_is_refused_with_file_key_and_reason_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(demo())
        .unwrap()
        .replace("timezone = \"Europe/Paris\"", "timezone = \"Mars/Olympus\"")
        .replace("seats = 10", "seats = 1");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    for args in [vec!["check", "--config"], vec!["--config"]] {
        let mut cmd = Command::new(BIN);
        cmd.args(&args).arg(&path);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(78));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad.toml") && err.contains("timezone") && err.contains("Mars/Olympus"),
            "{err}"
        );
        assert!(err.contains("plan.seats"), "every error is reported: {err}");
    }
}

#[test]
fn the_binary_serves_on_port_zero_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sb.toml");
    let text = std::fs::read_to_string(demo())
        .unwrap()
        .replace("sip_udp = \"127.0.0.1:5060\"", "sip_udp = \"127.0.0.1:0\"")
        .replace("sip_tcp = \"127.0.0.1:5060\"", "sip_tcp = \"127.0.0.1:0\"");
    std::fs::write(&path, text).unwrap();
    let mut child = Command::new(BIN)
        .args(["--config", path.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the log on a thread so a missing line fails the test instead of hanging it.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("udp=Some(127.0.0.1:").nth(1) {
                let _ = tx.send(rest.split(')').next().unwrap_or("").to_string());
            }
        }
    });
    let port: u16 = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(p) => p.parse().unwrap(),
        Err(_) => {
            let _ = child.kill();
            panic!("no 'listening' line in the log");
        }
    };
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:switchboard@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKcli\r\n\
         From: <sip:a@b>;tag=1\r\nTo: <sip:s@b>\r\nCall-ID: cli\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    socket
        .send_to(options.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 OK"));

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful stop exits 0, got {status}");
    assert!(
        dir.path().join("data").exists(),
        "data dir created relative to the config"
    );
}
