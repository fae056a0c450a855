//! The RFC 4475 torture messages against the running daemon: nothing stops
//! the listener, nothing invalid is accepted, and the answers the RFC names
//! come back. Documentation addresses (192.0.2.x) are rewritten to loopback
//! before anything goes on a socket; the sender sits on 127.0.0.3:5060 so
//! that answers addressed to the default port of a Via come back to it.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use switchboard::server::Daemon;
use switchboard_tests::{test_config, Ua};
use tokio::net::UdpSocket;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/sip/tests/rfc4475")
}

fn rewrite(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"192.0.2.") {
            out.extend_from_slice(b"127.0.0.");
            i += 8;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[tokio::test]
async fn torture_messages_never_stop_the_daemon_and_invalid_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(test_config(dir.path(), "")).await.unwrap();
    let server = daemon.udp_addr.unwrap();
    let socket = UdpSocket::bind("127.0.0.3:5060")
        .await
        .expect("127.0.0.3:5060 free for the torture test");
    let invalid = [
        "badinv01",
        "clerr",
        "ncl",
        "scalar02",
        "scalarlg",
        "quotbal",
        "ltgtruri",
        "lwsruri",
        "lwsstart",
        "trws",
        "escruri",
        "baddate",
        "regbadct",
        "badaspec",
        "baddn",
        "badvers",
        "mismatch01",
        "mismatch02",
        "bigcode",
        "test",
    ];
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("the RFC 4475 messages vendored in crates/sip/tests/rfc4475")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    files.sort();
    assert!(files.len() >= 49, "the whole RFC 4475 set");
    let mut answers = std::collections::BTreeMap::new();
    for path in &files {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let bytes = rewrite(&std::fs::read(path).unwrap());
        socket.send_to(&bytes, server).await.unwrap();
        let mut buf = vec![0u8; 65_536];
        let mut statuses = Vec::new();
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(250), socket.recv_from(&mut buf)).await
        {
            if let Ok(m) = switchboard_tests::sip::Message::parse(&buf[..n]) {
                statuses.extend(m.status());
            }
        }
        if invalid.contains(&name.as_str()) {
            assert!(
                statuses.iter().all(|&s| s >= 400),
                "{name}: an invalid message was accepted: {statuses:?}"
            );
        }
        answers.insert(name, statuses);
    }
    // Answers the RFC spells out (§3.1.2.16, §3.3.1, §3.3.2, §3.3.3, §3.3.5, §3.3.12).
    let expect = [
        ("badvers", 505),
        ("insuf", 400),
        ("unkscm", 416),
        ("novelsc", 416),
        ("bext01", 420),
        ("zeromf", 483),
        ("mismatch01", 400),
    ];
    for (name, status) in expect {
        assert!(
            answers[name].contains(&status),
            "{name}: expected {status}, got {:?}",
            answers[name]
        );
    }
    // Still serving.
    let mut ua = Ua::bind("127.0.0.1", server).await;
    assert_eq!(
        ua.register("alice", "alice-pw", None, 300).await.status(),
        Some(200)
    );
    daemon.stop().await;
}
