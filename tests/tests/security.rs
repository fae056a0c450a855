//! Bans over real UDP: a source that keeps failing authentication gets no
//! answer at all for a while, others sign in meanwhile, trunks and allowed
//! sources are never banned, and the admin API lists and lifts bans.
#![allow(clippy::unwrap_used)]

use switchboard::server::Daemon;
use switchboard::settings::Config;
use switchboard_tests::{admin_config_text, api, Ua, ADMIN_TOKEN, QUIET};

async fn start(dir: &std::path::Path, extra: &str) -> Daemon {
    let file = dir.join("sb.toml");
    std::fs::write(&file, admin_config_text(&dir.join("data"), extra)).unwrap();
    Daemon::start(Config::load(&file).unwrap()).await.unwrap()
}

#[tokio::test]
async fn a_password_guesser_is_banned_while_others_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path(), "\n[security]\nallow = [\"127.0.0.4\"]\n").await;
    let server = daemon.udp_addr.unwrap();
    let admin = daemon.admin_addr.unwrap();

    let mut guesser = Ua::bind("127.0.0.2", server).await;
    for _ in 0..5 {
        let resp = guesser.register("alice", "guess", None, 300).await;
        assert_eq!(resp.status(), Some(403));
    }
    // Banned: no answer at all, not even a challenge.
    guesser.send_raw(b"OPTIONS sip:switchboard.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:9;branch=z9hG4bKban1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: ban-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").await;
    assert!(
        guesser.recv_within(QUIET).await.is_none(),
        "a banned source gets nothing"
    );

    // Others are served meanwhile.
    let mut bob = Ua::bind("127.0.0.3", server).await;
    assert_eq!(
        bob.register("bob", "bob-pw", None, 300).await.status(),
        Some(200)
    );
    // Trunk sources and allowed ones are never banned.
    for ip in ["127.0.0.1", "127.0.0.4"] {
        let mut trusted = Ua::bind(ip, server).await;
        for _ in 0..8 {
            assert_eq!(
                trusted.register("alice", "guess", None, 300).await.status(),
                Some(403),
                "{ip}"
            );
        }
    }

    let (status, bans) = api(admin, "GET", "/api/v1/bans", None, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    let bans = bans.as_array().unwrap().clone();
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(bans[0]["source"], "127.0.0.2");
    assert_eq!(bans[0]["count"], 1);
    assert!(bans[0]["remaining_s"].as_u64().unwrap() <= 60);
    let (_, page) = api(admin, "GET", "/metrics", None, Some(ADMIN_TOKEN)).await;
    let page = page.as_str().unwrap().to_owned();
    assert!(page.contains("switchboard_bans_active 1"), "{page}");

    // Lifted: answered again.
    let (status, _) = api(
        admin,
        "DELETE",
        "/api/v1/bans/127.0.0.2",
        None,
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = api(
        admin,
        "DELETE",
        "/api/v1/bans/127.0.0.2",
        None,
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (404, &serde_json::json!("not_banned"))
    );
    assert_eq!(
        guesser
            .register("alice", "alice-pw", None, 300)
            .await
            .status(),
        Some(200)
    );
    daemon.stop().await;
}

/// Challenges cost nothing: no transaction is kept for them and a 407 to
/// an INVITE is not retransmitted (a spoofed source gets one answer per
/// request, never more).
#[tokio::test]
async fn challenges_are_stateless() {
    use engine::{Command, CommandReply};
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path(), "").await;
    let server = daemon.udp_addr.unwrap();
    let mut phone = Ua::bind("127.0.0.6", server).await;
    let invite = phone.invite("+15550100", "alice");
    phone.send(&invite).await;
    let challenge = phone.final_response().await;
    assert_eq!(challenge.status(), Some(407));
    assert!(
        phone
            .recv_within(std::time::Duration::from_millis(1600))
            .await
            .is_none(),
        "no retransmission of the 407 (Timer G would re-send it at 0.5 s and 1.5 s)"
    );
    let mut register = Ua::bind("127.0.0.7", server).await;
    let mut m = switchboard_tests::sip::Message::request(
        switchboard_tests::sip::Method::Register,
        "sip:switchboard.test",
    );
    m.push(
        switchboard_tests::sip::HeaderName::Via,
        &format!("SIP/2.0/UDP {};branch=z9hG4bKst1", register.addr),
    );
    m.push(
        switchboard_tests::sip::HeaderName::From,
        "<sip:bob@switchboard.test>;tag=s",
    );
    m.push(
        switchboard_tests::sip::HeaderName::To,
        "<sip:bob@switchboard.test>",
    );
    m.push(switchboard_tests::sip::HeaderName::CallId, "stateless-1");
    m.push(switchboard_tests::sip::HeaderName::CSeq, "1 REGISTER");
    m.push(
        switchboard_tests::sip::HeaderName::Contact,
        &format!("<sip:bob@{}>", register.addr),
    );
    register.send(&m).await;
    assert_eq!(register.final_response().await.status(), Some(401));
    match daemon.command(Command::Stats).await.unwrap() {
        CommandReply::Stats(stats) => {
            assert_eq!(stats.transactions, 0, "nothing kept for a challenge")
        }
        other => panic!("{other:?}"),
    }
    daemon.stop().await;
}

