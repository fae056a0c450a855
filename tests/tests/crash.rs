//! `kill -9`, over real SIP on loopback: the daemon runs in a process of its
//! own (`daemon_for_crash_tests`) and is killed with SIGKILL while calls are
//! up, a voicemail is being recorded and phones have just signed in. The
//! next start must find every registration that got its 200, nobody busy,
//! the calls that were up recorded as `interrupted`, and the voicemail
//! finished and playable.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use switchboard_tests::sip::Method;
use switchboard_tests::{answered_call, media_number, short_prompt, test_config_text, Rtp, Ua};

/// Users who sign in just before the kill.
const LATE_USERS: usize = 40;

/// The daemon's process; killed when dropped, so a failing test leaves none.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the daemon on `config`; returns it and its UDP address.
fn start(config: &Path) -> (Process, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_daemon_for_crash_tests"))
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let process = Process(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("udp ")
        .unwrap_or_else(|| panic!("the daemon did not start: {line:?}"))
        .parse()
        .unwrap();
    (process, addr)
}

/// The test workspace, +15550900 straight to voicemail with `greeting`,
/// and the users who sign in just before the kill.
fn config(dir: &Path, greeting: &str) -> String {
    use std::fmt::Write;
    let mut extra = media_number(
        "action = \"voicemail\"",
        &format!("[numbers.voicemail]\ngreeting = \"{greeting}\"\n"),
    );
    for i in 0..LATE_USERS {
        write!(
            extra,
            "\n[[users]]\nid = \"u{i:02}\"\nname = \"U{i}\"\nstatus = \"active\"\npassword = \"pw-{i}\"\n"
        )
        .unwrap();
    }
    test_config_text(dir, &extra).replacen("seats = 20", "seats = 100", 1)
}

#[tokio::test]
async fn after_kill_9_registrations_are_back_nobody_is_busy_calls_up_are_interrupted_and_the_voicemail_plays(
) {
    let dir = tempfile::tempdir().unwrap();
    // The default greeting is spoken from the line's name; a short tone is
    // enough here.
    let greeting = short_prompt(dir.path(), "greeting.wav");
    let text = config(dir.path(), &greeting);
    let config_path = dir.path().join("switchboard.toml");
    std::fs::write(&config_path, text).unwrap();

    let (first, server) = start(&config_path);
    let mut bob = Ua::bind("127.0.0.1", server).await;
    assert_eq!(
        bob.register("bob", "bob-pw", None, 300).await.status(),
        Some(200)
    );
    // bob on a call from the trunk...
    let mut trunk = Ua::bind("127.0.0.1", server).await;
    let (bob_call, _) = answered_call(&mut trunk, &mut bob, "+15550200").await;
    // ...and a caller leaving a message.
    let mut caller = Ua::bind("127.0.0.1", server).await;
    let mut rtp = Rtp::bind().await;
    let mut invite = caller.invite("+15550900", "+15559876543");
    invite.set_body(rtp.offer().into_bytes().into());
    caller.send(&invite).await;
    let ok = caller.expect_response(200).await;
    caller.ack_2xx(&invite, &ok).await;
    let daemon_rtp = rtp.until_prompts_done().await;
    rtp.send_tone(daemon_rtp, 440.0, 1500).await;
    // The call records keep a call that is up within a second.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // Phones sign in; each 200 is the last thing before the kill for
    // the last of them.
    let mut phones = Vec::new();
    for i in 0..LATE_USERS {
        let mut phone = Ua::bind("127.0.0.1", server).await;
        let ok = phone
            .register(&format!("u{i:02}"), &format!("pw-{i}"), None, 300)
            .await;
        assert_eq!(ok.status(), Some(200), "{ok}");
        phones.push(phone);
    }
    drop(first); // SIGKILL: nothing of the daemon's runs after it.

    // What is on disk, before anything starts: every acknowledged binding.
    let on_disk = presence::Presence::new();
    let now_ms = switchboard::clock::unix_ms();
    presence::RegistrationStore::read(dir.path(), &on_disk, now_ms).unwrap();
    let lost: Vec<String> = (0..LATE_USERS)
        .map(|i| format!("u{i:02}"))
        .chain(["bob".to_string()])
        .filter(|u| !on_disk.user(u).is_signed_in(now_ms))
        .collect();
    assert!(lost.is_empty(), "registrations lost: {lost:?}");

    let (_second, server) = start(&config_path);
    // Calls that were up: recorded as interrupted, once each.
    let rows = switchboard::records::history(
        dir.path(),
        &switchboard::records::Query {
            limit: 10,
            ..Default::default()
        },
    )
    .unwrap();
    let interrupted: Vec<&str> = rows
        .iter()
        .filter(|r| r.outcome == "interrupted")
        .map(|r| r.call_id.as_str())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        interrupted.contains(&bob_call.call_id().unwrap()),
        "{rows:?}"
    );
    assert!(interrupted.contains(&invite.call_id().unwrap()), "{rows:?}");
    let bobs = rows
        .iter()
        .find(|r| r.call_id == bob_call.call_id().unwrap())
        .unwrap();
    assert_eq!(bobs.answered_by.as_deref(), Some("bob"));
    // The message being recorded: finished, and it plays the 1.5 s said.
    let mailbox = dir.path().join("voicemail").join("+15550900");
    let wavs: Vec<_> = std::fs::read_dir(&mailbox)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    assert_eq!(wavs.len(), 1, "one message in {}", mailbox.display());
    let samples = media::wav::read_file(&wavs[0]).unwrap();
    let seconds = samples.len() as f32 / 8000.0;
    assert!((1.4..=1.6).contains(&seconds), "{seconds} s kept");
    assert!(wavs[0].with_extension("json").exists());

    // bob is free: the next call rings him, and he answers it.
    let mut trunk = Ua::bind("127.0.0.1", server).await;
    bob.server = server;
    let (again, ok) = answered_call(&mut trunk, &mut bob, "+15550200").await;
    assert_eq!(ok.status(), Some(200));
    trunk.hang_up(&again, &ok, 2).await;
    bob.expect_request(Method::Bye).await;
    drop(phones);
}
