//! The compiled, immutable snapshot of a workspace, and the one validation
//! that every way of building it goes through.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use jiff::tz::TimeZone;

use crate::destination::{
    check_timeout, compile_destination, default_ring_timeout, Context, Destination, DestinationSpec,
};
use crate::e164::normalize_e164;
use crate::error::{ConfigError, ConfigErrors};
use crate::hours::{compile_hours, HoursSpec, Schedule};
use crate::media::{
    compile_media, compile_menu_destinations, compile_menu_shell, compile_voicemail, MediaSettings,
    MediaSpec, Menu, MenuIdx, MenuNames, MenuSpec, Prompt, PromptIdx, Prompts, Voicemail,
    VoicemailSpec,
};

/// Position of a user in [`Directory::users`]; valid only for the snapshot
/// that produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserIdx(pub u32);

/// Position of a number in [`Directory::numbers`]; valid only for the snapshot
/// that produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NumberIdx(pub u32);

/// Plain-data description of a workspace: what the TOML's `[plan]`,
/// `[[trunks]]`, `[[users]]` and `[[numbers]]` hold (plus `server.domain`),
/// so code can build a [`Directory`] without TOML. Nothing here is checked
/// until [`Directory::from_workspace`].
#[derive(Debug, Clone, Default)]
pub struct WorkspaceSpec {
    pub domain: String,
    pub seats: u32,
    pub trunks: Vec<TrunkSpec>,
    pub users: Vec<UserSpec>,
    pub numbers: Vec<NumberSpec>,
    /// `[menus.NAME]`, in name order.
    pub menus: Vec<(String, MenuSpec)>,
    /// `[media]`.
    pub media: MediaSpec,
    /// `[[webhooks]]`.
    pub webhooks: Vec<crate::WebhookSpec>,
    /// `[security]`.
    pub security: crate::SecuritySpec,
    /// `[outbound]`.
    pub outbound: crate::OutboundRulesSpec,
}

#[derive(Debug, Clone, Default)]
pub struct TrunkSpec {
    pub name: String,
    /// IP addresses or CIDRs, as text.
    pub sources: Vec<String>,
    /// Where calls out through this trunk go, with the credentials the
    /// carrier challenges for.
    pub outbound: Option<OutboundSpec>,
}

/// `outbound = { address = "127.0.0.1:5070", username = "acct", password = "secret" }`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OutboundSpec {
    pub address: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for OutboundSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundSpec")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| Redacted))
            .finish()
    }
}

/// `Default` gives an active user with `max_calls` 1 (the file's default).
#[derive(Clone)]
pub struct UserSpec {
    pub id: String,
    pub name: String,
    pub status: UserStatus,
    /// Empty when the user has only HA1 credentials.
    pub password: String,
    /// The digest HA1 values (`H(user:realm:password)`), in lowercase hex,
    /// kept instead of the password.
    pub ha1_md5: Option<String>,
    pub ha1_sha256: Option<String>,
    pub max_calls: u32,
    /// Do not disturb: skipped by every call until turned off.
    pub do_not_disturb: bool,
    /// IANA time zone of the user's own hours (required with `hours`).
    pub timezone: Option<String>,
    /// Personal hours: outside them the user is skipped on every number.
    pub hours: Option<HoursSpec>,
    /// Short number colleagues dial to ring this user (`"101"`).
    pub extension: Option<String>,
    /// The line (a number the user is a member of, as written) shown when
    /// they call out; else their first line.
    pub default_number: Option<String>,
}

impl Default for UserSpec {
    fn default() -> Self {
        Self {
            id: String::new(),
            name: String::new(),
            status: UserStatus::Active,
            password: String::new(),
            ha1_md5: None,
            ha1_sha256: None,
            max_calls: 1,
            do_not_disturb: false,
            timezone: None,
            hours: None,
            extension: None,
            default_number: None,
        }
    }
}

impl fmt::Debug for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSpec")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("status", &self.status)
            .field("password", &Redacted)
            .field("max_calls", &self.max_calls)
            .finish()
    }
}

