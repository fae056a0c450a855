//! TCP: framing by Content-Length, and calls reach a device over the
//! connection it registered on.
#![allow(clippy::unwrap_used)]

use switchboard::server::Daemon;
use switchboard_tests::sip::auth::Algorithm;
use switchboard_tests::sip::build::response_to;
use switchboard_tests::sip::{HeaderName, Method};
use switchboard_tests::{sdp_answer, test_config, TcpUa, Ua};

/// The test daemon with a TCP listener too (127.0.0.1, port 0).
async fn start_with_tcp(dir: &std::path::Path) -> Daemon {
    let mut config = test_config(dir, "");
    config.server.sip_tcp = Some("127.0.0.1:0".parse().unwrap());
    Daemon::start(config).await.unwrap()
}

#[tokio::test]
async fn a_device_registered_over_tcp_is_called_over_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_tcp(dir.path()).await;
    let mut phone = TcpUa::connect(daemon.tcp_addr.unwrap()).await;
    let ok = phone.register("bob", "bob-pw").await;
    assert_eq!(ok.status(), Some(200), "{ok}");

    let mut trunk = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let invite = trunk.invite("+15550200", "+15551234567");
    trunk.send(&invite).await;
    let at_phone = phone.recv().await;
    assert_eq!(at_phone.method(), Some(&Method::Invite));
    assert!(at_phone
        .top_via()
        .unwrap()
        .transport
        .eq_ignore_ascii_case("TCP"));
    let mut busy =
        switchboard_tests::sip::build::response_to(&at_phone, 486, "Busy Here", Some("t"), false);
    busy.push(
        HeaderName::Contact,
        &format!("<sip:bob@{};transport=tcp>", phone.addr),
    );
    phone.send(&busy).await;
    let ack = phone.recv().await;
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(trunk.final_response().await.status(), Some(486));
    daemon.stop().await;
}

