//! `ferromq-core`: the FerroMQ broker (`mqbroker`).
//!
//! - [`config`]: the one configuration schema (TOML, or RocketMQ `broker.properties` as-is).
//! - [`broker`]: start-up and shutdown: wires the control thread, the shards and the embedded
//!   name server.
//! - [`control`]: the control plane, owned by one control thread: topics, groups, clients,
//!   offsets, locks, registration, metadata files; a published view and typed commands.
//! - [`shard`]: pinned shard threads, queue ownership, cross-shard calls, long-poll holds.
//! - [`handlers`]: one handler per request code.
//! - [`message`]: rewriting stored messages (copies, property edits) for the broker's own writes.
//! - [`delay`]: delay levels — how delayed messages are parked and restored (§9.3).
//! - [`selector`]: the SQL92 message selector (`enablePropertyFilter`).
//! - [`transaction`]: half messages, commits, op records and check-backs (§10).
//! - [`header`], [`error`]: one way to read a request header and one way to fail.
//! - [`acl`]: `aclEnable=true`: every request checked against `plain_acl.yml` before its handler.
//! - [`clients`]: producer/consumer/lock tables (data the control plane owns).
//! - [`meta`]: topics, subscription groups and consumer offsets, persisted as the Java broker
//!   persists them (data the control plane owns).
//!
//! Boundary: only this crate wires `net`, `store` and `namesrv` together.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod acl;
pub mod broker;
pub mod clients;
pub mod config;
pub mod control;
pub mod delay;
pub mod error;
pub mod handlers;
pub mod header;
pub mod message;
pub mod meta;
pub mod metrics;
pub mod selector;
pub mod shard;
pub mod transaction;
