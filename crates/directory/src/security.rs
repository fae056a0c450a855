//! `[security]`: when a source address is banned (repeated authentication
//! failures, or a flood of requests) and which addresses never are.
//!
//! Only the schema and its checks; the counting is the engine's guard.

use std::time::Duration;

use ipnet::IpNet;

use crate::directory::Errors;

/// `[security]` as written; every key optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecuritySpec {
    pub allow: Option<Vec<String>>,
    pub max_failures: Option<u32>,
    pub failure_window: Option<u32>,
    pub ban_times: Option<Vec<u32>>,
    pub max_requests_per_second: Option<u32>,
}

/// The checked settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Security {
    /// Never banned (besides the trunks' sources).
    pub allow: Vec<IpNet>,
    /// Authentication failures (and requests for unknown users) within
    /// `failure_window` that ban a source.
    pub max_failures: u32,
    pub failure_window: Duration,
    /// The first ban, the second, ...; the last repeats.
    pub ban_times: Vec<Duration>,
    /// Requests per second from one source that ban it; 0: no limit.
    pub max_requests_per_second: u32,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            allow: Vec::new(),
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            ban_times: vec![
                Duration::from_secs(60),
                Duration::from_secs(600),
                Duration::from_secs(3600),
            ],
            max_requests_per_second: 1000,
        }
    }
}

pub(crate) fn compile_security(spec: SecuritySpec, errors: &mut Errors<'_>) -> Security {
    let mut security = Security::default();
    if let Some(allow) = spec.allow {
        for (i, source) in allow.iter().enumerate() {
            let net = source
                .parse::<IpNet>()
                .or_else(|_| source.parse::<std::net::IpAddr>().map(IpNet::from));
            match net {
                Ok(net) => security.allow.push(net),
                Err(_) => errors.push(
                    format!("security.allow[{i}]"),
                    format!("`{source}` is not an IP address or CIDR (such as 192.0.2.0/24)"),
                ),
            }
        }
    }
    if let Some(n) = spec.max_failures {
        if n == 0 {
            errors.push("security.max_failures", "must be at least 1");
        }
        security.max_failures = n.max(1);
    }
    if let Some(s) = spec.failure_window {
        if s == 0 {
            errors.push("security.failure_window", "must be at least 1 second");
        }
        security.failure_window = Duration::from_secs(u64::from(s.max(1)));
    }
    if let Some(times) = spec.ban_times {
        if times.is_empty() || times.contains(&0) {
            errors.push(
                "security.ban_times",
                "must list at least one ban length, each at least 1 second",
            );
        } else {
            security.ban_times = times
                .iter()
                .map(|&s| Duration::from_secs(u64::from(s)))
                .collect();
        }
    }
    if let Some(n) = spec.max_requests_per_second {
        security.max_requests_per_second = n;
    }
    security
}