#[tokio::test]
async fn glued_and_split_messages_are_framed() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_tcp(dir.path()).await;
    let addr = daemon.tcp_addr.unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    let options = |n: u32| {
        format!(
            "OPTIONS sip:switchboard@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKo{n}\r\n\
             From: <sip:a@b>;tag=1\r\nTo: <sip:s@b>\r\nCall-ID: o{n}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Two messages in one write, then one in two writes with a keep-alive first.
    let glued = format!("{}{}", options(1), options(2));
    stream.write_all(glued.as_bytes()).await.unwrap();
    let third = format!("\r\n\r\n{}", options(3));
    let (a, b) = third.split_at(40);
    stream.write_all(a.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    stream.write_all(b.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 8192];
    while got.iter().filter(|&&b| b == b'\n').count() < 1
        || String::from_utf8_lossy(&got).matches("SIP/2.0 200").count() < 3
    {
        let n = tokio::time::timeout(std::time::Duration::from_secs(3), stream.read(&mut buf))
            .await
            .expect("three answers")
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    for n in 1..=3 {
        assert!(text.contains(&format!("CSeq: {n} OPTIONS")), "{text}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn closing_the_connection_signs_the_device_out() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_tcp(dir.path()).await;
    let mut phone = TcpUa::connect(daemon.tcp_addr.unwrap()).await;
    assert_eq!(phone.register("bob", "bob-pw").await.status(), Some(200));
    drop(phone);
    // The flow is gone, so is the binding (RFC 5626 §5.5): bob's line
    // answers 480 at once instead of ringing a dead connection.
    let mut trunk = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let mut status = None;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if !daemon.presence.user("bob").snapshot().is_empty() {
            continue;
        }
        let invite = trunk.invite("+15550200", "+15551234567");
        trunk.send(&invite).await;
        status = trunk.final_response().await.status();
        break;
    }
    assert_eq!(status, Some(480));
    daemon.stop().await;
}

#[tokio::test]
async fn via_and_contact_carry_the_advertised_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), "");
    config.server.advertise = Some("127.0.0.5".parse().unwrap());
    let daemon = Daemon::start(config).await.unwrap();
    let server = daemon.udp_addr.unwrap();
    let mut phone = Ua::bind("127.0.0.1", server).await;
    assert_eq!(
        phone.register("bob", "bob-pw", None, 300).await.status(),
        Some(200)
    );
    let mut trunk = Ua::bind("127.0.0.1", server).await;
    let call = trunk.invite("+15550200", "+15551234567");
    trunk.send(&call).await;
    let invite = phone.expect_request(Method::Invite).await;
    let advertised = format!("127.0.0.5:{}", server.port());
    assert_eq!(
        invite.top_via().unwrap().host,
        "127.0.0.5",
        "Via names the advertised address"
    );
    assert!(invite
        .header(HeaderName::Contact)
        .unwrap()
        .contains(&advertised));
    daemon.stop().await;
}

/// RFC 3261 §18.2.2: without `rport`, UDP responses go to the Via's
/// sent-by port, not the port the request came from, for every response of
/// the transaction (the 100, the final, and its retransmissions).
#[tokio::test]
async fn udp_responses_go_to_the_via_port_when_the_request_has_no_rport() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(test_config(dir.path(), "")).await.unwrap();
    let server = daemon.udp_addr.unwrap();
    let sender = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let listener = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let via_port = listener.local_addr().unwrap().port();
    let invite = format!(
        "INVITE sip:+15559999@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{via_port};branch=z9hG4bK-norport-1\r\n\
         From: <sip:+15551234567@127.0.0.1>;tag=np1\r\n\
         To: <sip:+15559999@127.0.0.1>\r\n\
         Call-ID: norport-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
         Contact: <sip:trunk@127.0.0.1:{via_port}>\r\nContent-Length: 0\r\n\r\n"
    );
    sender.send_to(invite.as_bytes(), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut statuses = Vec::new();
    while statuses.len() < 2 {
        let (n, _) = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            listener.recv_from(&mut buf),
        )
        .await
        .expect("the responses reach the Via port")
        .unwrap();
        let msg = switchboard_tests::sip::Message::parse(&buf[..n]).unwrap();
        statuses.push(msg.status().unwrap());
    }
    assert_eq!(statuses, vec![100, 404], "Trying, then the final");
    // Nothing came back to the sending port.
    let quiet = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        sender.recv_from(&mut buf),
    )
    .await;
    assert!(quiet.is_err(), "nothing goes to the source port");
    // With rport, the source port it is (RFC 3581).
    let with_rport = invite
        .replace(";branch=z9hG4bK-norport-1", ";branch=z9hG4bK-rport-2;rport")
        .replace("norport-1", "rport-2");
    sender.send_to(with_rport.as_bytes(), server).await.unwrap();
    let (n, _) = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        sender.recv_from(&mut buf),
    )
    .await
    .expect("the response at the source port")
    .unwrap();
    let msg = switchboard_tests::sip::Message::parse(&buf[..n]).unwrap();
    assert_eq!(msg.status(), Some(100));
    daemon.stop().await;
}

/// RFC 5626 §4.4.1: a phone's double-CRLF keep-alive ping over TCP gets a
/// CRLF pong, so it knows its flow is alive.
#[tokio::test]
async fn a_crlf_ping_over_tcp_gets_a_crlf_pong() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_tcp(dir.path()).await;
    let mut stream = tokio::net::TcpStream::connect(daemon.tcp_addr.unwrap())
        .await
        .unwrap();
    stream.write_all(b"\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(std::time::Duration::from_secs(3), stream.read(&mut buf))
        .await
        .expect("a pong")
        .unwrap();
    assert_eq!(&buf[..n], b"\r\n");
    // A ping written in two halves is still one ping (it may come in two reads).
    stream.set_nodelay(true).unwrap();
    stream.write_all(b"\r\n").await.unwrap();
    stream.flush().await.unwrap();
    // Apart, so that the daemon reads the halves separately (not a timing
    // assertion: the pong is awaited either way).
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stream.write_all(b"\r\n").await.unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(3), stream.read(&mut buf))
        .await
        .expect("a pong for the split ping")
        .unwrap();
    assert_eq!(&buf[..n], b"\r\n");
    daemon.stop().await;
}

/// A phone's TCP listening socket at `addr` (reusable at once, like a
/// phone's SIP port after a restart).
fn listen_at(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    socket.listen(8).unwrap()
}

async fn accept_within(listener: &tokio::net::TcpListener) -> TcpUa {
    let (stream, _) = tokio::time::timeout(std::time::Duration::from_secs(5), listener.accept())
        .await
        .expect("the daemon connects to the phone")
        .unwrap();
    TcpUa::accepted(stream)
}

