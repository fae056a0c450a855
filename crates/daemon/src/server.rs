//! The driver: sockets and timers around the sans-IO [`Engine`].
//!
//! One task owns the engine. It receives UDP datagrams itself (draining the
//! socket in batches), takes TCP messages and commands from other tasks over
//! a channel, reads the clock (through [`crate::clock`]) once per batch, and
//! sends what the engine outputs. The engine's events go out on a broadcast
//! channel ([`Daemon::events`]) to whoever listens: the engine task never
//! waits for them. Another task expires and persists registrations.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use directory::Directory;
use engine::{
    Command, CommandError, CommandReply, Engine, EngineConfig, Event, Input, Output, WallClock,
    WorkspaceReader,
};
use presence::{Presence, RegistrationStore};
use sip::framing::{next_frame, Frame, PingDetector};
use sip::ids::IdGenerator;
use sip::transaction::{Peer, Transmit, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::admin::Control;
use crate::media_runtime::{MediaCtx, MediaRuntime, PromptStore};
use crate::metrics::{Metrics, StreamLimit};
use crate::records::RecordSink;
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::settings::Config;

/// Events buffered per listener before a slow one starts missing some.
const EVENT_BUFFER: usize = 4096;

/// How often registrations are expired and, if changed, written to disk.
const PERSIST_INTERVAL: Duration = Duration::from_secs(1);

/// A running daemon.
pub struct Daemon {
    pub udp_addr: Option<SocketAddr>,
    pub tcp_addr: Option<SocketAddr>,
    /// Where SIP over TLS listens, when `server.sip_tls` is set.
    pub tls_addr: Option<SocketAddr>,
    /// Where the admin HTTP API listens, when `server.admin_http` is set.
    pub admin_addr: Option<SocketAddr>,
    pub presence: Arc<Presence>,
    /// The workspace new calls are routed with (read-only: changes go
    /// through [`Daemon::control`]).
    pub workspace: WorkspaceReader,
    /// Admin changes, reloads and commands.
    pub control: Arc<Control>,
    events: broadcast::Sender<Event>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    records_writer: Option<std::thread::JoinHandle<()>>,
}

pub(crate) enum EngineInput {
    Command {
        /// Boxed: a workspace is large, and commands are rare.
        command: Box<Command>,
        reply: oneshot::Sender<Result<CommandReply, CommandError>>,
    },
    Message {
        peer: Peer,
        bytes: Bytes,
    },
    Connected {
        id: u64,
        writer: mpsc::Sender<Bytes>,
    },
    Disconnected {
        id: u64,
    },
    /// A connection we opened could not be made.
    ConnectFailed {
        id: u64,
        to: SocketAddr,
    },
    /// A media session's report.
    Media(engine::media::MediaEvent),
    /// Registration changes through this number are on disk (or failed to be).
    Persisted {
        through: u64,
        saved: bool,
    },
}

impl Daemon {
    /// Binds every configured listener, restores registrations, and starts
    /// serving on the current tokio runtime.
    pub async fn start(config: Config) -> anyhow::Result<Daemon> {
        let server = &config.server;
        let presence = Arc::new(Presence::new());
        // Fail at start, not at the first save, when the data dir is unusable.
        std::fs::create_dir_all(&server.data_dir).with_context(|| {
            format!("creating the data directory {}", server.data_dir.display())
        })?;
        let (store, restored) =
            RegistrationStore::open(&server.data_dir, &presence, clock::unix_ms())
                .context("restoring registrations")?;
        let prompts = PromptStore::load(&config.directory, &config.origin)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let recovered = crate::media_runtime::voicemail::recover(&server.data_dir);
        if recovered > 0 {
            tracing::info!(recovered, "voicemails left by a crash finished");
        }

        let udp = match server.sip_udp {
            Some(addr) => Some(Arc::new(
                bind_udp(addr).with_context(|| format!("binding UDP {addr}"))?,
            )),
            None => None,
        };
        let tcp = match server.sip_tcp {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding TCP {addr}"))?,
            ),
            None => None,
        };
        let tls = match (server.sip_tls, &server.tls_cert, &server.tls_key) {
            (Some(addr), Some(cert), Some(key)) => {
                let acceptor = crate::tls::acceptor(cert, key)?;
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding TLS {addr}"))?;
                Some((listener, acceptor))
            }
            _ => None,
        };
        if udp.is_none() && tcp.is_none() && tls.is_none() {
            anyhow::bail!(
                "no SIP listener configured: set server.sip_udp, server.sip_tcp or server.sip_tls"
            );
        }
        let udp_addr = udp.as_ref().map(|s| s.local_addr()).transpose()?;
        let tcp_addr = tcp.as_ref().map(|l| l.local_addr()).transpose()?;
        let tls_addr = tls.as_ref().map(|(l, _)| l.local_addr()).transpose()?;

        let mut cfg = EngineConfig::new(&server.domain);
        // What peers see in Via and Contact: the advertised IP, else the bound one.
        let advertised = |bound: SocketAddr| match server.advertise {
            Some(ip) => SocketAddr::new(ip, bound.port()),
            None => bound,
        };
        cfg.udp_addr = udp_addr.map(advertised);
        cfg.tcp_addr = tcp_addr.map(advertised);
        cfg.tls_addr = tls_addr.map(advertised);
        cfg.min_expires = server.min_expires;
        cfg.max_expires = server.max_expires;
        cfg.default_expires = server.default_expires;
        // 7/8 of 2^18: exactly what fills a 2^18-bucket table, the size the
        // table grows to anyway under ~1,800 calls/s; asking for 2^18 would
        // double it (2^19 buckets) and cost cache misses on every lookup.
        cfg.transaction_capacity = (1 << 18) / 8 * 7;
        cfg.digest_algorithms = server.digest_algorithms.clone();
        cfg.digest_uri_check = server.digest_uri_check;
        cfg.liveness_timeout = server.liveness_timeout;
        cfg.overload_transactions = server.overload_transactions;
        cfg.max_calls = server.max_calls;
        cfg.max_legs_per_call = server.max_legs_per_call;
        cfg.max_bindings_per_user = server.max_bindings_per_user;
        // A REGISTER's 200 waits for the journal's fsync (group commit).
        cfg.durable_registrations = true;
        let wall_clock = WallClock::new(clock::now(), clock::wall());
        let engine = Engine::new(
            cfg,
            config.directory.clone(),
            Arc::clone(&presence),
            wall_clock,
            IdGenerator::new(),
        );
        let workspace = engine.workspace();
        let (events, _) = broadcast::channel(EVENT_BUFFER);

        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        let (input_tx, input_rx) = mpsc::channel(8192);
        let mut tasks = Vec::new();
        let limits = TcpLimits {
            per_source: server.tcp_max_per_source,
            metrics: Arc::clone(&metrics),
            open_per_source: PerSource::default(),
            total: Arc::new(tokio::sync::Semaphore::new(server.tcp_max_connections)),
        };
        let stream_ctx = StreamCtx {
            inputs: input_tx.clone(),
            shutdown: shutdown.clone(),
            // Devices refresh at most every max_expires; a connection silent
            // for longer (plus a margin) has no live registration to serve.
            // (The same bound applies to connections we open.)
            idle_timeout: Duration::from_secs(u64::from(server.max_expires) + 120),
            max_message: server.tcp_max_message,
            message_timeout: server.tcp_message_timeout,
            metrics: Arc::clone(&metrics),
        };
        if let Some(listener) = tcp {
            tasks.push(tokio::spawn(accept_loop(
                listener,
                None,
                stream_ctx.clone(),
                limits.clone(),
            )));
        }
        if let Some((listener, acceptor)) = tls {
            tasks.push(tokio::spawn(accept_loop(
                listener,
                Some(acceptor),
                stream_ctx.clone(),
                limits.clone(),
            )));
        }
        let streams = Streams::new(stream_ctx);
        let bind_ip = server
            .sip_udp
            .or(server.sip_tcp)
            .or(server.sip_tls)
            .map(|a| a.ip())
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let prompts = Arc::new(prompts);
        let (records, records_writer) = crate::records::start_writer(&server.data_dir)?;
        let control = Arc::new(Control::new(
            input_tx.clone(),
            Arc::clone(&prompts),
            Arc::clone(&presence),
            workspace.clone(),
            &config,
            Arc::clone(&metrics),
        )?);
        // The token from the environment wins over the file's.
        let token = std::env::var("SWITCHBOARD_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(crate::settings::Secret)
            .or_else(|| server.admin_token.clone());
        if token.as_ref().is_some_and(|t| t.0.len() < 16) {
            anyhow::bail!(
                "SWITCHBOARD_ADMIN_TOKEN must be at least 16 characters (a guessable token is no protection)"
            );
        }
        let admin_addr = match server.admin_http {
            Some(addr) => {
                crate::admin::api::check_listen(addr, token.as_ref())?;
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the admin HTTP API on {addr}"))?;
                let bound = listener.local_addr()?;
                let router = crate::admin::api::router(Arc::clone(&control), token);
                tasks.push(tokio::spawn(crate::admin::api::serve(
                    listener,
                    router,
                    shutdown.clone(),
                )));
                Some(bound)
            }
            None => None,
        };
        let (persist_tx, persist_rx) = tokio::sync::watch::channel(0u64);
        let media = MediaRuntime::start(MediaCtx {
            inputs: input_tx.clone(),
            prompts: Arc::clone(&prompts),
            data_dir: server.data_dir.clone(),
            bind_ip,
            shutdown: shutdown.clone(),
            rtp_timeout: server.liveness_timeout,
        })
        .context("starting the media thread")?;
        tasks.push(tokio::spawn(metrics_upkeep(
            Arc::clone(&metrics),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(engine_loop(
            engine,
            udp,
            media,
            streams,
            input_rx,
            Outlets {
                events: events.clone(),
                records,
                metrics,
                webhooks: crate::webhooks::start(workspace.clone())
                    .context("starting the webhook thread")?,
                workspace: workspace.clone(),
                persist: persist_tx,
            },
        )));
        tasks.push(tokio::spawn(persist_loop(
            Arc::clone(&presence),
            store,
            Sweep {
                wall_clock,
                workspace: workspace.clone(),
                events: events.clone(),
            },
            Commits {
                requests: persist_rx,
                inputs: input_tx.clone(),
                reported: 0,
            },
            shutdown.clone(),
        )));

        tracing::info!(
            udp = ?udp_addr,
            tcp = ?tcp_addr,
            tls = ?tls_addr,
            admin = ?admin_addr,
            domain = %server.domain,
            users = config.directory.users().len(),
            numbers = config.directory.numbers().len(),
            restored_bindings = restored,
            "switchboard listening"
        );
        Ok(Daemon {
            udp_addr,
            tcp_addr,
            tls_addr,
            admin_addr,
            presence,
            workspace,
            control,
            events,
            shutdown,
            tasks,
            records_writer: Some(records_writer),
        })
    }

    /// The engine's events from now on (calls answered and call records,
    /// registration and busy changes). A listener that falls more than a few thousand
    /// events behind misses some (and is told so by `recv`).
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Applies a command between two engine turns and returns its reply.
    pub async fn command(&self, command: Command) -> anyhow::Result<CommandReply> {
        self.control
            .command(command)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))
    }

    /// Routes new calls with `directory` from now on; calls up keep theirs.
    /// (Not saved to the file: admin changes go through [`Control::change`].)
    pub async fn replace_workspace(&self, directory: Directory) -> anyhow::Result<usize> {
        self.control
            .replace_workspace(directory)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))
    }

    /// Reads the config file again and applies it (`SIGHUP`).
    pub async fn reload(&self) -> Result<crate::admin::Reloaded, crate::admin::ApiError> {
        self.control.reload().await
    }

    /// A token that stops the daemon when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops every task and writes registrations a last time.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the daemon has stopped (after its token is cancelled).
    pub async fn wait(mut self) {
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        // The engine task dropped its sink: the writer commits what is
        // left and returns.
        if let Some(writer) = self.records_writer.take() {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }
}

