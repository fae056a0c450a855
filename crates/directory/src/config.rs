//! The TOML file: raw serde shapes, then conversion into [`Config`].
//!
//! Parsing goes in two passes. The structural pass deserialises each table
//! (`[server]`, `[plan]`, every `[[trunks]]`, `[[users]]` and `[[numbers]]`
//! entry) on its own with `deny_unknown_fields`, so one bad entry does not hide
//! the next. Only when the whole file has the right shape does the semantic
//! pass run (addresses, limits, and [`Directory::from_workspace`]'s checks):
//! checking references against a half-read file would report errors that are
//! not there. Every error carries the line and column it points at.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::directory::{
    compile, Errors, NumberSpec, Strategy, TrunkSpec, UserSpec, UserStatus, WorkspaceSpec,
    DEFAULT_RING_TIMEOUT_SECS,
};
use crate::error::{ConfigError, ConfigErrors};
use crate::Directory;

/// A validated configuration file: the daemon's own settings and the
/// workspace snapshot.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub directory: Directory,
}

/// `[server]`: how the daemon runs. The domain also lives in the
/// [`Directory`], where routing and the registrar read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Digest realm and host part of user addresses.
    pub domain: String,
    pub sip_udp: Option<SocketAddr>,
    /// The address peers reach the SIP listeners at, written in Via and
    /// Contact. Required when a listener binds a wildcard address.
    pub advertise: Option<std::net::IpAddr>,
    pub sip_tcp: Option<SocketAddr>,
    pub admin_http: Option<SocketAddr>,
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
}

/// A digest algorithm the registrar can challenge with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    Md5,
    Sha256,
}

impl DigestAlgorithm {
    /// The token used in the file and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
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

impl Config {
    /// Reads and validates a file. `data_dir` is resolved relative to the
    /// file's parent directory. The only IO this crate does.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError::new(
                path,
                "",
                format!("cannot read the file: {e}"),
            )])
        })?;
        let base_dir = path.parent().unwrap_or_else(|| Path::new(""));
        Self::parse(&text, path, base_dir)
    }

    /// Same as [`Config::load`] from a string; `origin` is the file name used
    /// in error messages, `base_dir` resolves `data_dir`.
    pub fn parse(text: &str, origin: &Path, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let (doc, syntax_errors) = DeTable::parse_recoverable(text);
        if !syntax_errors.is_empty() {
            let list = syntax_errors
                .iter()
                .map(|e| ConfigError::new(origin, "", describe(text, e, 0..0)))
                .collect();
            return Err(ConfigErrors(list));
        }
        let doc = doc.into_inner();

        let mut errors = Errors::new(origin);
        let raw = read_document(&doc, text, &mut errors);
        let raw = match (raw, errors.is_empty()) {
            (Some(raw), true) => raw,
            _ => return Err(errors.finish().unwrap_or(ConfigErrors(Vec::new()))),
        };

        let server = server_config(raw.server, base_dir, &mut errors);
        let directory = compile(raw.workspace, &mut errors);
        // Semantic errors are found on plain data: point them back into the
        // file, and list them in file order.
        let list = errors.list_mut();
        let mut located: Vec<(usize, ConfigError)> = list
            .drain(..)
            .map(|mut error| match locate(&doc, &error.key) {
                Some(span) => {
                    error.reason = format!("{} ({})", error.reason, position(text, span.start));
                    (span.start, error)
                }
                None => (0, error),
            })
            .collect();
        located.sort_by_key(|(offset, _)| *offset);
        list.extend(located.into_iter().map(|(_, error)| error));
        match errors.finish() {
            Some(e) => Err(e),
            None => Ok(Config { server, directory }),
        }
    }
}

// ---------------------------------------------------------------------------
// Raw shapes of the file. Only serde's checks here; meaning comes later.

