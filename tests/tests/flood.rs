//! An INVITE flood, over real UDP on loopback: a carrier sends new calls
//! as fast as a socket can, none of which it ever acknowledges, so every
//! one leaves a transaction behind for Timer H (32 s). Past
//! `overload_transactions` new calls are shed with 503 and Retry-After,
//! while the call already up keeps its in-dialog requests and hangs up
//! cleanly; once the flood stops and its transactions expire, calls are
//! taken again.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use engine::{Command, CommandReply};
use switchboard::server::Daemon;
use switchboard_tests::sip::{HeaderName, Method};
use switchboard_tests::{answered_call, Ua};

/// INVITEs the flood sends, at most, and for how long.
const FLOOD_INVITES: u32 = 20_000;
const FLOOD_FOR: Duration = Duration::from_secs(3);

#[tokio::test]
async fn an_invite_flood_is_shed_the_call_up_completes_and_the_daemon_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        switchboard_tests::config_text_with_server(dir.path(), "overload_transactions = 300", "");
    let config =
        switchboard::settings::Config::parse(&text, std::path::Path::new("t.toml"), dir.path())
            .unwrap();
    let daemon = Daemon::start(config).await.unwrap();
    let server = daemon.udp_addr.unwrap();
    let mut bob = Ua::bind("127.0.0.1", server).await;
    assert_eq!(
        bob.register("bob", "bob-pw", None, 300).await.status(),
        Some(200)
    );
    let mut trunk = Ua::bind("127.0.0.1", server).await;
    let (up, up_ok) = answered_call(&mut trunk, &mut bob, "+15550200").await;

    // The flood: a carrier's address (trunk sources are never banned or
    // rate-limited), new Call-IDs, Sales (+15550100: bob is busy, the rest
    // are not signed in, so each gets 480), never an ACK.
    let flooder = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let flood = tokio::spawn(async move {
        let local = flooder.local_addr().unwrap();
        let started = tokio::time::Instant::now();
        let mut sent = 0u32;
        while sent < FLOOD_INVITES && started.elapsed() < FLOOD_FOR {
            let invite = format!(
                "INVITE sip:+15550100@{server} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {local};branch=z9hG4bKflood{sent}\r\n\
                 From: <sip:+15559990000@127.0.0.1>;tag=f{sent}\r\n\
                 To: <sip:+15550100@{server}>\r\n\
                 Call-ID: flood-{sent}@127.0.0.1\r\n\
                 CSeq: 1 INVITE\r\n\
                 Contact: <sip:flood@{local}>\r\n\
                 Max-Forwards: 70\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            flooder.send_to(invite.as_bytes(), server).await.unwrap();
            sent += 1;
            if sent.is_multiple_of(64) {
                // Let the daemon's task run on a small runtime.
                tokio::task::yield_now().await;
            }
        }
        (flooder, sent, started.elapsed())
    });
    // Shedding starts well before the flood ends.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // A new call meanwhile: shed, and told when to come back.
    let mut late = Ua::bind("127.0.0.1", server).await;
    let invite = late.invite("+15550200", "+15551230000");
    late.send(&invite).await;
    let shed = late.final_response().await;
    assert_eq!(shed.status(), Some(503), "{shed}");
    assert_eq!(shed.header(HeaderName::RetryAfter), Some("5"));
    // The call up is not: the carrier hangs it up and bob hears the BYE.
    trunk.hang_up(&up, &up_ok, 2).await;
    let bye = bob.expect_request(Method::Bye).await;
    bob.respond(&bye, 200, None, None).await;
    let (flooder, sent, took) = flood.await.unwrap();
    drop(flooder);
    let stats = match daemon.command(Command::Stats).await.unwrap() {
        CommandReply::Stats(stats) => stats,
        other => panic!("{other:?}"),
    };
    assert!(
        stats.overload_refused > u64::from(sent) / 2,
        "{} of {sent} INVITEs shed",
        stats.overload_refused
    );
    println!(
        "flood: {sent} INVITEs in {:.1} s ({:.0}/s), {} shed with 503, {} transactions left",
        took.as_secs_f64(),
        f64::from(sent) / took.as_secs_f64(),
        stats.overload_refused,
        stats.transactions
    );

    // The flood's transactions expire (Timer H, 32 s): calls are taken
    // again. Bounded: a try every two seconds for a minute.
    let mut taken = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut caller = Ua::bind("127.0.0.1", server).await;
        let invite = caller.invite("+15550200", "+15551230001");
        caller.send(&invite).await;
        let first = caller.recv_within(Duration::from_secs(2)).await;
        if first.as_ref().and_then(|m| m.status()) == Some(503) {
            continue;
        }
        // Not shed: bob rings and answers.
        switchboard_tests::answer(&mut bob, 43000).await;
        let ok = caller.expect_response(200).await;
        caller.ack_2xx(&invite, &ok).await;
        caller.hang_up(&invite, &ok, 2).await;
        taken = true;
        break;
    }
    assert!(
        taken,
        "no call was taken within a minute of the flood's end"
    );
    daemon.stop().await;
}
