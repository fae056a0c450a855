//! Building messages: responses from requests (RFC 3261 §8.2.6), our Via
//! and Contact values, the end-to-end headers a B2BUA passes on, and the
//! error response to a request that did not parse.

use std::fmt::Write;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::ids::IdGenerator;
use crate::message::{HeaderName, Message};
use crate::transaction::Transport;

/// Standard reason phrases for the status codes Switchboard sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "Unknown",
    }
}

/// A response to `request`: Via (every line), From, To, Call-ID and CSeq
/// copied as written; `to_tag` is added to To when it has none. For 1xx
/// (but 100) and 2xx to dialog-creating requests, pass `record_route` so the
/// caller learns its route set (§12.1.1).
pub fn response_to(
    request: &Message,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
    record_route: bool,
) -> Message {
    let mut response = Message::response(status, reason);
    for via in request.header_lines(HeaderName::Via) {
        response.push(HeaderName::Via, via);
    }
    if let Some(from) = request.header(HeaderName::From) {
        response.push(HeaderName::From, from);
    }
    if let Some(to) = request.header(HeaderName::To) {
        match to_tag {
            Some(tag) if status != 100 && request.to_tag().is_none() => {
                let mut value = String::with_capacity(to.len() + tag.len() + 5);
                value.push_str(to);
                value.push_str(";tag=");
                value.push_str(tag);
                response.push(HeaderName::To, &value);
            }
            _ => response.push(HeaderName::To, to),
        }
    }
    if let Some(call_id) = request.call_id() {
        response.push(HeaderName::CallId, call_id);
    }
    if let Some(cseq) = request.header(HeaderName::CSeq) {
        response.push(HeaderName::CSeq, cseq);
    }
    if record_route {
        for rr in request.header_lines(HeaderName::RecordRoute) {
            response.push(HeaderName::RecordRoute, rr);
        }
    }
    response
}

/// A Via for a request we originate from `local`: a fresh branch, and
/// `rport` so the answer retraces NAT (RFC 3581).
pub fn via_value(ids: &mut IdGenerator, local: SocketAddr, transport: Transport) -> String {
    let mut value = String::with_capacity(80);
    let _ = write!(
        value,
        "SIP/2.0/{} {};branch={};rport",
        transport.via_token(),
        local,
        ids.branch()
    );
    value
}

/// Our Contact at `local` on `transport`.
pub fn contact_value(local: SocketAddr, transport: Transport) -> String {
    match transport {
        Transport::Udp => format!("<sip:switchboard@{local}>"),
        Transport::Tcp(_) | Transport::TcpConnect => {
            format!("<sip:switchboard@{local};transport=tcp>")
        }
        // RFC 5630: sips: asks for TLS on every hop, which we cannot promise
        // beyond our own; `transport=tls` says how to reach us.
        Transport::Tls(_) => format!("<sip:switchboard@{local};transport=tls>"),
    }
}

/// `s` as a quoted-string (RFC 3261 §25.1): quotes and backslashes escaped,
/// control characters dropped.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        if !c.is_control() {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// The headers a B2BUA passes from one side of a call to the other, in
/// mid-call requests and their responses: what describes the body and the
/// capabilities the two ends negotiate. Everything else (identity such as
/// `P-Asserted-Identity`, `User-Agent`, `Server`, `X-*`, and what belongs to
/// one hop, one dialog or one authentication) stays on its side.
const END_TO_END: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "allow",
    "allow-events",
    "u",
    "event",
    "info-package",
    "recv-info",
    "refer-to",
    "r",
    "referred-by",
    "b",
    "require",
    "retry-after",
    "subscription-state",
    "supported",
    "unsupported",
    "warning",
];

/// Copies the end-to-end headers of a relayed message (see [`END_TO_END`],
/// and every `Content-*` but `Content-Length`, which the body sets).
pub fn copy_end_to_end(from: &Message, to: &mut Message) {
    for (_, raw, value) in from.headers() {
        let name = raw.trim().to_ascii_lowercase();
        let content = name.starts_with("content-") && name != "content-length";
        // Compact forms: c (Content-Type), e (Content-Encoding), k (Supported), o (Event).
        let compact = matches!(name.as_str(), "c" | "e" | "k" | "o");
        if content || compact || END_TO_END.contains(&name.as_str()) {
            to.push_other(raw, value);
        }
    }
}

