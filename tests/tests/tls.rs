//! SIP over TLS on loopback: a phone signs in over a TLS connection (with a
//! certificate made for the test, never committed) and is called over that
//! connection; `sips:` URIs are taken over TLS; a bad certificate or key is
//! refused at start with the key and the file named.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use switchboard::server::Daemon;
use switchboard::settings::Config;
use switchboard_tests::sip::{HeaderName, Message, Method};
use switchboard_tests::{sdp_answer, test_config_text, TcpUa, Ua};

/// A self-signed certificate for 127.0.0.1 (PEM files in `dir`), and its DER.
fn certificate(dir: &std::path::Path) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    cert.der().to_vec()
}

fn tls_config_text(dir: &std::path::Path) -> String {
    test_config_text(dir, "").replacen(
        "sip_udp = \"127.0.0.1:0\"",
        &format!(
            "sip_udp = \"127.0.0.1:0\"\nsip_tls = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        ),
        1,
    )
}

async fn start(dir: &std::path::Path) -> (Daemon, SocketAddr, SocketAddr) {
    let config = Config::parse(&tls_config_text(dir), std::path::Path::new("t.toml"), dir).unwrap();
    let daemon = Daemon::start(config).await.unwrap();
    let udp = daemon.udp_addr.unwrap();
    let tls = daemon.tls_addr.expect("the TLS listener");
    (daemon, udp, tls)
}

#[tokio::test]
async fn a_phone_signed_in_over_tls_is_called_over_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let der = certificate(dir.path());
    let (daemon, udp, tls) = start(dir.path()).await;

    let mut phone = TcpUa::connect_tls(tls, &der).await;
    let ok = phone.register("alice", "alice-pw").await;
    assert_eq!(ok.status(), Some(200), "{ok}");
    assert!(
        ok.header(HeaderName::Contact)
            .unwrap()
            .contains("transport=tls"),
        "{ok}"
    );

    let mut trunk = Ua::bind("127.0.0.1", udp).await;
    let invite = trunk.invite("+15550100", "+15551234567");
    trunk.send(&invite).await;
    let rung = phone.recv().await;
    assert_eq!(rung.method(), Some(&Method::Invite), "{rung}");
    let via = rung.header(HeaderName::Via).unwrap();
    assert!(via.starts_with("SIP/2.0/TLS "), "{via}");
    let contact = rung.header(HeaderName::Contact).unwrap();
    assert!(contact.contains("transport=tls"), "{contact}");

    let mut ringing =
        switchboard_tests::sip::build::response_to(&rung, 180, "Ringing", Some("tl"), false);
    ringing.push(
        HeaderName::Contact,
        &format!("<sip:alice@{};transport=tls>", phone.addr),
    );
    phone.send(&ringing).await;
    let mut answer =
        switchboard_tests::sip::build::response_to(&rung, 200, "OK", Some("tl"), false);
    answer.push(
        HeaderName::Contact,
        &format!("<sip:alice@{};transport=tls>", phone.addr),
    );
    answer.push(HeaderName::ContentType, "application/sdp");
    answer.set_body(sdp_answer(43000).into_bytes().into());
    phone.send(&answer).await;
    let ack = phone.recv().await;
    assert_eq!(ack.method(), Some(&Method::Ack), "{ack}");
    let ok = trunk.expect_response(200).await;
    trunk.ack_2xx(&invite, &ok).await;
    switchboard_tests::trunk_bye(&mut trunk, &invite, &ok).await;
    let bye = phone.recv().await;
    assert_eq!(bye.method(), Some(&Method::Bye), "{bye}");
    daemon.stop().await;
}

