//! The SIP engine: registrar and B2BUA on top of the transaction layer.
//! Sans-IO like the `sip` crate: the driver feeds datagrams and timeouts with
//! the time, and sends what [`Engine::poll_transmit`] yields.
//!
//! One engine owns every transaction and call; the driver runs it on one
//! task, so the call path takes no lock at all. Routing reads the directory
//! snapshot and the users' live state, which other tasks (persistence, later
//! the admin API) share through `ArcSwap` and atomics.

mod b2bua;
mod registrar;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use directory::Directory;
use presence::{Presence, PresenceView};
use sip::auth::NonceIssuer;
use sip::build::{reason_phrase, response_to};
use sip::ids::IdGenerator;
use sip::transaction::{
    Output, Peer, RequestMatch, TimerConfig, Transactions, Transmit, Transport, TxEvent, TxId,
};
use sip::validate::check_request;
use sip::{HeaderName, Message, Method};

pub use b2bua::CallCounts;

/// The compiled directory and the live state aligned with it. Swapped as one
/// so that user indices and presence slots always agree.
#[derive(Debug)]
pub struct Workspace {
    pub directory: Directory,
    pub presence: PresenceView,
}

impl Workspace {
    pub fn new(directory: Directory, presence: &Presence) -> Workspace {
        let view = presence.view(&directory);
        Workspace {
            directory,
            presence: view,
        }
    }
}

/// What the engine needs to know about its surroundings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Digest realm and the host part of user addresses.
    pub domain: String,
    /// Our UDP address as written in Via and Contact.
    pub udp_addr: Option<SocketAddr>,
    /// Our TCP address as written in Via and Contact.
    pub tcp_addr: Option<SocketAddr>,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub timers: TimerConfig,
    /// How long a digest nonce stays valid.
    pub nonce_lifetime: Duration,
    /// Calls longer than this are ended (a guard against dead peers keeping
    /// users busy forever).
    pub max_call_duration: Duration,
    /// Devices per user.
    pub max_bindings_per_user: usize,
    /// Digest algorithms offered in challenges, most preferred first.
    pub digest_algorithms: Vec<sip::auth::Algorithm>,
    /// Transactions the tables hold before growing (growth pauses the
    /// engine). Each call leaves about four transactions for 64*T1 = 32 s,
    /// so 229,376 (a 2^18-bucket table) covers about 1,800 calls per second
    /// without a pause.
    pub transaction_capacity: usize,
}

impl EngineConfig {
    pub fn new(domain: &str) -> Self {
        EngineConfig {
            domain: domain.to_string(),
            udp_addr: None,
            tcp_addr: None,
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            timers: TimerConfig::default(),
            nonce_lifetime: Duration::from_secs(300),
            max_call_duration: Duration::from_secs(4 * 3600),
            max_bindings_per_user: 16,
            digest_algorithms: vec![sip::auth::Algorithm::Sha256, sip::auth::Algorithm::Md5],
            transaction_capacity: 1024,
        }
    }
}

/// Which part of the engine a transaction belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TxCtx {
    /// A server transaction answered on the spot (REGISTER, OPTIONS, errors).
    Plain,
    /// The caller's INVITE of a call.
    Inbound(b2bua::CallKey),
    /// An outbound INVITE to one device.
    Leg(b2bua::CallKey, u16),
    /// A request relayed from one side of a call to the other; the server
    /// transaction that waits for its answer.
    Relay(b2bua::CallKey, TxId),
    /// A request we originate whose answer does not matter (BYE, CANCEL).
    Fire,
}

/// Unix time in milliseconds at an engine instant.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    base: Instant,
    base_unix_ms: u64,
}

impl WallClock {
    pub fn new(base: Instant, base_unix_ms: u64) -> Self {
        WallClock { base, base_unix_ms }
    }

    pub fn unix_ms(&self, now: Instant) -> u64 {
        self.base_unix_ms + now.saturating_duration_since(self.base).as_millis() as u64
    }
}

/// The registrar and B2BUA.
pub struct Engine {
    cfg: EngineConfig,
    workspace: Arc<ArcSwap<Workspace>>,
    presence: Arc<Presence>,
    tl: Transactions<TxCtx>,
    ids: IdGenerator,
    nonces: NonceIssuer,
    clock: WallClock,
    calls: b2bua::Calls,
    out: VecDeque<Transmit>,
}

