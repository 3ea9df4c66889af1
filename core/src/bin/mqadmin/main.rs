//! `mqadmin`: the operator's tool, with the Java tool's subcommand names, flags and output
//! layout, so that scripts which parse `mqadmin` output keep working (README "mqadmin").
//!
//! Each module owns a family of subcommands and declares them as a clap `Subcommand` enum,
//! flattened into [`Command`]; [`common`] holds what they share: the name server address, the
//! connections, the one-line error and the route and cluster lookups most commands start from.
//!
//! Errors are one line on stderr (`mqadmin: <subcommand>: <what failed>`) and exit status 1;
//! a usage error is clap's message and exit status 2.

mod common;
mod messages;
mod metadata;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "mqadmin", version, about = "FerroMQ admin tool (RocketMQ mqadmin subcommands)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Topics, subscription groups, clusters, brokers, name servers and their configuration.
    #[command(flatten)]
    Metadata(metadata::Command),
    /// Consumers, producers, messages and offsets.
    #[command(flatten)]
    Messages(messages::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (name, outcome) = match cli.command {
        Command::Metadata(command) => (command.name(), common::run(command.run())),
        Command::Messages(command) => (command.name(), common::run(command.run())),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqadmin: {name}: {e}");
            ExitCode::FAILURE
        }
    }
}
