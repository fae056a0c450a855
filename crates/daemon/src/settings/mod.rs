//! The daemon's settings: the `[server]` table of the configuration file
//! (listeners, advertised address, data directory, logs, registration
//! limits, digest algorithms). The `directory` crate reads the file around
//! it and reports every error with the file, the key and the position; the
//! meaning of `[server]` is the daemon's own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use directory::{SectionErrors, ServerSection};
use engine::DigestAlgorithm;
use serde::Deserialize;

/// A validated configuration file: these settings and the workspace.
pub type Config = directory::Config<ServerConfig>;

/// `[server]`: how the daemon runs. The domain also lives in the
/// [`directory::Directory`], where routing and the registrar read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Digest realm and host part of user addresses.
    pub domain: String,
    pub sip_udp: Option<SocketAddr>,
    /// The address peers reach the SIP listeners at, written in Via and
    /// Contact. Required when a listener binds a wildcard address.
    pub advertise: Option<std::net::IpAddr>,
    pub sip_tcp: Option<SocketAddr>,
    /// SIP over TLS (RFC 3261 §26.2.1), with the certificate chain and
    /// private key (PEM files, resolved against the config file's folder).
    pub sip_tls: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub admin_http: Option<SocketAddr>,
    /// The bearer token of the admin API (`server.admin_token`; the
    /// `SWITCHBOARD_ADMIN_TOKEN` environment variable wins over it).
    pub admin_token: Option<Secret>,
    /// Already resolved against the config file's directory.
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    /// REGISTER expiry limits in seconds; `min <= default <= max`, `min >= 1`.
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    /// Digest algorithms offered in challenges, most preferred first
    /// (RFC 8760 §2.4). Never empty, no duplicates.
    pub digest_algorithms: Vec<DigestAlgorithm>,
    /// TCP connections one source address may hold open at once.
    pub tcp_max_per_source: usize,
    /// Whether the digest `uri` must match the Request-URI.
    pub digest_uri_check: bool,
    /// On SIGTERM, how long calls in progress may go on (new ones get 503)
    /// before they are hung up and the daemon stops.
    pub shutdown_grace: std::time::Duration,
    /// How soon a side of a call that vanished without a BYE is noticed.
    pub liveness_timeout: std::time::Duration,
    /// Live transactions past which new calls are shed with 503.
    pub overload_transactions: usize,
    /// Calls in progress at once; new INVITEs past it get 503.
    pub max_calls: usize,
    /// Devices one call may ring, over its whole life.
    pub max_legs_per_call: usize,
    /// Devices one user may sign in.
    pub max_bindings_per_user: usize,
    /// TCP and TLS connections open at once, from everyone.
    pub tcp_max_connections: usize,
    /// Bytes one connection may buffer for a message not yet complete.
    pub tcp_max_message: usize,
    /// How long a message may take to arrive whole once its first byte came.
    pub tcp_message_timeout: std::time::Duration,
}

/// A string that `Debug` never shows.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

impl LogFormat {
    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }
}

const DEFAULT_DATA_DIR: &str = "data";
const DEFAULT_MIN_EXPIRES: u32 = 60;
const DEFAULT_MAX_EXPIRES: u32 = 3600;
const DEFAULT_DEFAULT_EXPIRES: u32 = 3600;
const DEFAULT_SHUTDOWN_GRACE: u32 = 30;

impl ServerSection for ServerConfig {
    type Raw = RawServer;

    fn domain(raw: &RawServer) -> &str {
        &raw.domain
    }