impl Engine {
    pub fn new(
        cfg: EngineConfig,
        workspace: Arc<ArcSwap<Workspace>>,
        presence: Arc<Presence>,
        clock: WallClock,
        mut ids: IdGenerator,
    ) -> Engine {
        let nonces = NonceIssuer::new(ids.secret(), cfg.nonce_lifetime);
        Engine {
            tl: Transactions::with_capacity(cfg.timers, cfg.transaction_capacity),
            cfg,
            workspace,
            presence,
            ids,
            nonces,
            clock,
            calls: b2bua::Calls::default(),
            out: VecDeque::new(),
        }
    }

    /// Bytes for the driver to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// When the driver must call [`Engine::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.tl.poll_timeout(), self.calls.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.tl.handle_timeout(now);
        self.drain(now);
        let due = self.calls.due_timers(now);
        for (key, timer) in due {
            self.on_call_timer(now, key, timer);
        }
        self.drain(now);
    }

    /// A stream connection closed: the devices registered over it are gone
    /// until they reconnect and register again.
    pub fn connection_closed(&mut self, now: Instant, connection: u64) {
        let dropped = self
            .presence
            .drop_connection(connection, self.now_unix_ms(now));
        if dropped > 0 {
            tracing::debug!(
                connection,
                dropped,
                "bindings of a closed connection removed"
            );
        }
    }

    /// Calls in progress, by state (for tests and metrics).
    pub fn call_counts(&self) -> CallCounts {
        self.calls.counts()
    }

    /// Live transactions (for tests and metrics).
    pub fn transaction_count(&self) -> usize {
        self.tl.len()
    }

    /// One datagram or framed stream message from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: Peer, bytes: Bytes) {
        match Message::parse_bytes(bytes.clone()) {
            Ok(message) => {
                if message.is_request() {
                    self.on_request(now, from, message);
                } else {
                    self.on_response(now, message);
                }
            }
            Err(sip::ParseError::Empty) => {}
            Err(error) => {
                tracing::debug!(peer = %from.addr, %error, "unparsable message");
                let status = if error == sip::ParseError::Version {
                    505
                } else if error == sip::ParseError::TooLarge {
                    513
                } else {
                    400
                };
                if let Some(reply) = salvage_error_response(&bytes, status, &error.to_string()) {
                    self.out.push_back(Transmit {
                        to: reply_peer_raw(from),
                        bytes: reply,
                    });
                }
            }
        }
        self.drain(now);
    }

    fn on_request(&mut self, now: Instant, from: Peer, mut request: Message) {
        let Some(method) = request.method().cloned() else {
            return;
        };
        if let Err(rejection) = check_request(&request) {
            if method != Method::Ack {
                let mut reply =
                    response_to(&request, rejection.status, &rejection.reason, None, false);
                if let Some(tags) = &rejection.unsupported {
                    reply.push(HeaderName::Unsupported, tags);
                }
                self.send_stateless(from, &request, &reply);
            }
            return;
        }
        stamp_received(&mut request, from);
        if self.tl.on_request(now, &request) == RequestMatch::Absorbed {
            return;
        }
        let in_dialog = request.to_tag().is_some();
        match method {
            Method::Ack => self.b2bua_ack(now, request),
            Method::Cancel => self.on_cancel(now, from, request),
            _ if request.max_forwards() == Some(0) && !in_dialog => {
                self.reply_new(now, from, request, 483, None);
            }
            Method::Register => self.on_register(now, from, request),
            Method::Invite if !in_dialog => self.b2bua_new_call(now, from, request),
            _ if in_dialog => self.b2bua_in_dialog(now, from, request),
            Method::Options => {
                let tx = self.tl.new_server(now, from, request, TxCtx::Plain);
                let Some(req) = self.tl.request(tx) else {
                    return;
                };
                let mut ok = response_to(req, 200, "OK", Some(&self.ids.tag()), false);
                ok.push(HeaderName::Allow, ALLOW_OUTSIDE_DIALOG);
                ok.push(HeaderName::Accept, "application/sdp");
                self.tl.respond(now, tx, &ok);
            }
            Method::Other(_) => self.reply_new(now, from, request, 501, None),
            _ => {
                let tx = self.tl.new_server(now, from, request, TxCtx::Plain);
                if let Some(req) = self.tl.request(tx) {
                    let mut reply =
                        response_to(req, 405, "Method Not Allowed", Some(&self.ids.tag()), false);
                    reply.push(HeaderName::Allow, ALLOW_OUTSIDE_DIALOG);
                    self.tl.respond(now, tx, &reply);
                }
            }
        }
    }

    fn on_response(&mut self, now: Instant, response: Message) {
        if let Some(stray) = self.tl.on_response(now, response) {
            self.b2bua_stray_response(now, stray);
        }
    }

    fn on_cancel(&mut self, now: Instant, from: Peer, cancel: Message) {
        let target = self.tl.find_invite_for_cancel(&cancel);
        let tx = self.tl.new_server(now, from, cancel, TxCtx::Plain);
        let status = if target.is_some() { 200 } else { 481 };
        self.respond_plain(now, tx, status);
        if let Some(invite_tx) = target {
            if let Some(TxCtx::Inbound(call)) = self.tl.context(invite_tx).copied() {
                self.b2bua_caller_cancelled(now, call);
            }
        }
    }

    /// Creates a server transaction and answers it at once with `status`.
    fn reply_new(
        &mut self,
        now: Instant,
        from: Peer,
        request: Message,
        status: u16,
        extra: Option<(HeaderName, &str)>,
    ) {
        let tx = self.tl.new_server(now, from, request, TxCtx::Plain);
        let Some(req) = self.tl.request(tx) else {
            return;
        };
        let mut reply = response_to(
            req,
            status,
            reason_phrase(status),
            Some(&self.ids.tag()),
            false,
        );
        if let Some((name, value)) = extra {
            reply.push(name, value);
        }
        self.tl.respond(now, tx, &reply);
    }

    fn respond_plain(&mut self, now: Instant, tx: TxId, status: u16) {
        let tag = self.ids.tag();
        if let Some(req) = self.tl.request(tx) {
            let reply = response_to(req, status, reason_phrase(status), Some(&tag), false);
            self.tl.respond(now, tx, &reply);
        }
    }

    /// A response without a transaction (to a request refused before one exists).
    fn send_stateless(&mut self, from: Peer, request: &Message, reply: &Message) {
        let to = reply_peer(from, request);
        self.out.push_back(Transmit {
            to,
            bytes: Bytes::from(reply.encode()),
        });
    }

    /// Moves everything the transaction layer produced to the driver, and
    /// hands its events to the registrar or the B2BUA.
    fn drain(&mut self, now: Instant) {
        while let Some(output) = self.tl.poll_output() {
            match output {
                Output::Transmit(t) => self.out.push_back(t),
                Output::Event(event) => self.on_tx_event(now, event),
            }
        }
    }

    fn on_tx_event(&mut self, now: Instant, event: TxEvent<TxCtx>) {
        match event {
            TxEvent::Provisional { tx, ctx, response } => {
                if let TxCtx::Leg(call, leg) = ctx {
                    self.b2bua_leg_provisional(now, tx, call, leg, response);
                }
            }
            TxEvent::Final { tx, ctx, response } => match ctx {
                TxCtx::Leg(call, leg) => self.b2bua_leg_final(now, tx, call, leg, response),
                TxCtx::Relay(call, server_tx) => {
                    self.b2bua_relay_final(now, call, server_tx, Some(response))
                }
                _ => {}
            },
            TxEvent::Retransmitted2xx { tx, ctx, response } => {
                if let TxCtx::Leg(call, leg) = ctx {
                    self.b2bua_leg_2xx_again(call, leg, tx, &response);
                } else if let TxCtx::Relay(call, _) = ctx {
                    self.b2bua_relay_2xx_again(call, tx);
                }
            }
            TxEvent::Timeout { tx, ctx } => match ctx {
                TxCtx::Leg(call, leg) => self.b2bua_leg_timeout(now, tx, call, leg),
                TxCtx::Relay(call, server_tx) => self.b2bua_relay_final(now, call, server_tx, None),
                _ => {}
            },
            TxEvent::AckTimeout { ctx, status, .. } => {
                if let (TxCtx::Inbound(call), 200..=299) = (ctx, status) {
                    self.b2bua_caller_never_acked(now, call);
                }
            }
        }
    }

    pub(crate) fn now_unix_ms(&self, now: Instant) -> u64 {
        self.clock.unix_ms(now)
    }

    /// Our Via sent-by and Contact host:port for a transport.
    fn local_addr(&self, transport: Transport) -> SocketAddr {
        local_addr_for(&self.cfg, transport)
    }
}

