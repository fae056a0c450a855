//! A small SIP user agent for end-to-end tests over real UDP on loopback:
//! phones that register with digest auth and answer, and a trunk that calls.
//! It builds messages as text and parses them with the `sip` crate, so the
//! daemon is exercised through its sockets exactly as a peer would.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sip::auth::{self, Algorithm};
use sip::{HeaderName, Message, Method};
use tokio::net::UdpSocket;

pub use sip;

/// How long a test waits for a message it expects.
pub const WAIT: Duration = Duration::from_secs(3);
/// How long a test waits to be sure a message does NOT come.
pub const QUIET: Duration = Duration::from_millis(700);

pub const SDP_OFFER: &str = "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n";

pub fn sdp_answer(port: u16) -> String {
    format!("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
}

/// A UDP endpoint that speaks SIP to the daemon.
pub struct Ua {
    socket: UdpSocket,
    pub addr: SocketAddr,
    pub server: SocketAddr,
    counter: u64,
    /// (branch, method) of requests already seen, to skip retransmissions.
    seen: HashSet<(String, String)>,
}

impl Ua {
    /// Binds on `ip` (any 127.x.y.z) and an ephemeral port.
    pub async fn bind(ip: &str, server: SocketAddr) -> Ua {
        let socket = UdpSocket::bind((ip, 0)).await.unwrap();
        let addr = socket.local_addr().unwrap();
        Ua {
            socket,
            addr,
            server,
            counter: 0,
            seen: HashSet::new(),
        }
    }

    /// Binds exactly `addr` (a port the test reserved for this peer).
    pub async fn bind_at(addr: SocketAddr, server: SocketAddr) -> Ua {
        let socket = UdpSocket::bind(addr).await.unwrap();
        Ua {
            socket,
            addr,
            server,
            counter: 0,
            seen: HashSet::new(),
        }
    }

    /// The UA's socket, for a peer that reads and answers on its own.
    pub fn into_socket(self) -> UdpSocket {
        self.socket
    }

    pub fn unique(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}-{}", self.addr.port(), self.counter)
    }

    pub async fn send_raw(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).await.unwrap();
    }

    pub async fn send(&self, message: &Message) {
        self.socket
            .send_to(&message.encode(), self.server)
            .await
            .unwrap();
    }

    /// The next message, or `None` after `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Message> {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (len, _) = tokio::time::timeout(wait, self.socket.recv_from(&mut buf))
                .await
                .ok()?
                .ok()?;
            let msg =
                Message::parse(&buf[..len]).expect("daemon sent a message that does not parse");
            if msg.is_request() {
                let key = (
                    msg.top_via()
                        .and_then(|v| v.branch())
                        .unwrap_or("")
                        .to_string(),
                    msg.method().unwrap().as_str().to_string(),
                );
                if !self.seen.insert(key) {
                    continue; // a retransmission
                }
            }
            return Some(msg);
        }
    }

    /// The next request with this method, skipping responses such as 100.
    pub async fn expect_request(&mut self, method: Method) -> Message {
        loop {
            let msg = self
                .recv_within(WAIT)
                .await
                .unwrap_or_else(|| panic!("{} expected a {method} request", self.addr));
            if msg.method() == Some(&method) {
                return msg;
            }
            assert!(
                !msg.is_request(),
                "{} expected {method}, got {}",
                self.addr,
                msg
            );
        }
    }

    /// The next final response (or the given provisional), skipping 100.
    pub async fn expect_response(&mut self, status: u16) -> Message {
        loop {
            let msg = self
                .recv_within(WAIT)
                .await
                .unwrap_or_else(|| panic!("{} expected a {status} response", self.addr));
            let provisional = msg.status().is_some_and(|s| s < 200);
            if provisional
                && (status >= 200 || msg.status() == Some(100))
                && msg.status() != Some(status)
            {
                continue;
            }
            assert_eq!(msg.status(), Some(status), "{} got {}", self.addr, msg);
            return msg;
        }
    }

    /// The first final response (>= 200), skipping provisionals.
    pub async fn final_response(&mut self) -> Message {
        loop {
            let msg = self
                .recv_within(WAIT)
                .await
                .unwrap_or_else(|| panic!("{} expected a final response", self.addr));
            if msg.status().is_some_and(|s| s >= 200) {
                return msg;
            }
        }
    }

    /// Nothing but (optionally) responses arrives for a while: no request.
    pub async fn expect_no_request(&mut self) {
        while let Some(msg) = self.recv_within(QUIET).await {
            assert!(
                !msg.is_request(),
                "{} got an unexpected request: {}",
                self.addr,
                msg
            );
        }
    }

    /// Answers a request as written, copying the dialog headers.
    pub async fn respond(
        &self,
        request: &Message,
        status: u16,
        to_tag: Option<&str>,
        body: Option<&str>,
    ) {
        let mut resp = sip::build::response_to(
            request,
            status,
            sip::build::reason_phrase(status),
            to_tag,
            false,
        );
        resp.push(HeaderName::Contact, &format!("<sip:ua@{}>", self.addr));
        if let Some(body) = body {
            resp.push(HeaderName::ContentType, "application/sdp");
            resp.set_body(body.as_bytes().to_vec().into());
        }
        self.send(&resp).await;
    }

    fn via(&mut self) -> String {
        let branch = self.unique("z9hG4bK");
        format!("SIP/2.0/UDP {};branch={branch};rport", self.addr)
    }

    /// REGISTER with digest auth; returns the final response.
    pub async fn register(
        &mut self,
        user: &str,
        password: &str,
        contact_port: Option<u16>,
        expires: u32,
    ) -> Message {
        self.register_with(user, password, contact_port, expires, Algorithm::Md5)
            .await
    }

    pub async fn register_with(
        &mut self,
        user: &str,
        password: &str,
        contact_port: Option<u16>,
        expires: u32,
        algorithm: Algorithm,
    ) -> Message {
        let contact = format!(
            "<sip:{user}@127.0.0.1:{}>",
            contact_port.unwrap_or(self.addr.port())
        );
        self.register_contact(user, password, &contact, expires, algorithm)
            .await
    }

    /// Registers `contact` (a whole Contact value, parameters included).
    pub async fn register_contact(
        &mut self,
        user: &str,
        password: &str,
        contact: &str,
        expires: u32,
        algorithm: Algorithm,
    ) -> Message {
        let call_id = self.unique("reg-");
        let build = |ua: &mut Ua, cseq: u32, auth_header: Option<String>| {
            let mut m = Message::request(Method::Register, "sip:switchboard.test");
            m.push(HeaderName::Via, &ua.via());
            m.push(
                HeaderName::From,
                &format!("<sip:{user}@switchboard.test>;tag={}", ua.unique("t")),
            );
            m.push(HeaderName::To, &format!("<sip:{user}@switchboard.test>"));
            m.push(HeaderName::CallId, &call_id);
            m.push(HeaderName::CSeq, &format!("{cseq} REGISTER"));
            m.push(HeaderName::Contact, contact);
            m.push(HeaderName::Expires, &expires.to_string());
            m.push(HeaderName::MaxForwards, "70");
            if let Some(a) = auth_header {
                m.push(HeaderName::Authorization, &a);
            }
            m
        };
        let first = build(self, 1, None);
        self.send(&first).await;
        let challenge = self.final_response().await;
        if challenge.status() != Some(401) {
            return challenge;
        }
        let header = digest_answer(
            &challenge,
            HeaderName::WwwAuthenticate,
            algorithm,
            user,
            password,
            "REGISTER",
            "sip:switchboard.test",
        );
        let second = build(self, 2, Some(header));
        self.send(&second).await;
        self.final_response().await
    }

    /// Builds an INVITE from this trunk to `number`.
    pub fn invite(&mut self, number: &str, from_user: &str) -> Message {
        let mut m = Message::request(Method::Invite, &format!("sip:{number}@{}", self.server));
        m.push(HeaderName::Via, &self.via());
        m.push(
            HeaderName::From,
            &format!(
                "\"Caller\" <sip:{from_user}@{}>;tag={}",
                self.addr.ip(),
                self.unique("c")
            ),
        );
        m.push(
            HeaderName::To,
            &format!("<sip:{number}@{}>", self.server.ip()),
        );
        m.push(HeaderName::CallId, &self.unique("call-"));
        m.push(HeaderName::CSeq, "1 INVITE");
        m.push(HeaderName::Contact, &format!("<sip:trunk@{}>", self.addr));
        m.push(HeaderName::MaxForwards, "70");
        m.push(HeaderName::ContentType, "application/sdp");
        m.set_body(SDP_OFFER.as_bytes().to_vec().into());
        m
    }

    /// ACK for a 2xx to `invite` (new branch, To from the response).
    pub async fn ack_2xx(&mut self, invite: &Message, ok: &Message) {
        let target = ok
            .values(HeaderName::Contact)
            .next()
            .and_then(sip::NameAddr::parse)
            .map(|c| c.uri.to_string())
            .unwrap();
        let mut ack = Message::request(Method::Ack, &target);
        ack.push(HeaderName::Via, &self.via());
        ack.push(HeaderName::From, invite.header(HeaderName::From).unwrap());
        ack.push(HeaderName::To, ok.header(HeaderName::To).unwrap());
        ack.push(HeaderName::CallId, invite.call_id().unwrap());
        ack.push(
            HeaderName::CSeq,
            &format!("{} ACK", invite.cseq().unwrap().seq),
        );
        ack.push(HeaderName::MaxForwards, "70");
        self.send(&ack).await;
    }

    /// ACK for a non-2xx final to `invite` (same branch, To from the response).
    pub async fn ack_non_2xx(&self, invite: &Message, response: &Message) {
        let to = response.header(HeaderName::To).unwrap();
        self.send(&same_transaction(invite, Method::Ack, to)).await;
    }

    /// CANCEL for `invite` (same branch and CSeq number).
    pub async fn cancel(&self, invite: &Message) {
        let to = invite.header(HeaderName::To).unwrap();
        self.send(&same_transaction(invite, Method::Cancel, to))
            .await;
    }

    /// An in-dialog request on a dialog where we are the caller (`local` is
    /// our From, `remote` the To with its tag) towards `target`.
    pub async fn in_dialog(
        &mut self,
        method: Method,
        target: &str,
        local: &str,
        remote: &str,
        call_id: &str,
        cseq: u32,
    ) -> Message {
        let m = self.dialog_request(method, target, local, remote, call_id, cseq);
        self.send(&m).await;
        m
    }

    /// [`Ua::in_dialog`]'s request, built but not sent (to add headers).
    pub fn dialog_request(
        &mut self,
        method: Method,
        target: &str,
        local: &str,
        remote: &str,
        call_id: &str,
        cseq: u32,
    ) -> Message {
        let mut m = Message::request(method.clone(), target);
        m.push(HeaderName::Via, &self.via());
        m.push(HeaderName::From, local);
        m.push(HeaderName::To, remote);
        m.push(HeaderName::CallId, call_id);
        m.push(HeaderName::CSeq, &format!("{cseq} {method}"));
        m.push(HeaderName::MaxForwards, "70");
        m.push(HeaderName::Contact, &format!("<sip:ua@{}>", self.addr));
        m
    }

    /// A request of ours in the dialog `invite` (ours) and its `ok` made,
    /// to the Contact the 200 gave.
    pub fn caller_request(
        &mut self,
        method: Method,
        invite: &Message,
        ok: &Message,
        cseq: u32,
    ) -> Message {
        let target = ok
            .values(HeaderName::Contact)
            .next()
            .and_then(sip::NameAddr::parse)
            .unwrap()
            .uri
            .to_string();
        self.dialog_request(
            method,
            &target,
            invite.header(HeaderName::From).unwrap(),
            ok.header(HeaderName::To).unwrap(),
            invite.call_id().unwrap(),
            cseq,
        )
    }

    /// We hang up the call `invite` and `ok` set up (BYE of CSeq `cseq`);
    /// the other side's 200 to it.
    pub async fn hang_up(&mut self, invite: &Message, ok: &Message, cseq: u32) {
        let bye = self.caller_request(Method::Bye, invite, ok, cseq);
        self.send(&bye).await;
        assert_eq!(self.final_response().await.status(), Some(200));
    }
}