/// `Default` gives a simultaneous number, always open, ringing for the
/// default time, in no time zone; `timezone` must be filled in.
#[derive(Debug, Clone, Default)]
pub struct NumberSpec {
    /// As written; normalised with [`normalize_e164`].
    pub number: String,
    pub name: String,
    /// IANA time zone name.
    pub timezone: String,
    /// User ids.
    pub members: Vec<String>,
    pub strategy: Strategy,
    /// User ids, each a member, in ringing order.
    pub ring: Vec<String>,
    /// The whole attempt's bound; default 30 s (simultaneous) or the steps
    /// added up, at most 120 s (cascade).
    pub ring_timeout_secs: Option<u32>,
    /// How long each user rings in a cascade; default 20 s.
    pub step_timeout_secs: Option<u32>,
    /// No hours: always open.
    pub hours: Option<HoursSpec>,
    /// Where calls go while closed; default hang up with 480.
    pub outside: Option<DestinationSpec>,
    /// Where calls go when nobody answers, everyone declined, or nobody
    /// could ring; default hang up with 480 (486 when everyone was busy).
    pub no_answer: Option<DestinationSpec>,
    /// `[numbers.ivr]`: the number's own menu.
    pub ivr: Option<MenuSpec>,
    /// `[numbers.voicemail]`; default settings when absent.
    pub voicemail: Option<VoicemailSpec>,
}

pub(crate) const DEFAULT_RING_TIMEOUT_SECS: u32 = 30;

/// A stored HA1: `len` hex digits, kept in lowercase.
fn ha1_value(
    value: Option<&str>,
    len: usize,
    key: &str,
    errors: &mut Errors<'_>,
) -> Option<String> {
    let value = value?;
    if value.len() != len || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        // The value is not quoted back: it is a credential.
        errors.push(
            key,
            format!("must be {len} hexadecimal digits (the output of `switchboard hash-password`)"),
        );
        return None;
    }
    Some(value.to_ascii_lowercase())
}

/// A person of the workspace. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// SIP username (digest username, user part of the AOR).
    pub id: String,
    pub name: String,
    pub status: UserStatus,
    /// Digest secret, in clear (empty when only HA1 values are kept).
    pub password: String,
    /// Stored HA1 values, lowercase hex; they win over the password.
    pub ha1_md5: Option<String>,
    pub ha1_sha256: Option<String>,
    /// Concurrent calls before the user counts as busy; at least 1.
    pub max_calls: u32,
    /// Skipped by every call (gate `do_not_disturb`) while set.
    pub do_not_disturb: bool,
    /// Personal hours, in the user's own time zone.
    pub hours: Option<UserHours>,
    /// Digits colleagues dial to ring them.
    pub extension: Option<String>,
    /// The numbers the user is a member of (their lines), in config order,
    /// with the one they call out from first.
    pub lines: Vec<NumberIdx>,
}

/// A user's own hours.
#[derive(Debug, Clone, PartialEq)]
pub struct UserHours {
    pub schedule: Schedule,
    pub timezone: TimeZone,
}

impl Eq for UserHours {}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("status", &self.status)
            .field("password", &Redacted)
            .field("max_calls", &self.max_calls)
            .field("do_not_disturb", &self.do_not_disturb)
            .field("hours", &self.hours)
            .field("extension", &self.extension)
            .field("lines", &self.lines)
            .finish()
    }
}

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Gate 1 of ringing: only active users take calls and sign in; invited
/// and deactivated ones hold a seat (a deactivated user keeps it, so
/// activating them again never fails for lack of seats).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserStatus {
    Active,
    Invited,
    Deactivated,
}

impl UserStatus {
    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Invited => "invited",
            UserStatus::Deactivated => "deactivated",
        }
    }
}

/// A line: an E.164 number with its own members and routing.
#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    /// Normalised, such as `"+15550100"`.
    pub e164: String,
    pub name: String,
    pub timezone: TimeZone,
    /// The canonical IANA name of `timezone`.
    pub timezone_name: String,
    /// Users assigned to the number (gate 2), in config order.
    pub members: Vec<UserIdx>,
    pub routing: Routing,
    /// The whole attempt's bound (for cascade, over every step).
    pub ring_timeout: Duration,
    /// `None`: always open.
    pub hours: Option<Schedule>,
    /// Where calls go while closed.
    pub outside: Destination,
    /// Where calls go when nobody takes them.
    pub no_answer: Destination,
    /// The number's own menu, if it has one.
    pub ivr: Option<MenuIdx>,
    pub voicemail: Voicemail,
}

impl Number {
    /// Whether `u` is assigned to this number. Linear: members are few.
    pub fn is_member(&self, u: UserIdx) -> bool {
        self.members.contains(&u)
    }
}