/// A UDP socket with large buffers: bursts of thousands of datagrams must
/// wait in the kernel, not be dropped, while the engine works.
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    if let Err(e) = crate::udp_errors::enable(&socket) {
        tracing::warn!(error = %e, "no ICMP reports on the UDP socket: legs to closed ports fail at their timeout");
    }
    let socket = socket2::Socket::from(socket);
    let _ = socket.set_recv_buffer_size(8 << 20);
    let _ = socket.set_send_buffer_size(8 << 20);
    UdpSocket::from_std(socket.into())
}

/// The TCP connections the engine can send on: the accepted ones, and
/// those opened to reach a device (RFC 3261 §18.1.1), by the address they
/// go to, so that every request to that address shares one.
struct Streams {
    writers: HashMap<u64, mpsc::Sender<Bytes>>,
    opened: HashMap<SocketAddr, u64>,
    next_opened: u64,
    ctx: StreamCtx,
}

/// Stops the daemon gently (SIGTERM): new calls get `503` with
/// `Retry-After`, calls in progress have `grace` to end by themselves, then
/// the rest are hung up (BYE on each side) and `token` is cancelled, which
/// saves the registrations and the call records. `sooner` (a second
/// signal) cuts the grace short: the calls are hung up at once.
pub async fn stop_gracefully(
    control: Arc<Control>,
    token: CancellationToken,
    grace: Duration,
    sooner: impl std::future::Future<Output = ()>,
) {
    let retry_after_secs = grace.as_secs().clamp(1, 3600) as u32;
    let calls = match control.command(Command::Drain { retry_after_secs }).await {
        Ok(CommandReply::Draining { calls }) => calls,
        _ => 0,
    };
    tracing::info!(
        calls,
        grace_s = grace.as_secs(),
        "stopping: new calls get 503, calls in progress may go on for the grace period"
    );
    let wait = async {
        let deadline = clock::now() + grace;
        loop {
            let left = match control.command(Command::Calls).await {
                Ok(CommandReply::Calls(calls)) => calls.len(),
                _ => 0,
            };
            if left == 0 || clock::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let left = tokio::select! {
        left = wait => left,
        () = sooner => {
            tracing::info!("a second signal: hanging up now");
            usize::MAX
        }
    };
    if left > 0 {
        if let Ok(CommandReply::HungUp { calls }) = control.command(Command::HangUpAll).await {
            tracing::info!(calls, "calls hung up");
        }
        // The BYEs are on their way out of the engine loop already; a
        // moment lets them leave the sockets before the listeners close.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    token.cancel();
}

/// Ids of connections we open start here, far from the accepted ones'.
const OPENED_ID_BASE: u64 = 1 << 48;

/// How long opening a connection to a device may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Streams {
    fn new(ctx: StreamCtx) -> Streams {
        Streams {
            writers: HashMap::new(),
            opened: HashMap::new(),
            next_opened: 0,
            ctx,
        }
    }

    fn send(&self, id: u64, to: SocketAddr, bytes: Bytes) {
        match self.writers.get(&id) {
            Some(writer) => {
                if writer.try_send(bytes).is_err() {
                    tracing::debug!(peer = %to, "tcp connection gone or congested; message dropped");
                }
            }
            None => tracing::debug!(peer = %to, "tcp connection closed; message dropped"),
        }
    }

    /// Over the connection opened to `to`, or a new one (its messages wait
    /// in its queue while it connects).
    fn send_connecting(&mut self, to: SocketAddr, bytes: Bytes) {
        if let Some(&id) = self.opened.get(&to) {
            return self.send(id, to, bytes);
        }
        let id = OPENED_ID_BASE + self.next_opened;
        self.next_opened += 1;
        let (tx, rx) = mpsc::channel::<Bytes>(1024);
        let _ = tx.try_send(bytes);
        self.writers.insert(id, tx.clone());
        self.opened.insert(to, id);
        tokio::spawn(open_connection(id, to, (tx, rx), self.ctx.clone()));
    }

    fn closed(&mut self, id: u64) {
        self.writers.remove(&id);
        if id >= OPENED_ID_BASE {
            self.opened.retain(|_, open| *open != id);
        }
    }
}

/// Where what the engine produces besides messages goes.
struct Outlets {
    events: broadcast::Sender<Event>,
    records: RecordSink,
    metrics: Arc<Metrics>,
    webhooks: crate::webhooks::WebhookSink,
    /// To see whether the running workspace has webhooks at all.
    workspace: WorkspaceReader,
    /// The last registration change the engine wants on disk.
    persist: tokio::sync::watch::Sender<u64>,
}

async fn engine_loop(
    mut engine: Engine,
    udp: Option<Arc<UdpSocket>>,
    mut media: MediaRuntime,
    mut streams: Streams,
    mut inputs: mpsc::Receiver<EngineInput>,
    outlets: Outlets,
) {
    let metrics = Arc::clone(&outlets.metrics);
    let shutdown = streams.ctx.shutdown.clone();
    let mut buf = vec![0u8; 65_536];
    let mut inputs_open = true;
    let mut deadline: Option<Instant> = None;
    loop {
        // Set when a branch starts work; the wait itself is not a slow turn.
        #[allow(unused_assignments)]
        let mut loop_started = clock::now();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let udp_ready = async {
            match &udp {
                Some(s) => s.ready(Interest::READABLE | Interest::ERROR).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            ready = udp_ready => {
                let Ok(ready) = ready else { continue };
                let Some(socket) = &udp else { continue };
                let now = clock::now();
                loop_started = now;
                if ready.is_error() {
                    read_udp_errors(socket, &mut engine, now);
                }
                // Drain what the kernel holds, one clock read for the batch.
                for _ in 0..256 {
                    match socket.try_recv_from(&mut buf) {
                        Ok((len, from)) => {
                            let from = Peer { transport: Transport::Udp, addr: from };
                            let bytes = Bytes::copy_from_slice(&buf[..len]);
                            metrics.received(&bytes);
                            if bytes.starts_with(b"INVITE ") {
                                let started = clock::now();
                                engine.handle_input(now, Input::Receive { from, bytes });
                                metrics.routing_decision(started.elapsed());
                            } else {
                                engine.handle_input(now, Input::Receive { from, bytes });
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            // An ICMP error surfaces here too; its details
                            // (which peer) are in the error queue.
                            tracing::trace!(error = %e, "udp receive");
                            read_udp_errors(socket, &mut engine, now);
                        }
                    }
                }
                engine.handle_input(now, Input::Timeout);
            }
            input = inputs.recv(), if inputs_open => {
                let now = clock::now();
                loop_started = now;
                match input {
                    Some(EngineInput::Message { peer, bytes }) => {
                        metrics.received(&bytes);
                        engine.handle_input(now, Input::Receive { from: peer, bytes });
                    }
                    Some(EngineInput::Connected { id, writer }) => { streams.writers.insert(id, writer); }
                    Some(EngineInput::Disconnected { id }) => {
                        if shutdown.is_cancelled() {
                            // Closed by the shutdown, not by the device: its
                            // binding outlives the restart (reached at its
                            // Contact by a new connection).
                            break;
                        }
                        streams.closed(id);
                        engine.handle_input(now, Input::ConnectionClosed { connection: id });
                    }
                    Some(EngineInput::Media(event)) => {
                        engine.handle_input(now, Input::Media(event));
                    }
                    Some(EngineInput::Persisted { through, saved }) => {
                        engine.handle_input(now, Input::Persisted { through, saved });
                    }
                    Some(EngineInput::ConnectFailed { id, to }) => {
                        streams.closed(id);
                        engine.handle_input(now, Input::ConnectFailed { to });
                    }
                    Some(EngineInput::Command { command, reply }) => {
                        let _ = reply.send(engine.handle_command(now, *command));
                    }
                    None => inputs_open = false,
                }
            }
            _ = sleep => {
                let now = clock::now();
                loop_started = now;
                engine.handle_input(now, Input::Timeout);
            }
        }
        let (sent, next) = flush(
            &mut engine,
            udp.as_deref(),
            &mut streams,
            &mut media,
            &outlets,
        )
        .await;
        deadline = next;
        let took = loop_started.elapsed();
        if took > SLOW_TURN {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                sent,
                transactions = engine.transaction_count(),
                "slow engine turn"
            );
        }
    }
    // Sessions end with the shutdown; a recording is finished before its
    // task returns, so the daemon's stop waits for them.
    media.wait().await;
}

/// Hands the engine each destination the UDP socket's error queue says
/// is unreachable.
fn read_udp_errors(socket: &UdpSocket, engine: &mut Engine, now: Instant) {
    for _ in 0..256 {
        match socket.try_io(Interest::ERROR, || crate::udp_errors::read_one(socket)) {
            Ok(crate::udp_errors::Report::Unreachable(to)) => {
                engine.handle_input(now, Input::Unreachable { to });
            }
            Ok(crate::udp_errors::Report::Other) => {}
            Err(_) => break,
        }
    }
}

/// Sends everything the engine has queued and hands its events on; returns
/// how many messages were sent and the engine's next deadline.
async fn flush(
    engine: &mut Engine,
    udp: Option<&UdpSocket>,
    streams: &mut Streams,
    media: &mut MediaRuntime,
    outlets: &Outlets,
) -> (usize, Option<Instant>) {
    let mut sent = 0;
    loop {
        let Transmit { to, bytes } = match engine.poll_output() {
            Output::Transmit(t) => t,
            Output::Event(event) => {
                if let Event::CallEnded(record) = &event {
                    let outcome = crate::records::outcome(record);
                    tracing::debug!(
                        call_id = %record.call_id,
                        number = record.number.as_deref().unwrap_or("-"),
                        outcome,
                        "call record"
                    );
                    outlets.metrics.call_ended(outcome);
                    if !outlets.records.push(record.clone()) {
                        outlets.metrics.records_dropped.increment(1);
                    }
                    let hooked = !outlets.workspace.load().directory.webhooks().is_empty();
                    if hooked && !outlets.webhooks.push(record.clone()) {
                        outlets.metrics.webhooks_dropped.increment(1);
                    }
                }
                if let Event::CallAnswered(record) = &event {
                    if !outlets.records.push_up(record.clone()) {
                        outlets.metrics.records_dropped.increment(1);
                    }
                }
                // No listener is not an error: nobody asked for them.
                let _ = outlets.events.send(event);
                continue;
            }
            Output::Timeout(next) => return (sent, next),
            Output::Media(command) => {
                media.command(command);
                continue;
            }
            Output::Persist { through } => {
                outlets.persist.send_replace(through);
                continue;
            }
        };
        sent += 1;
        outlets.metrics.sent(&bytes);
        match to.transport {
            Transport::Udp => {
                let Some(socket) = udp else {
                    tracing::debug!(peer = %to.addr, "no UDP listener to send from");
                    continue;
                };
                match socket.try_send_to(&bytes, to.addr) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if let Err(e) = socket.send_to(&bytes, to.addr).await {
                            tracing::debug!(peer = %to.addr, error = %e, "udp send");
                        }
                    }
                    Err(e) => tracing::debug!(peer = %to.addr, error = %e, "udp send"),
                }
            }
            Transport::Tcp(id) | Transport::Tls(id) => streams.send(id, to.addr, bytes),
            Transport::TcpConnect => streams.send_connecting(to.addr, bytes),
        }
    }
}

/// An engine turn longer than this is logged: it delays every call in flight.
const SLOW_TURN: Duration = Duration::from_millis(20);

/// How long a connection that carries no registration may stay quiet.
const UNBOUND_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections open per source address, shared by the accept loop and the
/// connections it starts (each gives its place back when it ends).
#[derive(Clone, Default)]
struct PerSource(Arc<std::sync::Mutex<HashMap<std::net::IpAddr, usize>>>);

impl PerSource {
    /// A place for one more connection from `ip`, unless it has `max`.
    fn take(&self, ip: std::net::IpAddr, max: usize) -> Option<SourcePlace> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(SourcePlace {
            table: self.clone(),
            ip,
        })
    }
}

