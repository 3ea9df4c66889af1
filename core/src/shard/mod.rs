//! Shards: one OS thread per shard, pinned to a core, running one compio runtime, owning one
//! store (its own commit log) and serving the connections its SO_REUSEPORT listener accepts.
//!
//! - `ctx.rs`: [`ShardCtx`], what a shard owns.
//! - `router.rs`: queue ownership ([`owner_of`]) and cross-shard calls through bounded mailboxes.
//! - `executor.rs`: runs other shards' jobs, at most `crossShardMaxRunningJobs` at once.
//! - `held.rs`: pulls held by long polling.
//! - `delay.rs`: the delay-level deliverers (due delayed messages to their real queues).
//! - `offsets.rs`: offset commits coalesced on their way to the control thread.
//! - `queue_reader.rs`: in-order reads of an internal queue, for the delay deliverers and the check-back.
//! - `transaction.rs`: the transaction check-back task (on the half queue's shard).
//! - `stats.rs`: the shard's runtime counters and their once-a-second samples (TPS figures).
//! - `run.rs`: the thread — start, named tasks, stop.
//!
//! Ownership: each message queue (topic, queueId) belongs to exactly one shard; only the owner
//! appends to, reads from, or holds pulls for it. Everything here is shard-resident (`!Send`)
//! except the router and the mailboxes' job type.

pub mod ctx;
pub mod metrics;
pub mod delay;
pub mod executor;
pub mod held;
pub mod offsets;
pub mod queue_reader;
pub mod replication;
pub mod router;
pub mod run;
pub mod stats;
pub mod timer;
pub mod transaction;

pub use ctx::{ShardCtx, ShardStore, route_error};
pub use executor::JobSlot;
pub use held::{MAX_PULL_SUSPEND, Wake};
pub use router::{RouteError, owner_of};