/// A request that shares `invite`'s transaction (RFC 3261 §9.1, §17.1.1.3):
/// its Request-URI, top Via, From, Call-ID and CSeq number.
fn same_transaction(invite: &Message, method: Method, to: &str) -> Message {
    let mut m = Message::request(method.clone(), invite.request_uri().unwrap());
    m.push(
        HeaderName::Via,
        invite.values(HeaderName::Via).next().unwrap(),
    );
    m.push(HeaderName::From, invite.header(HeaderName::From).unwrap());
    m.push(HeaderName::To, to);
    m.push(HeaderName::CallId, invite.call_id().unwrap());
    m.push(
        HeaderName::CSeq,
        &format!("{} {method}", invite.cseq().unwrap().seq),
    );
    m.push(HeaderName::MaxForwards, "70");
    m
}

/// The Authorization value answering the challenge for `algorithm`.
pub fn digest_answer(
    challenge: &Message,
    header: HeaderName,
    algorithm: Algorithm,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> String {
    digest_answer_nc(challenge, header, algorithm, user, password, method, uri, 1)
}

/// [`digest_answer`] with the nonce count `nc` (each reuse of a nonce
/// must count up: the daemon refuses replays).
#[allow(clippy::too_many_arguments)]
pub fn digest_answer_nc(
    challenge: &Message,
    header: HeaderName,
    algorithm: Algorithm,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
) -> String {
    let line = challenge
        .header_lines(header)
        .find(|l| l.contains(&format!("algorithm={}", algorithm.as_str())))
        .unwrap_or_else(|| panic!("no {} challenge in {challenge}", algorithm.as_str()));
    let param = |name: &str| -> String {
        let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let end = line[start..].find('"').unwrap() + start;
        line[start..end].to_string()
    };
    let realm = param("realm");
    let nonce = param("nonce");
    let cnonce = "0a4f113b";
    let nc = &format!("{nc:08x}");
    let ha1 = auth::ha1(algorithm, user, &realm, password);
    let ha2 = auth::hash_hex(algorithm, &[method, uri]);
    let response = auth::hash_hex(algorithm, &[&ha1, &nonce, nc, cnonce, "auth", &ha2]);
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={}, cnonce=\"{cnonce}\", nc={nc}, qop=auth",
        algorithm.as_str()
    )
}

