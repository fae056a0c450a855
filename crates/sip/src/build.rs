//! Building responses from requests (RFC 3261 §8.2.6).

use crate::message::{HeaderName, Message};

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
}
