//! The admin API over real HTTP with real SIP on loopback: the newcomer
//! scenario ("I invited a new team member — why aren't they ringing?"),
//! every refused change with its code, persistence with comments kept,
//! reload, deactivation, live state, call records and metrics.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use switchboard::server::Daemon;
use switchboard::settings::Config;
use switchboard_tests::sip::{Message, Method};
use switchboard_tests::{admin_config_text, answered_call, api, trunk_bye, Ua, ADMIN_TOKEN};

const TOKEN: Option<&str> = Some(ADMIN_TOKEN);

struct Running {
    daemon: Daemon,
    admin: SocketAddr,
    sip: SocketAddr,
    file: PathBuf,
}

async fn start_from(file: &Path) -> Running {
    let config = Config::load(file).unwrap();
    let daemon = Daemon::start(config).await.unwrap();
    Running {
        admin: daemon.admin_addr.unwrap(),
        sip: daemon.udp_addr.unwrap(),
        daemon,
        file: file.to_path_buf(),
    }
}

async fn start(dir: &Path) -> Running {
    let file = dir.join("switchboard.toml");
    std::fs::write(&file, admin_config_text(&dir.join("data"), "")).unwrap();
    start_from(&file).await
}

impl Running {
    async fn get(&self, path: &str) -> (u16, Value) {
        api(self.admin, "GET", path, None, TOKEN).await
    }
    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        api(self.admin, method, path, body, TOKEN).await
    }
    fn text(&self) -> String {
        std::fs::read_to_string(&self.file).unwrap()
    }
}

fn gate_on<'a>(explained: &'a Value, number: &str) -> &'a Value {
    explained["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["number"] == number)
        .unwrap()
}

/// The trunk hangs up and the phone gets the BYE (and answers it).
async fn hang_up(trunk: &mut Ua, phone: &mut Ua, invite: &Message, ok: &Message) {
    trunk_bye(trunk, invite, ok).await;
    let bye = phone.expect_request(Method::Bye).await;
    phone.respond(&bye, 200, None, None).await;
}

/// Call records are written off the call path: wait for `n` of them.
async fn history(running: &Running, query: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let (status, rows) = running.get(&format!("/api/v1/calls/history{query}")).await;
        assert_eq!(status, 200, "{rows}");
        let rows = rows.as_array().unwrap().clone();
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} call records for {query}");
}

