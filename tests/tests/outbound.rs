//! Outbound and internal calls over real SIP on loopback: a user's phone
//! places a call (407, digest), and the daemon takes it out through the
//! trunk with the line as caller ID, to a colleague, or to one of the
//! workspace's own numbers; every answered call counts toward busy.
//!
//! The phones send from 127.0.0.1, the trunk's own source: they are told
//! apart from the carrier by what they say they are.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use switchboard::records::{history, Query, Row};
use switchboard::server::Daemon;
use switchboard::settings::Config;
use switchboard_tests::sip::build::response_to;
use switchboard_tests::sip::{auth, HeaderName, Message, Method};
use switchboard_tests::{answer, digest_answer, sdp_answer, test_config_text, Ua, SDP_OFFER, WAIT};

const RULES: &str = r#"
[outbound]
country_code = "+33"
national_prefix = "0"
deny = ["+1900*", "+44 9*"]
emergency = ["112", "911", "15", "17", "18"]
"#;

struct Env {
    daemon: Daemon,
    server: SocketAddr,
    carrier: Ua,
    data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

/// The test workspace with a trunk whose outbound side is `carrier`, the
/// rules above, and extensions: alice 101, bob 102, carol 103. frank is a
/// member of no number.
async fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let carrier_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let carrier_addr = carrier_socket.local_addr().unwrap();
    drop(carrier_socket);
    let mut text = test_config_text(dir.path(), RULES).replacen(
        "sources = [\"127.0.0.1/32\"]",
        &format!(
            "sources = [\"127.0.0.1/32\"]\noutbound = {{ address = \"{carrier_addr}\", username = \"acct\", password = \"trunk-secret\" }}"
        ),
        1,
    );
    for (user, ext) in [("alice", "101"), ("bob", "102"), ("carol", "103")] {
        text = text.replacen(
            &format!("id = \"{user}\"\n"),
            &format!("id = \"{user}\"\nextension = \"{ext}\"\n"),
            1,
        );
    }
    let config = Config::parse(&text, std::path::Path::new("test.toml"), dir.path()).unwrap();
    let daemon = Daemon::start(config).await.unwrap();
    let server = daemon.udp_addr.unwrap();
    let carrier = Ua::bind_at(carrier_addr, server).await;
    Env {
        daemon,
        server,
        carrier,
        data_dir: dir.path().to_path_buf(),
        _dir: dir,
    }
}

impl Env {
    async fn phone(&self, user: &str) -> Ua {
        let mut ua = Ua::bind("127.0.0.1", self.server).await;
        let resp = ua.register(user, &format!("{user}-pw"), None, 300).await;
        assert_eq!(resp.status(), Some(200), "{user}: {resp}");
        ua
    }

