//! The registrar over real UDP: digest auth, bindings, expiry, persistence.
#![allow(clippy::unwrap_used)]

use switchboard::server::Daemon;
use switchboard_tests::sip::auth::Algorithm;
use switchboard_tests::sip::{HeaderName, Message, Method};
use switchboard_tests::{test_config, Ua};

async fn start_in(dir: &std::path::Path, extra: &str) -> Daemon {
    Daemon::start(test_config(dir, extra)).await.unwrap()
}

fn contacts(resp: &Message) -> Vec<String> {
    resp.values(HeaderName::Contact)
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn sign_in_with_md5_and_sha256_and_the_200_lists_bindings() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_in(dir.path(), "").await;
    let server = daemon.udp_addr.unwrap();
    let mut phone = Ua::bind("127.0.0.1", server).await;
    let ok = phone.register("alice", "alice-pw", Some(5081), 300).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        contacts(&ok),
        vec!["<sip:alice@127.0.0.1:5081>;expires=300".to_string()]
    );

    let ok = phone
        .register_with("alice", "alice-pw", Some(5082), 120, Algorithm::Sha256)
        .await;
    assert_eq!(ok.status(), Some(200));
    let mut listed = contacts(&ok);
    listed.sort();
    assert_eq!(
        listed,
        vec![
            "<sip:alice@127.0.0.1:5081>;expires=300".to_string(),
            "<sip:alice@127.0.0.1:5082>;expires=120".to_string()
        ]
    );
    assert!(daemon.presence.user("alice").is_signed_in(now_ms()));
    daemon.stop().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_in(dir.path(), "").await;
    let server = daemon.udp_addr.unwrap();
    let mut phone = Ua::bind("127.0.0.1", server).await;
    let wrong = phone.register("alice", "nope", None, 300).await;
    let unknown = phone.register("mallory", "nope", None, 300).await;
    assert_eq!(wrong.status(), Some(403));
    assert_eq!(unknown.status(), Some(403));
    assert_eq!(wrong.reason(), unknown.reason());
    assert!(!daemon.presence.user("alice").is_signed_in(now_ms()));
    daemon.stop().await;
}

#[tokio::test]
async fn invited_user_cannot_sign_in_even_with_the_right_password() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_in(dir.path(), "").await;
    let mut phone = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let resp = phone.register("dave", "dave-pw", None, 300).await;
    assert_eq!(resp.status(), Some(403));
    assert!(!daemon.presence.user("dave").is_signed_in(now_ms()));
    // The right password must not confirm itself: the same answer as a
    // wrong one.
    let wrong = phone.register("dave", "not-dave-pw", None, 300).await;
    assert_eq!(wrong.status(), Some(403));
    assert_eq!(resp.reason(), wrong.reason());
    assert_eq!(resp.reason(), Some("Forbidden"));
    daemon.stop().await;
}

/// A user kept as HA1 values only (realm `switchboard.test`).
const HANA: &str = r#"
[[users]]
id = "hana"
name = "Hana"
status = "active"
ha1_md5 = "HA1MD5"
ha1_sha256 = "HA1SHA"
"#;

fn hana_config() -> String {
    use switchboard_tests::sip::auth::ha1;
    HANA.replace(
        "HA1MD5",
        &ha1(Algorithm::Md5, "hana", "switchboard.test", "hana-pw"),
    )
    .replace(
        "HA1SHA",
        &ha1(Algorithm::Sha256, "hana", "switchboard.test", "hana-pw").to_uppercase(),
    )
}

