//! The real binary: `check`, refusal of bad configs, start on port 0 (the
//! bound port read from its log), answer, and a graceful stop on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

fn demo() -> String {
    format!(
        "{}/../../config/switchboard.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The demo config's text for a copy elsewhere: its prompts named where
/// they are in the repository.
fn demo_text() -> std::io::Result<String> {
    let prompts = format!("\"{}/../../prompts/", env!("CARGO_MANIFEST_DIR"));
    Ok(std::fs::read_to_string(demo())?
        .replace("\"../prompts/", &prompts)
        // Tests run side by side: no fixed port.
        .replace(
            "admin_http = \"127.0.0.1:8080\"",
            "admin_http = \"127.0.0.1:0\"",
        ))
}

#[test]
fn check_accepts_the_demo_config() {
    let out = Command::new(BIN)
        .args(["check", "--config", &demo()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn a_bad_config_is_refused_with_file_key_and_reason_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = demo_text()
        .unwrap()
        .replace("timezone = \"Europe/Paris\"", "timezone = \"Mars/Olympus\"")
        .replace("seats = 10", "seats = 1");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    for args in [vec!["check", "--config"], vec!["--config"]] {
        let mut cmd = Command::new(BIN);
        cmd.args(&args).arg(&path);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(78));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad.toml") && err.contains("timezone") && err.contains("Mars/Olympus"),
            "{err}"
        );
        assert!(err.contains("plan.seats"), "every error is reported: {err}");
    }
}

#[test]
fn the_binary_serves_on_port_zero_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sb.toml");
    let text = demo_text()
        .unwrap()
        .replace("sip_udp = \"127.0.0.1:5060\"", "sip_udp = \"127.0.0.1:0\"")
        .replace("sip_tcp = \"127.0.0.1:5060\"", "sip_tcp = \"127.0.0.1:0\"");
    std::fs::write(&path, text).unwrap();
    let mut child = Command::new(BIN)
        .args(["--config", path.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the log on a thread so a missing line fails the test instead of hanging it.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("udp=Some(127.0.0.1:").nth(1) {
                let _ = tx.send(rest.split(')').next().unwrap_or("").to_string());
            }
        }
    });
    let port: u16 = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(p) => p.parse().unwrap(),
        Err(_) => {
            let _ = child.kill();
            panic!("no 'listening' line in the log");
        }
    };
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:switchboard@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKcli\r\n\
         From: <sip:a@b>;tag=1\r\nTo: <sip:s@b>\r\nCall-ID: cli\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    socket
        .send_to(options.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 OK"));

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful stop exits 0, got {status}");
    assert!(
        dir.path().join("data").exists(),
        "data dir created relative to the config"
    );
}

/// The demo config with its data in `dir`, where carol has signed in.
fn demo_with_carol_signed_in(dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("switchboard.toml");
    let text = demo_text().unwrap().replace(
        "data_dir = \"data\"",
        &format!("data_dir = \"{}\"", dir.join("data").display()),
    );
    std::fs::write(&config, text).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    // Signed in until 2100: explain reads the saved registrations.
    std::fs::write(
        dir.join("data/registrations.json"),
        r#"{"version":1,"users":{"carol":[{"contact":"sip:carol@127.0.0.1:5084","expires_at_ms":4102444800000,"call_id":"r","cseq":1,"source":"127.0.0.1:5084","transport":"Udp"}]}}"#,
    )
    .unwrap();
    config
}