    /// The newest record placed by `user`, once the writer has it.
    async fn record_by(&self, user: &str, call_id: &str) -> Row {
        for _ in 0..40 {
            let query = Query {
                since: None,
                number: None,
                user: Some(user.to_string()),
                limit: 50,
            };
            if let Some(row) = history(&self.data_dir, &query)
                .unwrap()
                .into_iter()
                .find(|r| r.call_id == call_id)
            {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no record of {call_id} placed by {user}");
    }
}

/// An INVITE from `user`'s phone to `dialled`, as a softphone sends it.
fn user_invite(phone: &mut Ua, user: &str, dialled: &str, call_id: &str, cseq: u32) -> Message {
    let uri = format!("sip:{dialled}@switchboard.test");
    let mut m = Message::request(Method::Invite, &uri);
    let branch = phone.unique("z9hG4bKout");
    m.push(
        HeaderName::Via,
        &format!("SIP/2.0/UDP {};branch={branch};rport", phone.addr),
    );
    m.push(
        HeaderName::From,
        &format!("\"Softphone\" <sip:{user}@switchboard.test>;tag=ph-{call_id}"),
    );
    m.push(HeaderName::To, &format!("<{uri}>"));
    m.push(HeaderName::CallId, call_id);
    m.push(HeaderName::CSeq, &format!("{cseq} INVITE"));
    m.push(HeaderName::Contact, &format!("<sip:{user}@{}>", phone.addr));
    m.push(HeaderName::MaxForwards, "70");
    m.push(HeaderName::ContentType, "application/sdp");
    m.set_body(SDP_OFFER.as_bytes().to_vec().into());
    m
}

/// `user` dials `dialled`: the daemon's 407 is ACKed and answered with
/// `password`. Returns the INVITE that carried the credentials.
async fn dial(phone: &mut Ua, user: &str, password: &str, dialled: &str) -> Message {
    let call_id = phone.unique("out-");
    let first = user_invite(phone, user, dialled, &call_id, 1);
    phone.send(&first).await;
    let challenge = phone.expect_response(407).await;
    phone.ack_non_2xx(&first, &challenge).await;
    let uri = first.request_uri().unwrap().to_string();
    let creds = digest_answer(
        &challenge,
        HeaderName::ProxyAuthenticate,
        auth::Algorithm::Md5,
        user,
        password,
        "INVITE",
        &uri,
    );
    let mut second = user_invite(phone, user, dialled, &call_id, 2);
    second.push(HeaderName::ProxyAuthorization, &creds);
    phone.send(&second).await;
    second
}

/// The carrier's side of a call out: challenge the first INVITE with a
/// 407 of its own, check the trunk's credentials on the second, then ring
/// and answer. Returns the INVITE it answered.
async fn carrier_answers(carrier: &mut Ua) -> Message {
    let first = carrier.expect_request(Method::Invite).await;
    let mut challenge = response_to(
        &first,
        407,
        "Proxy Authentication Required",
        Some("car1"),
        false,
    );
    challenge.push(
        HeaderName::ProxyAuthenticate,
        &auth::challenge("carrier.test", "c4rr1er", auth::Algorithm::Md5, false),
    );
    carrier.send(&challenge).await;
    carrier.expect_request(Method::Ack).await;
    let second = carrier.expect_request(Method::Invite).await;
    assert_eq!(
        second.request_uri(),
        first.request_uri(),
        "the same call again"
    );
    let creds =
        auth::parse_credentials(second.header(HeaderName::ProxyAuthorization).unwrap()).unwrap();
    assert_eq!(creds.username, "acct");
    let ha1 = auth::ha1(auth::Algorithm::Md5, "acct", "carrier.test", "trunk-secret");
    assert!(
        auth::verify(&creds, "INVITE", &ha1),
        "the trunk's credentials"
    );
    carrier.respond(&second, 180, Some("car2"), None).await;
    carrier
        .respond(&second, 200, Some("car2"), Some(&sdp_answer(44000)))
        .await;
    carrier.expect_request(Method::Ack).await;
    second
}

fn header<'m>(m: &'m Message, name: &str) -> Option<&'m str> {
    m.headers()
        .find(|(_, raw, _)| raw.eq_ignore_ascii_case(name))
        .map(|(_, _, v)| v)
}

/// The caller's ACK for the 200 of its (authenticated) INVITE.
async fn ack(phone: &mut Ua, invite: &Message) -> Message {
    let ok = phone.expect_response(200).await;
    phone.ack_2xx(invite, &ok).await;
    ok
}

#[tokio::test]
async fn a_user_calls_out_with_their_line_and_is_busy_for_inbound_calls_meanwhile() {
    let mut env = start().await;
    let mut alice = env.phone("alice").await;
    let mut bob = env.phone("bob").await;

    // National dialling: 06... in France.
    let invite = dial(&mut alice, "alice", "alice-pw", "06-12-34-56-78").await;
    let out = carrier_answers(&mut env.carrier).await;
    let carrier = env.carrier.addr;
    assert_eq!(
        out.request_uri(),
        Some(format!("sip:+33612345678@{carrier}").as_str())
    );
    let from = out.from_header().unwrap();
    assert!(
        from.uri.starts_with("sip:+15550100@"),
        "the line as caller ID: {}",
        from.uri
    );
    assert_eq!(
        header(&out, "P-Asserted-Identity"),
        Some("<sip:+15550100@switchboard.test>")
    );
    assert_eq!(&out.body()[..], SDP_OFFER.as_bytes(), "the phone's offer");
    let ok = ack(&mut alice, &invite).await;
    assert!(std::str::from_utf8(ok.body())
        .unwrap()
        .contains("m=audio 44000"));

    // Alice is on the phone: a call to her shared number rings only bob.
    let mut trunk = Ua::bind("127.0.0.1", env.server).await;
    let inbound = trunk.invite("+15550100", "+15551234567");
    trunk.send(&inbound).await;
    let (_rung, _) = answer(&mut bob, 43000).await;
    let inbound_ok = trunk.expect_response(200).await;
    trunk.ack_2xx(&inbound, &inbound_ok).await;
    alice.expect_no_request().await;
    switchboard_tests::trunk_bye(&mut trunk, &inbound, &inbound_ok).await;
    bob.expect_request(Method::Bye).await;

    // Alice hangs up: the carrier is told.
    alice.hang_up(&invite, &ok, 3).await;
    let bye = env.carrier.expect_request(Method::Bye).await;
    env.carrier.respond(&bye, 200, None, None).await;

    let row = env.record_by("alice", invite.call_id().unwrap()).await;
    assert_eq!(row.direction, "outbound");
    assert_eq!(row.number.as_deref(), Some("+15550100"), "the line used");
    assert_eq!(row.dialled, "06-12-34-56-78");
    assert_eq!(row.outcome, "answered");
    assert_eq!(row.placed_by.as_deref(), Some("alice"));

    // Free again once the call is over: the next inbound call rings her.
    let again = trunk.invite("+15550100", "+15551234567");
    trunk.send(&again).await;
    alice.expect_request(Method::Invite).await;
    bob.expect_request(Method::Invite).await;
    env.daemon.stop().await;
}

