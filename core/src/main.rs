//! `mqbroker`: the FerroMQ broker. With no arguments it serves on 10911 with a store under
//! `$HOME/store` and, when no name server is configured (no namesrvAddr, no NAMESRV_ADDR), an
//! embedded name server on 127.0.0.1:9876 — so a stock RocketMQ client works at once.
//! `-c broker.properties` (or a `.toml` profile from `tuning/`) configures it; SIGTERM or
//! SIGINT stops it cleanly (stop accepting, flush, unregister, exit 0).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferromq_core::config::BrokerConfig;

#[derive(Parser, Debug)]
#[command(name = "mqbroker", version, about = "FerroMQ broker (RocketMQ-compatible)")]
struct Args {
    /// A RocketMQ broker.properties file or a FerroMQ TOML profile (see tuning/).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Name server addresses, `host:port;host:port` (as the Java launcher's -n).
    #[arg(short = 'n', long = "namesrv-addr")]
    namesrv_addr: Option<String>,
    /// Override any key by its Java name, e.g. `--set listenPort=10921` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

fn main() -> ExitCode {
    ferromq_net::logging::init();
    let args = Args::parse();
    ferromq_net::server::raise_and_log_open_file_limit();
    let mut config = match &args.config {
        Some(path) => match BrokerConfig::load(path) {
            Ok((config, unknown)) => {
                for key in unknown {
                    tracing::warn!(key, "unknown configuration key ignored");
                }
                config
            }
            Err(e) => {
                eprintln!("mqbroker: {e}");
                return ExitCode::from(2);
            }
        },
        None => BrokerConfig::default(),
    };
    let mut overrides: Vec<(String, String)> = Vec::new();
    if let Some(addr) = args.namesrv_addr {
        overrides.push(("namesrvAddr".into(), addr));
    }
    for pair in &args.set {
        match pair.split_once('=') {
            Some((key, value)) => overrides.push((key.trim().to_owned(), value.trim().to_owned())),
            None => {
                eprintln!("mqbroker: --set expects KEY=VALUE, got {pair:?}");
                return ExitCode::from(2);
            }
        }
    }
    for (key, value) in overrides {
        if let Err(e) = config.apply_override(&key, &value) {
            eprintln!("mqbroker: {e}");
            return ExitCode::from(2);
        }
    }
    let signals = match signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("mqbroker: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let broker = match ferromq_core::broker::start(config) {
        Ok(broker) => broker,
        Err(e) => {
            eprintln!("mqbroker: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut signals = signals;
    if let Some(signal) = signals.forever().next() {
        tracing::info!(signal, "stop signal received");
    }
    broker.shutdown();
    ExitCode::SUCCESS
}
