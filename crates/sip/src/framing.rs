//! Framing of SIP messages on stream transports (RFC 3261 §18.3): a message
//! ends at the blank line plus Content-Length bytes of body.

use crate::message::MAX_MESSAGE_SIZE;

/// What the bytes at the front of a stream buffer hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet.
    Incomplete,
    /// CRLF keep-alives (RFC 5626 §3.5.1) to drop: this many bytes.
    KeepAlive(usize),
    /// One whole message of this many bytes.
    Message(usize),
}

/// Why a stream can no longer be framed; the connection should be closed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message exceeds the size limit")]
    TooLarge,
    #[error("missing or malformed Content-Length on a stream transport")]
    BadContentLength,
}

/// Finds the first message (or keep-alive) at the front of `buf`.
pub fn next_frame(buf: &[u8]) -> Result<Frame, FrameError> {
    let crlf = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if crlf > 0 {
        return Ok(Frame::KeepAlive(crlf));
    }
    let Some(head_end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_MESSAGE_SIZE {
            Err(FrameError::TooLarge)
        } else {
            Ok(Frame::Incomplete)
        };
    };
    let body_start = head_end + 4;
    let length = content_length(&buf[..head_end]).ok_or(FrameError::BadContentLength)?;
    // The length is read from the peer: add without overflowing.
    let total = body_start
        .checked_add(length)
        .filter(|&total| total <= MAX_MESSAGE_SIZE)
        .ok_or(FrameError::TooLarge)?;
    if buf.len() < total {
        return Ok(Frame::Incomplete);
    }
    Ok(Frame::Message(total))
}

/// Content-Length from a header section (compact `l:` included). A stream
/// message without it is refused, as RFC 3261 §18.3 requires the header
/// there; so is one with two values that disagree, which leaves the end of
/// the message unknown (RFC 4475 §3.3.9 `mcl01`: close the connection).
fn content_length(head: &[u8]) -> Option<usize> {
    let mut found = None;
    // The start line is skipped, and so are folded continuation lines: a
    // header name only starts a line that does not begin with whitespace.
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let value = line[colon + 1..].trim_ascii();
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let length: usize = std::str::from_utf8(value).ok()?.parse().ok()?;
            if found.is_some_and(|earlier| earlier != length) {
                return None;
            }
            found = Some(length);
        }
    }
    found
}

/// RFC 5626 §4.4.1 on a stream: a double-CRLF "ping" wants a CRLF
/// "pong". The ping's bytes may arrive in several reads (and so several
/// [`Frame::KeepAlive`]s); this remembers how much of one has come.
#[derive(Clone, Copy, Debug, Default)]
pub struct PingDetector {
    matched: usize,
}

impl PingDetector {
    /// Feeds the bytes of a keep-alive frame; returns how many whole pings
    /// they completed.
    pub fn feed(&mut self, keep_alive: &[u8]) -> usize {
        const PING: &[u8; 4] = b"\r\n\r\n";
        let mut pings = 0;
        for &b in keep_alive {
            if b == PING[self.matched] {
                self.matched += 1;
                if self.matched == PING.len() {
                    pings += 1;
                    self.matched = 0;
                }
            } else {
                self.matched = usize::from(b == b'\r');
            }
        }
        pings
    }

    /// A message came between: what came before it was no ping.
    pub fn reset(&mut self) {
        self.matched = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_glued_messages() {
        let one = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabc";
        let mut glued = one.to_vec();
        glued.extend_from_slice(b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n");
        assert_eq!(next_frame(&glued), Ok(Frame::Message(one.len())));
        assert_eq!(
            next_frame(&glued[one.len()..]),
            Ok(Frame::Message(glued.len() - one.len()))
        );
        assert_eq!(next_frame(&one[..20]), Ok(Frame::Incomplete));
        assert_eq!(next_frame(&one[..one.len() - 1]), Ok(Frame::Incomplete));
        assert_eq!(next_frame(b"\r\n\r\nINV"), Ok(Frame::KeepAlive(4)));
        assert_eq!(
            next_frame(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"),
            Err(FrameError::BadContentLength)
        );
    }

    #[test]
    fn conflicting_or_huge_lengths_close_the_stream() {
        assert_eq!(
            next_frame(b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab"),
            Err(FrameError::BadContentLength)
        );
        let agreeing = b"OPTIONS sip:a@b SIP/2.0\r\nl: 2\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(next_frame(agreeing), Ok(Frame::Message(agreeing.len())));
        assert_eq!(
            next_frame(b"OPTIONS sip:a@b SIP/2.0\r\nl: 18446744073709551615\r\n\r\n"),
            Err(FrameError::TooLarge)
        );
    }

    #[test]
    fn a_ping_split_across_reads_is_one_ping() {
        let mut ping = PingDetector::default();
        assert_eq!(ping.feed(b"\r\n"), 0);
        assert_eq!(ping.feed(b"\r"), 0);
        assert_eq!(ping.feed(b"\n"), 1);
        assert_eq!(ping.feed(b"\r\n\r\n\r\n\r\n"), 2);
        // A lone CRLF, a message, a lone CRLF: no ping.
        assert_eq!(ping.feed(b"\r\n"), 0);
        ping.reset();
        assert_eq!(ping.feed(b"\r\n"), 0);
        assert_eq!(ping.feed(b"\n\r\n\r\n"), 1, "a stray LF before the ping");
    }
}