/// Who rings (gate 3) and how. Every entry of `ring` is a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    pub strategy: Strategy,
    /// In ringing order (the cascade order).
    pub ring: Vec<UserIdx>,
    /// The members not in `ring`, in member order: routing gives them
    /// their verdict without searching `ring`.
    pub not_in_ring: Vec<UserIdx>,
    /// How long each user rings in a cascade.
    pub step_timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Ring every free routed user at once; first answer wins.
    #[default]
    Simultaneous,
    /// Ring one after another in `ring` order.
    Cascade,
}

impl Strategy {
    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Simultaneous => "simultaneous",
            Strategy::Cascade => "cascade",
        }
    }
}

/// A carrier allowed to deliver calls, recognised by source address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    /// A bare IP in the file is a /32 or /128 here.
    pub sources: Vec<IpNet>,
    pub outbound: Option<Outbound>,
}

/// A trunk's outbound side: where calls out go, and the credentials the
/// carrier's 401/407 is answered with. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Outbound {
    pub address: SocketAddr,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| Redacted))
            .finish()
    }
}

impl Trunk {
    /// Whether `ip` is one of this trunk's sources. IPv4-mapped IPv6
    /// addresses (from dual-stack sockets) match their IPv4 form.
    pub fn accepts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.sources.iter().any(|net| net.contains(&ip))
    }
}

/// Immutable compiled snapshot of a workspace. Cheap lookups, no locks.
/// Users and numbers keep config order; indices are positions in them.
#[derive(Debug, Clone)]
pub struct Directory {
    domain: String,
    seats: u32,
    users: Vec<User>,
    numbers: Vec<Number>,
    trunks: Vec<Trunk>,
    user_by_id: HashMap<String, UserIdx>,
    number_by_e164: HashMap<String, NumberIdx>,
    menus: Vec<Menu>,
    prompts: Vec<Prompt>,
    media: MediaSettings,
    webhooks: Vec<crate::Webhook>,
    security: crate::Security,
    user_by_extension: HashMap<String, UserIdx>,
    outbound: crate::OutboundRules,
}

impl Directory {
    /// Every IVR menu (the numbers' own and the named ones).
    pub fn menus(&self) -> &[Menu] {
        &self.menus
    }

    /// Panics if `idx` did not come from this snapshot.
    pub fn menu(&self, idx: MenuIdx) -> &Menu {
        &self.menus[idx.0 as usize]
    }

    /// Every prompt the workspace plays, with the key that named it: the
    /// daemon reads and checks each at load.
    pub fn prompts(&self) -> &[Prompt] {
        &self.prompts
    }

    pub fn prompt(&self, idx: PromptIdx) -> &Prompt {
        &self.prompts[idx.0 as usize]
    }

    /// `[media]`.
    pub fn media(&self) -> &MediaSettings {
        &self.media
    }

    /// Bans: thresholds, and the addresses never banned.
    pub fn security(&self) -> &crate::Security {
        &self.security
    }

    /// Whether `ip` may never be banned: a trunk's source or `[security] allow`.
    pub fn never_banned(&self, ip: std::net::IpAddr) -> bool {
        self.trunk_for_source(ip).is_some() || self.security.allow.iter().any(|n| n.contains(&ip))
    }

    /// Where events are POSTed.
    pub fn webhooks(&self) -> &[crate::Webhook] {
        &self.webhooks
    }