/// A test configuration: the daemon on 127.0.0.1 port 0 (UDP only), data in
/// `data_dir`, trunk source 127.0.0.1 only (127.0.0.2 is "the internet").
pub fn test_config(data_dir: &Path, extra: &str) -> switchboard::settings::Config {
    let text = test_config_text(data_dir, extra);
    switchboard::settings::Config::parse(&text, Path::new("test.toml"), data_dir).unwrap()
}

/// The text of [`test_config`], for tests that edit it.
pub fn test_config_text(data_dir: &Path, extra: &str) -> String {
    format!(
        r#"
[server]
domain = "switchboard.test"
sip_udp = "127.0.0.1:0"
data_dir = "{}"
digest_algorithms = ["MD5", "SHA-256"]

[plan]
seats = 20

[[trunks]]
name = "carrier"
sources = ["127.0.0.1/32"]

[[users]]
id = "alice"
name = "Alice"
status = "active"
password = "alice-pw"

[[users]]
id = "bob"
name = "Bob"
status = "active"
password = "bob-pw"

[[users]]
id = "carol"
name = "Carol"
status = "active"
password = "carol-pw"

[[users]]
id = "dave"
name = "Dave"
status = "invited"
password = "dave-pw"

[[users]]
id = "frank"
name = "Frank"
status = "active"
password = "frank-pw"

[[users]]
id = "gina"
name = "Gina"
status = "active"
password = "gina-pw"

# Sales: alice (two devices), bob and gina (never signs in) ring; carol is
# assigned but not routed; dave is invited; frank is not assigned.
[[numbers]]
number = "+15550100"
name = "Sales"
timezone = "Europe/Paris"
members = ["alice", "bob", "carol", "dave", "gina"]
ring_timeout = 5

[numbers.routing]
strategy = "simultaneous"
ring = ["alice", "bob", "dave", "gina"]

# Direct: only bob.
[[numbers]]
number = "+15550200"
name = "Bob direct"
timezone = "America/New_York"
members = ["bob"]

[numbers.routing]
strategy = "simultaneous"
ring = ["bob"]
{extra}
"#,
        data_dir.display()
    )
}