struct SourcePlace {
    table: PerSource,
    ip: std::net::IpAddr,
}

impl Drop for SourcePlace {
    fn drop(&mut self) {
        let mut open = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A connection refused at a limit: counted (in all and by limit), and
/// logged once a minute at most.
fn refuse_connection(metrics: &Metrics, peer: SocketAddr, limit: StreamLimit) {
    metrics.tcp_refused.increment(1);
    metrics.limit_hit(limit, peer);
}

/// What the TCP and TLS listeners enforce, together: connections per
/// source and in all count both kinds.
#[derive(Clone)]
struct TcpLimits {
    per_source: usize,
    metrics: Arc<Metrics>,
    open_per_source: PerSource,
    total: Arc<tokio::sync::Semaphore>,
}

/// Ids of accepted TLS connections start here, apart from the TCP ones.
const TLS_ID_BASE: u64 = 1 << 40;

/// How long a TLS handshake may take once the connection is accepted.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on a TCP listener, or a TLS one with `tls`, and
/// serves each in a task of its own.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ctx: StreamCtx,
    limits: TcpLimits,
) {
    let shutdown = ctx.shutdown.clone();
    let mut next_id: u64 = if tls.is_some() { TLS_ID_BASE } else { 1 };
    let permits = Arc::clone(&limits.total);
    let per_source = limits.open_per_source.clone();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(place) = per_source.take(addr.ip(), limits.per_source) else {
            refuse_connection(&limits.metrics, addr, StreamLimit::ConnectionsPerSource);
            continue;
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            refuse_connection(&limits.metrics, addr, StreamLimit::Connections);
            continue;
        };
        let id = next_id;
        next_id += 1;
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _place = place;
            let _ = stream.set_nodelay(true);
            let Some(acceptor) = tls else {
                let peer = Peer {
                    transport: Transport::Tcp(id),
                    addr,
                };
                return serve_connection(peer, stream, ctx).await;
            };
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let stream = tokio::select! {
                _ = ctx.shutdown.cancelled() => return,
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %addr, error = %e, "tls handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(peer = %addr, "tls handshake timed out");
                        return;
                    }
                },
            };
            let peer = Peer {
                transport: Transport::Tls(id),
                addr,
            };
            serve_connection(peer, stream, ctx).await;
        });
    }
}

