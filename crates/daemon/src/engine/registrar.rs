//! The registrar (RFC 3261 §10.3) with digest authentication (RFC 2617,
//! RFC 8760): users sign their devices in, and the bindings it keeps are
//! where calls ring.

use std::time::Instant;

use directory::UserStatus;
use presence::{Binding, BindingTransport};
use sip::auth::{self, NonceStatus};
use sip::build::{reason_phrase, response_to};
use sip::header::{parse_delta_seconds, NameAddr, Uri};
use sip::transaction::{Peer, Transport, TxId};
use sip::{HeaderName, Message};

use super::{Engine, TxCtx};

/// The result of checking a request's credentials.
pub(crate) enum AuthOutcome {
    /// Valid credentials of this user id.
    User(String),
    /// No credentials (or a stale nonce): send a challenge.
    Challenge { stale: bool },
    /// Credentials that do not verify, for an unknown user or a wrong
    /// password alike (no user enumeration).
    Forbidden,
}

impl Engine {
    pub(super) fn on_register(&mut self, now: Instant, from: Peer, request: Message) {
        let tx = self.tl.new_server(now, from, request, TxCtx::Plain);
        let outcome = match self.tl.request(tx) {
            Some(req) => self.authenticate(now, req, HeaderName::Authorization),
            None => return,
        };
        let user_id = match outcome {
            AuthOutcome::User(id) => id,
            AuthOutcome::Challenge { stale } => {
                self.send_challenge(now, tx, 401, stale);
                return;
            }
            AuthOutcome::Forbidden => {
                self.respond_plain(now, tx, 403);
                return;
            }
        };
        let result = self.apply_register(now, tx, from, &user_id);
        let Some(req) = self.tl.request(tx) else {
            return;
        };
        let tag = self.ids.tag();
        let reply = match result {
            Ok(contacts) => {
                let mut ok = response_to(req, 200, "OK", Some(&tag), false);
                for contact in contacts {
                    ok.push(HeaderName::Contact, &contact);
                }
                ok
            }
            Err(RegisterError::TooBrief) => {
                let mut r = response_to(req, 423, "Interval Too Brief", Some(&tag), false);
                r.push(HeaderName::MinExpires, &self.cfg.min_expires.to_string());
                r
            }
            Err(RegisterError::NotActive) => response_to(
                req,
                403,
                "Forbidden (account not active)",
                Some(&tag),
                false,
            ),
            Err(RegisterError::WrongAor) => response_to(
                req,
                403,
                "Forbidden (To does not match the credentials)",
                Some(&tag),
                false,
            ),
            Err(RegisterError::BadRequest(why)) => response_to(req, 400, why, Some(&tag), false),
            Err(RegisterError::OutOfOrder) => {
                response_to(req, 500, "Out Of Order Registration", Some(&tag), false)
            }
            Err(RegisterError::TooMany) => {
                response_to(req, 403, "Forbidden (too many devices)", Some(&tag), false)
            }
        };
        self.tl.respond(now, tx, &reply);
    }

    /// Checks `Authorization` (or `Proxy-Authorization`) against the
    /// directory. Unknown users are verified against a dummy secret so that
    /// they cost the same as a wrong password.
    pub(crate) fn authenticate(
        &self,
        now: Instant,
        request: &Message,
        header: HeaderName,
    ) -> AuthOutcome {
        let realm = self.cfg.domain.as_str();
        let method = request.method().map(|m| m.as_str()).unwrap_or("");
        let now_unix = self.now_unix_ms(now) / 1000;
        let workspace = self.workspace.load();
        let mut stale = false;
        for value in request.header_lines(header) {
            let Ok(creds) = auth::parse_credentials(value) else {
                continue;
            };
            if creds.realm != realm {
                continue;
            }
            let user = workspace
                .directory
                .user_index(&creds.username)
                .map(|i| workspace.directory.user(i));
            let password = user
                .map(|u| u.password.as_str())
                .unwrap_or("\u{0}no-such-user");
            let ha1 = auth::ha1(creds.algorithm, &creds.username, realm, password);
            let offered = self.cfg.digest_algorithms.contains(&creds.algorithm);
            let verified = offered && auth::verify(&creds, method, &ha1) && user.is_some();
            match self.nonces.check(&creds.nonce, realm, now_unix) {
                NonceStatus::Valid if verified => {
                    return AuthOutcome::User(creds.username.to_string())
                }
                // RFC 2617 §3.2.1: a good response over an old nonce (stale,
                // or from before a restart) earns a fresh challenge.
                NonceStatus::Stale | NonceStatus::Invalid if verified => stale = true,
                _ => return AuthOutcome::Forbidden,
            }
        }
        AuthOutcome::Challenge { stale }
    }

    /// Answers `tx` with 401 or 407 and a challenge per offered algorithm.
    pub(crate) fn send_challenge(&mut self, now: Instant, tx: TxId, status: u16, stale: bool) {
        let realm = self.cfg.domain.clone();
        let nonce = self.nonces.issue(&realm, self.now_unix_ms(now) / 1000);
        let tag = self.ids.tag();
        let Some(req) = self.tl.request(tx) else {
            return;
        };
        let mut reply = response_to(req, status, reason_phrase(status), Some(&tag), false);
        let header = if status == 407 {
            HeaderName::ProxyAuthenticate
        } else {
            HeaderName::WwwAuthenticate
        };
        for &algorithm in &self.cfg.digest_algorithms {
            reply.push(header, &auth::challenge(&realm, &nonce, algorithm, stale));
        }
        self.tl.respond(now, tx, &reply);
    }

