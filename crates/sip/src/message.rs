//! The SIP message: parsing, typed access, editing and printing (RFC 3261 §7, §20, §25).
//!
//! A parsed [`Message`] keeps the header section as text and every header as a
//! span of it, so printing a message that was not edited gives back the bytes
//! that came in (folding aside, which is replaced by spaces of the same
//! meaning). Edits replace whole header values; everything else is untouched.
//! The body is kept as raw bytes and never decoded.
//!
//! Parsing refuses only what cannot be framed or has a broken start line;
//! a message that parses may still be semantically invalid, and
//! [`crate::validate`] decides that (and which status answers it), so that a
//! malformed request can still be answered from its parsed headers.

use std::fmt;

use bytes::Bytes;

use crate::header::{self, CSeq, NameAddr, Via};

/// Messages larger than this are refused (RFC 3261 §18.1.1 caps UDP near the
/// path MTU; 64 KiB is the UDP datagram limit and a sane TCP one).
pub const MAX_MESSAGE_SIZE: usize = 65_535;

/// A SIP method. The common ones are variants; any other token is kept as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other(Box<str>),
}

impl Method {
    /// Methods are case-sensitive (RFC 3261 §7.1); an unknown token is `Other`.
    pub fn parse(token: &str) -> Option<Method> {
        if token.is_empty() || !token.bytes().all(header::is_token_byte) {
            return None;
        }
        Some(match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.into()),
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! header_names {
    ($( $variant:ident => $canonical:literal $(, $compact:literal)? ;)*) => {
        /// The headers Switchboard reads or writes by name. Anything else is `Other`
        /// and keeps the name it arrived with.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $($variant,)*
            Other,
        }

        impl HeaderName {
            /// Case-insensitive lookup, compact forms included (RFC 3261 §7.3.3).
            pub fn from_name(name: &str) -> HeaderName {
                $(
                    if name.eq_ignore_ascii_case($canonical) $(|| name.eq_ignore_ascii_case($compact))? {
                        return HeaderName::$variant;
                    }
                )*
                HeaderName::Other
            }

            /// The canonical spelling used when Switchboard writes the header.
            pub fn canonical(self) -> &'static str {
                match self {
                    $(HeaderName::$variant => $canonical,)*
                    HeaderName::Other => "",
                }
            }
        }
    };
}

header_names! {
    Via => "Via", "v";
    From => "From", "f";
    To => "To", "t";
    CallId => "Call-ID", "i";
    CSeq => "CSeq";
    Contact => "Contact", "m";
    MaxForwards => "Max-Forwards";
    Route => "Route";
    RecordRoute => "Record-Route";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    ContentType => "Content-Type", "c";
    ContentLength => "Content-Length", "l";
    ContentEncoding => "Content-Encoding", "e";
    Allow => "Allow";
    Supported => "Supported", "k";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Unsupported => "Unsupported";
    UserAgent => "User-Agent";
    Server => "Server";
    Date => "Date";
    Subject => "Subject", "s";
    Event => "Event", "o";
    ReferTo => "Refer-To", "r";
    Accept => "Accept";
    RetryAfter => "Retry-After";
    Reason => "Reason";
    PAssertedIdentity => "P-Asserted-Identity";
    Privacy => "Privacy";
    Diversion => "Diversion";
    RSeq => "RSeq";
    RAck => "RAck";
    SessionExpires => "Session-Expires", "x";
    MinSe => "Min-SE";
}

/// Why a message was refused. `Display` gives the phrase used in a `400`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message too large")]
    TooLarge,
    #[error("empty message")]
    Empty,
    #[error("no end of headers")]
    Incomplete,
    #[error("malformed start line")]
    StartLine,
    #[error("unsupported SIP version")]
    Version,
    #[error("malformed header line")]
    HeaderLine,
    #[error("malformed {0} header")]
    BadHeader(&'static str),
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("Content-Length larger than the body")]
    ShortBody,
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
    #[error("malformed Request-URI")]
    RequestUri,
}

