//! The registrar (RFC 3261 §10.3): users sign their devices in, and the
//! bindings it keeps are where calls ring.
//!
//! It authenticates the REGISTER (see [`crate::auth`]), parses its Contacts
//! into one [`Register`] and hands that to the [`Registrations`] backend,
//! which applies it whole or not at all. It answers with the bindings after
//! the change and reports a change of devices as an event.

use std::collections::VecDeque;
use std::time::Instant;

use directory::UserStatus;
use presence::{
    BindError, BindingTransport, ContactUpdate, Register, RegisterChange, Registrations, UserRef,
};
use sip::build::response_to;
use sip::header::{parse_delta_seconds, NameAddr, Uri};
use sip::transaction::{Peer, Transport, TxId};
use sip::{HeaderName, Message};

use crate::auth::AuthOutcome;
use crate::{Backend, Engine, Event, TxCtx};

impl<B: Backend> Engine<B> {
    pub(crate) fn on_register(&mut self, now: Instant, from: Peer, request: Message) {
        // §10.3 step 1 comes before authentication: a domain that is not
        // ours is refused without a challenge. Refusals and challenges are
        // stateless: a transaction exists only once the credentials check out.
        if !self.our_domain(&request) {
            let to = request
                .to_header()
                .map(|t| t.uri.to_string())
                .unwrap_or_default();
            self.signin_log.refused(
                now,
                from.addr.ip(),
                &to,
                "REGISTER",
                "not this server's domain",
            );
            let tag = self.ids.tag();
            let reply = response_to(
                &request,
                404,
                "Not Found (not this server's domain)",
                Some(&tag),
                false,
            );
            self.send_stateless(from, &request, &reply);
            return;
        }
        let outcome = self.authenticate(now, &request, HeaderName::Authorization, from.addr.ip());
        let user_id = match self.accept_credentials(now, outcome) {
            AuthOutcome::User { id, .. } => id,
            AuthOutcome::Challenge { stale } => {
                self.challenge_stateless(now, from, &request, 401, stale);
                return;
            }
            AuthOutcome::Forbidden { user, reason } => {
                self.signin_log
                    .refused(now, from.addr.ip(), &user, "REGISTER", reason);
                self.auth_failed(now, from.addr.ip());
                self.refuse_stateless(from, &request, 403);
                return;
            }
        };
        let tx = self.tl.new_server(now, from, request, TxCtx::Plain);
        let result = self.apply_register(now, tx, from, &user_id);
        let refusal = match &result {
            Err(RegisterError::NotActive) => Some("account not active"),
            Err(RegisterError::WrongAor) => Some("To does not match the credentials"),
            Err(RegisterError::Store(BindError::TooMany)) => Some("too many devices"),
            _ => None,
        };
        if matches!(result, Err(RegisterError::Store(BindError::TooMany))) {
            let max = self.cfg.max_bindings_per_user;
            self.limit_hits
                .hit(now, crate::Limit::BindingsPerUser, max, max);
        }
        if let Some(reason) = refusal {
            self.signin_log
                .refused(now, from.addr.ip(), &user_id, "REGISTER", reason);
            self.auth_failed(now, from.addr.ip());
        }
        // §10.3 step 8: phones without a clock of their own set it from this.
        let date = self
            .clock
            .timestamp(now)
            .strftime("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
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
                ok.push(HeaderName::Date, &date);
                ok
            }
            Err(RegisterError::TooBrief) => {
                let mut r = response_to(req, 423, "Interval Too Brief", Some(&tag), false);
                r.push(HeaderName::MinExpires, &self.cfg.min_expires.to_string());
                r
            }
            // The same answer as a wrong password: the right password of
            // an invited or deactivated user must not confirm itself.
            Err(RegisterError::NotActive) => {
                response_to(req, 403, sip::build::reason_phrase(403), Some(&tag), false)
            }
            Err(RegisterError::WrongAor) => response_to(
                req,
                403,
                "Forbidden (To does not match the credentials)",
                Some(&tag),
                false,
            ),
            Err(RegisterError::BadRequest(why)) => response_to(req, 400, why, Some(&tag), false),
            Err(RegisterError::Store(BindError::OutOfOrder)) => {
                response_to(req, 500, "Out Of Order Registration", Some(&tag), false)
            }
            Err(RegisterError::Store(BindError::TooMany)) => {
                response_to(req, 403, "Forbidden (too many devices)", Some(&tag), false)
            }
        };
        if self.cfg.durable_registrations && reply.status() == Some(200) {
            // Held in Trying (a retransmission is absorbed, not answered)
            // until the binding is on disk.
            let through = self.awaiting_disk.hold(tx, reply);
            self.out.push_back(crate::Output::Persist { through });
            return;
        }
        self.tl.respond(now, tx, &reply);
    }

    /// The driver made every change up to `through` durable (or failed to).
    pub(crate) fn on_persisted(&mut self, now: Instant, through: u64, saved: bool) {
        while let Some((tx, reply)) = self.awaiting_disk.release(through) {
            if saved {
                self.tl.respond(now, tx, &reply);
            } else {
                // The binding stays in memory and is written at the next
                // attempt; the phone is told it may not be durable yet.
                let Some(req) = self.tl.request(tx) else {
                    continue;
                };
                let tag = self.ids.tag();
                let mut refused = response_to(
                    req,
                    500,
                    "Server Internal Error (registration not saved)",
                    Some(&tag),
                    false,
                );
                refused.push(HeaderName::RetryAfter, "5");
                self.tl.respond(now, tx, &refused);
            }
        }
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
        let workspace = self.workspace.load_full();
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
        let header_expires = req
            .header(HeaderName::Expires)
            .and_then(parse_delta_seconds);

        let mut contacts: Vec<ContactUpdate> = Vec::new();
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
            // RFC 5626 §6: reg-id counts only with an instance (without one,
            // RFC 3261's rules apply).
            let reg_id = instance.as_ref().and_then(|_| {
                contact
                    .params
                    .get("reg-id")
                    .flatten()
                    .and_then(|v| v.parse::<u32>().ok())
                    // 1 to 2^31-1 (RFC 5626 §4.2): anything else is no flow.
                    .filter(|id| (1..=0x7FFF_FFFF).contains(id))
            });
            contacts.push(ContactUpdate {
                uri: contact.uri.to_string(),
                instance,
                reg_id,
                expires_secs: expires.min(self.cfg.max_expires),
            });
        }
        let change = if wildcard {
            // §10.3 step 6: `*` only alone and with Expires: 0.
            if !contacts.is_empty() || header_expires != Some(0) {
                return Err(RegisterError::BadRequest(
                    "Wildcard Contact needs Expires: 0 and no other Contact",
                ));
            }
            RegisterChange::RemoveAll
        } else if contacts.is_empty() {
            RegisterChange::Fetch
        } else {
            RegisterChange::Contacts(contacts)
        };
        let register = Register {
            call_id: req.call_id().unwrap_or("").to_string(),
            cseq: req.cseq().map(|c| c.seq).unwrap_or(0),
            source: from.addr,
            transport: match from.transport {
                Transport::Udp => BindingTransport::Udp,
                Transport::Tcp(id) => BindingTransport::Tcp {
                    connection: Some(id),
                },
                Transport::TcpConnect => BindingTransport::Tcp { connection: None },
                Transport::Tls(id) => BindingTransport::Tls {
                    connection: Some(id),
                },
            },
            max_bindings: self.cfg.max_bindings_per_user,
            change,
        };
        let now_ms = self.clock.unix_ms(now);
        let who = UserRef {
            idx: user_idx,
            id: user_id,
        };
        let bound = workspace
            .presence
            .bind(who, &register, now_ms)
            .map_err(RegisterError::Store)?;
        self.counters.registrations += 1;
        if bound.devices_changed {
            let contacts: Vec<&str> = bound.bindings.iter().map(|b| b.contact.as_str()).collect();
            let transport = match from.transport {
                Transport::Udp => "udp",
                Transport::Tcp(_) | Transport::TcpConnect => "tcp",
                Transport::Tls(_) => "tls",
            };
            self.signin_log
                .changed(now, from.addr, user_id, transport, &contacts);
            self.emit(Event::RegistrationChanged {
                user: user_id.into(),
                devices: bound.bindings.len(),
            });
        }
        Ok(bound
            .bindings
            .iter()
            .map(|b| {
                let left = b.expires_at_ms.saturating_sub(now_ms).div_ceil(1000);
                let mut value = format!("<{}>;expires={left}", b.contact);
                // RFC 5626 §6: the 200 names each flow as it was registered.
                if let Some(instance) = &b.instance {
                    value.push_str(";+sip.instance=\"");
                    value.push_str(instance);
                    value.push('"');
                    if let Some(reg_id) = b.reg_id {
                        value.push_str(";reg-id=");
                        value.push_str(&reg_id.to_string());
                    }
                }
                value
            })
            .collect())
    }
}

