//! The whole configuration file: `[server]` (the daemon's) and the
//! workspace tables (the directory's), with every error named by file, key
//! and position.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use directory::{ConfigError, ConfigErrors, NumberIdx, Strategy, UserIdx, UserSpec, UserStatus};

use super::*;

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/switchboard.toml");

/// A small valid file; tests edit it to break one rule at a time.
const BASE: &str = r#"
[server]
domain = "example.test"
sip_udp = "127.0.0.1:5060"

[plan]
seats = 3

[[trunks]]
name = "carrier"
sources = ["192.0.2.0/24", "2001:db8::1"]

[[users]]
id = "alice"
name = "Alice"
status = "active"
password = "a"

[[users]]
id = "bob"
name = "Bob"
status = "invited"
password = "b"
max_calls = 2

[[numbers]]
number = "+15550100"
name = "Sales"
timezone = "Europe/Paris"
members = ["alice", "bob"]

[numbers.routing]
strategy = "cascade"
ring = ["bob", "alice"]
"#;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, Path::new("test.toml"), Path::new("/etc/switchboard"))
}

fn errors_of(text: &str) -> Vec<ConfigError> {
    match parse(text) {
        Ok(_) => panic!("expected errors, the config was accepted:\n{text}"),
        Err(e) => e.0,
    }
}

/// Asserts `errors` holds one for `key` whose reason contains `reason`.
fn assert_has(errors: &[ConfigError], key: &str, reason: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.key == key && e.reason.contains(reason) && e.file == Path::new("test.toml")),
        "no error for key `{key}` containing {reason:?}; got:\n{}",
        ConfigErrors(errors.to_vec())
    );
}

/// Replaces the first occurrence of `from` in BASE, checking it was there.
fn base_with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "BASE has no {from:?}");
    BASE.replacen(from, to, 1)
}

#[test]
fn demo_config_parses() {
    let config = Config::load(Path::new(DEMO)).unwrap();
    let server = &config.server;
    assert_eq!(server.domain, "switchboard.local");
    assert_eq!(server.sip_udp, Some("127.0.0.1:5060".parse().unwrap()));
    assert_eq!(server.sip_tcp, Some("127.0.0.1:5060".parse().unwrap()));
    assert_eq!(server.admin_http, Some("127.0.0.1:8080".parse().unwrap()));
    assert_eq!(
        server.data_dir,
        Path::new(DEMO).parent().unwrap().join("data")
    );
    assert_eq!(server.log_format, LogFormat::Human);
    assert_eq!(
        (
            server.min_expires,
            server.default_expires,
            server.max_expires
        ),
        (60, 3600, 3600)
    );

    let dir = &config.directory;
    assert_eq!(dir.domain(), "switchboard.local");
    assert_eq!(dir.seats(), 10);
    let ids: Vec<_> = dir.users().iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, ["alice", "bob", "carol", "dave"]);
    let dave = dir.user(dir.user_index("dave").unwrap());
    assert_eq!(dave.status, UserStatus::Invited);
    assert_eq!(dir.user(UserIdx(0)).max_calls, 1);

    let idx = |id| dir.user_index(id).unwrap();
    let sales = dir.number(dir.number_index("+15550100").unwrap());
    assert_eq!(sales.name, "Sales");
    assert_eq!(sales.timezone_name, "Europe/Paris");
    assert_eq!(sales.members, [idx("alice"), idx("bob"), idx("carol")]);
    assert_eq!(sales.routing.strategy, Strategy::Simultaneous);
    assert_eq!(sales.routing.ring, [idx("alice"), idx("bob")]);
    assert_eq!(sales.ring_timeout, Duration::from_secs(30));
    assert!(sales.is_member(idx("carol")));
    assert!(!sales.is_member(idx("dave")));

    let support = dir.number(NumberIdx(1));
    assert_eq!(support.e164, "+15550200");
    assert_eq!(support.timezone_name, "America/New_York");
    assert_eq!(support.members, [idx("carol"), idx("alice"), idx("bob")]);
    assert_eq!(support.routing.strategy, Strategy::Cascade);
    assert_eq!(support.routing.ring, [idx("carol"), idx("alice")]);
    assert_eq!(support.routing.step_timeout, Duration::from_secs(15));
    assert_eq!(
        support.ring_timeout,
        Duration::from_secs(30),
        "two steps of 15 s"
    );
    let hours = support.hours.as_ref().expect("split shifts");
    assert_eq!(hours.weekly[0].len(), 2, "a split shift on Monday");
    assert_eq!(hours.closed.len(), 2, "Christmas and the new year");
    assert!(matches!(support.outside, directory::Destination::Ring(_)));

    let front = dir.number(NumberIdx(2));
    assert!(matches!(
        &front.outside,
        directory::Destination::Forward { to, .. } if to == "+33612345678"
    ));
    assert!(dir.outbound_trunk().is_some());

    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(dir.trunks().len(), 1);
    assert_eq!(
        dir.trunk_for_source(ip("127.0.0.1")).unwrap().name,
        "carrier"
    );
    assert_eq!(dir.trunk_for_source(ip("::1")).unwrap().name, "carrier");
    // A dual-stack socket reports IPv4 peers as IPv4-mapped IPv6.
    assert!(dir.trunk_for_source(ip("::ffff:127.0.0.1")).is_some());
    assert!(dir.trunk_for_source(ip("127.0.0.2")).is_none());
}

