//! The call engine: registrar and B2BUA on top of the `sip` transaction
//! layer. It owns every transaction and call of one daemon.
//!
//! Sans-IO, str0m's shape: the driver calls [`Engine::handle_input`] with
//! the time and what happened (a datagram, a timeout, a closed connection),
//! [`Engine::handle_command`] for changes from outside (a new workspace,
//! a request for counters), then drains [`Engine::poll_output`] until it
//! returns [`Output::Timeout`]: bytes to send, [`Event`]s for other tasks
//! (call records, registration and busy changes), and when to wake it next.
//!
//! What it must not do: IO, read a clock, or depend on tokio. The time comes
//! in as an `Instant` and a [`WallClock`] that maps it to a Unix timestamp.
//!
//! Modules: [`registrar`] (REGISTER), [`auth`] (digest auth of callers and
//! devices), [`addressing`] (where to send: Via, NAT, our own addresses),
//! [`call`] (the call table, forking a tier, relaying in a dialog, the one
//! exit of a call) and [`events`] (what leaves the engine).

mod addressing;
mod auth;
mod call;
pub mod events;
mod guard;
pub mod limits;
pub mod media;
mod registrar;
#[cfg(any(test, feature = "fuzzing"))]
pub mod replay;
mod signin_log;
mod unreachable;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use directory::Directory;
use jiff::Timestamp;
use presence::{Backend, Presence, PresenceView, Registrations};
use sip::auth::NonceIssuer;
use sip::build::{reason_phrase, response_to, salvage_error_response};
use sip::ids::IdGenerator;
use sip::transaction::{
    Output as TxOutput, Peer, RequestMatch, TimerConfig, Transactions, Transmit, Transport,
    TxEvent, TxId,
};
use sip::validate::check_request;
use sip::{HeaderName, Message, Method};

pub use events::{
    CallInfo, CallOutcome, CallRecord, Command, CommandError, CommandReply, Direction, Event,
    LegOutcome, Party, RingAttempt, Skipped, Stats,
};
pub use guard::BanInfo;
pub use limits::{Limit, LimitCounts};
pub use sip::auth::Algorithm as DigestAlgorithm;

pub use call::CallCounts;
use call::{CallKey, Calls, LegId};

/// The compiled directory and the live state aligned with it. Swapped as one
/// so that user indices and presence slots always agree; a call keeps the
/// one it was routed with until it ends.
#[derive(Debug)]
pub struct Workspace<V = PresenceView> {
    pub directory: Directory,
    pub presence: V,
}

impl<V> Workspace<V> {
    pub fn new<B: Backend<View = V>>(directory: Directory, backend: &B) -> Workspace<V> {
        Workspace {
            presence: backend.view(&directory),
            directory,
        }
    }
}

/// The workspace new calls are routed with, for readers on other tasks:
/// they load it, and only [`Command::ReplaceWorkspace`] changes it.
#[derive(Debug)]
pub struct WorkspaceReader<V = PresenceView>(Arc<ArcSwap<Workspace<V>>>);

impl<V> Clone for WorkspaceReader<V> {
    fn clone(&self) -> Self {
        WorkspaceReader(Arc::clone(&self.0))
    }
}

