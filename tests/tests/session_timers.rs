//! Session timers (RFC 4028) over real SIP on loopback: the daemon answers
//! a caller that supports `timer` with its interval (`liveness_timeout`, at
//! least 90 s) and `refresher=uac`, refuses an interval below 90 s with 422
//! and `Min-SE`, offers a timer to the phones it rings, relays a refresh,
//! and hangs up both sides of a call whose caller stopped refreshing.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use switchboard_tests::sip::session_timer::{session_expires, Refresher, SessionExpires};
use switchboard_tests::sip::{HeaderName, Message, Method};
use switchboard_tests::{sdp_answer, signed_in, start_daemon, Ua};

/// The trunk's INVITE to bob's number, asking for session timers.
fn timer_invite(trunk: &mut Ua, session_expires: &str) -> Message {
    let mut invite = trunk.invite("+15550200", "+15551234567");
    invite.push(HeaderName::Supported, "timer");
    invite.push(HeaderName::SessionExpires, session_expires);
    invite
}

#[tokio::test]
async fn a_caller_gets_the_daemons_interval_and_refreshes_and_the_phone_is_offered_one() {
    let (daemon, _dir) = start_daemon("", "").await;
    let server = daemon.udp_addr.unwrap();
    let mut bob = signed_in(server, "bob", "bob-pw").await;
    let mut trunk = Ua::bind("127.0.0.1", server).await;
    let invite = timer_invite(&mut trunk, "1800");
    trunk.send(&invite).await;

    let ringing = bob.expect_request(Method::Invite).await;
    assert_eq!(
        session_expires(&ringing),
        Some(SessionExpires {
            secs: 120,
            refresher: None
        }),
        "the phone is offered liveness_timeout (120 s)"
    );
    assert_eq!(ringing.header(HeaderName::MinSe), Some("90"));
    assert!(switchboard_tests::sip::session_timer::supports_timer(
        &ringing
    ));
    let tag = bob.unique("ph");
    bob.respond(&ringing, 200, Some(&tag), Some(&sdp_answer(43000)))
        .await;
    bob.expect_request(Method::Ack).await;

    let ok = trunk.expect_response(200).await;
    assert_eq!(
        session_expires(&ok),
        Some(SessionExpires {
            secs: 120,
            refresher: Some(Refresher::Uac)
        }),
        "{ok}"
    );
    assert!(ok.values(HeaderName::Require).any(|t| t == "timer"), "{ok}");
    trunk.ack_2xx(&invite, &ok).await;

    // The carrier refreshes with UPDATE; bob answers it; the carrier's 200
    // names it the refresher still.
    let mut update = trunk.caller_request(Method::Update, &invite, &ok, 2);
    update.push(HeaderName::Supported, "timer");
    update.push(HeaderName::SessionExpires, "120;refresher=uac");
    trunk.send(&update).await;
    let relayed = bob.expect_request(Method::Update).await;
    bob.respond(&relayed, 200, None, None).await;
    let refreshed = trunk.final_response().await;
    assert_eq!(refreshed.status(), Some(200));
    assert_eq!(
        session_expires(&refreshed).and_then(|se| se.refresher),
        Some(Refresher::Uac)
    );
    trunk.hang_up(&invite, &ok, 3).await;
    daemon.stop().await;
}

#[tokio::test]
async fn an_interval_below_90_s_is_refused_with_422_and_min_se() {
    let (daemon, _dir) = start_daemon("", "").await;
    let server = daemon.udp_addr.unwrap();
    let mut trunk = Ua::bind("127.0.0.1", server).await;
    let invite = timer_invite(&mut trunk, "30");
    trunk.send(&invite).await;
    let refused = trunk.final_response().await;
    assert_eq!(refused.status(), Some(422), "{refused}");
    assert_eq!(refused.header(HeaderName::MinSe), Some("90"));
    trunk.ack_non_2xx(&invite, &refused).await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_caller_that_stops_refreshing_is_hung_up_at_the_expiry_and_bob_is_free() {
    // 90 s: the smallest interval; the caller must refresh within 60 s.
    let (daemon, _dir) = start_daemon("liveness_timeout = 90", "").await;
    let server = daemon.udp_addr.unwrap();
    let mut bob = signed_in(server, "bob", "bob-pw").await;
    let mut trunk = Ua::bind("127.0.0.1", server).await;
    let invite = timer_invite(&mut trunk, "90");
    trunk.send(&invite).await;
    let ringing = bob.expect_request(Method::Invite).await;
    let tag = bob.unique("ph");
    bob.respond(&ringing, 200, Some(&tag), Some(&sdp_answer(43000)))
        .await;
    bob.expect_request(Method::Ack).await;
    let ok = trunk.expect_response(200).await;
    trunk.ack_2xx(&invite, &ok).await;
    assert_eq!(daemon.presence.user("bob").active_calls(), 1);

    // The carrier never refreshes (bob's phone, with no timer, answers its
    // OPTIONS probe at 45 s). At 60 s both get a BYE.
    let ended = tokio::time::timeout(Duration::from_secs(70), async {
        let mut byes = 0;
        while byes < 2 {
            tokio::select! {
                Some(m) = bob.recv_within(Duration::from_secs(70)) => match m.method() {
                    Some(Method::Options) => bob.respond(&m, 200, None, None).await,
                    Some(Method::Bye) => { bob.respond(&m, 200, None, None).await; byes += 1 }
                    _ => {}
                },
                Some(m) = trunk.recv_within(Duration::from_secs(70)) => {
                    assert_ne!(m.method(), Some(&Method::Options), "the caller is not probed");
                    if m.method() == Some(&Method::Bye) {
                        trunk.respond(&m, 200, None, None).await;
                        byes += 1;
                    }
                }
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a BYE to both sides at the session's expiry");
    assert_eq!(daemon.presence.user("bob").active_calls(), 0);
    daemon.stop().await;
}
