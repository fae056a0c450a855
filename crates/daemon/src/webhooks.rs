//! Webhooks: the workspace's `[[webhooks]]` get a JSON POST for each event
//! they asked for (`call.missed`, `voicemail.new`, `call.ended`), with the
//! call record, signed with an HMAC-SHA256 of the body when the hook has a
//! secret (`X-Switchboard-Signature: sha256=<hex>`).
//!
//! A thread per webhook URL delivers them and retries a failed delivery
//! (no answer, or a status other than 2xx) after 1, 2, 4, 8 and 16 s, then
//! gives up with a log line; a hook that never answers delays only itself.
//! URLs are never logged whole (a path may carry a token): only host:port. It must never hold up a call: the engine task
//! only queues the record (and drops it, counted, when the queue is full).

use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use directory::WebhookEvent;
use engine::{CallRecord, WorkspaceReader};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

const QUEUE: usize = 16_384;
/// Delays before the second to sixth attempts.
const BACKOFF: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The sending end the engine task holds.
#[derive(Clone)]
pub struct WebhookSink {
    queue: mpsc::SyncSender<Box<CallRecord>>,
}

impl WebhookSink {
    /// Queues a record; `false` when it had to be dropped.
    pub fn push(&self, record: Box<CallRecord>) -> bool {
        self.queue.try_send(record).is_ok()
    }
}

/// The events a record is, in the order they are sent.
pub fn events_of(record: &CallRecord) -> Vec<WebhookEvent> {
    let mut events = Vec::with_capacity(3);
    let outcome = crate::records::outcome(record);
    let missed = record.number.is_some()
        && match outcome {
            "no_answer" | "busy" | "declined" | "caller_cancelled" | "voicemail" | "abandoned" => {
                true
            }
            // Refused before anything rang: nobody could take it.
            "rejected" => matches!(record.outcome.caller_status(), 480 | 486),
            _ => false,
        };
    if missed {
        events.push(WebhookEvent::CallMissed);
    }
    if record.voicemail {
        events.push(WebhookEvent::VoicemailNew);
    }
    events.push(WebhookEvent::CallEnded);
    events
}

/// One POST to make, and how many times it was tried.
struct Delivery {
    url: String,
    event: &'static str,
    body: String,
    signature: Option<String>,
    attempt: usize,
}

/// A delivery waiting for its retry, soonest first.
struct Pending(Instant, u64, Delivery);

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.0, self.1) == (other.0, other.1)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // BinaryHeap is a max-heap: the earliest due first.
        (other.0, other.1).cmp(&(self.0, self.1))
    }
}

/// Deliveries waiting per webhook URL; past this, new ones are dropped.
const PER_HOOK_QUEUE: usize = 1024;

/// Starts the dispatching thread; it reads the webhooks of the workspace
/// running when each record arrives and hands each POST to the worker of
/// its URL (one thread per URL, so that a hook that never answers delays
/// only itself). Everything stops when every sink is dropped (pending
/// retries are then abandoned).
pub fn start(workspace: WorkspaceReader) -> std::io::Result<WebhookSink> {
    let (tx, rx) = mpsc::sync_channel::<Box<CallRecord>>(QUEUE);
    std::thread::Builder::new()
        .name("webhooks".into())
        .spawn(move || dispatch_loop(workspace, rx))?;
    Ok(WebhookSink { queue: tx })
}

fn dispatch_loop(workspace: WorkspaceReader, rx: mpsc::Receiver<Box<CallRecord>>) {
    let mut workers: std::collections::HashMap<String, mpsc::SyncSender<Delivery>> =
        std::collections::HashMap::new();
    while let Ok(record) = rx.recv() {
        for delivery in deliveries(&workspace, &record) {
            let url = delivery.url.clone();
            if !workers.contains_key(&url) {
                let (tx, rx) = mpsc::sync_channel::<Delivery>(PER_HOOK_QUEUE);
                let spawned = std::thread::Builder::new()
                    .name("webhook".into())
                    .spawn(move || deliver_loop(rx));
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "cannot start a webhook worker");
                    continue;
                }
                workers.insert(url.clone(), tx);
            }
            let queued = workers
                .get(&url)
                .is_some_and(|w| w.try_send(delivery).is_ok());
            if !queued {
                tracing::warn!(peer = %hook_addr(&url), "webhook queue full: event dropped");
            }
        }
    }
}

