//! A deterministic simulation of the whole engine: a trunk placing calls
//! and phones answering, declining, vanishing or hanging up, over a
//! simulated network that loses, duplicates, delays and reorders
//! datagrams, in fake time, from one seed. After every run the invariants
//! are checked: every call reached an end, every INVITE the trunk sent got
//! a final response, nobody is busy, no transaction, call or timer is left.
//! A failing seed is printed and reproduces exactly.
//!
//! The peers are small SIP user agents written for the simulation: they
//! retransmit their requests and their 2xx until answered (RFC 3261 §17,
//! §13.3.1.4), and answer 481 for a dialog they no longer hold.

use std::collections::{BTreeMap, HashMap};

use super::*;

/// xorshift64*: deterministic from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

const ENGINE: &str = "127.0.0.1:5060";
const PHONES: [&str; 4] = [
    "127.0.0.1:5081",
    "127.0.0.1:5082",
    "127.0.0.1:5083",
    "127.0.0.1:5084",
];
const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// Datagrams in flight, by delivery time (then send order).
struct Net {
    rng: Rng,
    queue: BTreeMap<(Instant, u64), (SocketAddr, SocketAddr, Bytes)>,
    seq: u64,
}

impl Net {
    fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, bytes: Bytes) {
        if self.rng.chance(20) {
            return; // lost
        }
        let copies = if self.rng.chance(20) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = Duration::from_millis(1 + self.rng.below(150));
            self.seq += 1;
            self.queue
                .insert((now + delay, self.seq), (from, to, bytes.clone()));
        }
    }
}

/// Something a peer sends again until it is answered.
struct Pending {
    bytes: Bytes,
    next: Instant,
    interval: Duration,
    left: u32,
}

impl Pending {
    fn new(now: Instant, bytes: Bytes) -> Pending {
        Pending {
            bytes,
            next: now + Duration::from_millis(500),
            interval: Duration::from_millis(500),
            left: 7,
        }
    }
}

/// What a peer does next on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Answer,
    Decline,
    Bye,
    Cancel,
}

/// One call as a peer sees it.
struct Dialog {
    invite: Message,
    /// Our tag (the phone) or theirs (the trunk, once answered).
    tag: String,
    answered: bool,
    ended: bool,
    got_final: bool,
    cseq: u32,
    /// The 2xx we retransmit until ACKed (phone), or our INVITE until a
    /// response (trunk); our BYE or CANCEL until its response.
    pending: Vec<Pending>,
    due: Vec<(Instant, Due)>,
    /// The 2xx the trunk got, to ACK again and to send its BYE in.
    ok: Option<Message>,
    /// Gone without a word (Wi-Fi lost, crashed): it answers nothing more.
    vanished: bool,
}

/// A peer: the trunk (places calls) or a phone (takes them).
struct Agent {
    addr: SocketAddr,
    trunk: bool,
    dialogs: HashMap<String, Dialog>,
    rng: Rng,
    /// Calls answered (the trunk: its calls; a phone: those it took).
    answered: u32,
}

fn parse(bytes: &[u8]) -> Option<Message> {
    Message::parse(bytes).ok()
}

fn response(req: &Message, status: u16, tag: &str, addr: SocketAddr) -> Message {
    let mut r = response_to(req, status, "X", Some(tag), false);
    r.push(HeaderName::Contact, &format!("<sip:peer@{addr}>"));
    if status == 200 && req.method() == Some(&Method::Invite) {
        r.push(HeaderName::ContentType, "application/sdp");
        r.set_body(Bytes::from_static(b"v=0\r\no=p 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"));
    }
    r
}

impl Agent {
    fn out(&mut self, net: &mut Net, now: Instant, m: &Message) {
        net.send(
            now,
            self.addr,
            ENGINE.parse().unwrap(),
            Bytes::from(m.encode()),
        );
    }

    /// The trunk places call `n`.
    fn place(&mut self, net: &mut Net, now: Instant, n: u32) {
        let call_id = format!("sim-{n}");
        let raw = format!(
            "INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-{call_id}\r\n\
             From: <sip:+15551230000@127.0.0.1>;tag=t-{call_id}\r\nTo: <sip:+15550100@127.0.0.1>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:trunk@{}>\r\nMax-Forwards: 70\r\n\
             Content-Type: application/sdp\r\n\r\nv=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n",
            self.addr, self.addr
        );
        let invite = Message::parse(raw.as_bytes()).unwrap();
        self.out(net, now, &invite);
        let mut dialog = Dialog {
            invite: invite.clone(),
            tag: String::new(),
            answered: false,
            ended: false,
            got_final: false,
            cseq: 1,
            pending: vec![Pending::new(now, Bytes::from(invite.encode()))],
            due: Vec::new(),
            ok: None,
            vanished: false,
        };
        // Some callers give up while it rings.
        if self.rng.chance(200) {
            let at = now + Duration::from_millis(200 + self.rng.below(8_000));
            dialog.due.push((at, Due::Cancel));
        }
        self.dialogs.insert(call_id, dialog);
    }

