//! The transaction layer of RFC 3261 §17, with the changes of RFC 6026
//! (the `Accepted` states and timers L and M). Sans-IO: time is passed in,
//! bytes to send and events for the transaction user are queued and drained
//! with [`Transactions::poll_output`].
//!
//! Drive it like this: feed every parsed request to
//! [`Transactions::on_request`] and every response to
//! [`Transactions::on_response`]; create server transactions for new
//! requests with [`Transactions::new_server`] and client ones with
//! [`Transactions::new_client`]; call [`Transactions::handle_timeout`] when
//! the instant from [`Transactions::poll_timeout`] has come.
//!
//! | timer | section | default | meaning |
//! |---|---|---|---|
//! | A | 17.1.1.2 | T1, doubling | INVITE request retransmit (unreliable only) |
//! | B | 17.1.1.2 | 64*T1 | INVITE transaction timeout |
//! | D | 17.1.1.2 | 32 s (0 reliable) | wait for response retransmits after ACK |
//! | E | 17.1.2.2 | T1, doubling to T2 | non-INVITE request retransmit (unreliable) |
//! | F | 17.1.2.2 | 64*T1 | non-INVITE transaction timeout |
//! | G | 17.2.1 | T1, doubling to T2 | INVITE final response retransmit (unreliable) |
//! | H | 17.2.1 | 64*T1 | wait for ACK receipt |
//! | I | 17.2.1 | T4 (0 reliable) | wait for ACK retransmits |
//! | J | 17.2.2 | 64*T1 (0 reliable) | wait for non-INVITE request retransmits |
//! | K | 17.1.2.2 | T4 (0 reliable) | wait for response retransmits |
//! | L | RFC 6026 §8.7 | 64*T1 | server INVITE `Accepted`: absorb retransmits, 2xx re-sent until ACK |
//! | M | RFC 6026 §8.4 | 64*T1 | client INVITE `Accepted`: pass 2xx retransmits up |

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::build::response_to;
use crate::header::BRANCH_COOKIE;
use crate::message::{HeaderName, Message, Method};

/// Where a response to `request` goes (RFC 3261 §18.2.2, RFC 3581 §4):
/// over a stream, back on the connection; over UDP, to the source address,
/// at the source port when `rport` was asked for, else at the top Via's
/// sent-by port (5060 when it names none).
pub fn response_peer(from: Peer, request: &Message) -> Peer {
    peer_for_via(from, request.top_via().as_ref())
}

/// [`response_peer`] with the top Via already read. A sender whose Via
/// names another IP than the one it sent from is behind NAT: its Via port
/// is not reachable either, so the answer goes back to the source port (as
/// `rport` would have asked).
fn peer_for_via(from: Peer, via: Option<&crate::header::Via<'_>>) -> Peer {
    if from.transport.is_reliable() {
        return from;
    }
    let Some(via) = via else {
        return from;
    };
    let natted = crate::header::host_ip(via.host).is_some_and(|ip| ip != from.addr.ip());
    if via.rport().is_some() || natted {
        return from;
    }
    Peer {
        transport: from.transport,
        addr: std::net::SocketAddr::new(from.addr.ip(), via.port.unwrap_or(5060)),
    }
}

/// The transport a message came in on or leaves by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    /// A TCP connection, named by the daemon's connection id.
    Tcp(u64),
    /// TCP to the peer's address over no connection we know: the driver
    /// uses one it has open to that address, else opens one (RFC 3261
    /// §18.1.1; a Contact's `;transport=tcp`, a TCP binding restored after
    /// a restart). Never the transport of a received message.
    TcpConnect,
    /// A TLS connection (RFC 3261 §26.2.1), named by the daemon's
    /// connection id. Reached only over the connection the device opened.
    Tls(u64),
}

impl Transport {
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp(_) | Transport::TcpConnect => "TCP",
            Transport::Tls(_) => "TLS",
        }
    }
}