/// The `host:port` of a URL, for logs (its path may carry a token).
fn hook_addr(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.split('/').next().unwrap_or_default()
}

/// One webhook URL's deliveries, in order, each retried on its schedule.
fn deliver_loop(rx: mpsc::Receiver<Delivery>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        // The URL is the destination: no proxy from the environment, and a
        // redirect is not a delivery.
        .proxy(None)
        .max_redirects(0)
        .build()
        .into();
    let mut retries: BinaryHeap<Pending> = BinaryHeap::new();
    let mut sequence = 0u64;
    loop {
        let wait = retries
            .peek()
            .map(|p| p.0.saturating_duration_since(crate::clock::now()));
        let received = match wait {
            Some(wait) => rx.recv_timeout(wait),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(delivery) => attempt(&agent, delivery, &mut retries, &mut sequence),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = crate::clock::now();
        while retries.peek().is_some_and(|p| p.0 <= now) {
            if let Some(Pending(_, _, delivery)) = retries.pop() {
                attempt(&agent, delivery, &mut retries, &mut sequence);
            }
        }
    }
}

/// The POSTs a record makes under the running workspace's webhooks.
fn deliveries(workspace: &WorkspaceReader, record: &CallRecord) -> Vec<Delivery> {
    let current = workspace.load();
    let hooks = current.directory.webhooks();
    if hooks.is_empty() {
        return Vec::new();
    }
    let row = crate::records::Row::of(record);
    let mut out = Vec::new();
    for event in events_of(record) {
        let body = json!({
            "event": event.as_str(),
            "id": format!("{}-{}", record.call_id, event.as_str()),
            "at": record.ended.to_string(),
            "call": row,
        })
        .to_string();
        for hook in hooks.iter().filter(|h| h.events.contains(&event)) {
            out.push(Delivery {
                url: hook.url.clone(),
                event: event.as_str(),
                signature: hook.secret.as_deref().map(|key| signature(key, &body)),
                body: body.clone(),
                attempt: 0,
            });
        }
    }
    out
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `key`.
pub fn signature(key: &str, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length.
        Err(_) => return String::new(),
    };
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + digest.len() * 2);
    hex.push_str("sha256=");
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

fn attempt(
    agent: &ureq::Agent,
    mut delivery: Delivery,
    retries: &mut BinaryHeap<Pending>,
    sequence: &mut u64,
) {
    let mut request = agent
        .post(&delivery.url)
        .header("Content-Type", "application/json")
        .header("X-Switchboard-Event", delivery.event)
        .header("User-Agent", "switchboard");
    if let Some(signature) = &delivery.signature {
        request = request.header("X-Switchboard-Signature", signature);
    }
    let result = request.send(delivery.body.as_str());
    let failure = match result {
        Ok(response) if response.status().is_success() => None,
        Ok(response) => Some(format!("HTTP {}", response.status().as_u16())),
        Err(e) => Some(e.to_string()),
    };
    let peer = hook_addr(&delivery.url).to_owned();
    let Some(why) = failure else {
        tracing::debug!(%peer, event = delivery.event, "webhook delivered");
        return;
    };
    match BACKOFF.get(delivery.attempt) {
        Some(&delay) => {
            tracing::debug!(%peer, event = delivery.event, attempt = delivery.attempt + 1, %why, "webhook failed; retrying");
            delivery.attempt += 1;
            *sequence += 1;
            retries.push(Pending(crate::clock::now() + delay, *sequence, delivery));
        }
        None => tracing::warn!(
            %peer,
            event = delivery.event,
            attempts = delivery.attempt + 1,
            %why,
            "webhook given up"
        ),
    }
}
