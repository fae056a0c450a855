//! Digest authentication (RFC 2617, RFC 8760) of devices that sign in and
//! of callers that are not a trunk: checking credentials against the
//! directory, and challenging with one header per offered algorithm.
//!
//! Nonces are stateless (an HMAC of their time and the realm), so a
//! challenge holds nothing in the engine.

use std::time::Instant;

use sip::auth::{self, NonceStatus};
use sip::build::{reason_phrase, response_to};
use sip::{HeaderName, Message};

use crate::{Backend, Engine};

/// The result of checking a request's credentials.
pub(crate) enum AuthOutcome {
    /// Valid credentials of this user id, over this nonce and count (to
    /// check against replays with [`Engine::accept_credentials`]).
    User {
        id: String,
        nonce: String,
        nc: Option<u32>,
    },
    /// No credentials (or a stale nonce): send a challenge.
    Challenge { stale: bool },
    /// Credentials that do not verify, for an unknown user or a wrong
    /// password alike (no user enumeration): the user name they gave and
    /// the reason, for the log only.
    Forbidden { user: String, reason: &'static str },
}

impl<B: Backend> Engine<B> {
    /// Checks `Authorization` (or `Proxy-Authorization`) against the
    /// directory. Unknown users are verified against a dummy secret so that
    /// they cost the same as a wrong password.
    pub(crate) fn authenticate(
        &self,
        now: Instant,
        request: &Message,
        header: HeaderName,
        source: std::net::IpAddr,
    ) -> AuthOutcome {
        // Nonces are bound to the address they were issued to: a captured
        // Authorization replayed from elsewhere does not verify.
        let bound = nonce_scope(&self.cfg.domain, source);
        let realm = self.cfg.domain.as_str();
        let method = request.method().map(|m| m.as_str()).unwrap_or("");
        let now_unix = self.clock.unix_ms(now) / 1000;
        let workspace = self.workspace.load();
        let mut stale = false;
        for value in request.header_lines(header) {
            let Ok(creds) = auth::parse_credentials(value) else {
                continue;
            };
            if creds.realm != realm {
                continue;
            }
            // An algorithm we did not offer is not a wrong password: the
            // client gets a fresh challenge with the ones we do.
            if !self.cfg.digest_algorithms.contains(&creds.algorithm) {
                continue;
            }
            // Only an answer to a challenge we sent to this address counts:
            // a nonce is bound to the address, so a sender that did not get
            // our challenge (a spoofed source) gets a fresh one, and is
            // neither refused nor counted toward a ban.
            let nonce = self.nonces.check(&creds.nonce, &bound, now_unix);
            // Credentials computed for another request line (captured from
            // a REGISTER and put in an INVITE, say) are not this request's.
            if self.cfg.digest_uri_check
                && !request
                    .request_uri()
                    .is_some_and(|r| sip::header::uri_eq(&creds.uri, r))
            {
                continue;
            }
            let user = workspace
                .directory
                .user_index(&creds.username)
                .map(|i| workspace.directory.user(i));
            let stored = user.and_then(|u| match creds.algorithm {
                auth::Algorithm::Md5 => u.ha1_md5.clone(),
                auth::Algorithm::Sha256 => u.ha1_sha256.clone(),
            });
            // Unknown users (and users without a credential for this
            // algorithm) are checked against a dummy secret: same cost.
            let ha1 = stored.unwrap_or_else(|| {
                let password = user
                    .map(|u| u.password.as_str())
                    .filter(|p| !p.is_empty())
                    .unwrap_or("\u{0}no-such-user");
                auth::ha1(creds.algorithm, &creds.username, realm, password)
            });
            let has_secret = user.is_some_and(|u| {
                !u.password.is_empty()
                    || match creds.algorithm {
                        auth::Algorithm::Md5 => u.ha1_md5.is_some(),
                        auth::Algorithm::Sha256 => u.ha1_sha256.is_some(),
                    }
            });
            let correct = auth::verify(&creds, method, &ha1) && has_secret;
            // An invited or deactivated user's right password must not
            // confirm itself: it is answered like a wrong one, everywhere.
            let active = user.is_some_and(|u| u.status == directory::UserStatus::Active);
            let verified = correct && active;
            match nonce {
                NonceStatus::Valid if verified => {
                    return AuthOutcome::User {
                        id: creds.username.to_string(),
                        nonce: creds.nonce.to_string(),
                        nc: creds.nc,
                    }
                }
                NonceStatus::Valid => {
                    let reason = if user.is_none() {
                        "unknown user"
                    } else if !has_secret {
                        "no credential for this algorithm"
                    } else if correct {
                        "account not active"
                    } else {
                        "wrong password"
                    };
                    return AuthOutcome::Forbidden {
                        user: creds.username.to_string(),
                        reason,
                    };
                }
                // RFC 2617 §3.2.1: a good response over an old nonce (stale,
                // or from before a restart) earns a fresh challenge; any
                // other answer over a nonce not ours for this address, a
                // plain one (the same for every user and password).
                NonceStatus::Stale if verified => stale = true,
                NonceStatus::Stale | NonceStatus::Invalid => {}
            }
        }
        AuthOutcome::Challenge { stale }
    }