    /// Digest realm and host part of user addresses.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn seats(&self) -> u32 {
        self.seats
    }

    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// Panics if `idx` did not come from this snapshot.
    pub fn user(&self, idx: UserIdx) -> &User {
        &self.users[idx.0 as usize]
    }

    pub fn user_index(&self, id: &str) -> Option<UserIdx> {
        self.user_by_id.get(id).copied()
    }

    /// The user whose `extension` is `digits`.
    pub fn user_by_extension(&self, digits: &str) -> Option<UserIdx> {
        self.user_by_extension.get(digits).copied()
    }

    /// `[outbound]`: the dialling rule, restrictions and emergency numbers.
    pub fn outbound_rules(&self) -> &crate::OutboundRules {
        &self.outbound
    }

    pub fn numbers(&self) -> &[Number] {
        &self.numbers
    }

    /// Panics if `idx` did not come from this snapshot.
    pub fn number(&self, idx: NumberIdx) -> &Number {
        &self.numbers[idx.0 as usize]
    }

    /// Lookup by already-normalised E.164 (`"+15550100"`); see
    /// [`normalize_e164`].
    pub fn number_index(&self, e164: &str) -> Option<NumberIdx> {
        self.number_by_e164.get(e164).copied()
    }

    pub fn trunks(&self) -> &[Trunk] {
        &self.trunks
    }

    /// The trunk whose sources contain this address, if any; the first in
    /// config order when several do.
    pub fn trunk_for_source(&self, ip: IpAddr) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.accepts(ip))
    }

    /// The trunk calls out go through: the first with an outbound side.
    pub fn outbound_trunk(&self) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.outbound.is_some())
    }

    /// Builds a snapshot from plain data, with exactly the validation the file
    /// gets. `origin` names the source in errors; keys follow the TOML layout
    /// (`users[3].id`, `numbers[1].routing.ring[0]`, `server.domain`).
    pub fn from_workspace(ws: WorkspaceSpec, origin: &Path) -> Result<Directory, ConfigErrors> {
        let mut errors = Errors::new(origin);
        let directory = compile(ws, &mut errors);
        match errors.finish() {
            Some(e) => Err(e),
            None => Ok(directory),
        }
    }
}

/// Collects problems against one origin.
pub(crate) struct Errors<'a> {
    origin: &'a Path,
    list: Vec<ConfigError>,
}

impl<'a> Errors<'a> {
    pub(crate) fn new(origin: &'a Path) -> Self {
        Self {
            origin,
            list: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.list.push(ConfigError::new(self.origin, key, reason));
    }

    pub(crate) fn origin(&self) -> &'a Path {
        self.origin
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn finish(self) -> Option<ConfigErrors> {
        if self.list.is_empty() {
            None
        } else {
            Some(ConfigErrors(self.list))
        }
    }

    pub(crate) fn list_mut(&mut self) -> &mut Vec<ConfigError> {
        &mut self.list
    }
}

/// Validates and compiles. Always returns a directory (possibly partial);
/// it is only meaningful when no error was pushed.
pub(crate) fn compile(ws: WorkspaceSpec, errors: &mut Errors<'_>) -> Directory {
    check_domain(&ws.domain, errors);

    if ws.users.len() > ws.seats as usize {
        errors.push(
            "plan.seats",
            format!(
                "{} users (invited and active, one seat each) but the plan has {} seats",
                ws.users.len(),
                ws.seats
            ),
        );
    }

    let trunks = compile_trunks(ws.trunks, errors);
    let has_outbound_trunk = trunks.iter().any(|t| t.outbound.is_some());
    let mut prompts = Prompts::new(errors.origin());
    let media = compile_media(&ws.media, errors);
    let webhooks = crate::webhooks::compile_webhooks(ws.webhooks, errors);
    let security = crate::security::compile_security(ws.security, errors);
    let outbound = crate::outbound::compile_outbound(ws.outbound, errors);
    let default_numbers: Vec<Option<String>> =
        ws.users.iter().map(|u| u.default_number.clone()).collect();
    let (mut users, user_by_id) = compile_users(ws.users, errors);
    let (numbers, number_by_e164, menus) = compile_numbers(
        ws.numbers,
        &ws.menus,
        &user_by_id,
        has_outbound_trunk,
        &mut prompts,
        errors,
    );
    assign_lines(
        &mut users,
        &numbers,
        &number_by_e164,
        &default_numbers,
        errors,
    );
    let user_by_extension = index_extensions(&users, &user_by_id, &outbound, errors);

    Directory {
        domain: ws.domain,
        seats: ws.seats,
        users,
        numbers,
        trunks,
        user_by_id,
        number_by_e164,
        menus,
        prompts: prompts.list,
        media,
        webhooks,
        security,
        user_by_extension,
        outbound,
    }
}

/// Each user's lines (the numbers listing them as members), the
/// `default_number` first when it is one of them.
fn assign_lines(
    users: &mut [User],
    numbers: &[Number],
    by_e164: &HashMap<String, NumberIdx>,
    default_numbers: &[Option<String>],
    errors: &mut Errors<'_>,
) {
    for (n, number) in numbers.iter().enumerate() {
        for &member in &number.members {
            if let Some(user) = users.get_mut(member.0 as usize) {
                user.lines.push(NumberIdx(n as u32));
            }
        }
    }
    for (i, (user, default)) in users.iter_mut().zip(default_numbers).enumerate() {
        let Some(default) = default else {
            continue;
        };
        let idx = normalize_e164(default).and_then(|e| by_e164.get(e.as_str()).copied());
        match idx.and_then(|idx| user.lines.iter().position(|&l| l == idx)) {
            Some(pos) => {
                let line = user.lines.remove(pos);
                user.lines.insert(0, line);
            }
            None if idx.is_some() => errors.push(
                format!("users[{i}].default_number"),
                format!(
                    "`{default}` is not one of {}'s lines (add them to that number's members first)",
                    user.id
                ),
            ),
            None => errors.push(
                format!("users[{i}].default_number"),
                format!("`{default}` is not one of the workspace's numbers"),
            ),
        }
    }
}

/// Extensions: digits, one user each, and neither a user id nor an
/// emergency number (a colleague dialling it must reach one person).
fn index_extensions(
    users: &[User],
    by_id: &HashMap<String, UserIdx>,
    outbound: &crate::OutboundRules,
    errors: &mut Errors<'_>,
) -> HashMap<String, UserIdx> {
    let mut by_extension: HashMap<String, UserIdx> = HashMap::new();
    for (i, user) in users.iter().enumerate() {
        let Some(ext) = &user.extension else {
            continue;
        };
        let key = format!("users[{i}].extension");
        if ext.is_empty() || ext.len() > 10 || !ext.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(
                key,
                format!("`{ext}` must be 1 to 10 digits (such as \"101\")"),
            );
        } else if let Some(first) = by_extension.get(ext) {
            errors.push(
                key,
                format!("extension `{ext}` is already users[{}]'s", first.0),
            );
        } else if by_id.get(ext).is_some_and(|u| u.0 as usize != i) {
            errors.push(key, format!("`{ext}` is another user's id"));
        } else if outbound.emergency.iter().any(|e| e == ext) {
            errors.push(
                key,
                format!("`{ext}` is an emergency number (outbound.emergency)"),
            );
        } else {
            by_extension.insert(ext.clone(), UserIdx(i as u32));
        }
    }
    by_extension
}

