//! The engine's input path: a stream of datagrams from several sources
//! (the trunk, signed-in phones over UDP, TCP and TLS, strangers over IPv4
//! and IPv6, the carrier) into one engine, with a manual clock moved
//! between them, and connections closing. The harness and the record
//! format are `engine::replay` (crates/engine/src/replay.rs), which the
//! test suite also runs over `fuzz/seeds/engine_input/` and
//! `fuzz/regressions/engine_input/`: a finding copied there is replayed by
//! every test run.
//!
//! A panic is a finding; so is a message the engine sends that does not
//! parse, and a transaction still alive ten minutes after the last record.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    engine::replay::run(data, std::time::Instant::now());
});
