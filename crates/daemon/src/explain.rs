//! `switchboard explain`: what a call to a number would do at an instant,
//! from the configuration and the registrations saved in the data
//! directory, without a running daemon. It prints the same plan the engine
//! would carry out (`routing::explain`), with the reason for every choice.
//!
//! Reads only: the data directory is never written (a daemon may be
//! running on it).

use std::fmt::Write;
use std::sync::Arc;

use directory::{Destination, Directory, NumberIdx, Strategy};
use jiff::Timestamp;
use presence::{Presence, RegistrationStore};
use routing::hours::{self, OpenReason};
use routing::{Gate, Plan};
use serde_json::{json, Value};

use crate::settings::Config;

/// Why `explain` could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("`{0}` is not one of the workspace's numbers")]
    UnknownNumber(String),
    #[error("reading the registrations: {0}")]
    Store(#[from] presence::StoreError),
}

/// The explanation of a call to `number` at `at`, as JSON (the `--json`
/// shape) and as text for a person.
pub fn explain(
    config: &Config,
    number: &str,
    at: Timestamp,
) -> Result<(Value, String), ExplainError> {
    let directory = &config.directory;
    let idx = routing::find_number(directory, number)
        .ok_or_else(|| ExplainError::UnknownNumber(number.to_string()))?;
    let presence = Arc::new(Presence::new());
    RegistrationStore::read(&config.server.data_dir, &presence, routing::unix_ms(at))?;
    let view = presence.view(directory);
    let plan = routing::explain(directory, &view, idx, at);
    let json = to_json(directory, idx, &plan, at);
    let text = to_text(&json);
    Ok((json, text))
}

/// The same explanation on a running daemon's workspace and presence (the
/// admin API's `GET /numbers/{number}/explain`).
pub fn number_live(workspace: &engine::Workspace, idx: NumberIdx, at: Timestamp) -> Value {
    let plan = routing::explain(&workspace.directory, &workspace.presence, idx, at);
    to_json(&workspace.directory, idx, &plan, at)
}

/// For one user, every number and whether they would ring on it at `at`,
/// and if not, the first gate that stops them: `not_assigned` where they
/// are not a member, `number_closed` where every gate passes but the
/// number is closed. The FAQ "why isn't X ringing?" in one answer.
pub fn user_live(workspace: &engine::Workspace, user: directory::UserIdx, at: Timestamp) -> Value {
    let directory = &workspace.directory;
    let numbers: Vec<Value> = directory
        .numbers()
        .iter()
        .enumerate()
        .map(|(i, number)| {
            let idx = NumberIdx(i as u32);
            if !number.is_member(user) {
                return json!({
                    "number": number.e164,
                    "name": number.name,
                    "rings": false,
                    "gate": "not_assigned",
                });
            }
            let plan = routing::explain(directory, &workspace.presence, idx, at);
            let gate = plan
                .verdicts(directory)
                .iter()
                .find(|v| v.user == user)
                .and_then(|v| v.stopped_by);
            let (rings, gate) = match gate {
                Some(g) => (false, Some(g.as_str())),
                None if !plan.open.open => (false, Some("number_closed")),
                None => (true, None),
            };
            json!({
                "number": number.e164,
                "name": number.name,
                "rings": rings,
                "gate": gate,
                "open": plan.open.open,
            })
        })
        .collect();
    let u = directory.user(user);
    json!({
        "user": u.id,
        "name": u.name,
        "status": u.status.as_str(),
        "at": at.to_string(),
        "numbers": numbers,
    })
}

/// A user's explanation for a person.
pub fn user_text(json: &Value) -> String {
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}, {}) at {}",
        s(&json["user"]),
        s(&json["name"]),
        s(&json["status"]),
        s(&json["at"])
    );
    let numbers = json["numbers"].as_array().cloned().unwrap_or_default();
    if numbers.is_empty() {
        let _ = writeln!(out, "  the workspace has no numbers");
    }
    for n in numbers {
        let verdict = match n["gate"].as_str() {
            None => "rings".to_string(),
            Some(gate) => format!("does not ring: {gate}"),
        };
        let _ = writeln!(
            out,
            "  {:<14} {:<16} {verdict}",
            s(&n["number"]),
            s(&n["name"])
        );
    }
    out
}

/// A number's explanation for a person (the text `switchboard explain` prints).
pub fn number_text(json: &Value) -> String {
    to_text(json)
}

