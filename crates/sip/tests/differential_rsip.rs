//! Differential test against rsip 0.4 on realistic traffic where rsip is
//! known to read messages right.
//!
//! The corpus keeps to what rsip handles (see shared/DEPENDENCIES.md): long
//! header names, one Via and one Contact value per line, no IPv6 or `tel:`,
//! no folding, exact Content-Length, no URI headers. On that ground both
//! parsers must agree on everything a proxy or UA reads first. One more test
//! documents a case where rsip is wrong and we are right.

#![allow(clippy::unwrap_used)]

use rsip::prelude::*;
use sip::header::{NameAddr, Via};
use sip::{HeaderName, Message};

/// An INVITE with SDP, as a softphone sends it, and the dialog around it.
const INVITE_HEAD: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: \"Bob\" <sip:bob@biloxi.example.com>\r\n\
From: \"Alice, Atlanta\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com:5060>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n\
Supported: replaces, timer\r\n\
User-Agent: Softphone/4.2\r\n\
Content-Type: application/sdp\r\n";

const OFFER: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=sendrecv\r\n";

/// The corpus: (label, message). Bodies are exact; Content-Length is checked
/// against them by both parsers.
fn corpus() -> Vec<(&'static str, String)> {
    let invite = format!(
        "{INVITE_HEAD}Content-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    );
    let mut messages: Vec<(&'static str, String)> = vec![("invite with sdp", invite)];
    let plain = [
        (
            "100 trying",
            "SIP/2.0 100 Trying\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;received=192.0.2.101\r\n\
             To: \"Bob\" <sip:bob@biloxi.example.com>\r\n\
             From: \"Alice, Atlanta\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
             CSeq: 314159 INVITE\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "180 ringing with record-route",
            "SIP/2.0 180 Ringing\r\n\
             Via: SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;received=192.0.2.101\r\n\
             Record-Route: <sip:proxy.biloxi.example.com;lr>\r\n\
             Record-Route: <sip:proxy.atlanta.example.com;lr>\r\n\
             To: \"Bob\" <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
             From: \"Alice, Atlanta\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
             Contact: <sip:bob@192.0.2.4:5062>\r\n\
             CSeq: 314159 INVITE\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "486 busy here",
            "SIP/2.0 486 Busy Here\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds\r\n\
             To: <sip:bob@biloxi.example.com>;tag=314159\r\n\
             From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
             CSeq: 314159 INVITE\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "ack",
            "ACK sip:bob@192.0.2.4:5062 SIP/2.0\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds9\r\n\
             Route: <sip:proxy.atlanta.example.com;lr>\r\n\
             Route: <sip:proxy.biloxi.example.com;lr>\r\n\
             Max-Forwards: 70\r\n\
             To: \"Bob\" <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
             From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
             CSeq: 314159 ACK\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "bye",
            "BYE sip:alice@pc33.atlanta.example.com:5060 SIP/2.0\r\n\
             Via: SIP/2.0/TCP 192.0.2.4:5062;branch=z9hG4bKnashds10\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
             To: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
             CSeq: 231 BYE\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "200 to bye",
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/TCP 192.0.2.4:5062;branch=z9hG4bKnashds10\r\n\
             From: <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
             To: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
             CSeq: 231 BYE\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "cancel",
            "CANCEL sip:bob@biloxi.example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds\r\n\
             Max-Forwards: 70\r\n\
             To: \"Bob\" <sip:bob@biloxi.example.com>\r\n\
             From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
             CSeq: 314159 CANCEL\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "487 request terminated",
            "SIP/2.0 487 Request Terminated\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds\r\n\
             To: \"Bob\" <sip:bob@biloxi.example.com>;tag=8321234356\r\n\
             From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
             CSeq: 314159 INVITE\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "register with two contacts",
            "REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7\r\n\
             Max-Forwards: 70\r\n\
             To: \"Bob\" <sip:bob@biloxi.example.com>\r\n\
             From: \"Bob\" <sip:bob@biloxi.example.com>;tag=456248\r\n\
             Call-ID: 843817637684230@998sdasdh09\r\n\
             CSeq: 1826 REGISTER\r\n\
             Contact: <sip:bob@192.0.2.4:5060>;expires=3600\r\n\
             Contact: <sip:bob@198.51.100.7:5070>;q=0.5;expires=600\r\n\
             Expires: 7200\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "401 with challenge",
            "SIP/2.0 401 Unauthorized\r\n\
             Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7;received=192.0.2.4\r\n\
             To: \"Bob\" <sip:bob@biloxi.example.com>;tag=2493k59kd\r\n\
             From: \"Bob\" <sip:bob@biloxi.example.com>;tag=456248\r\n\
             Call-ID: 843817637684230@998sdasdh09\r\n\
             CSeq: 1826 REGISTER\r\n\
             WWW-Authenticate: Digest realm=\"biloxi.example.com\", qop=\"auth\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"\", algorithm=MD5\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "register with credentials",
            "REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds8\r\n\
             Max-Forwards: 70\r\n\
             To: \"Bob\" <sip:bob@biloxi.example.com>\r\n\
             From: \"Bob\" <sip:bob@biloxi.example.com>;tag=456248\r\n\
             Call-ID: 843817637684230@998sdasdh09\r\n\
             CSeq: 1827 REGISTER\r\n\
             Contact: <sip:bob@192.0.2.4>\r\n\
             Authorization: Digest username=\"bob\", realm=\"biloxi.example.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:registrar.biloxi.example.com\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", opaque=\"\"\r\n\
             Expires: 3600\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "200 to register",
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds8;received=192.0.2.4\r\n\
             To: \"Bob\" <sip:bob@biloxi.example.com>;tag=2493k59kd\r\n\
             From: \"Bob\" <sip:bob@biloxi.example.com>;tag=456248\r\n\
             Call-ID: 843817637684230@998sdasdh09\r\n\
             CSeq: 1827 REGISTER\r\n\
             Contact: <sip:bob@192.0.2.4>;expires=3600\r\n\
             Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "options",
            "OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877\r\n\
             Max-Forwards: 70\r\n\
             To: <sip:carol@chicago.example.com>\r\n\
             From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710\r\n\
             CSeq: 63104 OPTIONS\r\n\
             Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
             Accept: application/sdp\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "200 to options",
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877;received=192.0.2.4\r\n\
             To: <sip:carol@chicago.example.com>;tag=93810874\r\n\
             From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710\r\n\
             CSeq: 63104 OPTIONS\r\n\
             Contact: <sip:carol@chicago.example.com>\r\n\
             Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n\
             Accept: application/sdp\r\n\
             Supported: replaces\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "invite through two proxies",
            "INVITE sip:bob@192.0.2.4 SIP/2.0\r\n\
             Via: SIP/2.0/UDP proxy.biloxi.example.com:5060;branch=z9hG4bK721e418c4.1\r\n\
             Via: SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;received=192.0.2.111\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101\r\n\
             Max-Forwards: 68\r\n\
             Record-Route: <sip:proxy.biloxi.example.com;lr>\r\n\
             Record-Route: <sip:proxy.atlanta.example.com;lr>\r\n\
             To: <sip:bob@biloxi.example.com>\r\n\
             From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
             Call-ID: 3848276298220188511@atlanta.example.com\r\n\
             CSeq: 2 INVITE\r\n\
             Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "407 proxy authentication",
            "SIP/2.0 407 Proxy Authentication Required\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101\r\n\
             From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
             To: <sip:bob@biloxi.example.com>;tag=3flal12sf\r\n\
             Call-ID: 3848276298220188511@atlanta.example.com\r\n\
             CSeq: 1 INVITE\r\n\
             Proxy-Authenticate: Digest realm=\"atlanta.example.com\", qop=\"auth\", nonce=\"f84f1cec41e6cbe5aea9c8e88d359\", opaque=\"\", stale=FALSE, algorithm=MD5\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "bye with route set",
            "BYE sip:bob@192.0.2.4 SIP/2.0\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds7\r\n\
             Max-Forwards: 70\r\n\
             Route: <sip:proxy.atlanta.example.com;lr>\r\n\
             Route: <sip:proxy.biloxi.example.com;lr>\r\n\
             From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
             To: <sip:bob@biloxi.example.com>;tag=314159\r\n\
             Call-ID: 3848276298220188511@atlanta.example.com\r\n\
             CSeq: 3 BYE\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "404 not found",
            "SIP/2.0 404 Not Found\r\n\
             Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---b0b1cc8b6e3c4c1f\r\n\
             From: <sip:+15550100@192.0.2.10>;tag=as58f4201b\r\n\
             To: <sip:+15550199@192.0.2.20>;tag=sb-404-1\r\n\
             Call-ID: 5e2c3d0a1b9f47e2@192.0.2.10\r\n\
             CSeq: 102 INVITE\r\n\
             Server: Switchboard\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "503 with retry-after",
            "SIP/2.0 503 Service Unavailable\r\n\
             Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---b0b1cc8b6e3c4c20\r\n\
             From: <sip:+15550100@192.0.2.10>;tag=as58f4201c\r\n\
             To: <sip:+15550199@192.0.2.20>;tag=sb-503-1\r\n\
             Call-ID: 7a1e@192.0.2.10\r\n\
             CSeq: 7 INVITE\r\n\
             Retry-After: 120\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "603 decline",
            "SIP/2.0 603 Decline\r\n\
             Via: SIP/2.0/TCP 198.51.100.20:5060;branch=z9hG4bKd7e1\r\n\
             From: \"Trunk\" <sip:trunk@198.51.100.20>;tag=t-77\r\n\
             To: <sip:+442079460000@203.0.113.5>;tag=x-603\r\n\
             Call-ID: trunk-4711@198.51.100.20\r\n\
             CSeq: 4711 INVITE\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "subscribe",
            "SUBSCRIBE sip:bob@biloxi.example.com SIP/2.0\r\n\
             Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bKnashds9\r\n\
             Max-Forwards: 70\r\n\
             To: <sip:bob@biloxi.example.com>\r\n\
             From: <sip:alice@atlanta.example.com>;tag=xfg9\r\n\
             Call-ID: 2010@pc33.atlanta.example.com\r\n\
             CSeq: 17766 SUBSCRIBE\r\n\
             Event: presence\r\n\
             Accept: application/pidf+xml\r\n\
             Contact: <sip:alice@pc33.atlanta.example.com;ob>\r\n\
             Expires: 600\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "update",
            "UPDATE sip:alice@pc33.atlanta.example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bKupd1\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
             To: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
             CSeq: 232 UPDATE\r\n\
             Contact: <sip:bob@192.0.2.4:5062>\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "refer",
            "REFER sip:bob@192.0.2.4:5062 SIP/2.0\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKref1\r\n\
             Max-Forwards: 70\r\n\
             To: \"Bob\" <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
             From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
             CSeq: 314160 REFER\r\n\
             Refer-To: <sip:carol@chicago.example.com>\r\n\
             Contact: <sip:alice@pc33.atlanta.example.com:5060>\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "202 accepted",
            "SIP/2.0 202 Accepted\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKref1\r\n\
             To: \"Bob\" <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
             From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
             CSeq: 314160 REFER\r\n\
             Contact: <sip:bob@192.0.2.4:5062>\r\n\
             Content-Length: 0\r\n\r\n",
        ),
        (
            "invite from a trunk with e164 user",
            "INVITE sip:+15550100@192.0.2.20:5080 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-trunk-88;rport\r\n\
             Max-Forwards: 69\r\n\
             From: \"+15557654321\" <sip:+15557654321@198.51.100.20>;tag=gw-8841\r\n\
             To: <sip:+15550100@192.0.2.20>\r\n\
             Call-ID: 0f1e2d3c4b5a@198.51.100.20\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:+15557654321@198.51.100.20:5060>\r\n\
             Content-Length: 0\r\n\r\n",
        ),
    ];
    messages.extend(
        plain
            .iter()
            .map(|(label, text)| (*label, (*text).to_owned())),
    );

    // Messages with bodies: Content-Length computed, so it is exact.
    let with_body = |start: &str, headers: &str, content_type: &str, body: &str| {
        format!(
            "{start}\r\n{headers}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let sdp_answer = "v=0\r\no=bob 2808844564 2808844564 IN IP4 192.0.2.4\r\ns=-\r\n\
        c=IN IP4 192.0.2.4\r\nt=0 0\r\nm=audio 3456 RTP/AVP 0 101\r\n\
        a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";
    let dialog = "To: \"Bob\" <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
        From: \"Alice, Atlanta\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n";
    messages.push((
        "200 with sdp",
        with_body(
            "SIP/2.0 200 OK",
            &format!(
                "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;received=192.0.2.101\r\n\
                 Record-Route: <sip:proxy.atlanta.example.com;lr>\r\n{dialog}\
                 CSeq: 314159 INVITE\r\nContact: <sip:bob@192.0.2.4:5062>\r\n"
            ),
            "application/sdp",
            sdp_answer,
        ),
    ));
    messages.push((
        "183 with early media",
        with_body(
            "SIP/2.0 183 Session Progress",
            &format!(
                "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds\r\n{dialog}\
                 CSeq: 314159 INVITE\r\nContact: <sip:bob@192.0.2.4:5062>\r\n"
            ),
            "application/sdp",
            sdp_answer,
        ),
    ));
    messages.push((
        "message with text",
        with_body(
            "MESSAGE sip:user2@domain.example.com SIP/2.0",
            "Via: SIP/2.0/TCP user1pc.domain.example.com;branch=z9hG4bK776sgdkse\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:user1@domain.example.com>;tag=49583\r\n\
             To: <sip:user2@domain.example.com>\r\n\
             Call-ID: asd88asd77a@192.0.2.1\r\n\
             CSeq: 1 MESSAGE\r\n",
            "text/plain",
            "Watson, come here.",
        ),
    ));
    messages.push((
        "info with dtmf",
        with_body(
            "INFO sip:bob@192.0.2.4:5062 SIP/2.0",
            &format!(
                "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKinfo5\r\n\
                 Max-Forwards: 70\r\n{dialog}CSeq: 314161 INFO\r\n"
            ),
            "application/dtmf-relay",
            "Signal=5\r\nDuration=160\r\n",
        ),
    ));
    messages.push((
        "notify with pidf",
        with_body(
            "NOTIFY sip:alice@pc33.atlanta.example.com SIP/2.0",
            "Via: SIP/2.0/TCP server.biloxi.example.com;branch=z9hG4bK4cd42a\r\n\
             Max-Forwards: 70\r\n\
             To: <sip:alice@atlanta.example.com>;tag=xfg9\r\n\
             From: <sip:bob@biloxi.example.com>;tag=ffd2\r\n\
             Call-ID: 2010@pc33.atlanta.example.com\r\n\
             CSeq: 8775 NOTIFY\r\n\
             Event: presence\r\n\
             Subscription-State: active;expires=599\r\n\
             Contact: <sip:server.biloxi.example.com>\r\n",
            "application/pidf+xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
             <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:bob@biloxi.example.com\">\r\n\
             <tuple id=\"sg89ae\"><status><basic>open</basic></status></tuple>\r\n\
             </presence>\r\n",
        ),
    ));
    messages.push((
        "prack",
        "PRACK sip:bob@192.0.2.4:5062 SIP/2.0\r\n\
         Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKprack1\r\n\
         Max-Forwards: 70\r\n\
         To: \"Bob\" <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
         From: \"Alice, Atlanta\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
         Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
         CSeq: 314160 PRACK\r\n\
         RAck: 1 314159 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
            .into(),
    ));
    messages
}

/// What both parsers are asked, as plain values.
#[derive(Debug, PartialEq, Eq)]
struct Reading {
    method: Option<String>,
    status: Option<u16>,
    request_uri: Option<String>,
    call_id: String,
    cseq: (u32, String),
    from_tag: Option<String>,
    to_tag: Option<String>,
    top_via_branch: Option<String>,
    top_via_host: String,
    top_via_port: Option<u16>,
    via_count: usize,
    contacts: Vec<String>,
    content_length: Option<u32>,
    body: Vec<u8>,
}

fn ours(raw: &str) -> Reading {
    let m = Message::parse(raw.as_bytes()).unwrap();
    let via = m.top_via().unwrap();
    let cseq = m.cseq().unwrap();
    Reading {
        method: m.method().map(|x| x.as_str().to_owned()),
        status: m.status(),
        request_uri: m.request_uri().map(str::to_owned),
        call_id: m.call_id().unwrap().to_owned(),
        cseq: (cseq.seq, cseq.method.to_owned()),
        from_tag: m.from_tag().map(str::to_owned),
        to_tag: m.to_tag().map(str::to_owned),
        top_via_branch: via.branch().map(str::to_owned),
        top_via_host: via.host.to_owned(),
        top_via_port: via.port,
        via_count: m.values(HeaderName::Via).count(),
        contacts: m
            .values(HeaderName::Contact)
            .map(|c| NameAddr::parse(c).unwrap().uri.to_owned())
            .collect(),
        content_length: m
            .header(HeaderName::ContentLength)
            .map(|v| v.trim().parse().unwrap()),
        body: m.body().to_vec(),
    }
}

fn theirs(raw: &str) -> Reading {
    let msg = rsip::SipMessage::try_from(raw).unwrap();
    let (method, status, request_uri) = match &msg {
        rsip::SipMessage::Request(r) => (Some(r.method.to_string()), None, Some(r.uri.to_string())),
        rsip::SipMessage::Response(r) => (None, Some(r.status_code.code()), None),
    };
    let via = msg.via_header().unwrap().typed().unwrap();
    let cseq = msg.cseq_header().unwrap().typed().unwrap();
    let headers = msg.headers();
    let contacts = msg
        .contact_headers()
        .iter()
        .map(|c| c.typed().unwrap().uri.to_string())
        .collect();
    let reading = Reading {
        method,
        status,
        request_uri,
        call_id: msg.call_id_header().unwrap().value().to_owned(),
        cseq: (cseq.seq, cseq.method.to_string()),
        from_tag: msg
            .from_header()
            .unwrap()
            .tag()
            .unwrap()
            .map(|t| t.to_string()),
        to_tag: msg
            .to_header()
            .unwrap()
            .tag()
            .unwrap()
            .map(|t| t.to_string()),
        top_via_branch: via.branch().map(|b| b.to_string()),
        top_via_host: via.uri.host_with_port.host.to_string(),
        top_via_port: via.uri.host_with_port.port.map(|p| *p.value()),
        via_count: headers
            .iter()
            .filter(|h| matches!(h, rsip::Header::Via(_)))
            .count(),
        contacts,
        content_length: headers.iter().find_map(|h| match h {
            rsip::Header::ContentLength(cl) => Some(cl.length().unwrap()),
            _ => None,
        }),
        body: msg.body().clone(),
    };
    reading
}

#[test]
fn the_corpus_is_realistic_and_large_enough() {
    let corpus = corpus();
    assert!(corpus.len() >= 30, "{} messages", corpus.len());
    for (label, raw) in &corpus {
        let m = Message::parse(raw.as_bytes()).unwrap();
        let verdict = if m.is_request() {
            sip::validate::check_request(&m).map_err(|r| r.to_string())
        } else {
            sip::validate::check_response(&m).map_err(|e| e.to_string())
        };
        assert_eq!(verdict, Ok(()), "{label}");
    }
}

#[test]
fn both_parsers_read_the_corpus_the_same() {
    let mut differences = Vec::new();
    for (label, raw) in corpus() {
        let (a, b) = (ours(&raw), theirs(&raw));
        if a != b {
            differences.push(format!("{label}:\n  ours:   {a:?}\n  rsip:   {b:?}"));
        }
    }
    assert!(differences.is_empty(), "\n{}", differences.join("\n"));
}

#[test]
fn rsip_loses_the_second_via_on_a_line_and_we_do_not() {
    // Two Via values on one line are one header with a comma list (RFC 3261
    // §7.3.1); a proxy that loses the second one cannot route the response.
    let raw = "SIP/2.0 200 OK\r\n\
        Via: SIP/2.0/UDP proxy.atlanta.example.com;branch=z9hG4bK2d4790.1, SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK74bf9\r\n\
        To: <sip:bob@biloxi.example.com>;tag=314159\r\n\
        From: <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
        Call-ID: 3848276298220188511@atlanta.example.com\r\n\
        CSeq: 2 INVITE\r\n\
        Content-Length: 0\r\n\r\n";

    let m = Message::parse(raw.as_bytes()).unwrap();
    let vias: Vec<Via> = m
        .values(HeaderName::Via)
        .map(|v| Via::parse(v).unwrap())
        .collect();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[1].host, "pc33.atlanta.example.com");
    assert_eq!(vias[1].branch(), Some("z9hG4bK74bf9"));
    // A proxy pops its own Via and the next one is still there.
    let mut forwarded = m.clone();
    forwarded.remove_first_value(HeaderName::Via);
    assert_eq!(forwarded.top_via().unwrap().branch(), Some("z9hG4bK74bf9"));

    let theirs = rsip::SipMessage::try_from(raw).unwrap();
    let typed: Vec<_> = theirs
        .headers()
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Via(via) => Some(via.typed().unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(typed.len(), 1, "rsip sees one Via header...");
    assert_eq!(
        typed[0].branch().map(|b| b.to_string()).as_deref(),
        Some("z9hG4bK2d4790.1"),
        "...and its typed form holds only the first value: the second is lost"
    );
    assert!(!typed[0].to_string().contains("z9hG4bK74bf9"));
}

#[test]
fn rsip_rewrites_a_transport_parameter_and_we_keep_it() {
    // A URI is compared and digested as written (RFC 3261 §19.1.4 compares
    // parameters case-insensitively, but the digest `uri` is byte-exact):
    // printing must not change it.
    let raw = "OPTIONS sip:carol@chicago.example.com;transport=tcp SIP/2.0\r\n\
        Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass878\r\n\
        To: <sip:carol@chicago.example.com>\r\n\
        From: <sip:alice@atlanta.example.com>;tag=1928301775\r\n\
        Call-ID: a84b4c76e66711\r\n\
        CSeq: 63105 OPTIONS\r\n\
        Content-Length: 0\r\n\r\n";
    let m = Message::parse(raw.as_bytes()).unwrap();
    assert_eq!(
        m.request_uri(),
        Some("sip:carol@chicago.example.com;transport=tcp")
    );
    assert!(String::from_utf8(m.encode())
        .unwrap()
        .starts_with("OPTIONS sip:carol@chicago.example.com;transport=tcp SIP/2.0\r\n"));
    let theirs = rsip::SipMessage::try_from(raw).unwrap();
    let rsip::SipMessage::Request(request) = theirs else {
        panic!("a request");
    };
    assert_eq!(
        request.uri.to_string(),
        "sip:carol@chicago.example.com;transport=TCP"
    );
}
