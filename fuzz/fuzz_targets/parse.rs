//! Feeds untrusted bytes through everything Switchboard runs on input from
//! the network: stream framing, the message parser, the UAS checks, every
//! typed header view on every header value and list element, and a print
//! and re-parse of any message that parsed.
//!
//! A panic anywhere is a finding; so is a printed message that does not
//! parse again, or printing that is not a fixed point.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::framing;
use sip::header::{self, NameAddr, Uri, Via};
use sip::validate;
use sip::{HeaderName, Message, MAX_MESSAGE_SIZE};

fuzz_target!(|data: &[u8]| {
    // A stream buffer: frame messages off the front as the TCP codec does.
    let mut rest = data;
    while let Ok(framing::Frame::KeepAlive(n) | framing::Frame::Message(n)) =
        framing::next_frame(rest)
    {
        if n == 0 || n > rest.len() {
            panic!("next_frame returned {n} for a {}-byte buffer", rest.len());
        }
        let _ = Message::parse(&rest[..n]);
        rest = &rest[n..];
    }

    // A datagram.
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let _ = validate::check_request(&msg);
    let _ = validate::check_response(&msg);
    let _ = (msg.cseq(), msg.top_via(), msg.from_tag(), msg.to_tag());
    let _ = (msg.max_forwards(), msg.expires(), msg.call_id());
    if let Some(uri) = msg.request_uri() {
        if let Ok(uri) = Uri::parse(uri) {
            let _ = (
                uri.transport(),
                header::host_ip(uri.host),
                uri.params.is_well_formed(),
            );
        }
    }
    for (_, _, value) in msg.headers() {
        typed_views(value);
        for element in header::split_list(value) {
            typed_views(element);
        }
    }

    let printed = msg.encode();
    // Latin-1 text is printed as UTF-8 and Content-Length may be added, so a
    // message near the size limit may print past it; below it, it must parse.
    if printed.len() <= MAX_MESSAGE_SIZE {
        let again = Message::parse(&printed).expect("a printed message parses again");
        assert_eq!(again.encode(), printed, "printing is a fixed point");
        assert_eq!(again.body(), msg.body());
    }

    // The edits a proxy makes.
    let mut edited = msg;
    edited.remove_first_value(HeaderName::Via);
    edited.set(HeaderName::MaxForwards, "69");
    edited.push_front(HeaderName::Via, "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfuzz");
    let _ = edited.encode();
});

fn typed_views(value: &str) {
    if let Some(via) = Via::parse(value) {
        let _ = (
            via.branch(),
            via.received(),
            via.rport(),
            header::host_ip(via.host),
        );
    }
    if let Some(addr) = NameAddr::parse(value) {
        let _ = (
            addr.tag(),
            addr.display_name(),
            addr.params.is_well_formed(),
        );
        if let Ok(uri) = Uri::parse(addr.uri) {
            let _ = (uri.transport(), header::host_ip(uri.host));
        }
    }
    let _ = Uri::parse(value);
    let _ = header::CSeq::parse(value);
    let _ = header::parse_delta_seconds(value);
    let _ = header::parse_host_port(value);
    let _ = header::Params::new(value).is_well_formed();
    let _ = header::Params::new(value).iter().count();
}