fn explain(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .arg("explain")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn explain_says_whether_a_number_is_open_why_and_who_would_ring() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_with_carol_signed_in(dir.path());
    // Monday 2026-12-07, 10:00 in New York: Support's morning shift.
    let (code, out, err) = explain(
        &config,
        &["+15550200", "--at", "2026-12-07T10:00:00-05:00", "--json"],
    );
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["number"], "+15550200");
    assert_eq!(v["open"], true);
    assert!(v["reason"].as_str().unwrap().contains("09:00-12:00"), "{v}");
    assert_eq!(v["next_change"]["local_time"], "2026-12-07T12:00:00");
    assert_eq!(v["next_change"]["opens"], false);
    let steps = v["plan"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "a cascade: one step per routed user");
    assert_eq!(steps[0]["ring"][0], "carol");
    assert_eq!(steps[0]["timeout_s"], 15);
    assert_eq!(steps[1]["ring"][0], "alice");
    let members = v["members"].as_array().unwrap();
    let gate = |user: &str| {
        members
            .iter()
            .find(|m| m["user"] == user)
            .map(|m| m["gate"].clone())
            .unwrap()
    };
    assert_eq!(gate("carol"), serde_json::Value::Null, "signed in: rings");
    assert_eq!(gate("alice"), "not_signed_in");
    assert_eq!(
        gate("bob"),
        "not_signed_in",
        "bob is not routed, but not signed in comes first"
    );
    assert_eq!(v["destination"]["action"], "voicemail");

    // At lunch: closed until 13:00, and the call would go to bob (on call).
    let (_, out, _) = explain(
        &config,
        &["+15550200", "--at", "2026-12-07T12:30:00-05:00", "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["open"], false);
    assert_eq!(v["reason"], "outside the opening windows");
    assert_eq!(v["next_change"]["local_time"], "2026-12-07T13:00:00");
    assert_eq!(v["next_change"]["opens"], true);
    assert_eq!(v["plan"].as_array().unwrap().len(), 0);
    assert_eq!(v["destination"]["action"], "ring");
    assert_eq!(v["destination"]["users"][0], "bob");

    // Christmas, a Friday: closed by the holiday, and nobody rings.
    let (_, out, _) = explain(&config, &["+15550200", "--at", "2026-12-25T10:00:00-05:00"]);
    assert!(out.contains("closed: closed on 2026-12-25"), "{out}");
    let (_, out, _) = explain(
        &config,
        &["+15550200", "--at", "2026-12-25T10:00:00-05:00", "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reason"], "closed on 2026-12-25");
    let members = v["members"].as_array().unwrap();
    assert!(!members.is_empty() && members.iter().all(|m| m["rings"] == false));
    // -c is --config too.
    let out = Command::new(BIN)
        .args(["explain", "-c"])
        .arg(&config)
        .args(["+15550200", "--at", "2026-12-25T10:00:00-05:00"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Front desk forwards outside its hours.
    let (_, out, _) = explain(
        &config,
        &["+15550300", "--at", "2026-12-06T15:00:00+01:00", "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["open"], false, "a Sunday");
    assert_eq!(v["destination"]["action"], "forward");
    assert_eq!(v["destination"]["to"], "+33612345678");

    // Not a number of the workspace; a bad instant.
    let (code, _, err) = explain(&config, &["+15559999"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not one of the workspace's numbers"), "{err}");
    let (code, _, err) = explain(&config, &["+15550200", "--at", "yesterday"]);
    assert_eq!(code, Some(64));
    assert!(err.contains("RFC 3339"), "{err}");
}

/// The running binary, its log lines on a channel, and its admin API.
struct Running {
    child: std::process::Child,
    log: std::sync::mpsc::Receiver<String>,
    api: String,
    sip_port: u16,
}

impl Running {
    fn start(config: &std::path::Path) -> Running {
        let mut child = Command::new(BIN)
            .args(["--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut running = Running {
            child,
            log,
            api: String::new(),
            sip_port: 0,
        };
        let line = running.wait_for("switchboard listening");
        let after = |key: &str| {
            line.split(key)
                .nth(1)
                .and_then(|rest| rest.split(')').next())
                .unwrap()
                .to_string()
        };
        running.api = format!("http://127.0.0.1:{}", after("admin=Some(127.0.0.1:"));
        running.sip_port = after("udp=Some(127.0.0.1:").parse().unwrap();
        running
    }

    /// The next log line containing `text`, within 20 s.
    #[allow(clippy::disallowed_methods)] // a deadline for reading the child's log
    fn wait_for(&mut self, text: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => continue,
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no log line with {text:?}");
                }
            }
        }
    }

    /// `switchboard --api URL ARGS...` with the token in the environment.
    fn cli(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(BIN)
            .arg("--api")
            .arg(&self.api)
            .args(args)
            .env("SWITCHBOARD_ADMIN_TOKEN", "cli-test-token-0123456789")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    // A failing test must not leave the daemon behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_cli_changes_a_running_daemon_and_sighup_reloads_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sb.toml");
    let text = demo_text()
        .unwrap()
        .replace("sip_udp = \"127.0.0.1:5060\"", "sip_udp = \"127.0.0.1:0\"")
        .replace("sip_tcp = \"127.0.0.1:5060\"", "sip_tcp = \"127.0.0.1:0\"")
        .replace(
            "admin_http = \"127.0.0.1:0\"",
            "admin_http = \"127.0.0.1:0\"\nadmin_token = \"cli-test-token-0123456789\"",
        );
    std::fs::write(&config, text).unwrap();
    let mut running = Running::start(&config);

    let (code, out, err) = running.cli(&["users"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("alice") && out.contains("Alice Martin") && out.contains("invited"),
        "{out}"
    );

    // The newcomer, step by step, as a script would do it.
    let (code, out, err) = running.cli(&["users", "invite", "erin", "--name", "Erin Li"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("password: "),
        "a made-up password is shown once: {out}"
    );
    assert_eq!(running.cli(&["users", "activate", "erin"]).0, Some(0));
    let (_, out, _) = running.cli(&["explain", "--user", "erin"]);
    assert!(
        out.contains("+15550100") && out.contains("not_assigned"),
        "{out}"
    );
    assert_eq!(running.cli(&["assign", "+15550100", "erin"]).0, Some(0));
    let (_, out, _) = running.cli(&["--json", "explain", "--user", "erin"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Assigned, not routed, and not signed in: the first gate shows.
    assert_eq!(json["numbers"][0]["gate"], "not_signed_in");
    let (code, out, _) = running.cli(&["route", "+15550100", "alice", "erin"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("alice,erin"), "{out}");
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("ring = [\"alice\", \"erin\"]"));

    // A refusal exits 1 with the daemon's code; the file is unchanged.
    let before = std::fs::read_to_string(&config).unwrap();
    let (code, _, err) = running.cli(&["users", "remove", "erin"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("user_still_routed"), "{err}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);

    // A wrong password is logged once, with the source and the user.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let register = |branch: &str, auth: &str| {
        format!(
            "REGISTER sip:switchboard.local SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch}\r\n\
             From: <sip:bob@switchboard.local>;tag=1\r\nTo: <sip:bob@switchboard.local>\r\nCall-ID: cli-reg\r\n\
             CSeq: 1 REGISTER\r\nContact: <sip:bob@{local}>\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    // Only an answer to our own challenge counts: ask for one first.
    socket
        .send_to(
            register("reg1", "").as_bytes(),
            ("127.0.0.1", running.sip_port),
        )
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    let challenge = String::from_utf8_lossy(&buf[..n]).into_owned();
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let auth = format!(
        "Authorization: Digest username=\"bob\", realm=\"switchboard.local\", nonce=\"{nonce}\", \
         uri=\"sip:switchboard.local\", response=\"00000000000000000000000000000000\", algorithm=MD5\r\n"
    );
    socket
        .send_to(
            register("reg2", &auth).as_bytes(),
            ("127.0.0.1", running.sip_port),
        )
        .unwrap();
    let line = running.wait_for("authentication refused");
    assert!(
        line.contains("bob") && line.contains("127.0.0.1") && line.contains("REGISTER"),
        "{line}"
    );
    assert!(!line.contains("bob-secret"));

    // SIGHUP reloads a file edited by hand; an invalid one is refused.
    let edited = std::fs::read_to_string(&config)
        .unwrap()
        .replace("name = \"Erin Li\"", "name = \"Erin Lee\"");
    std::fs::write(&config, &edited).unwrap();
    let pid = running.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    running.wait_for("SIGHUP: configuration reloaded");
    let (_, out, _) = running.cli(&["users", "show", "erin"]);
    assert!(out.contains("Erin Lee"), "{out}");
    std::fs::write(&config, edited.replace("seats = 10", "seats = 0")).unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let line = running.wait_for("reload refused");
    assert!(line.contains("seats"), "{line}");
    let (code, out, _) = running.cli(&["users"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("erin"), "the running workspace is kept: {out}");
    running.stop();

    // No daemon: exit 69.
    let out = Command::new(BIN)
        .args(["--api", "http://127.0.0.1:9", "users"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
}

#[test]
fn hash_password_prints_the_ha1_values_the_demo_keeps_for_carol() {
    let mut child = Command::new(BIN)
        .args(["hash-password", "carol", "--config", &demo()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"carol-secret\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    let demo = std::fs::read_to_string(demo()).unwrap();
    for line in printed.lines() {
        assert!(demo.contains(line), "{line} is in the demo config");
    }
    assert_eq!(printed.lines().count(), 2);
}