/// A SIP peer over one TCP connection (RFC 3261 §18.3 framing).
pub struct TcpUa {
    stream: Box<dyn SipStream>,
    pub addr: SocketAddr,
    buf: Vec<u8>,
    /// The Via token and the Contact's `transport`: `TCP` or `TLS`.
    pub transport: &'static str,
}

/// A byte stream a SIP peer talks over: TCP, or TLS over TCP.
pub trait SipStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> SipStream for T {}

impl TcpUa {
    pub async fn connect(server: SocketAddr) -> TcpUa {
        let stream = tokio::net::TcpStream::connect(server).await.unwrap();
        let addr = stream.local_addr().unwrap();
        TcpUa {
            stream: Box::new(stream),
            addr,
            buf: Vec::new(),
            transport: "TCP",
        }
    }

    /// A TLS connection to `server`, trusting only `cert` (DER) and
    /// checking that it names the server's IP address.
    pub async fn connect_tls(server: SocketAddr, cert: &[u8]) -> TcpUa {
        let stream = tls_connect(server, cert).await.expect("a TLS handshake");
        let addr = stream.get_ref().0.local_addr().unwrap();
        TcpUa {
            stream: Box::new(stream),
            addr,
            buf: Vec::new(),
            transport: "TLS",
        }
    }