pub(crate) fn local_addr_for(cfg: &EngineConfig, transport: Transport) -> SocketAddr {
    let fallback: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 5060));
    match transport {
        Transport::Udp => cfg.udp_addr.or(cfg.tcp_addr).unwrap_or(fallback),
        Transport::Tcp(_) => cfg.tcp_addr.or(cfg.udp_addr).unwrap_or(fallback),
    }
}

/// Methods accepted outside a dialog (OPTIONS answers, 405s).
pub(crate) const ALLOW_OUTSIDE_DIALOG: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER";

/// Methods relayed inside a call (advertised in the INVITEs and 2xx of calls).
pub(crate) const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY, REFER, MESSAGE";

/// RFC 3261 §18.2.1 and RFC 3581: note where the request really came from in
/// its top Via, so every response retraces the path through NAT.
fn stamp_received(request: &mut Message, from: Peer) {
    let Some(via) = request.top_via() else {
        return;
    };
    let ip = from.addr.ip();
    let wants_rport = via.rport().is_some();
    let host_matches = sip::header::host_ip(via.host) == Some(ip);
    if host_matches && !wants_rport {
        return;
    }
    let mut value = String::with_capacity(96);
    value.push_str("SIP/2.0/");
    value.push_str(via.transport);
    value.push(' ');
    value.push_str(via.host);
    if let Some(port) = via.port {
        value.push(':');
        value.push_str(&port.to_string());
    }
    for (name, v) in via.params.iter() {
        if name.eq_ignore_ascii_case("received") || name.eq_ignore_ascii_case("rport") {
            continue;
        }
        value.push(';');
        value.push_str(name);
        if let Some(v) = v {
            value.push('=');
            value.push_str(v);
        }
    }
    value.push_str(";received=");
    value.push_str(&ip.to_string());
    if wants_rport {
        value.push_str(";rport=");
        value.push_str(&from.addr.port().to_string());
    }
    request.remove_first_value(HeaderName::Via);
    request.push_front(HeaderName::Via, &value);
}