/// Whether `bytes` are a 2xx to a REGISTER (the device signed in over
/// this connection).
fn registered(bytes: &[u8]) -> bool {
    if !bytes.starts_with(b"SIP/2.0 2") {
        return false;
    }
    // The CSeq line's method (our own response: one CSeq, no folding).
    let head = &bytes[..bytes.len().min(8192)];
    head.split(|&b| b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        line.len() > 5
            && line[..5].eq_ignore_ascii_case(b"cseq:")
            && line
                .rsplit(|&b| b == b' ')
                .next()
                .is_some_and(|m| m.eq_ignore_ascii_case(b"REGISTER"))
    })
}

/// What a task serving one TCP connection needs besides the stream.
#[derive(Clone)]
struct StreamCtx {
    inputs: mpsc::Sender<EngineInput>,
    shutdown: CancellationToken,
    idle_timeout: Duration,
    /// `server.tcp_max_message`: bytes buffered for one message.
    max_message: usize,
    /// `server.tcp_message_timeout`: time for a message to arrive whole.
    message_timeout: Duration,
    metrics: Arc<Metrics>,
}

async fn serve_connection<S>(peer: Peer, stream: S, ctx: StreamCtx)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (Transport::Tcp(id) | Transport::Tls(id)) = peer.transport else {
        return;
    };
    let (out_tx, out_rx) = mpsc::channel::<Bytes>(1024);
    let announce = EngineInput::Connected {
        id,
        writer: out_tx.clone(),
    };
    if ctx.inputs.send(announce).await.is_err() {
        return;
    }
    serve_stream(peer, stream, (out_tx, out_rx), ctx).await;
}

