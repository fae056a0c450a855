//! The media hot loops: G.711 for one 20 ms packet, RTP build and parse,
//! and the DTMF detectors over one packet.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use media::dtmf::{tone, Event, EventDetector, InbandDetector};
use media::g711::Law;
use media::rtp::{classify, RtpSender};

fn g711(c: &mut Criterion) {
    let samples = tone('5', 20, 6000.0);
    for law in [Law::Mu, Law::A] {
        let mut codes = Vec::with_capacity(160);
        c.bench_function(&format!("g711 {} encode 160", law.name()), |b| {
            b.iter(|| {
                codes.clear();
                law.encode_into(black_box(&samples), &mut codes);
            })
        });
        let mut encoded = Vec::new();
        law.encode_into(&samples, &mut encoded);
        let mut out = Vec::with_capacity(160);
        c.bench_function(&format!("g711 {} decode 160", law.name()), |b| {
            b.iter(|| {
                out.clear();
                law.decode_into(black_box(&encoded), &mut out);
            })
        });
    }
}

fn rtp(c: &mut Criterion) {
    let mut sender = RtpSender::new(7, 1, 0);
    let payload = [0xFFu8; 160];
    c.bench_function("rtp build 160", |b| {
        b.iter(|| sender.packet(0, black_box(&payload), 160))
    });
    let packet = sender.packet(0, &payload, 160);
    c.bench_function("rtp classify+parse 160", |b| {
        b.iter(|| classify(black_box(&packet)))
    });
}

fn dtmf(c: &mut Criterion) {
    let audio = tone('9', 20, 6000.0);
    let mut inband = InbandDetector::default();
    c.bench_function("dtmf inband 160 samples", |b| {
        b.iter(|| inband.feed(black_box(&audio)))
    });
    let event = Event {
        event: 1,
        end: false,
        volume: 10,
        duration: 160,
    }
    .to_bytes();
    let mut detector = EventDetector::default();
    let mut ts = 0u32;
    c.bench_function("dtmf rfc4733 packet", |b| {
        b.iter(|| {
            ts = ts.wrapping_add(1);
            detector.on_packet(black_box(ts / 3), black_box(&event))
        })
    });
}

criterion_group!(benches, g711, rtp, dtmf);
criterion_main!(benches);
