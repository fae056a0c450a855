//! `switchboard`: run the daemon, or check a configuration file.
//!
//! ```text
//! switchboard [--config FILE] [--log-format human|json]
//! switchboard check --config FILE
//! switchboard explain --config FILE NUMBER [--at RFC3339] [--json]
//! switchboard voicemail list --config FILE [NUMBER] [--json]
//! switchboard voicemail export --config FILE [NUMBER] --to DIR
//! switchboard voicemail delete --config FILE NUMBER (ID | --all)
//! ```
//! Without `--config`, the embedded demo workspace is used (data in ./data).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use switchboard::server::Daemon;
use switchboard::settings::{Config, LogFormat};
use switchboard::DEMO_CONFIG;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sysexits' EX_USAGE / EX_CONFIG: bad command line or configuration.
const EXIT_USAGE: u8 = 64;
const EXIT_CONFIG: u8 = 78;

struct Args {
    check: bool,
    /// `explain NUMBER`.
    explain: Option<String>,
    at: Option<String>,
    json: bool,
    config: Option<PathBuf>,
    log_format: Option<LogFormat>,
    /// `voicemail ACTION [NUMBER] [ID]`.
    voicemail: Option<Vec<String>>,
    to: Option<PathBuf>,
    all: bool,
}

fn usage() -> &'static str {
    "usage: switchboard [--config FILE] [--log-format human|json]\n       switchboard check --config FILE\n       switchboard explain --config FILE NUMBER [--at RFC3339] [--json]\n       switchboard voicemail list --config FILE [NUMBER] [--json]\n       switchboard voicemail export --config FILE [NUMBER] --to DIR\n       switchboard voicemail delete --config FILE NUMBER (ID | --all)"
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        check: false,
        explain: None,
        at: None,
        json: false,
        config: None,
        log_format: None,
        voicemail: None,
        to: None,
        all: false,
    };
    let mut explaining = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "check" => args.check = true,
            "voicemail" if args.voicemail.is_none() => args.voicemail = Some(Vec::new()),
            "--to" => args.to = Some(PathBuf::from(it.next().ok_or("--to needs a folder")?)),
            "--all" => args.all = true,
            word if args.voicemail.is_some() && !word.starts_with('-') => {
                if let Some(words) = args.voicemail.as_mut() {
                    words.push(word.to_string());
                }
            }
            "explain" => explaining = true,
            "--at" => args.at = Some(it.next().ok_or("--at needs an RFC 3339 instant")?),
            "--json" => args.json = true,
            number if explaining && args.explain.is_none() && !number.starts_with('-') => {
                args.explain = Some(number.to_string());
            }
            "--config" | "-c" => {
                args.config = Some(it.next().ok_or("--config needs a file")?.into());
            }
            "--log-format" => {
                args.log_format = Some(match it.next().as_deref() {
                    Some("human") => LogFormat::Human,
                    Some("json") => LogFormat::Json,
                    _ => return Err("--log-format takes human or json".into()),
                });
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if explaining && args.explain.is_none() {
        return Err("explain needs a NUMBER".into());
    }
    if !explaining && args.at.is_some() {
        return Err("--at and --json go with explain".into());
    }
    Ok(args)
}

fn load(args: &Args) -> Result<Config, String> {
    let config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => {
            let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
            Config::parse(
                DEMO_CONFIG,
                Path::new(switchboard::EMBEDDED_DEMO_ORIGIN),
                &cwd,
            )
            .map_err(|e| e.to_string())?
        }
    };
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

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("switchboard: {msg}");
            }
            eprintln!("{}", usage());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if (args.check || args.explain.is_some() || args.voicemail.is_some()) && args.config.is_none() {
        eprintln!(
            "switchboard: check and explain need --config FILE\n{}",
            usage()
        );
        return ExitCode::from(EXIT_USAGE);
    }
    // Load and validate before binding anything.
    let config = match load(&args) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(number) = &args.explain {
        return explain(&config, number, args.at.as_deref(), args.json);
    }
    if let Some(words) = &args.voicemail {
        return voicemail(&config, words, &args);
    }
    if args.check {
        println!(
            "{}: ok ({} users, {} numbers, {} trunks)",
            args.config.as_deref().unwrap_or(Path::new("-")).display(),
            config.directory.users().len(),
            config.directory.numbers().len(),
            config.directory.trunks().len()
        );
        return ExitCode::SUCCESS;
    }
    init_logging(args.log_format.unwrap_or(config.server.log_format));
    if args.config.is_none() {
        tracing::info!("no --config given: running the embedded demo workspace");
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
        let daemon = match Daemon::start(config).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("{e:#}");
                return ExitCode::FAILURE;
            }
        };
        let token = daemon.shutdown_token();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            token.cancel();
        });
        daemon.wait().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// `voicemail list|export|delete`: the mailboxes under the data directory.
fn voicemail(config: &Config, words: &[String], args: &Args) -> ExitCode {
    use switchboard::media_runtime::voicemail as vm;
    let data_dir = &config.server.data_dir;
    let number = match words.get(1) {
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
    match words.first().map(String::as_str) {
        Some("list") => {
            let messages = vm::list(data_dir, number.as_deref());
            if args.json {
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
        Some("export") => {
            let Some(to) = &args.to else {
                eprintln!("switchboard: voicemail export needs --to DIR");
                return ExitCode::from(EXIT_USAGE);
            };
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
        Some("delete") => {
            let Some(number) = number else {
                eprintln!("switchboard: voicemail delete needs a NUMBER");
                return ExitCode::from(EXIT_USAGE);
            };
            let id = words.get(2);
            if id.is_none() && !args.all {
                eprintln!("switchboard: voicemail delete needs a message ID, or --all");
                return ExitCode::from(EXIT_USAGE);
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
        _ => {
            eprintln!(
                "switchboard: voicemail takes list, export or delete\n{}",
                usage()
            );
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// `explain`: prints the plan of a call to `number`; exit 1 when it cannot.
fn explain(config: &Config, number: &str, at: Option<&str>, json: bool) -> ExitCode {
    let at = match at.map(switchboard::explain::parse_at) {
        Some(Ok(at)) => at,
        Some(Err(e)) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(EXIT_USAGE);
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

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
