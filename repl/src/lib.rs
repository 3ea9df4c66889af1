//! Master-to-slave commit-log replication, one stream per shard (PROTOCOL.md §7; DESIGN.md,
//! "Replication"; the store's side is `ferromq_store::store::replica`).
//!
//! - [`acceptor`]: the master's HA port, one thread that reads each connection's handshake and
//!   hands it to the shard it names;
//! - [`master`]: a master shard serving one slave: the log from the slave's offset, zero-copy;
//! - [`acks`]: what the slaves of a master shard acknowledged, and the SYNC_MASTER wait;
//! - [`slave`]: a slave shard following its master shard into its replica store;
//! - [`wire`]: the bytes (Java's framing plus FerroMQ's shard handshake).

pub mod acceptor;
pub mod acks;
pub mod master;
pub mod slave;
pub mod wire;
