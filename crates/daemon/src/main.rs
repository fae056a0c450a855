//! `switchboard`: run the daemon, check a configuration file, and talk to
//! a running daemon's admin API (see `switchboard --help` and the README).
//! Without `--config`, the embedded demo workspace is copied to `./data`
//! once and run from that copy (admin changes are saved there).

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use switchboard::cli::{exit, Cli, Client, Command, VoicemailCommand};
use switchboard::server::Daemon;
use switchboard::settings::{Config, LogFormat};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn load(path: &Path) -> Result<Config, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    // Every prompt is read and checked with the file (missing, unreadable,
    // not 8 kHz mono...), so `check` refuses what the daemon would.
    switchboard::media_runtime::PromptStore::load(&config.directory, &config.origin)
        .map_err(|e| e.to_string())?;
    Ok(config)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal; logs read by tools stay plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The API's address and token for client subcommands: --api, else the
/// config file's `server.admin_http`; the environment's token, else the file's.
fn client(cli: &Cli) -> Result<Client, String> {
    let config = match &cli.config {
        Some(path) => Some(Config::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let base = match (&cli.api, &config) {
        (Some(api), _) => api.clone(),
        (None, Some(c)) => match c.server.admin_http {
            Some(addr) => format!("http://{addr}"),
            None => {
                return Err(format!(
                    "{}: server.admin_http is not set: the daemon has no admin API",
                    c.origin.display()
                ))
            }
        },
        (None, None) => {
            std::env::var("SWITCHBOARD_API").unwrap_or_else(|_| "http://127.0.0.1:8080".into())
        }
    };
    let token = std::env::var("SWITCHBOARD_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| config.and_then(|c| c.server.admin_token.map(|t| t.0)));
    Ok(Client::new(base, token))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let command = cli.command.as_ref().unwrap_or(&Command::Run);
    if let Command::HashPassword { user, realm } = command {
        return hash_password(user, realm.as_deref(), cli.config.as_deref());
    }
    // `explain` with a file answers from it, without a daemon.
    let offline_explain =
        matches!(command, Command::Explain { user: None, .. }) && cli.config.is_some();
    if !offline_explain
        && !matches!(
            command,
            Command::Run | Command::Check | Command::Voicemail { .. }
        )
    {
        if matches!(
            command,
            Command::Explain {
                number: None,
                user: None,
                ..
            }
        ) {
            eprintln!("switchboard: explain needs a NUMBER or --user USER");
            return ExitCode::from(exit::USAGE);
        }
        let client = match client(&cli) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("switchboard: {e}");
                return ExitCode::from(exit::CONFIG);
            }
        };
        if let Some(code) = switchboard::cli::run_client(command, &client, cli.json) {
            return code;
        }
    }
    let path = match (&cli.config, command) {
        (Some(path), _) => path.clone(),
        (None, Command::Run) => {
            // The demo runs from a copy in ./data, so that admin changes persist.
            let data = match std::env::current_dir() {
                Ok(cwd) => cwd.join("data"),
                Err(e) => {
                    eprintln!("switchboard: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match switchboard::demo::materialize(&data) {
                Ok(path) => path,
                Err(e) => {
                    eprintln!(
                        "switchboard: writing the demo workspace to {}: {e}",
                        data.display()
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
        (None, _) => {
            eprintln!("switchboard: this subcommand needs --config FILE");
            return ExitCode::from(exit::USAGE);
        }
    };
    // Load and validate before binding anything.
    let config = match load(&path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    match command {
        Command::Explain {
            number: Some(number),
            at,
            ..
        } => return explain(&config, number, at.as_deref(), cli.json),
        Command::Voicemail { action } => return voicemail(&config, action, cli.json),
        Command::Check => {
            println!(
                "{}: ok ({} users, {} numbers, {} trunks)",
                path.display(),
                config.directory.users().len(),
                config.directory.numbers().len(),
                config.directory.trunks().len()
            );
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let format = match cli.log_format {
        Some(switchboard::cli::LogFormatArg::Human) => LogFormat::Human,
        Some(switchboard::cli::LogFormatArg::Json) => LogFormat::Json,
        None => config.server.log_format,
    };
    init_logging(format);
    // Each TCP client holds a descriptor: take all the system allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(open_files = limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    if cli.config.is_none() {
        tracing::info!(file = %path.display(), "no --config given: running the demo workspace from its copy");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Before the start: a SIGHUP during it must not kill the daemon.
        let hangups = hangup_signals();
        let grace = config.server.shutdown_grace;
        let daemon = match Daemon::start(config).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("{e:#}");
                return ExitCode::FAILURE;
            }
        };
        let token = daemon.shutdown_token();
        let control = std::sync::Arc::clone(&daemon.control);
        // Every SIGTERM and Ctrl-C, from one listener made now: a second
        // one during the grace period is never missed.
        let mut stops = stop_signals();
        tokio::spawn(async move {
            if stops.recv().await.is_none() {
                return;
            }
            tracing::info!("shutting down");
            let second = async move {
                let _ = stops.recv().await;
            };
            switchboard::server::stop_gracefully(control, token, grace, second).await;
        });
        tokio::spawn(reload_on_hangup(
            hangups,
            std::sync::Arc::clone(&daemon.control),
        ));
        daemon.wait().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// `hash-password USER`: the password from standard input (a trailing
/// newline is not part of it), never from the command line.
fn hash_password(user: &str, realm: Option<&str>, config: Option<&Path>) -> ExitCode {
    let realm = match (realm, config) {
        (Some(r), _) => r.to_owned(),
        (None, Some(path)) => match Config::load(path) {
            Ok(c) => c.server.domain,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(exit::CONFIG);
            }
        },
        (None, None) => {
            eprintln!("switchboard: hash-password needs --realm REALM or --config FILE (the realm is server.domain)");
            return ExitCode::from(exit::USAGE);
        }
    };
    let mut password = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut password) {
        eprintln!("switchboard: reading the password: {e}");
        return ExitCode::FAILURE;
    }
    let password = password.strip_suffix('\n').unwrap_or(&password);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!("switchboard: no password on standard input");
        return ExitCode::from(exit::USAGE);
    }
    print!(
        "{}",
        switchboard::cli::hash_password(user, &realm, password)
    );
    ExitCode::SUCCESS
}

/// SIGHUP reloads the config file; an invalid one is refused (every error
/// logged) and the running workspace kept.
#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

fn hangup_signals() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    None
}

async fn reload_on_hangup(hangups: Hangups, control: std::sync::Arc<switchboard::admin::Control>) {
    #[cfg(unix)]
    {
        let Some(mut hangups) = hangups else {
            return;
        };
        while hangups.recv().await.is_some() {
            match control.reload().await {
                Ok(r) => tracing::info!(
                    users = r.users,
                    numbers = r.numbers,
                    "SIGHUP: configuration reloaded"
                ),
                Err(e) => tracing::error!(
                    "SIGHUP: reload refused, the running workspace is kept: {}",
                    e.message
                ),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (hangups, control);
}

/// `voicemail list|export|delete`: the mailboxes under the data directory.
fn voicemail(config: &Config, action: &VoicemailCommand, json_out: bool) -> ExitCode {
    use switchboard::media_runtime::voicemail as vm;
    let data_dir = &config.server.data_dir;
    let (number_arg, id) = match action {
        VoicemailCommand::List { number } | VoicemailCommand::Export { number, .. } => {
            (number.as_ref(), None)
        }
        VoicemailCommand::Delete { number, id, .. } => (Some(number), id.as_ref()),
    };
    let number = match number_arg {
        Some(n) => match directory::normalize_e164(n) {
            Some(e164) if config.directory.number_index(e164.as_str()).is_some() => {
                Some(e164.as_str().to_string())
            }
            _ => {
                eprintln!("switchboard: {n} is not one of the workspace's numbers");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    match action {
        VoicemailCommand::List { .. } => {
            let messages = vm::list(data_dir, number.as_deref());
            if json_out {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&messages).unwrap_or_default()
                );
            } else if messages.is_empty() {
                println!("no messages");
            } else {
                for m in &messages {
                    println!(
                        "{}  {}  {}  {:.1} s  from {}",
                        m.number, m.id, m.started, m.duration_seconds, m.caller
                    );
                }
            }
            ExitCode::SUCCESS
        }
        VoicemailCommand::Export { to, .. } => {
            let messages = vm::list(data_dir, number.as_deref());
            if let Err(e) = std::fs::create_dir_all(to) {
                eprintln!("switchboard: {}: {e}", to.display());
                return ExitCode::FAILURE;
            }
            for m in &messages {
                let name = format!("{}-{}", m.number.trim_start_matches('+'), m.id);
                let copied =
                    std::fs::copy(vm::wav_path(data_dir, m), to.join(format!("{name}.wav")))
                        .and_then(|_| {
                            let json = serde_json::to_vec_pretty(m).unwrap_or_default();
                            std::fs::write(to.join(format!("{name}.json")), json)
                        });
                if let Err(e) = copied {
                    eprintln!("switchboard: exporting {name}: {e}");
                    return ExitCode::FAILURE;
                }
            }
            println!("{} messages exported to {}", messages.len(), to.display());
            ExitCode::SUCCESS
        }
        VoicemailCommand::Delete { all, .. } => {
            let Some(number) = number else {
                eprintln!("switchboard: voicemail delete needs a NUMBER");
                return ExitCode::from(exit::USAGE);
            };
            if id.is_none() && !all {
                eprintln!("switchboard: voicemail delete needs a message ID, or --all");
                return ExitCode::from(exit::USAGE);
            }
            let doomed: Vec<_> = vm::list(data_dir, Some(&number))
                .into_iter()
                .filter(|m| id.is_none_or(|id| &m.id == id))
                .collect();
            if doomed.is_empty() {
                eprintln!("switchboard: no such message");
                return ExitCode::FAILURE;
            }
            for m in &doomed {
                if let Err(e) = vm::delete(data_dir, m) {
                    eprintln!("switchboard: deleting {}: {e}", m.id);
                    return ExitCode::FAILURE;
                }
            }
            println!("{} messages deleted", doomed.len());
            ExitCode::SUCCESS
        }
    }
}

/// `explain`: prints the plan of a call to `number`; exit 1 when it cannot.
fn explain(config: &Config, number: &str, at: Option<&str>, json: bool) -> ExitCode {
    let at = match at.map(switchboard::explain::parse_at) {
        Some(Ok(at)) => at,
        Some(Err(e)) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(exit::USAGE);
        }
        None => switchboard::clock::wall(),
    };
    match switchboard::explain::explain(config, number, at) {
        Ok((value, text)) => {
            if json {
                println!("{value}");
            } else {
                print!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A channel that gets one message per SIGTERM or Ctrl-C, from listeners
/// registered before it returns.
fn stop_signals() -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            let tx = tx.clone();
            tokio::spawn(async move {
                while term.recv().await.is_some() {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
            });
        }
    }
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    rx
}