/// Where a message came from or goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// Bytes to send.
#[derive(Clone, Debug)]
pub struct Transmit {
    pub to: Peer,
    pub bytes: Bytes,
}

/// RFC 3261 timer base values (§17.1.1.1, table 4).
#[derive(Clone, Copy, Debug)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Names a transaction for as long as it lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

/// What the transaction user hears.
#[derive(Clone, Debug)]
pub enum TxEvent<C> {
    /// A 1xx to a client transaction.
    Provisional { tx: TxId, ctx: C, response: Message },
    /// The first final response to a client transaction (non-2xx ACKs are
    /// already sent by the transaction).
    Final { tx: TxId, ctx: C, response: Message },
    /// A retransmitted 2xx to a client INVITE: the TU re-sends its ACK.
    Retransmitted2xx { tx: TxId, ctx: C, response: Message },
    /// Timer B or F fired: no final response came.
    Timeout { tx: TxId, ctx: C },
    /// A server INVITE transaction's final response was never acknowledged
    /// (timer H for non-2xx; timer L for a 2xx nobody ACKed).
    AckTimeout { tx: TxId, ctx: C, status: u16 },
}

/// What [`Transactions::poll_output`] yields, in the order it happened.
#[derive(Clone, Debug)]
pub enum Output<C> {
    Transmit(Transmit),
    Event(TxEvent<C>),
}

/// How an incoming request relates to the transactions we hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestMatch {
    /// A retransmission (or an ACK to a non-2xx) the layer handled itself.
    Absorbed,
    /// No transaction: the TU decides (create a server transaction unless ACK).
    New,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// A, E or G: retransmit.
    Retransmit,
    /// B, F, H, L or M: give up.
    Timeout,
    /// D, I, J or K: linger, then terminate.
    Linger,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
enum Kind {
    ClientInvite,
    ClientNonInvite,
    ServerInvite,
    ServerNonInvite,
}

struct Tx<C> {
    kind: Kind,
    state: State,
    key: String,
    peer: Peer,
    ctx: C,
    /// Dropped once nothing can need it (a server transaction's final
    /// response is out, a non-INVITE client one is answered): transactions
    /// linger up to 32 s and would otherwise hold every message that long.
    request: Option<Message>,
    /// Client: the request bytes. Server: the last response sent.
    last_sent: Option<Bytes>,
    last_status: u16,
    /// For the client INVITE `Completed` state: the ACK to re-send.
    ack: Option<Bytes>,
    interval: Duration,
    deadlines: [Option<Instant>; 3],
}

/// Every live transaction of one endpoint.
pub struct Transactions<C> {
    timers: TimerConfig,
    /// Sharded and boxed: the table grows to hundreds of thousands of
    /// entries under load (transactions linger 64*T1); a shard grows alone
    /// (a 256th of the entries rehashed at a time), and moving
    /// pointers instead of whole transactions keeps even that short.
    txs: ShardedMap<TxId, Box<Tx<C>>>,
    index: ShardedMap<String, TxId>,
    heap: BinaryHeap<Reverse<(Instant, TxId, Timer)>>,
    next_id: u64,
    out: VecDeque<Output<C>>,
    /// Messages re-sent by timers A, E and G since the start (for metrics).
    retransmissions: u64,
}

impl<C: Clone> Transactions<C> {
    pub fn new(timers: TimerConfig) -> Self {
        Transactions::with_capacity(timers, 0)
    }

    /// Room for `capacity` live transactions before any table grows (the
    /// tables grow a shard at a time past it; see [`shards`]).
    pub fn with_capacity(timers: TimerConfig, capacity: usize) -> Self {
        Transactions {
            timers,
            txs: ShardedMap::with_capacity(capacity),
            index: ShardedMap::with_capacity(capacity),
            heap: BinaryHeap::with_capacity(capacity * 2),
            next_id: 1,
            out: VecDeque::new(),
            retransmissions: 0,
        }
    }

    pub fn timers(&self) -> TimerConfig {
        self.timers
    }