#[test]
fn base_config_parses_with_defaults() {
    let config = parse(BASE).unwrap();
    assert_eq!(config.server.sip_tcp, None);
    assert_eq!(config.server.admin_http, None);
    assert_eq!(
        config.server.data_dir,
        PathBuf::from("/etc/switchboard/data")
    );
    assert_eq!(config.server.log_format, LogFormat::Human);
    let dir = &config.directory;
    let bob = dir.user(dir.user_index("bob").unwrap());
    assert_eq!(bob.max_calls, 2);
    // A cascade of two users: the steps added up (2 x 20 s).
    let sales = dir.number(NumberIdx(0));
    assert_eq!(sales.ring_timeout, Duration::from_secs(40));
    assert_eq!(sales.routing.step_timeout, Duration::from_secs(20));
    assert_eq!(sales.hours, None, "no hours: always open");
    assert_eq!(sales.no_answer, directory::Destination::DEFAULT_NO_ANSWER);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(dir.trunk_for_source(ip("192.0.2.77")).is_some());
    assert!(dir.trunk_for_source(ip("2001:db8::1")).is_some());
    assert!(dir.trunk_for_source(ip("2001:db8::2")).is_none());
    assert_eq!(
        dir.trunks()[0].sources[1].to_string(),
        "2001:db8::1/128",
        "a bare IP is a host route"
    );
    assert_eq!(dir.number_index("+15550199"), None);
    assert_eq!(dir.user_index("carol"), None);
}

#[test]
fn absolute_data_dir_and_json_logs() {
    let text = base_with(
        "sip_udp",
        "data_dir = \"/var/lib/sb\"\nlog_format = \"json\"\nsip_udp",
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.server.data_dir, PathBuf::from("/var/lib/sb"));
    assert_eq!(config.server.log_format, LogFormat::Json);
}

#[test]
fn duplicate_user_is_refused() {
    let text = base_with("id = \"bob\"", "id = \"alice\"");
    let errors = errors_of(&text);
    assert_has(
        &errors,
        "users[1].id",
        "duplicate user id `alice` (first at users[0])",
    );
}

#[test]
fn duplicate_number_after_normalisation_is_refused() {
    let text = format!(
        "{BASE}\n[[numbers]]\nnumber = \"001 (555) 0100\"\nname = \"Again\"\n\
         timezone = \"UTC\"\nmembers = []\n[numbers.routing]\nstrategy = \"cascade\"\nring = []\n"
    );
    let errors = errors_of(&text);
    assert_has(
        &errors,
        "numbers[1].number",
        "duplicate number +15550100 (same as numbers[0].number)",
    );
}

