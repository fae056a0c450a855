//! Webhooks over real HTTP: a missed call (the trunk calls a line nobody
//! can take) reaches a local HTTP server, signed, and a delivery the server
//! refuses is tried again.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use switchboard::server::Daemon;
use switchboard_tests::{test_config, Ua};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One request the test server got: its head (lower-cased) and body.
struct Received {
    head: String,
    body: String,
}

/// An HTTP/1.1 server on loopback that answers `statuses` in turn (then
/// 200) and hands every request to the test.
async fn server(statuses: Vec<u16>) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut statuses = statuses.into_iter();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then as much body as Content-Length says.
            let (head, body) = loop {
                let n = stream.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break (head.to_lowercase(), body.to_string());
                    }
                }
            };
            let status = statuses.next().unwrap_or(200);
            let reply =
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = tx.send(Received { head, body });
        }
    });
    (addr, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a webhook request within 10 s")
        .unwrap()
}

#[tokio::test]
async fn a_missed_call_is_posted_signed_and_retried() {
    let (addr, mut requests) = server(vec![500]).await;
    let dir = tempfile::tempdir().unwrap();
    let hooks = format!(
        "\n[[webhooks]]\nurl = \"http://{addr}/hooks/switchboard\"\nevents = [\"call.missed\"]\nsecret = \"hook-secret\"\n"
    );
    let daemon = Daemon::start(test_config(dir.path(), &hooks))
        .await
        .unwrap();
    let server_addr = daemon.udp_addr.unwrap();

    // Bob's line, bob not signed in: nobody can take it (480).
    let mut trunk = Ua::bind("127.0.0.1", server_addr).await;
    let invite = trunk.invite("+15550200", "+15551234567");
    trunk.send(&invite).await;
    let fin = trunk.final_response().await;
    assert_eq!(fin.status(), Some(480));
    trunk.ack_non_2xx(&invite, &fin).await;

    // Refused once with 500, then delivered again, the same.
    let first = next(&mut requests).await;
    let again = next(&mut requests).await;
    assert_eq!(first.body, again.body);
    assert!(
        again.head.starts_with("post /hooks/switchboard http/1.1"),
        "{}",
        again.head
    );
    assert!(
        again.head.contains("x-switchboard-event: call.missed"),
        "{}",
        again.head
    );
    let body: Value = serde_json::from_str(&again.body).unwrap();
    assert_eq!(body["event"], "call.missed");
    assert_eq!(body["call"]["number"], "+15550200");
    assert_eq!(body["call"]["outcome"], "rejected");
    assert_eq!(body["call"]["skipped"][0]["gate"], "not_signed_in");
    let expected = switchboard::webhooks::signature("hook-secret", &again.body);
    assert!(
        again
            .head
            .contains(&format!("x-switchboard-signature: {expected}")),
        "{}",
        again.head
    );
    // Only the event asked for: no call.ended follows.
    assert!(
        tokio::time::timeout(Duration::from_millis(700), requests.recv())
            .await
            .is_err()
    );
    daemon.stop().await;
}

#[test]
fn webhook_urls_and_events_are_checked_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = switchboard_tests::test_config_text(
        dir.path(),
        "\n[[webhooks]]\nurl = \"https://hooks.example.com/x\"\nevents = [\"call.lost\"]\n",
    );
    let errors =
        switchboard::settings::Config::parse(&text, std::path::Path::new("hooks.toml"), dir.path())
            .err()
            .unwrap()
            .to_string();
    assert!(errors.contains("webhooks[0].url"), "{errors}");
    assert!(errors.contains("webhooks[0].events[0]"), "{errors}");
}