impl<B: Backend> Engine<B> {
    /// §10.3 steps 1 and 3: the Request-URI and the address of record name
    /// our domain (or this server by an IP: phones often use the address).
    fn our_domain(&self, req: &Message) -> bool {
        let ours = |uri: Option<&str>| {
            uri.and_then(|u| Uri::parse(u).ok()).is_none_or(|u| {
                u.host.eq_ignore_ascii_case(&self.cfg.domain)
                    || sip::header::host_ip(u.host).is_some()
            })
        };
        ours(req.request_uri()) && ours(req.to_header().map(|t| t.uri))
    }
}

/// REGISTER answers held until the driver says their binding is durable,
/// in the order they were made (a batch is released by its last number).
#[derive(Default)]
pub(crate) struct AwaitingDisk {
    held: VecDeque<(u64, TxId, Message)>,
    last: u64,
}

impl AwaitingDisk {
    /// Holds an answer; returns the number that releases it.
    fn hold(&mut self, tx: TxId, reply: Message) -> u64 {
        self.last += 1;
        self.held.push_back((self.last, tx, reply));
        self.last
    }

    /// The oldest answer covered by `through`.
    fn release(&mut self, through: u64) -> Option<(TxId, Message)> {
        if self.held.front().is_some_and(|(n, _, _)| *n <= through) {
            self.held.pop_front().map(|(_, tx, reply)| (tx, reply))
        } else {
            None
        }
    }
}

enum RegisterError {
    TooBrief,
    NotActive,
    WrongAor,
    Store(BindError),
    BadRequest(&'static str),
}