#[tokio::test]
async fn a_newcomer_is_invited_activated_assigned_and_routed_then_rings() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let mut nina = Ua::bind("127.0.0.1", running.sip).await;

    // Invited: holds a seat, cannot sign in.
    let (status, user) = running
        .send(
            "POST",
            "/api/v1/users",
            Some(json!({"id": "nina", "name": "Nina Rossi", "password": "nina-pw"})),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["status"], "invited");
    assert!(running.text().contains("id = \"nina\""));
    assert_eq!(
        nina.register("nina", "nina-pw", None, 300).await.status(),
        Some(403)
    );

    // Activated and signed in, but on no number.
    let (status, user) = running
        .send("POST", "/api/v1/users/nina/activate", None)
        .await;
    assert_eq!((status, &user["status"]), (200, &json!("active")));
    assert_eq!(
        nina.register("nina", "nina-pw", None, 300).await.status(),
        Some(200)
    );
    let (_, why) = running.get("/api/v1/users/nina/explain").await;
    assert_eq!(gate_on(&why, "+15550100")["gate"], "not_assigned");
    assert_eq!(gate_on(&why, "+15550100")["rings"], false);
    let (_, sales) = running.get("/api/v1/numbers/+15550100/explain").await;
    assert!(
        !sales["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user"] == "nina"),
        "users who are not members do not appear: {sales}"
    );

    // Assigned: a member, not in the routing yet.
    let (status, number) = running
        .send("PUT", "/api/v1/numbers/+15550100/members/nina", None)
        .await;
    assert_eq!(status, 200, "{number}");
    let (_, why) = running.get("/api/v1/users/nina/explain").await;
    assert_eq!(gate_on(&why, "+15550100")["gate"], "not_in_routing");
    let (_, sales) = running.get("/api/v1/numbers/%2B15550100/explain").await;
    let member = sales["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"] == "nina")
        .cloned()
        .unwrap();
    assert_eq!(
        member,
        json!({"user": "nina", "rings": false, "gate": "not_in_routing"})
    );

    // Routed: the next trunk call rings her, and only her.
    let (status, number) = running
        .send(
            "PUT",
            "/api/v1/numbers/+15550100/routing",
            Some(json!({"strategy": "simultaneous", "ring": ["nina", "alice"]})),
        )
        .await;
    assert_eq!(status, 200, "{number}");
    assert_eq!(number["routing"]["ring"], json!(["nina", "alice"]));
    let (_, why) = running.get("/api/v1/users/nina/explain").await;
    assert_eq!(gate_on(&why, "+15550100")["rings"], true);
    assert_eq!(gate_on(&why, "+15550200")["gate"], "not_assigned");

    // Carol is signed in but assigned only: she is skipped as not routed.
    let mut carol = Ua::bind("127.0.0.1", running.sip).await;
    assert_eq!(
        carol
            .register("carol", "carol-pw", None, 300)
            .await
            .status(),
        Some(200)
    );
    let mut trunk = Ua::bind("127.0.0.1", running.sip).await;
    let (invite, ok) = answered_call(&mut trunk, &mut nina, "+15550100").await;

    // While it is up: the call and the busy user are visible.
    let (_, calls) = running.get("/api/v1/calls").await;
    let call = &calls.as_array().unwrap()[0];
    assert_eq!(call["state"], "answered");
    assert_eq!(call["number"], "+15550100");
    assert_eq!(call["answered_by"]["user"], "nina");
    let (_, user) = running.get("/api/v1/users/nina").await;
    assert_eq!(user["busy"], true);
    let (_, why) = running.get("/api/v1/users/nina/explain").await;
    assert_eq!(gate_on(&why, "+15550100")["gate"], "busy");
    let (_, registrations) = running.get("/api/v1/registrations").await;
    let devices = registrations
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == "nina")
        .unwrap()["devices"]
        .clone();
    assert_eq!(devices.as_array().unwrap().len(), 1);
    assert_eq!(devices[0]["transport"], "udp");

    hang_up(&mut trunk, &mut nina, &invite, &ok).await;

    // The record says who answered and why everyone else did not ring.
    let rows = history(&running, "?number=%2B15550100", 1).await;
    let record = &rows[0];
    assert_eq!(record["outcome"], "answered");
    assert_eq!(record["answered_by"], "nina");
    assert_eq!(record["direction"], "inbound");
    let skipped = record["skipped"].as_array().unwrap();
    let gate = |u: &str| {
        skipped
            .iter()
            .find(|s| s["user"] == u)
            .map(|s| s["gate"].clone())
    };
    assert_eq!(gate("alice"), Some(json!("not_signed_in")));
    assert_eq!(gate("carol"), Some(json!("not_in_routing")));
    assert_eq!(gate("dave"), Some(json!("not_active")));
    assert_eq!(gate("nina"), None);
    assert_eq!(history(&running, "?user=carol", 1).await.len(), 1);
    assert!(history(&running, "?user=frank", 0).await.is_empty());

    // And the metrics count it.
    let (status, page) = api(running.admin, "GET", "/metrics", None, TOKEN).await;
    assert_eq!(status, 200);
    let page = page.as_str().unwrap().to_owned();
    assert!(
        page.contains("switchboard_calls_total{outcome=\"answered\"} 1"),
        "{page}"
    );
    assert!(
        page.contains("switchboard_sip_requests_total{direction=\"in\",method=\"INVITE\"} 1"),
        "{page}"
    );
    assert!(page.contains("switchboard_registered_devices 2"), "{page}");
    assert!(
        page.contains("switchboard_admin_changes_total{result=\"applied\"} 4"),
        "{page}"
    );
    assert!(
        page.contains("switchboard_routing_decision_seconds_count 1"),
        "{page}"
    );
    running.daemon.stop().await;
}

