//! A daemon in a process of its own, for the tests that kill it with
//! SIGKILL (`tests/crash.rs`): it starts on the config file it is given,
//! prints `udp <address>` once it listens, and serves until it is killed.
//! Nothing here runs at the end of the process: what a crash leaves behind
//! is what the next start finds.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let path = std::env::args().nth(1).expect("the config file");
    let path = Path::new(&path);
    let text = std::fs::read_to_string(path).unwrap();
    let base = path.parent().unwrap_or(Path::new("."));
    let config =
        switchboard::settings::Config::parse(&text, path, base).unwrap_or_else(|e| panic!("{e}"));
    let daemon = switchboard::server::Daemon::start(config).await.unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "udp {}", daemon.udp_addr.unwrap()).unwrap();
    out.flush().unwrap();
    std::future::pending::<()>().await;
}