impl<V> WorkspaceReader<V> {
    /// The current snapshot (a call up keeps the one it was routed with).
    pub fn load(&self) -> Arc<Workspace<V>> {
        self.0.load_full()
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
    /// The TLS listener's advertised address, when there is one.
    pub tls_addr: Option<SocketAddr>,
    /// Live transactions past which new INVITEs get 503: first those of
    /// the sources filling the table, past a quarter more every one, past
    /// half more new REGISTERs too. Overload is shed, and the calls up keep
    /// their in-dialog requests and responses.
    pub overload_transactions: usize,
    /// A side of an answered call that vanished without a BYE is noticed
    /// within this: by its session timer (this interval, at least 90 s)
    /// where it supports one, else by in-dialog OPTIONS every half of it;
    /// on anchored media, also by no RTP for this long.
    pub liveness_timeout: Duration,
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
    /// Calls in progress at once; past it new INVITEs get 503.
    pub max_calls: usize,
    /// Legs one call may make over its whole life (every device of every
    /// step); past it no more are rung.
    pub max_legs_per_call: usize,
    /// Digest algorithms offered in challenges, most preferred first.
    pub digest_algorithms: Vec<DigestAlgorithm>,
    /// The digest `uri` must name the Request-URI (RFC 7616 §3.4.6); off
    /// only for clients that put something else there.
    pub digest_uri_check: bool,
    /// Transactions the tables hold before growing (growth pauses the
    /// engine). Each call leaves about four transactions for 64*T1 = 32 s,
    /// so 229,376 (a 2^18-bucket table) covers about 1,800 calls per second
    /// without a pause.
    pub transaction_capacity: usize,
    /// A REGISTER's `200 OK` waits until the driver reports the binding
    /// durable ([`Output::Persist`], then [`Input::Persisted`]): a
    /// registration acknowledged is never lost to a crash. Off, the 200 goes
    /// at once (tests, and a driver without a store).
    pub durable_registrations: bool,
}

impl EngineConfig {
    pub fn new(domain: &str) -> Self {
        EngineConfig {
            domain: domain.to_string(),
            udp_addr: None,
            tcp_addr: None,
            tls_addr: None,
            liveness_timeout: Duration::from_secs(120),
            overload_transactions: 500_000,
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            timers: TimerConfig::default(),
            nonce_lifetime: Duration::from_secs(300),
            max_call_duration: Duration::from_secs(4 * 3600),
            max_bindings_per_user: 16,
            max_calls: 50_000,
            max_legs_per_call: 100,
            digest_algorithms: vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
            digest_uri_check: true,
            transaction_capacity: 1024,
            durable_registrations: false,
        }
    }
}

/// What happened, handed to [`Engine::handle_input`].
#[derive(Clone, Debug)]
pub enum Input {
    /// One datagram, or one framed message of a stream, from `from`.
    Receive { from: Peer, bytes: Bytes },
    /// A deadline the engine asked for has come (or any time: timers that
    /// are not due do nothing).
    Timeout,
    /// A stream connection closed: the devices registered over it are gone
    /// until they reconnect and register again (RFC 5626 §5.5).
    ConnectionClosed { connection: u64 },
    /// A connection the driver tried to open for [`Transport::TcpConnect`]
    /// to `to` failed: what was sent there fails now, not at its timeout.
    ///
    /// [`Transport::TcpConnect`]: sip::transaction::Transport::TcpConnect
    ConnectFailed { to: SocketAddr },
    /// ICMP said nothing takes UDP datagrams at `to` (port or host
    /// unreachable): what waits for an answer from there fails now, not at
    /// its timeout (RFC 3261 §17.1.4). A budget bounds how often a report
    /// can make the engine look.
    Unreachable { to: SocketAddr },
    /// What the media runtime reports for a session.
    Media(media::MediaEvent),
    /// Every registration change up to [`Output::Persist`]'s `through` is on
    /// disk (`saved`), or writing it failed: the REGISTERs waiting for it get
    /// their `200 OK`, or a `500` they can retry.
    Persisted { through: u64, saved: bool },
}

/// What the engine asks of the driver, from [`Engine::poll_output`].
#[derive(Clone, Debug)]
pub enum Output {
    Transmit(Transmit),
    Event(Event),
    /// For the media runtime (sessions the daemon answers with).
    Media(media::MediaCommand),
    /// Registration changes are waiting to be made durable; once every
    /// change made so far is on disk, answer with [`Input::Persisted`] and
    /// this `through` (a later request covers the earlier ones: one write
    /// and one sync serve a whole batch).
    Persist {
        through: u64,
    },
    /// Nothing more to do now: call `handle_input(.., Input::Timeout)` at
    /// this instant (`None`: no timer armed).
    Timeout(Option<Instant>),
}

/// Maps engine instants to wall-clock time, for registrations (whose
/// expiries must mean the same after a restart), digest nonces and call
/// records. The driver builds it from its one clock read at start.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    base: Instant,
    base_time: Timestamp,
}

