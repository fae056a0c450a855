//! Prometheus metrics (`GET /metrics`): counters the driver bumps as
//! messages pass (a byte-prefix classification and an atomic add), counts
//! of call outcomes from the engine's records, and gauges read from the
//! engine's `Stats` when the page is scraped.
//!
//! Each daemon has its own recorder (not the process-global one), so that
//! several daemons in one test process keep separate figures. It must not
//! take a lock or allocate on the call path: every handle is made at start.

use metrics::{Counter, Gauge, Histogram, Key, Label, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Methods counted by name; any other is counted as `other`.
const METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "UPDATE",
    "INFO",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
];

/// Outcome names of call records (see `records::outcome`).
const OUTCOMES: [&str; 10] = [
    "answered",
    "voicemail",
    "no_answer",
    "busy",
    "declined",
    "caller_cancelled",
    "rejected",
    "forwarded",
    "abandoned",
    "not_acknowledged",
];

/// One direction of SIP traffic: requests by method, responses by class.
struct Traffic {
    requests: Vec<Counter>,
    responses: Vec<Counter>,
}

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    received: Traffic,
    sent: Traffic,
    outcomes: Vec<Counter>,
    routing_seconds: Histogram,
    pub records_dropped: Counter,
    pub webhooks_dropped: Counter,
    pub tcp_refused: Counter,
    pub admin_changes: Counter,
    pub admin_refused: Counter,
    calls_ringing: Gauge,
    calls_answered: Gauge,
    calls_media: Gauge,
    legs_ringing: Gauge,
    transactions: Gauge,
    registered_devices: Gauge,
    media_sessions: Gauge,
    registrations: Counter,
    retransmissions: Counter,
    parse_errors: Counter,
    bans_active: Gauge,
    bans_total: Counter,
    banned_dropped: Counter,
    overload_refused: Counter,
    /// The engine's limits, by [`engine::Limit`] (absolute, from its stats).
    engine_limits: Vec<Counter>,
    /// The stream limits, by [`StreamLimit`], and when each was last logged
    /// (Unix seconds).
    stream_limits: Vec<(Counter, std::sync::atomic::AtomicU64)>,
}

/// A limit enforced on a TCP or TLS connection, outside the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamLimit {
    /// `tcp_max_connections`: a connection refused because so many are open.
    Connections,
    /// `tcp_max_per_source`: refused because its source has so many open.
    ConnectionsPerSource,
    /// `tcp_max_message`: closed for buffering more than a message may hold.
    MessageSize,
    /// `tcp_message_timeout`: closed for a message that never finished.
    MessageTimeout,
}

