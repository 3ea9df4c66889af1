//! The FerroMQ store: RocketMQ stored-record format, per-shard commit logs, consume queues,
//! index, group-committed flush, checkpoint, crash recovery and retention.
//!
//! Boundary: this crate never sees a request code; the broker (`ferromq-core`) drives it.
//! See `DESIGN-NOTES.md` in this crate for the on-disk format and the crash analysis.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

pub mod checkpoint;
pub mod commitlog;
pub mod config;
pub mod consume_queue;
pub mod error;
pub mod flush_stats;
pub mod index;
pub mod io;
mod notify;
pub mod offset_space;
mod queue_map;
pub mod record;
pub mod retention;
pub mod store;
pub mod test_support;
pub mod timer;
pub mod types;

pub use config::{FlushMode, StoreConfig};
pub use error::{IoOp, Result, StoreError};
pub use offset_space::{CLIENT_OFFSET_EXACT_LIMIT, OffsetSpace, SegmentRange};
pub use record::{MessageInput, Properties, RecordView};
pub use store::{
    Sweep,
    AckLevel, AppendResult, LogFile, LogRange, PropertyFilter, PullResult, PullStatus, RecoveryReport, REPLICA_MAX_UNIT_BYTES, RESUME_MARKERS_WALKED, ReplicaFramer, ReplicaUnit,
    ResumePoint, Store, StoreStats, TagFilter, TopicDeletion, TruncateReport,
};
pub use types::{
    ClientPhysicalOffset, CommitLogOffset, QueueId, QueueOffset, ShardId, decode_client_offset,
    encode_client_offset,
};
