//! Transaction timer tests under a manual clock: every instant is `t0 + d`.
#![allow(clippy::unwrap_used)]
// Each test reads the clock once, for an origin: `Instant` has no other
// constructor. Time then only moves by adding durations to it.
#![allow(clippy::disallowed_methods)]

use super::*;

const ADDR: &str = "127.0.0.1:5070";

fn peer() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: ADDR.parse().unwrap(),
    }
}

fn tcp_peer() -> Peer {
    Peer {
        transport: Transport::Tcp(1),
        addr: ADDR.parse().unwrap(),
    }
}

fn request(method: &str, branch: &str) -> Message {
    let raw = format!(
        "{method} sip:bob@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n\
         From: <sip:alice@127.0.0.1>;tag=a1\r\n\
         To: <sip:bob@127.0.0.1>\r\n\
         Call-ID: c1\r\n\
         CSeq: 1 {method}\r\n\
         Max-Forwards: 70\r\n\r\n"
    );
    Message::parse(raw.as_bytes()).unwrap()
}

fn response(status: u16, method: &str, branch: &str) -> Message {
    let raw = format!(
        "SIP/2.0 {status} X\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n\
         From: <sip:alice@127.0.0.1>;tag=a1\r\n\
         To: <sip:bob@127.0.0.1>;tag=b1\r\n\
         Call-ID: c1\r\n\
         CSeq: 1 {method}\r\n\r\n"
    );
    Message::parse(raw.as_bytes()).unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Drains outputs: (transmitted first lines, events).
fn drain(t: &mut Transactions<u32>) -> (Vec<String>, Vec<TxEvent<u32>>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    while let Some(o) = t.poll_output() {
        match o {
            Output::Transmit(tr) => {
                let text = String::from_utf8_lossy(&tr.bytes).to_string();
                sent.push(text.lines().next().unwrap_or("").to_string());
            }
            Output::Event(e) => events.push(e),
        }
    }
    (sent, events)
}

/// Advances the clock to each instant in `at` (ms after t0) and returns how
/// many transmissions happened exactly there.
fn sends_at(t: &mut Transactions<u32>, t0: Instant, at: &[u64]) -> Vec<usize> {
    at.iter()
        .map(|&m| {
            t.handle_timeout(t0 + ms(m));
            drain(t).0.len()
        })
        .collect()
}

#[test]
fn timer_a_doubles_and_timer_b_times_out_at_64_t1() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let id = t.new_client(t0, peer(), request("INVITE", "z9hG4bKa"), 7);
    assert_eq!(drain(&mut t).0, vec!["INVITE sip:bob@127.0.0.1 SIP/2.0"]);
    // Nothing before 500 ms; retransmits at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
    assert_eq!(sends_at(&mut t, t0, &[499]), vec![0]);
    assert_eq!(
        sends_at(&mut t, t0, &[500, 1499, 1500, 3500, 7500, 15500, 31500]),
        vec![1, 0, 1, 1, 1, 1, 1]
    );
    t.handle_timeout(t0 + ms(31_999));
    assert!(drain(&mut t).1.is_empty());
    t.handle_timeout(t0 + ms(32_000));
    let (_, events) = drain(&mut t);
    assert!(matches!(events[..], [TxEvent::Timeout { tx, ctx: 7 }] if tx == id));
    assert!(t.is_empty());
}

#[test]
fn provisional_stops_timer_a_and_b_non_2xx_is_acked_and_timer_d_lingers() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let id = t.new_client(t0, peer(), request("INVITE", "z9hG4bKb"), 1);
    drain(&mut t);
    assert!(t
        .on_response(t0 + ms(100), response(180, "INVITE", "z9hG4bKb"))
        .is_none());
    let (_, ev) = drain(&mut t);
    assert!(matches!(ev[..], [TxEvent::Provisional { .. }]));
    // No retransmission and no timer B once proceeding.
    assert_eq!(sends_at(&mut t, t0, &[500, 1500, 40_000]), vec![0, 0, 0]);
    assert_eq!(t.state(id), Some(State::Proceeding));
    t.on_response(t0 + ms(41_000), response(486, "INVITE", "z9hG4bKb"));
    let (sent, ev) = drain(&mut t);
    assert_eq!(sent, vec!["ACK sip:bob@127.0.0.1 SIP/2.0"]);
    assert!(matches!(&ev[..], [TxEvent::Final { response, .. }] if response.status() == Some(486)));
    // A retransmitted 486 is ACKed again, not passed up.
    t.on_response(t0 + ms(41_500), response(486, "INVITE", "z9hG4bKb"));
    let (sent, ev) = drain(&mut t);
    assert_eq!(sent.len(), 1);
    assert!(ev.is_empty());
    // Timer D: 32 s after the final.
    t.handle_timeout(t0 + ms(41_000 + 31_999));
    assert_eq!(t.state(id), Some(State::Completed));
    t.handle_timeout(t0 + ms(41_000 + 32_000));
    assert_eq!(t.state(id), None);
}