    /// Valid credentials are used once: a nonce's count (`nc`) must grow
    /// from one request to the next (a nonce without `qop` serves once).
    /// A replay turns into a fresh challenge, which only the holder of the
    /// secret can answer.
    pub(crate) fn accept_credentials(&mut self, now: Instant, outcome: AuthOutcome) -> AuthOutcome {
        let AuthOutcome::User { id, nonce, nc } = outcome else {
            return outcome;
        };
        let now_unix = self.clock.unix_ms(now) / 1000;
        let lifetime = self.cfg.nonce_lifetime.as_secs();
        if self.replays.accept(&nonce, nc, now_unix, lifetime) {
            AuthOutcome::User { id, nonce, nc }
        } else {
            tracing::info!(user = %id, "credentials used again (a replay, or a client that does not count): challenged");
            AuthOutcome::Challenge { stale: true }
        }
    }

    /// Answers a request that has no transaction with 401 or 407 and a
    /// challenge per offered algorithm, statelessly: nothing is kept and
    /// nothing retransmitted (a client that retransmits gets another), so
    /// unauthenticated traffic can neither grow memory nor be amplified.
    pub(crate) fn challenge_stateless(
        &mut self,
        now: Instant,
        from: sip::transaction::Peer,
        request: &Message,
        status: u16,
        stale: bool,
    ) {
        let realm = self.cfg.domain.clone();
        let nonce = self.nonces.issue(
            &nonce_scope(&realm, from.addr.ip()),
            self.clock.unix_ms(now) / 1000,
        );
        let tag = self.ids.tag();
        let mut reply = response_to(request, status, reason_phrase(status), Some(&tag), false);
        let (header, answer) = if status == 407 {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        } else {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        };
        // Some clients (baresip 1.0) give up on a challenge that names an
        // algorithm they do not know and ask again without credentials, in
        // the same Call-ID: such a retry right after a challenge of several
        // gets MD5 alone (when offered), which every client speaks.
        let unanswered = request.header(answer).is_none();
        let dialog = (from.addr.ip(), request.call_id().unwrap_or(""));
        let md5_only = unanswered
            && self.cfg.digest_algorithms.len() > 1
            && self.cfg.digest_algorithms.contains(&auth::Algorithm::Md5)
            && self.multi_challenged.recent(now, dialog);
        if md5_only {
            reply.push(
                header,
                &auth::challenge(&realm, &nonce, auth::Algorithm::Md5, stale),
            );
        } else {
            for &algorithm in &self.cfg.digest_algorithms {
                reply.push(header, &auth::challenge(&realm, &nonce, algorithm, stale));
            }
            if self.cfg.digest_algorithms.len() > 1 {
                self.multi_challenged.note(now, dialog);
            }
        }
        self.send_stateless(from, request, &reply);
    }

