//! The TOML file: raw serde shapes, then conversion into [`Config`]. The
//! `[server]` table is the running program's ([`ServerSection`]); the rest
//! is the workspace.
//!
//! Parsing goes in two passes. The structural pass deserialises each table
//! (`[server]`, `[plan]`, every `[[trunks]]`, `[[users]]` and `[[numbers]]`
//! entry) on its own with `deny_unknown_fields`, so one bad entry does not hide
//! the next. Only when the whole file has the right shape does the semantic
//! pass run (addresses, limits, and [`Directory::from_workspace`]'s checks):
//! checking references against a half-read file would report errors that are
//! not there. Every error carries the line and column it points at.

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::directory::{
    compile, Errors, NumberSpec, OutboundSpec, Strategy, TrunkSpec, UserSpec, UserStatus,
    WorkspaceSpec,
};
use crate::error::{ConfigError, ConfigErrors};
use crate::Directory;
use crate::{CallerId, DestinationSpec, HoursSpec, MediaSpec, MenuSpec, VoicemailSpec};

/// A validated configuration file: the settings of the program that runs
/// the workspace (its `[server]` table, parsed by `S`) and the workspace
/// snapshot.
#[derive(Debug, Clone)]
pub struct Config<S> {
    pub server: S,
    pub directory: Directory,
    /// The file it came from (named in errors found later, such as a
    /// prompt that cannot be read).
    pub origin: std::path::PathBuf,
}

/// The `[server]` table. It belongs to the program that serves the
/// workspace (the daemon's listeners, data directory, logs...), not to the
/// directory; this crate only reads the file around it, reports its errors
/// with the same file, key and position, and takes the domain from it.
pub trait ServerSection: Sized {
    /// The table's shape, for serde (use `deny_unknown_fields`).
    type Raw: DeserializeOwned;

    /// The digest realm and host part of user addresses, which the
    /// directory keeps (and checks).
    fn domain(raw: &Self::Raw) -> &str;

    /// The semantic pass: turns the shape into settings, reporting each
    /// problem under its key (`server.sip_udp`, ...). `base_dir` is the
    /// config file's directory, for relative paths.
    fn compile(raw: Self::Raw, base_dir: &Path, errors: &mut SectionErrors<'_, '_>) -> Self;
}

/// Where [`ServerSection::compile`] reports errors.
pub struct SectionErrors<'e, 'o>(&'e mut Errors<'o>);

impl SectionErrors<'_, '_> {
    /// An error at `key` (a full path such as `server.sip_udp`).
    pub fn push(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.0.push(key, reason);
    }
}

impl<S: ServerSection> Config<S> {
    /// Reads and validates a file. `data_dir` is resolved relative to the
    /// file's parent directory. The only IO this crate does.
    pub fn load(path: &Path) -> Result<Config<S>, ConfigErrors> {
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
    pub fn parse(text: &str, origin: &Path, base_dir: &Path) -> Result<Config<S>, ConfigErrors> {
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
        let raw = read_document::<S>(&doc, text, &mut errors);
        let raw = match (raw, errors.is_empty()) {
            (Some(raw), true) => raw,
            _ => return Err(errors.finish().unwrap_or(ConfigErrors(Vec::new()))),
        };

        let server = S::compile(raw.server, base_dir, &mut SectionErrors(&mut errors));
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
            None => Ok(Config {
                server,
                directory,
                origin: origin.to_path_buf(),
            }),
        }
    }
}

// ---------------------------------------------------------------------------
// Raw shapes of the file. Only serde's checks here; meaning comes later.

