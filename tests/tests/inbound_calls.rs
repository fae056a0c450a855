//! Inbound calls over real UDP on loopback: the daemon in-process, phones
//! and a trunk as test user agents.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use switchboard::server::Daemon;
use switchboard_tests::sip::{HeaderName, Message, Method};
use switchboard_tests::{sdp_answer, test_config, Ua};

struct Env {
    daemon: Daemon,
    server: SocketAddr,
    _dir: tempfile::TempDir,
}

async fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), "");
    let daemon = Daemon::start(config).await.unwrap();
    let server = daemon.udp_addr.unwrap();
    Env {
        daemon,
        server,
        _dir: dir,
    }
}

impl Env {
    async fn phone(&self, user: &str, password: &str) -> Ua {
        let mut ua = Ua::bind("127.0.0.1", self.server).await;
        let resp = ua.register(user, password, None, 300).await;
        assert_eq!(resp.status(), Some(200), "{user} could not sign in: {resp}");
        ua
    }

    async fn trunk(&self) -> Ua {
        Ua::bind("127.0.0.1", self.server).await
    }

    fn active_calls(&self, user: &str) -> u32 {
        self.daemon.presence.user(user).active_calls()
    }
}

/// A phone's side of one ringing leg.
struct Ringing {
    invite: Message,
    tag: String,
}

async fn ring(phone: &mut Ua) -> Ringing {
    let invite = phone.expect_request(Method::Invite).await;
    let tag = phone.unique("ph");
    phone.respond(&invite, 180, Some(&tag), None).await;
    Ringing { invite, tag }
}

async fn answer(phone: &mut Ua, leg: &Ringing, media_port: u16) {
    phone
        .respond(
            &leg.invite,
            200,
            Some(&leg.tag),
            Some(&sdp_answer(media_port)),
        )
        .await;
    let ack = phone.expect_request(Method::Ack).await;
    assert_eq!(ack.call_id(), leg.invite.call_id());
}

/// A ringing phone that gets CANCEL: 200 to it, 487 to the INVITE, ACK back.
async fn expect_cancelled(phone: &mut Ua, leg: &Ringing) {
    let cancel = phone.expect_request(Method::Cancel).await;
    assert_eq!(cancel.call_id(), leg.invite.call_id());
    phone.respond(&cancel, 200, Some(&leg.tag), None).await;
    phone.respond(&leg.invite, 487, Some(&leg.tag), None).await;
    let ack = phone.expect_request(Method::Ack).await;
    assert_eq!(ack.cseq().unwrap().seq, leg.invite.cseq().unwrap().seq);
}

/// The trunk's side of an answered call.
struct Answered {
    invite: Message,
    ok: Message,
}

impl Answered {
    fn target(&self) -> String {
        self.ok
            .values(HeaderName::Contact)
            .next()
            .and_then(switchboard_tests::sip::NameAddr::parse)
            .unwrap()
            .uri
            .to_string()
    }

    async fn bye(&self, trunk: &mut Ua) {
        let bye = trunk
            .in_dialog(
                Method::Bye,
                &self.target(),
                self.invite.header(HeaderName::From).unwrap(),
                self.ok.header(HeaderName::To).unwrap(),
                self.invite.call_id().unwrap(),
                2,
            )
            .await;
        let resp = trunk.final_response().await;
        assert_eq!(resp.status(), Some(200));
        assert_eq!(resp.call_id(), bye.call_id());
    }
}

/// The phone hangs up: BYE inside the leg's dialog.
async fn phone_bye(phone: &mut Ua, leg: &Ringing) {
    let local = format!(
        "{};tag={}",
        leg.invite.header(HeaderName::To).unwrap(),
        leg.tag
    );
    let target = leg
        .invite
        .values(HeaderName::Contact)
        .next()
        .and_then(switchboard_tests::sip::NameAddr::parse)
        .unwrap()
        .uri
        .to_string();
    phone
        .in_dialog(
            Method::Bye,
            &target,
            &local,
            leg.invite.header(HeaderName::From).unwrap(),
            leg.invite.call_id().unwrap(),
            1,
        )
        .await;
    assert_eq!(phone.final_response().await.status(), Some(200));
}