    /// Requests and responses re-sent on a timer since the start.
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Live server transactions by the IP they came from, in a sample of
    /// a sixteenth of the table (all of it below 4,096), and the sample's
    /// size: who fills the table, for overload control.
    pub fn server_sources_sample(&self) -> (std::collections::HashMap<std::net::IpAddr, u32>, u32) {
        let mut by_source = std::collections::HashMap::new();
        let mut total = 0;
        // A small table is walked whole (a sixteenth would be too few).
        let every = if self.txs.len() < 4096 { 1 } else { 16 };
        for (_, tx) in self.txs.sample(every) {
            if matches!(tx.kind, Kind::ServerInvite | Kind::ServerNonInvite) {
                *by_source.entry(tx.peer.addr.ip()).or_insert(0) += 1;
                total += 1;
            }
        }
        (by_source, total)
    }

    /// One line per live transaction (kind, state, key, peer, deadlines,
    /// context): for tests and debugging, a walk over the whole table.
    pub fn describe(&self) -> Vec<String>
    where
        C: std::fmt::Debug,
    {
        self.txs
            .iter()
            .map(|(id, tx)| {
                format!(
                    "{id:?} {:?} {:?} {} {:?} deadlines {:?} {:?}",
                    tx.kind, tx.state, tx.key, tx.peer, tx.deadlines, tx.ctx
                )
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    pub fn poll_output(&mut self) -> Option<Output<C>> {
        self.out.pop_front()
    }

    /// The earliest instant a timer may fire (possibly one already cancelled).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    pub fn state(&self, tx: TxId) -> Option<State> {
        self.txs.get(&tx).map(|t| t.state)
    }

    /// The request a transaction was created for.
    pub fn request(&self, tx: TxId) -> Option<&Message> {
        self.txs.get(&tx).and_then(|t| t.request.as_ref())
    }

    /// Re-labels a transaction (the TU learns what it belongs to after creating it).
    pub fn set_context(&mut self, tx: TxId, ctx: C) {
        if let Some(t) = self.txs.get_mut(&tx) {
            t.ctx = ctx;
        }
    }

    pub fn context(&self, tx: TxId) -> Option<&C> {
        self.txs.get(&tx).map(|t| &t.ctx)
    }

    /// Matches a request against server transactions (§17.2.3). ACK matches
    /// the INVITE transaction it acknowledges.
    pub fn on_request(&mut self, now: Instant, request: &Message) -> RequestMatch {
        let Some(key) = server_key(request) else {
            return RequestMatch::New;
        };
        let Some(&id) = self.index.get(&key) else {
            return RequestMatch::New;
        };
        let is_ack = request.method() == Some(&Method::Ack);
        let Some(tx) = self.txs.get_mut(&id) else {
            return RequestMatch::New;
        };
        if is_ack {
            return match tx.state {
                State::Completed => {
                    tx.state = State::Confirmed;
                    tx.deadlines[Timer::Retransmit as usize] = None;
                    tx.deadlines[Timer::Timeout as usize] = None;
                    let linger = if tx.peer.transport.is_reliable() {
                        Duration::ZERO
                    } else {
                        self.timers.t4
                    };
                    self.arm(id, Timer::Linger, now + linger);
                    RequestMatch::Absorbed
                }
                State::Confirmed => RequestMatch::Absorbed,
                // An ACK to our 2xx: the TU's business.
                _ => RequestMatch::New,
            };
        }
        match tx.state {
            State::Proceeding | State::Completed => {
                if let Some(bytes) = &tx.last_sent {
                    self.retransmissions += 1;
                    self.out.push_back(Output::Transmit(Transmit {
                        to: tx.peer,
                        bytes: bytes.clone(),
                    }));
                }
            }
            State::Trying | State::Accepted | State::Confirmed => {}
            State::Calling | State::Terminated => return RequestMatch::New,
        }
        RequestMatch::Absorbed
    }

    /// Creates the server transaction for a new request (not ACK). An INVITE
    /// is answered `100 Trying` at once (§17.2.1), so the caller stops
    /// retransmitting while the routing decision is made.
    pub fn new_server(&mut self, now: Instant, from: Peer, request: Message, ctx: C) -> TxId {
        let _ = now;
        // Every response of the transaction, retransmissions included, goes
        // where §18.2.2 says, not simply back to the source port. (The top
        // Via is read once, for that and for the transaction's key.)
        let top = request.top_via();
        let from = peer_for_via(from, top.as_ref());
        let id = self.alloc_id();
        let key = match (&top, request.method()) {
            (Some(via), Some(method)) => {
                let method = if *method == Method::Ack {
                    "INVITE"
                } else {
                    method.as_str()
                };
                server_key_for(&request, via, method)
            }
            _ => None,
        }
        .unwrap_or_default();
        let is_invite = request.method() == Some(&Method::Invite);
        let trying = is_invite.then(|| response_to(&request, 100, "Trying", None, false));
        let mut tx = Tx {
            kind: if is_invite {
                Kind::ServerInvite
            } else {
                Kind::ServerNonInvite
            },
            state: if is_invite {
                State::Proceeding
            } else {
                State::Trying
            },
            key: key.clone(),
            peer: from,
            ctx,
            request: Some(request),
            last_sent: None,
            last_status: 0,
            ack: None,
            interval: self.timers.t1,
            deadlines: [None; 3],
        };
        if let Some(trying) = trying {
            let bytes = Bytes::from(trying.encode());
            tx.last_sent = Some(bytes.clone());
            tx.last_status = 100;
            self.out
                .push_back(Output::Transmit(Transmit { to: from, bytes }));
        }
        if !key.is_empty() {
            self.index.insert(key, id);
        }
        self.txs.insert(id, Box::new(tx));
        id
    }

    /// Sends a response on a server transaction.
    pub fn respond(&mut self, now: Instant, id: TxId, response: &Message) {
        let Some(status) = response.status() else {
            return;
        };
        let timers = self.timers;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        if matches!(
            tx.state,
            State::Completed | State::Confirmed | State::Accepted | State::Terminated
        ) {
            return;
        }
        let bytes = Bytes::from(response.encode());
        tx.last_sent = Some(bytes.clone());
        tx.last_status = status;
        let peer = tx.peer;
        let reliable = peer.transport.is_reliable();
        self.out
            .push_back(Output::Transmit(Transmit { to: peer, bytes }));
        if status >= 200 {
            tx.request = None;
        }
        if status < 200 {
            tx.state = State::Proceeding;
            return;
        }
        match tx.kind {
            Kind::ServerInvite if status < 300 => {
                // RFC 6026: stay to absorb INVITE retransmits; the 2xx is
                // re-sent (§13.3.1.4) until the TU reports the ACK.
                tx.state = State::Accepted;
                tx.interval = timers.t1;
                self.arm(id, Timer::Retransmit, now + timers.t1);
                self.arm(id, Timer::Timeout, now + timers.t1 * 64);
            }
            Kind::ServerInvite => {
                tx.state = State::Completed;
                tx.interval = timers.t1;
                if !reliable {
                    self.arm(id, Timer::Retransmit, now + timers.t1);
                }
                self.arm(id, Timer::Timeout, now + timers.t1 * 64);
            }
            Kind::ServerNonInvite => {
                tx.state = State::Completed;
                let linger = if reliable {
                    Duration::ZERO
                } else {
                    timers.t1 * 64
                };
                self.arm(id, Timer::Linger, now + linger);
            }
            Kind::ClientInvite | Kind::ClientNonInvite => {}
        }
    }

    /// The TU saw the ACK for the 2xx this server INVITE transaction sent:
    /// stop re-sending it. The transaction lingers until timer L.
    pub fn confirm_2xx(&mut self, id: TxId) {
        if let Some(tx) = self.txs.get_mut(&id) {
            if tx.state == State::Accepted {
                tx.deadlines[Timer::Retransmit as usize] = None;
                tx.last_status = 0;
                // Nothing re-sends the 2xx any more (INVITE retransmits are absorbed).
                tx.last_sent = None;
            }
        }
    }

    /// Starts a client transaction and sends the request. The request's top
    /// Via must carry a fresh branch.
    pub fn new_client(&mut self, now: Instant, to: Peer, request: Message, ctx: C) -> TxId {
        let id = self.alloc_id();
        let key = client_key_of_request(&request).unwrap_or_default();
        let is_invite = request.method() == Some(&Method::Invite);
        let bytes = Bytes::from(request.encode());
        self.out.push_back(Output::Transmit(Transmit {
            to,
            bytes: bytes.clone(),
        }));
        let tx = Tx {
            kind: if is_invite {
                Kind::ClientInvite
            } else {
                Kind::ClientNonInvite
            },
            state: if is_invite {
                State::Calling
            } else {
                State::Trying
            },
            key: key.clone(),
            peer: to,
            ctx,
            request: Some(request),
            last_sent: Some(bytes),
            last_status: 0,
            ack: None,
            interval: self.timers.t1,
            deadlines: [None; 3],
        };
        if !key.is_empty() {
            self.index.insert(key, id);
        }
        self.txs.insert(id, Box::new(tx));
        if !to.transport.is_reliable() {
            self.arm(id, Timer::Retransmit, now + self.timers.t1);
        }
        self.arm(id, Timer::Timeout, now + self.timers.t1 * 64);
        id
    }

    /// Matches a response to a client transaction (§17.1.3). Returns the
    /// response when no transaction claims it (a stray), so the TU can deal
    /// with a late 2xx.
    pub fn on_response(&mut self, now: Instant, response: Message) -> Option<Message> {
        let Some(key) = client_key_of_response(&response) else {
            return Some(response);
        };
        let Some(&id) = self.index.get(&key) else {
            return Some(response);
        };
        let status = response.status().unwrap_or(0);
        let timers = self.timers;
        let Some(tx) = self.txs.get_mut(&id) else {
            return Some(response);
        };
        let reliable = tx.peer.transport.is_reliable();
        match (tx.kind, tx.state) {
            (Kind::ClientInvite, State::Calling | State::Proceeding) => {
                tx.deadlines[Timer::Retransmit as usize] = None;
                if status >= 200 {
                    // The request is never re-sent once a final response came.
                    tx.last_sent = None;
                }
                if status < 200 {
                    if tx.state == State::Calling {
                        // Timer B only guards `Calling`; the TU bounds ringing.
                        tx.deadlines[Timer::Timeout as usize] = None;
                    }
                    tx.state = State::Proceeding;
                    self.out.push_back(Output::Event(TxEvent::Provisional {
                        tx: id,
                        ctx: tx.ctx.clone(),
                        response,
                    }));
                } else if status < 300 {
                    tx.state = State::Accepted;
                    tx.deadlines[Timer::Timeout as usize] = None;
                    self.out.push_back(Output::Event(TxEvent::Final {
                        tx: id,
                        ctx: tx.ctx.clone(),
                        response,
                    }));
                    self.arm(id, Timer::Linger, now + timers.t1 * 64);
                } else {
                    let ack = match &tx.request {
                        Some(request) => Bytes::from(ack_for_non_2xx(request, &response).encode()),
                        None => Bytes::new(),
                    };
                    self.out.push_back(Output::Transmit(Transmit {
                        to: tx.peer,
                        bytes: ack.clone(),
                    }));
                    tx.ack = Some(ack);
                    tx.state = State::Completed;
                    // Only the ACK is re-sent from here on.
                    tx.request = None;
                    tx.deadlines[Timer::Timeout as usize] = None;
                    self.out.push_back(Output::Event(TxEvent::Final {
                        tx: id,
                        ctx: tx.ctx.clone(),
                        response,
                    }));
                    let linger = if reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32).max(timers.t1 * 64)
                    };
                    self.arm(id, Timer::Linger, now + linger);
                }
            }
            (Kind::ClientInvite, State::Completed) => {
                if let Some(ack) = &tx.ack {
                    self.out.push_back(Output::Transmit(Transmit {
                        to: tx.peer,
                        bytes: ack.clone(),
                    }));
                }
            }
            (Kind::ClientInvite, State::Accepted) if (200..300).contains(&status) => {
                self.out.push_back(Output::Event(TxEvent::Retransmitted2xx {
                    tx: id,
                    ctx: tx.ctx.clone(),
                    response,
                }));
            }
            (Kind::ClientNonInvite, State::Trying | State::Proceeding) => {
                if status < 200 {
                    tx.state = State::Proceeding;
                    self.out.push_back(Output::Event(TxEvent::Provisional {
                        tx: id,
                        ctx: tx.ctx.clone(),
                        response,
                    }));
                } else {
                    tx.state = State::Completed;
                    tx.request = None;
                    tx.deadlines[Timer::Retransmit as usize] = None;
                    tx.deadlines[Timer::Timeout as usize] = None;
                    self.out.push_back(Output::Event(TxEvent::Final {
                        tx: id,
                        ctx: tx.ctx.clone(),
                        response,
                    }));
                    let linger = if reliable { Duration::ZERO } else { timers.t4 };
                    self.arm(id, Timer::Linger, now + linger);
                }
            }
            // Retransmitted responses in Completed are absorbed.
            _ => {}
        }
        None
    }

