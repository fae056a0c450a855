//! What leaves the engine besides SIP, over real UDP on loopback: call
//! records, registration and busy changes on the daemon's event channel;
//! and a workspace replaced while a call is up.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use engine::{CallOutcome, CallRecord, Command, CommandReply, Event, LegOutcome, Party};
use std::path::Path;

use switchboard::server::Daemon;
use switchboard::settings::Config;
use switchboard_tests::sip::Method;
use switchboard_tests::{answered_call, test_config, test_config_text, trunk_bye, Ua};
use tokio::sync::broadcast::Receiver;

/// The next event that `pick` accepts, within 5 s (others are skipped).
async fn next<T>(events: &mut Receiver<Event>, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(event) {
                        return found;
                    }
                }
                Err(e) => panic!("event channel: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("the event within 5 s")
}

async fn record(events: &mut Receiver<Event>) -> CallRecord {
    next(events, |e| match e {
        Event::CallEnded(r) => Some(*r),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn call_records_and_registration_and_busy_changes_reach_the_event_channel() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(test_config(dir.path(), "")).await.unwrap();
    let server = daemon.udp_addr.unwrap();
    let mut events = daemon.events();

    let mut bob = Ua::bind("127.0.0.1", server).await;
    assert_eq!(
        bob.register("bob", "bob-pw", None, 300).await.status(),
        Some(200)
    );
    let (user, devices) = next(&mut events, |e| match e {
        Event::RegistrationChanged { user, devices } => Some((user, devices)),
        _ => None,
    })
    .await;
    assert_eq!((&*user, devices), ("bob", 1));

    // Bob's direct line, answered, hung up by the trunk.
    let mut trunk = Ua::bind("127.0.0.1", server).await;
    let (invite, ok) = answered_call(&mut trunk, &mut bob, "+15550200").await;
    let busy = next(&mut events, |e| match e {
        Event::BusyChanged {
            user,
            active_calls,
            busy,
        } => Some((user, active_calls, busy)),
        _ => None,
    })
    .await;
    assert_eq!((&*busy.0, busy.1, busy.2), ("bob", 1, true));
    trunk_bye(&mut trunk, &invite, &ok).await;
    let bye = bob.expect_request(Method::Bye).await;
    bob.respond(&bye, 200, None, None).await;

    let r = record(&mut events).await;
    assert_eq!(r.call_id, invite.call_id().unwrap());
    assert_eq!(r.number.as_deref(), Some("+15550200"));
    assert_eq!(
        r.outcome,
        CallOutcome::Completed {
            hung_up_by: Party::Caller
        }
    );
    assert_eq!(r.answered_by_user(), Some("bob"));
    assert_eq!(r.rang.len(), 1);
    assert_eq!(r.rang[0].outcome, LegOutcome::Answered);
    assert!(r.started <= r.answered.unwrap() && r.answered.unwrap() <= r.ended);
    assert_eq!(daemon.presence.user("bob").active_calls(), 0);

    // A number that does not exist: refused, and recorded.
    let invite = trunk.invite("+15559999", "+15551234567");
    trunk.send(&invite).await;
    let refused = trunk.final_response().await;
    assert_eq!(refused.status(), Some(404));
    trunk.ack_non_2xx(&invite, &refused).await;
    let r = record(&mut events).await;
    assert_eq!(r.outcome, CallOutcome::Rejected { status: 404 });
    assert_eq!(r.number, None);

    // The counters the driver can export.
    let CommandReply::Stats(stats) = daemon.command(Command::Stats).await.unwrap() else {
        panic!("a Stats reply");
    };
    assert_eq!((stats.calls_ended, stats.calls_completed), (2, 1));
    assert_eq!((stats.calls_ringing, stats.calls_answered), (0, 0));
    assert_eq!(stats.registered_devices, 1);
    assert_eq!(stats.registrations, 1);
    daemon.stop().await;
}

#[tokio::test]
async fn a_workspace_replaced_during_a_call_applies_to_the_next_call_and_the_call_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(test_config(dir.path(), "")).await.unwrap();
    let server = daemon.udp_addr.unwrap();
    let mut events = daemon.events();
    let mut bob = Ua::bind("127.0.0.1", server).await;
    assert_eq!(
        bob.register("bob", "bob-pw", None, 300).await.status(),
        Some(200)
    );
    let mut carol = Ua::bind("127.0.0.1", server).await;
    assert_eq!(
        carol
            .register("carol", "carol-pw", None, 300)
            .await
            .status(),
        Some(200)
    );
    let mut trunk = Ua::bind("127.0.0.1", server).await;
    let (invite, ok) = answered_call(&mut trunk, &mut bob, "+15550100").await;
    carol.expect_no_request().await;

    // Sales now rings carol (she was assigned, not routed) instead of bob,
    // and a new user comes first so that every user index moves.
    let text = test_config_text(dir.path(), "")
        .replacen(
            "[[users]]\nid = \"alice\"",
            "[[users]]\nid = \"zoe\"\nname = \"Zoe\"\nstatus = \"active\"\npassword = \"z\"\n\n[[users]]\nid = \"alice\"",
            1,
        )
        .replacen(
            "ring = [\"alice\", \"bob\", \"dave\", \"gina\"]",
            "ring = [\"carol\"]",
            1,
        );
    let changed = Config::parse(&text, Path::new("next.toml"), dir.path()).unwrap();
    assert_eq!(changed.directory.users()[0].id, "zoe");
    let calls_up = daemon.replace_workspace(changed.directory).await.unwrap();
    assert_eq!(calls_up, 1);

    // The next call rings carol only.
    let invite2 = trunk.invite("+15550100", "+15557654321");
    trunk.send(&invite2).await;
    let ringing = carol.expect_request(Method::Invite).await;
    assert_eq!(
        ringing.request_uri().map(|u| u.contains("carol")),
        Some(true)
    );
    let tag = carol.unique("c");
    carol.respond(&ringing, 180, Some(&tag), None).await;
    bob.expect_no_request().await;
    trunk.cancel(&invite2).await;
    let cancel = carol.expect_request(Method::Cancel).await;
    carol.respond(&cancel, 200, Some(&tag), None).await;
    carol.respond(&ringing, 487, Some(&tag), None).await;
    carol.expect_request(Method::Ack).await;

    // Bob's call, routed before the change, goes on and ends normally.
    trunk_bye(&mut trunk, &invite, &ok).await;
    let bye = bob.expect_request(Method::Bye).await;
    bob.respond(&bye, 200, None, None).await;
    assert_eq!(daemon.presence.user("bob").active_calls(), 0);
    let mut ended = Vec::new();
    while ended.len() < 2 {
        ended.push(record(&mut events).await.call_id);
    }
    assert!(ended.contains(&invite.call_id().unwrap().to_string()));
    daemon.stop().await;
}