fn check_domain(domain: &str, errors: &mut Errors<'_>) {
    if domain.is_empty() {
        errors.push("server.domain", "must not be empty");
    } else if let Some(c) = domain.chars().find(|c| c.is_whitespace() || c.is_control()) {
        errors.push(
            "server.domain",
            format!("`{domain}` contains {c:?}; a domain has no spaces or control characters"),
        );
    }
}

fn compile_trunks(specs: Vec<TrunkSpec>, errors: &mut Errors<'_>) -> Vec<Trunk> {
    let mut trunks: Vec<Trunk> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        if spec.name.is_empty() {
            errors.push(format!("trunks[{i}].name"), "must not be empty");
        } else if let Some(first) = trunks.iter().position(|t| t.name == spec.name) {
            errors.push(
                format!("trunks[{i}].name"),
                format!(
                    "duplicate trunk name `{}` (first at trunks[{first}])",
                    spec.name
                ),
            );
        }
        let mut sources = Vec::with_capacity(spec.sources.len());
        for (j, source) in spec.sources.iter().enumerate() {
            match parse_source(source) {
                Some(net) => sources.push(net),
                None => errors.push(
                    format!("trunks[{i}].sources[{j}]"),
                    format!(
                        "`{source}` is not an IP address or CIDR \
                         (such as `192.0.2.10`, `192.0.2.0/24` or `2001:db8::/32`)"
                    ),
                ),
            }
        }
        let outbound = spec
            .outbound
            .and_then(|o| match SocketAddr::from_str(&o.address) {
                Ok(address) => Some(Outbound {
                    address,
                    username: o.username,
                    password: o.password,
                }),
                Err(_) => {
                    errors.push(
                        format!("trunks[{i}].outbound.address"),
                        format!(
                            "`{}` is not a socket address (such as `192.0.2.10:5060`)",
                            o.address
                        ),
                    );
                    None
                }
            });
        trunks.push(Trunk {
            name: spec.name,
            sources,
            outbound,
        });
    }
    trunks
}