    fn on_message(&mut self, net: &mut Net, now: Instant, m: Message) {
        let Some(call_id) = m.call_id().map(str::to_string) else {
            return;
        };
        if self.dialogs.get(&call_id).is_some_and(|d| d.vanished) {
            return;
        }
        if let Some(status) = m.status() {
            return self.on_response(net, now, &call_id, status, m);
        }
        let method = m.method().cloned().unwrap_or(Method::Bye);
        match method {
            Method::Invite if m.to_tag().is_none() && !self.trunk => {
                if let Some(d) = self.dialogs.get(&call_id) {
                    // A retransmission: our last word again.
                    let last = if d.answered { 200 } else { 180 };
                    let r = response(&m, last, &d.tag.clone(), self.addr);
                    return self.out(net, now, &r);
                }
                let tag = format!("p{}", self.rng.next() % 100_000);
                let ringing = response(&m, 180, &tag, self.addr);
                self.out(net, now, &ringing);
                let mut dialog = Dialog {
                    invite: m,
                    tag,
                    answered: false,
                    ended: false,
                    got_final: false,
                    cseq: 100,
                    pending: Vec::new(),
                    due: Vec::new(),
                    ok: None,
                    vanished: false,
                };
                let at = now + Duration::from_millis(100 + self.rng.below(6_000));
                match self.rng.below(10) {
                    0..=5 => dialog.due.push((at, Due::Answer)),
                    6 | 7 => dialog.due.push((at, Due::Decline)),
                    _ => {} // never answers (vanished)
                }
                self.dialogs.insert(call_id, dialog);
            }
            Method::Cancel => {
                let ok = response_to(&m, 200, "OK", None, false);
                self.out(net, now, &ok);
                if let Some(d) = self.dialogs.get_mut(&call_id) {
                    if !d.answered && !d.ended {
                        d.ended = true;
                        d.due.clear();
                        let invite = d.invite.clone();
                        let tag = d.tag.clone();
                        let r = response(&invite, 487, &tag, self.addr);
                        self.out(net, now, &r);
                    }
                }
            }
            Method::Ack => {
                if let Some(d) = self.dialogs.get_mut(&call_id) {
                    d.pending.clear();
                }
            }
            Method::Bye | Method::Options | Method::Update | Method::Info | Method::Invite => {
                let known = self
                    .dialogs
                    .get(&call_id)
                    .is_some_and(|d| d.answered && !d.ended);
                let status = if known { 200 } else { 481 };
                let r = response_to(&m, status, "X", None, false);
                self.out(net, now, &r);
                if method == Method::Bye {
                    if let Some(d) = self.dialogs.get_mut(&call_id) {
                        d.ended = true;
                        d.due.clear();
                        d.pending.clear();
                    }
                }
            }
            _ => {
                let r = response_to(&m, 405, "X", None, false);
                self.out(net, now, &r);
            }
        }
    }

