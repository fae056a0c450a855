//! The call limits over real SIP on loopback: past `max_calls` a new
//! INVITE gets a stateless 503 with Retry-After while the calls up go on,
//! and a call rings at most `max_legs_per_call` devices.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use switchboard_tests::sip::{HeaderName, Method};
use switchboard_tests::{answered_call, signed_in, start_daemon, trunk_bye, Ua};

#[tokio::test]
async fn past_max_calls_a_new_call_gets_503_and_the_call_up_goes_on() {
    let (daemon, _dir) = start_daemon("max_calls = 1", "").await;
    let server = daemon.udp_addr.unwrap();
    let mut bob = signed_in(server, "bob", "bob-pw").await;
    let mut trunk = Ua::bind("127.0.0.1", server).await;
    let (invite, ok) = answered_call(&mut trunk, &mut bob, "+15550200").await;

    // A second call while the first is up: refused, told when to retry.
    let mut other = Ua::bind("127.0.0.1", server).await;
    let second = other.invite("+15550100", "+15557654321");
    other.send(&second).await;
    let refused = other.final_response().await;
    assert_eq!(refused.status(), Some(503), "{refused}");
    assert!(
        refused.header(HeaderName::RetryAfter).is_some(),
        "{refused}"
    );
    other.ack_non_2xx(&second, &refused).await;

    // The call up is served: its BYE gets its 200 and reaches bob.
    trunk_bye(&mut trunk, &invite, &ok).await;
    let bye = bob.expect_request(Method::Bye).await;
    bob.respond(&bye, 200, None, None).await;

    // Below the limit again: the next call rings.
    let third = trunk.invite("+15550200", "+15551234567");
    trunk.send(&third).await;
    assert_eq!(
        bob.expect_request(Method::Invite).await.method(),
        Some(&Method::Invite)
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_call_rings_at_most_max_legs_per_call_devices() {
    let (daemon, _dir) = start_daemon("max_legs_per_call = 2", "").await;
    let server = daemon.udp_addr.unwrap();
    // Sales rings alice (on two phones) and bob: three devices.
    let mut phones = Vec::new();
    for (user, password) in [
        ("alice", "alice-pw"),
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
    ] {
        phones.push(signed_in(server, user, password).await);
    }
    let mut trunk = Ua::bind("127.0.0.1", server).await;
    let invite = trunk.invite("+15550100", "+15551234567");
    trunk.send(&invite).await;
    let mut rung = 0;
    for phone in &mut phones {
        if let Some(m) = phone.recv_within(Duration::from_secs(1)).await {
            assert_eq!(m.method(), Some(&Method::Invite));
            rung += 1;
        }
    }
    assert_eq!(rung, 2, "two of the three devices ring");
    daemon.stop().await;
}