async fn trunk_gets_bye(trunk: &mut Ua) {
    let bye = trunk.expect_request(Method::Bye).await;
    trunk.respond(&bye, 200, None, None).await;
}

async fn phone_gets_bye(phone: &mut Ua) {
    let bye = phone.expect_request(Method::Bye).await;
    phone.respond(&bye, 200, None, None).await;
}

#[tokio::test]
async fn shared_number_rings_exactly_the_free_signed_in_assigned_routed_users() {
    let env = start().await;
    let mut alice1 = env.phone("alice", "alice-pw").await;
    let mut alice2 = env.phone("alice", "alice-pw").await;
    let mut bob = env.phone("bob", "bob-pw").await;
    let mut carol = env.phone("carol", "carol-pw").await; // assigned, not routed
    let mut frank = env.phone("frank", "frank-pw").await; // not assigned
    let mut dave = Ua::bind("127.0.0.1", env.server).await; // invited: cannot sign in
    assert_eq!(
        dave.register("dave", "dave-pw", None, 300).await.status(),
        Some(403)
    );
    let mut trunk = env.trunk().await;

    // Call 1: every free routed device rings; bob answers first.
    let invite = trunk.invite("+15550100", "+15551234567");
    trunk.send(&invite).await;
    trunk.expect_response(100).await;
    let a1 = ring(&mut alice1).await;
    let a2 = ring(&mut alice2).await;
    let b = ring(&mut bob).await;
    let from = b.invite.header(HeaderName::From).unwrap();
    assert!(
        from.contains("Sales") && from.contains("Caller"),
        "callee sees caller and line: {from}"
    );
    assert_eq!(
        &b.invite.body()[..],
        invite.body().as_ref(),
        "SDP passed through"
    );
    carol.expect_no_request().await;
    frank.expect_no_request().await;
    dave.expect_no_request().await;
    trunk.expect_response(180).await;

    answer(&mut bob, &b, 41000).await;
    let ok = trunk.expect_response(200).await;
    assert!(std::str::from_utf8(ok.body())
        .unwrap()
        .contains("m=audio 41000"));
    trunk.ack_2xx(&invite, &ok).await;
    expect_cancelled(&mut alice1, &a1).await;
    expect_cancelled(&mut alice2, &a2).await;
    assert_eq!(env.active_calls("bob"), 1);
    let call1 = Answered { invite, ok };

    // Call 2 while bob talks: only alice's devices ring.
    let invite2 = trunk.invite("+15550100", "+15557654321");
    trunk.send(&invite2).await;
    let a1 = ring(&mut alice1).await;
    let a2 = ring(&mut alice2).await;
    bob.expect_no_request().await;
    answer(&mut alice2, &a2, 42000).await;
    let ok2 = trunk.expect_response(200).await;
    trunk.ack_2xx(&invite2, &ok2).await;
    expect_cancelled(&mut alice1, &a1).await;
    assert_eq!(env.active_calls("alice"), 1);

    // Call 3: everyone routed is busy (gina never signed in): 486.
    let invite3 = trunk.invite("+15550100", "+15550000001");
    trunk.send(&invite3).await;
    let busy = trunk.final_response().await;
    assert_eq!(busy.status(), Some(486));
    trunk.ack_non_2xx(&invite3, &busy).await;

    // The trunk hangs up call 1; alice's phone hangs up call 2.
    call1.bye(&mut trunk).await;
    phone_gets_bye(&mut bob).await;
    assert_eq!(env.active_calls("bob"), 0);
    phone_bye(&mut alice2, &a2).await;
    trunk_gets_bye(&mut trunk).await;
    assert_eq!(env.active_calls("alice"), 0);
    env.daemon.stop().await;
}