    /// RFC 3261 §10.3 steps 5 to 8 for an authenticated user. Returns the
    /// Contact values of the bindings after the change.
    fn apply_register(
        &mut self,
        now: Instant,
        tx: TxId,
        from: Peer,
        user_id: &str,
    ) -> Result<Vec<String>, RegisterError> {
        let workspace = self.workspace.load();
        let directory = &workspace.directory;
        let user_idx = directory
            .user_index(user_id)
            .ok_or(RegisterError::WrongAor)?;
        if directory.user(user_idx).status != UserStatus::Active {
            return Err(RegisterError::NotActive);
        }
        let Some(req) = self.tl.request(tx) else {
            return Err(RegisterError::BadRequest("Missing request"));
        };
        // The address of record is the To URI; its user must be the one who
        // authenticated (§10.3 step 6).
        let to = req
            .to_header()
            .ok_or(RegisterError::BadRequest("Malformed To"))?;
        let aor = Uri::parse(to.uri).map_err(|_| RegisterError::BadRequest("Malformed To URI"))?;
        if aor.user != Some(user_id) {
            return Err(RegisterError::WrongAor);
        }
        let call_id = req.call_id().unwrap_or("").to_string();
        let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
        let header_expires = req
            .header(HeaderName::Expires)
            .and_then(parse_delta_seconds);
        let now_ms = self.now_unix_ms(now);

        let mut changes: Vec<Change> = Vec::new();
        let mut wildcard = false;
        for value in req.values(HeaderName::Contact) {
            if value.trim() == "*" {
                wildcard = true;
                continue;
            }
            let contact =
                NameAddr::parse(value).ok_or(RegisterError::BadRequest("Malformed Contact"))?;
            if Uri::parse(contact.uri).is_err() {
                return Err(RegisterError::BadRequest("Malformed Contact URI"));
            }
            let expires = contact
                .params
                .get("expires")
                .flatten()
                .and_then(parse_delta_seconds)
                .or(header_expires)
                .unwrap_or(self.cfg.default_expires);
            if expires != 0 && expires < self.cfg.min_expires {
                return Err(RegisterError::TooBrief);
            }
            let instance = contact
                .params
                .get("+sip.instance")
                .flatten()
                .map(|s| s.trim_matches('"').to_string());
            changes.push(Change {
                uri: contact.uri.to_string(),
                expires: expires.min(self.cfg.max_expires),
                instance,
            });
        }
        if wildcard {
            // §10.3 step 6: `*` only alone and with Expires: 0.
            if !changes.is_empty() || header_expires != Some(0) {
                return Err(RegisterError::BadRequest(
                    "Wildcard Contact needs Expires: 0 and no other Contact",
                ));
            }
        }

        let transport = match from.transport {
            Transport::Udp => BindingTransport::Udp,
            Transport::Tcp(id) => BindingTransport::Tcp {
                connection: Some(id),
            },
        };
        let max = self.cfg.max_bindings_per_user;
        let presence = workspace.presence.user(user_idx);
        let result = presence.try_update(now_ms, |list| {
            if wildcard {
                if list.iter().any(|b| b.call_id == call_id && b.cseq >= cseq) {
                    return Err(RegisterError::OutOfOrder);
                }
                list.clear();
                return Ok(());
            }
            for change in &changes {
                let existing = list.iter().position(|b| {
                    b.contact == change.uri
                        || (change.instance.is_some() && b.instance == change.instance)
                });
                if let Some(i) = existing {
                    if list[i].call_id == call_id && list[i].cseq >= cseq {
                        return Err(RegisterError::OutOfOrder);
                    }
                }
                let binding = Binding {
                    contact: change.uri.clone(),
                    expires_at_ms: now_ms + u64::from(change.expires) * 1000,
                    call_id: call_id.clone(),
                    cseq,
                    source: from.addr,
                    transport,
                    instance: change.instance.clone(),
                };
                match (existing, change.expires) {
                    (Some(i), 0) => {
                        list.remove(i);
                    }
                    (Some(i), _) => list[i] = binding,
                    (None, 0) => {}
                    (None, _) => {
                        if list.len() >= max {
                            return Err(RegisterError::TooMany);
                        }
                        list.push(binding);
                    }
                }
            }
            Ok(())
        });
        result?;
        if wildcard || !changes.is_empty() {
            self.presence.mark_changed(user_id);
        }
        let contacts = presence
            .bindings(now_ms)
            .iter()
            .map(|b| {
                let left = b.expires_at_ms.saturating_sub(now_ms).div_ceil(1000);
                format!("<{}>;expires={left}", b.contact)
            })
            .collect();
        Ok(contacts)
    }
}

struct Change {
    uri: String,
    expires: u32,
    instance: Option<String>,
}

enum RegisterError {
    TooBrief,
    NotActive,
    WrongAor,
    OutOfOrder,
    TooMany,
    BadRequest(&'static str),
}
