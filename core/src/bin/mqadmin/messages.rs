//! Consumers, producers, messages and offsets.

use crate::common::{AdminError, AdminResult, NameServer};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Placeholder until the message subcommands land (issue #11).
    #[command(name = "consumerProgress")]
    ConsumerProgress {
        #[command(flatten)]
        ns: NameServer,
    },
}

impl Command {
    /// The Java name of the subcommand, for error lines.
    pub fn name(&self) -> &'static str {
        match self {
            Command::ConsumerProgress { .. } => "consumerProgress",
        }
    }

    pub async fn run(self) -> AdminResult<()> {
        match self {
            Command::ConsumerProgress { .. } => Err(AdminError::Other("not implemented yet".to_owned())),
        }
    }
}