fn to_json(directory: &Directory, idx: NumberIdx, plan: &Plan, at: Timestamp) -> Value {
    let number = directory.number(idx);
    let tz = &number.timezone;
    let next = hours::next_change(number.hours.as_ref(), tz, at);
    let reason = match plan.open.reason {
        OpenReason::AlwaysOpen => "no business hours: always open".to_string(),
        OpenReason::Window {
            day,
            window,
            special,
        } => format!(
            "inside the {} window {window} of {day}",
            if special { "special-day" } else { "weekly" }
        ),
        OpenReason::Closed { from, to } if from == to => format!("closed on {from}"),
        OpenReason::Closed { from, to } => format!("closed from {from} to {to}"),
        OpenReason::OutsideWindows => "outside the opening windows".to_string(),
    };
    let user = |u: directory::UserIdx| directory.user(u).id.clone();
    let steps: Vec<Value> = plan
        .tiers
        .iter()
        .map(|tier| {
            json!({
                "ring": tier.users.iter().map(|&u| user(u)).collect::<Vec<_>>(),
                "strategy": tier.strategy.as_str(),
                "timeout_s": tier.timeout.as_secs(),
            })
        })
        .collect();
    let members: Vec<Value> = plan
        .verdicts(directory)
        .iter()
        .map(|v| {
            json!({
                "user": user(v.user),
                // A closed number rings nobody, whatever the gates say.
                "rings": plan.open.open && v.rings(),
                "gate": v.stopped_by.map(Gate::as_str),
            })
        })
        .collect();
    json!({
        "number": number.e164,
        "name": number.name,
        "at": at.to_string(),
        "timezone": number.timezone_name,
        "local_time": tz.to_datetime(at).to_string(),
        "open": plan.open.open,
        "reason": reason,
        "next_change": next.map(|t| json!({
            "at": t.to_string(),
            "local_time": tz.to_datetime(t).to_string(),
            "opens": !plan.open.open,
        })),
        "strategy": number.routing.strategy.as_str(),
        "ring_timeout_s": plan.ring_timeout.as_secs(),
        "plan": steps,
        "destination": destination(directory, &plan.then),
        "members": members,
    })
}

fn destination(directory: &Directory, then: &Destination) -> Value {
    match then {
        Destination::Hangup { status: Some(s) } => json!({"action": "hangup", "status": s}),
        Destination::Hangup { status: None } => {
            json!({"action": "hangup", "status": "480, or 486 when everyone was busy"})
        }
        Destination::Ring(group) => json!({
            "action": "ring",
            "users": group.users.iter().map(|&u| directory.user(u).id.clone()).collect::<Vec<_>>(),
            "strategy": group.strategy.as_str(),
            "step_timeout_s": (group.strategy == Strategy::Cascade).then_some(group.step_timeout.as_secs()),
            "ring_timeout_s": group.ring_timeout.as_secs(),
        }),
        Destination::Number(n) => json!({"action": "number", "number": directory.number(*n).e164}),
        Destination::Forward { to, caller_id } => json!({
            "action": "forward",
            "to": to,
            "caller_id": match caller_id {
                directory::CallerId::Caller => "caller",
                directory::CallerId::Number => "number",
            },
        }),
        Destination::Voicemail => json!({"action": "voicemail"}),
        Destination::Ivr(menu) => json!({"action": "ivr", "menu": directory.menu(*menu).name}),
        Destination::Message(prompt) => json!({
            "action": "message",
            "prompt": directory.prompt(*prompt).path.display().to_string(),
        }),
    }
}

fn to_text(json: &Value) -> String {
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}) at {} ({} local, {})",
        s(&json["number"]),
        s(&json["name"]),
        s(&json["at"]),
        s(&json["local_time"]),
        s(&json["timezone"])
    );
    let open = json["open"].as_bool().unwrap_or(false);
    let _ = writeln!(
        out,
        "  {}: {}",
        if open { "open" } else { "closed" },
        s(&json["reason"])
    );
    if let Some(next) = json["next_change"].as_object() {
        let _ = writeln!(
            out,
            "  {} at {} local",
            if next["opens"].as_bool().unwrap_or(false) {
                "opens"
            } else {
                "closes"
            },
            s(&next["local_time"])
        );
    }
    let steps = json["plan"].as_array().cloned().unwrap_or_default();
    if steps.is_empty() {
        let _ = writeln!(out, "  rings nobody");
    } else {
        let _ = writeln!(
            out,
            "  rings ({}, {} s in all):",
            s(&json["strategy"]),
            s(&json["ring_timeout_s"])
        );
        for (i, step) in steps.iter().enumerate() {
            let users: Vec<String> = step["ring"]
                .as_array()
                .map(|a| a.iter().map(s).collect())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    {}. {} for {} s",
                i + 1,
                users.join(", "),
                s(&step["timeout_s"])
            );
        }
    }
    let _ = writeln!(out, "  then: {}", compact(&json["destination"]));
    let _ = writeln!(out, "  members:");
    for m in json["members"].as_array().cloned().unwrap_or_default() {
        let verdict = match m["gate"].as_str() {
            None => "rings".to_string(),
            Some(gate) => format!("does not ring: {gate}"),
        };
        let _ = writeln!(out, "    {:<16} {verdict}", s(&m["user"]));
    }
    out
}

fn compact(v: &Value) -> String {
    match v.as_object() {
        Some(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => v.to_string(),
    }
}

/// Parses `--at`: an RFC 3339 instant (`2026-12-07T10:00:00+01:00`, `...Z`).
pub fn parse_at(text: &str) -> Result<Timestamp, String> {
    text.parse::<Timestamp>().map_err(|e| {
        format!("--at {text:?} is not an RFC 3339 instant such as 2026-12-07T10:00:00+01:00: {e}")
    })
}