#[tokio::test]
async fn caller_cancel_stops_every_leg_and_gets_487() {
    let env = start().await;
    let mut alice = env.phone("alice", "alice-pw").await;
    let mut bob = env.phone("bob", "bob-pw").await;
    let mut trunk = env.trunk().await;
    let invite = trunk.invite("+15550100", "+15551234567");
    trunk.send(&invite).await;
    let a = ring(&mut alice).await;
    let b = ring(&mut bob).await;
    trunk.expect_response(180).await;
    trunk.cancel(&invite).await;
    let mut statuses = vec![
        trunk.final_response().await.status().unwrap(),
        trunk.final_response().await.status().unwrap(),
    ];
    statuses.sort();
    assert_eq!(statuses, vec![200, 487]);
    expect_cancelled(&mut alice, &a).await;
    expect_cancelled(&mut bob, &b).await;
    assert_eq!(env.active_calls("alice") + env.active_calls("bob"), 0);
    env.daemon.stop().await;
}

#[tokio::test]
async fn one_decline_does_not_stop_the_others_and_all_declining_fails_the_call() {
    let env = start().await;
    let mut alice = env.phone("alice", "alice-pw").await;
    let mut bob = env.phone("bob", "bob-pw").await;
    let mut trunk = env.trunk().await;

    let invite = trunk.invite("+15550100", "+15551234567");
    trunk.send(&invite).await;
    let a = ring(&mut alice).await;
    let b = ring(&mut bob).await;
    bob.respond(&b.invite, 603, Some(&b.tag), None).await;
    bob.expect_request(Method::Ack).await;
    answer(&mut alice, &a, 43000).await;
    let ok = trunk.expect_response(200).await;
    trunk.ack_2xx(&invite, &ok).await;
    let call = Answered { invite, ok };
    call.bye(&mut trunk).await;
    phone_gets_bye(&mut alice).await;

    // Both busy-here: the caller hears 486.
    let invite = trunk.invite("+15550100", "+15551234567");
    trunk.send(&invite).await;
    let a = ring(&mut alice).await;
    let b = ring(&mut bob).await;
    alice.respond(&a.invite, 486, Some(&a.tag), None).await;
    bob.respond(&b.invite, 486, Some(&b.tag), None).await;
    alice.expect_request(Method::Ack).await;
    bob.expect_request(Method::Ack).await;
    let resp = trunk.final_response().await;
    assert_eq!(resp.status(), Some(486));
    trunk.ack_non_2xx(&invite, &resp).await;

    // One declines, one is unavailable: 480.
    let invite = trunk.invite("+15550100", "+15551234567");
    trunk.send(&invite).await;
    let a = ring(&mut alice).await;
    let b = ring(&mut bob).await;
    alice.respond(&a.invite, 603, Some(&a.tag), None).await;
    bob.respond(&b.invite, 480, Some(&b.tag), None).await;
    alice.expect_request(Method::Ack).await;
    bob.expect_request(Method::Ack).await;
    let resp = trunk.final_response().await;
    assert_eq!(resp.status(), Some(480));
    trunk.ack_non_2xx(&invite, &resp).await;
    assert_eq!(env.active_calls("alice") + env.active_calls("bob"), 0);
    env.daemon.stop().await;
}

#[tokio::test]
async fn nobody_answering_within_the_ring_timeout_gets_480() {
    let env = start().await;
    let mut bob = env.phone("bob", "bob-pw").await;
    let mut trunk = env.trunk().await;
    let invite = trunk.invite("+15550100", "+15551234567");
    trunk.send(&invite).await;
    let b = ring(&mut bob).await;
    // ring_timeout = 5 s in the test config.
    let resp = loop {
        let m = trunk
            .recv_within(std::time::Duration::from_secs(8))
            .await
            .expect("a final response after the ring timeout");
        if m.status().is_some_and(|s| s >= 200) {
            break m;
        }
    };
    assert_eq!(resp.status(), Some(480));
    trunk.ack_non_2xx(&invite, &resp).await;
    expect_cancelled(&mut bob, &b).await;
    env.daemon.stop().await;
}

