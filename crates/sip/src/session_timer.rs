//! Session timers (RFC 4028): the `timer` option tag and the
//! `Session-Expires` and `Min-SE` headers, read and written. Who refreshes,
//! when, and what a missed refresh does are the engine's; this knows only
//! the wire format. No IO, no clock.

use crate::message::{HeaderName, Message};

/// The option tag of session timers (RFC 4028 §3).
pub const OPTION_TAG: &str = "timer";

/// The smallest session interval allowed anywhere (RFC 4028 §4: `Min-SE`
/// must not be below 90 s).
pub const MIN_SE_FLOOR: u32 = 90;

/// Which end of a dialog refreshes it, as `Session-Expires` names it: the
/// `uac` (who sent the INVITE) or the `uas`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

impl Refresher {
    pub fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A `Session-Expires` value: the interval in seconds and, when given, who
/// refreshes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionExpires {
    pub secs: u32,
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// Reads `delta-seconds *(;param)`; `None` when malformed or zero.
    pub fn parse(value: &str) -> Option<SessionExpires> {
        let mut parts = value.split(';');
        let secs: u32 = parts.next()?.trim().parse().ok()?;
        if secs == 0 {
            return None;
        }
        let mut refresher = None;
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("refresher") {
                refresher = match value.trim().to_ascii_lowercase().as_str() {
                    "uac" => Some(Refresher::Uac),
                    "uas" => Some(Refresher::Uas),
                    _ => None,
                };
            }
        }
        Some(SessionExpires { secs, refresher })
    }

    /// The header value: `1800;refresher=uac`.
    pub fn value(self) -> String {
        match self.refresher {
            Some(r) => format!("{};refresher={}", self.secs, r.as_str()),
            None => self.secs.to_string(),
        }
    }

    /// When the side that does not refresh gives up on a session last
    /// refreshed at 0: the interval less a third of it, or 32 s if that is
    /// less (RFC 4028 §10), so that a refresh in flight still makes it.
    pub fn expiry_secs(self) -> u32 {
        self.secs - (self.secs / 3).min(32)
    }
}

/// The message's `Session-Expires`, when present and well-formed.
pub fn session_expires(message: &Message) -> Option<SessionExpires> {
    message
        .header(HeaderName::SessionExpires)
        .and_then(SessionExpires::parse)
}

/// The message's `Min-SE`, when present and well-formed.
pub fn min_se(message: &Message) -> Option<u32> {
    message
        .header(HeaderName::MinSe)
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.trim().parse().ok())
}

/// Whether `message` names `timer` in `Supported` or `Require`.
pub fn supports_timer(message: &Message) -> bool {
    [HeaderName::Supported, HeaderName::Require]
        .into_iter()
        .any(|h| {
            message
                .values(h)
                .any(|tag| tag.trim().eq_ignore_ascii_case(OPTION_TAG))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn values_parse_with_and_without_a_refresher() {
        assert_eq!(
            SessionExpires::parse("1800;refresher=UAS"),
            Some(SessionExpires {
                secs: 1800,
                refresher: Some(Refresher::Uas)
            })
        );
        assert_eq!(
            SessionExpires::parse(" 90 ; x=y"),
            Some(SessionExpires {
                secs: 90,
                refresher: None
            })
        );
        assert_eq!(SessionExpires::parse("0"), None);
        assert_eq!(SessionExpires::parse("soon"), None);
        assert_eq!(SessionExpires::parse(""), None);
    }

    #[test]
    fn the_non_refresher_waits_the_interval_less_a_third_at_most_32_s() {
        let se = |secs| SessionExpires {
            secs,
            refresher: None,
        };
        assert_eq!(se(90).expiry_secs(), 60);
        assert_eq!(se(120).expiry_secs(), 88);
        assert_eq!(se(1800).expiry_secs(), 1768);
    }

    #[test]
    fn headers_are_read_from_a_message_in_either_form() {
        let raw = "INVITE sip:a@127.0.0.1 SIP/2.0\r\n\
                   Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n\
                   From: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\n\
                   Call-ID: st\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
                   k: 100rel, timer\r\nx: 300;refresher=uac\r\nMin-SE: 120\r\n\
                   Content-Length: 0\r\n\r\n";
        let message = Message::parse(raw.as_bytes()).unwrap();
        assert!(supports_timer(&message));
        assert_eq!(
            session_expires(&message),
            Some(SessionExpires {
                secs: 300,
                refresher: Some(Refresher::Uac)
            })
        );
        assert_eq!(min_se(&message), Some(120));
    }
}