    /// Gives a client transaction that has no final response yet a
    /// deadline: at `at` it times out (a `Timeout` event) even in
    /// `Proceeding`, where RFC 3261 arms no timer of its own (the TU bounds
    /// ringing; §9.1 bounds the wait after a CANCEL).
    pub fn set_deadline(&mut self, id: TxId, at: Instant) {
        let pending = self.txs.get(&id).is_some_and(|tx| {
            matches!(tx.kind, Kind::ClientInvite | Kind::ClientNonInvite)
                && matches!(tx.state, State::Calling | State::Trying | State::Proceeding)
        });
        if pending {
            self.arm(id, Timer::Timeout, at);
        }
    }

    /// Builds the CANCEL for a client INVITE transaction (§9.1): same
    /// Request-URI, top Via, Call-ID, From, To, Route and CSeq number.
    pub fn cancel_for(&self, id: TxId) -> Option<Message> {
        let tx = self.txs.get(&id)?;
        if tx.kind != Kind::ClientInvite {
            return None;
        }
        let req = tx.request.as_ref()?;
        let mut cancel = Message::request(Method::Cancel, req.request_uri()?);
        cancel.push(HeaderName::Via, req.values(HeaderName::Via).next()?);
        copy(req, &mut cancel, HeaderName::From);
        copy(req, &mut cancel, HeaderName::To);
        copy(req, &mut cancel, HeaderName::CallId);
        let mut cseq = String::with_capacity(20);
        let _ = write!(cseq, "{} CANCEL", req.cseq()?.seq);
        cancel.push(HeaderName::CSeq, &cseq);
        for route in req.header_lines(HeaderName::Route) {
            cancel.push(HeaderName::Route, route);
        }
        cancel.push(HeaderName::MaxForwards, "70");
        Some(cancel)
    }

