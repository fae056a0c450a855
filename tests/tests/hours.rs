//! Business hours, cascade and destinations over real UDP on loopback.
//! The windows are written around the real clock (a time zone where it is
//! daytime now is picked, and a window around now is written in it), so
//! these tests work at any hour of any day.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use jiff::tz::TimeZone;
use switchboard::server::Daemon;
use switchboard::settings::Config;
use switchboard_tests::sip::build::response_to;
use switchboard_tests::sip::{auth, HeaderName, Method};
use switchboard_tests::{sdp_answer, test_config_text, Ua, SDP_OFFER};

/// A zone where the local time is between 03:00 and 20:59 now, with its
/// weekday key (`mon`...), today's date, and the current hour.
struct Daytime {
    zone: &'static str,
    today: String,
    weekday: &'static str,
    other_day: &'static str,
    hour: i8,
}

fn daytime() -> Daytime {
    const KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let now = switchboard::clock::wall();
    for zone in [
        "UTC",
        "Asia/Tokyo",
        "America/New_York",
        "Europe/Paris",
        "Pacific/Auckland",
        "Asia/Kolkata",
        "America/Los_Angeles",
    ] {
        let local = TimeZone::get(zone).unwrap().to_datetime(now);
        if (3..21).contains(&local.hour()) {
            let day = local.date().weekday().to_monday_zero_offset() as usize;
            return Daytime {
                zone,
                today: local.date().to_string(),
                weekday: KEYS[day],
                other_day: KEYS[(day + 3) % 7],
                hour: local.hour(),
            };
        }
    }
    unreachable!("some zone of seven spread over the globe has daytime")
}

impl Daytime {
    /// `[hours]` open now (a window from an hour ago to two hours ahead).
    fn open_now(&self) -> String {
        format!(
            "{} = [\"{:02}:00-{:02}:00\"]",
            self.weekday,
            self.hour - 1,
            self.hour + 2
        )
    }

    /// `[hours]` closed now (open only on another day).
    fn closed_now(&self) -> String {
        format!("{} = [\"09:00-17:00\"]", self.other_day)
    }
}

struct Env {
    daemon: Daemon,
    server: SocketAddr,
    _dir: tempfile::TempDir,
}

async fn start(extra: &str, outbound: Option<SocketAddr>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut text = test_config_text(dir.path(), extra);
    if let Some(addr) = outbound {
        text = text.replacen(
            "sources = [\"127.0.0.1/32\"]",
            &format!(
                "sources = [\"127.0.0.1/32\"]\noutbound = {{ address = \"{addr}\", username = \"acct\", password = \"trunk-secret\" }}"
            ),
            1,
        );
    }
    let config = Config::parse(&text, std::path::Path::new("test.toml"), dir.path()).unwrap();
    let daemon = Daemon::start(config).await.unwrap();
    let server = daemon.udp_addr.unwrap();
    Env {
        daemon,
        server,
        _dir: dir,
    }
}

impl Env {
    async fn phone(&self, user: &str) -> Ua {
        let mut ua = Ua::bind("127.0.0.1", self.server).await;
        let resp = ua.register(user, &format!("{user}-pw"), None, 300).await;
        assert_eq!(resp.status(), Some(200), "{user}: {resp}");
        ua
    }
}

/// A number `+1555050N` named `name` with these members, routing and tables.
fn number(n: u32, members: &[&str], routing: &str, zone: &str, tables: &str) -> String {
    let list = |l: &[&str]| {
        l.iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "\n[[numbers]]\nnumber = \"+1555050{n}\"\nname = \"Line {n}\"\ntimezone = \"{zone}\"\nmembers = [{}]\n\n[numbers.routing]\n{routing}\n{tables}\n",
        list(members)
    )
}

#[tokio::test]
async fn a_closed_number_sends_the_call_to_its_destination_without_ringing_anyone() {
    let d = daytime();
    let extra = number(
        1,
        &["alice", "frank"],
        "strategy = \"simultaneous\"\nring = [\"alice\"]",
        d.zone,
        &format!(
            "[numbers.hours]\n{}\n[numbers.outside]\naction = \"ring\"\nusers = [\"frank\"]\n",
            d.closed_now()
        ),
    );
    let env = start(&extra, None).await;
    let mut alice = env.phone("alice").await;
    let mut frank = env.phone("frank").await;
    let mut trunk = Ua::bind("127.0.0.1", env.server).await;
    let invite = trunk.invite("+15550501", "+15551234567");
    trunk.send(&invite).await;
    let ringing = frank.expect_request(Method::Invite).await;
    alice.expect_no_request().await;
    let tag = frank.unique("f");
    frank
        .respond(&ringing, 200, Some(&tag), Some(&sdp_answer(41000)))
        .await;
    let ok = trunk.expect_response(200).await;
    trunk.ack_2xx(&invite, &ok).await;
    frank.expect_request(Method::Ack).await;
    env.daemon.stop().await;
}