    /// A connection the daemon opened to us (a device's listening port).
    pub fn accepted(stream: tokio::net::TcpStream) -> TcpUa {
        let addr = stream.local_addr().unwrap();
        TcpUa {
            stream: Box::new(stream),
            addr,
            buf: Vec::new(),
            transport: "TCP",
        }
    }

    pub async fn send(&mut self, message: &Message) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(&message.encode()).await.unwrap();
    }

    pub async fn recv(&mut self) -> Message {
        use tokio::io::AsyncReadExt;
        loop {
            match sip::framing::next_frame(&self.buf).unwrap() {
                sip::framing::Frame::Message(n) => {
                    let msg = Message::parse(&self.buf[..n]).unwrap();
                    self.buf.drain(..n);
                    return msg;
                }
                sip::framing::Frame::KeepAlive(n) => {
                    self.buf.drain(..n);
                }
                sip::framing::Frame::Incomplete => {
                    let mut chunk = [0u8; 4096];
                    let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                        .await
                        .expect("a message over TCP")
                        .unwrap();
                    assert!(n > 0, "connection closed");
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }

    /// REGISTER with digest auth over this connection.
    pub async fn register(&mut self, user: &str, password: &str) -> Message {
        let contact = format!(
            "<sip:{user}@{};transport={}>",
            self.addr,
            self.transport.to_ascii_lowercase()
        );
        self.register_contact(user, password, &contact).await
    }

    /// REGISTER of `contact` with digest auth over this connection.
    pub async fn register_contact(&mut self, user: &str, password: &str, contact: &str) -> Message {
        let build = |ua: &TcpUa, cseq: u32, auth_header: Option<String>| {
            let mut m = Message::request(Method::Register, "sip:switchboard.test");
            m.push(
                HeaderName::Via,
                &format!(
                    "SIP/2.0/{} {};branch=z9hG4bKtcp{cseq}",
                    ua.transport, ua.addr
                ),
            );
            m.push(
                HeaderName::From,
                &format!("<sip:{user}@switchboard.test>;tag=tcp"),
            );
            m.push(HeaderName::To, &format!("<sip:{user}@switchboard.test>"));
            m.push(HeaderName::CallId, "tcp-reg");
            m.push(HeaderName::CSeq, &format!("{cseq} REGISTER"));
            m.push(HeaderName::Contact, contact);
            m.push(HeaderName::Expires, "300");
            if let Some(a) = auth_header {
                m.push(HeaderName::Authorization, &a);
            }
            m
        };
        let first = build(self, 1, None);
        self.send(&first).await;
        let challenge = self.recv().await;
        assert_eq!(challenge.status(), Some(401));
        let answer = digest_answer(
            &challenge,
            HeaderName::WwwAuthenticate,
            Algorithm::Md5,
            user,
            password,
            "REGISTER",
            "sip:switchboard.test",
        );
        let second = build(self, 2, Some(answer));
        self.send(&second).await;
        self.recv().await
    }
}

/// A TLS client connection to `server` that trusts `cert` (DER) alone.
pub async fn tls_connect(
    server: SocketAddr,
    cert: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert.to_vec()))
        .map_err(std::io::Error::other)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server).await?;
    let name = rustls::pki_types::ServerName::IpAddress(server.ip().into());
    connector.connect(name, tcp).await
}