#[test]
fn client_invite_2xx_goes_accepted_and_timer_m_passes_retransmits_up() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let id = t.new_client(t0, peer(), request("INVITE", "z9hG4bKm"), 1);
    drain(&mut t);
    t.on_response(t0 + ms(10), response(200, "INVITE", "z9hG4bKm"));
    let (sent, ev) = drain(&mut t);
    assert!(sent.is_empty(), "the TU, not the transaction, ACKs a 2xx");
    assert!(matches!(ev[..], [TxEvent::Final { .. }]));
    t.on_response(t0 + ms(510), response(200, "INVITE", "z9hG4bKm"));
    let (_, ev) = drain(&mut t);
    assert!(matches!(ev[..], [TxEvent::Retransmitted2xx { .. }]));
    t.handle_timeout(t0 + ms(10 + 31_999));
    assert_eq!(t.state(id), Some(State::Accepted));
    t.handle_timeout(t0 + ms(10 + 32_000));
    assert_eq!(t.state(id), None);
}

#[test]
fn timer_e_caps_at_t2_and_timer_f_times_out() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    t.new_client(t0, peer(), request("OPTIONS", "z9hG4bKe"), 3);
    drain(&mut t);
    // 0.5, 1.5, 3.5, 7.5 then every 4 s: 11.5, 15.5, ... 31.5.
    let at = [
        500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500,
    ];
    assert_eq!(sends_at(&mut t, t0, &at), vec![1; at.len()]);
    assert_eq!(sends_at(&mut t, t0, &[31_999]), vec![0]);
    t.handle_timeout(t0 + ms(32_000));
    let (_, ev) = drain(&mut t);
    assert!(matches!(ev[..], [TxEvent::Timeout { ctx: 3, .. }]));
}

#[test]
fn non_invite_proceeding_retransmits_every_t2_and_timer_k_lingers_t4() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let id = t.new_client(t0, peer(), request("REGISTER", "z9hG4bKk"), 3);
    drain(&mut t);
    t.on_response(t0 + ms(100), response(100, "REGISTER", "z9hG4bKk"));
    drain(&mut t);
    // Timer E still runs in Proceeding (first at 0.5 s), then at T2 steps.
    assert_eq!(sends_at(&mut t, t0, &[500, 4500, 8500]), vec![1, 1, 1]);
    t.on_response(t0 + ms(9000), response(200, "REGISTER", "z9hG4bKk"));
    let (_, ev) = drain(&mut t);
    assert!(matches!(ev[..], [TxEvent::Final { .. }]));
    assert_eq!(sends_at(&mut t, t0, &[12_500]), vec![0]);
    t.handle_timeout(t0 + ms(9000 + 4999));
    assert_eq!(t.state(id), Some(State::Completed));
    t.handle_timeout(t0 + ms(9000 + 5000));
    assert_eq!(t.state(id), None);
}

#[test]
fn server_invite_sends_100_at_once_and_absorbs_retransmits() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = request("INVITE", "z9hG4bKs");
    assert_eq!(t.on_request(t0, &req), RequestMatch::New);
    let id = t.new_server(t0, peer(), req.clone(), 9);
    assert_eq!(drain(&mut t).0, vec!["SIP/2.0 100 Trying"]);
    // A retransmitted INVITE gets the last response again.
    assert_eq!(t.on_request(t0 + ms(500), &req), RequestMatch::Absorbed);
    assert_eq!(drain(&mut t).0, vec!["SIP/2.0 100 Trying"]);
    let ringing = response_to(&req, 180, "Ringing", Some("x"), true);
    t.respond(t0 + ms(600), id, &ringing);
    assert_eq!(drain(&mut t).0, vec!["SIP/2.0 180 Ringing"]);
    assert_eq!(t.on_request(t0 + ms(1500), &req), RequestMatch::Absorbed);
    assert_eq!(drain(&mut t).0, vec!["SIP/2.0 180 Ringing"]);
}

