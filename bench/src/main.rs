//! `ferromq-bench`: FerroMQ's load generator. It speaks the plain RocketMQ remoting protocol, so
//! it can be pointed at any RocketMQ-compatible name server or broker for comparison.
//!
//! Modes so far:
//! - `route`: GET_ROUTEINFO_BY_TOPIC load against a name server, closed loop, N connections.
//!
//! Every mode prints a progress line each second and a final summary with hdrhistogram
//! percentiles; `--json` writes the summary as JSON as well.

mod route;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "ferromq-bench", version, about = "FerroMQ load generator (RocketMQ remoting protocol)")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Route lookups (GET_ROUTEINFO_BY_TOPIC) against a name server.
    Route(route::RouteArgs),
}

fn main() -> std::process::ExitCode {
    ferromq_net::logging::init();
    let cli = Cli::parse();
    let result = match cli.mode {
        Mode::Route(args) => route::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferromq-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
