//! The engine's input path under a seeded stream of datagrams, valid and
//! mangled, from a trunk, phones and strangers, with the clock moved by
//! hand: nothing may panic, every message the engine sends must parse,
//! and once the clock has run on, no transaction is left behind. A
//! failing seed reproduces exactly (`SEED` below, the input's number in
//! the panic message). Stable Rust, in the test suite: not coverage-guided
//! like the parser's cargo-fuzz target, but run on every test.

use super::*;

/// xorshift64*: deterministic from the seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SOURCES: [&str; 5] = [
    "127.0.0.1:5070", // the trunk
    "127.0.0.1:5081", // bob's phone
    "127.0.0.1:5083", // alice's phone
    "127.0.0.2:5090", // a stranger
    "[::1]:5099",
];

/// A message of one of the kinds a SIP server sees, in a small space of
/// Call-IDs, branches and tags so that requests and responses meet.
fn template(rng: &mut Rng) -> String {
    let call = rng.below(6);
    let branch = rng.below(8);
    let cseq = 1 + rng.below(3);
    let tag = rng.below(3);
    let via = format!("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKf{branch};rport\r\n");
    let common = format!(
        "From: \"Caller\" <sip:+15551234567@127.0.0.1>;tag=c{call}\r\nCall-ID: fuzz-{call}\r\nMax-Forwards: 70\r\n"
    );
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
    match rng.below(9) {
        0 => format!(
            "INVITE sip:+15550100@127.0.0.1:5060 SIP/2.0\r\n{via}{common}To: <sip:+15550100@127.0.0.1>\r\nCSeq: {cseq} INVITE\r\nContact: <sip:trunk@127.0.0.1:5070>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ),
        1 => format!(
            "ACK sip:switchboard@127.0.0.1:5060 SIP/2.0\r\n{via}{common}To: <sip:+15550100@127.0.0.1>;tag=t{tag}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n"
        ),
        2 => format!(
            "BYE sip:switchboard@127.0.0.1:5060 SIP/2.0\r\n{via}{common}To: <sip:+15550100@127.0.0.1>;tag=t{tag}\r\nCSeq: {} BYE\r\nContent-Length: 0\r\n\r\n",
            cseq + 1
        ),
        3 => format!(
            "CANCEL sip:+15550100@127.0.0.1:5060 SIP/2.0\r\n{via}{common}To: <sip:+15550100@127.0.0.1>\r\nCSeq: {cseq} CANCEL\r\nContent-Length: 0\r\n\r\n"
        ),
        4 => format!(
            "REGISTER sip:sim.test SIP/2.0\r\n{via}From: <sip:bob@sim.test>;tag=r{tag}\r\nTo: <sip:bob@sim.test>\r\nCall-ID: reg-{call}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:bob@127.0.0.1:5081>\r\nAuthorization: Digest username=\"bob\", realm=\"sim.test\", nonce=\"00\", uri=\"sip:sim.test\", response=\"00\"\r\nContent-Length: 0\r\n\r\n"
        ),
        5 => format!(
            "OPTIONS sip:+15550100@127.0.0.1 SIP/2.0\r\n{via}{common}To: <sip:+15550100@127.0.0.1>\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ),
        // Responses from the phones to legs the engine may have sent.
        6 | 7 => {
            let status = [100, 180, 183, 200, 486, 603, 487, 500][rng.below(8)];
            format!(
                "SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{}\r\nFrom: <sip:switchboard@127.0.0.1>;tag={}\r\nTo: <sip:bob@127.0.0.1>;tag=p{tag}\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@127.0.0.1:5081>\r\nContent-Length: 0\r\n\r\n",
                rng.next() % 1000,
                rng.next() % 1000,
                rng.next() % 1000
            )
        }
        _ => {
            // Bytes no SIP element would send.
            let n = rng.below(300);
            (0..n).map(|_| char::from(32 + (rng.next() % 95) as u8)).collect()
        }
    }
}

/// One of several mangling steps, or none.
fn mangle(rng: &mut Rng, text: String) -> Vec<u8> {
    let mut bytes = text.into_bytes();
    match rng.below(6) {
        0 if !bytes.is_empty() => {
            let at = rng.below(bytes.len());
            bytes.truncate(at);
        }
        1 if !bytes.is_empty() => {
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len());
                bytes[at] = (rng.next() & 0xff) as u8;
            }
        }
        2 => {
            let at = rng.below(bytes.len() + 1);
            let junk: &[u8] = [
                &b"\r\n"[..],
                b"Via: ,,,\r\n",
                b"Content-Length: 99999\r\n",
                b"\0",
                b";;;",
            ][rng.below(5)];
            bytes.splice(at..at, junk.iter().copied());
        }
        _ => {}
    }
    bytes
}

