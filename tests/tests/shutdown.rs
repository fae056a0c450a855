//! Stopping and vanishing, over real SIP on loopback: a graceful stop
//! refuses new calls with 503 and Retry-After, keeps serving the calls up
//! and the registrations for the grace period, then hangs up; a second
//! signal cuts the grace short; a phone whose TCP connection closes during
//! a call ends that call with a BYE to the other side, and is free again.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use switchboard::server::{stop_gracefully, Daemon};
use switchboard_tests::sip::{HeaderName, Message, Method};
use switchboard_tests::{answered_call, sdp_answer, TcpUa, Ua};

async fn start(extra_server: &str) -> (Daemon, tempfile::TempDir) {
    switchboard_tests::start_daemon(&format!("sip_tcp = \"127.0.0.1:0\"\n{extra_server}"), "").await
}

/// The BYE `ua` gets within `within`, answering the probes (OPTIONS) that
/// come before it; `None`: none came.
async fn bye_answering_probes(ua: &mut Ua, within: Duration) -> Option<Message> {
    tokio::time::timeout(within, async {
        loop {
            let m = ua.recv_within(within).await?;
            match m.method() {
                Some(Method::Options) => {
                    let ok = switchboard_tests::sip::build::response_to(&m, 200, "OK", None, false);
                    ua.send(&ok).await;
                }
                Some(Method::Bye) => return Some(m),
                _ => {}
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// bob signed in over UDP and on an answered call from the trunk.
async fn bob_on_a_call(daemon: &Daemon) -> (Ua, Ua) {
    let server = daemon.udp_addr.unwrap();
    let mut bob = Ua::bind("127.0.0.1", server).await;
    let signed_in = bob.register("bob", "bob-pw", None, 300).await;
    assert_eq!(signed_in.status(), Some(200));
    let mut trunk = Ua::bind("127.0.0.1", server).await;
    answered_call(&mut trunk, &mut bob, "+15550200").await;
    (bob, trunk)
}

#[tokio::test]
async fn a_graceful_stop_refuses_new_calls_lets_calls_up_finish_then_hangs_up() {
    let (daemon, _dir) = start("shutdown_grace = 2").await;
    let server = daemon.udp_addr.unwrap();
    let (mut bob, mut trunk) = bob_on_a_call(&daemon).await;

    let token = daemon.shutdown_token();
    let stopping = tokio::spawn(stop_gracefully(
        std::sync::Arc::clone(&daemon.control),
        token,
        Duration::from_secs(2),
        std::future::pending(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A new call: 503, and when to try again.
    let mut other = Ua::bind("127.0.0.1", server).await;
    let invite = other.invite("+15550100", "+15557654321");
    other.send(&invite).await;
    let refused = other.final_response().await;
    assert_eq!(refused.status(), Some(503), "{refused}");
    assert_eq!(refused.header(HeaderName::RetryAfter), Some("2"));
    other.ack_non_2xx(&invite, &refused).await;
    // Registrations are still served meanwhile.
    let mut alice = Ua::bind("127.0.0.1", server).await;
    assert_eq!(
        alice
            .register("alice", "alice-pw", None, 300)
            .await
            .status(),
        Some(200)
    );
    // The call up is not cut before the grace period ends...
    assert!(bob.recv_within(Duration::from_millis(1200)).await.is_none());
    // ...and then both sides get a BYE.
    bob.expect_request(Method::Bye).await;
    trunk.expect_request(Method::Bye).await;
    stopping.await.unwrap();
    daemon.wait().await;
}

#[tokio::test]
async fn a_second_signal_hangs_up_at_once() {
    let (daemon, _dir) = start("shutdown_grace = 60").await;
    let (mut bob, mut trunk) = bob_on_a_call(&daemon).await;
    let (second, second_rx) = tokio::sync::oneshot::channel::<()>();
    let stopping = tokio::spawn(stop_gracefully(
        std::sync::Arc::clone(&daemon.control),
        daemon.shutdown_token(),
        Duration::from_secs(60),
        async move {
            let _ = second_rx.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    second.send(()).unwrap();
    bob.expect_request(Method::Bye).await;
    trunk.expect_request(Method::Bye).await;
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("stopped well before the 60 s grace")
        .unwrap();
    daemon.wait().await;
}

#[tokio::test]
async fn a_phone_whose_tcp_connection_closes_mid_call_ends_it_and_is_free_again() {
    let (daemon, _dir) = start("").await;
    let udp = daemon.udp_addr.unwrap();
    let tcp = daemon.tcp_addr.unwrap();
    let mut bob = TcpUa::connect(tcp).await;
    assert_eq!(bob.register("bob", "bob-pw").await.status(), Some(200));
    let mut trunk = Ua::bind("127.0.0.1", udp).await;
    let invite = trunk.invite("+15550200", "+15551234567");
    trunk.send(&invite).await;
    let rung = bob.recv().await;
    assert_eq!(rung.method(), Some(&Method::Invite));
    let mut ok = switchboard_tests::sip::build::response_to(&rung, 200, "OK", Some("b1"), false);
    ok.push(
        HeaderName::Contact,
        &format!("<sip:bob@{};transport=tcp>", bob.addr),
    );
    ok.push(HeaderName::ContentType, "application/sdp");
    ok.set_body(sdp_answer(43000).into_bytes().into());
    bob.send(&ok).await;
    let answered = trunk.expect_response(200).await;
    trunk.ack_2xx(&invite, &answered).await;
    assert_eq!(daemon.presence.user("bob").active_calls(), 1);

    // The phone loses its connection (Wi-Fi gone, app killed).
    drop(bob);
    trunk.expect_request(Method::Bye).await;
    for _ in 0..40 {
        if daemon.presence.user("bob").active_calls() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        daemon.presence.user("bob").active_calls(),
        0,
        "bob is free again"
    );
    // He signs in again and takes the next call.
    let mut bob = TcpUa::connect(tcp).await;
    assert_eq!(bob.register("bob", "bob-pw").await.status(), Some(200));
    let again = trunk.invite("+15550200", "+15551234567");
    trunk.send(&again).await;
    assert_eq!(bob.recv().await.method(), Some(&Method::Invite));
    daemon.stop().await;
}

#[tokio::test]
async fn a_phone_that_vanishes_without_a_bye_is_noticed_within_the_liveness_timeout() {
    let (daemon, _dir) = start("liveness_timeout = 10").await;
    let (bob, mut trunk) = bob_on_a_call(&daemon).await;
    // bob's phone goes silent (Wi-Fi gone: it will not answer its probe,
    // and no ICMP comes back either); the carrier answers its own probes,
    // and gets the BYE.
    let _silent = bob;
    #[allow(clippy::disallowed_methods)]
    let vanished = std::time::Instant::now();
    // All of it within the liveness timeout (and a second of slack).
    let bye = bye_answering_probes(&mut trunk, Duration::from_secs(11))
        .await
        .expect("the BYE within the liveness timeout");
    assert_eq!(bye.method(), Some(&Method::Bye));
    assert_eq!(
        daemon.presence.user("bob").active_calls(),
        0,
        "bob is free again"
    );
    println!(
        "busy released {:.1} s after the phone vanished (liveness_timeout = 10)",
        vanished.elapsed().as_secs_f64()
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_leg_to_a_phone_whose_port_is_closed_fails_at_once_not_at_the_ring_timeout() {
    let (daemon, _dir) = start("").await;
    let server = daemon.udp_addr.unwrap();
    let mut bob = Ua::bind("127.0.0.1", server).await;
    assert_eq!(
        bob.register("bob", "bob-pw", None, 300).await.status(),
        Some(200)
    );
    // The softphone quits without signing out: its port is closed, and the
    // kernel answers the INVITE with ICMP "port unreachable".
    drop(bob);
    let mut trunk = Ua::bind("127.0.0.1", server).await;
    let invite = trunk.invite("+15550200", "+15551234567");
    trunk.send(&invite).await;
    // bob's number rings for 30 s; the answer comes at once instead.
    let answer = tokio::time::timeout(Duration::from_secs(5), trunk.final_response())
        .await
        .expect("a final answer before the ring timeout");
    assert!(answer.status().unwrap() >= 400, "{answer}");
    trunk.ack_non_2xx(&invite, &answer).await;
    assert_eq!(daemon.presence.user("bob").active_calls(), 0);
    daemon.stop().await;
}

#[tokio::test]
async fn a_call_whose_phone_quit_ends_at_its_first_probe() {
    let (daemon, _dir) = start("liveness_timeout = 20").await;
    let (bob, mut trunk) = bob_on_a_call(&daemon).await;
    // The softphone quits mid-call: its probe, 10 s later, meets a closed
    // port and the call ends then (a silent phone would take 20 s).
    drop(bob);
    let bye = bye_answering_probes(&mut trunk, Duration::from_secs(15))
        .await
        .expect("the BYE at the first probe");
    assert_eq!(bye.method(), Some(&Method::Bye));
    assert_eq!(daemon.presence.user("bob").active_calls(), 0);
    daemon.stop().await;
}