impl WallClock {
    pub fn new(base: Instant, base_time: Timestamp) -> Self {
        WallClock { base, base_time }
    }

    /// The wall-clock time at an engine instant.
    pub fn timestamp(&self, now: Instant) -> Timestamp {
        let since = now.saturating_duration_since(self.base);
        self.base_time
            .checked_add(jiff::SignedDuration::try_from(since).unwrap_or_default())
            .unwrap_or(self.base_time)
    }

    /// Unix milliseconds at an engine instant.
    pub fn unix_ms(&self, now: Instant) -> u64 {
        routing::unix_ms(self.timestamp(now))
    }
}

/// Which part of the engine a transaction belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TxCtx {
    /// A server transaction answered on the spot (REGISTER, OPTIONS, errors).
    Plain,
    /// The caller's INVITE of a call.
    Inbound(CallKey),
    /// An outbound INVITE of one leg.
    Leg(CallKey, LegId),
    /// A request relayed from one side of a call to the other; the server
    /// transaction that waits for its answer.
    Relay(CallKey, TxId),
    /// A re-INVITE from one side, waiting for the other side's answer (and
    /// then for its own ACK).
    ReInvite(CallKey),
    /// A request we originate whose answer does not matter (BYE, CANCEL).
    Fire,
    /// A liveness probe (in-dialog OPTIONS) to one side of a call.
    Probe(CallKey, call::Side),
}

/// The registrar and B2BUA, over a presence backend (the local one unless
/// said otherwise).
pub struct Engine<B: Backend = Arc<Presence>> {
    cfg: EngineConfig,
    workspace: Arc<ArcSwap<Workspace<B::View>>>,
    presence: B,
    tl: Transactions<TxCtx>,
    ids: IdGenerator,
    nonces: NonceIssuer,
    clock: WallClock,
    calls: Calls<B::View>,
    out: VecDeque<Output>,
    counters: events::Counters,
    /// Added to a call's key to name its busy lease: random per engine, so
    /// that leases of two nodes (or two runs) on a shared store never meet.
    lease_base: u64,
    /// RTP ports for the sessions the daemon answers with.
    media_ports: media::Ports,
    signin_log: signin_log::SignInLog,
    guard: guard::Guard,
    replays: auth::Replays,
    /// Set while the daemon stops: the `Retry-After` new calls get with 503.
    draining: Option<u32>,
    /// Each limit reached: counted, logged once a minute.
    limit_hits: limits::LimitHits,
    multi_challenged: auth::MultiChallenged,
    /// REGISTER answers waiting for their binding to be durable.
    awaiting_disk: registrar::AwaitingDisk,
    unreachable: unreachable::UnreachableBudget,
    heavy_sources: limits::HeavySources,
}

impl<B: Backend> Engine<B> {
    pub fn new(
        cfg: EngineConfig,
        directory: Directory,
        presence: B,
        clock: WallClock,
        mut ids: IdGenerator,
    ) -> Self {
        let nonces = NonceIssuer::new(ids.secret(), cfg.nonce_lifetime);
        let lease_base = ids.u64();
        let workspace = Arc::new(ArcSwap::from_pointee(Workspace::new(directory, &presence)));
        Self {
            tl: Transactions::with_capacity(cfg.timers, cfg.transaction_capacity),
            cfg,
            workspace,
            presence,
            ids,
            nonces,
            clock,
            calls: Calls::default(),
            out: VecDeque::new(),
            counters: events::Counters::default(),
            lease_base,
            media_ports: media::Ports::default(),
            signin_log: signin_log::SignInLog::default(),
            guard: guard::Guard::default(),
            replays: auth::Replays::default(),
            draining: None,
            limit_hits: limits::LimitHits::default(),
            multi_challenged: auth::MultiChallenged::default(),
            awaiting_disk: registrar::AwaitingDisk::default(),
            unreachable: unreachable::UnreachableBudget::default(),
            heavy_sources: limits::HeavySources::default(),
        }
    }