impl ParseError {
    /// The status a UAS answers with when it can still form a response
    /// (RFC 3261 §8.2, §21.5.6, §21.5.14): `505` for another SIP version,
    /// `513` for a message over the size limit, `400` for everything else.
    pub fn status_code(&self) -> u16 {
        match self {
            ParseError::Version => 505,
            ParseError::TooLarge => 513,
            _ => 400,
        }
    }
}

/// Where a piece of text lives: a span of the parsed header section, or text
/// set by an edit.
#[derive(Clone, Debug)]
enum Text {
    Span(u32, u32),
    Owned(Box<str>),
}

#[derive(Clone, Debug)]
struct Header {
    name: HeaderName,
    raw_name: Text,
    value: Text,
}

#[derive(Clone, Debug)]
enum Start {
    Request { method: Method, uri: Text },
    Response { status: u16, reason: Text },
}

/// A parsed or built SIP request or response.
#[derive(Clone, Debug)]
pub struct Message {
    head: String,
    start: Start,
    headers: Vec<Header>,
    body: Bytes,
}

impl Message {
    /// Parses one message from a datagram or a framed stream chunk.
    ///
    /// Content-Length, when present, bounds the body and any bytes after it
    /// are ignored (RFC 3261 §18.3); without it the body is the rest of the
    /// input. Leading CRLFs are skipped (§7.5).
    pub fn parse(input: &[u8]) -> Result<Message, ParseError> {
        Message::parse_bytes(Bytes::copy_from_slice(input))
    }