#[tokio::test]
async fn sips_uris_are_taken_over_tls_and_refused_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let der = certificate(dir.path());
    let (daemon, udp, tls) = start(dir.path()).await;

    let mut phone = TcpUa::connect_tls(tls, &der).await;
    let contact = format!("<sips:bob@{}>", phone.addr);
    let ok = phone.register_contact("bob", "bob-pw", &contact).await;
    assert_eq!(ok.status(), Some(200), "{ok}");

    // A sips: INVITE over TLS from alice's phone to bob: taken (and
    // authenticated like any user's call), and bob rings over his TLS
    // connection.
    let mut alice = TcpUa::connect_tls(tls, &der).await;
    let mut invite = Message::request(Method::Invite, "sips:bob@switchboard.test");
    invite.push(
        HeaderName::Via,
        &format!("SIP/2.0/TLS {};branch=z9hG4bKsips1", alice.addr),
    );
    invite.push(HeaderName::From, "<sips:alice@switchboard.test>;tag=s1");
    invite.push(HeaderName::To, "<sips:bob@switchboard.test>");
    invite.push(HeaderName::CallId, "sips-call");
    invite.push(HeaderName::CSeq, "1 INVITE");
    invite.push(HeaderName::MaxForwards, "70");
    invite.push(HeaderName::Contact, &format!("<sips:alice@{}>", alice.addr));
    alice.send(&invite).await;
    let challenge = alice.recv().await;
    assert_eq!(challenge.status(), Some(407), "{challenge}");
    let creds = switchboard_tests::digest_answer(
        &challenge,
        HeaderName::ProxyAuthenticate,
        switchboard_tests::sip::auth::Algorithm::Md5,
        "alice",
        "alice-pw",
        "INVITE",
        "sips:bob@switchboard.test",
    );
    let mut second = Message::request(Method::Invite, "sips:bob@switchboard.test");
    second.push(
        HeaderName::Via,
        &format!("SIP/2.0/TLS {};branch=z9hG4bKsips2", alice.addr),
    );
    second.push(HeaderName::From, "<sips:alice@switchboard.test>;tag=s1");
    second.push(HeaderName::To, "<sips:bob@switchboard.test>");
    second.push(HeaderName::CallId, "sips-call");
    second.push(HeaderName::CSeq, "2 INVITE");
    second.push(HeaderName::MaxForwards, "70");
    second.push(HeaderName::Contact, &format!("<sips:alice@{}>", alice.addr));
    second.push(HeaderName::ProxyAuthorization, &creds);
    alice.send(&second).await;
    let rung = phone.recv().await;
    assert_eq!(rung.method(), Some(&Method::Invite), "{rung}");
    assert!(rung
        .header(HeaderName::Via)
        .unwrap()
        .starts_with("SIP/2.0/TLS "));

    // The same scheme over plain UDP and TCP: refused, not served insecurely.
    let mut plain = Ua::bind("127.0.0.1", udp).await;
    let mut register = switchboard_tests::register_request(&plain, "bob", "sips-udp", 1);
    register.set_request_uri("sips:switchboard.test");
    plain.send(&register).await;
    let refused = plain.final_response().await;
    assert_eq!(refused.status(), Some(416), "{refused}");
    // ...and a sips: Contact we would have to call over UDP.
    let mut register = switchboard_tests::register_request(&plain, "bob", "sips-udp-2", 1);
    register.set(HeaderName::Contact, &format!("<sips:bob@{}>", plain.addr));
    plain.send(&register).await;
    assert_eq!(plain.final_response().await.status(), Some(416));
    daemon.stop().await;
}

#[tokio::test]
async fn a_missing_or_wrong_certificate_is_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    // No files at all.
    let config = Config::parse(
        &tls_config_text(dir.path()),
        std::path::Path::new("t.toml"),
        dir.path(),
    )
    .unwrap();
    let error = Daemon::start(config).await.err().unwrap();
    let text = format!("{error:#}");
    assert!(text.contains("server.tls_cert"), "{text}");
    // A certificate with another certificate's key.
    certificate(dir.path());
    let other = tempfile::tempdir().unwrap();
    certificate(other.path());
    std::fs::copy(other.path().join("key.pem"), dir.path().join("key.pem")).unwrap();
    let config = Config::parse(
        &tls_config_text(dir.path()),
        std::path::Path::new("t.toml"),
        dir.path(),
    )
    .unwrap();
    let text = format!("{:#}", Daemon::start(config).await.err().unwrap());
    assert!(text.contains("server.tls_key"), "{text}");
    // sip_tls without the files named in the config: a config error.
    let text = test_config_text(dir.path(), "").replacen(
        "sip_udp = \"127.0.0.1:0\"",
        "sip_udp = \"127.0.0.1:0\"\nsip_tls = \"127.0.0.1:0\"",
        1,
    );
    let errors = Config::parse(&text, std::path::Path::new("t.toml"), dir.path()).unwrap_err();
    let text = errors.to_string();
    assert!(
        text.contains("server.tls_cert") && text.contains("server.tls_key"),
        "{text}"
    );
}

#[tokio::test]
async fn closing_the_tls_connection_signs_the_phone_out() {
    let dir = tempfile::tempdir().unwrap();
    let der = certificate(dir.path());
    let (daemon, _udp, tls) = start(dir.path()).await;
    let mut phone = TcpUa::connect_tls(tls, &der).await;
    assert_eq!(
        phone.register("alice", "alice-pw").await.status(),
        Some(200)
    );
    assert_eq!(daemon.presence.user("alice").snapshot().len(), 1);
    drop(phone);
    for _ in 0..50 {
        if daemon.presence.user("alice").snapshot().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        daemon.presence.user("alice").snapshot().len(),
        0,
        "RFC 5626: the flow is gone"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_speak_tls_is_dropped_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let der = certificate(dir.path());
    let (daemon, _udp, tls) = start(dir.path()).await;
    // Plain SIP to the TLS port: the handshake fails and the connection closes.
    let mut plain = tokio::net::TcpStream::connect(tls).await.unwrap();
    let m = Message::request(Method::Options, "sip:switchboard.test");
    tokio::io::AsyncWriteExt::write_all(&mut plain, &m.encode())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(12),
        tokio::io::AsyncReadExt::read(&mut plain, &mut buf),
    )
    .await
    .expect("the daemon closes it");
    match read {
        Ok(0) | Err(_) => {}
        Ok(_) => assert_eq!(buf[0], 0x15, "a TLS alert, never a SIP answer"),
    }
    // A real client still gets in.
    let mut phone = TcpUa::connect_tls(tls, &der).await;
    assert_eq!(
        phone.register("alice", "alice-pw").await.status(),
        Some(200)
    );
    daemon.stop().await;
}