#[tokio::test]
async fn ha1_credentials_sign_in_with_md5_and_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_in(dir.path(), &hana_config()).await;
    let mut phone = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
        let resp = phone
            .register_with("hana", "hana-pw", None, 300, algorithm)
            .await;
        assert_eq!(resp.status(), Some(200), "{algorithm:?}");
        let wrong = phone
            .register_with("hana", "hana-pw2", None, 300, algorithm)
            .await;
        assert_eq!(wrong.status(), Some(403), "{algorithm:?}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn an_answer_for_an_algorithm_not_offered_gets_a_fresh_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let text = switchboard_tests::test_config_text(dir.path(), "").replace(
        "digest_algorithms = [\"MD5\", \"SHA-256\"]",
        "digest_algorithms = [\"MD5\"]",
    );
    let config =
        switchboard::settings::Config::parse(&text, std::path::Path::new("t.toml"), dir.path())
            .unwrap();
    let daemon = Daemon::start(config).await.unwrap();
    let mut phone = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let mut register = Message::request(Method::Register, "sip:switchboard.test");
    register.push(
        HeaderName::Via,
        &format!("SIP/2.0/UDP {};branch=z9hG4bKalg1;rport", phone.addr),
    );
    register.push(HeaderName::From, "<sip:bob@switchboard.test>;tag=a1");
    register.push(HeaderName::To, "<sip:bob@switchboard.test>");
    register.push(HeaderName::CallId, "alg-1");
    register.push(HeaderName::CSeq, "1 REGISTER");
    register.push(HeaderName::Contact, &format!("<sip:bob@{}>", phone.addr));
    register.push(HeaderName::MaxForwards, "70");
    register.push(
        HeaderName::Authorization,
        "Digest username=\"bob\", realm=\"switchboard.test\", nonce=\"x\", uri=\"sip:switchboard.test\", response=\"00\", algorithm=SHA-256",
    );
    phone.send(&register).await;
    let resp = phone.final_response().await;
    assert_eq!(resp.status(), Some(401), "{resp}");
    daemon.stop().await;
}

#[test]
fn config_errors_never_show_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let text = switchboard_tests::test_config_text(dir.path(), "")
        .replace("password = \"bob-pw\"", "password = 424242")
        .replace(
            "sip_udp = \"127.0.0.1:0\"",
            "sip_udp = \"127.0.0.1:0\"\nadmin_token = 1234567890123456",
        );
    let errors =
        switchboard::settings::Config::parse(&text, std::path::Path::new("t.toml"), dir.path())
            .err()
            .unwrap()
            .to_string();
    assert!(errors.contains("users[1].password"), "{errors}");
    assert!(errors.contains("server.admin_token"), "{errors}");
    assert!(
        !errors.contains("424242") && !errors.contains("1234567890123456"),
        "{errors}"
    );
    let bad_ha1 = switchboard_tests::test_config_text(dir.path(), "")
        .replace("password = \"bob-pw\"", "ha1_md5 = \"secret-but-not-hex\"");
    let errors =
        switchboard::settings::Config::parse(&bad_ha1, std::path::Path::new("t.toml"), dir.path())
            .err()
            .unwrap()
            .to_string();
    assert!(
        errors.contains("users[1].ha1_md5") && !errors.contains("secret-but-not-hex"),
        "{errors}"
    );
}

#[tokio::test]
async fn too_brief_is_423_and_too_long_is_cut_to_the_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_in(dir.path(), "").await;
    let mut phone = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let resp = phone.register("bob", "bob-pw", None, 10).await;
    assert_eq!(resp.status(), Some(423));
    assert_eq!(resp.header(HeaderName::MinExpires), Some("60"));
    let resp = phone.register("bob", "bob-pw", None, 99_999).await;
    assert_eq!(resp.status(), Some(200));
    assert!(contacts(&resp)[0].ends_with(";expires=3600"));
    daemon.stop().await;
}

#[tokio::test]
async fn expires_zero_removes_one_device_and_wildcard_removes_all() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_in(dir.path(), "").await;
    let mut phone = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    assert_eq!(
        phone
            .register("bob", "bob-pw", Some(6001), 300)
            .await
            .status(),
        Some(200)
    );
    assert_eq!(
        phone
            .register("bob", "bob-pw", Some(6002), 300)
            .await
            .status(),
        Some(200)
    );
    let resp = phone.register("bob", "bob-pw", Some(6001), 0).await;
    assert_eq!(
        contacts(&resp),
        vec!["<sip:bob@127.0.0.1:6002>;expires=300".to_string()]
    );

    // Contact: * with Expires: 0 (RFC 3261 §10.2.2), authenticated.
    let call_id = "wild-1";
    let mut first = Message::request(Method::Register, "sip:switchboard.test");
    first.push(
        HeaderName::Via,
        &format!("SIP/2.0/UDP {};branch=z9hG4bKw1", phone.addr),
    );
    first.push(HeaderName::From, "<sip:bob@switchboard.test>;tag=w");
    first.push(HeaderName::To, "<sip:bob@switchboard.test>");
    first.push(HeaderName::CallId, call_id);
    first.push(HeaderName::CSeq, "1 REGISTER");
    first.push(HeaderName::Contact, "*");
    first.push(HeaderName::Expires, "0");
    phone.send(&first).await;
    let challenge = phone.final_response().await;
    assert_eq!(challenge.status(), Some(401));
    let mut second = first.clone();
    second.set(
        HeaderName::Via,
        &format!("SIP/2.0/UDP {};branch=z9hG4bKw2", phone.addr),
    );
    second.set(HeaderName::CSeq, "2 REGISTER");
    second.push(
        HeaderName::Authorization,
        &switchboard_tests::digest_answer(
            &challenge,
            HeaderName::WwwAuthenticate,
            Algorithm::Md5,
            "bob",
            "bob-pw",
            "REGISTER",
            "sip:switchboard.test",
        ),
    );
    phone.send(&second).await;
    let ok = phone.final_response().await;
    assert_eq!(ok.status(), Some(200));
    assert!(contacts(&ok).is_empty());
    assert!(!daemon.presence.user("bob").is_signed_in(now_ms()));
    daemon.stop().await;
}