    fn on_response(&mut self, net: &mut Net, now: Instant, call_id: &str, status: u16, m: Message) {
        let method = m.cseq().map(|c| c.method.to_string()).unwrap_or_default();
        let addr = self.addr;
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return;
        };
        if method == "INVITE" && self.trunk {
            d.pending.retain(|p| !p.bytes.starts_with(b"INVITE"));
            if status >= 200 {
                d.got_final = true;
            }
            if (200..300).contains(&status) {
                // ACK every 2xx (retransmissions included).
                let target = m
                    .values(HeaderName::Contact)
                    .next()
                    .and_then(sip::NameAddr::parse)
                    .map(|c| c.uri.to_string())
                    .unwrap_or_else(|| format!("sip:{ENGINE}"));
                let mut ack = Message::request(Method::Ack, &target);
                ack.push(
                    HeaderName::Via,
                    &format!("SIP/2.0/UDP {addr};branch=z9hG4bK-ack-{call_id}"),
                );
                ack.push(HeaderName::From, d.invite.header(HeaderName::From).unwrap());
                ack.push(HeaderName::To, m.header(HeaderName::To).unwrap());
                ack.push(HeaderName::CallId, call_id);
                ack.push(HeaderName::CSeq, "1 ACK");
                ack.push(HeaderName::MaxForwards, "70");
                net.send(
                    now,
                    addr,
                    ENGINE.parse().unwrap(),
                    Bytes::from(ack.encode()),
                );
                if !d.answered && !d.ended {
                    d.answered = true;
                    self.answered += 1;
                    d.ok = Some(m);
                    d.due.retain(|(_, due)| *due != Due::Cancel);
                    if self.rng.chance(50) {
                        // The carrier's side vanishes: no BYE, no answers.
                        d.vanished = true;
                        d.pending.clear();
                    } else {
                        let hold = Duration::from_millis(500 + self.rng.below(20_000));
                        d.due.push((now + hold, Due::Bye));
                    }
                }
            } else if status >= 300 {
                d.ended = true;
                d.due.clear();
                // §17.1.1.3: the ACK of a non-2xx, in its transaction.
                let mut ack = Message::request(Method::Ack, d.invite.request_uri().unwrap());
                ack.push(HeaderName::Via, d.invite.header(HeaderName::Via).unwrap());
                ack.push(HeaderName::From, d.invite.header(HeaderName::From).unwrap());
                ack.push(HeaderName::To, m.header(HeaderName::To).unwrap());
                ack.push(HeaderName::CallId, call_id);
                ack.push(HeaderName::CSeq, "1 ACK");
                ack.push(HeaderName::MaxForwards, "70");
                net.send(
                    now,
                    addr,
                    ENGINE.parse().unwrap(),
                    Bytes::from(ack.encode()),
                );
            }
        } else if status >= 200 {
            // The answer to our BYE or CANCEL.
            let prefix = method.as_bytes().to_vec();
            d.pending.retain(|p| !p.bytes.starts_with(&prefix));
        }
    }

    /// What is due at `now`: retransmissions and the peer's own moves.
    fn on_time(&mut self, net: &mut Net, now: Instant) {
        let addr = self.addr;
        let engine: SocketAddr = ENGINE.parse().unwrap();
        let ids: Vec<String> = self.dialogs.keys().cloned().collect();
        for call_id in ids {
            let Some(d) = self.dialogs.get_mut(&call_id) else {
                continue;
            };
            for p in &mut d.pending {
                if p.next <= now && p.left > 0 {
                    net.send(now, addr, engine, p.bytes.clone());
                    p.left -= 1;
                    p.interval = (p.interval * 2).min(Duration::from_secs(4));
                    p.next = now + p.interval;
                }
            }
            d.pending.retain(|p| p.left > 0);
            if d.pending.is_empty() && d.due.is_empty() && d.ended && (d.got_final || !self.trunk) {
                // Over and settled: forgotten (a late message for it gets
                // what an unknown dialog gets).
                self.dialogs.remove(&call_id);
                continue;
            }
            let due: Vec<Due> = d
                .due
                .iter()
                .filter(|(at, _)| *at <= now)
                .map(|(_, due)| *due)
                .collect();
            d.due.retain(|(at, _)| *at > now);
            for due in due {
                self.act(net, now, &call_id, due);
            }
        }
    }

    fn act(&mut self, net: &mut Net, now: Instant, call_id: &str, due: Due) {
        let addr = self.addr;
        let engine: SocketAddr = ENGINE.parse().unwrap();
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return;
        };
        if d.ended {
            return;
        }
        match due {
            Due::Answer => {
                d.answered = true;
                let ok = response(&d.invite, 200, &d.tag, addr);
                let bytes = Bytes::from(ok.encode());
                net.send(now, addr, engine, bytes.clone());
                d.pending.push(Pending::new(now, bytes));
                if self.rng.chance(100) {
                    // Answers, then vanishes: its 200 goes out once.
                    d.vanished = true;
                    d.pending.clear();
                } else if self.rng.chance(300) {
                    let hold = Duration::from_millis(500 + self.rng.below(15_000));
                    d.due.push((now + hold, Due::Bye));
                }
            }
            Due::Decline => {
                d.ended = true;
                let status = if self.rng.chance(500) { 486 } else { 603 };
                let r = response(&d.invite, status, &d.tag, addr);
                net.send(now, addr, engine, Bytes::from(r.encode()));
            }
            Due::Cancel => {
                if d.answered || d.got_final {
                    return;
                }
                let mut cancel = Message::request(Method::Cancel, d.invite.request_uri().unwrap());
                for name in [
                    HeaderName::Via,
                    HeaderName::From,
                    HeaderName::To,
                    HeaderName::CallId,
                ] {
                    cancel.push(name, d.invite.header(name).unwrap());
                }
                cancel.push(HeaderName::CSeq, "1 CANCEL");
                cancel.push(HeaderName::MaxForwards, "70");
                let bytes = Bytes::from(cancel.encode());
                net.send(now, addr, engine, bytes.clone());
                d.pending.push(Pending::new(now, bytes));
            }
            Due::Bye => {
                d.ended = true;
                d.cseq += 1;
                let (target, from, to) = if self.trunk {
                    let Some(ok) = d.ok.as_ref() else {
                        return;
                    };
                    let target = ok
                        .values(HeaderName::Contact)
                        .next()
                        .and_then(sip::NameAddr::parse)
                        .map(|c| c.uri.to_string())
                        .unwrap_or_else(|| format!("sip:{ENGINE}"));
                    (
                        target,
                        d.invite.header(HeaderName::From).unwrap().to_string(),
                        ok.header(HeaderName::To).unwrap().to_string(),
                    )
                } else {
                    let target = d
                        .invite
                        .values(HeaderName::Contact)
                        .next()
                        .and_then(sip::NameAddr::parse)
                        .map(|c| c.uri.to_string())
                        .unwrap_or_else(|| format!("sip:{ENGINE}"));
                    (
                        target,
                        format!("{};tag={}", d.invite.header(HeaderName::To).unwrap(), d.tag),
                        d.invite.header(HeaderName::From).unwrap().to_string(),
                    )
                };
                let mut bye = Message::request(Method::Bye, &target);
                bye.push(
                    HeaderName::Via,
                    &format!("SIP/2.0/UDP {addr};branch=z9hG4bK-bye-{call_id}-{}", d.cseq),
                );
                bye.push(HeaderName::From, &from);
                bye.push(HeaderName::To, &to);
                bye.push(HeaderName::CallId, call_id);
                bye.push(HeaderName::CSeq, &format!("{} BYE", d.cseq));
                bye.push(HeaderName::MaxForwards, "70");
                let bytes = Bytes::from(bye.encode());
                net.send(now, addr, engine, bytes.clone());
                d.pending.retain(|p| !p.bytes.starts_with(b"SIP/2.0 200"));
                d.pending.push(Pending::new(now, bytes));
            }
        }
    }

    fn next_time(&self) -> Option<Instant> {
        self.dialogs
            .values()
            .flat_map(|d| {
                d.pending
                    .iter()
                    .map(|p| p.next)
                    .chain(d.due.iter().map(|(at, _)| *at))
            })
            .min()
    }
}