#[test]
fn more_users_than_seats_is_refused() {
    let text = base_with("seats = 3", "seats = 1");
    let errors = errors_of(&text);
    assert_has(&errors, "plan.seats", "2 users");
    assert_has(&errors, "plan.seats", "the plan has 1 seats");
}

#[test]
fn routing_entry_that_is_not_a_member_is_refused() {
    let text = base_with("members = [\"alice\", \"bob\"]", "members = [\"alice\"]");
    let errors = errors_of(&text);
    assert_has(
        &errors,
        "numbers[0].routing.ring[0]",
        "`bob` is not a member of this number",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn member_that_is_not_a_user_is_refused() {
    let text = base_with(
        "members = [\"alice\", \"bob\"]",
        "members = [\"alice\", \"bob\", \"zed\"]",
    );
    let errors = errors_of(&text);
    assert_has(&errors, "numbers[0].members[2]", "`zed` is not a user");
}

#[test]
fn duplicate_member_and_ring_entries_are_refused() {
    let text = base_with(
        "members = [\"alice\", \"bob\"]",
        "members = [\"alice\", \"bob\", \"alice\"]",
    );
    let text = text.replacen(
        "ring = [\"bob\", \"alice\"]",
        "ring = [\"bob\", \"bob\"]",
        1,
    );
    let errors = errors_of(&text);
    assert_has(
        &errors,
        "numbers[0].members[2]",
        "`alice` is listed twice (first at members[0])",
    );
    assert_has(
        &errors,
        "numbers[0].routing.ring[1]",
        "`bob` is listed twice (first at ring[0])",
    );
}

#[test]
fn unknown_time_zone_is_refused() {
    let text = base_with("Europe/Paris", "Mars/Olympus_Mons");
    let errors = errors_of(&text);
    assert_has(
        &errors,
        "numbers[0].timezone",
        "unknown time zone `Mars/Olympus_Mons`",
    );
}

#[test]
fn malformed_number_is_refused() {
    let text = base_with("+15550100", "+1555CALLNOW");
    let errors = errors_of(&text);
    assert_has(
        &errors,
        "numbers[0].number",
        "`+1555CALLNOW` is not a valid E.164 number",
    );
}

#[test]
fn unparsable_socket_address_is_refused() {
    for key in ["sip_udp", "sip_tcp", "admin_http"] {
        let text = base_with(
            "sip_udp = \"127.0.0.1:5060\"",
            &format!("{key} = \"localhost:5060\""),
        );
        let errors = errors_of(&text);
        assert_has(
            &errors,
            &format!("server.{key}"),
            "`localhost:5060` is not a socket address",
        );
    }
    let errors = errors_of(&base_with("127.0.0.1:5060", "127.0.0.1"));
    assert_has(&errors, "server.sip_udp", "is not a socket address");
}

#[test]
fn wildcard_listener_needs_an_advertised_address() {
    let wildcard = base_with("sip_udp = \"127.0.0.1:5060\"", "sip_udp = \"0.0.0.0:5060\"");
    let errors = errors_of(&wildcard);
    assert_has(&errors, "server.sip_udp", "set server.advertise");
    let with_advertise = base_with(
        "sip_udp = \"127.0.0.1:5060\"",
        "sip_udp = \"0.0.0.0:5060\"\nadvertise = \"192.0.2.10\"",
    );
    let config = parse(&with_advertise).unwrap();
    assert_eq!(config.server.advertise, Some("192.0.2.10".parse().unwrap()));
    for bad in ["0.0.0.0", "example.com"] {
        let text = base_with(
            "sip_udp = \"127.0.0.1:5060\"",
            &format!("sip_udp = \"127.0.0.1:5060\"\nadvertise = \"{bad}\""),
        );
        assert_has(
            &errors_of(&text),
            "server.advertise",
            "not a specific IP address",
        );
    }
}

#[test]
fn unparsable_trunk_source_is_refused() {
    for bad in ["192.0.2.0/33", "192.0.2", "carrier.example", ""] {
        let text = base_with("\"2001:db8::1\"", &format!("{bad:?}"));
        let errors = errors_of(&text);
        assert_has(
            &errors,
            "trunks[0].sources[1]",
            &format!("`{bad}` is not an IP address or CIDR"),
        );
    }
}

#[test]
fn inconsistent_expires_are_refused() {
    let cases = [
        (
            "min_expires = 600\nmax_expires = 300",
            "server.min_expires",
            "min_expires (600) is greater than max_expires (300)",
        ),
        (
            "min_expires = 120\ndefault_expires = 60",
            "server.default_expires",
            "default_expires (60) is less than min_expires (120)",
        ),
        (
            "max_expires = 1800",
            "server.default_expires",
            "default_expires (3600) is greater than max_expires (1800)",
        ),
        (
            "min_expires = 0",
            "server.min_expires",
            "must be at least 1",
        ),
    ];
    for (lines, key, reason) in cases {
        let text = base_with("sip_udp", &format!("{lines}\nsip_udp"));
        assert_has(&errors_of(&text), key, reason);
    }
    // Equal bounds are fine.
    let text = base_with(
        "sip_udp",
        "min_expires = 300\ndefault_expires = 300\nmax_expires = 300\nsip_udp",
    );
    parse(&text).unwrap();
}

#[test]
fn limits_are_set_or_refused_with_their_key() {
    let text = base_with(
        "sip_udp",
        "max_calls = 500\nmax_legs_per_call = 8\nmax_bindings_per_user = 4\n\
         tcp_max_connections = 50\ntcp_max_message = 16384\ntcp_message_timeout = 5\nsip_udp",
    );
    let server = parse(&text).unwrap().server;
    assert_eq!(server.max_calls, 500);
    assert_eq!(server.max_legs_per_call, 8);
    assert_eq!(server.max_bindings_per_user, 4);
    assert_eq!(server.tcp_max_connections, 50);
    assert_eq!(server.tcp_max_message, 16384);
    assert_eq!(server.tcp_message_timeout, Duration::from_secs(5));
    let defaults = parse(BASE).unwrap().server;
    assert_eq!(
        (
            defaults.max_calls,
            defaults.max_legs_per_call,
            defaults.max_bindings_per_user
        ),
        (50_000, 100, 16)
    );
    assert_eq!(
        (defaults.tcp_max_connections, defaults.tcp_max_message),
        (10_000, 65_535)
    );
    let cases = [
        ("max_calls = 0", "server.max_calls", "at least 1"),
        (
            "max_legs_per_call = 0",
            "server.max_legs_per_call",
            "at least 1",
        ),
        (
            "max_bindings_per_user = 0",
            "server.max_bindings_per_user",
            "at least 1",
        ),
        (
            "tcp_max_connections = 0",
            "server.tcp_max_connections",
            "at least 1",
        ),
        (
            "tcp_message_timeout = 0",
            "server.tcp_message_timeout",
            "at least 1",
        ),
        (
            "tcp_max_message = 4096",
            "server.tcp_max_message",
            "at least 8192",
        ),
        (
            "tcp_max_message = 70000",
            "server.tcp_max_message",
            "largest SIP message",
        ),
    ];
    for (line, key, reason) in cases {
        let text = base_with("sip_udp", &format!("{line}\nsip_udp"));
        assert_has(&errors_of(&text), key, reason);
    }
}

#[test]
fn other_user_and_number_rules() {
    let cases = [
        (
            "id = \"bob\"",
            "id = \"bob smith\"",
            "users[1].id",
            "contains ' '",
        ),
        (
            "id = \"bob\"",
            "id = \"\"",
            "users[1].id",
            "must not be empty",
        ),
        (
            "password = \"b\"",
            "password = \"\"",
            "users[1].password",
            "must not be empty",
        ),
        (
            "max_calls = 2",
            "max_calls = 0",
            "users[1].max_calls",
            "must be at least 1",
        ),
        (
            "domain = \"example.test\"",
            "domain = \"\"",
            "server.domain",
            "must not be empty",
        ),
        (
            "name = \"carrier\"",
            "name = \"\"",
            "trunks[0].name",
            "must not be empty",
        ),
        (
            "members = [\"alice\", \"bob\"]",
            "members = [\"alice\", \"bob\"]\nring_timeout = 0",
            "numbers[0].ring_timeout",
            "must be between 1 and 600 seconds, got 0",
        ),
        (
            "members = [\"alice\", \"bob\"]",
            "members = [\"alice\", \"bob\"]\nring_timeout = 601",
            "numbers[0].ring_timeout",
            "got 601",
        ),
    ];
    for (from, to, key, reason) in cases {
        // "bob" occurs in members too; only the first occurrence is the id.
        assert_has(&errors_of(&base_with(from, to)), key, reason);
    }
}

#[test]
fn semantic_errors_point_at_the_line() {
    let text = base_with("Europe/Paris", "Nowhere/Atlantis");
    let errors = errors_of(&text);
    let line = text
        .lines()
        .position(|l| l.contains("Nowhere/Atlantis"))
        .unwrap()
        + 1;
    assert_has(
        &errors,
        "numbers[0].timezone",
        &format!("(line {line}, column 12)"),
    );
}

#[test]
fn unknown_key_in_every_table_is_refused() {
    let tables = [
        ("[server]", "server.colour"),
        ("[plan]", "plan.colour"),
        ("[[trunks]]", "trunks[0].colour"),
        ("[[users]]", "users[0].colour"),
        ("[[numbers]]", "numbers[0].colour"),
        ("[numbers.routing]", "numbers[0].routing.colour"),
    ];
    for (header, key) in tables {
        let text = base_with(header, &format!("{header}\ncolour = \"blue\""));
        let line = text.lines().position(|l| l == header).unwrap() + 2;
        let errors = errors_of(&text);
        assert_eq!(errors.len(), 1, "{header}: {errors:?}");
        assert_has(&errors, key, "unknown field `colour`, expected");
        assert_has(&errors, key, &format!("(line {line}, column 1)"));
        let shown = ConfigErrors(errors).to_string();
        assert!(
            shown.starts_with(&format!("test.toml: {key}: unknown field `colour`")),
            "{shown}"
        );
    }
    // And at the top level.
    let text = format!("colour = \"blue\"\n{BASE}");
    let errors = errors_of(&text);
    assert_has(
        &errors,
        "colour",
        "unknown field `colour`, expected one of `server`",
    );
    assert_has(&errors, "colour", "(line 1, column 1)");
}

#[test]
fn serde_errors_in_several_entries_are_all_reported() {
    let text = base_with("status = \"invited\"", "status = \"away\"");
    let text = text.replacen("max_calls = 2", "max_calls = -1", 1);
    let text = text.replacen("name = \"Alice\"\n", "", 1);
    let text = text.replacen("strategy = \"cascade\"", "strategy = \"round-robin\"", 1);
    let errors = errors_of(&text);
    assert_has(&errors, "users[0]", "missing field `name`");
    assert_has(&errors, "users[1].status", "unknown variant `away`");
    assert_has(
        &errors,
        "numbers[0].routing.strategy",
        "unknown variant `round-robin`",
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
    let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["users[0]", "users[1].status", "numbers[0].routing.strategy"]
    );
}

#[test]
fn wrong_types_are_refused_with_their_key() {
    let errors = errors_of(&base_with("seats = 3", "seats = \"three\""));
    assert_has(&errors, "plan.seats", "invalid type");
    let errors = errors_of(&base_with("number = \"+15550100\"", "number = 15550100"));
    assert_has(&errors, "numbers[0].number", "invalid type");
    let errors = errors_of("users = 5\n[server]\ndomain = \"x\"\n[plan]\nseats = 1\n");
    assert_has(&errors, "users", "invalid type");
}

#[test]
fn missing_tables_are_refused() {
    let errors = errors_of("[plan]\nseats = 1\n");
    assert_has(&errors, "server", "missing table [server]");
    let errors = errors_of("[server]\ndomain = \"x\"\n");
    assert_has(&errors, "plan", "missing table [plan]");
    let errors = errors_of(&base_with("domain = \"example.test\"\n", ""));
    assert_has(&errors, "server", "missing field `domain`");
}

#[test]
fn several_errors_are_all_reported_at_once() {
    let text = base_with("seats = 3", "seats = 1")
        .replacen("Europe/Paris", "Europe/Atlantis", 1)
        .replacen("+15550100", "555-CALL", 1)
        .replacen("127.0.0.1:5060", "nowhere", 1)
        .replacen("id = \"bob\"", "id = \"alice\"", 1)
        .replacen("\"2001:db8::1\"", "\"2001:db8::zz\"", 1);
    let errors = errors_of(&text);
    assert_has(&errors, "server.sip_udp", "not a socket address");
    assert_has(&errors, "plan.seats", "the plan has 1 seats");
    assert_has(&errors, "trunks[0].sources[1]", "not an IP address or CIDR");
    assert_has(&errors, "users[1].id", "duplicate user id");
    assert_has(&errors, "numbers[0].number", "not a valid E.164 number");
    assert_has(&errors, "numbers[0].timezone", "unknown time zone");
    // Renaming bob made the number's member `bob` dangle: reported too.
    assert_has(&errors, "numbers[0].members[1]", "`bob` is not a user");
    assert_eq!(errors.len(), 7, "{errors:?}");
    let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "server.sip_udp",
            "plan.seats",
            "trunks[0].sources[1]",
            "users[1].id",
            "numbers[0].number",
            "numbers[0].timezone",
            "numbers[0].members[1]",
        ],
        "in file order"
    );
    let shown = ConfigErrors(errors).to_string();
    assert_eq!(shown.lines().count(), 7, "one error per line:\n{shown}");
    assert!(
        shown.lines().all(|l| l.starts_with("test.toml: ")),
        "{shown}"
    );
}