/// A connection the engine asked for (its writer already registered):
/// connect, then serve it like an accepted one. A connection that cannot
/// be made is reported closed, and what was queued for it is dropped.
async fn open_connection(
    id: u64,
    addr: SocketAddr,
    out: (mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>),
    ctx: StreamCtx,
) {
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr));
    let stream = tokio::select! {
        _ = ctx.shutdown.cancelled() => None,
        result = connect => match result {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(e)) => {
                tracing::info!(peer = %addr, error = %e, "tcp connection to a device failed");
                None
            }
            Err(_) => {
                tracing::info!(peer = %addr, "tcp connection to a device timed out");
                None
            }
        },
    };
    match stream {
        Some(stream) => {
            tracing::debug!(peer = %addr, id, "tcp connection opened to a device");
            let _ = stream.set_nodelay(true);
            let peer = Peer {
                transport: Transport::Tcp(id),
                addr,
            };
            serve_stream(peer, stream, out, ctx).await;
        }
        None => {
            let _ = ctx
                .inputs
                .send(EngineInput::ConnectFailed { id, to: addr })
                .await;
        }
    }
}

/// Reads and frames one connection's messages for the engine and writes
/// what the engine sends on it, until either side closes it.
async fn serve_stream<S>(
    peer: Peer,
    stream: S,
    (out_tx, mut out_rx): (mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>),
    ctx: StreamCtx,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let StreamCtx {
        inputs,
        shutdown,
        idle_timeout,
        max_message,
        message_timeout,
        metrics,
    } = ctx;
    let addr = peer.addr;
    let (Transport::Tcp(id) | Transport::Tls(id)) = peer.transport else {
        return;
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let pong = out_tx;
    // Set once a 2xx to a REGISTER went out on the connection: it carries a
    // registration, and may then stay quiet until the device's refresh.
    let bound = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bound_by_writer = Arc::clone(&bound);
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if !bound_by_writer.load(std::sync::atomic::Ordering::Relaxed) && registered(&bytes) {
                bound_by_writer.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            // (TLS buffers records: flush sends them; for TCP it is free.)
            if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                break;
            }
        }
    });
    let mut buf = BytesMut::with_capacity(8192);
    let mut pings = PingDetector::default();
    // When the message in `buf` started arriving.
    let mut partial_since: Option<Instant> = None;
    'read: loop {
        // A started message must finish within its deadline; a quiet
        // connection may wait for its device's next refresh when it
        // carries a registration, and only briefly when it does not.
        let limit = match partial_since {
            Some(since) => {
                message_timeout.saturating_sub(clock::now().saturating_duration_since(since))
            }
            None if bound.load(std::sync::atomic::Ordering::Relaxed) => idle_timeout,
            None => UNBOUND_IDLE_TIMEOUT.min(idle_timeout),
        };
        let read = tokio::select! {
            _ = shutdown.cancelled() => break,
            read = tokio::time::timeout(limit, reader.read_buf(&mut buf)) => read,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => {
                tracing::debug!(peer = %addr, partial = partial_since.is_some(), "closing idle or slow tcp connection");
                if partial_since.is_some() {
                    metrics.limit_hit(StreamLimit::MessageTimeout, addr);
                }
                break;
            }
        }
        loop {
            match next_frame(&buf) {
                Ok(Frame::Incomplete) => break,
                Ok(Frame::KeepAlive(n)) => {
                    let bytes = buf.split_to(n);
                    // RFC 5626 §4.4.1: a double-CRLF ping gets a CRLF pong.
                    for _ in 0..pings.feed(&bytes) {
                        let _ = pong.try_send(Bytes::from_static(b"\r\n"));
                    }
                }
                Ok(Frame::Message(n)) if n > max_message => {
                    // Whole, but larger than a message may be here: the
                    // same answer whichever way TCP split it.
                    tracing::debug!(peer = %addr, bytes = n, "closing tcp connection: message too large");
                    metrics.limit_hit(StreamLimit::MessageSize, addr);
                    break 'read;
                }
                Ok(Frame::Message(n)) => {
                    pings.reset();
                    let bytes = buf.split_to(n).freeze();
                    if inputs
                        .send(EngineInput::Message { peer, bytes })
                        .await
                        .is_err()
                    {
                        break 'read;
                    }
                }
                Err(e) => {
                    // A stream we cannot frame cannot be resynchronised: close it.
                    tracing::debug!(peer = %addr, error = %e, "closing tcp connection");
                    if matches!(e, sip::framing::FrameError::TooLarge) {
                        metrics.limit_hit(StreamLimit::MessageSize, addr);
                    }
                    break 'read;
                }
            }
        }
        if buf.len() > max_message {
            // More than a whole message may hold, and still incomplete.
            tracing::debug!(peer = %addr, buffered = buf.len(), "closing tcp connection: message too large");
            metrics.limit_hit(StreamLimit::MessageSize, addr);
            break 'read;
        }
        partial_since = match (buf.is_empty(), partial_since) {
            (true, _) => None,
            (false, None) => Some(clock::now()),
            (false, since) => since,
        };
    }
    let _ = inputs.send(EngineInput::Disconnected { id }).await;
    write_task.abort();
    // (A TLS close_notify is not sent: the peer sees the TCP close, which
    // RFC 8446 §6.1 lets it treat as the end.)
}