/// One run: `calls` trunk calls over `seconds` of simulated time, then
/// ten quiet minutes; returns a description of the first broken
/// invariant.
fn run(seed: u64, calls: u32, seconds: u64) -> Result<Summary, String> {
    let directory = sales(&USERS, &USERS, 1);
    let mut sim = Sim::with_directory(directory, |cfg| {
        cfg.liveness_timeout = Duration::from_secs(30);
    });
    for (user, addr) in USERS.iter().zip(PHONES) {
        sim.sign_in(user, addr);
    }
    // Spread the seed's bits (xorshift needs a non-zero state).
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut net = Net {
        rng: Rng(rng.next() | 1),
        queue: BTreeMap::new(),
        seq: 0,
    };
    let mut trunk = Agent {
        addr: TRUNK.parse().unwrap(),
        trunk: true,
        dialogs: HashMap::new(),
        rng: Rng(rng.next() | 1),
        answered: 0,
    };
    let mut phones: Vec<Agent> = PHONES
        .iter()
        .map(|a| Agent {
            addr: a.parse().unwrap(),
            trunk: false,
            dialogs: HashMap::new(),
            rng: Rng(rng.next() | 1),
            answered: 0,
        })
        .collect();
    let engine_addr: SocketAddr = ENGINE.parse().unwrap();
    let mut starts: Vec<Instant> = (0..calls)
        .map(|_| sim.t0 + Duration::from_millis(rng.below(seconds * 1000)))
        .collect();
    starts.sort();
    let mut placed = 0u32;
    let end = sim.t0 + Duration::from_secs(seconds + 600);
    loop {
        // The engine's output goes on the network.
        let engine_next = loop {
            match sim.engine.poll_output() {
                Output::Transmit(t) => net.send(sim.now, engine_addr, t.to.addr, t.bytes),
                Output::Timeout(at) => break at,
                _ => {}
            }
        };
        let candidates = [
            engine_next,
            net.queue.keys().next().map(|(at, _)| *at),
            starts.get(placed as usize).copied(),
            trunk.next_time(),
            phones.iter().filter_map(Agent::next_time).min(),
        ];
        let Some(next) = candidates.into_iter().flatten().min() else {
            break;
        };
        if next > end {
            break;
        }
        sim.now = next.max(sim.now);
        let now = sim.now;
        if engine_next.is_some_and(|at| at <= now) {
            sim.engine.handle_input(now, Input::Timeout);
        }
        while let Some(entry) = net.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (from, to, bytes) = entry.remove();
            if to == engine_addr {
                sim.engine.handle_input(
                    now,
                    Input::Receive {
                        from: Peer {
                            transport: Transport::Udp,
                            addr: from,
                        },
                        bytes,
                    },
                );
            } else if let Some(m) = parse(&bytes) {
                if to == trunk.addr {
                    trunk.on_message(&mut net, now, m);
                } else if let Some(phone) = phones.iter_mut().find(|p| p.addr == to) {
                    phone.on_message(&mut net, now, m);
                }
            }
        }
        while starts.get(placed as usize).is_some_and(|&at| at <= now) {
            trunk.place(&mut net, now, placed);
            placed += 1;
        }
        trunk.on_time(&mut net, now);
        for phone in &mut phones {
            phone.on_time(&mut net, now);
        }
    }
    sim.now = end;
    sim.engine.handle_input(end, Input::Timeout);
    let stats = sim.engine.stats(sim.now);
    let broken = |what: String| Err(format!("seed {seed:#x}: {what} ({stats:?})"));
    if stats.calls_ringing + stats.calls_answered + stats.calls_media > 0 {
        return broken("a call never ended".into());
    }
    if stats.transactions > 0 {
        return broken("transactions left".into());
    }
    if stats.call_timers > 0 {
        return broken("call timers left".into());
    }
    for user in USERS {
        if sim.busy(user) > 0 {
            return broken(format!("{user} is busy without a call"));
        }
    }
    if let Some((id, _)) = trunk.dialogs.iter().find(|(_, d)| !d.got_final) {
        return broken(format!(
            "the trunk's INVITE {id} never got a final response"
        ));
    }
    Ok(Summary {
        placed,
        answered: trunk.answered,
        ended_by_engine: stats.calls_ended as u32,
        retransmissions: stats.retransmissions,
    })
}

