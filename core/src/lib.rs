//! `ferromq-core`: the FerroMQ broker (`mqbroker`).
//!
//! - [`config`]: the one configuration schema (TOML, or RocketMQ `broker.properties` as-is).
//! - [`broker`]: start-up, the shared control plane, name-server registration, shutdown.
//! - [`shard`]: pinned shard threads, queue ownership, cross-shard calls, long-poll holds.
//! - [`handlers`]: one handler per request code.
//! - [`clients`]: producer/consumer bookkeeping from heartbeats.
//! - [`meta`]: topics, subscription groups and consumer offsets, persisted as the Java broker
//!   persists them.
//!
//! Boundary: only this crate wires `net`, `store` and `namesrv` together.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod broker;
pub mod clients;
pub mod config;
pub mod handlers;
pub mod meta;
pub mod shard;