const TOP_LEVEL_KEYS: &[&str] = &[
    "server", "plan", "trunks", "users", "numbers", "menus", "media", "webhooks", "security",
    "outbound",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    allow: Option<Vec<String>>,
    max_failures: Option<u32>,
    failure_window: Option<u32>,
    ban_times: Option<Vec<u32>>,
    max_requests_per_second: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutboundRules {
    country_code: Option<String>,
    national_prefix: Option<String>,
    deny: Option<Vec<String>>,
    allow: Option<Vec<String>>,
    emergency: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    events: Vec<String>,
    secret: Option<String>,
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
    outbound: Option<RawOutbound>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbound {
    address: String,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    id: String,
    name: String,
    status: RawUserStatus,
    #[serde(default)]
    password: String,
    ha1_md5: Option<String>,
    ha1_sha256: Option<String>,
    #[serde(default = "default_max_calls")]
    max_calls: u32,
    #[serde(default)]
    do_not_disturb: bool,
    timezone: Option<String>,
    hours: Option<RawHours>,
    extension: Option<String>,
    default_number: Option<String>,
}

/// `[numbers.hours]` / `[users.hours]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHours {
    mon: Option<Vec<String>>,
    tue: Option<Vec<String>>,
    wed: Option<Vec<String>>,
    thu: Option<Vec<String>>,
    fri: Option<Vec<String>>,
    sat: Option<Vec<String>>,
    sun: Option<Vec<String>>,
    closed: Option<Vec<String>>,
    special: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

impl From<RawHours> for HoursSpec {
    fn from(raw: RawHours) -> Self {
        HoursSpec {
            days: [
                raw.mon, raw.tue, raw.wed, raw.thu, raw.fri, raw.sat, raw.sun,
            ]
            .map(Option::unwrap_or_default),
            closed: raw.closed.unwrap_or_default(),
            special: raw.special.unwrap_or_default(),
        }
    }
}

/// `[numbers.outside]`, `[numbers.no_answer]`: a table with an `action`.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
enum RawDestination {
    Hangup {
        status: Option<u16>,
    },
    Ring {
        users: Vec<String>,
        strategy: Option<RawStrategy>,
        step_timeout: Option<u32>,
        ring_timeout: Option<u32>,
    },
    Number {
        number: String,
    },
    Forward {
        to: String,
        caller_id: Option<RawCallerId>,
    },
    Voicemail {},
    Ivr {
        menu: Option<String>,
    },
    Message {
        prompt: String,
    },
}

/// `[numbers.ivr]`, `[menus.NAME]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMenu {
    greeting: String,
    timeout: Option<u32>,
    retries: Option<u32>,
    invalid: Option<String>,
    fallback: Option<RawDestination>,
    options: Option<std::collections::BTreeMap<String, RawDestination>>,
}

impl From<RawMenu> for MenuSpec {
    fn from(raw: RawMenu) -> Self {
        MenuSpec {
            greeting: raw.greeting,
            timeout_secs: raw.timeout,
            retries: raw.retries,
            invalid: raw.invalid,
            fallback: raw.fallback.map(DestinationSpec::from),
            options: raw
                .options
                .unwrap_or_default()
                .into_iter()
                .map(|(k, d)| (k, DestinationSpec::from(d)))
                .collect(),
        }
    }
}

/// `[numbers.voicemail]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVoicemail {
    greeting: Option<String>,
    max_length: Option<u32>,
    max_messages: Option<u32>,
}

/// `[media]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMedia {
    rtp_ports: Option<String>,
    advertise: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawCallerId {
    Caller,
    Number,
}

impl From<RawStrategy> for Strategy {
    fn from(raw: RawStrategy) -> Self {
        match raw {
            RawStrategy::Simultaneous => Strategy::Simultaneous,
            RawStrategy::Cascade => Strategy::Cascade,
        }
    }
}

impl From<RawDestination> for DestinationSpec {
    fn from(raw: RawDestination) -> Self {
        match raw {
            RawDestination::Hangup { status } => DestinationSpec::Hangup { status },
            RawDestination::Ring {
                users,
                strategy,
                step_timeout,
                ring_timeout,
            } => DestinationSpec::Ring {
                users,
                strategy: strategy.map(Strategy::from).unwrap_or_default(),
                step_timeout_secs: step_timeout,
                ring_timeout_secs: ring_timeout,
            },
            RawDestination::Number { number } => DestinationSpec::Number { number },
            RawDestination::Forward { to, caller_id } => DestinationSpec::Forward {
                to,
                caller_id: match caller_id {
                    None | Some(RawCallerId::Caller) => CallerId::Caller,
                    Some(RawCallerId::Number) => CallerId::Number,
                },
            },
            RawDestination::Voicemail {} => DestinationSpec::Voicemail,
            RawDestination::Ivr { menu } => DestinationSpec::Ivr { menu },
            RawDestination::Message { prompt } => DestinationSpec::Message { prompt },
        }
    }
}