    /// As [`Message::parse`], taking ownership so the body is not copied.
    pub fn parse_bytes(input: Bytes) -> Result<Message, ParseError> {
        if input.len() > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge);
        }
        let skip = input
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .ok_or(ParseError::Empty)?;
        let data = &input[skip..];
        let (head_len, body_start) = find_head_end(data).ok_or(ParseError::Incomplete)?;
        let head = normalise_head(&data[..head_len])?;
        let mut message = parse_head(head)?;

        let rest = input.slice(skip + body_start..);
        message.body = match message.content_length_checked()? {
            Some(len) if len > rest.len() => return Err(ParseError::ShortBody),
            Some(len) => rest.slice(..len),
            None => rest,
        };
        Ok(message)
    }

    /// A new request with no headers; add them with [`Message::push`].
    pub fn request(method: Method, uri: &str) -> Message {
        Message {
            head: String::new(),
            start: Start::Request {
                method,
                uri: Text::Owned(uri.into()),
            },
            headers: Vec::with_capacity(12),
            body: Bytes::new(),
        }
    }

    /// A new response with no headers.
    pub fn response(status: u16, reason: &str) -> Message {
        Message {
            head: String::new(),
            start: Start::Response {
                status,
                reason: Text::Owned(reason.into()),
            },
            headers: Vec::with_capacity(12),
            body: Bytes::new(),
        }
    }

    fn text<'a>(&'a self, text: &'a Text) -> &'a str {
        match text {
            Text::Span(start, end) => &self.head[*start as usize..*end as usize],
            Text::Owned(s) => s,
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, Start::Request { .. })
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    /// The Request-URI as written.
    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            Start::Request { uri, .. } => Some(self.text(uri)),
            Start::Response { .. } => None,
        }
    }

    pub fn set_request_uri(&mut self, uri: &str) {
        if let Start::Request { uri: slot, .. } = &mut self.start {
            *slot = Text::Owned(uri.into());
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            Start::Response { status, .. } => Some(*status),
            Start::Request { .. } => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            Start::Response { reason, .. } => Some(self.text(reason)),
            Start::Request { .. } => None,
        }
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn set_body(&mut self, body: Bytes) {
        self.body = body;
    }

    /// Every header in order as (name, raw name, value).
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName, &str, &str)> + '_ {
        self.headers
            .iter()
            .map(|h| (h.name, self.raw_name(h), self.text(&h.value)))
    }

    fn raw_name<'a>(&'a self, h: &'a Header) -> &'a str {
        match (&h.raw_name, h.name) {
            (Text::Owned(s), _) if !s.is_empty() => s,
            (Text::Span(..), _) => self.text(&h.raw_name),
            (_, name) => name.canonical(),
        }
    }

    /// The first value of a header (the whole line's value; see
    /// [`Message::values`] for comma-separated lists).
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| self.text(&h.value))
    }

    /// The first value of a header not known by name, matched case-insensitively.
    pub fn header_by_name(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| self.raw_name(h).eq_ignore_ascii_case(name))
            .map(|h| self.text(&h.value))
    }

    /// Every line of a header, in order.
    pub fn header_lines(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| self.text(&h.value))
    }

    /// Every element of a comma-separated header (Via, Contact, Route, ...)
    /// across all its lines, with quotes and `<>` respected.
    pub fn values(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.header_lines(name).flat_map(header::split_list)
    }

    pub fn has_header(&self, name: HeaderName) -> bool {
        self.headers.iter().any(|h| h.name == name)
    }

    /// Appends a header line.
    pub fn push(&mut self, name: HeaderName, value: &str) {
        self.headers.push(Header {
            name,
            raw_name: Text::Owned("".into()),
            value: Text::Owned(value.into()),
        });
    }

    /// Appends a header that has no [`HeaderName`] variant.
    pub fn push_other(&mut self, name: &str, value: &str) {
        self.headers.push(Header {
            name: HeaderName::from_name(name),
            raw_name: Text::Owned(name.into()),
            value: Text::Owned(value.into()),
        });
    }

    /// Inserts a header line before every other.
    pub fn push_front(&mut self, name: HeaderName, value: &str) {
        self.headers.insert(
            0,
            Header {
                name,
                raw_name: Text::Owned("".into()),
                value: Text::Owned(value.into()),
            },
        );
    }

    /// Replaces every line of a header with one value (appended if absent).
    pub fn set(&mut self, name: HeaderName, value: &str) {
        if let Some(pos) = self.headers.iter().position(|h| h.name == name) {
            self.headers[pos].value = Text::Owned(value.into());
            let mut index = 0;
            self.headers.retain(|h| {
                let keep = h.name != name || index == pos;
                index += 1;
                keep
            });
        } else {
            self.push(name, value);
        }
    }

    /// Removes every line of a header.
    pub fn remove(&mut self, name: HeaderName) {
        self.headers.retain(|h| h.name != name);
    }

    /// Removes the first element of a comma-separated header (a proxy popping
    /// its Via or a Route), keeping the others.
    pub fn remove_first_value(&mut self, name: HeaderName) {
        let Some(pos) = self.headers.iter().position(|h| h.name == name) else {
            return;
        };
        let line = self.text(&self.headers[pos].value);
        let rest: Vec<&str> = header::split_list(line).skip(1).collect();
        if rest.is_empty() {
            self.headers.remove(pos);
        } else {
            let joined = rest.join(", ");
            self.headers[pos].value = Text::Owned(joined.into());
        }
    }

    pub fn call_id(&self) -> Option<&str> {
        self.header(HeaderName::CallId)
    }

    pub fn cseq(&self) -> Option<CSeq<'_>> {
        self.header(HeaderName::CSeq).and_then(CSeq::parse)
    }

    pub fn top_via(&self) -> Option<Via<'_>> {
        self.values(HeaderName::Via).next().and_then(Via::parse)
    }

    pub fn from_header(&self) -> Option<NameAddr<'_>> {
        self.header(HeaderName::From).and_then(NameAddr::parse)
    }

    pub fn to_header(&self) -> Option<NameAddr<'_>> {
        self.header(HeaderName::To).and_then(NameAddr::parse)
    }

    pub fn from_tag(&self) -> Option<&str> {
        self.from_header()
            .and_then(|f| f.params.get("tag").flatten())
    }

    pub fn to_tag(&self) -> Option<&str> {
        self.to_header().and_then(|t| t.params.get("tag").flatten())
    }

    pub fn max_forwards(&self) -> Option<u32> {
        self.header(HeaderName::MaxForwards)
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn expires(&self) -> Option<u32> {
        self.header(HeaderName::Expires)
            .and_then(header::parse_delta_seconds)
    }

    fn content_length_checked(&self) -> Result<Option<usize>, ParseError> {
        match self.header(HeaderName::ContentLength) {
            None => Ok(None),
            Some(v) => {
                let v = v.trim();
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseError::BadHeader("Content-Length"));
                }
                v.parse::<usize>()
                    .map(Some)
                    .map_err(|_| ParseError::BadHeader("Content-Length"))
            }
        }
    }

    /// Prints the message. Content-Length always states the body's real
    /// length (added when missing, so the bytes frame on TCP too).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + self.body.len() + 64);
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match &self.start {
            Start::Request { method, uri } => {
                out.extend_from_slice(method.as_str().as_bytes());
                out.push(b' ');
                out.extend_from_slice(self.text(uri).as_bytes());
                out.extend_from_slice(b" SIP/2.0\r\n");
            }
            Start::Response { status, reason } => {
                out.extend_from_slice(b"SIP/2.0 ");
                push_u32(out, u32::from(*status));
                out.push(b' ');
                out.extend_from_slice(self.text(reason).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        let mut wrote_length = false;
        for h in &self.headers {
            out.extend_from_slice(self.raw_name(h).as_bytes());
            out.extend_from_slice(b": ");
            if h.name == HeaderName::ContentLength {
                if wrote_length {
                    // A second Content-Length would contradict the first.
                    out.truncate(out.len() - self.raw_name(h).len() - 2);
                    continue;
                }
                push_u32(out, self.body.len() as u32);
                wrote_length = true;
            } else {
                out.extend_from_slice(self.text(&h.value).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        if !wrote_length {
            out.extend_from_slice(b"Content-Length: ");
            push_u32(out, self.body.len() as u32);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.encode()))
    }
}

pub(crate) fn push_u32(out: &mut Vec<u8>, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Finds the blank line ending the header section: returns the length of the
/// header section (without the blank line) and where the body starts. A bare
/// LF is accepted as a line end, as many stacks do.
fn find_head_end(data: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(pos) = memchr::memchr(b'\n', &data[from..]) {
        let nl = from + pos;
        let next = nl + 1;
        match data.get(next) {
            Some(b'\n') => return Some((nl, next + 1)),
            Some(b'\r') if data.get(next + 1) == Some(&b'\n') => return Some((nl, next + 2)),
            _ => {}
        }
        from = next;
    }
    None
}

/// Copies the header section into text: folded lines (a line end followed by
/// space or tab, RFC 3261 §7.3.1) become spaces, and bytes that are not UTF-8
/// are read as Latin-1, the charset old phones put in display names.
///
/// A CR that is not part of a line end is refused: the grammar has none
/// (not even in a quoted-pair), and a bare CR is read as a line end by some
/// parsers and not by others, so accepting it would let two elements see
/// different headers in the same bytes.
fn normalise_head(raw: &[u8]) -> Result<String, ParseError> {
    let mut bytes = raw.to_vec();
    // `raw` stops just before the LF that ends its last line: drop that CR.
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    if let Some(cr) = memchr::memchr_iter(b'\r', &bytes).find(|&i| bytes.get(i + 1) != Some(&b'\n'))
    {
        let in_start_line = !bytes[..cr].contains(&b'\n');
        return Err(if in_start_line {
            ParseError::StartLine
        } else {
            ParseError::HeaderLine
        });
    }
    let mut i = 0;
    while let Some(pos) = memchr::memchr(b'\n', &bytes[i..]) {
        let nl = i + pos;
        if matches!(bytes.get(nl + 1), Some(b' ' | b'\t')) {
            bytes[nl] = b' ';
            if nl > 0 && bytes[nl - 1] == b'\r' {
                bytes[nl - 1] = b' ';
            }
        }
        i = nl + 1;
    }
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    })
}

fn parse_head(head: String) -> Result<Message, ParseError> {
    let mut lines = LineSpans::new(&head);
    let (start_from, start_to) = lines.next().ok_or(ParseError::Empty)?;
    let start = parse_start_line(&head, start_from, start_to)?;

    let mut headers = Vec::with_capacity(16);
    for (from, to) in lines {
        let line = &head[from..to];
        let colon = line.find(':').ok_or(ParseError::HeaderLine)?;
        let name = line[..colon].trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(header::is_token_byte) {
            return Err(ParseError::HeaderLine);
        }
        let value = &line[colon + 1..];
        let lead = value.len() - value.trim_start_matches([' ', '\t']).len();
        let value_trimmed = value.trim_matches([' ', '\t']);
        let value_from = from + colon + 1 + lead;
        headers.push(Header {
            name: HeaderName::from_name(name),
            raw_name: Text::Span(from as u32, (from + name.len()) as u32),
            value: Text::Span(value_from as u32, (value_from + value_trimmed.len()) as u32),
        });
    }
    Ok(Message {
        head,
        start,
        headers,
        body: Bytes::new(),
    })
}

/// Line spans of the header section, line ends (CRLF or LF) excluded.
struct LineSpans<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> LineSpans<'a> {
    fn new(text: &'a str) -> Self {
        LineSpans { text, pos: 0 }
    }
}

impl Iterator for LineSpans<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.pos > self.text.len() {
            return None;
        }
        let rest = &self.text.as_bytes()[self.pos..];
        let (len, advance) = match memchr::memchr(b'\n', rest) {
            Some(nl) => (nl, nl + 1),
            None => (rest.len(), rest.len() + 1),
        };
        let from = self.pos;
        let mut to = from + len;
        if to > from && self.text.as_bytes()[to - 1] == b'\r' {
            to -= 1;
        }
        self.pos += advance;
        Some((from, to))
    }
}