#[test]
fn timer_g_h_and_ack_absorbed_then_timer_i() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = request("INVITE", "z9hG4bKg");
    let id = t.new_server(t0, peer(), req.clone(), 9);
    drain(&mut t);
    t.respond(
        t0,
        id,
        &response_to(&req, 486, "Busy Here", Some("x"), false),
    );
    assert_eq!(drain(&mut t).0, vec!["SIP/2.0 486 Busy Here"]);
    // G: 0.5, 1.5, 3.5, 7.5, 11.5 (capped at T2).
    assert_eq!(
        sends_at(&mut t, t0, &[500, 1500, 3500, 7500, 11_500]),
        vec![1, 1, 1, 1, 1]
    );
    // The ACK (same branch) matches, stops G and starts I.
    let ack = request("ACK", "z9hG4bKg");
    assert_eq!(t.on_request(t0 + ms(12_000), &ack), RequestMatch::Absorbed);
    assert_eq!(t.state(id), Some(State::Confirmed));
    assert_eq!(sends_at(&mut t, t0, &[15_500]), vec![0]);
    // Retransmitted ACKs are absorbed during timer I.
    assert_eq!(t.on_request(t0 + ms(13_000), &ack), RequestMatch::Absorbed);
    t.handle_timeout(t0 + ms(16_999));
    assert_eq!(t.state(id), Some(State::Confirmed));
    t.handle_timeout(t0 + ms(17_000));
    assert_eq!(t.state(id), None);

    // Without an ACK, timer H fires at 64*T1 and reports it.
    let req = request("INVITE", "z9hG4bKh");
    let id = t.new_server(t0, peer(), req.clone(), 4);
    t.respond(
        t0,
        id,
        &response_to(&req, 480, "Temporarily Unavailable", Some("x"), false),
    );
    drain(&mut t);
    t.handle_timeout(t0 + ms(31_999));
    assert!(drain(&mut t).1.is_empty());
    t.handle_timeout(t0 + ms(32_000));
    let (_, ev) = drain(&mut t);
    assert!(matches!(
        ev[..],
        [TxEvent::AckTimeout {
            ctx: 4,
            status: 480,
            ..
        }]
    ));
}

#[test]
fn server_2xx_is_resent_until_confirmed_and_timer_l_ends_it() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = request("INVITE", "z9hG4bKl");
    let id = t.new_server(t0, peer(), req.clone(), 5);
    drain(&mut t);
    t.respond(t0, id, &response_to(&req, 200, "OK", Some("x"), true));
    drain(&mut t);
    assert_eq!(sends_at(&mut t, t0, &[500, 1500]), vec![1, 1]);
    // INVITE retransmits are absorbed silently in Accepted (RFC 6026).
    assert_eq!(t.on_request(t0 + ms(1600), &req), RequestMatch::Absorbed);
    assert!(drain(&mut t).0.is_empty());
    t.confirm_2xx(id);
    assert_eq!(sends_at(&mut t, t0, &[3500, 7500]), vec![0, 0]);
    t.handle_timeout(t0 + ms(32_000));
    let (_, ev) = drain(&mut t);
    assert!(ev.is_empty(), "a confirmed 2xx is no ACK timeout");
    assert_eq!(t.state(id), None);

    // Unconfirmed: AckTimeout at timer L.
    let req = request("INVITE", "z9hG4bKl2");
    let id = t.new_server(t0, peer(), req.clone(), 6);
    t.respond(t0, id, &response_to(&req, 200, "OK", Some("x"), true));
    drain(&mut t);
    t.handle_timeout(t0 + ms(32_000));
    let (_, ev) = drain(&mut t);
    assert!(matches!(
        ev[..],
        [TxEvent::AckTimeout {
            ctx: 6,
            status: 200,
            ..
        }]
    ));
}