/// An IP or a CIDR; a bare IP is a host route (/32 or /128).
fn parse_source(s: &str) -> Option<IpNet> {
    if let Ok(net) = IpNet::from_str(s) {
        return Some(net.trunc());
    }
    IpAddr::from_str(s).ok().map(IpNet::from)
}

fn compile_users(
    specs: Vec<UserSpec>,
    errors: &mut Errors<'_>,
) -> (Vec<User>, HashMap<String, UserIdx>) {
    let mut users = Vec::with_capacity(specs.len());
    let mut by_id: HashMap<String, UserIdx> = HashMap::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        let Ok(idx) = u32::try_from(i).map(UserIdx) else {
            errors.push("users", "more than 2^32 users");
            break;
        };
        if spec.id.is_empty() {
            errors.push(format!("users[{i}].id"), "must not be empty");
        } else if let Some(c) = spec.id.chars().find(|&c| !is_user_id_char(c)) {
            errors.push(
                format!("users[{i}].id"),
                format!(
                    "`{}` contains {c:?}; a user id may only contain \
                     letters, digits, '.', '_' and '-'",
                    spec.id
                ),
            );
        }
        // Every id goes in the map, even a malformed one, so numbers that
        // name it are not reported a second time.
        if let Some(first) = by_id.get(&spec.id) {
            errors.push(
                format!("users[{i}].id"),
                format!(
                    "duplicate user id `{}` (first at users[{}])",
                    spec.id, first.0
                ),
            );
        } else {
            by_id.insert(spec.id.clone(), idx);
        }
        let ha1_md5 = ha1_value(
            spec.ha1_md5.as_deref(),
            32,
            &format!("users[{i}].ha1_md5"),
            errors,
        );
        let ha1_sha256 = ha1_value(
            spec.ha1_sha256.as_deref(),
            64,
            &format!("users[{i}].ha1_sha256"),
            errors,
        );
        if spec.password.is_empty() && spec.ha1_md5.is_none() && spec.ha1_sha256.is_none() {
            errors.push(
                format!("users[{i}].password"),
                "must not be empty (or give ha1_md5 / ha1_sha256 instead)",
            );
        }
        if spec.max_calls == 0 {
            errors.push(format!("users[{i}].max_calls"), "must be at least 1");
        }
        let zone = spec
            .timezone
            .as_ref()
            .and_then(|name| time_zone(name, &format!("users[{i}].timezone"), errors));
        let hours = match (&spec.hours, zone) {
            (None, _) => None,
            (Some(_), None) if spec.timezone.is_none() => {
                errors.push(
                    format!("users[{i}].timezone"),
                    "is required with users.hours (the user's hours are in their own time zone)",
                );
                None
            }
            (Some(_), None) => None,
            (Some(h), Some(timezone)) => compile_hours(h, &format!("users[{i}].hours"), errors)
                .map(|schedule| UserHours { schedule, timezone }),
        };
        users.push(User {
            id: spec.id,
            name: spec.name,
            status: spec.status,
            password: spec.password,
            ha1_md5,
            ha1_sha256,
            max_calls: spec.max_calls,
            do_not_disturb: spec.do_not_disturb,
            hours,
            extension: spec.extension,
            lines: Vec::new(),
        });
    }
    (users, by_id)
}

/// SIP usernames are RFC 3261 `user` tokens; we keep to a portable subset.
fn is_user_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Looks an IANA time zone up in the bundled database.
fn time_zone(name: &str, key: &str, errors: &mut Errors<'_>) -> Option<TimeZone> {
    match TimeZone::get(name) {
        Ok(tz) => Some(tz),
        Err(_) => {
            errors.push(
                key,
                format!(
                    "unknown time zone `{name}` (expected an IANA name such as `Europe/Paris`)"
                ),
            );
            None
        }
    }
}

/// What a number names that is compiled once every number is known.
struct Later {
    outside: Option<DestinationSpec>,
    no_answer: Option<DestinationSpec>,
    ivr: Option<MenuSpec>,
    voicemail: Option<VoicemailSpec>,
}

