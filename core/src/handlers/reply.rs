//! What handlers take besides the request ([`Origin`]) and what they answer ([`Reply`]).

use std::net::SocketAddr;

use bytes::Bytes;
use ferromq_net::RemotingCommand;
use ferromq_net::conn::FileSegment;

/// Where a request came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// The connection's id on its shard.
    pub connection: u64,
    pub peer: SocketAddr,
}

/// What a handler answers.
#[derive(Debug)]
pub enum Reply {
    /// A response (never sent for a one-way request).
    Response(RemotingCommand),
    /// A response already encoded as a whole frame (`codec::ResponseFrame`), for the hot paths.
    Frame(Bytes),
    /// Found messages: the response header and the log segments that are its body.
    Messages(RemotingCommand, Vec<FileSegment>),
}

impl From<RemotingCommand> for Reply {
    fn from(response: RemotingCommand) -> Reply {
        Reply::Response(response)
    }
}