#[tokio::test]
async fn bindings_expire_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_in(dir.path(), "").await;
    let mut phone = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    // The test config allows 60 s at least; register, then check the expiry
    // instant the registrar computed instead of waiting a minute.
    let before = now_ms();
    assert_eq!(
        phone.register("carol", "carol-pw", None, 60).await.status(),
        Some(200)
    );
    let bindings = daemon.presence.user("carol").bindings(now_ms());
    assert_eq!(bindings.len(), 1);
    let expires = bindings[0].expires_at_ms;
    assert!(expires >= before + 60_000 && expires <= now_ms() + 60_000);
    assert!(daemon.presence.user("carol").is_signed_in(expires - 1));
    assert!(!daemon.presence.user("carol").is_signed_in(expires));
    daemon.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_every_binding() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_in(dir.path(), "").await;
    let mut phone = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    assert_eq!(
        phone.register("bob", "bob-pw", None, 300).await.status(),
        Some(200)
    );
    daemon.stop().await;
    assert!(dir.path().join("registrations.json").exists());

    let daemon = start_in(dir.path(), "").await;
    assert!(daemon.presence.user("bob").is_signed_in(now_ms()));
    // And the restored binding rings: a trunk call to bob's direct line.
    let mut trunk = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let mut phone = phone_rebound(phone, daemon.udp_addr.unwrap());
    let invite = trunk.invite("+15550200", "+15551234567");
    trunk.send(&invite).await;
    let at_phone = phone.expect_request(Method::Invite).await;
    phone.respond(&at_phone, 486, Some("busy1"), None).await;
    assert_eq!(trunk.final_response().await.status(), Some(486));
    daemon.stop().await;
}

/// The same socket talking to a restarted daemon on a new port.
fn phone_rebound(mut phone: Ua, server: std::net::SocketAddr) -> Ua {
    phone.server = server;
    phone
}

#[tokio::test]
async fn garbage_and_oversized_messages_do_not_stop_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_in(dir.path(), "").await;
    let mut ua = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    ua.send_raw(b"\x00\xff garbage \r\n\r\n").await;
    ua.send_raw(&vec![b'A'; 65_000]).await;
    // A request missing Call-ID gets a 400 that names the problem.
    let raw = format!(
        "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKbad\r\n\
         From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        ua.addr
    );
    ua.send_raw(raw.as_bytes()).await;
    let resp = ua.final_response().await;
    assert_eq!(resp.status(), Some(400));
    assert!(resp.reason().unwrap().contains("Call-ID"), "{resp}");
    // Content-Length beyond the datagram: refused with 400.
    let raw = format!(
        "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKshort\r\n\
         From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 500\r\n\r\nabc",
        ua.addr
    );
    ua.send_raw(raw.as_bytes()).await;
    assert_eq!(ua.final_response().await.status(), Some(400));
    // Still serving.
    assert_eq!(
        ua.register("alice", "alice-pw", None, 300).await.status(),
        Some(200)
    );
    daemon.stop().await;
}

#[tokio::test]
async fn options_and_unknown_methods() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_in(dir.path(), "").await;
    let mut ua = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    for (method, status) in [("OPTIONS", 200), ("FOO", 501), ("SUBSCRIBE", 405)] {
        let raw = format!(
            "{method} sip:switchboard@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK{method}\r\n\
             From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: {method}-1\r\nCSeq: 1 {method}\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            ua.addr
        );
        ua.send_raw(raw.as_bytes()).await;
        let resp = ua.final_response().await;
        assert_eq!(resp.status(), Some(status), "{method}");
    }
    daemon.stop().await;
}