/// What a run did, to be sure the runs exercise something.
#[derive(Default)]
struct Summary {
    placed: u32,
    answered: u32,
    ended_by_engine: u32,
    retransmissions: u64,
}

/// Simulated seconds per run by default (then ten quiet minutes), and how
/// often a call comes: about one every five seconds on a four-user number.
const SECONDS: u64 = 1_000;
const SECONDS_PER_CALL: u64 = 5;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn seeded_simulations_keep_every_invariant() {
    // cargo test's bound; SB_SIM_SEEDS and SB_SIM_SECONDS run more (the
    // test command's release step, and a long run before a release).
    let seeds = env_or("SB_SIM_SEEDS", 100);
    let seconds = env_or("SB_SIM_SECONDS", SECONDS).max(SECONDS_PER_CALL);
    let calls = (seconds / SECONDS_PER_CALL) as u32;
    let mut failures = Vec::new();
    let mut total = Summary::default();
    for seed in 0..seeds {
        match run(0x5eed_0000 + seed, calls, seconds) {
            Ok(s) => {
                total.placed += s.placed;
                total.answered += s.answered;
                total.ended_by_engine += s.ended_by_engine;
                total.retransmissions += s.retransmissions;
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {seeds} seeds broke an invariant:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The runs did something: calls placed, answered and ended, over a
    // network lossy enough to need retransmissions.
    assert!(
        total.placed >= calls * seeds as u32,
        "placed {}",
        total.placed
    );
    assert!(
        total.answered > total.placed / 4,
        "answered {} of {}",
        total.answered,
        total.placed
    );
    assert!(total.retransmissions > 0);
    println!(
        "{seeds} seeds x {seconds} s: {} calls placed, {} answered, every invariant held",
        total.placed, total.answered
    );
    assert_eq!(
        total.ended_by_engine, total.placed,
        "every call placed has its record"
    );
}
