//! The workspace directory: who the users are, which numbers exist, who rings
//! for each, and which trunks may deliver calls.
//!
//! This crate owns the TOML configuration file (its schema, documented by
//! `config/switchboard.toml`), its validation with precise errors (every
//! [`ConfigError`] names the file, the key path such as
//! `numbers[1].routing.ring[0]`, and the reason, all of them collected rather
//! than stopping at the first), and the compiled, immutable [`Directory`]
//! snapshot that the call path reads without locks.
//!
//! It does no IO beyond reading the file in [`Config::load`], and has no clock.
//! Drive it with:
//! - [`Config::load`] / [`Config::parse`] for the daemon's file;
//! - [`Directory::from_workspace`] to build a snapshot from plain data
//!   ([`WorkspaceSpec`]) with exactly the same checks (tests, benches, the
//!   admin API);
//! - [`normalize_e164`] on a dialled number, then [`Directory::number_index`].
//!
//! Configuration is parsed, not validated: raw serde shapes with
//! `deny_unknown_fields` are converted into domain types that nothing needs
//! to check again (ring lists are [`UserIdx`] into the same snapshot, time
//! zones are resolved, sources are [`ipnet::IpNet`]).

mod config;
mod destination;
mod directory;
mod e164;
mod error;
pub mod hours;
mod media;
mod outbound;
mod security;
mod webhooks;

pub use config::{Config, SectionErrors, ServerSection};
pub use destination::{CallerId, Destination, DestinationSpec, RingGroup};
pub use directory::{
    Directory, Number, NumberIdx, NumberSpec, Outbound, OutboundSpec, Routing, Strategy, Trunk,
    TrunkSpec, User, UserHours, UserIdx, UserSpec, UserStatus, WorkspaceSpec,
};
pub use e164::{normalize_e164, E164};
pub use error::{ConfigError, ConfigErrors};
pub use hours::{HoursSpec, Schedule, Window};
pub use media::{
    MediaSettings, MediaSpec, Menu, MenuIdx, MenuSpec, Prompt, PromptIdx, Voicemail, VoicemailSpec,
};
pub use outbound::{NumberPattern, OutboundRules, OutboundRulesSpec, Restriction};
pub use security::{Security, SecuritySpec};
pub use webhooks::{Webhook, WebhookEvent, WebhookSpec};

#[cfg(test)]
mod tests;