/// [`test_config_text`] with `server` (lines of `[server]` keys) added to
/// its `[server]` table.
pub fn config_text_with_server(data_dir: &Path, server: &str, extra: &str) -> String {
    test_config_text(data_dir, extra).replacen(
        "sip_udp = \"127.0.0.1:0\"",
        &format!("sip_udp = \"127.0.0.1:0\"\n{server}"),
        1,
    )
}

/// A daemon on [`config_text_with_server`] in a fresh data directory
/// (kept as long as the returned directory lives).
pub async fn start_daemon(
    server: &str,
    extra: &str,
) -> (switchboard::server::Daemon, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text_with_server(dir.path(), server, extra);
    let config = switchboard::settings::Config::parse(&text, Path::new("t.toml"), dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    let daemon = switchboard::server::Daemon::start(config).await.unwrap();
    (daemon, dir)
}

/// The token the admin tests configure.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// [`test_config_text`] with the admin API on port 0 behind [`ADMIN_TOKEN`].
pub fn admin_config_text(data_dir: &Path, extra: &str) -> String {
    test_config_text(data_dir, extra).replacen(
        "sip_udp = \"127.0.0.1:0\"",
        &format!(
            "sip_udp = \"127.0.0.1:0\"\n# The admin API, for the tests.\nadmin_http = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN_TOKEN}\""
        ),
        1,
    )
}

/// One admin API request over real HTTP: the status and the JSON body
/// (`Null` when empty). `token` `None` sends no Authorization.
pub async fn api(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let url = format!("http://{admin}{path}");
    let method = method.to_owned();
    let token = token.map(|t| format!("Bearer {t}"));
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let result = match method.as_str() {
            "GET" | "DELETE" => {
                let mut r = if method == "GET" {
                    agent.get(&url)
                } else {
                    agent.delete(&url)
                };
                if let Some(t) = &token {
                    r = r.header("Authorization", t);
                }
                r.call()
            }
            m => {
                let mut r = match m {
                    "PUT" => agent.put(&url),
                    "PATCH" => agent.patch(&url),
                    _ => agent.post(&url),
                };
                if let Some(t) = &token {
                    r = r.header("Authorization", t);
                }
                match body {
                    Some(b) => r.send_json(b),
                    None => r.send_empty(),
                }
            }
        };
        let mut response = result.expect("the admin API answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let json = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        (status, json)
    })
    .await
    .expect("the request task")
}

