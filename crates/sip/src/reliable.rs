//! Reliable provisional responses (RFC 3262): the `100rel` option tag and
//! the `RSeq` and `RAck` headers, read and written. What to send and when
//! (retransmitting, holding a 2xx) is the engine's; this knows only the
//! wire format. No IO, no clock.

use std::fmt::Write;

use crate::message::{HeaderName, Message, Method};

/// The option tag of reliable provisionals (RFC 3262 §8.1).
pub const OPTION_TAG: &str = "100rel";

/// Whether `message` names `100rel` in `header` (`Supported` or `Require`).
pub fn names_100rel(message: &Message, header: HeaderName) -> bool {
    message
        .values(header)
        .any(|tag| tag.trim().eq_ignore_ascii_case(OPTION_TAG))
}

/// The peer supports or requires reliable provisionals (§3: a UAS may send
/// them only then).
pub fn wants_100rel(request: &Message) -> bool {
    names_100rel(request, HeaderName::Supported) || names_100rel(request, HeaderName::Require)
}

/// A provisional response sent reliably: non-100, `Require: 100rel` and an
/// `RSeq` (§4). Its RSeq, when it is one.
pub fn reliable_rseq(response: &Message) -> Option<u32> {
    let status = response.status()?;
    if !(101..200).contains(&status) || !names_100rel(response, HeaderName::Require) {
        return None;
    }
    parse_rseq(response.header(HeaderName::RSeq)?)
}

/// An RSeq value: 1 to 2^31 - 1 (§7.1).
pub fn parse_rseq(value: &str) -> Option<u32> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_RSEQ).contains(n))
}

/// The largest RSeq a UAS may start from (§3: the first one below 2^31).
pub const MAX_RSEQ: u32 = (1 << 31) - 1;

/// What a PRACK acknowledges (§7.2): the provisional's RSeq, and the CSeq
/// number and method of the request it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RAck {
    pub rseq: u32,
    pub cseq: u32,
    pub method: Method,
}

impl RAck {
    /// `RAck: 776656 1 INVITE`; `None` when malformed.
    pub fn parse(value: &str) -> Option<RAck> {
        let mut parts = value.split_ascii_whitespace();
        let rseq = parse_rseq(parts.next()?)?;
        let cseq = parts.next()?.parse::<u32>().ok()?;
        let method = Method::parse(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(RAck { rseq, cseq, method })
    }

    /// The RAck of a request.
    pub fn of(request: &Message) -> Option<RAck> {
        RAck::parse(request.header(HeaderName::RAck)?)
    }

    /// The RAck acknowledging a reliable provisional `response`.
    pub fn for_response(response: &Message, rseq: u32) -> Option<RAck> {
        let cseq = response.cseq()?;
        Some(RAck {
            rseq,
            cseq: cseq.seq,
            method: Method::parse(cseq.method)?,
        })
    }

    pub fn value(&self) -> String {
        let mut value = String::with_capacity(24);
        let _ = write!(
            value,
            "{} {} {}",
            self.rseq,
            self.cseq,
            self.method.as_str()
        );
        value
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn response(headers: &str) -> Message {
        let raw = format!(
            "SIP/2.0 183 Session Progress\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
             From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 4 INVITE\r\n\
             {headers}Content-Length: 0\r\n\r\n"
        );
        Message::parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn a_reliable_provisional_needs_require_100rel_and_a_valid_rseq() {
        assert_eq!(
            reliable_rseq(&response("Require: 100rel\r\nRSeq: 77\r\n")),
            Some(77)
        );
        assert_eq!(
            reliable_rseq(&response("Require: timer, 100REL\r\nRSeq: 1\r\n")),
            Some(1)
        );
        assert_eq!(reliable_rseq(&response("RSeq: 77\r\n")), None);
        assert_eq!(reliable_rseq(&response("Require: 100rel\r\n")), None);
        assert_eq!(
            reliable_rseq(&response("Require: 100rel\r\nRSeq: 0\r\n")),
            None
        );
        assert_eq!(
            reliable_rseq(&response("Require: 100rel\r\nRSeq: 2147483648\r\n")),
            None
        );
    }

    #[test]
    fn rack_round_trips_and_refuses_malformed_values() {
        let rack = RAck::for_response(&response(""), 77).unwrap();
        assert_eq!(rack.value(), "77 4 INVITE");
        assert_eq!(RAck::parse("77 4 INVITE"), Some(rack));
        assert_eq!(RAck::parse("  77   4 INVITE "), RAck::parse("77 4 INVITE"));
        for bad in [
            "",
            "77",
            "77 4",
            "x 4 INVITE",
            "77 y INVITE",
            "77 4 INVITE extra",
        ] {
            assert_eq!(RAck::parse(bad), None, "{bad:?}");
        }
    }
}
