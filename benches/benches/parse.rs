//! Parse and print cost of a typical INVITE with SDP (about 700 bytes), with
//! Switchboard's message layer and with rsip 0.4 on the same bytes.
//!
//! Run with `cargo bench -p switchboard-benches --bench parse`. The message
//! keeps to what rsip reads right (long header names, one Via per line), so
//! both parsers do the same work.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// An INVITE as a softphone sends it through one proxy.
const HEAD: &str = "INVITE sip:+15550100@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1\r\n\
Via: SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bK776asdhds;received=192.0.2.101;rport=5060\r\n\
Max-Forwards: 69\r\n\
To: <sip:+15550100@biloxi.example.com>\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.101:5060>\r\n\
Content-Type: application/sdp\r\n";

const SDP: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=sendrecv\r\n";

fn invite() -> String {
    format!("{HEAD}Content-Length: {}\r\n\r\n{SDP}", SDP.len())
}

fn bench_parse_print(c: &mut Criterion) {
    let text = invite();
    let bytes = text.as_bytes();
    // Both parsers must read the message before their speed means anything.
    let ours = sip::Message::parse(bytes).expect("our parser reads the INVITE");
    let theirs = rsip::SipMessage::try_from(text.as_str()).expect("rsip reads the INVITE");
    assert_eq!(ours.body().len(), theirs.body().len());

    let mut group = c.benchmark_group(format!("invite_{}_bytes", bytes.len()));
    group.throughput(Throughput::Bytes(bytes.len() as u64));

    group.bench_function("switchboard/parse", |b| {
        b.iter(|| sip::Message::parse(black_box(bytes)))
    });
    group.bench_function("rsip/parse", |b| {
        b.iter(|| rsip::SipMessage::try_from(black_box(text.as_str())))
    });

    group.bench_function("switchboard/print", |b| {
        b.iter(|| black_box(&ours).encode())
    });
    group.bench_function("rsip/print", |b| b.iter(|| black_box(&theirs).to_string()));

    group.bench_function("switchboard/parse+print", |b| {
        b.iter(|| {
            sip::Message::parse(black_box(bytes))
                .map(|m| m.encode())
                .unwrap_or_default()
        })
    });
    group.bench_function("rsip/parse+print", |b| {
        b.iter(|| {
            rsip::SipMessage::try_from(black_box(text.as_str()))
                .map(|m| m.to_string())
                .unwrap_or_default()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_parse_print);
criterion_main!(benches);