    /// The peer a transaction talks to.
    pub fn peer(&self, id: TxId) -> Option<Peer> {
        self.txs.get(&id).map(|t| t.peer)
    }

    /// Finds the server INVITE transaction a CANCEL targets (§9.2).
    pub fn find_invite_for_cancel(&self, cancel: &Message) -> Option<TxId> {
        let key = server_key_with_method(cancel, "INVITE")?;
        self.index.get(&key).copied()
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id, timer))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            let armed = self
                .txs
                .get(&id)
                .is_some_and(|tx| tx.deadlines[timer as usize] == Some(at));
            if armed {
                self.fire(now, id, timer, at);
            }
        }
    }

    fn fire(&mut self, now: Instant, id: TxId, timer: Timer, at: Instant) {
        let timers = self.timers;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        tx.deadlines[timer as usize] = None;
        match timer {
            Timer::Retransmit => {
                if let Some(bytes) = &tx.last_sent {
                    self.out.push_back(Output::Transmit(Transmit {
                        to: tx.peer,
                        bytes: bytes.clone(),
                    }));
                }
                // A doubles without cap; E (in Proceeding, T2 flat) and G cap at T2.
                let next = match (tx.kind, tx.state) {
                    (Kind::ClientInvite, _) => tx.interval * 2,
                    (Kind::ClientNonInvite, State::Proceeding) => timers.t2,
                    _ => (tx.interval * 2).min(timers.t2),
                };
                tx.interval = next;
                self.arm(id, Timer::Retransmit, at + next);
            }
            Timer::Timeout => {
                let ctx = tx.ctx.clone();
                let event = match tx.kind {
                    Kind::ClientInvite | Kind::ClientNonInvite => {
                        Some(TxEvent::Timeout { tx: id, ctx })
                    }
                    // H, or L with the 2xx never confirmed.
                    Kind::ServerInvite if tx.last_status >= 200 => Some(TxEvent::AckTimeout {
                        tx: id,
                        ctx,
                        status: tx.last_status,
                    }),
                    _ => None,
                };
                self.terminate(id);
                if let Some(event) = event {
                    self.out.push_back(Output::Event(event));
                }
            }
            Timer::Linger => {
                let _ = now;
                self.terminate(id);
            }
        }
    }

    /// A transport error toward `peer` (RFC 3261 §17.1.1.2, §17.1.2.2): a
    /// connection that could not be opened. Every client transaction to it
    /// still waiting for its final response fails at once, as a timeout
    /// would later. A walk over the table: for rare events only.
    pub fn transport_error(&mut self, peer: Peer) {
        let failed: Vec<TxId> = self
            .txs
            .iter()
            .filter(|(_, tx)| {
                tx.peer == peer
                    && matches!(tx.kind, Kind::ClientInvite | Kind::ClientNonInvite)
                    && matches!(tx.state, State::Calling | State::Trying | State::Proceeding)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in failed {
            let Some(ctx) = self.txs.get(&id).map(|tx| tx.ctx.clone()) else {
                continue;
            };
            self.terminate(id);
            self.out
                .push_back(Output::Event(TxEvent::Timeout { tx: id, ctx }));
        }
    }

    /// A stream connection closed: nothing sent over `transport` (its
    /// `Tcp(id)` or `Tls(id)`) can arrive any more. Client transactions
    /// still waiting fail at once (a `Timeout` event, as a transport error
    /// gives); server INVITE transactions that never sent a final response
    /// are dropped, as no response could reach their peer (RFC 3261
    /// §18.2.2). A walk over the table: for rare events only.
    pub fn connection_closed(&mut self, transport: Transport) {
        let gone: Vec<(TxId, bool)> = self
            .txs
            .iter()
            .filter(|(_, tx)| tx.peer.transport == transport)
            .filter_map(|(&id, tx)| match (tx.kind, tx.state) {
                (
                    Kind::ClientInvite | Kind::ClientNonInvite,
                    State::Calling | State::Trying | State::Proceeding,
                ) => Some((id, true)),
                (Kind::ServerInvite, State::Proceeding) => Some((id, false)),
                _ => None,
            })
            .collect();
        for (id, client) in gone {
            let ctx = self.txs.get(&id).map(|tx| tx.ctx.clone());
            self.terminate(id);
            if let (true, Some(ctx)) = (client, ctx) {
                self.out
                    .push_back(Output::Event(TxEvent::Timeout { tx: id, ctx }));
            }
        }
    }

    /// Removes a transaction at once (e.g. a TU that abandons a CANCEL).
    pub fn terminate(&mut self, id: TxId) {
        if let Some(tx) = self.txs.remove(&id) {
            if self.index.get(&tx.key) == Some(&id) {
                self.index.remove(&tx.key);
            }
        }
    }

    fn arm(&mut self, id: TxId, timer: Timer, at: Instant) {
        if let Some(tx) = self.txs.get_mut(&id) {
            tx.deadlines[timer as usize] = Some(at);
            self.heap.push(Reverse((at, id, timer)));
        }
    }

    fn alloc_id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }
}