/// The daemon's own wall clock, as its registrations see it.
fn now_ms() -> u64 {
    switchboard::clock::unix_ms()
}

/// RFC 3261 §10.3 step 7: within one Call-ID, a REGISTER whose CSeq is not
/// higher than the binding's is refused and changes nothing.
#[tokio::test]
async fn out_of_order_cseq_within_a_call_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_in(dir.path(), "").await;
    let mut phone = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let addr = phone.addr;
    let build = |cseq: u32, branch: &str, expires: u32, auth: Option<&str>| {
        let mut m = Message::request(Method::Register, "sip:switchboard.test");
        m.push(
            HeaderName::Via,
            &format!("SIP/2.0/UDP {addr};branch=z9hG4bK{branch}"),
        );
        m.push(HeaderName::From, "<sip:bob@switchboard.test>;tag=o");
        m.push(HeaderName::To, "<sip:bob@switchboard.test>");
        m.push(HeaderName::CallId, "ordering-1");
        m.push(HeaderName::CSeq, &format!("{cseq} REGISTER"));
        m.push(HeaderName::Contact, &format!("<sip:bob@{addr}>"));
        m.push(HeaderName::Expires, &expires.to_string());
        if let Some(a) = auth {
            m.push(HeaderName::Authorization, a);
        }
        m
    };
    phone.send(&build(1, "o1", 300, None)).await;
    let challenge = phone.final_response().await;
    // The same nonce, counted up each time (a replay would be challenged).
    let auth = |nc: u32| {
        switchboard_tests::digest_answer_nc(
            &challenge,
            HeaderName::WwwAuthenticate,
            Algorithm::Md5,
            "bob",
            "bob-pw",
            "REGISTER",
            "sip:switchboard.test",
            nc,
        )
    };
    phone.send(&build(5, "o2", 300, Some(&auth(1)))).await;
    assert_eq!(phone.final_response().await.status(), Some(200));
    // A stale REGISTER (CSeq 4 < 5) trying to sign the device out.
    phone.send(&build(4, "o3", 0, Some(&auth(2)))).await;
    assert_eq!(phone.final_response().await.status(), Some(500));
    assert!(daemon.presence.user("bob").is_signed_in(now_ms()));
    // A newer one does.
    phone.send(&build(6, "o4", 0, Some(&auth(3)))).await;
    assert_eq!(phone.final_response().await.status(), Some(200));
    assert!(!daemon.presence.user("bob").is_signed_in(now_ms()));
    daemon.stop().await;
}

#[tokio::test]
async fn outbound_flows_are_kept_apart_by_reg_id_and_echoed_in_the_200() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_in(dir.path(), "").await;
    let mut phone = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let instance = "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>\"";
    let flow = |port: u16, reg_id: u32| {
        format!("<sip:alice@127.0.0.1:{port};transport=tcp>;{instance};reg-id={reg_id}")
    };
    let ok = phone
        .register_contact("alice", "alice-pw", &flow(5081, 1), 300, Algorithm::Md5)
        .await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        contacts(&ok),
        [format!(
            "<sip:alice@127.0.0.1:5081;transport=tcp>;expires=300;{instance};reg-id=1"
        )]
    );
    let ok = phone
        .register_contact("alice", "alice-pw", &flow(5082, 2), 300, Algorithm::Md5)
        .await;
    let mut listed = contacts(&ok);
    listed.sort();
    assert_eq!(listed.len(), 2, "two flows, two bindings: {listed:?}");
    assert!(listed[0].ends_with("reg-id=1") && listed[1].ends_with("reg-id=2"));
    // Flow 1 again, from a new port: it replaces flow 1.
    let ok = phone
        .register_contact("alice", "alice-pw", &flow(5083, 1), 300, Algorithm::Md5)
        .await;
    let mut listed = contacts(&ok);
    listed.sort();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed
        .iter()
        .any(|c| c.contains(":5083;") && c.ends_with("reg-id=1")));
    assert!(!listed.iter().any(|c| c.contains(":5081;")));
    daemon.stop().await;
}