fn default_max_calls() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawUserStatus {
    Active,
    Invited,
    Deactivated,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNumber {
    number: String,
    name: String,
    timezone: String,
    members: Vec<String>,
    ring_timeout: Option<u32>,
    routing: RawRouting,
    hours: Option<RawHours>,
    outside: Option<RawDestination>,
    no_answer: Option<RawDestination>,
    ivr: Option<RawMenu>,
    voicemail: Option<RawVoicemail>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouting {
    strategy: RawStrategy,
    ring: Vec<String>,
    step_timeout: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawStrategy {
    Simultaneous,
    Cascade,
}

/// The whole file, shaped but not yet checked for meaning.
struct RawDocument<S: ServerSection> {
    server: S::Raw,
    workspace: WorkspaceSpec,
}

/// Structural pass: deserialises every table on its own and records every
/// failure. `None` when a required table is missing or malformed.
fn read_document<S: ServerSection>(
    doc: &DeTable<'_>,
    text: &str,
    errors: &mut Errors<'_>,
) -> Option<RawDocument<S>> {
    let mut server = None;
    let mut plan = None;
    let mut trunks = Vec::new();
    let mut users = Vec::new();
    let mut numbers = Vec::new();
    let mut menus: Vec<(String, MenuSpec)> = Vec::new();
    let mut media = MediaSpec::default();
    let mut webhooks = Vec::new();
    let mut security = crate::SecuritySpec::default();
    let mut outbound = crate::OutboundRulesSpec::default();
    for (key, value) in doc.iter() {
        match key.get_ref().as_ref() {
            "server" => server = read_one::<S::Raw>(value, "server", text, errors),
            "plan" => plan = read_one::<RawPlan>(value, "plan", text, errors),
            "trunks" => trunks = read_many::<RawTrunk>(value, "trunks", text, errors),
            "users" => users = read_many::<RawUser>(value, "users", text, errors),
            "numbers" => numbers = read_many::<RawNumber>(value, "numbers", text, errors),
            "security" => {
                if let Some(s) = read_one::<RawSecurity>(value, "security", text, errors) {
                    security = crate::SecuritySpec {
                        allow: s.allow,
                        max_failures: s.max_failures,
                        failure_window: s.failure_window,
                        ban_times: s.ban_times,
                        max_requests_per_second: s.max_requests_per_second,
                    };
                }
            }
            "outbound" => {
                if let Some(o) = read_one::<RawOutboundRules>(value, "outbound", text, errors) {
                    outbound = crate::OutboundRulesSpec {
                        country_code: o.country_code,
                        national_prefix: o.national_prefix,
                        deny: o.deny,
                        allow: o.allow,
                        emergency: o.emergency,
                    };
                }
            }
            "webhooks" => {
                webhooks = read_many::<RawWebhook>(value, "webhooks", text, errors)
                    .into_iter()
                    .map(|w| crate::WebhookSpec {
                        url: w.url,
                        events: w.events,
                        secret: w.secret,
                    })
                    .collect()
            }
            "menus" => {
                if let Some(table) = read_one::<std::collections::BTreeMap<String, RawMenu>>(
                    value, "menus", text, errors,
                ) {
                    menus = table.into_iter().map(|(k, m)| (k, m.into())).collect();
                }
            }
            "media" => {
                if let Some(m) = read_one::<RawMedia>(value, "media", text, errors) {
                    media = MediaSpec {
                        rtp_ports: m.rtp_ports,
                        advertise: m.advertise,
                    };
                }
            }
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
        domain: S::domain(&server).to_owned(),
        seats: plan.seats,
        trunks: trunks
            .into_iter()
            .map(|t| TrunkSpec {
                name: t.name,
                sources: t.sources,
                outbound: t.outbound.map(|o| OutboundSpec {
                    address: o.address,
                    username: o.username,
                    password: o.password,
                }),
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
                    RawUserStatus::Deactivated => UserStatus::Deactivated,
                },
                password: u.password,
                ha1_md5: u.ha1_md5,
                ha1_sha256: u.ha1_sha256,
                max_calls: u.max_calls,
                do_not_disturb: u.do_not_disturb,
                timezone: u.timezone,
                hours: u.hours.map(HoursSpec::from),
                extension: u.extension,
                default_number: u.default_number,
            })
            .collect(),
        numbers: numbers
            .into_iter()
            .map(|n| NumberSpec {
                number: n.number,
                name: n.name,
                timezone: n.timezone,
                members: n.members,
                strategy: n.routing.strategy.into(),
                ring: n.routing.ring,
                ring_timeout_secs: n.ring_timeout,
                step_timeout_secs: n.routing.step_timeout,
                hours: n.hours.map(HoursSpec::from),
                outside: n.outside.map(DestinationSpec::from),
                no_answer: n.no_answer.map(DestinationSpec::from),
                ivr: n.ivr.map(MenuSpec::from),
                voicemail: n.voicemail.map(|v| VoicemailSpec {
                    greeting: v.greeting,
                    max_length_secs: v.max_length,
                    max_messages: v.max_messages,
                }),
            })
            .collect(),
        menus,
        media,
        webhooks,
        security,
        outbound,
    };
    Some(RawDocument { server, workspace })
}

/// Keys whose values are secrets: their errors never quote the value.
const SECRET_KEYS: &[&str] = &["password", "ha1_md5", "ha1_sha256", "secret", "admin_token"];

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
            let secret = SECRET_KEYS
                .iter()
                .any(|k| path.rsplit(['.', '[']).next() == Some(k));
            let reason = if secret {
                // serde's message quotes the value ("invalid type: integer
                // `424242`"): for a credential, only say what is wanted.
                let at = e.inner().span().unwrap_or(span);
                format!(
                    "must be a string; the value is not shown ({})",
                    position(text, at.start)
                )
            } else {
                describe(text, e.inner(), span)
            };
            errors.push(path, reason);
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
