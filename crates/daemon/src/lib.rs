//! The Switchboard daemon: the tokio driver around the sans-IO engine, the
//! one clock, and the command line. It holds no call logic: that is the
//! `engine` crate's.
//!
//! - [`server`]: sockets, timers and tasks; [`server::Daemon::start`] runs a
//!   daemon in the current runtime (the integration tests use it on port 0).
//! - [`clock`]: the only place the time is read.
//! - [`settings`]: the `[server]` table of the configuration file.
//! - [`explain`]: `switchboard explain`, a call's plan without a daemon.
//! - [`media_runtime`]: RTP sessions for the calls the daemon answers
//!   (prompts, voicemail files).

pub mod admin;
pub mod cli;
pub mod clock;
pub mod demo;
pub mod explain;
pub mod media_runtime;
pub mod metrics;
pub mod records;
pub mod server;
pub mod settings;
pub mod tls;
pub mod udp_errors;
pub mod webhooks;

/// The name errors give the embedded demo configuration (its prompts are
/// embedded too).
pub const EMBEDDED_DEMO_ORIGIN: &str = "<embedded demo config>";

/// The demo workspace, embedded so the daemon starts with no file at all.
pub const DEMO_CONFIG: &str = include_str!("../../../config/switchboard.toml");
