//! `ferromq-net`: everything between bytes on a socket and a typed RocketMQ command.
//!
//! - [`codec`]: the remoting frame and header codec. Pure functions over bytes: no I/O, no
//!   async, typed [`codec::WireError`]s, limits checked before anything is allocated.
//! - [`codes`]: request and response code numbers (PROTOCOL.md §2, §3).
//! - [`backend`]: the start-up probe that picks io_uring or epoll, and the per-thread compio
//!   runtime built on it.
//! - [`conn`]: a framed connection (reader loop, writer task, `opaque` correlation) shared by
//!   servers and clients, so either side can send requests on it.
//! - [`server`]: a listener that serves a [`conn::RequestHandler`] on every connection.
//! - [`tls`]: TLS (rustls) on connections: server modes, configurations from PEM files, and
//!   the record layer a connection runs over its stream.
//! - [`client`]: the RPC client used by tools, tests, the bench and the broker's outbound calls.
//! - [`acl`]: RocketMQ 4.x plain ACL: request signatures, `plain_acl.yml`, permission checks.
//! - [`fastjson`]: writers and tolerant readers for the JSON dialect Java's fastjson speaks.
//! - [`metrics`]: the per-thread RPC latency both binaries record, the Prometheus text
//!   exposition, and the HTTP endpoint that serves it.
//!
//! Boundary: the codec does no I/O; only `conn`, `server` and `client` touch sockets.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

pub mod acl;
pub mod backend;
pub mod client;
pub mod codec;
pub mod codes;
pub mod conn;
pub mod fastjson;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod ktls;
pub mod tls;
pub mod wire;

pub use codec::{Language, RemotingCommand, SerializeType, WireError, WireLimits};
