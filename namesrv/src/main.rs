//! `mqnamesrv`: the FerroMQ name server. Flags follow the Java launcher (`-c` for a
//! `namesrv.properties` file); `--listen` sets the address directly.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferromq_namesrv::NamesrvConfig;

#[derive(Parser, Debug)]
#[command(name = "mqnamesrv", version, about = "FerroMQ name server (RocketMQ-compatible)")]
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
    broker_expiry_ms: Option<u64>,
    /// Interval of the expiry scan, in milliseconds (default 10000).
    #[arg(long)]
    scan_interval_ms: Option<u64>,
    /// I/O backend: auto, io_uring or epoll (FERROMQ_IO_BACKEND overrides it).
    #[arg(long)]
    io_backend: Option<String>,
}

fn main() -> ExitCode {
    ferromq_net::logging::init();
    let args = Args::parse();
    ferromq_net::server::raise_and_log_open_file_limit();
    let mut config = NamesrvConfig::default();
    if let Some(path) = &args.config
        && let Err(e) = config.apply_properties_file(path) {
            eprintln!("mqnamesrv: {e}");
            return ExitCode::from(2);
        }
    let overrides = [
        ("kvConfigPath", args.kv_config_path.map(|p| p.display().to_string())),
        ("brokerChannelExpiredTime", args.broker_expiry_ms.map(|v| v.to_string())),
        ("scanNotActiveBrokerInterval", args.scan_interval_ms.map(|v| v.to_string())),
        ("io.backend", args.io_backend),
    ];
    for (key, value) in overrides {
        if let Some(value) = value
            && let Err(e) = config.apply(key, &value) {
                eprintln!("mqnamesrv: {e}");
                return ExitCode::from(2);
            }
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
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