/// Drains the engine; every message it sends must parse. Returns the
/// next deadline.
fn drain(sim: &mut Sim, input: &[u8]) -> Option<Instant> {
    loop {
        match sim.engine.poll_output() {
            Output::Transmit(t) => {
                if let Err(e) = Message::parse(&t.bytes) {
                    panic!(
                        "the engine sent a message that does not parse ({e:?}):\n{:?}\nafter the input:\n{:?}",
                        bytes::Bytes::copy_from_slice(&t.bytes),
                        bytes::Bytes::copy_from_slice(input)
                    );
                }
            }
            Output::Timeout(at) => return at,
            _ => {}
        }
    }
}

/// Moves the clock to `target`, firing every deadline on the way.
fn run_until(sim: &mut Sim, target: Instant) {
    while let Some(at) = drain(sim, b"(a timer)") {
        if at > target {
            break;
        }
        sim.now = at.max(sim.now);
        sim.engine.handle_input(sim.now, Input::Timeout);
    }
    sim.now = target.max(sim.now);
    sim.engine.handle_input(sim.now, Input::Timeout);
    drain(sim, b"(a timer)");
}

#[test]
fn a_seeded_stream_of_datagrams_never_panics_and_leaves_no_transaction() {
    const SEED: u64 = 0x005e_ed0f_5b0a_4d11;
    for seed in SEED..SEED + 12 {
        let mut sim = Sim::new(|_| {});
        sim.sign_in("bob", BOB_1);
        sim.sign_in("alice", ALICE);
        let mut rng = Rng(seed);
        for input in 0..5_000u32 {
            let text = template(&mut rng);
            let bytes = mangle(&mut rng, text);
            let from = SOURCES[rng.below(SOURCES.len())];
            let peer = Peer {
                transport: Transport::Udp,
                addr: from.parse().unwrap(),
            };
            sim.engine.handle_input(
                sim.now,
                Input::Receive {
                    from: peer,
                    bytes: Bytes::from(bytes.clone()),
                },
            );
            // Every message the engine sends must be one a peer can parse.
            drain(&mut sim, &bytes);
            if rng.below(20) == 0 {
                let later = sim.now + Duration::from_millis(rng.below(40_000) as u64);
                run_until(&mut sim, later);
            }
            let _ = input;
        }
        // Long after: every transaction has ended (calls answered by a
        // mangled 200 may stay up, as they would without a BYE).
        let end = sim.now + Duration::from_secs(600);
        run_until(&mut sim, end);
        let stats = sim.engine.stats(sim.now);
        assert_eq!(
            stats.transactions, 0,
            "seed {seed:#x}: transactions left: {stats:?}"
        );
        assert_eq!(
            stats.calls_ringing, 0,
            "seed {seed:#x}: a call still ringing: {stats:?}"
        );
    }
}

/// The fuzz target's seeds and every finding it made, replayed through
/// the same harness (`crate::replay`): a finding copied into
/// `fuzz/regressions/engine_input/` fails here until it is fixed.
#[test]
#[allow(clippy::disallowed_methods)] // an origin for the fake clock
fn the_fuzz_targets_seeds_and_findings_replay_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for folder in ["seeds/engine_input", "regressions/engine_input"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| crate::replay::run(&data, Instant::now()));
            assert!(outcome.is_ok(), "{} fails", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 6, "the seeds are there ({replayed} replayed)");
}