fn copy(from: &Message, to: &mut Message, name: HeaderName) {
    if let Some(v) = from.header(name) {
        to.push(name, v);
    }
}

/// The ACK a client INVITE transaction sends for a non-2xx final (§17.1.1.3).
fn ack_for_non_2xx(request: &Message, response: &Message) -> Message {
    let mut ack = Message::request(Method::Ack, request.request_uri().unwrap_or("sip:invalid"));
    if let Some(via) = request.values(HeaderName::Via).next() {
        ack.push(HeaderName::Via, via);
    }
    copy(request, &mut ack, HeaderName::From);
    copy(response, &mut ack, HeaderName::To);
    copy(request, &mut ack, HeaderName::CallId);
    let seq = request.cseq().map(|c| c.seq).unwrap_or(1);
    let mut cseq = String::with_capacity(16);
    let _ = write!(cseq, "{seq} ACK");
    ack.push(HeaderName::CSeq, &cseq);
    for route in request.header_lines(HeaderName::Route) {
        ack.push(HeaderName::Route, route);
    }
    ack.push(HeaderName::MaxForwards, "70");
    ack
}

fn server_key(request: &Message) -> Option<String> {
    let method = match request.method()? {
        Method::Ack => "INVITE",
        m => m.as_str(),
    };
    server_key_with_method(request, method)
}

