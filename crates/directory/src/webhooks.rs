//! `[[webhooks]]`: where the workspace's events are POSTed (a missed call,
//! a new voicemail, every call's end), checked like the rest of the file.
//!
//! Only the schema and its checks live here; delivery is the daemon's.
//! URLs name an IP literal and a port (`http://127.0.0.1:9000/hook`): no
//! DNS lookup and no TLS (put a relay in front for `https`).

use std::fmt;
use std::net::SocketAddr;

use crate::directory::Errors;

/// A webhook as written.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct WebhookSpec {
    pub url: String,
    pub events: Vec<String>,
    /// Key of the `X-Switchboard-Signature` HMAC; none: unsigned.
    pub secret: Option<String>,
}

impl fmt::Debug for WebhookSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSpec")
            .field("url", &"<redacted>")
            .field("events", &self.events)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The events a webhook can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    /// A call to a number that nobody took (no answer, busy, declined, the
    /// caller gave up, it went to voicemail, or nobody could ring).
    CallMissed,
    /// A caller reached a mailbox.
    VoicemailNew,
    /// Every call, however it ended.
    CallEnded,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 3] = [
        WebhookEvent::CallMissed,
        WebhookEvent::VoicemailNew,
        WebhookEvent::CallEnded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::CallMissed => "call.missed",
            WebhookEvent::VoicemailNew => "voicemail.new",
            WebhookEvent::CallEnded => "call.ended",
        }
    }
}

/// A checked webhook.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    /// Where the URL points.
    pub addr: SocketAddr,
    pub events: Vec<WebhookEvent>,
    pub secret: Option<String>,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("addr", &self.addr)
            .field("events", &self.events)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

pub(crate) fn compile_webhooks(specs: Vec<WebhookSpec>, errors: &mut Errors<'_>) -> Vec<Webhook> {
    let mut hooks = Vec::new();
    for (i, spec) in specs.into_iter().enumerate() {
        let key = |k: &str| format!("webhooks[{i}].{k}");
        let addr = match address(&spec.url) {
            Ok(addr) => Some(addr),
            Err(why) => {
                errors.push(key("url"), why);
                None
            }
        };
        let mut events = Vec::new();
        if spec.events.is_empty() {
            errors.push(key("events"), "must name at least one event");
        }
        for (j, name) in spec.events.iter().enumerate() {
            match WebhookEvent::ALL.iter().find(|e| e.as_str() == name) {
                Some(e) if events.contains(e) => {
                    errors.push(format!("webhooks[{i}].events[{j}]"), format!("{name} is listed twice"))
                }
                Some(e) => events.push(*e),
                None => errors.push(
                    format!("webhooks[{i}].events[{j}]"),
                    format!("unknown event {name:?}; expected \"call.missed\", \"voicemail.new\" or \"call.ended\""),
                ),
            }
        }
        if spec.secret.as_deref() == Some("") {
            errors.push(
                key("secret"),
                "must not be empty (leave it out for unsigned requests)",
            );
        }
        if let Some(addr) = addr {
            hooks.push(Webhook {
                url: spec.url,
                addr,
                events,
                secret: spec.secret,
            });
        }
    }
    hooks
}

/// The socket address of an `http://IP:PORT/path` URL.
fn address(url: &str) -> Result<SocketAddr, String> {
    // The URL is not quoted back: its path or query may carry a token.
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        "is not an http:// URL (https is not supported: put a relay in front)".to_string()
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    authority.parse::<SocketAddr>().map_err(|_| {
        "must name an IP address and a port, such as http://127.0.0.1:9000/hook (no DNS lookup)"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_an_ip_and_a_port() {
        assert!(address("http://127.0.0.1:9000/hook").is_ok());
        assert!(address("http://[::1]:9000").is_ok());
        assert!(address("https://127.0.0.1:9000/").is_err());
        assert!(address("http://hooks.example.com/x").is_err());
        assert!(address("http://127.0.0.1/x").is_err());
    }
}
