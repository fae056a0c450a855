//! The command line (clap): run the daemon, check a file, and the
//! subcommands that talk to a running daemon's admin API (users, numbers,
//! assign, route, explain, registrations, calls, reload).
//!
//! The client side prints tables for a person and the API's JSON with
//! `--json`; its exit codes are for scripts (see [`exit`]). It must not
//! change a workspace by itself: every change goes through the daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};

/// Exit codes: 0 done; 1 refused by the daemon (its error code is
/// printed); 64 bad command line; 69 daemon unreachable; 78 bad config.
pub mod exit {
    pub const REFUSED: u8 = 1;
    pub const USAGE: u8 = 64;
    pub const UNAVAILABLE: u8 = 69;
    pub const CONFIG: u8 = 78;
}

#[derive(Parser, Debug)]
#[command(
    name = "switchboard",
    version,
    about = "Switchboard: a SIP call-routing daemon for business phone systems",
    after_help = "Without a subcommand, runs the daemon (the embedded demo workspace when no --config is given).\n\
                  Client subcommands reach the admin API at --api, else the `server.admin_http` of --config, else http://127.0.0.1:8080;\n\
                  the token comes from SWITCHBOARD_ADMIN_TOKEN (or the config's server.admin_token)."
)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    /// Log format of the daemon (default: the file's server.log_format).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// The admin API's base URL, such as http://127.0.0.1:8080.
    #[arg(long, global = true)]
    pub api: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormatArg {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon (the default).
    Run,
    /// Check a configuration file (needs --config) and exit.
    Check,
    /// Why does (or doesn't) a call ring someone? With --config: from the
    /// file and the saved registrations, no daemon needed; else asks the
    /// running daemon.
    Explain {
        /// The number, in E.164.
        number: Option<String>,
        /// One user: every number and whether they ring on it.
        #[arg(long)]
        user: Option<String>,
        /// An RFC 3339 instant (default now).
        #[arg(long)]
        at: Option<String>,
    },
    /// List users, or change one.
    Users {
        #[command(subcommand)]
        action: Option<UsersCommand>,
    },
    /// List numbers, or change one.
    Numbers {
        #[command(subcommand)]
        action: Option<NumbersCommand>,
    },
    /// Assign a user to a number (they do not ring until routed).
    Assign { number: String, user: String },
    /// Take a user off a number.
    Unassign {
        number: String,
        user: String,
        /// Also take them out of the number's routing.
        #[arg(long)]
        force: bool,
    },
    /// Set who rings on a number, in order.
    Route {
        number: String,
        users: Vec<String>,
        #[arg(long, value_enum, default_value = "simultaneous")]
        strategy: StrategyArg,
        /// Cascade: seconds each user rings.
        #[arg(long)]
        step_timeout: Option<u32>,
        /// Seconds the whole attempt rings.
        #[arg(long)]
        ring_timeout: Option<u32>,
    },
    /// Devices signed in, per user.
    Registrations,
    /// Calls in progress, or (--history) call records.
    Calls {
        #[arg(long)]
        history: bool,
        #[arg(long)]
        number: Option<String>,
        #[arg(long)]
        user: Option<String>,
        /// RFC 3339.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Trunks.
    Trunks,
    /// Seats: show them, or set them.
    Plan { seats: Option<u32> },
    /// Read the config file again (like SIGHUP).
    Reload,
    /// Print a user's digest HA1 values for the config file (`ha1_md5`,
    /// `ha1_sha256`), reading the password from standard input. The realm
    /// is --realm, else the `server.domain` of --config.
    HashPassword {
        user: String,
        #[arg(long)]
        realm: Option<String>,
    },
    /// Voicemail messages in the data directory (needs --config).
    Voicemail {
        #[command(subcommand)]
        action: VoicemailCommand,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StrategyArg {
    Simultaneous,
    Cascade,
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    List,
    Show {
        id: String,
    },
    /// Invite a user (status invited; holds a seat).
    Invite {
        id: String,
        #[arg(long)]
        name: String,
        /// Made up and printed when absent.
        #[arg(long)]
        password: Option<String>,
    },
    Activate {
        id: String,
    },
    Deactivate {
        id: String,
    },
    Remove {
        id: String,
        /// Also take them out of every routing.
        #[arg(long)]
        force: bool,
    },
    /// Set a user's digest password.
    Password {
        id: String,
        password: String,
    },
    /// Change a user's name, max_calls or do-not-disturb.
    Set {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        max_calls: Option<u32>,
        #[arg(long)]
        dnd: Option<bool>,
    },
}

#[derive(Subcommand, Debug)]
pub enum NumbersCommand {
    List,
    Show {
        number: String,
    },
    Create {
        number: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        timezone: String,
    },
    Rename {
        number: String,
        name: String,
    },
    Delete {
        number: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum VoicemailCommand {
    List {
        number: Option<String>,
    },
    Export {
        number: Option<String>,
        #[arg(long)]
        to: PathBuf,
    },
    Delete {
        number: String,
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

/// `hash-password`: the lines to put in the user's `[[users]]` entry.
pub fn hash_password(user: &str, realm: &str, password: &str) -> String {
    use sip::auth::{ha1, Algorithm};
    format!(
        "ha1_md5 = \"{}\"\nha1_sha256 = \"{}\"\n",
        ha1(Algorithm::Md5, user, realm, password),
        ha1(Algorithm::Sha256, user, realm, password)
    )
}

/// Where the API is and the token to show it.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// What a call to the API gave.
pub enum Reply {
    Ok(Value),
    /// Refused: status, code, message.
    Refused(u16, String, String),
}

impl Client {
    pub fn new(base: String, token: Option<String>) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build();
        Client {
            base: base.trim_end_matches('/').to_owned(),
            token,
            agent: config.into(),
        }
    }

    /// One request; `Err` when the daemon cannot be reached.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Reply, String> {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            ("DELETE", _) => {
                let mut r = self.agent.delete(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (m, body) => {
                let mut r = match m {
                    "PUT" => self.agent.put(&url),
                    "PATCH" => self.agent.patch(&url),
                    _ => self.agent.post(&url),
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                match body {
                    Some(b) => r.send_json(b),
                    None => r.send_empty(),
                }
            }
        };
        let mut response =
            result.map_err(|e| format!("cannot reach the daemon at {}: {e}", self.base))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let json: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if (200..300).contains(&status) {
            Ok(Reply::Ok(json))
        } else {
            let code = json["error"].as_str().unwrap_or("error").to_owned();
            let message = json["message"].as_str().unwrap_or("").to_owned();
            Ok(Reply::Refused(status, code, message))
        }
    }
}

/// Percent-encodes a path segment (a number's `+`, a user id).
fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A request a client subcommand makes, and how its answer is printed.
struct Request {
    method: &'static str,
    path: String,
    body: Option<Value>,
    print: fn(&Value) -> String,
}

impl Request {
    fn get(path: String, print: fn(&Value) -> String) -> Request {
        Request {
            method: "GET",
            path,
            body: None,
            print,
        }
    }
    fn change(
        method: &'static str,
        path: String,
        body: Option<Value>,
        print: fn(&Value) -> String,
    ) -> Request {
        Request {
            method,
            path,
            body,
            print,
        }
    }
}

/// The request of a client subcommand; `None` for the others.
fn request(command: &Command) -> Option<Request> {
    use Command as C;
    Some(match command {
        C::Users { action } => match action.as_ref().unwrap_or(&UsersCommand::List) {
            UsersCommand::List => Request::get("/api/v1/users".into(), users_table),
            UsersCommand::Show { id } => {
                Request::get(format!("/api/v1/users/{}", segment(id)), user_text)
            }
            UsersCommand::Invite { id, name, password } => Request::change(
                "POST",
                "/api/v1/users".into(),
                Some(json!({"id": id, "name": name, "password": password})),
                invited_text,
            ),
            UsersCommand::Activate { id } => Request::change(
                "POST",
                format!("/api/v1/users/{}/activate", segment(id)),
                None,
                user_text,
            ),
            UsersCommand::Deactivate { id } => Request::change(
                "POST",
                format!("/api/v1/users/{}/deactivate", segment(id)),
                None,
                user_text,
            ),
            UsersCommand::Remove { id, force } => Request::change(
                "DELETE",
                format!(
                    "/api/v1/users/{}{}",
                    segment(id),
                    if *force { "?force=true" } else { "" }
                ),
                None,
                done,
            ),
            UsersCommand::Password { id, password } => Request::change(
                "PUT",
                format!("/api/v1/users/{}/password", segment(id)),
                Some(json!({"password": password})),
                done,
            ),
            UsersCommand::Set {
                id,
                name,
                max_calls,
                dnd,
            } => Request::change(
                "PATCH",
                format!("/api/v1/users/{}", segment(id)),
                Some(json!({"name": name, "max_calls": max_calls, "do_not_disturb": dnd})),
                user_text,
            ),
        },
        C::Numbers { action } => match action.as_ref().unwrap_or(&NumbersCommand::List) {
            NumbersCommand::List => Request::get("/api/v1/numbers".into(), numbers_table),
            NumbersCommand::Show { number } => {
                Request::get(format!("/api/v1/numbers/{}", segment(number)), pretty)
            }
            NumbersCommand::Create {
                number,
                name,
                timezone,
            } => Request::change(
                "POST",
                "/api/v1/numbers".into(),
                Some(json!({"number": number, "name": name, "timezone": timezone})),
                number_line,
            ),
            NumbersCommand::Rename { number, name } => Request::change(
                "PATCH",
                format!("/api/v1/numbers/{}", segment(number)),
                Some(json!({"name": name})),
                number_line,
            ),
            NumbersCommand::Delete { number } => Request::change(
                "DELETE",
                format!("/api/v1/numbers/{}", segment(number)),
                None,
                done,
            ),
        },
        C::Assign { number, user } => Request::change(
            "PUT",
            format!(
                "/api/v1/numbers/{}/members/{}",
                segment(number),
                segment(user)
            ),
            None,
            number_line,
        ),
        C::Unassign {
            number,
            user,
            force,
        } => Request::change(
            "DELETE",
            format!(
                "/api/v1/numbers/{}/members/{}{}",
                segment(number),
                segment(user),
                if *force { "?force=true" } else { "" }
            ),
            None,
            number_line,
        ),
        C::Route {
            number,
            users,
            strategy,
            step_timeout,
            ring_timeout,
        } => Request::change(
            "PUT",
            format!("/api/v1/numbers/{}/routing", segment(number)),
            Some(json!({
                "strategy": match strategy { StrategyArg::Simultaneous => "simultaneous", StrategyArg::Cascade => "cascade" },
                "ring": users,
                "step_timeout": step_timeout,
                "ring_timeout": ring_timeout,
            })),
            number_line,
        ),
        C::Registrations => Request::get("/api/v1/registrations".into(), registrations_table),
        C::Calls { history: false, .. } => Request::get("/api/v1/calls".into(), calls_table),
        C::Calls {
            history: true,
            number,
            user,
            since,
            limit,
        } => {
            let mut query = Vec::new();
            for (k, v) in [
                ("number", number.clone()),
                ("user", user.clone()),
                ("since", since.clone()),
                ("limit", limit.map(|l| l.to_string())),
            ] {
                if let Some(v) = v {
                    query.push(format!("{k}={}", segment(&v)));
                }
            }
            let q = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            Request::get(format!("/api/v1/calls/history{q}"), history_table)
        }
        C::Trunks => Request::get("/api/v1/trunks".into(), pretty),
        C::Plan { seats: None } => Request::get("/api/v1/plan".into(), plan_line),
        C::Plan { seats: Some(s) } => Request::change(
            "PUT",
            "/api/v1/plan".into(),
            Some(json!({"seats": s})),
            plan_line,
        ),
        C::Reload => Request::change("POST", "/api/v1/reload".into(), None, reloaded_line),
        C::Explain { number, user, at } => {
            let q = at
                .as_ref()
                .map(|a| format!("?at={}", segment(a)))
                .unwrap_or_default();
            match (number, user) {
                (_, Some(u)) => {
                    Request::get(format!("/api/v1/users/{}/explain{q}", segment(u)), |v| {
                        crate::explain::user_text(v)
                    })
                }
                (Some(n), None) => {
                    Request::get(format!("/api/v1/numbers/{}/explain{q}", segment(n)), |v| {
                        crate::explain::number_text(v)
                    })
                }
                (None, None) => return None,
            }
        }
        C::Run | C::Check | C::Voicemail { .. } | C::HashPassword { .. } => return None,
    })
}

/// Runs a client subcommand against the API; `None` when `command` is
/// not one.
pub fn run_client(command: &Command, client: &Client, json_out: bool) -> Option<ExitCode> {
    let request = request(command)?;
    Some(
        match client.call(request.method, &request.path, request.body) {
            Err(e) => {
                eprintln!("switchboard: {e}");
                ExitCode::from(exit::UNAVAILABLE)
            }
            Ok(Reply::Refused(status, code, message)) => {
                if json_out {
                    println!(
                        "{}",
                        json!({"error": code, "message": message, "status": status})
                    );
                } else {
                    eprintln!("switchboard: {message} ({code}, HTTP {status})");
                }
                ExitCode::from(exit::REFUSED)
            }
            Ok(Reply::Ok(value)) => {
                if json_out {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&value).unwrap_or_default()
                    );
                } else {
                    print!("{}", (request.print)(&value));
                }
                ExitCode::SUCCESS
            }
        },
    )
}

// ---------------------------------------------------------------------------
// Printing for a person.

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn list(v: &Value) -> String {
    match v.as_array() {
        Some(a) if !a.is_empty() => a.iter().map(s).collect::<Vec<_>>().join(","),
        _ => "-".into(),
    }
}

fn done(_: &Value) -> String {
    "done\n".into()
}

fn pretty(v: &Value) -> String {
    format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ");
        out = out.trim_end().to_owned();
        out.push('\n');
        out
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

fn users_table(v: &Value) -> String {
    let rows = v
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|u| {
            vec![
                s(&u["id"]),
                s(&u["name"]),
                s(&u["status"]),
                list(&u["numbers"]),
                list(&u["routed_on"]),
                s(&u["devices"]),
                if u["busy"].as_bool() == Some(true) {
                    "busy".into()
                } else {
                    s(&u["active_calls"])
                },
                if u["do_not_disturb"].as_bool() == Some(true) {
                    "dnd".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "STATUS",
            "NUMBERS",
            "ROUTED ON",
            "DEVICES",
            "CALLS",
            "",
        ],
        rows,
    )
}

fn user_text(u: &Value) -> String {
    users_table(&Value::Array(vec![u.clone()]))
}

fn invited_text(u: &Value) -> String {
    let mut out = user_text(u);
    if let Some(p) = u["password"].as_str() {
        out.push_str(&format!("password: {p}\n"));
    }
    out
}

fn numbers_table(v: &Value) -> String {
    let rows = v
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|n| {
            vec![
                s(&n["number"]),
                s(&n["name"]),
                s(&n["timezone"]),
                list(&n["members"]),
                s(&n["routing"]["strategy"]),
                list(&n["routing"]["ring"]),
            ]
        })
        .collect();
    table(
        &["NUMBER", "NAME", "TIMEZONE", "MEMBERS", "STRATEGY", "RINGS"],
        rows,
    )
}

fn number_line(n: &Value) -> String {
    numbers_table(&Value::Array(vec![n.clone()]))
}

fn registrations_table(v: &Value) -> String {
    let mut rows = Vec::new();
    for u in v.as_array().cloned().unwrap_or_default() {
        for d in u["devices"].as_array().cloned().unwrap_or_default() {
            rows.push(vec![
                s(&u["user"]),
                s(&d["contact"]),
                s(&d["transport"]),
                s(&d["source"]),
                format!("{} s", s(&d["expires_in_s"])),
            ]);
        }
    }
    if rows.is_empty() {
        return "nobody is signed in\n".into();
    }
    table(
        &["USER", "CONTACT", "TRANSPORT", "SOURCE", "EXPIRES IN"],
        rows,
    )
}

fn calls_table(v: &Value) -> String {
    let calls = v.as_array().cloned().unwrap_or_default();
    if calls.is_empty() {
        return "no calls in progress\n".into();
    }
    let rows = calls
        .iter()
        .map(|c| {
            let ringing: Vec<String> = c["ringing"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|p| s(&p["user"]))
                .collect();
            vec![
                s(&c["number"]),
                s(&c["caller"]),
                s(&c["state"]),
                if ringing.is_empty() {
                    "-".into()
                } else {
                    ringing.join(",")
                },
                s(&c["answered_by"]["user"]),
                s(&c["since"]),
            ]
        })
        .collect();
    table(
        &[
            "NUMBER",
            "CALLER",
            "STATE",
            "RINGING",
            "ANSWERED BY",
            "SINCE",
        ],
        rows,
    )
}

fn history_table(v: &Value) -> String {
    let calls = v.as_array().cloned().unwrap_or_default();
    if calls.is_empty() {
        return "no call records\n".into();
    }
    let rows = calls
        .iter()
        .map(|c| {
            let skipped: Vec<String> = c["skipped"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|k| format!("{}:{}", s(&k["user"]), s(&k["gate"])))
                .collect();
            vec![
                s(&c["ended"]),
                s(&c["number"]),
                s(&c["caller"]),
                s(&c["outcome"]),
                s(&c["answered_by"]),
                format!("{:.1} s", c["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0),
                if skipped.is_empty() {
                    "-".into()
                } else {
                    skipped.join(" ")
                },
            ]
        })
        .collect();
    table(
        &[
            "ENDED",
            "NUMBER",
            "CALLER",
            "OUTCOME",
            "ANSWERED BY",
            "DURATION",
            "SKIPPED",
        ],
        rows,
    )
}

fn plan_line(v: &Value) -> String {
    format!("{} of {} seats used\n", s(&v["used"]), s(&v["seats"]))
}

fn reloaded_line(v: &Value) -> String {
    format!(
        "reloaded: {} users, {} numbers; {} calls up keep their routing{}\n",
        s(&v["users"]),
        s(&v["numbers"]),
        s(&v["calls_up"]),
        if v["restart_needed"].as_bool() == Some(true) {
            "; [server] changes apply at the next start"
        } else {
            ""
        }
    )
}
