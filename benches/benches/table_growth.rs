//! The longest pause while the transaction table grows: 400,000 server
//! INVITE transactions are created one by one in a table sized, as the
//! daemon sizes it, for 229,376, and the slowest single creation is
//! reported (with how many took over 1 ms), beside the same inserts into
//! one unsharded `HashMap` of boxed values, which is what the table was
//! before it was split into shards.
//!
//! Run with `cargo bench -p switchboard-benches --bench table_growth`.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sip::transaction::{Peer, TimerConfig, Transactions, Transport};
use sip::Message;

const TRANSACTIONS: usize = 400_000;
const CAPACITY: usize = (1 << 18) / 8 * 7;

fn invite(i: usize) -> Message {
    let text = format!(
        "INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-growth-{i}\r\n\
         From: <sip:+15551230000@127.0.0.1>;tag={i}\r\n\
         To: <sip:+15550100@127.0.0.1>\r\n\
         Call-ID: growth-{i}@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    );
    Message::parse(text.as_bytes()).unwrap()
}

/// The slowest of `times`, and how many were over a millisecond.
fn report(what: &str, times: &[Duration]) {
    let worst = times.iter().max().copied().unwrap_or_default();
    let over = times
        .iter()
        .filter(|t| **t > Duration::from_millis(1))
        .count();
    println!(
        "{what}: {TRANSACTIONS} inserts, slowest {:.2} ms, {over} over 1 ms",
        worst.as_secs_f64() * 1000.0
    );
}

fn main() {
    let peer = Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5070".parse().unwrap(),
    };
    let messages: Vec<Message> = (0..TRANSACTIONS).map(invite).collect();
    let now = Instant::now();

    let mut table: Transactions<u32> =
        Transactions::with_capacity(TimerConfig::default(), CAPACITY);
    let mut times = Vec::with_capacity(TRANSACTIONS);
    for message in messages.iter().cloned() {
        let started = Instant::now();
        table.new_server(now, peer, message, 0);
        times.push(started.elapsed());
    }
    assert_eq!(table.len(), TRANSACTIONS);
    report("sharded transaction table", &times);

    // The table as it was: one map from key to boxed transaction.
    let mut single: HashMap<String, Box<Message>> = HashMap::with_capacity(CAPACITY);
    times.clear();
    for (i, message) in messages.into_iter().enumerate() {
        let key = format!("s|z9hG4bK-growth-{i}|127.0.0.1:5070|INVITE");
        let started = Instant::now();
        single.insert(key, Box::new(message));
        times.push(started.elapsed());
    }
    report("one HashMap (before)", &times);
}