fn compile_numbers(
    specs: Vec<NumberSpec>,
    menu_specs: &[(String, MenuSpec)],
    user_by_id: &HashMap<String, UserIdx>,
    has_outbound_trunk: bool,
    prompts: &mut Prompts,
    errors: &mut Errors<'_>,
) -> (Vec<Number>, HashMap<String, NumberIdx>, Vec<Menu>) {
    // Destinations may name numbers further down: they are checked once
    // every number is known.
    let mut destinations: Vec<(usize, Later)> = Vec::with_capacity(specs.len());
    let mut numbers = Vec::with_capacity(specs.len());
    let mut by_e164: HashMap<String, NumberIdx> = HashMap::with_capacity(specs.len());
    // Time zones repeat across numbers; look each name up once.
    let mut zones: HashMap<String, Option<TimeZone>> = HashMap::new();
    for (i, spec) in specs.into_iter().enumerate() {
        let Ok(idx) = u32::try_from(i).map(NumberIdx) else {
            errors.push("numbers", "more than 2^32 numbers");
            break;
        };

        let e164 = match normalize_e164(&spec.number) {
            Some(n) => n.as_str().to_owned(),
            None => {
                errors.push(
                    format!("numbers[{i}].number"),
                    format!(
                        "`{}` is not a valid E.164 number \
                         (expected `+` then 2 to 15 digits, the first not 0)",
                        spec.number
                    ),
                );
                String::new()
            }
        };
        if !e164.is_empty() {
            if let Some(first) = by_e164.get(&e164) {
                errors.push(
                    format!("numbers[{i}].number"),
                    format!(
                        "duplicate number {e164} (same as numbers[{}].number)",
                        first.0
                    ),
                );
            } else {
                by_e164.insert(e164.clone(), idx);
            }
        }

        let zone = zones
            .entry(spec.timezone.clone())
            .or_insert_with(|| TimeZone::get(&spec.timezone).ok())
            .clone();
        let (timezone, timezone_name) = match zone {
            Some(tz) => {
                let name = tz.iana_name().unwrap_or(&spec.timezone).to_owned();
                (tz, name)
            }
            None => {
                errors.push(
                    format!("numbers[{i}].timezone"),
                    format!(
                        "unknown time zone `{}` (expected an IANA name such as `Europe/Paris`)",
                        spec.timezone
                    ),
                );
                (TimeZone::UTC, spec.timezone.clone())
            }
        };

        let mut members: Vec<UserIdx> = Vec::with_capacity(spec.members.len());
        for (j, id) in spec.members.iter().enumerate() {
            if let Some(first) = spec.members[..j].iter().position(|m| m == id) {
                errors.push(
                    format!("numbers[{i}].members[{j}]"),
                    format!("`{id}` is listed twice (first at members[{first}])"),
                );
                continue;
            }
            match user_by_id.get(id) {
                Some(&u) => members.push(u),
                None => errors.push(
                    format!("numbers[{i}].members[{j}]"),
                    format!("`{id}` is not a user (no [[users]] entry has this id)"),
                ),
            }
        }

        let mut ring: Vec<UserIdx> = Vec::with_capacity(spec.ring.len());
        for (j, id) in spec.ring.iter().enumerate() {
            if let Some(first) = spec.ring[..j].iter().position(|r| r == id) {
                errors.push(
                    format!("numbers[{i}].routing.ring[{j}]"),
                    format!("`{id}` is listed twice (first at ring[{first}])"),
                );
                continue;
            }
            if !spec.members.iter().any(|m| m == id) {
                errors.push(
                    format!("numbers[{i}].routing.ring[{j}]"),
                    format!(
                        "`{id}` is not a member of this number \
                         (add it to numbers[{i}].members first)"
                    ),
                );
                continue;
            }
            // A member that is not a user was reported under members.
            if let Some(&u) = user_by_id.get(id) {
                ring.push(u);
            }
        }

        let step = spec
            .step_timeout_secs
            .unwrap_or(crate::destination::DEFAULT_STEP_TIMEOUT_SECS);
        let step_timeout =
            check_timeout(step, &format!("numbers[{i}].routing.step_timeout"), errors);
        let total = default_ring_timeout(spec.strategy, step, ring.len(), spec.ring_timeout_secs);
        let ring_timeout = check_timeout(total, &format!("numbers[{i}].ring_timeout"), errors);
        let hours = spec
            .hours
            .as_ref()
            .and_then(|h| compile_hours(h, &format!("numbers[{i}].hours"), errors));
        if spec.outside.is_some() && spec.hours.is_none() {
            errors.push(
                format!("numbers[{i}].outside"),
                "has no effect without numbers.hours (a number without hours is always open)",
            );
        }
        destinations.push((
            i,
            Later {
                outside: spec.outside,
                no_answer: spec.no_answer,
                ivr: spec.ivr,
                voicemail: spec.voicemail,
            },
        ));

        let not_in_ring = members
            .iter()
            .copied()
            .filter(|m| !ring.contains(m))
            .collect();
        numbers.push(Number {
            e164,
            name: spec.name,
            timezone,
            timezone_name,
            members,
            routing: Routing {
                strategy: spec.strategy,
                ring,
                not_in_ring,
                step_timeout,
            },
            ring_timeout,
            hours,
            outside: Destination::DEFAULT_OUTSIDE,
            no_answer: Destination::DEFAULT_NO_ANSWER,
            ivr: None,
            voicemail: Voicemail::default(),
        });
    }
    // Menus: the named ones first (so any destination can name them), then
    // each number's own; their keys are compiled once all exist.
    let mut menus: Vec<Menu> = Vec::new();
    let mut names: MenuNames = HashMap::new();
    for (name, spec) in menu_specs {
        names.insert(name.clone(), MenuIdx(menus.len() as u32));
        menus.push(compile_menu_shell(
            spec,
            &format!("menus.{name}"),
            prompts,
            errors,
        ));
    }
    for (i, later) in &destinations {
        if let Some(spec) = &later.ivr {
            numbers[*i].ivr = Some(MenuIdx(menus.len() as u32));
            menus.push(compile_menu_shell(
                spec,
                &format!("numbers[{i}].ivr"),
                prompts,
                errors,
            ));
        }
        if let Some(spec) = &later.voicemail {
            numbers[*i].voicemail =
                compile_voicemail(spec, &format!("numbers[{i}].voicemail"), prompts, errors);
        }
    }
    let context_for = |own_menu: Option<MenuIdx>| Context {
        users: user_by_id,
        numbers: &by_e164,
        has_outbound_trunk,
        menus: &names,
        own_menu,
    };
    for (m, (_, spec)) in menu_specs.iter().enumerate() {
        let context = context_for(None);
        compile_menu_destinations(&mut menus[m], spec, &context, prompts, errors);
    }
    for (i, later) in &destinations {
        let own = numbers[*i].ivr;
        let context = context_for(own);
        if let (Some(spec), Some(menu)) = (&later.ivr, own) {
            compile_menu_destinations(&mut menus[menu.0 as usize], spec, &context, prompts, errors);
        }
        if let Some(spec) = &later.outside {
            numbers[*i].outside = compile_destination(
                spec,
                &format!("numbers[{i}].outside"),
                &context,
                prompts,
                errors,
            );
        }
        if let Some(spec) = &later.no_answer {
            numbers[*i].no_answer = compile_destination(
                spec,
                &format!("numbers[{i}].no_answer"),
                &context,
                prompts,
                errors,
            );
        }
    }
    refuse_loops(&numbers, errors);
    (numbers, by_e164, menus)
}