fn parse_start_line(head: &str, from: usize, to: usize) -> Result<Start, ParseError> {
    let line = &head[from..to];
    if let Some(rest) = strip_prefix_ignore_case(line, "SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let (version, rest) = rest.split_once(' ').ok_or(ParseError::StartLine)?;
        if version != "2.0" {
            return Err(ParseError::Version);
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StartLine);
        }
        let status: u16 = code.parse().map_err(|_| ParseError::StartLine)?;
        if !(100..=699).contains(&status) {
            return Err(ParseError::StartLine);
        }
        let reason_from = to - reason.len();
        return Ok(Start::Response {
            status,
            reason: Text::Span(reason_from as u32, to as u32),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly single spaces.
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::StartLine);
    };
    let method = Method::parse(method).ok_or(ParseError::StartLine)?;
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return if strip_prefix_ignore_case(version, "SIP/").is_some() {
            Err(ParseError::Version)
        } else {
            Err(ParseError::StartLine)
        };
    }
    if uri.is_empty() || uri.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(ParseError::RequestUri);
    }
    let uri_from = from + (uri.as_ptr() as usize - line.as_ptr() as usize);
    Ok(Start::Request {
        method,
        uri: Text::Span(uri_from as u32, (uri_from + uri.len()) as u32),
    })
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const INVITE: &str = "INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-2\r\n\
        f: \"Trunk\" <sip:trunk@127.0.0.1>;tag=abc\r\n\
        t: <sip:+15550100@127.0.0.1>\r\n\
        i: call-1@host\r\n\
        CSeq: 1 INVITE\r\n\
        Max-Forwards: 70\r\n\
        Subject: folded\r\n  value\r\n\
        l: 4\r\n\
        \r\n\
        v=0\ntrailing";

    #[test]
    fn parses_compact_forms_folding_and_content_length() {
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.call_id(), Some("call-1@host"));
        assert_eq!(m.from_tag(), Some("abc"));
        assert_eq!(m.values(HeaderName::Via).count(), 2);
        assert_eq!(m.header(HeaderName::Subject), Some("folded    value"));
        assert_eq!(&m.body()[..], b"v=0\n");
        assert_eq!(m.cseq().unwrap().seq, 1);
    }

    #[test]
    fn printing_an_unedited_message_keeps_its_headers() {
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        let printed = String::from_utf8(m.encode()).unwrap();
        assert!(printed.starts_with("INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP"));
        assert!(printed.contains("\r\nf: \"Trunk\" <sip:trunk@127.0.0.1>;tag=abc\r\n"));
        assert!(printed.ends_with("l: 4\r\n\r\nv=0\n"));
        let again = Message::parse(printed.as_bytes()).unwrap();
        assert_eq!(again.encode(), m.encode());
    }

    #[test]
    fn edits_touch_only_what_they_name() {
        let mut m = Message::parse(INVITE.as_bytes()).unwrap();
        m.remove_first_value(HeaderName::Via);
        m.set(HeaderName::MaxForwards, "69");
        let printed = String::from_utf8(m.encode()).unwrap();
        assert!(printed.contains("Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-2\r\n"));
        assert!(printed.contains("Max-Forwards: 69\r\n"));
        assert!(printed.contains("i: call-1@host\r\n"));
    }

    #[test]
    fn refuses_short_body_and_bad_start_lines() {
        let short = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nabc";
        assert_eq!(
            Message::parse(short.as_bytes()).unwrap_err(),
            ParseError::ShortBody
        );
        assert_eq!(
            Message::parse(b"OPTIONS  sip:a@b SIP/2.0\r\n\r\n").unwrap_err(),
            ParseError::StartLine
        );
        assert_eq!(
            Message::parse(b"OPTIONS sip:a@b SIP/7.0\r\n\r\n").unwrap_err(),
            ParseError::Version
        );
        assert_eq!(Message::parse(b"\r\n\r\n").unwrap_err(), ParseError::Empty);
    }

    #[test]
    fn latin1_display_names_are_read_not_refused() {
        let raw = b"OPTIONS sip:a@b SIP/2.0\r\nFrom: \"Jos\xe9\" <sip:j@b>;tag=1\r\n\r\n";
        let m = Message::parse(raw).unwrap();
        assert_eq!(m.from_header().unwrap().display, Some("\"Jos\u{e9}\""));
    }

    #[test]
    fn bare_carriage_returns_are_refused() {
        assert_eq!(
            Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nX: a\rb\r\n\r\n").unwrap_err(),
            ParseError::HeaderLine
        );
        assert_eq!(
            Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nX: a\r\r\n\r\n").unwrap_err(),
            ParseError::HeaderLine
        );
        assert_eq!(
            Message::parse(b"SIP/2.0 200 O\rK\r\n\r\n").unwrap_err(),
            ParseError::StartLine
        );
        // Bare LF line ends stay accepted, and CR in the body is the body's.
        let m = Message::parse(b"OPTIONS sip:a@b SIP/2.0\nX: a\n\n\rbody").unwrap();
        assert_eq!(&m.body()[..], b"\rbody");
    }

    #[test]
    fn unknown_methods_parse() {
        let m = Message::parse(b"FOO sip:a@b SIP/2.0\r\nCSeq: 1 FOO\r\n\r\n").unwrap();
        assert_eq!(m.method().unwrap().as_str(), "FOO");
    }
}
