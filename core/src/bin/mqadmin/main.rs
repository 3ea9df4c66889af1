//! `mqadmin`: the operator's tool, with the Java tool's subcommand names, flags and output
//! layout, so that scripts which parse `mqadmin` output keep working (README "mqadmin").
//!
//! Each module owns a family of subcommands and declares them as a clap `Subcommand` enum,
//! flattened into [`Command`]; [`common`] holds what they share: the name server address, the
//! connections (signed with `${ROCKETMQ_HOME}/conf/tools.yml`'s keys when it exists), the
//! one-line error and the route and cluster lookups most commands start from.
//!
//! Errors are one line on stderr (`mqadmin: <subcommand>: <what failed>`) and exit status 1;
//! a usage error is clap's message and exit status 2.

mod acl;
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

// Parsed once per run: the size of the largest family's arguments costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Topics, subscription groups, clusters, brokers, name servers and their configuration.
    #[command(flatten)]
    Metadata(metadata::Command),
    /// Consumers, producers, messages and offsets.
    #[command(flatten)]
    Messages(messages::Command),
    /// ACL accounts and white addresses of the brokers' `plain_acl.yml`.
    #[command(flatten)]
    Acl(acl::Command),
}

impl Command {
    /// The Java name of the subcommand, for error lines.
    fn name(&self) -> &'static str {
        match self {
            Command::Metadata(command) => command.name(),
            Command::Messages(command) => command.name(),
            Command::Acl(command) => command.name(),
        }
    }
}

fn main() -> ExitCode {
    // A reader that stops early (`mqadmin topicList | head`) ends the tool quietly, as it ends
    // the Java tool, rather than with a panic on the next failed write to stdout.
    // SAFETY: sets SIGPIPE back to its default disposition before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if let Err(e) = common::load_tools_credentials() {
        eprintln!("mqadmin: {}: {e}", cli.command.name());
        return ExitCode::FAILURE;
    }
    let (name, outcome) = match cli.command {
        Command::Metadata(command) => (command.name(), common::run(command.run())),
        Command::Messages(command) => (command.name(), common::run(command.run())),
        Command::Acl(command) => (command.name(), common::run(command.run())),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqadmin: {name}: {e}");
            ExitCode::FAILURE
        }
    }
}
