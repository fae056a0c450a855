//! The semantic checks a UAS makes on a parsed message before acting on it
//! (RFC 3261 §8.2, §8.1.3.3).
//!
//! [`Message::parse`] accepts whatever it can frame and split into a start
//! line and header lines, so that a malformed request can still be answered:
//! the Via, From, To, Call-ID and CSeq needed to build the `400` are there.
//! This module then decides whether the request is well formed enough to
//! act on, and if not, which final response it gets:
//!
//! | defect | status |
//! |---|---|
//! | a required header missing, repeated or malformed; a bad Request-URI; CSeq method differing from the request method; Max-Forwards over 255; Expires not delta-seconds; a non-GMT Date | `400` |
//! | a Request-URI scheme other than `sip`, `sips`, `tel` | `416` |
//! | a `Require` option tag this element does not support | `420`, with the tags for `Unsupported` |
//!
//! Things that are valid syntax but that the element answers later are *not*
//! rejected here: Max-Forwards `0` (a proxy answers `483`), a too brief
//! expiry (a registrar answers `423`), an unknown Content-Type (`415`), an
//! unknown method (`405`/`501`), an unknown authorization scheme (`401`).

use std::fmt;

use crate::header::{self, NameAddr, Uri, UriError, Via};
use crate::message::{HeaderName, Message, ParseError};

/// Option tags this element supports in `Require` (RFC 3261 §8.2.2.3):
/// reliable provisionals (RFC 3262) and session timers (RFC 4028).
pub const SUPPORTED_OPTION_TAGS: &[&str] = &[
    crate::reliable::OPTION_TAG,
    crate::session_timer::OPTION_TAG,
];

/// Why a request is refused, and how to answer it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The final response status: `400`, `416`, `420`, or (from a
    /// [`ParseError`]) `505` or `513`.
    pub status: u16,
    /// The reason phrase for the response, e.g. "Missing Call-ID header".
    pub reason: String,
    /// For `420`: the option tags to list in an `Unsupported` header.
    pub unsupported: Option<String>,
}

impl Rejection {
    /// A `400 Bad Request` with a phrase that names the defect.
    pub fn bad_request(reason: impl Into<String>) -> Rejection {
        Rejection {
            status: 400,
            reason: reason.into(),
            unsupported: None,
        }
    }

    fn unsupported_uri_scheme() -> Rejection {
        Rejection {
            status: 416,
            reason: "Unsupported URI Scheme".into(),
            unsupported: None,
        }
    }