    fn compile(raw: RawServer, base_dir: &Path, errors: &mut SectionErrors<'_, '_>) -> Self {
        server_config(raw, base_dir, errors)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    domain: String,
    sip_udp: Option<String>,
    advertise: Option<String>,
    sip_tcp: Option<String>,
    sip_tls: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    admin_http: Option<String>,
    admin_token: Option<String>,
    data_dir: Option<String>,
    log_format: Option<RawLogFormat>,
    min_expires: Option<u32>,
    max_expires: Option<u32>,
    default_expires: Option<u32>,
    digest_algorithms: Option<Vec<String>>,
    tcp_max_per_source: Option<u32>,
    digest_uri_check: Option<bool>,
    shutdown_grace: Option<u32>,
    liveness_timeout: Option<u32>,
    overload_transactions: Option<u32>,
    max_calls: Option<u32>,
    max_legs_per_call: Option<u32>,
    max_bindings_per_user: Option<u32>,
    tcp_max_connections: Option<u32>,
    tcp_max_message: Option<u32>,
    tcp_message_timeout: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawLogFormat {
    Human,
    Json,
}

fn server_config(
    raw: RawServer,
    base_dir: &Path,
    errors: &mut SectionErrors<'_, '_>,
) -> ServerConfig {
    let mut addr = |key: &str, value: Option<String>| -> Option<SocketAddr> {
        let value = value?;
        match SocketAddr::from_str(&value) {
            Ok(a) => Some(a),
            Err(_) => {
                errors.push(
                    format!("server.{key}"),
                    format!(
                        "`{value}` is not a socket address \
                         (such as `127.0.0.1:5060` or `[::1]:5060`)"
                    ),
                );
                None
            }
        }
    };
    let sip_udp = addr("sip_udp", raw.sip_udp);
    let sip_tcp = addr("sip_tcp", raw.sip_tcp);
    let sip_tls = addr("sip_tls", raw.sip_tls);
    let admin_http = addr("admin_http", raw.admin_http);
    let advertise = match raw.advertise {
        None => None,
        Some(value) => match std::net::IpAddr::from_str(&value) {
            Ok(ip) if !ip.is_unspecified() => Some(ip),
            _ => {
                errors.push(
                    "server.advertise",
                    format!("`{value}` is not a specific IP address (such as `192.0.2.10`)"),
                );
                None
            }
        },
    };
    // Via and Contact must name an address peers can reach; 0.0.0.0 is not one.
    for (key, bound) in [
        ("sip_udp", sip_udp),
        ("sip_tcp", sip_tcp),
        ("sip_tls", sip_tls),
    ] {
        if bound.is_some_and(|a| a.ip().is_unspecified()) && advertise.is_none() {
            errors.push(
                format!("server.{key}"),
                "binds a wildcard address: set server.advertise to the IP peers reach this server at",
            );
        }
    }

    let admin_token = match raw.admin_token {
        Some(token) if token.len() < 16 => {
            errors.push(
                "server.admin_token",
                "must be at least 16 characters (a guessable token is no protection)",
            );
            None
        }
        token => token.map(Secret),
    };
    let data_dir = raw.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned());
    if data_dir.is_empty() {
        errors.push("server.data_dir", "must not be empty");
    }

    let min_expires = raw.min_expires.unwrap_or(DEFAULT_MIN_EXPIRES);
    let max_expires = raw.max_expires.unwrap_or(DEFAULT_MAX_EXPIRES);
    let default_expires = raw.default_expires.unwrap_or(DEFAULT_DEFAULT_EXPIRES);
    if min_expires == 0 {
        errors.push("server.min_expires", "must be at least 1");
    }
    if min_expires > max_expires {
        errors.push(
            "server.min_expires",
            format!("min_expires ({min_expires}) is greater than max_expires ({max_expires})"),
        );
    } else if default_expires < min_expires {
        errors.push(
            "server.default_expires",
            format!("default_expires ({default_expires}) is less than min_expires ({min_expires})"),
        );
    } else if default_expires > max_expires {
        errors.push(
            "server.default_expires",
            format!(
                "default_expires ({default_expires}) is greater than max_expires ({max_expires})"
            ),
        );
    }

    let mut digest_algorithms = Vec::new();
    let names = raw
        .digest_algorithms
        .unwrap_or_else(|| vec!["SHA-256".to_owned(), "MD5".to_owned()]);
    if names.is_empty() {
        errors.push(
            "server.digest_algorithms",
            "must name at least one algorithm",
        );
    }
    for (i, name) in names.iter().enumerate() {
        let algorithm = if name.eq_ignore_ascii_case("MD5") {
            DigestAlgorithm::Md5
        } else if name.eq_ignore_ascii_case("SHA-256") {
            DigestAlgorithm::Sha256
        } else {
            errors.push(
                format!("server.digest_algorithms[{i}]"),
                format!("unknown algorithm {name:?}; expected \"SHA-256\" or \"MD5\""),
            );
            continue;
        };
        if digest_algorithms.contains(&algorithm) {
            errors.push(
                format!("server.digest_algorithms[{i}]"),
                format!("{name} is listed twice"),
            );
            continue;
        }
        digest_algorithms.push(algorithm);
    }

    let tls_cert = raw.tls_cert.map(|p| base_dir.join(p));
    let tls_key = raw.tls_key.map(|p| base_dir.join(p));
    if sip_tls.is_some() {
        for (key, path) in [("tls_cert", &tls_cert), ("tls_key", &tls_key)] {
            if path.is_none() {
                errors.push(
                    format!("server.{key}"),
                    "is required with server.sip_tls (a PEM file; scripts/tls-cert.sh makes a self-signed one)",
                );
            }
        }
    } else if tls_cert.is_some() || tls_key.is_some() {
        errors.push(
            "server.sip_tls",
            "tls_cert and tls_key are set but no sip_tls listener uses them",
        );
    }

    let liveness_timeout = raw.liveness_timeout.unwrap_or(120);
    if liveness_timeout < 10 {
        errors.push(
            "server.liveness_timeout",
            format!("{liveness_timeout} s is too short: at least 10 (each side is probed every half of it)"),
        );
    }

    let overload_transactions = raw.overload_transactions.unwrap_or(500_000);
    if overload_transactions < 100 {
        errors.push(
            "server.overload_transactions",
            "must be at least 100 (a call holds several transactions)",
        );
    }

    let tcp_max_per_source = raw.tcp_max_per_source.unwrap_or(100);
    if tcp_max_per_source == 0 {
        errors.push("server.tcp_max_per_source", "must be at least 1");
    }
    let mut at_least =
        |key: &'static str, value: Option<u32>, default: u32, min: u32, why: &str| {
            let value = value.unwrap_or(default);
            if value < min {
                errors.push(key, format!("{value} is too small: at least {min} ({why})"));
            }
            value.max(min)
        };
    let max_calls = at_least(
        "server.max_calls",
        raw.max_calls,
        50_000,
        1,
        "or no call could be taken",
    );
    let max_legs_per_call = at_least(
        "server.max_legs_per_call",
        raw.max_legs_per_call,
        100,
        1,
        "a call rings at least one device",
    );
    let max_bindings_per_user = at_least(
        "server.max_bindings_per_user",
        raw.max_bindings_per_user,
        16,
        1,
        "a user signs in at least one device",
    );
    let tcp_max_connections = at_least(
        "server.tcp_max_connections",
        raw.tcp_max_connections,
        10_000,
        1,
        "or no connection could be accepted",
    );
    let tcp_message_timeout = at_least(
        "server.tcp_message_timeout",
        raw.tcp_message_timeout,
        30,
        1,
        "seconds for a message to arrive whole",
    );
    let tcp_max_message = at_least(
        "server.tcp_max_message",
        raw.tcp_max_message,
        sip::message::MAX_MESSAGE_SIZE as u32,
        8192,
        "an INVITE with its SDP and a few proxies' headers needs several kilobytes",
    );
    if tcp_max_message as usize > sip::message::MAX_MESSAGE_SIZE {
        errors.push(
            "server.tcp_max_message",
            format!(
                "{tcp_max_message} is above the largest SIP message the parser takes ({} bytes)",
                sip::message::MAX_MESSAGE_SIZE
            ),
        );
    }
    ServerConfig {
        max_calls: max_calls as usize,
        max_legs_per_call: max_legs_per_call as usize,
        max_bindings_per_user: max_bindings_per_user as usize,
        tcp_max_connections: tcp_max_connections as usize,
        tcp_max_message: (tcp_max_message as usize).min(sip::message::MAX_MESSAGE_SIZE),
        tcp_message_timeout: std::time::Duration::from_secs(u64::from(tcp_message_timeout)),
        tcp_max_per_source: tcp_max_per_source.max(1) as usize,
        digest_uri_check: raw.digest_uri_check.unwrap_or(true),
        liveness_timeout: std::time::Duration::from_secs(u64::from(liveness_timeout.max(10))),
        overload_transactions: overload_transactions.max(100) as usize,
        shutdown_grace: std::time::Duration::from_secs(u64::from(
            raw.shutdown_grace.unwrap_or(DEFAULT_SHUTDOWN_GRACE),
        )),
        digest_algorithms,
        domain: raw.domain,
        sip_udp,
        advertise,
        sip_tcp,
        sip_tls,
        tls_cert,
        tls_key,
        admin_http,
        admin_token,
        data_dir: base_dir.join(data_dir),
        log_format: match raw.log_format {
            None | Some(RawLogFormat::Human) => LogFormat::Human,
            Some(RawLogFormat::Json) => LogFormat::Json,
        },
        min_expires,
        max_expires,
        default_expires,
    }
}

#[cfg(test)]
mod tests;