#[tokio::test]
async fn an_internal_call_by_extension_rings_every_device_and_a_busy_colleague_gives_486() {
    let env = start().await;
    let mut alice = env.phone("alice").await;
    let mut bob_desk = env.phone("bob").await;
    let mut bob_mobile = env.phone("bob").await;
    let mut carol = env.phone("carol").await;

    let invite = dial(&mut alice, "alice", "alice-pw", "102").await;
    let desk = bob_desk.expect_request(Method::Invite).await;
    let mobile = bob_mobile.expect_request(Method::Invite).await;
    for rung in [&desk, &mobile] {
        let from = rung.from_header().unwrap();
        assert_eq!(from.display_name(), Some("Alice"), "the caller's name");
        assert!(from.uri.starts_with("sip:101@"), "dial-back: {}", from.uri);
    }
    bob_desk.respond(&desk, 180, Some("bd"), None).await;
    bob_mobile.respond(&mobile, 180, Some("bm"), None).await;
    bob_desk
        .respond(&desk, 200, Some("bd"), Some(&sdp_answer(45000)))
        .await;
    bob_desk.expect_request(Method::Ack).await;
    let cancel = bob_mobile.expect_request(Method::Cancel).await;
    bob_mobile.respond(&cancel, 200, Some("bm"), None).await;
    let ok = ack(&mut alice, &invite).await;

    // Both are busy now: carol calling bob gets 486 and a reason.
    let to_bob = dial(&mut carol, "carol", "carol-pw", "bob").await;
    let busy = carol.expect_response(486).await;
    assert_eq!(busy.reason(), Some("User busy"));
    assert!(header(&busy, "Warning").unwrap().contains("User busy"));
    carol.ack_non_2xx(&to_bob, &busy).await;
    // ...and the shared number, where both ring, finds nobody free.
    let mut trunk = Ua::bind("127.0.0.1", env.server).await;
    let inbound = trunk.invite("+15550100", "+15551234567");
    trunk.send(&inbound).await;
    assert_eq!(trunk.final_response().await.status(), Some(486));
    alice.expect_no_request().await;

    alice.hang_up(&invite, &ok, 3).await;
    bob_desk.expect_request(Method::Bye).await;
    let row = env.record_by("alice", invite.call_id().unwrap()).await;
    assert_eq!(row.direction, "internal");
    assert_eq!(row.answered_by.as_deref(), Some("bob"));
    let refused = env.record_by("carol", to_bob.call_id().unwrap()).await;
    assert_eq!(refused.status, 486);
    env.daemon.stop().await;
}

#[tokio::test]
async fn calling_the_workspaces_own_number_follows_its_routing_without_ringing_the_caller() {
    let env = start().await;
    let mut alice = env.phone("alice").await;
    let mut bob = env.phone("bob").await;
    let invite = dial(&mut alice, "alice", "alice-pw", "+1-555-0100").await;
    let (rung, _) = answer(&mut bob, 43000).await;
    assert_eq!(
        rung.from_header().unwrap().display_name(),
        Some("Alice (Sales)")
    );
    // Her own phone never rings for her own call.
    let ok = alice.expect_response(200).await;
    alice.ack_2xx(&invite, &ok).await;
    alice.expect_no_request().await;
    alice.hang_up(&invite, &ok, 3).await;
    bob.expect_request(Method::Bye).await;
    let row = env.record_by("alice", invite.call_id().unwrap()).await;
    assert_eq!(row.direction, "internal");
    assert_eq!(row.number.as_deref(), Some("+15550100"));
    let skipped = row.skipped.as_array().unwrap();
    assert!(
        skipped
            .iter()
            .any(|s| s["user"] == "alice" && s["gate"] == "caller"),
        "{skipped:?}"
    );
    env.daemon.stop().await;
}

