//! `routing::decide` for a number with 50 routed users in a directory of
//! 100,000 users and 10,000 numbers: alone, and while another thread swaps
//! directory snapshots as an admin reload would.
//!
//! Besides criterion's estimates, it prints p50/p99/p99.9 of single calls
//! measured one by one (each sample includes the ~20 ns of two clock reads).

// A benchmark measures real time: the clock rule is for the call path.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, Criterion};
use directory::{Directory, HoursSpec, NumberSpec, Strategy, TrunkSpec, UserSpec, WorkspaceSpec};
use engine::Workspace;
use jiff::Timestamp;
use presence::{Binding, BindingTransport, Occupancy, Presence, UserRef};
use routing::{decide, IncomingCall};

const USERS: usize = 100_000;
const NUMBERS: usize = 10_000;
const ROUTED: usize = 50;
const NOW_MS: u64 = 1_700_000_000_000;

/// Number 0 (+15550000000) routes users 0..50; the other numbers route 10
/// users each, spread over the directory.
fn directory() -> Directory {
    directory_with(None)
}

/// Business hours that are always open but must be evaluated on every call:
/// two windows a day and a closed date, in a zone with DST.
fn always_open_hours() -> HoursSpec {
    let day = vec!["00:00-12:00".to_string(), "12:00-24:00".to_string()];
    HoursSpec {
        days: std::array::from_fn(|_| day.clone()),
        closed: vec!["2001-01-01".into()],
        ..HoursSpec::default()
    }
}

fn directory_with(hours: Option<HoursSpec>) -> Directory {
    let users = (0..USERS)
        .map(|i| UserSpec {
            id: format!("u{i:06}"),
            name: format!("User {i}"),
            password: "pw".into(),
            ..UserSpec::default()
        })
        .collect();
    let numbers = (0..NUMBERS)
        .map(|n| {
            let members: Vec<String> = if n == 0 {
                (0..ROUTED).map(|i| format!("u{i:06}")).collect()
            } else {
                (0..10)
                    .map(|k| format!("u{:06}", (n * 10 + k) % USERS))
                    .collect()
            };
            NumberSpec {
                number: format!("+1555{n:07}"),
                name: format!("Line {n}"),
                timezone: if n == 0 && hours.is_some() {
                    "Europe/Paris".into()
                } else {
                    "UTC".into()
                },
                hours: if n == 0 { hours.clone() } else { None },
                ring: members.clone(),
                members,
                strategy: Strategy::Simultaneous,
                ring_timeout_secs: Some(30),
                ..NumberSpec::default()
            }
        })
        .collect();
    let spec = WorkspaceSpec {
        domain: "bench.test".into(),
        seats: USERS as u32,
        trunks: vec![TrunkSpec {
            name: "carrier".into(),
            sources: vec!["127.0.0.1".into()],
            ..TrunkSpec::default()
        }],
        users,
        numbers,
        ..Default::default()
    };
    Directory::from_workspace(spec, Path::new("bench")).expect("bench directory is valid")
}

fn now() -> Timestamp {
    Timestamp::from_millisecond(NOW_MS as i64).expect("a valid instant")
}

/// All 50 routed users signed in; every fifth one busy.
fn presence(directory: &Directory) -> Arc<Presence> {
    let presence = Arc::new(Presence::new());
    let view = presence.view(directory);
    for i in 0..ROUTED {
        let user = presence.user(&format!("u{i:06}"));
        user.update(NOW_MS, |list| {
            list.push(Binding {
                contact: format!("sip:u{i:06}@127.0.0.1:5080"),
                expires_at_ms: NOW_MS + 3_600_000,
                call_id: "c".into(),
                cseq: 1,
                source: "127.0.0.1:5080".parse().expect("addr"),
                transport: BindingTransport::Udp,
                instance: None,
                reg_id: None,
            })
        });
        if i % 5 == 0 {
            let id = format!("u{i:06}");
            let idx = directory.user_index(&id).expect("a bench user");
            view.take(UserRef { idx, id: &id }, i as u64, u64::MAX);
        }
    }
    presence
}

fn percentiles(name: &str, mut samples: Vec<u64>) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{name}: p50 {} ns, p99 {} ns, p99.9 {} ns over {} calls",
        at(0.50),
        at(0.99),
        at(0.999),
        samples.len()
    );
}

fn sample(workspace: &ArcSwap<Workspace>, n: usize) -> Vec<u64> {
    let call = IncomingCall {
        dialled: "+15550000000",
        caller: None,
    };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let ws = workspace.load();
        black_box(decide(&ws.directory, &ws.presence, black_box(&call), now()));
        out.push(start.elapsed().as_nanos() as u64);
    }
    out
}

fn bench_decide(c: &mut Criterion) {
    let presence = presence(&directory());
    let a = Arc::new(Workspace::new(directory(), &presence));
    let b = Arc::new(Workspace::new(directory(), &presence));
    let workspace = Arc::new(ArcSwap::new(Arc::clone(&a)));
    let call = IncomingCall {
        dialled: "+15550000000",
        caller: None,
    };

    let mut group = c.benchmark_group("decide_50_of_100k");
    group.bench_function("single_thread", |bench| {
        bench.iter(|| {
            let ws = workspace.load();
            decide(&ws.directory, &ws.presence, black_box(&call), now())
        })
    });
    percentiles("decide single thread", sample(&workspace, 1_000_000));

    // A writer swapping snapshots as fast as it can, on the other core.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (workspace, stop) = (Arc::clone(&workspace), Arc::clone(&stop));
        let (a, b) = (Arc::clone(&a), Arc::clone(&b));
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                workspace.store(Arc::clone(if swaps.is_multiple_of(2) { &b } else { &a }));
                swaps += 1;
                std::thread::sleep(Duration::from_micros(50));
            }
            swaps
        })
    };
    group.bench_function("with_writer_swapping_snapshots", |bench| {
        bench.iter(|| {
            let ws = workspace.load();
            decide(&ws.directory, &ws.presence, black_box(&call), now())
        })
    });
    percentiles(
        "decide with a writer swapping",
        sample(&workspace, 1_000_000),
    );
    stop.store(true, Ordering::Relaxed);
    let swaps = writer.join().unwrap_or(0);
    println!("writer swapped the snapshot {swaps} times");
    group.finish();

    // The same number with business hours: one time-zone conversion more.
    let hours = Arc::new(ArcSwap::new(Arc::new(Workspace::new(
        directory_with(Some(always_open_hours())),
        &presence,
    ))));
    let mut group = c.benchmark_group("decide_50_of_100k_with_hours");
    group.bench_function("single_thread", |bench| {
        bench.iter(|| {
            let ws = hours.load();
            decide(&ws.directory, &ws.presence, black_box(&call), now())
        })
    });
    percentiles("decide with business hours", sample(&hours, 1_000_000));
    group.finish();
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