    fn bad_extension(tags: String) -> Rejection {
        Rejection {
            status: 420,
            reason: "Bad Extension".into(),
            unsupported: Some(tags),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)?;
        if let Some(tags) = &self.unsupported {
            write!(f, " (Unsupported: {tags})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}

/// A message that did not parse is refused with the status its error maps to.
impl From<ParseError> for Rejection {
    fn from(error: ParseError) -> Rejection {
        let mut reason = error.to_string();
        // Reason phrases read as sentences: "Malformed CSeq header".
        if let Some(first) = reason.get(..1) {
            let upper = first.to_ascii_uppercase();
            reason.replace_range(..1, &upper);
        }
        Rejection {
            status: error.status_code(),
            reason,
            unsupported: None,
        }
    }
}

/// Checks a request with the option tags in [`SUPPORTED_OPTION_TAGS`].
///
/// The caller answers an `Err` with its status (never for ACK, which gets
/// no response). The order of the checks follows RFC 3261 §8.2: syntax first
/// (`400`), then the Request-URI scheme (`416`, §8.2.2.1), then extensions
/// (`420`, §8.2.2.3).
pub fn check_request(msg: &Message) -> Result<(), Rejection> {
    check_request_supporting(msg, SUPPORTED_OPTION_TAGS)
}

/// As [`check_request`], with the option tags the caller supports.
pub fn check_request_supporting(msg: &Message, supported: &[&str]) -> Result<(), Rejection> {
    let Some(method) = msg.method() else {
        return Err(Rejection::bad_request("Not a request"));
    };
    let request_uri = msg.request_uri().unwrap_or_default();
    let uri_scheme_supported = match Uri::parse(request_uri) {
        Ok(uri) if uri.headers.is_some() => {
            // RFC 3261 §19.1.1: headers are not allowed in a Request-URI
            // (RFC 4475 §3.1.2.11 `escruri`).
            return Err(Rejection::bad_request("Request-URI must not carry headers"));
        }
        Ok(_) => true,
        Err(UriError::UnsupportedScheme) => false,
        Err(UriError::Malformed) => return Err(Rejection::bad_request("Malformed Request-URI")),
    };

    // One line each (RFC 4475 §3.3.8 `multi01`): two Call-IDs or CSeqs
    // leave no way to match the request to a transaction or dialog.
    for name in [
        HeaderName::To,
        HeaderName::From,
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::MaxForwards,
        HeaderName::ContentType,
    ] {
        check_single(msg, name)?;
    }
    check_required_headers(msg)?;

    // Present and parsable, as check_required_headers has just made sure.
    let cseq = msg.cseq().ok_or(ParseError::BadHeader("CSeq"))?;
    if cseq.method != method.as_str() {
        return Err(Rejection::bad_request(
            "CSeq method does not match the request method",
        ));
    }
    if let Some(value) = msg.header(HeaderName::MaxForwards) {
        // Max-Forwards = 1*DIGIT, and RFC 3261 §20.22 keeps it within 0-255.
        let value = value.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Rejection::bad_request("Malformed Max-Forwards header"));
        }
        if !value.parse::<u32>().is_ok_and(|hops| hops <= 255) {
            return Err(Rejection::bad_request("Max-Forwards out of range"));
        }
    }
    check_content_length_agrees(msg)?;
    if let Some(value) = msg.header(HeaderName::Expires) {
        if header::parse_delta_seconds(value).is_none() {
            return Err(Rejection::bad_request("Malformed Expires header"));
        }
    }
    check_contacts(msg)?;
    for name in [HeaderName::Route, HeaderName::RecordRoute] {
        if !msg
            .values(name)
            .all(|v| NameAddr::parse(v).is_some_and(|a| uri_syntax_ok(a.uri)))
        {
            return Err(Rejection::bad_request(format!(
                "Malformed {} header",
                name.canonical()
            )));
        }
    }
    if let Some(date) = msg.header(HeaderName::Date) {
        if !is_sip_date(date) {
            // RFC 3261 §20.17 allows only rfc1123-date in GMT (RFC 4475
            // §3.1.2.12 `baddate`).
            return Err(Rejection::bad_request("Malformed Date header"));
        }
    }

    if !uri_scheme_supported {
        return Err(Rejection::unsupported_uri_scheme());
    }

    // Require is ignored in CANCEL and ACK (RFC 3261 §8.2.2.3), which
    // cannot be refused for an extension.
    if !matches!(method.as_str(), "ACK" | "CANCEL") {
        let unknown: Vec<&str> = msg
            .values(HeaderName::Require)
            .filter(|tag| !supported.iter().any(|s| s.eq_ignore_ascii_case(tag)))
            .collect();
        if !unknown.is_empty() {
            return Err(Rejection::bad_extension(unknown.join(", ")));
        }
    }
    Ok(())
}

/// The minimal check before a response is matched to a transaction: Via,
/// CSeq, Call-ID, From and To present once and parsable. A response that
/// fails is dropped (RFC 3261 §18.1.2; RFC 4475 §3.1.2.5 `scalarlg`).
pub fn check_response(msg: &Message) -> Result<(), ParseError> {
    if msg.is_request() {
        return Err(ParseError::StartLine);
    }
    check_required_headers(msg)
}

/// Presence, uniqueness and syntax of the headers every message carries:
/// Via, From, To, Call-ID, CSeq (RFC 3261 §8.1.1).
fn check_required_headers(msg: &Message) -> Result<(), ParseError> {
    let mut missing = None;
    for (name, label) in [
        (HeaderName::To, "To"),
        (HeaderName::From, "From"),
        (HeaderName::CallId, "Call-ID"),
        (HeaderName::CSeq, "CSeq"),
        (HeaderName::Via, "Via"),
    ] {
        if !msg.has_header(name) {
            missing.get_or_insert(label);
        }
    }
    if let Some(label) = missing {
        return Err(ParseError::MissingHeader(label));
    }

    // One line each, as in requests (see `check_request_supporting`).
    for (name, label) in [
        (HeaderName::To, "To"),
        (HeaderName::From, "From"),
        (HeaderName::CallId, "Call-ID"),
        (HeaderName::CSeq, "CSeq"),
    ] {
        if msg.header_lines(name).nth(1).is_some() {
            return Err(ParseError::BadHeader(label));
        }
    }

    let mut vias = 0;
    for value in msg.values(HeaderName::Via) {
        if Via::parse(value).is_none() {
            return Err(ParseError::BadHeader("Via"));
        }
        vias += 1;
    }
    // A Via line holding only separators, such as `Via: ,`, has no value.
    if vias == 0 {
        return Err(ParseError::BadHeader("Via"));
    }

    for (name, label) in [(HeaderName::From, "From"), (HeaderName::To, "To")] {
        let well_formed = msg
            .header(name)
            .and_then(NameAddr::parse)
            .is_some_and(|addr| uri_syntax_ok(addr.uri));
        if !well_formed {
            return Err(ParseError::BadHeader(label));
        }
    }

    let call_id = msg.call_id().unwrap_or_default();
    if call_id.is_empty() || call_id.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(ParseError::BadHeader("Call-ID"));
    }

    if msg.cseq().is_none() {
        return Err(ParseError::BadHeader("CSeq"));
    }
    Ok(())
}

/// A `400` when a header meant to appear once appears twice.
fn check_single(msg: &Message, name: HeaderName) -> Result<(), Rejection> {
    if msg.header_lines(name).nth(1).is_some() {
        return Err(Rejection::bad_request(format!(
            "Multiple {} headers",
            name.canonical()
        )));
    }
    Ok(())
}

/// Content-Length lines that disagree leave the body's length unknown
/// (RFC 4475 §3.3.9 `mcl01`). The parse used the first; the request is
/// still refused.
fn check_content_length_agrees(msg: &Message) -> Result<(), Rejection> {
    let mut lines = msg.header_lines(HeaderName::ContentLength).map(str::trim);
    if let Some(first) = lines.next() {
        if lines.any(|other| other != first) {
            return Err(Rejection::bad_request("Conflicting Content-Length headers"));
        }
    }
    Ok(())
}

/// Contact: either `*` alone or name-addr / addr-spec values with well
/// formed parameters (RFC 3261 §20.10).
fn check_contacts(msg: &Message) -> Result<(), Rejection> {
    let values: Vec<&str> = msg.values(HeaderName::Contact).collect();
    if values.contains(&"*") {
        if values.len() == 1 {
            return Ok(());
        }
        return Err(Rejection::bad_request(
            "Contact * must be the only Contact value",
        ));
    }
    for value in values {
        let ok = NameAddr::parse(value).is_some_and(|addr| {
            uri_syntax_ok(addr.uri)
                && addr
                    .params
                    .get("expires")
                    .is_none_or(|v| v.is_some_and(|v| header::parse_delta_seconds(v).is_some()))
        });
        if !ok {
            return Err(Rejection::bad_request("Malformed Contact header"));
        }
    }
    Ok(())
}

/// A URI in a From, To, Contact or Route header: `sip`, `sips` and `tel`
/// must parse; any other scheme is an absoluteURI carried as written (RFC
/// 4475 §3.3.4 `unksm2`: `isbn:`, `http:`, `name:` are valid syntax there).
fn uri_syntax_ok(uri: &str) -> bool {
    !matches!(Uri::parse(uri), Err(UriError::Malformed))
}

/// `rfc1123-date` as RFC 3261 §25.1 restricts it: `Sat, 13 Nov 2010 23:29:00 GMT`.
fn is_sip_date(value: &str) -> bool {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let Some((weekday, rest)) = value.trim().split_once(", ") else {
        return false;
    };
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, zone] = parts[..] else {
        return false;
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let in_range = |s: &str, max: u32| s.parse::<u32>().is_ok_and(|v| v <= max);
    let time_ok = {
        let fields: Vec<&str> = time.split(':').collect();
        matches!(fields[..], [h, m, s]
            if digits(h, 2) && digits(m, 2) && digits(s, 2)
                && in_range(h, 23) && in_range(m, 59) && in_range(s, 60))
    };
    DAYS.contains(&weekday)
        && digits(day, 2)
        && day.parse::<u32>().is_ok_and(|d| (1..=31).contains(&d))
        && MONTHS.contains(&month)
        && digits(year, 4)
        && time_ok
        && zone == "GMT"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(extra: &str) -> Message {
        let raw = format!(
            "OPTIONS sip:a@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             From: <sip:b@example.com>;tag=1\r\n\
             To: <sip:a@example.com>\r\n\
             Call-ID: c1\r\n\
             CSeq: 1 OPTIONS\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn a_plain_request_passes_and_max_forwards_is_optional() {
        assert_eq!(check_request(&request("")), Ok(()));
        assert_eq!(check_request(&request("Max-Forwards: 0\r\n")), Ok(()));
        assert_eq!(check_request(&request("Expires: 1\r\n")), Ok(()));
    }

    #[test]
    fn scalar_ranges() {
        assert_eq!(
            check_request(&request("Max-Forwards: 256\r\n"))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            check_request(&request("Expires: soon\r\n"))
                .unwrap_err()
                .reason,
            "Malformed Expires header"
        );
    }

    #[test]
    fn require_lists_the_unknown_tags() {
        let r = check_request(&request("Require: foo, bar\r\n")).unwrap_err();
        assert_eq!(r.status, 420);
        assert_eq!(r.unsupported.as_deref(), Some("foo, bar"));
        let ok = check_request_supporting(&request("Require: foo\r\n"), &["foo"]);
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn dates_must_be_gmt() {
        assert!(is_sip_date("Sat, 15 Oct 2005 04:44:56 GMT"));
        assert!(!is_sip_date("Fri, 01 Jan 2010 16:00:00 EST"));
        assert!(!is_sip_date("Fri, 01 Jan 2010 16:00 GMT"));
        assert!(!is_sip_date("Fri, 1 Jan 2010 16:00:00 GMT"));
    }

    #[test]
    fn contact_star_and_parse_errors_map_to_statuses() {
        assert_eq!(check_request(&request("Contact: *\r\n")), Ok(()));
        assert_eq!(
            check_request(&request("Contact: *, <sip:x@y>\r\n"))
                .unwrap_err()
                .status,
            400
        );
        let r = Rejection::from(ParseError::Version);
        assert_eq!(
            (r.status, r.reason.as_str()),
            (505, "Unsupported SIP version")
        );
        assert_eq!(
            Rejection::from(ParseError::MissingHeader("Call-ID")).reason,
            "Missing Call-ID header"
        );
    }
}