#[test]
fn syntax_errors_name_the_file_and_position() {
    let errors = errors_of("[server]\ndomain = \n");
    assert!(!errors.is_empty());
    assert_eq!(errors[0].key, "");
    assert!(errors[0].reason.contains("(line 2, column"), "{errors:?}");
    assert!(errors[0].to_string().starts_with("test.toml: "));
}

#[test]
fn load_reports_an_unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let errors = Config::load(&missing).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].file, missing);
    assert!(errors.0[0].reason.contains("cannot read"));
}

#[test]
fn load_resolves_data_dir_next_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sb.toml");
    std::fs::write(
        &path,
        BASE.replacen("sip_udp", "data_dir = \"state\"\nsip_udp", 1),
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.server.data_dir, dir.path().join("state"));
}

#[test]
fn passwords_stay_out_of_debug_output() {
    let config = parse(BASE).unwrap();
    let shown = format!("{:?}", config.directory);
    assert!(shown.contains("alice"));
    assert!(!shown.contains("password: \"a\""), "{shown}");
    assert!(shown.contains("<redacted>"));
    let spec = UserSpec {
        password: "hunter2".into(),
        ..UserSpec::default()
    };
    assert!(!format!("{spec:?}").contains("hunter2"));
}

// ---------------------------------------------------------------------------
// Business hours, routing steps and destinations.