/// A plan that loops through `number` destinations (A outside -> B, B
/// outside -> A) never ends: refused, at the destination that closes it.
fn refuse_loops(numbers: &[Number], errors: &mut Errors<'_>) {
    let next = |n: usize| {
        [
            ("outside", &numbers[n].outside),
            ("no_answer", &numbers[n].no_answer),
        ]
        .into_iter()
        .filter_map(|(key, d)| match d {
            Destination::Number(to) => Some((key, to.0 as usize)),
            _ => None,
        })
        .collect::<Vec<_>>()
    };
    for start in 0..numbers.len() {
        // Depth-first from `start`; a path back to it is a loop.
        let mut stack = vec![(start, vec![start])];
        let mut seen = vec![false; numbers.len()];
        while let Some((at, path)) = stack.pop() {
            for (key, to) in next(at) {
                if to == start {
                    // Found from each of its numbers: reported once, from the first.
                    if path.iter().all(|&n| n >= start) {
                        let route: Vec<&str> = path
                            .iter()
                            .chain(std::iter::once(&start))
                            .map(|&n| numbers[n].e164.as_str())
                            .collect();
                        errors.push(
                            format!("numbers[{at}].{key}"),
                            format!("the destinations loop: {}", route.join(" -> ")),
                        );
                    }
                    continue;
                }
                if !seen[to] {
                    seen[to] = true;
                    let mut longer = path.clone();
                    longer.push(to);
                    stack.push((to, longer));
                }
            }
        }
    }
}