impl StreamLimit {
    const ALL: [StreamLimit; 4] = [
        StreamLimit::Connections,
        StreamLimit::ConnectionsPerSource,
        StreamLimit::MessageSize,
        StreamLimit::MessageTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StreamLimit::Connections => "tcp_connections",
            StreamLimit::ConnectionsPerSource => "tcp_connections_per_source",
            StreamLimit::MessageSize => "tcp_message_size",
            StreamLimit::MessageTimeout => "tcp_message_timeout",
        }
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new();
        // Routing decisions take microseconds; the default buckets start at 5 ms.
        let buckets = [
            0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
            0.025, 0.1,
        ];
        let builder = builder
            .set_buckets_for_metric(
                Matcher::Full("switchboard_routing_decision_seconds".into()),
                &buckets,
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &metadata())
        };
        let gauge = |name: &'static str, labels: Vec<Label>| {
            recorder.register_gauge(&Key::from_parts(name, labels), &metadata())
        };
        let traffic = |direction: &'static str| Traffic {
            requests: METHODS
                .iter()
                .chain(std::iter::once(&"other"))
                .map(|m| {
                    counter(
                        "switchboard_sip_requests_total",
                        vec![Label::new("direction", direction), Label::new("method", *m)],
                    )
                })
                .collect(),
            responses: ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"]
                .iter()
                .map(|c| {
                    counter(
                        "switchboard_sip_responses_total",
                        vec![Label::new("direction", direction), Label::new("class", *c)],
                    )
                })
                .collect(),
        };
        let state = |s: &'static str| {
            gauge(
                "switchboard_calls_in_progress",
                vec![Label::new("state", s)],
            )
        };
        let metrics = Metrics {
            received: traffic("in"),
            sent: traffic("out"),
            outcomes: OUTCOMES
                .iter()
                .map(|o| counter("switchboard_calls_total", vec![Label::new("outcome", *o)]))
                .collect(),
            routing_seconds: recorder.register_histogram(
                &Key::from_name("switchboard_routing_decision_seconds"),
                &metadata(),
            ),
            records_dropped: counter("switchboard_call_records_dropped_total", vec![]),
            webhooks_dropped: counter("switchboard_webhooks_dropped_total", vec![]),
            tcp_refused: counter("switchboard_tcp_connections_refused_total", vec![]),
            admin_changes: counter(
                "switchboard_admin_changes_total",
                vec![Label::new("result", "applied")],
            ),
            admin_refused: counter(
                "switchboard_admin_changes_total",
                vec![Label::new("result", "refused")],
            ),
            calls_ringing: state("ringing"),
            calls_answered: state("answered"),
            calls_media: state("media"),
            legs_ringing: gauge("switchboard_ringing_legs", vec![]),
            transactions: gauge("switchboard_transactions", vec![]),
            registered_devices: gauge("switchboard_registered_devices", vec![]),
            media_sessions: gauge("switchboard_media_sessions", vec![]),
            registrations: counter("switchboard_registrations_total", vec![]),
            retransmissions: counter("switchboard_retransmissions_total", vec![]),
            parse_errors: counter("switchboard_parse_errors_total", vec![]),
            bans_active: gauge("switchboard_bans_active", vec![]),
            bans_total: counter("switchboard_bans_total", vec![]),
            banned_dropped: counter("switchboard_banned_datagrams_dropped_total", vec![]),
            overload_refused: counter("switchboard_overload_refused_total", vec![]),
            engine_limits: engine::Limit::ALL
                .iter()
                .map(|l| {
                    counter(
                        "switchboard_limit_hits_total",
                        vec![Label::new("limit", l.as_str())],
                    )
                })
                .collect(),
            stream_limits: StreamLimit::ALL
                .iter()
                .map(|l| {
                    (
                        counter(
                            "switchboard_limit_hits_total",
                            vec![Label::new("limit", l.as_str())],
                        ),
                        std::sync::atomic::AtomicU64::new(0),
                    )
                })
                .collect(),
            recorder,
            handle,
        };
        metrics.describe();
        metrics
    }

    fn describe(&self) {
        let r = &self.recorder;
        let d = |name: &'static str, text: &'static str| {
            r.describe_counter(name.into(), None, text.into());
        };
        d(
            "switchboard_tcp_connections_refused_total",
            "TCP connections refused (per-source or total limit)",
        );
        d(
            "switchboard_webhooks_dropped_total",
            "Webhook events dropped because the delivery thread fell behind",
        );
        d(
            "switchboard_sip_requests_total",
            "SIP requests received (in) and sent (out), retransmissions included, by method",
        );
        d(
            "switchboard_sip_responses_total",
            "SIP responses received and sent, by class",
        );
        d("switchboard_calls_total", "Calls ended, by outcome");
        d(
            "switchboard_limit_hits_total",
            "Times a limit on what peers can make the daemon hold was reached, by limit",
        );
        d(
            "switchboard_call_records_dropped_total",
            "Call records dropped because the writer fell behind",
        );
        d(
            "switchboard_admin_changes_total",
            "Admin changes applied or refused",
        );
        d(
            "switchboard_registrations_total",
            "REGISTER requests accepted",
        );
        d(
            "switchboard_retransmissions_total",
            "Requests and responses re-sent on a timer",
        );
        d(
            "switchboard_parse_errors_total",
            "Messages that did not parse",
        );
        let g = |name: &'static str, text: &'static str| {
            r.describe_gauge(name.into(), None, text.into());
        };
        g("switchboard_calls_in_progress", "Calls up now, by state");
        g("switchboard_ringing_legs", "Legs ringing now");
        g("switchboard_transactions", "Live SIP transactions");
        g("switchboard_registered_devices", "Devices signed in");
        g(
            "switchboard_media_sessions",
            "Calls with the daemon's own media (voicemail, menu, message)",
        );
        r.describe_histogram(
            "switchboard_routing_decision_seconds".into(),
            Some(metrics::Unit::Seconds),
            "Time to handle an INVITE: parse, transaction, plan, legs built".into(),
        );
    }

    /// A message received (`bytes` as it came off the wire).
    #[inline]
    pub fn received(&self, bytes: &[u8]) {
        count(&self.received, bytes);
    }

    #[inline]
    pub fn sent(&self, bytes: &[u8]) {
        count(&self.sent, bytes);
    }

    pub fn call_ended(&self, outcome: &str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i].increment(1);
        }
    }

    /// A stream limit was reached by `peer`: counted, and logged once a
    /// minute at most per limit.
    pub fn limit_hit(&self, limit: StreamLimit, peer: std::net::SocketAddr) {
        let Some((counter, logged)) = self.stream_limits.get(limit as usize) else {
            return;
        };
        counter.increment(1);
        let now = crate::clock::unix_ms() / 1000;
        let last = logged.load(std::sync::atomic::Ordering::Relaxed);
        if now >= last + 60
            && logged
                .compare_exchange(
                    last,
                    now,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_ok()
        {
            tracing::warn!(
                limit = limit.as_str(),
                %peer,
                "limit reached (logged once a minute at most)"
            );
        }
    }

    /// Folds the histogram samples recorded since the last call into their
    /// buckets. Until then every sample is kept (metrics-util's atomic
    /// bucket): without this, a daemon nobody scrapes grows by a sample per
    /// INVITE, found by `flood_memory` as 24 bytes per INVITE.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    pub fn routing_decision(&self, took: std::time::Duration) {
        self.routing_seconds.record(took.as_secs_f64());
    }

    /// The page, with the gauges set from the engine's figures.
    pub fn render(&self, stats: Option<&engine::Stats>) -> String {
        if let Some(s) = stats {
            self.calls_ringing.set(s.calls_ringing as f64);
            self.calls_answered
                .set(s.calls_answered.saturating_sub(s.calls_media) as f64);
            self.calls_media.set(s.calls_media as f64);
            self.media_sessions.set(s.calls_media as f64);
            self.legs_ringing.set(s.legs_ringing as f64);
            self.transactions.set(s.transactions as f64);
            self.registered_devices.set(s.registered_devices as f64);
            self.registrations.absolute(s.registrations);
            self.retransmissions.absolute(s.retransmissions);
            self.parse_errors.absolute(s.parse_errors);
            self.bans_active.set(s.bans_active as f64);
            self.bans_total.absolute(s.bans_total);
            self.banned_dropped.absolute(s.banned_dropped);
            self.overload_refused.absolute(s.overload_refused);
            for (counter, limit) in self.engine_limits.iter().zip(engine::Limit::ALL) {
                counter.absolute(s.limit_hits.get(limit));
            }
        }
        self.handle.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn metadata() -> metrics::Metadata<'static> {
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

/// A response by its class digit; a request by its method (the bytes up to
/// the first space). Keepalives (CRLF) are not messages.
#[inline]
fn count(traffic: &Traffic, bytes: &[u8]) {
    if let Some(rest) = bytes.strip_prefix(b"SIP/2.0 ") {
        if let Some(&class @ b'1'..=b'6') = rest.first() {
            traffic.responses[usize::from(class - b'1')].increment(1);
        }
        return;
    }
    if bytes.first().is_none_or(|b| !b.is_ascii_uppercase()) {
        return;
    }
    let method = bytes
        .iter()
        .position(|&b| b == b' ')
        .map_or(&bytes[..0], |end| &bytes[..end]);
    let i = METHODS
        .iter()
        .position(|m| m.as_bytes() == method)
        .unwrap_or(METHODS.len());
    traffic.requests[i].increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_counted_by_method_and_class() {
        let m = Metrics::new();
        m.received(b"INVITE sip:+15550100@x SIP/2.0\r\n");
        m.received(b"INVITE sip:+15550100@x SIP/2.0\r\n");
        m.received(b"FOO sip:x SIP/2.0\r\n");
        m.received(b"\r\n\r\n");
        m.sent(b"SIP/2.0 180 Ringing\r\n");
        m.call_ended("busy");
        let page = m.render(None);
        assert!(
            page.contains(r#"switchboard_sip_requests_total{direction="in",method="INVITE"} 2"#),
            "{page}"
        );
        assert!(page.contains(r#"switchboard_sip_requests_total{direction="in",method="other"} 1"#));
        assert!(page.contains(r#"switchboard_sip_responses_total{direction="out",class="1xx"} 1"#));
        assert!(page.contains(r#"switchboard_calls_total{outcome="busy"} 1"#));
    }
}