    /// A stateless refusal (403) of a request with no transaction.
    pub(crate) fn refuse_stateless(
        &mut self,
        from: sip::transaction::Peer,
        request: &Message,
        status: u16,
    ) {
        let tag = self.ids.tag();
        let mut reply = response_to(request, status, reason_phrase(status), Some(&tag), false);
        if request.method() == Some(&sip::Method::Invite) {
            // The same words for a wrong password, an unknown user and an
            // inactive one: nothing to tell them apart by.
            reply.push_other(
                "Warning",
                &format!("399 {} \"Wrong user name or password\"", self.cfg.domain),
            );
        }
        self.send_stateless(from, request, &reply);
    }
}

/// What a nonce is bound to: the realm and the client's address.
fn nonce_scope(realm: &str, source: std::net::IpAddr) -> String {
    format!("{realm}\u{0}{source}")
}

/// Nonces most tracked at once; past it the expired ones are forgotten
/// (and, if all are live, tracking starts again rather than refusing
/// every client).
const MAX_TRACKED_NONCES: usize = 1 << 20;

/// The highest `nc` seen per nonce, while nonces live.
#[derive(Default)]
pub(crate) struct Replays {
    seen: std::collections::HashMap<Box<str>, (u32, u64)>,
}

impl Replays {
    /// Whether credentials over `nonce` with `nc` are new.
    pub(crate) fn accept(
        &mut self,
        nonce: &str,
        nc: Option<u32>,
        now_unix: u64,
        lifetime: u64,
    ) -> bool {
        if self.seen.len() >= MAX_TRACKED_NONCES {
            self.seen
                .retain(|_, (_, first)| now_unix.saturating_sub(*first) <= lifetime);
            if self.seen.len() >= MAX_TRACKED_NONCES {
                tracing::warn!("too many live nonces to track: replay tracking restarts");
                self.seen.clear();
            }
        }
        match self.seen.get_mut(nonce) {
            Some((max, _)) => match nc {
                Some(n) if n > *max => {
                    *max = n;
                    true
                }
                _ => false,
            },
            None => {
                self.seen.insert(nonce.into(), (nc.unwrap_or(0), now_unix));
                true
            }
        }
    }
}

/// Sources sent a challenge of several algorithms, and when, for the
/// MD5-only fallback. Bounded: past its size it starts again.
#[derive(Default)]
pub(crate) struct MultiChallenged {
    /// By source address and a hash of the Call-ID (a peer chooses the
    /// Call-ID: its length must not decide what is kept).
    at: std::collections::HashMap<(std::net::IpAddr, u64), Instant>,
}

/// How soon an unanswered retry counts as a client that gave up.
const FALLBACK_WINDOW: std::time::Duration = std::time::Duration::from_secs(32);
const MAX_FALLBACK_SOURCES: usize = 16_384;

impl MultiChallenged {
    fn key((ip, call_id): (std::net::IpAddr, &str)) -> (std::net::IpAddr, u64) {
        // FNV-1a: collisions only cost an MD5-only challenge.
        let hash = call_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        (ip, hash)
    }

    fn recent(&self, now: Instant, dialog: (std::net::IpAddr, &str)) -> bool {
        self.at
            .get(&Self::key(dialog))
            .is_some_and(|t| now.saturating_duration_since(*t) < FALLBACK_WINDOW)
    }

    fn note(&mut self, now: Instant, dialog: (std::net::IpAddr, &str)) {
        let key = Self::key(dialog);
        if self.at.len() >= MAX_FALLBACK_SOURCES && !self.at.contains_key(&key) {
            self.at
                .retain(|_, t| now.saturating_duration_since(*t) < FALLBACK_WINDOW);
            if self.at.len() >= MAX_FALLBACK_SOURCES {
                self.at.clear();
            }
        }
        self.at.insert(key, now);
    }
}