/// An error response for a request that did not parse, from its raw Via,
/// From, To, Call-ID and CSeq lines, so that the sender learns why instead
/// of retransmitting. `None` when the bytes are not a request or miss what
/// a response needs.
pub fn salvage_error_response(raw: &[u8], status: u16, reason: &str) -> Option<Bytes> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let first = lines.find(|l| !l.is_empty())?;
    if first.len() < 3
        || first
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        return None;
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"SIP/2.0 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    let clean: String = reason.chars().filter(|c| !c.is_control()).collect();
    out.extend_from_slice(clean.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut have = [false; 5];
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, _)) = line.split_once(':') else {
            continue;
        };
        let slot = match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => 0,
            "from" | "f" => 1,
            "to" | "t" => 2,
            "call-id" | "i" => 3,
            "cseq" => 4,
            _ => continue,
        };
        have[slot] = true;
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !have.iter().all(|&h| h) {
        return None;
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    // The copied lines are the request's own: when one of them is what
    // made it unparsable (a bare CR inside it, say), the answer would not
    // parse either, and no response is possible (found by the engine's
    // input test).
    if Message::parse(&out).is_err() {
        return None;
    }
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn no_salvaged_answer_that_would_not_parse_itself() {
        let raw = b"REGISTER sip:sim.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKf4;rport\r\n\
            From: <sip:bob@sim.test>;tag=r1\r\nTo: <sip:bob@sim.test>\r\nCall-ID: reg-1\r\n\
            CSeq: 1 REGISTER\r;;;\nContent-Length: 0\r\n\r\n";
        assert!(Message::parse(raw).is_err());
        assert_eq!(salvage_error_response(raw, 400, "Bad Request"), None);
    }

    #[test]
    fn response_copies_dialog_headers_and_adds_tag() {
        let req = Message::parse(
            b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP g;branch=z9hG4bK0\r\n\
              From: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nRecord-Route: <sip:p;lr>\r\n\r\n",
        )
        .unwrap();
        let resp = response_to(&req, 180, "Ringing", Some("t1"), true);
        assert_eq!(resp.to_tag(), Some("t1"));
        assert_eq!(resp.header_lines(HeaderName::Via).count(), 2);
        assert_eq!(resp.header(HeaderName::RecordRoute), Some("<sip:p;lr>"));
        let trying = response_to(&req, 100, "Trying", Some("t1"), false);
        assert_eq!(trying.to_tag(), None);
    }

    #[test]
    fn a_request_that_did_not_parse_gets_its_error_from_the_raw_lines() {
        let raw = b"INVITE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                    f: <sip:c@d>;tag=1\r\nt: <sip:a@b>\r\ni: x\r\nCSeq: 1 INVITE\r\n\
                    Content-Length: nope\r\n\r\n";
        let reply = salvage_error_response(raw, 400, "Bad Content-Length\r\n").unwrap();
        let reply = Message::parse(&reply).unwrap();
        assert_eq!(reply.status(), Some(400));
        assert_eq!(reply.call_id(), Some("x"));
        assert_eq!(reply.reason(), Some("Bad Content-Length"));
        // A response, or a request without Call-ID, gets nothing.
        assert!(salvage_error_response(b"SIP/2.0 200 OK\r\n\r\n", 400, "x").is_none());
        assert!(salvage_error_response(
            b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n",
            400,
            "x"
        )
        .is_none());
    }

    #[test]
    fn only_end_to_end_headers_cross_a_b2bua() {
        let info = Message::parse(
            b"INFO sip:sb@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
              From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 2 INFO\r\n\
              User-Agent: PhoneOS 1.0\r\nX-Carrier-Billing: 42\r\nP-Asserted-Identity: <sip:+1555@carrier>\r\n\
              Content-Type: application/dtmf-relay\r\nContent-Disposition: signal\r\nSupported: timer\r\n\
              Content-Length: 0\r\n\r\n",
        )
        .unwrap();
        let mut out = Message::request(crate::Method::Info, "sip:x@y");
        copy_end_to_end(&info, &mut out);
        let names: Vec<String> = out.headers().map(|(_, raw, _)| raw.to_string()).collect();
        assert_eq!(names, ["Content-Type", "Content-Disposition", "Supported"]);
    }

    #[test]
    fn quoted_escapes_and_drops_controls() {
        assert_eq!(quoted("A \"B\" \\ C\r\n"), "\"A \\\"B\\\" \\\\ C\"");
    }
}