/// A phone of `user` signed in (over UDP, for 300 s) to `server`.
pub async fn signed_in(server: SocketAddr, user: &str, password: &str) -> Ua {
    let mut phone = Ua::bind("127.0.0.1", server).await;
    let answer = phone.register(user, password, None, 300).await;
    assert_eq!(answer.status(), Some(200), "{user} signs in: {answer}");
    phone
}

/// The phone answers the INVITE it gets; returns it and its tag.
pub async fn answer(phone: &mut Ua, media_port: u16) -> (Message, String) {
    let invite = phone.expect_request(Method::Invite).await;
    let tag = phone.unique("ph");
    phone.respond(&invite, 180, Some(&tag), None).await;
    phone
        .respond(&invite, 200, Some(&tag), Some(&sdp_answer(media_port)))
        .await;
    phone.expect_request(Method::Ack).await;
    (invite, tag)
}

/// The trunk calls `number`, gets the 200 and ACKs it.
pub async fn answered_call(trunk: &mut Ua, phone: &mut Ua, number: &str) -> (Message, Message) {
    let invite = trunk.invite(number, "+15551234567");
    trunk.send(&invite).await;
    answer(phone, 43000).await;
    let ok = trunk.expect_response(200).await;
    trunk.ack_2xx(&invite, &ok).await;
    (invite, ok)
}

/// The trunk hangs an answered call up; the daemon's 200 to its BYE.
pub async fn trunk_bye(trunk: &mut Ua, invite: &Message, ok: &Message) {
    trunk.hang_up(invite, ok, 2).await;
}

/// A REGISTER of `user` (at `switchboard.test`) from `ua`, in `call_id`
/// with `cseq`, its Contact `ua`'s address and a branch of its own; callers
/// add Expires or Authorization.
pub fn register_request(ua: &Ua, user: &str, call_id: &str, cseq: u32) -> Message {
    static BRANCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let branch = BRANCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut m = Message::request(Method::Register, "sip:switchboard.test");
    m.push(
        HeaderName::Via,
        &format!("SIP/2.0/UDP {};branch=z9hG4bKrr{branch}", ua.addr),
    );
    m.push(
        HeaderName::From,
        &format!("<sip:{user}@switchboard.test>;tag=rr"),
    );
    m.push(HeaderName::To, &format!("<sip:{user}@switchboard.test>"));
    m.push(HeaderName::CallId, call_id);
    m.push(HeaderName::CSeq, &format!("{cseq} REGISTER"));
    m.push(HeaderName::Contact, &format!("<sip:{user}@{}>", ua.addr));
    m
}

/// The caller's RTP side.
pub struct Rtp {
    pub socket: UdpSocket,
    pub sender: media::rtp::RtpSender,
}

impl Rtp {
    pub async fn bind() -> Rtp {
        Rtp {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            sender: media::rtp::RtpSender::new(77, 1, 0),
        }
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }

    /// An offer without telephone-event: a phone that sends keys in band.
    pub fn offer_without_events(&self) -> String {
        format!(
            "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            self.port()
        )
    }

    pub fn offer(&self) -> String {
        format!(
            "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
            self.port()
        )
    }

    /// The next RTP packet from the daemon (payload decoded), within 2 s.
    pub async fn recv(&self) -> Option<(SocketAddr, Vec<i16>, u32)> {
        let mut buf = [0u8; 2048];
        loop {
            let (n, from) =
                tokio::time::timeout(Duration::from_secs(2), self.socket.recv_from(&mut buf))
                    .await
                    .ok()?
                    .ok()?;
            if let media::rtp::Datagram::Rtp(p) = media::rtp::classify(&buf[..n]) {
                let mut samples = Vec::new();
                media::g711::Law::Mu.decode_into(&p.payload, &mut samples);
                return Some((from, samples, p.timestamp));
            }
        }
    }