/// A daemon with the admin API, TCP and these `[server]` keys.
async fn start_with_tcp(server_keys: &str) -> (Daemon, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sb.toml");
    let text = admin_config_text(&dir.path().join("data"), "").replacen(
        "sip_udp = \"127.0.0.1:0\"",
        &format!("sip_udp = \"127.0.0.1:0\"\nsip_tcp = \"127.0.0.1:0\"\n{server_keys}"),
        1,
    );
    std::fs::write(&file, text).unwrap();
    (
        Daemon::start(Config::load(&file).unwrap()).await.unwrap(),
        dir,
    )
}

/// Whether the daemon closes `stream` within `secs`.
async fn closed_by_daemon(mut stream: tokio::net::TcpStream, secs: u64) -> bool {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(secs), stream.read(&mut byte)).await;
    matches!(read, Ok(Ok(0) | Err(_)))
}

/// One source cannot hold every TCP connection: past `tcp_max_per_source`
/// its new connections are closed at once, while other sources connect.
#[tokio::test]
async fn tcp_connections_are_capped_per_source() {
    let (daemon, _dir) = start_with_tcp("tcp_max_per_source = 2").await;
    let server = daemon.tcp_addr.unwrap();
    let connect_from = |ip: &'static str| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        socket.connect(server).await.unwrap()
    };
    let _first = connect_from("127.0.0.8").await;
    let _second = connect_from("127.0.0.8").await;
    let third = connect_from("127.0.0.8").await;
    assert!(
        closed_by_daemon(third, 3).await,
        "the third connection is closed at once"
    );
    // Another source still gets in (and is served).
    let other = switchboard_tests::TcpUa::accepted(connect_from("127.0.0.9").await);
    let mut other = other;
    let resp = other.register("bob", "bob-pw").await;
    assert_eq!(resp.status(), Some(200));
    let (_, page) = api(
        daemon.admin_addr.unwrap(),
        "GET",
        "/metrics",
        None,
        Some(ADMIN_TOKEN),
    )
    .await;
    assert!(
        page.as_str()
            .unwrap()
            .contains("switchboard_tcp_connections_refused_total 1"),
        "{page}"
    );
    daemon.stop().await;
}

/// A UDP source address can be forged: answers over a nonce that was not
/// sent to that address get a fresh challenge and count toward nothing,
/// so a forger cannot get someone else's address banned.
#[tokio::test]
async fn forged_answers_are_challenged_and_ban_nobody() {
    use switchboard_tests::sip::HeaderName;
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path(), "").await;
    let server = daemon.udp_addr.unwrap();
    let mut victim = Ua::bind("127.0.0.10", server).await;
    for i in 0..10 {
        let mut m =
            switchboard_tests::register_request(&victim, "alice", &format!("forged-{i}"), 1);
        m.push(
            HeaderName::Authorization,
            "Digest username=\"alice\", realm=\"switchboard.test\", nonce=\"0123456789abcdef\", uri=\"sip:switchboard.test\", response=\"00000000000000000000000000000000\", algorithm=MD5",
        );
        victim.send(&m).await;
        assert_eq!(
            victim.final_response().await.status(),
            Some(401),
            "answer {i}"
        );
    }
    // Not banned: the real owner signs in.
    assert_eq!(
        victim
            .register("alice", "alice-pw", None, 300)
            .await
            .status(),
        Some(200)
    );
    daemon.stop().await;
}

/// A message that never finishes, or grows past what one may hold, costs
/// its connection: closed at `tcp_message_timeout` or `tcp_max_message`,
/// and counted by limit in the metrics.
#[tokio::test]
async fn tcp_messages_that_never_finish_or_grow_too_large_close_their_connection() {
    use tokio::io::AsyncWriteExt;
    let (daemon, _dir) = start_with_tcp("tcp_message_timeout = 1\ntcp_max_message = 8192").await;
    let server = daemon.tcp_addr.unwrap();
    // Half a message, then nothing: closed once its second is up.
    let mut slow = tokio::net::TcpStream::connect(server).await.unwrap();
    slow.write_all(b"REGISTER sip:switchboard.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKs\r\n")
        .await
        .unwrap();
    assert!(
        closed_by_daemon(slow, 5).await,
        "the unfinished message's connection stays open"
    );
    // Headers that never end, past 8,192 bytes: closed at once.
    let mut big = tokio::net::TcpStream::connect(server).await.unwrap();
    let mut request = b"REGISTER sip:switchboard.test SIP/2.0\r\n".to_vec();
    while request.len() < 10_000 {
        request.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    big.write_all(&request).await.unwrap();
    assert!(
        closed_by_daemon(big, 5).await,
        "the oversized message's connection stays open"
    );
    // A whole message is still served.
    let mut ua = switchboard_tests::TcpUa::connect(server).await;
    assert_eq!(ua.register("bob", "bob-pw").await.status(), Some(200));
    let (_, page) = api(
        daemon.admin_addr.unwrap(),
        "GET",
        "/metrics",
        None,
        Some(ADMIN_TOKEN),
    )
    .await;
    let page = page.as_str().unwrap().to_string();
    for line in [
        "switchboard_limit_hits_total{limit=\"tcp_message_timeout\"} 1",
        "switchboard_limit_hits_total{limit=\"tcp_message_size\"} 1",
        "switchboard_limit_hits_total{limit=\"calls\"} 0",
    ] {
        assert!(page.contains(line), "no {line:?} in\n{page}");
    }
    daemon.stop().await;
}