#[tokio::test]
async fn a_holiday_closes_a_number_whose_weekly_window_is_open() {
    let d = daytime();
    let tables = |closed: &str| {
        format!(
            "[numbers.hours]\n{}\nclosed = [{closed}]\n[numbers.outside]\naction = \"hangup\"\nstatus = 403\n",
            d.open_now()
        )
    };
    let routing = "strategy = \"simultaneous\"\nring = [\"alice\"]";
    let extra = format!(
        "{}{}",
        number(
            1,
            &["alice"],
            routing,
            d.zone,
            &tables(&format!("\"{}\"", d.today))
        ),
        number(2, &["alice"], routing, d.zone, &tables("\"2001-01-01\""))
    );
    let env = start(&extra, None).await;
    let mut alice = env.phone("alice").await;
    let mut trunk = Ua::bind("127.0.0.1", env.server).await;
    // Today is a holiday on +15550501: the outside destination, nobody rings.
    let invite = trunk.invite("+15550501", "+15551234567");
    trunk.send(&invite).await;
    let refused = trunk.final_response().await;
    assert_eq!(refused.status(), Some(403));
    trunk.ack_non_2xx(&invite, &refused).await;
    alice.expect_no_request().await;
    // The same window without the holiday rings alice.
    let invite = trunk.invite("+15550502", "+15551234567");
    trunk.send(&invite).await;
    let ringing = alice.expect_request(Method::Invite).await;
    assert!(ringing.header(HeaderName::From).unwrap().contains("Line 2"));
    trunk.cancel(&invite).await;
    env.daemon.stop().await;
}

#[tokio::test]
async fn cascade_rings_a_then_b_after_the_step_and_skips_busy_c() {
    let d = daytime();
    let extra = format!(
        "{}{}",
        number(
            1,
            &["alice", "carol", "frank"],
            "strategy = \"cascade\"\nring = [\"alice\", \"carol\", \"frank\"]\nstep_timeout = 2",
            d.zone,
            ""
        ),
        number(
            2,
            &["carol"],
            "strategy = \"simultaneous\"\nring = [\"carol\"]",
            d.zone,
            ""
        )
    );
    let env = start(&extra, None).await;
    let mut alice = env.phone("alice").await;
    let mut carol = env.phone("carol").await;
    let mut frank = env.phone("frank").await;
    let mut trunk = Ua::bind("127.0.0.1", env.server).await;

    // carol takes a call on her own line: she is busy.
    let first = trunk.invite("+15550502", "+15550000001");
    trunk.send(&first).await;
    let leg = carol.expect_request(Method::Invite).await;
    let tag = carol.unique("c");
    carol
        .respond(&leg, 200, Some(&tag), Some(&sdp_answer(42000)))
        .await;
    let ok = trunk.expect_response(200).await;
    trunk.ack_2xx(&first, &ok).await;
    carol.expect_request(Method::Ack).await;

    // The cascade: alice first, alone.
    let invite = trunk.invite("+15550501", "+15551234567");
    trunk.send(&invite).await;
    let a = alice.expect_request(Method::Invite).await;
    let atag = alice.unique("a");
    alice.respond(&a, 180, Some(&atag), None).await;
    frank.expect_no_request().await; // QUIET (0.7 s) < the 2 s step
                                     // After the step alice stops; carol (busy) is skipped; frank rings.
    let cancel = alice.expect_request(Method::Cancel).await;
    alice.respond(&cancel, 200, Some(&atag), None).await;
    alice.respond(&a, 487, Some(&atag), None).await;
    let f = frank.expect_request(Method::Invite).await;
    carol.expect_no_request().await;
    let ftag = frank.unique("f");
    frank
        .respond(&f, 200, Some(&ftag), Some(&sdp_answer(43000)))
        .await;
    let ok = trunk.expect_response(200).await;
    trunk.ack_2xx(&invite, &ok).await;
    assert_eq!(env.daemon.presence.user("frank").active_calls(), 1);
    env.daemon.stop().await;
}

