//! `switchboard`: run the daemon, or check a configuration file.
//!
//! ```text
//! switchboard [--config FILE] [--log-format human|json]
//! switchboard check --config FILE
//! switchboard explain --config FILE NUMBER [--at RFC3339] [--json]
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
}

fn usage() -> &'static str {
    "usage: switchboard [--config FILE] [--log-format human|json]\n       switchboard check --config FILE\n       switchboard explain --config FILE NUMBER [--at RFC3339] [--json]"
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        check: false,
        explain: None,
        at: None,
        json: false,
        config: None,
        log_format: None,
    };
    let mut explaining = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "check" => args.check = true,
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
    if !explaining && (args.at.is_some() || args.json) {
        return Err("--at and --json go with explain".into());
    }
    Ok(args)
}

fn load(args: &Args) -> Result<Config, String> {
    let config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => {
            let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
            Config::parse(DEMO_CONFIG, Path::new("<embedded demo config>"), &cwd)
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
    if (args.check || args.explain.is_some()) && args.config.is_none() {
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