/// Where a response to `request` goes (RFC 3261 §18.2.2, RFC 3581 §4): over
/// a stream, back on the connection; over UDP, to the source address, at the
/// source port when rport was asked for, else at the Via port.
pub(crate) fn reply_peer(from: Peer, request: &Message) -> Peer {
    if from.transport.is_reliable() {
        return from;
    }
    let Some(via) = request.top_via() else {
        return from;
    };
    if via.rport().is_some() {
        return from;
    }
    let port = via.port.unwrap_or(5060);
    Peer {
        transport: from.transport,
        addr: SocketAddr::new(from.addr.ip(), port),
    }
}

fn reply_peer_raw(from: Peer) -> Peer {
    from
}

/// Builds an error response for a request that did not parse, from its raw
/// Via, From, To, Call-ID and CSeq lines, so that the sender learns why
/// instead of retransmitting. `None` when the bytes are not a request or
/// miss what a response needs.
fn salvage_error_response(raw: &[u8], status: u16, reason: &str) -> Option<Bytes> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let first = lines.find(|l| !l.is_empty())?;
    if first.len() < 3
        || first
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        return None;
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"SIP/2.0 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    let clean: String = reason.chars().filter(|c| !c.is_control()).collect();
    out.extend_from_slice(clean.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut have = [false; 5];
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, _)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let slot = match name.to_ascii_lowercase().as_str() {
            "via" | "v" => 0,
            "from" | "f" => 1,
            "to" | "t" => 2,
            "call-id" | "i" => 3,
            "cseq" => 4,
            _ => continue,
        };
        have[slot] = true;
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !have.iter().all(|&h| h) {
        return None;
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests;