#[test]
fn timer_j_lingers_64_t1_over_udp_and_zero_over_tcp() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = request("REGISTER", "z9hG4bKj");
    let id = t.new_server(t0, peer(), req.clone(), 1);
    assert!(drain(&mut t).0.is_empty(), "no 100 for non-INVITE");
    assert_eq!(t.on_request(t0, &req), RequestMatch::Absorbed);
    t.respond(t0, id, &response_to(&req, 200, "OK", Some("x"), false));
    drain(&mut t);
    assert_eq!(t.on_request(t0 + ms(1000), &req), RequestMatch::Absorbed);
    assert_eq!(drain(&mut t).0, vec!["SIP/2.0 200 OK"]);
    t.handle_timeout(t0 + ms(31_999));
    assert_eq!(t.state(id), Some(State::Completed));
    t.handle_timeout(t0 + ms(32_000));
    assert_eq!(t.state(id), None);

    let req = request("REGISTER", "z9hG4bKj2");
    let id = t.new_server(t0, tcp_peer(), req.clone(), 1);
    t.respond(t0, id, &response_to(&req, 200, "OK", Some("x"), false));
    t.handle_timeout(t0);
    assert_eq!(t.state(id), None);
}

#[test]
fn reliable_transport_never_retransmits() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    t.new_client(t0, tcp_peer(), request("INVITE", "z9hG4bKt"), 1);
    drain(&mut t);
    assert_eq!(sends_at(&mut t, t0, &[500, 1500, 3500]), vec![0, 0, 0]);
    t.handle_timeout(t0 + ms(32_000));
    assert!(matches!(drain(&mut t).1[..], [TxEvent::Timeout { .. }]));
}

#[test]
fn cancel_matches_its_invite_and_is_built_from_the_request() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = request("INVITE", "z9hG4bKc");
    let id = t.new_server(t0, peer(), req, 1);
    let cancel = request("CANCEL", "z9hG4bKc");
    assert_eq!(t.on_request(t0, &cancel), RequestMatch::New);
    assert_eq!(t.find_invite_for_cancel(&cancel), Some(id));

    let cid = t.new_client(t0, peer(), request("INVITE", "z9hG4bKcc"), 2);
    let built = t.cancel_for(cid).unwrap();
    assert_eq!(built.method(), Some(&Method::Cancel));
    assert_eq!(built.top_via().unwrap().branch(), Some("z9hG4bKcc"));
    assert_eq!(built.cseq().unwrap().method, "CANCEL");
}

#[test]
fn rfc2543_requests_match_without_a_cookie() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = request("INVITE", "1234");
    t.new_server(t0, peer(), req.clone(), 1);
    drain(&mut t);
    assert_eq!(t.on_request(t0, &req), RequestMatch::Absorbed);
}

#[test]
fn responses_go_to_the_via_port_without_rport_unless_the_sender_is_behind_nat() {
    let from = Peer {
        transport: Transport::Udp,
        addr: "127.0.0.2:45070".parse().unwrap(),
    };
    let with_via = |via: &str| {
        Message::parse(
            format!(
                "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@b>;tag=1\r\n\
                 To: <sip:x@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap()
    };
    let to = |via: &str| response_peer(from, &with_via(via)).addr.to_string();
    assert_eq!(
        to("SIP/2.0/UDP 127.0.0.2:45071;branch=z9hG4bK1"),
        "127.0.0.2:45071",
        "§18.2.2"
    );
    assert_eq!(
        to("SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK1"),
        "127.0.0.2:5060"
    );
    assert_eq!(
        to("SIP/2.0/UDP 127.0.0.2:45071;branch=z9hG4bK1;rport"),
        "127.0.0.2:45070",
        "RFC 3581"
    );
    // A Via naming a private address it did not send from: behind NAT.
    assert_eq!(
        to("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1"),
        "127.0.0.2:45070"
    );
    // Over a stream, back on the connection.
    let tcp = Peer {
        transport: Transport::Tcp(3),
        ..from
    };
    assert_eq!(
        response_peer(tcp, &with_via("SIP/2.0/TCP 127.0.0.2:5060;branch=z9hG4bK1")),
        tcp
    );
}
