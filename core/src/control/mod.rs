//! The control plane: topics, subscription groups, producer and consumer tables, committed
//! offsets, orderly locks, name-server registration and every metadata file — owned by one
//! control thread (`service.rs`), apart from the data plane.
//!
//! - `handle.rs`: [`ControlHandle`], what shards hold — the broker's identity and config, the
//!   published [`ControlView`] (read without locks), and the bounded command channel.
//! - `command.rs`: [`Command`], the typed requests shards send.
//! - `plane.rs`: [`ControlPlane`], the state and how each command changes it.
//! - `service.rs`: the control thread and its named tasks.
//! - `registrar.rs`: REGISTER_BROKER / UNREGISTER_BROKER (and what the answers say of a
//!   slave's master).
//! - `slave_sync.rs`: a slave's copy of its master's topics, groups and offsets (§7.5).
//! - `runtime_config.rs`: which configuration keys UPDATE_BROKER_CONFIG applies while the
//!   broker runs, and the file that keeps them.
//! - `writer.rs`: the metadata-writer thread, which writes `topics.json` and
//!   `subscriptionGroup.json` off the control thread, one job at a time.
//!
//! Invariant: no metadata file is written or fsynced on a shard thread; shards read the view
//! and send commands, nothing else.

pub mod command;
pub mod handle;
pub mod plane;
pub mod registrar;
pub mod runtime_config;
pub mod service;
pub mod slave_sync;
pub mod writer;

pub use command::{Command, ControlFigures, OffsetKey};
pub use handle::{BrokerIdentity, ControlHandle, ControlView, ShardEvent};
pub use plane::ControlPlane;
