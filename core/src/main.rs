//! `mqbroker`: the FerroMQ broker. With no arguments it serves on 10911 with a store under
//! `$HOME/store` and, when no name server is configured (no namesrvAddr, no NAMESRV_ADDR), an
//! embedded name server on 127.0.0.1:9876 — so a stock RocketMQ client works at once.
//! `-c broker.properties` (or a `.toml` profile from `tuning/`) configures it; SIGTERM or
//! SIGINT stops it cleanly (stop accepting, flush, unregister, exit 0).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferromq_core::config::BrokerConfig;
use ferromq_net::logging::{self, LogFlags, LogOptions};

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
    #[command(flatten)]
    log: LogFlags,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let flags = args.log.clone();
    // Lives to the end of main: dropping it writes out the queued log lines.
    let _log = match LogOptions::resolve(flags, |name| std::env::var_os(name)).and_then(|options| logging::init_process("broker", &options)) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("mqbroker: {e}");
            return ExitCode::from(2);
        }
    };
    ferromq_net::server::raise_and_log_open_file_limit();
    fix_malloc_mmap_threshold();
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

/// Blocks of this size and larger are mmapped by glibc and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_MMAP_THRESHOLD_BYTES: i32 = 8 << 20;

/// Fixes glibc's mmap threshold at [`MALLOC_MMAP_THRESHOLD_BYTES`]. By default glibc raises the
/// threshold every time a large mmapped block is freed (up to 32 MiB), and from then on such
/// blocks come from the heap and stay resident after they are freed: the transient buffers of
/// recovery (an index's slot table rewritten whole, replay reads) kept ~25 MiB more anonymous
/// memory after every restart of a 1.2 GB store (70 MiB against 48 MiB before the restart;
/// 47.6 MiB with this fix, measured with the probe in issue 10's notes). 8 MiB sits above the
/// largest hot-path buffer (a 4 MiB flush batch), which keeps coming from the heap.
fn fix_malloc_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets an allocator parameter; called before any other thread
        // exists.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD_BYTES) };
        if ok != 1 {
            tracing::warn!("mallopt(M_MMAP_THRESHOLD) refused; freed recovery buffers may stay resident");
        }
    }
}
