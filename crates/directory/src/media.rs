//! The media side of a workspace, as configuration: IVR menus (per number
//! in `[numbers.ivr]`, shared by name in `[menus.NAME]`), voicemail
//! settings per number, the prompts they play, and the `[media]` section
//! (RTP ports, the address written in SDP).
//!
//! Prompts are paths here, resolved against the config file's folder and
//! listed with the key that named them; reading and checking the audio is
//! the daemon's job at load (this crate does no IO).

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::destination::{compile_destination, Context, Destination, DestinationSpec};
use crate::directory::Errors;

/// `[numbers.ivr]` or `[menus.NAME]`, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MenuSpec {
    pub greeting: String,
    /// Seconds to wait for a key after the greeting; default 5.
    pub timeout_secs: Option<u32>,
    /// Replays on timeout or invalid key, then the fallback; default 2.
    pub retries: Option<u32>,
    pub invalid: Option<String>,
    /// Default: voicemail.
    pub fallback: Option<DestinationSpec>,
    /// Key (`"0"`..`"9"`, `"*"`, `"#"`) to destination.
    pub options: Vec<(String, DestinationSpec)>,
}

/// `[numbers.voicemail]`, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VoicemailSpec {
    pub greeting: Option<String>,
    /// Seconds; default 180.
    pub max_length_secs: Option<u32>,
    /// Default 100.
    pub max_messages: Option<u32>,
}

/// `[media]`, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaSpec {
    /// `"20000-20999"`.
    pub rtp_ports: Option<String>,
    /// The IP written in SDP; default the SIP advertise address.
    pub advertise: Option<String>,
}

/// A prompt of the directory: one audio file, named once however many
/// places play it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PromptIdx(pub u32);

/// A menu of the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MenuIdx(pub u32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The first key that named it (`numbers[0].ivr.greeting`), for errors.
    pub key: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    /// Where it was configured (`numbers[0].ivr`, `menus.after-hours`).
    pub name: String,
    pub greeting: PromptIdx,
    pub timeout: Duration,
    pub retries: u32,
    pub invalid: Option<PromptIdx>,
    pub fallback: Destination,
    pub options: Vec<(char, Destination)>,
}

