//! Client bookkeeping of the broker's control plane: which producers and consumers are connected,
//! in which groups, with which subscriptions (PROTOCOL.md §2.1 HEART_BEAT / UNREGISTER_CLIENT,
//! §2.2 GET_CONSUMER_LIST_BY_GROUP, §2.5 NOTIFY_CONSUMER_IDS_CHANGED, §2.7 connection lists).
//!
//! - `heartbeat.rs`: tolerant parsing of the HEART_BEAT body (`HeartbeatData`, §4.5, Appendix Q).
//! - `consumers.rs`: `ConsumerManager`, group → clients + subscriptions, membership changes,
//!   expiry, the ConsumerConnection body.
//! - `producers.rs`: `ProducerManager`, group → clients, the ProducerConnection body.
//!
//! - `locks.rs`: `LockTable`, orderly consumers' queue locks.
//! - `table.rs`: what both managers share: `ChannelId`, `ClientInfo`, the client table.
//!
//! Ownership: one `ConsumerManager`, `ProducerManager` and `LockTable` per broker, owned by the
//! control thread (`control/plane.rs`). Everything here is plain synchronous data and
//! `Send`; connections are named by [`ChannelId`] only, so the broker finds the connection to
//! notify on the shard that owns it.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod consumers;
pub mod heartbeat;
pub mod locks;
pub mod producers;
pub mod table;

pub use table::{ChannelId, ClientInfo, ExpiryReport, MAX_CONNECTIONS_PER_CLIENT};