/// A captured Authorization cannot be used again: not from the same
/// address with the same count, and not from another address at all.
#[tokio::test]
async fn a_replayed_authorization_is_challenged_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_in(dir.path(), "").await;
    let server = daemon.udp_addr.unwrap();
    let mut phone = Ua::bind("127.0.0.1", server).await;
    let register = |ua: &Ua, branch: &str, contact: &str, expires: u32, auth: Option<&str>| {
        let mut m = Message::request(Method::Register, "sip:switchboard.test");
        m.push(
            HeaderName::Via,
            &format!("SIP/2.0/UDP {};branch=z9hG4bK{branch}", ua.addr),
        );
        m.push(HeaderName::From, "<sip:bob@switchboard.test>;tag=r");
        m.push(HeaderName::To, "<sip:bob@switchboard.test>");
        m.push(HeaderName::CallId, &format!("replay-{branch}"));
        m.push(HeaderName::CSeq, "1 REGISTER");
        m.push(HeaderName::Contact, contact);
        m.push(HeaderName::Expires, &expires.to_string());
        if let Some(a) = auth {
            m.push(HeaderName::Authorization, a);
        }
        m
    };
    let contact = format!("<sip:bob@{}>", phone.addr);
    phone
        .send(&register(&phone, "r1", &contact, 300, None))
        .await;
    let challenge = phone.final_response().await;
    let auth = switchboard_tests::digest_answer(
        &challenge,
        HeaderName::WwwAuthenticate,
        Algorithm::Md5,
        "bob",
        "bob-pw",
        "REGISTER",
        "sip:switchboard.test",
    );
    phone
        .send(&register(&phone, "r2", &contact, 300, Some(&auth)))
        .await;
    assert_eq!(phone.final_response().await.status(), Some(200));

    // The same header again, signing the phone out: challenged, not obeyed.
    phone
        .send(&register(&phone, "r3", &contact, 0, Some(&auth)))
        .await;
    assert_eq!(phone.final_response().await.status(), Some(401));
    assert!(daemon.presence.user("bob").is_signed_in(now_ms()));
    // From another address, adding the attacker's Contact: challenged.
    let mut attacker = Ua::bind("127.0.0.5", server).await;
    let evil = format!("<sip:bob@{}>", attacker.addr);
    attacker
        .send(&register(&attacker, "r4", &evil, 300, Some(&auth)))
        .await;
    assert_eq!(attacker.final_response().await.status(), Some(401));
    let bindings = daemon.presence.user("bob").bindings(now_ms());
    assert_eq!(bindings.len(), 1);
    assert!(!bindings[0].contact.contains("127.0.0.5"));
    daemon.stop().await;
}

/// RFC 7616 §3.4.6: the digest `uri` must be the Request-URI, so that
/// credentials computed for one request line do not serve another.
#[tokio::test]
async fn a_digest_for_another_uri_is_not_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_in(dir.path(), "").await;
    let mut phone = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let first = switchboard_tests::register_request(&phone, "bob", "uri-1", 1);
    phone.send(&first).await;
    let challenge = phone.final_response().await;
    let auth = switchboard_tests::digest_answer(
        &challenge,
        HeaderName::WwwAuthenticate,
        Algorithm::Md5,
        "bob",
        "bob-pw",
        "REGISTER",
        "sip:elsewhere.test",
    );
    let mut second = switchboard_tests::register_request(&phone, "bob", "uri-1", 2);
    second.push(HeaderName::Authorization, &auth);
    phone.send(&second).await;
    // A fresh challenge (not a counted failure: an SBC may rewrite it).
    assert_eq!(phone.final_response().await.status(), Some(401));
    assert!(!daemon.presence.user("bob").is_signed_in(now_ms()));
    daemon.stop().await;
}

/// A client that gives up on a challenge of several algorithms and asks
/// again without credentials (baresip 1.0) is challenged with MD5 alone;
/// others keep getting every algorithm.
#[tokio::test]
async fn a_retry_without_credentials_gets_an_md5_only_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_in(dir.path(), "").await;
    let mut phone = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let register = |ua: &Ua, cseq: u32, call_id: &str| {
        switchboard_tests::register_request(ua, "bob", call_id, cseq)
    };
    let challenges = |m: &Message| m.header_lines(HeaderName::WwwAuthenticate).count();
    phone.send(&register(&phone, 1, "md5-a")).await;
    assert_eq!(challenges(&phone.final_response().await), 2);
    phone.send(&register(&phone, 2, "md5-a")).await;
    let retry = phone.final_response().await;
    assert_eq!(challenges(&retry), 1);
    assert!(retry
        .header(HeaderName::WwwAuthenticate)
        .unwrap()
        .contains("algorithm=MD5"));
    // Another registration (another Call-ID) from the same address: both.
    phone.send(&register(&phone, 1, "md5-b")).await;
    assert_eq!(challenges(&phone.final_response().await), 2);
    daemon.stop().await;
}