#[tokio::test]
async fn refused_changes_answer_their_code_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let before = running.text();
    let refused = |expected_status: u16, expected_code: &'static str| {
        move |(status, body): (u16, Value)| {
            assert_eq!(status, expected_status, "{body}");
            assert_eq!(body["error"], expected_code, "{body}");
            assert!(!body["message"].as_str().unwrap().is_empty());
        }
    };

    // No token, wrong token.
    refused(401, "unauthorized")(api(running.admin, "GET", "/api/v1/users", None, None).await);
    refused(401, "unauthorized")(
        api(
            running.admin,
            "GET",
            "/api/v1/users",
            None,
            Some("test-admin-token-0123456780"),
        )
        .await,
    );
    refused(404, "unknown_user")(running.get("/api/v1/users/zoe").await);
    refused(404, "unknown_number")(running.get("/api/v1/numbers/+15559999").await);
    refused(409, "user_exists")(
        running
            .send(
                "POST",
                "/api/v1/users",
                Some(json!({"id": "alice", "name": "A"})),
            )
            .await,
    );
    // Routing someone who is not a member.
    refused(422, "not_a_member")(
        running
            .send(
                "PUT",
                "/api/v1/numbers/+15550200/routing",
                Some(json!({"strategy": "simultaneous", "ring": ["bob", "frank"]})),
            )
            .await,
    );
    // Removing a user still routed, unassigning one still routed.
    refused(409, "user_still_routed")(running.send("DELETE", "/api/v1/users/alice", None).await);
    refused(409, "user_still_routed")(
        running
            .send("DELETE", "/api/v1/numbers/+15550100/members/alice", None)
            .await,
    );
    // What the file's validation refuses, with the key.
    let (status, body) = running
        .send(
            "POST",
            "/api/v1/numbers",
            Some(json!({"number": "+15550300", "name": "X", "timezone": "Mars/Olympus"})),
        )
        .await;
    refused(422, "invalid_config")((status, body.clone()));
    assert!(
        body["message"].as_str().unwrap().contains("timezone"),
        "{body}"
    );
    refused(422, "invalid_config")(
        running
            .send("PATCH", "/api/v1/users/bob", Some(json!({"max_calls": 0})))
            .await,
    );
    refused(422, "invalid_config")(
        running
            .send(
                "PUT",
                "/api/v1/numbers/+15550100/hours",
                Some(json!({"mon": ["25:00-26:00"]})),
            )
            .await,
    );
    refused(422, "invalid_request")(
        running
            .send("PATCH", "/api/v1/users/bob", Some(json!({"colour": "red"})))
            .await,
    );
    // Seats: not below the users, and not past them.
    refused(409, "seats_below_users")(
        running
            .send("PUT", "/api/v1/plan", Some(json!({"seats": 3})))
            .await,
    );
    assert_eq!(running.text(), before, "nothing was written");
    let (status, plan) = running
        .send("PUT", "/api/v1/plan", Some(json!({"seats": 6})))
        .await;
    assert_eq!((status, &plan["used"]), (200, &json!(6)));
    refused(409, "seats_exhausted")(
        running
            .send(
                "POST",
                "/api/v1/users",
                Some(json!({"id": "zoe", "name": "Zoe"})),
            )
            .await,
    );

    // A file edited by hand since is not overwritten.
    let edited = running
        .text()
        .replace("name = \"Frank\"", "name = \"Franck\"");
    std::fs::write(&running.file, &edited).unwrap();
    refused(409, "file_changed")(
        running
            .send(
                "PATCH",
                "/api/v1/users/bob",
                Some(json!({"name": "Robert"})),
            )
            .await,
    );
    assert_eq!(running.text(), edited);

    // Forced removal unroutes and unassigns everywhere, in one change.
    let (status, reloaded) = running.send("POST", "/api/v1/reload", None).await;
    assert_eq!(status, 200, "{reloaded}");
    let (status, _) = running
        .send("DELETE", "/api/v1/users/alice?force=true", None)
        .await;
    assert_eq!(status, 204);
    assert!(!running.text().contains("\"alice\""), "{}", running.text());
    let (_, sales) = running.get("/api/v1/numbers/+15550100").await;
    assert_eq!(sales["routing"]["ring"], json!(["bob", "dave", "gina"]));
    let (status, openapi) = running.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    for path in [
        "/api/v1/users",
        "/api/v1/numbers/{number}/members/{user}",
        "/api/v1/numbers/{number}/explain",
        "/api/v1/users/{id}/explain",
        "/api/v1/calls/history",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} in the OpenAPI description"
        );
    }
    running.daemon.stop().await;
}