impl Menu {
    pub fn option(&self, key: char) -> Option<&Destination> {
        self.options.iter().find(|(k, _)| *k == key).map(|(_, d)| d)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voicemail {
    /// `None`: the default greeting, which names the line.
    pub greeting: Option<PromptIdx>,
    pub max_length: Duration,
    pub max_messages: u32,
}

impl Default for Voicemail {
    fn default() -> Self {
        Voicemail {
            greeting: None,
            max_length: Duration::from_secs(u64::from(DEFAULT_MAX_LENGTH_SECS)),
            max_messages: DEFAULT_MAX_MESSAGES,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSettings {
    pub rtp_ports: RangeInclusive<u16>,
    pub advertise: Option<IpAddr>,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            rtp_ports: 20000..=20999,
            advertise: None,
        }
    }
}

const DEFAULT_MAX_LENGTH_SECS: u32 = 180;
const MAX_MAX_LENGTH_SECS: u32 = 3600;
const DEFAULT_MAX_MESSAGES: u32 = 100;
const DEFAULT_MENU_TIMEOUT_SECS: u32 = 5;
const DEFAULT_MENU_RETRIES: u32 = 2;

/// The prompts named so far, deduplicated by path.
#[derive(Debug, Default)]
pub(crate) struct Prompts {
    pub(crate) list: Vec<Prompt>,
    base: PathBuf,
}

impl Prompts {
    pub(crate) fn new(origin: &Path) -> Prompts {
        Prompts {
            list: Vec::new(),
            base: origin.parent().map(Path::to_path_buf).unwrap_or_default(),
        }
    }

    /// The prompt at `path` (relative to the config file), named by `key`.
    pub(crate) fn add(&mut self, path: &str, key: &str, errors: &mut Errors<'_>) -> PromptIdx {
        if path.trim().is_empty() {
            errors.push(key, "must name a WAV file");
        }
        let path = self.base.join(path);
        if let Some(i) = self.list.iter().position(|p| p.path == path) {
            return PromptIdx(i as u32);
        }
        self.list.push(Prompt {
            key: key.to_string(),
            path,
        });
        PromptIdx(self.list.len() as u32 - 1)
    }
}

pub(crate) fn compile_voicemail(
    spec: &VoicemailSpec,
    key: &str,
    prompts: &mut Prompts,
    errors: &mut Errors<'_>,
) -> Voicemail {
    let greeting = spec
        .greeting
        .as_ref()
        .map(|g| prompts.add(g, &format!("{key}.greeting"), errors));
    let secs = spec.max_length_secs.unwrap_or(DEFAULT_MAX_LENGTH_SECS);
    if !(1..=MAX_MAX_LENGTH_SECS).contains(&secs) {
        errors.push(
            format!("{key}.max_length"),
            format!("must be between 1 and {MAX_MAX_LENGTH_SECS} seconds, got {secs}"),
        );
    }
    let max_messages = spec.max_messages.unwrap_or(DEFAULT_MAX_MESSAGES);
    if max_messages == 0 {
        errors.push(format!("{key}.max_messages"), "must be at least 1");
    }
    Voicemail {
        greeting,
        max_length: Duration::from_secs(u64::from(secs)),
        max_messages,
    }
}

/// A menu's prompts and settings; its destinations are compiled later
/// (they may name other menus).
pub(crate) fn compile_menu_shell(
    spec: &MenuSpec,
    key: &str,
    prompts: &mut Prompts,
    errors: &mut Errors<'_>,
) -> Menu {
    let greeting = prompts.add(&spec.greeting, &format!("{key}.greeting"), errors);
    let invalid = spec
        .invalid
        .as_ref()
        .map(|p| prompts.add(p, &format!("{key}.invalid"), errors));
    let timeout = spec.timeout_secs.unwrap_or(DEFAULT_MENU_TIMEOUT_SECS);
    if !(1..=60).contains(&timeout) {
        errors.push(
            format!("{key}.timeout"),
            format!("must be between 1 and 60 seconds, got {timeout}"),
        );
    }
    let retries = spec.retries.unwrap_or(DEFAULT_MENU_RETRIES);
    if retries > 10 {
        errors.push(
            format!("{key}.retries"),
            format!("at most 10, got {retries}"),
        );
    }
    Menu {
        name: key.to_string(),
        greeting,
        timeout: Duration::from_secs(u64::from(timeout)),
        retries,
        invalid,
        fallback: Destination::Voicemail,
        options: Vec::new(),
    }
}

/// A menu's keys and fallback.
pub(crate) fn compile_menu_destinations(
    menu: &mut Menu,
    spec: &MenuSpec,
    context: &Context<'_>,
    prompts: &mut Prompts,
    errors: &mut Errors<'_>,
) {
    let key = menu.name.clone();
    if let Some(fallback) = &spec.fallback {
        menu.fallback = compile_destination(
            fallback,
            &format!("{key}.fallback"),
            context,
            prompts,
            errors,
        );
    }
    for (digit, dest) in &spec.options {
        let option_key = format!("{key}.options.\"{digit}\"");
        let mut chars = digit.chars();
        let valid = match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Some(c),
            _ => None,
        };
        let Some(c) = valid else {
            errors.push(
                option_key,
                format!("`{digit}` is not a key: use 0 to 9, * or #"),
            );
            continue;
        };
        let compiled = compile_destination(dest, &option_key, context, prompts, errors);
        menu.options.push((c, compiled));
    }
}

pub(crate) fn compile_media(spec: &MediaSpec, errors: &mut Errors<'_>) -> MediaSettings {
    let mut settings = MediaSettings::default();
    if let Some(range) = &spec.rtp_ports {
        let parsed = range.split_once('-').and_then(|(a, b)| {
            Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
        });
        match parsed {
            Some((lo, hi)) if lo >= 1024 && lo < hi => settings.rtp_ports = lo..=hi,
            _ => errors.push(
                "media.rtp_ports",
                format!(
                    "`{range}` is not a port range such as \"20000-20999\" (from 1024, low-high)"
                ),
            ),
        }
    }
    if let Some(ip) = &spec.advertise {
        match ip.parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => settings.advertise = Some(ip),
            _ => errors.push(
                "media.advertise",
                format!("`{ip}` is not an IP address peers can send RTP to"),
            ),
        }
    }
    settings
}

/// Named menus by name, for `{ action = "ivr", menu = "NAME" }`.
pub(crate) type MenuNames = HashMap<String, MenuIdx>;