/// §17.2.3: branch plus sent-by plus method for RFC 3261 clients; for RFC
/// 2543 clients (no magic cookie), the dialog identifiers and CSeq number.
fn server_key_with_method(request: &Message, method: &str) -> Option<String> {
    server_key_for(request, &request.top_via()?, method)
}

fn server_key_for(request: &Message, via: &crate::header::Via<'_>, method: &str) -> Option<String> {
    let mut key = String::with_capacity(96);
    match via.branch() {
        Some(branch) if branch.starts_with(BRANCH_COOKIE) => {
            let _ = write!(
                key,
                "s|{branch}|{}:{}|{method}",
                via.host,
                via.port.unwrap_or(0)
            );
        }
        _ => {
            let _ = write!(
                key,
                "s2543|{}|{}|{}|{}:{}|{method}",
                request.call_id()?,
                request.cseq()?.seq,
                request.from_tag().unwrap_or(""),
                via.host,
                via.port.unwrap_or(0),
            );
        }
    }
    Some(key)
}

fn client_key(branch: &str, method: &str) -> String {
    let mut key = String::with_capacity(branch.len() + method.len() + 3);
    key.push_str("c|");
    key.push_str(branch);
    key.push('|');
    key.push_str(method);
    key
}

fn client_key_of_request(request: &Message) -> Option<String> {
    let via = request.top_via()?;
    Some(client_key(via.branch()?, request.method()?.as_str()))
}

/// §17.1.3: the top Via branch and the CSeq method.
fn client_key_of_response(response: &Message) -> Option<String> {
    let via = response.top_via()?;
    let cseq = response.cseq()?;
    Some(client_key(via.branch()?, cseq.method))
}

mod shards;
use shards::{ShardKey, ShardedMap};

impl ShardKey for TxId {
    /// Ids are handed out in sequence: their low bits spread them evenly.
    fn shard(&self, _seed: u64) -> usize {
        self.0 as usize & (shards::SHARDS - 1)
    }
}

#[cfg(test)]
mod tests;