#[tokio::test]
async fn changes_persist_with_comments_and_reload_refuses_an_invalid_file() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let (status, _) = running
        .send("PUT", "/api/v1/numbers/+15550200/members/carol", None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = running
        .send(
            "PUT",
            "/api/v1/numbers/+15550200/hours",
            Some(json!({"mon": ["09:00-17:00"], "closed": ["2026-12-25"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let text = running.text();
    assert!(
        text.contains("# Sales: alice (two devices)"),
        "comments kept:\n{text}"
    );
    assert!(text.contains("# The admin API, for the tests."));
    assert!(text.contains("members = [\"bob\", \"carol\"]"), "{text}");
    assert!(text.contains("mon = [\"09:00-17:00\"]"), "{text}");
    let file = running.file.clone();
    running.daemon.stop().await;

    // After a restart the change is there.
    let running = start_from(&file).await;
    let (_, direct) = running.get("/api/v1/numbers/+15550200").await;
    assert_eq!(direct["members"], json!(["bob", "carol"]));
    assert_eq!(direct["hours"]["mon"], json!(["09:00-17:00"]));

    // An invalid file is refused with every error; the workspace is kept.
    let good = running.text();
    std::fs::write(
        &file,
        good.replace("seats = 20", "seats = 1")
            .replace("timezone = \"Europe/Paris\"", "timezone = \"Nowhere/Land\""),
    )
    .unwrap();
    let (status, body) = running.send("POST", "/api/v1/reload", None).await;
    assert_eq!(
        (status, &body["error"]),
        (422, &json!("invalid_config")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("seats") && message.contains("Nowhere/Land"),
        "{message}"
    );
    let (_, users) = running.get("/api/v1/users").await;
    assert_eq!(users.as_array().unwrap().len(), 6);

    // A valid edit by hand applies to the next call.
    std::fs::write(
        &file,
        good.replace("ring = [\"bob\"]", "ring = [\"bob\", \"carol\"]"),
    )
    .unwrap();
    let (status, body) = running.send("POST", "/api/v1/reload", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["restart_needed"], false);
    let (_, direct) = running.get("/api/v1/numbers/+15550200").await;
    assert_eq!(direct["routing"]["ring"], json!(["bob", "carol"]));
    running.daemon.stop().await;
}

#[tokio::test]
async fn a_deactivated_user_is_signed_out_refused_and_not_rung() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let mut bob = Ua::bind("127.0.0.1", running.sip).await;
    assert_eq!(
        bob.register("bob", "bob-pw", None, 300).await.status(),
        Some(200)
    );
    let (_, user) = running.get("/api/v1/users/bob").await;
    assert_eq!(user["devices"], 1);

    // Bob is on a call when he is deactivated: it continues to its end.
    let mut trunk = Ua::bind("127.0.0.1", running.sip).await;
    let (invite, ok) = answered_call(&mut trunk, &mut bob, "+15550200").await;
    let (status, user) = running
        .send("POST", "/api/v1/users/bob/deactivate", None)
        .await;
    assert_eq!((status, &user["status"]), (200, &json!("deactivated")));
    assert_eq!(user["devices"], 0, "signed out at once");
    let (_, calls) = running.get("/api/v1/calls").await;
    assert_eq!(calls.as_array().unwrap().len(), 1, "the call is still up");
    hang_up(&mut trunk, &mut bob, &invite, &ok).await;
    let rows = history(&running, "", 1).await;
    assert_eq!(rows[0]["outcome"], "answered");
    assert_eq!(rows[0]["answered_by"], "bob");
    assert_eq!(
        bob.register("bob", "bob-pw", None, 300).await.status(),
        Some(403)
    );
    let (_, why) = running.get("/api/v1/users/bob/explain").await;
    assert_eq!(gate_on(&why, "+15550200")["gate"], "not_active");

    // Bob's direct line rings nobody now.
    let invite = trunk.invite("+15550200", "+15551234567");
    trunk.send(&invite).await;
    let fin = trunk.final_response().await;
    assert_eq!(fin.status(), Some(480));
    trunk.ack_non_2xx(&invite, &fin).await;
    bob.expect_no_request().await;

    // Do-not-disturb is a gate of its own.
    let (status, _) = running
        .send("POST", "/api/v1/users/bob/activate", None)
        .await;
    assert_eq!(status, 200);
    let (status, user) = running
        .send(
            "PATCH",
            "/api/v1/users/bob",
            Some(json!({"do_not_disturb": true})),
        )
        .await;
    assert_eq!((status, &user["do_not_disturb"]), (200, &json!(true)));
    assert_eq!(
        bob.register("bob", "bob-pw", None, 300).await.status(),
        Some(200)
    );
    let (_, why) = running.get("/api/v1/users/bob/explain").await;
    assert_eq!(gate_on(&why, "+15550200")["gate"], "do_not_disturb");
    let rows = history(&running, "", 2).await;
    assert_eq!(rows[0]["outcome"], "rejected");
    assert_eq!(rows[0]["status"], 480);
    running.daemon.stop().await;
}

#[tokio::test]
async fn without_a_token_the_api_listens_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let text = admin_config_text(&dir.path().join("data"), "")
        .replace(&format!("admin_token = \"{ADMIN_TOKEN}\""), "")
        .replace("admin_http = \"127.0.0.1:0\"", "admin_http = \"0.0.0.0:0\"");
    let file = dir.path().join("switchboard.toml");
    std::fs::write(&file, text).unwrap();
    let error = Daemon::start(Config::load(&file).unwrap())
        .await
        .err()
        .unwrap();
    assert!(error.to_string().contains("admin_token"), "{error}");
}

/// The demo workspace (ring destinations, menu options, shared menus) in a
/// file of its own, its prompts named where they are in the repository.
fn demo_file(dir: &Path) -> PathBuf {
    let prompts = format!("\"{}/../prompts/", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/switchboard.toml"
    ))
    .unwrap()
    .replace("\"../prompts/", &prompts)
    .replace("sip_udp = \"127.0.0.1:5060\"", "sip_udp = \"127.0.0.1:0\"")
    .replace("sip_tcp = \"127.0.0.1:5060\"", "sip_tcp = \"127.0.0.1:0\"")
    .replace(
        "admin_http = \"127.0.0.1:8080\"",
        &format!("admin_http = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN_TOKEN}\""),
    )
    .replace(
        "data_dir = \"data\"",
        &format!("data_dir = \"{}\"", dir.join("data").display()),
    );
    let file = dir.join("demo.toml");
    std::fs::write(&file, text).unwrap();
    file
}

#[tokio::test]
async fn forced_removal_takes_a_user_out_of_destinations_and_menus() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_from(&demo_file(dir.path())).await;
    // Bob is routed on Sales and Front desk, rung outside Support's hours
    // (alone), and in the main line's menu option 1 (with alice).
    let (status, body) = running.send("DELETE", "/api/v1/users/bob", None).await;
    assert_eq!(
        (status, &body["error"]),
        (409, &json!("user_still_routed")),
        "{body}"
    );
    let (status, body) = running
        .send("DELETE", "/api/v1/users/bob?force=true", None)
        .await;
    assert_eq!(status, 204, "{body}");
    let text = running.text();
    assert!(!text.contains("\"bob\""), "{text}");
    let (_, support) = running.get("/api/v1/numbers/+15550200").await;
    assert_eq!(
        support["outside"],
        Value::Null,
        "a ring of nobody goes back to the default"
    );
    let (_, main) = running.get("/api/v1/numbers/+15550500").await;
    assert_eq!(main["ivr"]["options"]["1"]["users"], json!(["alice"]));
    // Alice, now alone in option 1, goes with the option.
    let (status, body) = running
        .send("DELETE", "/api/v1/users/alice?force=true", None)
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, main) = running.get("/api/v1/numbers/+15550500").await;
    assert_eq!(main["ivr"]["options"]["1"], Value::Null);
    assert_eq!(main["ivr"]["options"]["3"]["action"], "voicemail");
    assert!(running.text().contains("# Main line: an IVR menu answers"));

    // Trunks: a GET sent back as a PUT keeps the password it does not show.
    let (_, trunk) = running.get("/api/v1/trunks/carrier").await;
    assert_eq!(trunk["outbound"]["password_set"], true);
    assert!(trunk["outbound"].get("password").is_none());
    let body = json!({"sources": trunk["sources"], "outbound": trunk["outbound"]});
    let (status, trunk) = running
        .send("PUT", "/api/v1/trunks/carrier", Some(body))
        .await;
    assert_eq!(status, 200, "{trunk}");
    assert!(running.text().contains("password = \"demo-secret\""));

    // Bad query strings get the error shape too.
    let (status, body) = running.get("/api/v1/calls/history?limit=lots").await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_request")),
        "{body}"
    );
    let (status, body) = running
        .get("/api/v1/users/carol/explain?at=yesterday")
        .await;
    assert_eq!(
        (status, &body["error"]),
        (422, &json!("invalid_request")),
        "{body}"
    );
    running.daemon.stop().await;
}