#[tokio::test]
async fn nobody_signed_in_unknown_number_and_non_trunk_sources_never_ring() {
    let env = start().await;
    let mut trunk = env.trunk().await;
    let invite = trunk.invite("+15550100", "+15551234567");
    trunk.send(&invite).await;
    assert_eq!(trunk.final_response().await.status(), Some(480));
    let invite = trunk.invite("+15559999", "+15551234567");
    trunk.send(&invite).await;
    assert_eq!(trunk.final_response().await.status(), Some(404));

    // From 127.0.0.2, which is not a trunk source.
    let mut bob = env.phone("bob", "bob-pw").await;
    let mut stranger = Ua::bind("127.0.0.2", env.server).await;
    let invite = stranger.invite("+15550200", "+15551234567");
    stranger.send(&invite).await;
    let challenge = stranger.final_response().await;
    assert_eq!(challenge.status(), Some(407));
    assert!(challenge.has_header(HeaderName::ProxyAuthenticate));
    stranger.ack_non_2xx(&invite, &challenge).await;
    let mut retry = stranger.invite("+15550200", "+15551234567");
    retry.set(HeaderName::CSeq, "2 INVITE");
    let bad = switchboard_tests::digest_answer(
        &challenge,
        HeaderName::ProxyAuthenticate,
        switchboard_tests::sip::auth::Algorithm::Md5,
        "alice",
        "wrong",
        "INVITE",
        retry.request_uri().unwrap(),
    );
    retry.push(HeaderName::ProxyAuthorization, &bad);
    stranger.send(&retry).await;
    assert_eq!(stranger.final_response().await.status(), Some(403));
    bob.expect_no_request().await;
    env.daemon.stop().await;
}

#[tokio::test]
async fn bye_from_either_side_and_reinvite_are_relayed() {
    let env = start().await;
    let mut bob = env.phone("bob", "bob-pw").await;
    let mut trunk = env.trunk().await;
    let invite = trunk.invite("+15550200", "+15551234567");
    trunk.send(&invite).await;
    let b = ring(&mut bob).await;
    answer(&mut bob, &b, 44000).await;
    let ok = trunk.expect_response(200).await;
    trunk.ack_2xx(&invite, &ok).await;
    let call = Answered { invite, ok };

    // The trunk puts the call on hold: the re-INVITE reaches bob, his answer
    // comes back, the trunk's ACK reaches him.
    let mut reinvite = Message::request(Method::Invite, &call.target());
    reinvite.push(
        HeaderName::Via,
        &format!("SIP/2.0/UDP {};branch=z9hG4bKhold1", trunk.addr),
    );
    reinvite.push(
        HeaderName::From,
        call.invite.header(HeaderName::From).unwrap(),
    );
    reinvite.push(HeaderName::To, call.ok.header(HeaderName::To).unwrap());
    reinvite.push(HeaderName::CallId, call.invite.call_id().unwrap());
    reinvite.push(HeaderName::CSeq, "2 INVITE");
    reinvite.push(HeaderName::Contact, &format!("<sip:trunk@{}>", trunk.addr));
    reinvite.push(HeaderName::ContentType, "application/sdp");
    let hold = format!("{}a=sendonly\r\n", switchboard_tests::SDP_OFFER);
    reinvite.set_body(hold.clone().into_bytes().into());
    trunk.send(&reinvite).await;
    let relayed = bob.expect_request(Method::Invite).await;
    assert_eq!(relayed.call_id(), b.invite.call_id());
    assert!(std::str::from_utf8(relayed.body())
        .unwrap()
        .contains("a=sendonly"));
    bob.respond(&relayed, 200, None, Some(&sdp_answer(44000)))
        .await;
    let ok2 = trunk.expect_response(200).await;
    assert_eq!(ok2.cseq().unwrap().seq, 2);
    let mut ack = Message::request(Method::Ack, &call.target());
    ack.push(
        HeaderName::Via,
        &format!("SIP/2.0/UDP {};branch=z9hG4bKhold1ack", trunk.addr),
    );
    ack.push(
        HeaderName::From,
        call.invite.header(HeaderName::From).unwrap(),
    );
    ack.push(HeaderName::To, call.ok.header(HeaderName::To).unwrap());
    ack.push(HeaderName::CallId, call.invite.call_id().unwrap());
    ack.push(HeaderName::CSeq, "2 ACK");
    trunk.send(&ack).await;
    let ack_at_bob = bob.expect_request(Method::Ack).await;
    assert_eq!(ack_at_bob.cseq().unwrap().seq, relayed.cseq().unwrap().seq);

    // And resumes: a second re-INVITE goes through as well.
    let mut resume = reinvite.clone();
    resume.set(
        HeaderName::Via,
        &format!("SIP/2.0/UDP {};branch=z9hG4bKresume1", trunk.addr),
    );
    resume.set(HeaderName::CSeq, "3 INVITE");
    resume.set_body(switchboard_tests::SDP_OFFER.as_bytes().to_vec().into());
    trunk.send(&resume).await;
    let relayed = bob.expect_request(Method::Invite).await;
    assert!(!std::str::from_utf8(relayed.body())
        .unwrap()
        .contains("sendonly"));
    bob.respond(&relayed, 200, None, Some(&sdp_answer(44000)))
        .await;
    assert_eq!(trunk.expect_response(200).await.cseq().unwrap().seq, 3);
    ack.set(
        HeaderName::Via,
        &format!("SIP/2.0/UDP {};branch=z9hG4bKresume1ack", trunk.addr),
    );
    ack.set(HeaderName::CSeq, "3 ACK");
    trunk.send(&ack).await;
    bob.expect_request(Method::Ack).await;

    // A BYE with the right Call-ID but a wrong tag is not this dialog's.
    let forged_from = call
        .invite
        .header(HeaderName::From)
        .unwrap()
        .replace(";tag=", ";tag=forged");
    trunk
        .in_dialog(
            Method::Bye,
            &call.target(),
            &forged_from,
            call.ok.header(HeaderName::To).unwrap(),
            call.invite.call_id().unwrap(),
            9,
        )
        .await;
    assert_eq!(trunk.final_response().await.status(), Some(481));
    assert_eq!(env.active_calls("bob"), 1);

    // bob hangs up: the trunk gets BYE; bob is free again.
    phone_bye(&mut bob, &b).await;
    trunk_gets_bye(&mut trunk).await;
    assert_eq!(env.active_calls("bob"), 0);
    env.daemon.stop().await;
}

