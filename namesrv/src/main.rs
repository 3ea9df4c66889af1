//! `mqnamesrv`: the FerroMQ name server. Flags follow the Java launcher (`-c` for a
//! `namesrv.properties` file); `--listen` sets the address directly.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferromq_namesrv::NamesrvConfig;
use ferromq_net::logging::{self, LogFlags, LogOptions};

#[derive(Parser, Debug)]
// `allow_negative_numbers`: `--scan-interval-ms -1` reaches the check below, which names the
// flag and the value, instead of clap's "unexpected argument '-1'".
#[command(name = "mqnamesrv", version, about = "FerroMQ name server (RocketMQ-compatible)", allow_negative_numbers = true)]
struct Args {
    /// A RocketMQ namesrv.properties file (listenPort, kvConfigPath, orderMessageEnable, …).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:9876 (overrides listenPort from the file).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Where the KV config is persisted (default $HOME/namesrv/kvConfig.json).
    #[arg(long)]
    kv_config_path: Option<PathBuf>,
    /// Broker expiry without registration, in milliseconds (default 120000).
    #[arg(long)]
    broker_expiry_ms: Option<String>,
    /// Interval of the expiry scan, in milliseconds (default 10000).
    #[arg(long)]
    scan_interval_ms: Option<String>,
    /// I/O backend: auto, io_uring or epoll (FERROMQ_IO_BACKEND overrides it).
    #[arg(long)]
    io_backend: Option<String>,
    #[command(flatten)]
    log: LogFlags,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let flags = args.log.clone();
    // Lives to the end of main: dropping it writes out the queued log lines.
    let _log = match LogOptions::resolve(flags, |name| std::env::var_os(name)).and_then(|options| logging::init_process("namesrv", &options)) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("mqnamesrv: {e}");
            return ExitCode::from(2);
        }
    };
    ferromq_net::server::raise_and_log_open_file_limit();
    let config = match config_from(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mqnamesrv: {e}");
            return ExitCode::from(2);
        }
    };
    match ferromq_namesrv::start(config) {
        Ok(handle) => {
            handle.join();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mqnamesrv: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration the flags ask for: defaults, then the `-c` file, then each flag. A
/// refused flag is named with its value (and the key it sets).
fn config_from(args: Args) -> Result<NamesrvConfig, String> {
    let mut config = NamesrvConfig::default();
    if let Some(path) = &args.config {
        config.apply_properties_file(path).map_err(|e| e.to_string())?;
    }
    let overrides = [
        ("--kv-config-path", "kvConfigPath", args.kv_config_path.map(|p| p.display().to_string())),
        ("--broker-expiry-ms", "brokerChannelExpiredTime", args.broker_expiry_ms),
        ("--scan-interval-ms", "scanNotActiveBrokerInterval", args.scan_interval_ms),
        ("--io-backend", "io.backend", args.io_backend),
    ];
    for (flag, key, value) in overrides {
        if let Some(value) = value {
            config.apply(key, &value).map_err(|e| format!("{flag} {value}: {e}"))?;
        }
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(flags: &[&str]) -> Result<NamesrvConfig, String> {
        let args = Args::try_parse_from(std::iter::once("mqnamesrv").chain(flags.iter().copied())).map_err(|e| e.to_string())?;
        config_from(args)
    }

    #[test]
    fn negative_numbers_reach_the_check_and_are_refused_naming_flag_and_value() {
        for (flag, value) in [("--scan-interval-ms", "-1"), ("--broker-expiry-ms", "-5"), ("--scan-interval-ms", "ten")] {
            let err = config(&[flag, value]).unwrap_err();
            assert!(err.starts_with(&format!("{flag} {value}: ")) && err.contains(&format!("{value:?}")), "{err}");
        }
        let ok = config(&["--scan-interval-ms", "250", "--broker-expiry-ms", "30000"]).unwrap();
        assert_eq!((ok.scan_interval.as_millis(), ok.broker_expiry.as_millis()), (250, 30_000));
    }
}
