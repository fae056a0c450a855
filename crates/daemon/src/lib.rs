//! The Switchboard daemon: the SIP engine (registrar and B2BUA), the driver
//! that gives it sockets and timers, and the command line.
//!
//! - [`engine`]: sans-IO like the `sip` crate, tested with a manual clock.
//! - [`server`]: the tokio driver; [`server::Daemon::start`] runs a daemon in
//!   the current runtime (the integration tests use it on port 0).

pub mod engine;
pub mod server;

/// The demo workspace, embedded so the daemon starts with no file at all.
pub const DEMO_CONFIG: &str = include_str!("../../../config/switchboard.toml");