/// Folds the metrics' histogram samples into buckets every few seconds,
/// whether or not anyone scrapes them (the memory they take stays flat).
async fn metrics_upkeep(metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => metrics.upkeep(),
        }
    }
}

/// What the persistence task needs besides the store: the engine's own
/// mapping of instants to wall-clock time (so that expiries are judged by
/// the clock that set them), and where to report what lapsed.
struct Sweep {
    wall_clock: WallClock,
    workspace: WorkspaceReader,
    events: broadcast::Sender<Event>,
}

/// The engine's requests to make registrations durable, and where to say
/// they are.
struct Commits {
    requests: tokio::sync::watch::Receiver<u64>,
    inputs: mpsc::Sender<EngineInput>,
    /// The last number reported to the engine.
    reported: u64,
}

impl Commits {
    /// Tells the engine whether the changes through `through` are on disk
    /// (once per number: a later report covers the earlier ones).
    async fn report(&mut self, through: u64, saved: bool) {
        if through > self.reported {
            self.reported = through;
            let _ = self
                .inputs
                .send(EngineInput::Persisted { through, saved })
                .await;
        }
    }
}

/// Expires lapsed bindings and journals changed ones, once a second and at
/// shutdown, and commits REGISTERs the engine holds the 200 of: as soon as
/// one asks, the journal is written and synced with every change made so
/// far, then the engine is told which requests that covered. While one sync
/// runs the next batch gathers (group commit), so one fsync serves many
/// REGISTERs at any rate. File IO runs on the blocking pool, never on the
/// engine's thread.
async fn persist_loop(
    presence: Arc<Presence>,
    store: RegistrationStore,
    sweep: Sweep,
    mut commits: Commits,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(PERSIST_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut store = Some(store);
    let mut requests_open = true;
    loop {
        let (stopping, sweep_due) = tokio::select! {
            _ = shutdown.cancelled() => (true, true),
            _ = ticker.tick() => (false, true),
            changed = commits.requests.changed(), if requests_open => {
                requests_open = changed.is_ok();
                (false, false)
            }
        };
        // Read before the journal is written: every change the engine made
        // before asking for `through` is then in this write.
        let through = *commits.requests.borrow_and_update();
        let Some(mut current) = store.take() else {
            // The store was lost (its task panicked): nothing can be made
            // durable any more, so every REGISTER waiting is told so (a
            // 500 it may retry elsewhere), never left without an answer.
            if stopping {
                break;
            }
            commits.report(through, false).await;
            continue;
        };
        let p = Arc::clone(&presence);
        let now_ms = sweep.wall_clock.unix_ms(clock::now());
        let result = tokio::task::spawn_blocking(move || {
            let (expired, lapsed) = if sweep_due {
                // A lease nobody released (a call lost by a bug) lapses here.
                (p.expire(now_ms), p.expire_leases(now_ms))
            } else {
                (Vec::new(), Vec::new())
            };
            let flushed = current.flush(&p).map(|(_, compaction)| {
                // The changes are durable; only the folding failed (tried
                // again at the next write).
                if let Some(e) = compaction {
                    tracing::error!(error = %e, "compacting the registrations journal");
                }
                0
            });
            let compacted = if stopping {
                current.compact(&p).map(|_| 0)
            } else {
                Ok(0)
            };
            (current, flushed.and(compacted), expired, lapsed)
        })
        .await;
        // (Not while stopping: the engine no longer reads its inputs, and
        // what this write saved is restored at the next start.)
        if let (Ok((_, outcome, _, _)), false) = (&result, stopping) {
            commits.report(through, outcome.is_ok()).await;
        }
        match result {
            Ok((current, outcome, expired, lapsed)) => {
                if let Err(e) = outcome {
                    tracing::error!(error = %e, "saving registrations");
                }
                store = Some(current);
                for (user, devices) in expired {
                    let _ = sweep
                        .events
                        .send(Event::RegistrationChanged { user, devices });
                }
                if !lapsed.is_empty() {
                    tracing::warn!(
                        users = lapsed.len(),
                        "call leases lapsed without being released"
                    );
                }
                let workspace = sweep.workspace.load();
                for (user, active_calls) in lapsed {
                    let max_calls = workspace
                        .directory
                        .user_index(&user)
                        .map_or(1, |i| workspace.directory.user(i).max_calls);
                    let busy = active_calls >= max_calls;
                    let _ = sweep.events.send(Event::BusyChanged {
                        user,
                        active_calls,
                        busy,
                    });
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "registration store task failed: registrations are no longer saved");
                if !stopping {
                    commits.report(through, false).await;
                }
            }
        }
        if stopping {
            break;
        }
    }
}