#[tokio::test]
async fn a_contact_with_transport_tcp_is_called_over_a_new_tcp_connection() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_tcp(dir.path()).await;
    let listener = listen_at("127.0.0.1:0".parse().unwrap());
    let phone_port = listener.local_addr().unwrap().port();
    // Registered over UDP, but the Contact says TCP (RFC 3261 §19.1.1).
    let mut registrar = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let contact = format!("<sip:bob@127.0.0.1:{phone_port};transport=tcp>");
    let ok = registrar
        .register_contact("bob", "bob-pw", &contact, 300, Algorithm::Md5)
        .await;
    assert_eq!(ok.status(), Some(200));

    let mut trunk = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let invite = trunk.invite("+15550200", "+15551234567");
    trunk.send(&invite).await;
    let mut phone = accept_within(&listener).await;
    let at_phone = phone.recv().await;
    assert_eq!(at_phone.method(), Some(&Method::Invite));
    let via = at_phone.top_via().unwrap();
    assert!(via.transport.eq_ignore_ascii_case("TCP"), "{at_phone}");
    let mut ok = response_to(&at_phone, 200, "OK", Some("tcp-bob"), false);
    ok.push(HeaderName::Contact, &contact);
    ok.push(HeaderName::ContentType, "application/sdp");
    ok.set_body(sdp_answer(4000).into());
    phone.send(&ok).await;
    assert_eq!(phone.recv().await.method(), Some(&Method::Ack));
    let answered = trunk.final_response().await;
    assert_eq!(answered.status(), Some(200));
    trunk.ack_2xx(&invite, &answered).await;
    // The trunk hangs up: the BYE reaches the phone on the same connection.
    let target = answered
        .values(HeaderName::Contact)
        .next()
        .and_then(switchboard_tests::sip::NameAddr::parse)
        .unwrap()
        .uri
        .to_string();
    trunk
        .in_dialog(
            Method::Bye,
            &target,
            invite.header(HeaderName::From).unwrap(),
            answered.header(HeaderName::To).unwrap(),
            invite.call_id().unwrap(),
            2,
        )
        .await;
    let bye = phone.recv().await;
    assert_eq!(bye.method(), Some(&Method::Bye));
    phone.send(&response_to(&bye, 200, "OK", None, false)).await;
    assert_eq!(trunk.final_response().await.status(), Some(200));
    daemon.stop().await;
}

#[tokio::test]
async fn a_tcp_binding_restored_after_a_restart_is_called_over_tcp_not_udp() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_tcp(dir.path()).await;
    let mut phone = TcpUa::connect(daemon.tcp_addr.unwrap()).await;
    // No transport parameter: only the binding knows it came over TCP.
    let contact = format!("<sip:bob@{}>", phone.addr);
    let ok = phone.register_contact("bob", "bob-pw", &contact).await;
    assert_eq!(ok.status(), Some(200));
    let phone_addr = phone.addr;
    daemon.stop().await;
    drop(phone);

    // The phone listens where its Contact says; the daemon comes back.
    let listener = listen_at(phone_addr);
    let daemon = start_with_tcp(dir.path()).await;
    let mut trunk = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let invite = trunk.invite("+15550200", "+15551234567");
    trunk.send(&invite).await;
    let mut phone = accept_within(&listener).await;
    let at_phone = phone.recv().await;
    assert_eq!(at_phone.method(), Some(&Method::Invite));
    phone
        .send(&response_to(&at_phone, 486, "Busy Here", Some("t"), false))
        .await;
    assert_eq!(phone.recv().await.method(), Some(&Method::Ack));
    assert_eq!(trunk.final_response().await.status(), Some(486));
    daemon.stop().await;
}

#[tokio::test]
async fn a_tcp_contact_nobody_listens_at_fails_at_once_not_at_timer_b() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_tcp(dir.path()).await;
    // A port that was free a moment ago and has no listener now.
    let port = listen_at("127.0.0.1:0".parse().unwrap())
        .local_addr()
        .unwrap()
        .port();
    let mut registrar = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let contact = format!("<sip:bob@127.0.0.1:{port};transport=tcp>");
    let ok = registrar
        .register_contact("bob", "bob-pw", &contact, 300, Algorithm::Md5)
        .await;
    assert_eq!(ok.status(), Some(200));
    let mut trunk = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let invite = trunk.invite("+15550200", "+15551234567");
    trunk.send(&invite).await;
    // Within the test UA's wait (3 s), far below Timer B's 32 s.
    assert_eq!(trunk.final_response().await.status(), Some(480));
    daemon.stop().await;
}