/// BASE with Sales' routing followed by `extra` (tables of the number).
fn sales_with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

#[test]
fn hours_and_destinations_parse_into_the_number() {
    let text = sales_with(
        r#"
[numbers.hours]
mon = ["09:00-12:00", "13:00-18:00"]
fri = ["09:00-17:00", "22:00-06:00"]
closed = ["2026-12-25", "2026-12-31..2027-01-01"]
[numbers.hours.special]
"2026-12-20" = ["10:00-14:00"]
[numbers.outside]
action = "ring"
users = ["alice"]
strategy = "cascade"
step_timeout = 15
[numbers.no_answer]
action = "hangup"
status = 486
"#,
    );
    let config = parse(&text).unwrap();
    let sales = config.directory.number(NumberIdx(0));
    let hours = sales.hours.as_ref().unwrap();
    assert_eq!(hours.weekly[0].len(), 2);
    assert_eq!(hours.weekly[4][1].to_string(), "22:00-06:00");
    assert_eq!(hours.closed.len(), 2);
    assert_eq!(hours.special.len(), 1);
    match &sales.outside {
        directory::Destination::Ring(group) => {
            assert_eq!(group.strategy, Strategy::Cascade);
            assert_eq!(group.step_timeout, Duration::from_secs(15));
            assert_eq!(group.ring_timeout, Duration::from_secs(15), "one step");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sales.no_answer,
        directory::Destination::Hangup { status: Some(486) }
    );
}

#[test]
fn bad_hours_are_refused_with_their_key() {
    let cases = [
        (
            "mon = [\"9:00-12:00\"]",
            "numbers[0].hours.mon[0]",
            "not a window",
        ),
        (
            "mon = [\"10:00-10:00\"]",
            "numbers[0].hours.mon[0]",
            "is empty",
        ),
        (
            "mon = [\"09:00-12:00\", \"11:00-13:00\"]",
            "numbers[0].hours.mon[1]",
            "overlaps",
        ),
        (
            "sun = [\"22:00-08:00\"]\nmon = [\"07:00-09:00\"]",
            "numbers[0].hours.sun",
            "runs into mon's window",
        ),
        (
            "closed = [\"2027-01-02..2027-01-01\"]",
            "numbers[0].hours.closed[0]",
            "ends before it starts",
        ),
        (
            "closed = [\"Christmas\"]",
            "numbers[0].hours.closed[0]",
            "not a date",
        ),
        (
            "monday = [\"09:00-12:00\"]",
            "numbers[0].hours.monday",
            "unknown field `monday`",
        ),
    ];
    for (body, key, reason) in cases {
        let errors = errors_of(&sales_with(&format!("[numbers.hours]\n{body}\n")));
        assert_has(&errors, key, reason);
    }
    let errors = errors_of(&sales_with(
        "[numbers.hours]\nclosed = [\"2026-12-20\"]\n[numbers.hours.special]\n\"2026-12-20\" = [\"10:00-11:00\"]\n",
    ));
    assert_has(
        &errors,
        "numbers[0].hours.special.\"2026-12-20\"",
        "is also closed",
    );
    let errors = errors_of(&sales_with(
        "[numbers.hours.special]\n\"2026-02-30\" = [\"10:00-11:00\"]\n",
    ));
    assert_has(
        &errors,
        "numbers[0].hours.special.\"2026-02-30\"",
        "not a date",
    );
}

#[test]
fn destinations_that_cannot_be_carried_out_are_refused_with_the_reason() {
    let hours = "[numbers.hours]\nmon = [\"09:00-17:00\"]\n";
    for (table, key, reason) in [
        (
            "action = \"ivr\"",
            "numbers[0].outside.menu",
            "which is not configured here",
        ),
        (
            "action = \"ivr\"\nmenu = \"nowhere\"",
            "numbers[0].outside.menu",
            "`nowhere` is not a menu",
        ),
        (
            "action = \"message\"\nprompt = \"\"",
            "numbers[0].outside.prompt",
            "must name a WAV file",
        ),
        (
            "action = \"number\"\nnumber = \"+15559999\"",
            "numbers[0].outside.number",
            "not one of the workspace's numbers",
        ),
        (
            "action = \"forward\"\nto = \"+33612345678\"",
            "numbers[0].outside.action",
            "needs a trunk with an outbound side",
        ),
        (
            "action = \"forward\"\nto = \"nope\"",
            "numbers[0].outside.to",
            "not a valid E.164",
        ),
        (
            "action = \"ring\"\nusers = [\"zed\"]",
            "numbers[0].outside.users[0]",
            "is not a user",
        ),
        (
            "action = \"hangup\"\nstatus = 407",
            "numbers[0].outside.status",
            "asks the caller for credentials",
        ),
        (
            "action = \"hangup\"\nstatus = 200",
            "numbers[0].outside.status",
            "400 to 699",
        ),
        (
            "action = \"teleport\"",
            "numbers[0].outside.action",
            "unknown variant `teleport`",
        ),
    ] {
        let errors = errors_of(&sales_with(&format!("{hours}[numbers.outside]\n{table}\n")));
        assert_has(&errors, key, reason);
    }
    // `outside` without hours would never be used.
    let errors = errors_of(&sales_with("[numbers.outside]\naction = \"hangup\"\n"));
    assert_has(
        &errors,
        "numbers[0].outside",
        "no effect without numbers.hours",
    );
}

#[test]
fn destinations_that_loop_are_refused() {
    let text = format!(
        "{}\n[numbers.hours]\nmon = [\"09:00-10:00\"]\n[numbers.outside]\naction = \"number\"\nnumber = \"+15550200\"\n\n\
         [[numbers]]\nnumber = \"+15550200\"\nname = \"Other\"\ntimezone = \"UTC\"\nmembers = []\n\
         [numbers.routing]\nstrategy = \"simultaneous\"\nring = []\n\
         [numbers.no_answer]\naction = \"number\"\nnumber = \"+15550100\"\n",
        BASE
    );
    let errors = errors_of(&text);
    assert_has(
        &errors,
        "numbers[1].no_answer",
        "the destinations loop: +15550100 -> +15550200 -> +15550100",
    );
    assert_eq!(errors.len(), 1, "reported once: {errors:?}");
}

#[test]
fn user_hours_need_a_time_zone_and_the_trunk_outbound_an_address() {
    let text = base_with(
        "password = \"a\"\n",
        "password = \"a\"\n[users.hours]\nmon = [\"09:00-17:00\"]\n",
    );
    assert_has(
        &errors_of(&text),
        "users[0].timezone",
        "is required with users.hours",
    );
    let text = base_with(
        "password = \"a\"\n",
        "password = \"a\"\ntimezone = \"Mars/Olympus\"\n",
    );
    assert_has(&errors_of(&text), "users[0].timezone", "unknown time zone");
    let text = base_with(
        "sources = [\"192.0.2.0/24\", \"2001:db8::1\"]\n",
        "sources = [\"192.0.2.0/24\", \"2001:db8::1\"]\noutbound = { address = \"carrier.invalid\" }\n",
    );
    assert_has(
        &errors_of(&text),
        "trunks[0].outbound.address",
        "not a socket address",
    );
    let text = base_with(
        "sources = [\"192.0.2.0/24\", \"2001:db8::1\"]\n",
        "sources = [\"192.0.2.0/24\", \"2001:db8::1\"]\noutbound = { address = \"127.0.0.1:5070\", username = \"acct\", password = \"s3cret\" }\n",
    );
    let config = parse(&text).unwrap();
    let shown = format!("{:?}", config.directory.trunks()[0]);
    assert!(
        shown.contains("127.0.0.1:5070") && !shown.contains("s3cret"),
        "{shown}"
    );
}

#[test]
fn menus_voicemail_and_media_settings_are_checked_with_their_keys() {
    let text = "[numbers.ivr]\ngreeting = \"menu.wav\"\ntimeout = 0\nretries = 11\n\
        [numbers.ivr.options]\n\"x\" = { action = \"voicemail\" }\n\
        \"1\" = { action = \"ivr\", menu = \"missing\" }\n\
        [numbers.voicemail]\nmax_length = 0\nmax_messages = 0\n";
    let errors = errors_of(&sales_with(text));
    assert_has(&errors, "numbers[0].ivr.timeout", "between 1 and 60");
    assert_has(&errors, "numbers[0].ivr.retries", "at most 10");
    assert_has(&errors, "numbers[0].ivr.options.\"x\"", "is not a key");
    assert_has(
        &errors,
        "numbers[0].ivr.options.\"1\".menu",
        "`missing` is not a menu",
    );
    assert_has(
        &errors,
        "numbers[0].voicemail.max_length",
        "between 1 and 3600",
    );
    assert_has(&errors, "numbers[0].voicemail.max_messages", "at least 1");
    let media = errors_of(&sales_with(
        "[media]\nrtp_ports = \"30000-20000\"\nadvertise = \"0.0.0.0\"\n",
    ));
    assert_has(&media, "media.rtp_ports", "not a port range");
    assert_has(
        &media,
        "media.advertise",
        "not an IP address peers can send RTP to",
    );
}