#[tokio::test]
async fn many_overlapping_calls_leave_nobody_busy() {
    let env = start().await;
    let mut alice = env.phone("alice", "alice-pw").await;
    let mut bob = env.phone("bob", "bob-pw").await;
    let mut trunk = env.trunk().await;
    for round in 0..6 {
        // Two calls up at once on the shared number: one each.
        let i1 = trunk.invite("+15550100", "+15550000001");
        trunk.send(&i1).await;
        let a1 = ring(&mut alice).await;
        let b1 = ring(&mut bob).await;
        answer(&mut alice, &a1, 45000).await;
        let ok1 = trunk.expect_response(200).await;
        trunk.ack_2xx(&i1, &ok1).await;
        expect_cancelled(&mut bob, &b1).await;

        let i2 = trunk.invite("+15550100", "+15550000002");
        trunk.send(&i2).await;
        let b2 = ring(&mut bob).await;
        answer(&mut bob, &b2, 45002).await;
        let ok2 = trunk.expect_response(200).await;
        trunk.ack_2xx(&i2, &ok2).await;
        assert_eq!((env.active_calls("alice"), env.active_calls("bob")), (1, 1));

        // End them by different paths each round.
        let c1 = Answered {
            invite: i1,
            ok: ok1,
        };
        let c2 = Answered {
            invite: i2,
            ok: ok2,
        };
        if round % 2 == 0 {
            c1.bye(&mut trunk).await;
            phone_gets_bye(&mut alice).await;
            phone_bye(&mut bob, &b2).await;
            trunk_gets_bye(&mut trunk).await;
        } else {
            phone_bye(&mut alice, &a1).await;
            trunk_gets_bye(&mut trunk).await;
            c2.bye(&mut trunk).await;
            phone_gets_bye(&mut bob).await;
        }
        assert_eq!(
            (env.active_calls("alice"), env.active_calls("bob")),
            (0, 0),
            "round {round}"
        );
    }
    env.daemon.stop().await;
}