#[tokio::test]
async fn a_reload_of_a_broken_file_lists_its_errors_and_quotes_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let good = running.text();
    // An unterminated string on the password line.
    std::fs::write(
        &running.file,
        good.replace("password = \"bob-pw\"", "password = \"bob-pw"),
    )
    .unwrap();
    let (status, body) = running.send("POST", "/api/v1/reload", None).await;
    assert_eq!(
        (status, &body["error"]),
        (422, &json!("invalid_config")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("switchboard.toml") && message.contains("line"),
        "{message}"
    );
    assert!(
        !message.contains("bob-pw"),
        "the file is not quoted: {message}"
    );
    let (status, _) = running.get("/api/v1/users/bob").await;
    assert_eq!(status, 200, "the running workspace is kept");
    running.daemon.stop().await;
}

#[tokio::test]
async fn call_history_filters_by_time_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let mut trunk = Ua::bind("127.0.0.1", running.sip).await;
    // Three calls nobody can take: 480 each, recorded as rejected.
    for _ in 0..3 {
        let invite = trunk.invite("+15550200", "+15551234567");
        trunk.send(&invite).await;
        let fin = trunk.final_response().await;
        assert_eq!(fin.status(), Some(480));
        trunk.ack_non_2xx(&invite, &fin).await;
    }
    assert_eq!(history(&running, "", 3).await.len(), 3);
    assert_eq!(history(&running, "?limit=2", 2).await.len(), 2);
    let (_, none) = running
        .get("/api/v1/calls/history?since=2100-01-01T00:00:00Z")
        .await;
    assert_eq!(none, json!([]));
    let (_, all) = running
        .get("/api/v1/calls/history?since=2000-01-01T00:00:00Z&number=%2B15550200")
        .await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(
        all[0]["skipped"][0],
        json!({"user": "bob", "gate": "not_signed_in"})
    );
    running.daemon.stop().await;
}