    /// The workspace new calls are routed with, for readers on other tasks.
    pub fn workspace(&self) -> WorkspaceReader<B::View> {
        WorkspaceReader(Arc::clone(&self.workspace))
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Output {
        self.out
            .pop_front()
            .unwrap_or_else(|| Output::Timeout(self.next_timeout()))
    }

    fn next_timeout(&self) -> Option<Instant> {
        match (self.tl.poll_timeout(), self.calls.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The live transactions, one line each (for tests and debugging).
    pub fn describe_transactions(&self) -> Vec<String> {
        self.tl.describe()
    }

    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Receive { from, bytes } => self.on_datagram(now, from, bytes),
            Input::Timeout => self.on_timeout(now),
            Input::ConnectionClosed { connection } => self.on_connection_closed(now, connection),
            Input::Media(event) => {
                self.on_media_event(now, event);
                self.drain(now);
            }
            Input::Persisted { through, saved } => {
                self.on_persisted(now, through, saved);
                self.drain(now);
            }
            Input::ConnectFailed { to } => {
                self.tl.transport_error(Peer {
                    transport: sip::transaction::Transport::TcpConnect,
                    addr: to,
                });
                self.drain(now);
            }
            Input::Unreachable { to } => {
                if self.unreachable.take(now) {
                    tracing::debug!(%to, "ICMP: unreachable, its transactions fail");
                    self.tl.transport_error(Peer {
                        transport: sip::transaction::Transport::Udp,
                        addr: to,
                    });
                    self.drain(now);
                }
            }
        }
    }

    /// A change from outside the engine (the admin API, a reload, the
    /// driver's metrics), applied between two inputs.
    pub fn handle_command(
        &mut self,
        now: Instant,
        command: Command,
    ) -> Result<CommandReply, CommandError> {
        match command {
            Command::ReplaceWorkspace(directory) => {
                // Every registration's digest and every user address is
                // bound to the realm: it cannot change under live devices.
                if directory.domain() != self.cfg.domain {
                    return Err(CommandError::DomainChanged {
                        running: self.cfg.domain.clone(),
                        requested: directory.domain().to_string(),
                    });
                }
                let users = directory.users().len();
                let numbers = directory.numbers().len();
                self.workspace
                    .store(Arc::new(Workspace::new(directory, &self.presence)));
                tracing::info!(
                    users,
                    numbers,
                    calls_up = self.calls.len(),
                    "workspace replaced"
                );
                Ok(CommandReply::WorkspaceReplaced {
                    calls_up: self.calls.len(),
                })
            }
            Command::Stats => Ok(CommandReply::Stats(self.stats(now))),
            Command::Drain { retry_after_secs } => {
                self.draining = Some(retry_after_secs);
                tracing::info!(calls = self.calls.len(), "draining: new calls get 503");
                Ok(CommandReply::Draining {
                    calls: self.calls.len(),
                })
            }
            Command::HangUpAll => {
                let calls = self.hang_up_all(now);
                self.drain(now);
                Ok(CommandReply::HungUp { calls })
            }
            Command::Calls => Ok(CommandReply::Calls(
                self.calls.iter().map(call::info).collect(),
            )),
            Command::Bans => Ok(CommandReply::Bans(self.guard.list(now))),
            Command::Unban(ip) => {
                let lifted = self.guard.lift(now, ip);
                if lifted {
                    tracing::info!(source = %ip, "ban lifted");
                }
                Ok(CommandReply::Unbanned(lifted))
            }
        }
    }

    /// Calls in progress, by state.
    pub fn call_counts(&self) -> call::CallCounts {
        self.calls.counts()
    }

    /// Live transactions (cheap: for the driver's slow-turn warning).
    pub fn transaction_count(&self) -> usize {
        self.tl.len()
    }

    /// Counters and gauges for tests and metrics. Counting registered
    /// devices walks every user: not for the call path.
    pub fn stats(&self, now: Instant) -> Stats {
        let counts = self.calls.counts();
        Stats {
            calls_ringing: counts.ringing,
            calls_answered: counts.answered,
            legs: counts.legs,
            call_timers: counts.timers,
            transactions: self.tl.len(),
            retransmissions: self.tl.retransmissions(),
            limit_hits: self.limit_hits.counts(),
            bans_active: self.guard.active(now),
            bans_total: self.guard.bans_total,
            banned_dropped: self.guard.dropped,
            calls_media: counts.media,
            legs_ringing: counts.legs_ringing,
            registered_devices: self
                .workspace
                .load()
                .presence
                .device_count(self.clock.unix_ms(now)),
            ..self.counters.snapshot()
        }
    }

    fn on_timeout(&mut self, now: Instant) {
        self.tl.handle_timeout(now);
        self.drain(now);
        for (key, timer) in self.calls.due_timers(now) {
            self.on_call_timer(now, key, timer);
        }
        self.drain(now);
    }

    fn on_connection_closed(&mut self, now: Instant, connection: u64) {
        let now_ms = self.clock.unix_ms(now);
        let workspace = self.workspace.load_full();
        for (user, devices) in workspace.presence.unbind_connection(connection, now_ms) {
            tracing::debug!(connection, %user, "bindings of a closed connection removed");
            self.emit(Event::RegistrationChanged { user, devices });
        }
        // Its transactions end (a leg ringing over it fails as on a
        // timeout), then every call with a side over it ends now rather
        // than when the other side hangs up.
        self.tl.connection_closed(Transport::Tcp(connection));
        self.tl.connection_closed(Transport::Tls(connection));
        self.drain(now);
        self.connection_lost(now, connection);
        self.drain(now);
    }

    fn on_datagram(&mut self, now: Instant, from: Peer, bytes: Bytes) {
        let ip = from.addr.ip().to_canonical();
        // A banned source gets no answer at all.
        if self.guard.is_banned(now, ip) {
            return;
        }
        if !bytes.starts_with(b"SIP/2.0 ") && !bytes.is_empty() {
            let workspace = self.workspace.load();
            if !workspace.directory.never_banned(ip) {
                let rules = workspace.directory.security();
                if self.guard.over_rate(now, ip, rules) {
                    return;
                }
            }
        }
        match Message::parse_bytes(bytes.clone()) {
            Ok(message) => {
                if message.is_request() {
                    self.on_request(now, from, message);
                } else {
                    self.on_response(now, from, message);
                }
            }
            Err(sip::ParseError::Empty) => {}
            Err(error) => {
                self.counters.parse_errors += 1;
                tracing::debug!(peer = %from.addr, %error, "unparsable message");
                let status = match error {
                    sip::ParseError::Version => 505,
                    sip::ParseError::TooLarge => 513,
                    _ => 400,
                };
                if let Some(reply) = salvage_error_response(&bytes, status, &error.to_string()) {
                    // Not parsed, so no Via to read: back where it came from.
                    self.transmit(from, reply);
                }
            }
        }
        self.drain(now);
    }

    /// An authentication failure from `ip` (a wrong password, an unknown
    /// or inactive user): counted toward a ban unless the source is trusted.
    pub(crate) fn auth_failed(&mut self, now: Instant, ip: std::net::IpAddr) {
        let ip = ip.to_canonical();
        let workspace = self.workspace.load();
        if workspace.directory.never_banned(ip) {
            return;
        }
        if let Some(ban) = self.guard.failure(now, ip, workspace.directory.security()) {
            log_ban(&ban);
        }
    }

    fn on_request(&mut self, now: Instant, from: Peer, mut request: Message) {
        let Some(method) = request.method().cloned() else {
            return;
        };
        // The Via notes where the request came from before anything answers
        // it, stateless refusals included (RFC 3581 §4).
        addressing::stamp_received(&mut request, from);
        if let Err(rejection) = check_request(&request) {
            if method != Method::Ack {
                // §8.2.6.2: a response outside any transaction still gets a To tag.
                let tag = self.ids.tag();
                let mut reply = response_to(
                    &request,
                    rejection.status,
                    &rejection.reason,
                    Some(&tag),
                    false,
                );
                if let Some(tags) = &rejection.unsupported {
                    reply.push(HeaderName::Unsupported, tags);
                }
                self.send_stateless(from, &request, &reply);
            }
            return;
        }
        if self.tl.on_request(now, &request) == RequestMatch::Absorbed {
            return;
        }
        let in_dialog = request.to_tag().is_some();
        if method != Method::Ack
            && !matches!(from.transport, Transport::Tls(_))
            && asks_for_tls(&request)
        {
            // RFC 3261 §26.2.2: a sips: request wants TLS on every hop; over
            // plain UDP or TCP it is refused, never served insecurely.
            return self.reply_new(now, from, request, 416, None);
        }
        if !in_dialog && self.overloaded(now, from, &method) {
            // Shed statelessly (no transaction: that is what is short).
            let tag = self.ids.tag();
            let mut reply = response_to(&request, 503, "Service Unavailable", Some(&tag), false);
            reply.push(HeaderName::RetryAfter, "5");
            self.send_stateless(from, &request, &reply);
            return;
        }
        match method {
            Method::Ack => self.on_ack(now, request),
            Method::Cancel => self.on_cancel(now, from, request),
            // Addressed to the server itself: answered whatever its
            // Max-Forwards (RFC 4475 §3.3.11: an endpoint answers).
            Method::Options if !in_dialog && names_this_server(&request) => {
                self.on_options(now, from, request)
            }
            _ if request.max_forwards() == Some(0) && !in_dialog => {
                self.reply_new(now, from, request, 483, None);
            }
            Method::Register => self.on_register(now, from, request),
            Method::Invite if !in_dialog => self.on_new_call(now, from, request),
            _ if in_dialog => self.on_in_dialog(now, from, request),
            // §15.1.2: a BYE outside any dialog names no call of ours.
            Method::Bye => self.reply_new(now, from, request, 481, None),
            Method::Options => self.on_options(now, from, request),
            Method::Other(_) => self.reply_new(now, from, request, 501, None),
            _ => self.reply_new(
                now,
                from,
                request,
                405,
                Some((HeaderName::Allow, ALLOW_OUTSIDE_DIALOG)),
            ),
        }
    }

    fn on_options(&mut self, now: Instant, from: Peer, request: Message) {
        let tx = self.tl.new_server(now, from, request, TxCtx::Plain);
        let Some(req) = self.tl.request(tx) else {
            return;
        };
        // A carrier asks whether we serve a number; anyone else gets the
        // same answer whatever the user part (no enumeration: svwar's
        // OPTIONS scan finds nothing).
        let from_trunk = self
            .workspace
            .load()
            .directory
            .trunk_for_source(from.addr.ip())
            .is_some();
        if from_trunk && self.names_no_number(req) {
            return self.respond_plain(now, tx, 404);
        }
        let mut ok = response_to(req, 200, "OK", Some(&self.ids.tag()), false);
        ok.push(HeaderName::Allow, ALLOW_OUTSIDE_DIALOG);
        ok.push(HeaderName::Accept, "application/sdp");
        ok.push(HeaderName::Supported, SUPPORTED);
        self.tl.respond(now, tx, &ok);
    }

    /// Whether a new request of `method` from `from` is shed. INVITEs:
    /// once the live transactions reach `overload_transactions`, those of
    /// the sources filling the table (a quarter of it or more each, see
    /// [`limits::HeavySources`]); a quarter later, every one. REGISTERs
    /// half later (signing in again matters more than a new call); the
    /// rest never (CANCEL, ACK and OPTIONS cost little and end things).
    /// New INVITEs also once `max_calls` calls are up. Logged once a
    /// minute.
    fn overloaded(&mut self, now: Instant, from: Peer, method: &Method) -> bool {
        let limit = self.cfg.overload_transactions;
        let live = self.tl.len();
        let shed = match method {
            Method::Invite if live >= limit.saturating_add(limit / 4) => true,
            Method::Invite if live >= limit => {
                let tl = &self.tl;
                self.heavy_sources
                    .is_heavy(now, from.addr.ip(), || tl.server_sources_sample())
            }
            Method::Register => live >= limit.saturating_add(limit / 2),
            _ => false,
        };
        if shed {
            self.counters.overload_refused += 1;
            self.limit_hits.hit(now, Limit::Transactions, live, limit);
            return true;
        }
        let calls = self.calls.len();
        if *method == Method::Invite && calls >= self.cfg.max_calls {
            self.limit_hits
                .hit(now, Limit::Calls, calls, self.cfg.max_calls);
            return true;
        }
        false
    }

    fn on_response(&mut self, now: Instant, from: Peer, response: Message) {
        if let Some(stray) = self.tl.on_response(now, response) {
            tracing::trace!(status = stray.status(), "response matches no transaction");
            let invite_2xx = stray.status().is_some_and(|s| (200..300).contains(&s))
                && stray.cseq().is_some_and(|c| c.method == "INVITE");
            if invite_2xx {
                self.on_stray_2xx(from, &stray);
            }
        }
    }

    fn on_cancel(&mut self, now: Instant, from: Peer, cancel: Message) {
        let target = self.tl.find_invite_for_cancel(&cancel);
        let tx = self.tl.new_server(now, from, cancel, TxCtx::Plain);
        if let Some(TxCtx::ReInvite(call)) = target.and_then(|t| self.tl.context(t)).copied() {
            // §9.2: cancelling a pending re-INVITE cancels it on the other
            // side too; its 487 comes back through the relay.
            self.respond_plain(now, tx, 200);
            return self.cancel_relayed_reinvite(now, call);
        }
        let call = target.and_then(|invite_tx| match self.tl.context(invite_tx) {
            Some(TxCtx::Inbound(call)) => Some(*call),
            _ => None,
        });
        // §9.2: the 200 to the CANCEL carries the To tag the INVITE's
        // responses (its 487) carry.
        let tag = call
            .and_then(|key| self.calls.get(key))
            .map(|c| c.caller.dialog.local_tag().to_string());
        match (target, tag) {
            (Some(_), Some(tag)) => {
                if let Some(req) = self.tl.request(tx) {
                    let ok = response_to(req, 200, "OK", Some(&tag), false);
                    self.tl.respond(now, tx, &ok);
                }
            }
            (Some(_), None) => self.respond_plain(now, tx, 200),
            (None, _) => self.respond_plain(now, tx, 481),
        }
        if let Some(call) = call {
            self.on_caller_cancelled(now, call);
        }
    }

    /// Whether an OPTIONS' Request-URI names a number (its user part reads
    /// as one) that is not the workspace's. The server itself, users and
    /// the workspace's numbers are answered.
    fn names_no_number(&self, request: &Message) -> bool {
        let Some(user) = request
            .request_uri()
            .and_then(|u| sip::header::Uri::parse(u).ok())
            .and_then(|u| u.user)
        else {
            return false;
        };
        let workspace = self.workspace.load();
        if workspace.directory.user_index(user).is_some() {
            return false;
        }
        directory::normalize_e164(user)
            .is_some_and(|n| workspace.directory.number_index(n.as_str()).is_none())
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
        self.respond_with_reason(now, tx, status, reason_phrase(status));
    }

    fn respond_with_reason(&mut self, now: Instant, tx: TxId, status: u16, reason: &str) {
        let tag = self.ids.tag();
        if let Some(req) = self.tl.request(tx) {
            let reply = response_to(req, status, reason, Some(&tag), false);
            self.tl.respond(now, tx, &reply);
        }
    }

    /// A response without a transaction (to a request refused before one exists).
    fn send_stateless(&mut self, from: Peer, request: &Message, reply: &Message) {
        let to = addressing::reply_peer(from, request);
        self.transmit(to, Bytes::from(reply.encode()));
    }

    fn transmit(&mut self, to: Peer, bytes: Bytes) {
        self.out.push_back(Output::Transmit(Transmit { to, bytes }));
    }

    fn emit(&mut self, event: Event) {
        self.out.push_back(Output::Event(event));
    }

    /// Moves everything the transaction layer produced to the output, and
    /// hands its events to the calls.
    fn drain(&mut self, now: Instant) {
        while let Some(output) = self.tl.poll_output() {
            match output {
                TxOutput::Transmit(t) => self.out.push_back(Output::Transmit(t)),
                TxOutput::Event(event) => self.on_tx_event(now, event),
            }
        }
    }

    fn on_tx_event(&mut self, now: Instant, event: TxEvent<TxCtx>) {
        match event {
            TxEvent::Provisional { tx, ctx, response } => match ctx {
                TxCtx::Leg(call, leg) => self.on_leg_provisional(now, tx, call, leg, response),
                TxCtx::Relay(call, _) => self.on_relay_provisional(now, call, tx),
                _ => {}
            },
            TxEvent::Final { tx, ctx, response } => match ctx {
                TxCtx::Leg(call, leg) => self.on_leg_final(now, tx, call, leg, response),
                TxCtx::Relay(call, server_tx) => {
                    self.on_relay_final(now, call, server_tx, Some(response))
                }
                TxCtx::Probe(call, side) => {
                    self.on_probe_answer(now, call, side, response.status())
                }
                _ => {}
            },
            TxEvent::Retransmitted2xx { tx, ctx, response } => match ctx {
                TxCtx::Leg(call, leg) => self.on_leg_2xx_again(now, call, leg, tx, &response),
                TxCtx::Relay(call, _) => self.on_relay_2xx_again(call, tx),
                _ => {}
            },
            TxEvent::Timeout { tx, ctx } => match ctx {
                TxCtx::Leg(call, leg) => self.on_leg_timeout(now, tx, call, leg),
                TxCtx::Relay(call, server_tx) => self.on_relay_final(now, call, server_tx, None),
                TxCtx::Probe(call, side) => self.on_probe_answer(now, call, side, None),
                _ => {}
            },
            TxEvent::AckTimeout { ctx, status, .. } => match (ctx, status) {
                (TxCtx::Inbound(call), 200..=299) => self.on_caller_never_acked(now, call),
                // §13.3.1.4 for a relayed re-INVITE: a 2xx nobody ACKs ends
                // the session, rather than jamming every later re-INVITE.
                (TxCtx::ReInvite(call), 200..=299) => self.on_reinvite_never_acked(now, call),
                _ => {}
            },
        }
    }

    /// Our Via sent-by and Contact host:port for a transport.
    fn local_addr(&self, transport: sip::transaction::Transport) -> SocketAddr {
        addressing::local_addr(&self.cfg, transport)
    }
}

/// Whether a Request-URI names the server itself rather than a user or a
/// number: no user part, or ours (`switchboard`).
fn names_this_server(request: &Message) -> bool {
    request
        .request_uri()
        .and_then(|u| sip::header::Uri::parse(u).ok())
        .is_some_and(|u| u.user.is_none_or(|user| user == "switchboard"))
}

/// Whether the request needs TLS: a `sips:` Request-URI, or a REGISTER of
/// a `sips:` Contact (we would then call it over a plain transport).
fn asks_for_tls(request: &Message) -> bool {
    let sips = |uri: &str| {
        uri.get(..5)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("sips:"))
    };
    if request.request_uri().is_some_and(sips) {
        return true;
    }
    request.method() == Some(&Method::Register)
        && request
            .values(HeaderName::Contact)
            .filter_map(sip::NameAddr::parse)
            .any(|c| sips(c.uri))
}

/// Methods accepted outside a dialog (OPTIONS answers, 405s).
pub(crate) const ALLOW_OUTSIDE_DIALOG: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER";

/// Methods relayed inside a call (advertised in the INVITEs and 2xx of calls).
pub(crate) const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, INFO, UPDATE, NOTIFY, MESSAGE";

/// Extensions we support, in leg INVITEs and OPTIONS answers.
pub(crate) const SUPPORTED: &str = "100rel, timer";

/// Extensions offered in a leg INVITE without SDP (no `100rel`: a reliable
/// 18x would carry an offer our PRACK cannot answer, RFC 3262 §5).
pub(crate) const SUPPORTED_LATE_OFFER: &str = "timer";

/// One line per ban, in a fixed shape for people and fail2ban-like tools.
fn log_ban(ban: &guard::NewBan) {
    tracing::warn!(
        source = %ban.source,
        ban_s = ban.length.as_secs(),
        count = ban.count,
        why = ban.why,
        "source banned"
    );
}

#[cfg(test)]
mod tests;