#[tokio::test]
async fn restrictions_refuse_with_a_reason_and_emergency_numbers_always_go_out() {
    let mut env = start().await;
    let mut alice = env.phone("alice").await;
    let mut frank = env.phone("frank").await;

    let denied = dial(&mut alice, "alice", "alice-pw", "+1.900.555.0100").await;
    let refusal = alice.expect_response(403).await;
    assert_eq!(refusal.reason(), Some("Number not allowed"));
    assert!(header(&refusal, "Warning")
        .unwrap()
        .contains("Number not allowed"));
    alice.ack_non_2xx(&denied, &refusal).await;
    let row = env.record_by("alice", denied.call_id().unwrap()).await;
    assert_eq!((row.direction.as_str(), row.status), ("outbound", 403));

    // Frank has no line: no caller ID to call out with...
    let no_line = dial(&mut frank, "frank", "frank-pw", "0612345678").await;
    let refusal = frank.expect_response(403).await;
    assert_eq!(refusal.reason(), Some("No line to call from"));
    frank.ack_non_2xx(&no_line, &refusal).await;
    // ...nor anybody for a name that is nobody's.
    let nobody = dial(&mut frank, "frank", "frank-pw", "nobody").await;
    let refusal = frank.expect_response(404).await;
    assert_eq!(refusal.reason(), Some("No such user or number"));
    frank.ack_non_2xx(&nobody, &refusal).await;
    assert!(env
        .carrier
        .recv_within(Duration::from_millis(300))
        .await
        .is_none());

    // ...but an emergency number goes out whatever the line or the rules.
    let emergency = dial(&mut frank, "frank", "frank-pw", "112").await;
    let out = env.carrier.expect_request(Method::Invite).await;
    let carrier = env.carrier.addr;
    assert_eq!(
        out.request_uri(),
        Some(format!("sip:112@{carrier}").as_str())
    );
    env.carrier
        .respond(&out, 200, Some("e1"), Some(&sdp_answer(46000)))
        .await;
    env.carrier.expect_request(Method::Ack).await;
    let ok = ack(&mut frank, &emergency).await;
    frank.hang_up(&emergency, &ok, 3).await;
    let bye = env.carrier.expect_request(Method::Bye).await;
    env.carrier.respond(&bye, 200, None, None).await;

    // The carrier's own refusal reaches the caller as it is.
    let busy_line = dial(&mut alice, "alice", "alice-pw", "+15557654321").await;
    let out = env.carrier.expect_request(Method::Invite).await;
    env.carrier.respond(&out, 486, Some("b1"), None).await;
    env.carrier.expect_request(Method::Ack).await;
    let refusal = alice.expect_response(486).await;
    alice.ack_non_2xx(&busy_line, &refusal).await;
    env.daemon.stop().await;
}

#[tokio::test]
async fn wrong_credentials_or_an_inactive_user_place_nothing() {
    let mut env = start().await;
    let mut alice = env.phone("alice").await;
    let wrong = dial(&mut alice, "alice", "not-her-password", "0612345678").await;
    let refusal = alice.expect_response(403).await;
    alice.ack_non_2xx(&wrong, &refusal).await;
    // Dave is invited: his right password is refused like a wrong one.
    let mut dave = Ua::bind("127.0.0.1", env.server).await;
    let invited = dial(&mut dave, "dave", "dave-pw", "0612345678").await;
    let refusal_dave = dave.expect_response(403).await;
    assert_eq!(refusal_dave.reason(), refusal.reason());
    dave.ack_non_2xx(&invited, &refusal_dave).await;
    assert!(env.carrier.recv_within(WAIT / 3).await.is_none());

    // The carrier's own calls (from the trunk's source, not naming one of
    // our users) reach only the workspace's numbers: nothing goes back out.
    let mut trunk = Ua::bind("127.0.0.1", env.server).await;
    let relay = trunk.invite("0612345678", "+15551234567");
    trunk.send(&relay).await;
    assert_eq!(trunk.final_response().await.status(), Some(404));
    let relay = trunk.invite("+33612345678", "alice");
    trunk.send(&relay).await;
    assert_eq!(trunk.final_response().await.status(), Some(404));
    assert!(env.carrier.recv_within(WAIT / 3).await.is_none());
    env.daemon.stop().await;
}

#[tokio::test]
async fn a_transfer_request_is_refused_plainly_and_the_call_goes_on() {
    let mut env = start().await;
    let mut alice = env.phone("alice").await;
    let invite = dial(&mut alice, "alice", "alice-pw", "0612345678").await;
    carrier_answers(&mut env.carrier).await;
    let ok = ack(&mut alice, &invite).await;
    let mut refer = alice.caller_request(Method::Refer, &invite, &ok, 3);
    refer.push_other("Refer-To", "<sip:bob@switchboard.test>");
    alice.send(&refer).await;
    let refused = alice.expect_response(405).await;
    let allow = refused.header(HeaderName::Allow).unwrap();
    assert!(!allow.contains("REFER"), "{allow}");
    // The call is still up: the BYE goes through to the carrier.
    alice.hang_up(&invite, &ok, 4).await;
    env.carrier.expect_request(Method::Bye).await;
    env.daemon.stop().await;
}