const TOP_LEVEL_KEYS: &[&str] = &["server", "plan", "trunks", "users", "numbers"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    domain: String,
    sip_udp: Option<String>,
    advertise: Option<String>,
    sip_tcp: Option<String>,
    admin_http: Option<String>,
    data_dir: Option<String>,
    log_format: Option<RawLogFormat>,
    min_expires: Option<u32>,
    max_expires: Option<u32>,
    default_expires: Option<u32>,
    digest_algorithms: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawLogFormat {
    Human,
    Json,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    seats: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrunk {
    name: String,
    sources: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    id: String,
    name: String,
    status: RawUserStatus,
    password: String,
    #[serde(default = "default_max_calls")]
    max_calls: u32,
}

fn default_max_calls() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawUserStatus {
    Active,
    Invited,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNumber {
    number: String,
    name: String,
    timezone: String,
    members: Vec<String>,
    #[serde(default = "default_ring_timeout")]
    ring_timeout: u32,
    routing: RawRouting,
}

fn default_ring_timeout() -> u32 {
    DEFAULT_RING_TIMEOUT_SECS
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouting {
    strategy: RawStrategy,
    ring: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawStrategy {
    Simultaneous,
    Cascade,
}

/// The whole file, shaped but not yet checked for meaning.
struct RawDocument {
    server: RawServer,
    workspace: WorkspaceSpec,
}

/// Structural pass: deserialises every table on its own and records every
/// failure. `None` when a required table is missing or malformed.
fn read_document(doc: &DeTable<'_>, text: &str, errors: &mut Errors<'_>) -> Option<RawDocument> {
    let mut server = None;
    let mut plan = None;
    let mut trunks = Vec::new();
    let mut users = Vec::new();
    let mut numbers = Vec::new();
    for (key, value) in doc.iter() {
        match key.get_ref().as_ref() {
            "server" => server = read_one::<RawServer>(value, "server", text, errors),
            "plan" => plan = read_one::<RawPlan>(value, "plan", text, errors),
            "trunks" => trunks = read_many::<RawTrunk>(value, "trunks", text, errors),
            "users" => users = read_many::<RawUser>(value, "users", text, errors),
            "numbers" => numbers = read_many::<RawNumber>(value, "numbers", text, errors),
            other => {
                // The message serde's deny_unknown_fields gives for the others.
                let e = <toml::de::Error as serde::de::Error>::unknown_field(other, TOP_LEVEL_KEYS);
                errors.push(other, describe(text, &e, key.span()));
            }
        }
    }
    for required in ["server", "plan"] {
        if !doc.contains_key(required) {
            errors.push(required, format!("missing table [{required}]"));
        }
    }

    let server = server?;
    let plan = plan?;
    let workspace = WorkspaceSpec {
        domain: server.domain.clone(),
        seats: plan.seats,
        trunks: trunks
            .into_iter()
            .map(|t| TrunkSpec {
                name: t.name,
                sources: t.sources,
            })
            .collect(),
        users: users
            .into_iter()
            .map(|u| UserSpec {
                id: u.id,
                name: u.name,
                status: match u.status {
                    RawUserStatus::Active => UserStatus::Active,
                    RawUserStatus::Invited => UserStatus::Invited,
                },
                password: u.password,
                max_calls: u.max_calls,
            })
            .collect(),
        numbers: numbers
            .into_iter()
            .map(|n| NumberSpec {
                number: n.number,
                name: n.name,
                timezone: n.timezone,
                members: n.members,
                strategy: match n.routing.strategy {
                    RawStrategy::Simultaneous => Strategy::Simultaneous,
                    RawStrategy::Cascade => Strategy::Cascade,
                },
                ring: n.routing.ring,
                ring_timeout_secs: n.ring_timeout,
            })
            .collect(),
    };
    Some(RawDocument { server, workspace })
}

/// Deserialises one table; on failure records serde's message under the key
/// path it happened at.
fn read_one<'i, T: Deserialize<'i>>(
    value: &Spanned<DeValue<'i>>,
    key: &str,
    text: &str,
    errors: &mut Errors<'_>,
) -> Option<T> {
    let span = value.span();
    match serde_path_to_error::deserialize(ValueDeserializer::from(value.clone())) {
        Ok(v) => Some(v),
        Err(e) => {
            let path = join_path(key, e.path());
            errors.push(path, describe(text, e.inner(), span));
            None
        }
    }
}

/// Deserialises an array of tables entry by entry, keeping the good ones.
fn read_many<'i, T: Deserialize<'i>>(
    value: &Spanned<DeValue<'i>>,
    key: &str,
    text: &str,
    errors: &mut Errors<'_>,
) -> Vec<T> {
    match value.get_ref() {
        DeValue::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| read_one(item, &format!("{key}[{i}]"), text, errors))
            .collect(),
        // Not an array: let serde say what it expected.
        _ => read_one::<Vec<T>>(value, key, text, errors).unwrap_or_default(),
    }
}

fn join_path(prefix: &str, path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = prefix.to_owned();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                out.push('.');
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                out.push('.');
                out.push_str(variant);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// serde's (or the TOML parser's) message, on one line, with its position.
fn describe(text: &str, e: &toml::de::Error, fallback: Range<usize>) -> String {
    let span = e.span().unwrap_or(fallback);
    let message = e.message().trim().replace('\n', "; ");
    format!("{message} ({})", position(text, span.start))
}

/// "line L, column C", both from 1, columns in characters.
fn position(text: &str, offset: usize) -> String {
    let bytes = text.as_bytes();
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    // Count characters, not bytes: skip UTF-8 continuation bytes.
    let column = before[line_start..]
        .iter()
        .filter(|&&b| (b & 0xC0) != 0x80)
        .count()
        + 1;
    format!("line {line}, column {column}")
}

/// Finds the value a key path such as `numbers[1].routing.ring[0]` names, or
/// the deepest part of it that exists.
fn locate(doc: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    let mut current: Option<&Spanned<DeValue<'_>>> = None;
    for part in key.split('.') {
        let (name, mut indices) = part.split_at(part.find('[').unwrap_or(part.len()));
        let next = match current {
            None => doc.get(name),
            Some(v) => v.get_ref().get(name),
        };
        let Some(mut value) = next else { break };
        current = Some(value);
        while let Some(rest) = indices.strip_prefix('[') {
            let Some((index, tail)) = rest.split_once(']') else {
                break;
            };
            indices = tail;
            match index
                .parse::<usize>()
                .ok()
                .and_then(|i| value.get_ref().get(i))
            {
                Some(v) => value = v,
                None => break,
            }
            current = Some(value);
        }
    }
    current.map(|v| v.span())
}

// ---------------------------------------------------------------------------
// Semantic pass for [server]; the workspace goes through `compile`.

fn server_config(raw: RawServer, base_dir: &Path, errors: &mut Errors<'_>) -> ServerConfig {
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
    for (key, bound) in [("sip_udp", sip_udp), ("sip_tcp", sip_tcp)] {
        if bound.is_some_and(|a| a.ip().is_unspecified()) && advertise.is_none() {
            errors.push(
                format!("server.{key}"),
                "binds a wildcard address: set server.advertise to the IP peers reach this server at",
            );
        }
    }

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

    ServerConfig {
        digest_algorithms,
        domain: raw.domain,
        sip_udp,
        advertise,
        sip_tcp,
        admin_http,
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