    /// Waits until the daemon has played sound and then gone quiet for
    /// 100 ms, or stopped sending (its prompts are done); returns where its
    /// RTP comes from.
    pub async fn until_prompts_done(&self) -> SocketAddr {
        let mut heard = false;
        let mut quiet = 0;
        let mut last = None;
        // Bounded: 30 s of packets at most, sound or not.
        for _ in 0..1500 {
            let Some((from, samples, _)) = self.recv().await else {
                match (heard, last) {
                    (true, Some(from)) => return from,
                    _ => panic!("no RTP from the daemon"),
                }
            };
            last = Some(from);
            let loud = samples.iter().any(|s| s.unsigned_abs() > 1000);
            if loud {
                heard = true;
                quiet = 0;
            } else if heard {
                quiet += 1;
                if quiet >= 5 {
                    return from;
                }
            }
        }
        panic!("the daemon's prompts never ended (30 s of RTP)");
    }

    pub async fn send_tone(&mut self, to: SocketAddr, hz: f32, ms: u32) {
        let n = 8 * ms as usize;
        let samples: Vec<i16> = (0..n)
            .map(|i| (8000.0 * (2.0 * std::f32::consts::PI * hz * i as f32 / 8000.0).sin()) as i16)
            .collect();
        for chunk in samples.chunks(160) {
            let mut codes = Vec::new();
            media::g711::Law::Mu.encode_into(chunk, &mut codes);
            let packet = self.sender.packet(0, &codes, 160);
            self.socket.send_to(&packet, to).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub async fn send_digit(&mut self, to: SocketAddr, digit: char) {
        let event = media::dtmf::event_of_digit(digit).unwrap();
        let ts = self.sender.timestamp();
        for (end, duration) in [
            (false, 160),
            (false, 320),
            (true, 480),
            (true, 480),
            (true, 480),
        ] {
            let payload = media::dtmf::Event {
                event,
                end,
                volume: 10,
                duration,
            }
            .to_bytes();
            let packet = self
                .sender
                .packet_at(101, &payload, ts, !end && duration == 160);
            self.socket.send_to(&packet, to).await.unwrap();
        }
        self.sender.skip(480);
    }
}

/// A short prompt: 0.2 s of a 600 Hz tone.
pub fn short_prompt(dir: &std::path::Path, name: &str) -> String {
    let samples: Vec<i16> = (0..1600)
        .map(|i| (6000.0 * (2.0 * std::f32::consts::PI * 600.0 * i as f32 / 8000.0).sin()) as i16)
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, media::wav::encode(&samples)).unwrap();
    path.display().to_string()
}

/// +15550900 is closed all the time and sends calls to `outside`. Each
/// test's daemon gets its own RTP ports (tests run side by side).
pub fn media_number(outside: &str, extra: &str) -> String {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 21000 + 100 * NEXT.fetch_add(1, Ordering::Relaxed);
    let last = base + 99;
    format!(
        r#"
[media]
rtp_ports = "{base}-{last}"

[[numbers]]
number = "+15550900"
name = "Mailbox"
timezone = "UTC"
members = []

[numbers.routing]
strategy = "simultaneous"
ring = []

[numbers.hours]

[numbers.outside]
{outside}

{extra}
"#
    )
}

/// A daemon binary started on `config` for the load tools, with the
/// addresses it logged as listening on; its warnings and errors are shown.
pub struct DaemonProcess {
    pub child: std::process::Child,
    pub udp: SocketAddr,
    pub tcp: Option<SocketAddr>,
}

impl DaemonProcess {
    pub fn start(binary: &str, config: &Path) -> DaemonProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(binary)
            .args(["--config", &config.display().to_string()])
            .env("RUST_LOG", "warn,switchboard::server=info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let addr = |tag: &str| {
                    line.split(tag)
                        .nth(1)
                        .and_then(|rest| rest.split(')').next())
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                };
                if let Some(udp) = addr("udp=Some(") {
                    let _ = tx.send((udp, addr("tcp=Some(")));
                } else if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("daemon: {line}");
                }
            }
        });
        let (udp, tcp) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the daemon's listening line");
        DaemonProcess { child, udp, tcp }
    }
}