#[tokio::test]
async fn forward_reaches_the_carrier_which_challenges_and_gets_the_trunks_credentials() {
    let d = daytime();
    // The carrier: a user agent of its own; its replies go to the daemon.
    let carrier_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let carrier_addr = carrier_socket.local_addr().unwrap();
    drop(carrier_socket);
    let extra = number(
        1,
        &["alice"],
        "strategy = \"simultaneous\"\nring = [\"alice\"]",
        d.zone,
        &format!(
            "[numbers.hours]\n{}\n[numbers.outside]\naction = \"forward\"\nto = \"+33612345678\"\n",
            d.closed_now()
        ),
    );
    let env = start(&extra, Some(carrier_addr)).await;
    let mut carrier = Ua::bind_at(carrier_addr, env.server).await;
    let mut alice = env.phone("alice").await;
    let mut trunk = Ua::bind("127.0.0.1", env.server).await;
    let invite = trunk.invite("+15550501", "+15551234567");
    trunk.send(&invite).await;

    let first = carrier.expect_request(Method::Invite).await;
    assert_eq!(
        first.request_uri(),
        Some(format!("sip:+33612345678@{carrier_addr}").as_str())
    );
    let diversion = first
        .headers()
        .find(|(_, raw, _)| raw.eq_ignore_ascii_case("Diversion"))
        .map(|(_, _, v)| v.to_string())
        .expect("Diversion");
    assert!(
        diversion.contains("+15550501") && diversion.contains("time-of-day"),
        "{diversion}"
    );
    assert_eq!(
        &first.body()[..],
        SDP_OFFER.as_bytes(),
        "the caller's offer"
    );
    let mut challenge = response_to(
        &first,
        407,
        "Proxy Authentication Required",
        Some("car1"),
        false,
    );
    challenge.push(
        HeaderName::ProxyAuthenticate,
        &auth::challenge("carrier.test", "c4rr1er", auth::Algorithm::Md5, false),
    );
    carrier.send(&challenge).await;
    let ack = carrier.expect_request(Method::Ack).await;
    assert_eq!(ack.cseq().unwrap().seq, 1);
    let second = carrier.expect_request(Method::Invite).await;
    assert_eq!(second.cseq().unwrap().seq, 2);
    let creds =
        auth::parse_credentials(second.header(HeaderName::ProxyAuthorization).unwrap()).unwrap();
    assert_eq!(creds.username, "acct");
    let ha1 = auth::ha1(auth::Algorithm::Md5, "acct", "carrier.test", "trunk-secret");
    assert!(
        auth::verify(&creds, "INVITE", &ha1),
        "the trunk's credentials"
    );
    carrier
        .respond(&second, 200, Some("car2"), Some(&sdp_answer(44000)))
        .await;
    let ok = trunk.expect_response(200).await;
    assert!(std::str::from_utf8(ok.body())
        .unwrap()
        .contains("m=audio 44000"));
    trunk.ack_2xx(&invite, &ok).await;
    carrier.expect_request(Method::Ack).await;
    alice.expect_no_request().await;
    env.daemon.stop().await;
}

#[tokio::test]
async fn a_number_destination_follows_the_other_numbers_hours() {
    let d = daytime();
    let routing = |u: &str| format!("strategy = \"simultaneous\"\nring = [\"{u}\"]");
    let extra = format!(
        "{}{}{}",
        // Closed, sends its calls to +15550502.
        number(
            1,
            &["alice"],
            &routing("alice"),
            d.zone,
            &format!(
            "[numbers.hours]\n{}\n[numbers.outside]\naction = \"number\"\nnumber = \"+15550502\"\n",
            d.closed_now()
        )
        ),
        // Open now: frank rings.
        number(
            2,
            &["frank"],
            &routing("frank"),
            d.zone,
            &format!("[numbers.hours]\n{}\n", d.open_now())
        ),
        // Closed too: its own outside (486) applies.
        number(
            3,
            &["alice"],
            &routing("alice"),
            d.zone,
            &format!(
            "[numbers.hours]\n{}\n[numbers.outside]\naction = \"number\"\nnumber = \"+15550504\"\n",
            d.closed_now()
        )
        ),
    ) + &number(
        4,
        &["frank"],
        &routing("frank"),
        d.zone,
        &format!(
            "[numbers.hours]\n{}\n[numbers.outside]\naction = \"hangup\"\nstatus = 486\n",
            d.closed_now()
        ),
    );
    let env = start(&extra, None).await;
    let mut alice = env.phone("alice").await;
    let mut frank = env.phone("frank").await;
    let mut trunk = Ua::bind("127.0.0.1", env.server).await;
    let invite = trunk.invite("+15550501", "+15551234567");
    trunk.send(&invite).await;
    let ringing = frank.expect_request(Method::Invite).await;
    assert!(ringing.header(HeaderName::From).unwrap().contains("Line 2"));
    alice.expect_no_request().await;
    trunk.cancel(&invite).await;

    // A second carrier port, so the first call's CANCEL answers stay apart.
    let mut trunk = Ua::bind("127.0.0.1", env.server).await;
    let invite = trunk.invite("+15550503", "+15551234567");
    trunk.send(&invite).await;
    let refused = trunk.final_response().await;
    assert_eq!(
        refused.status(),
        Some(486),
        "+15550504 is closed: its own outside"
    );
    trunk.ack_non_2xx(&invite, &refused).await;
    env.daemon.stop().await;
}
