//! The store's typed error enum. The broker maps these to RocketMQ response codes at its handler
//! boundary (e.g. `FlushFailed` → SYSTEM_ERROR, `DiskFull` → SERVICE_NOT_AVAILABLE).

use std::io;
use std::path::PathBuf;

use crate::record::RecordError;
use crate::types::QueueId;

/// The file operation an [`StoreError::Io`] failed in. A type, not a string, because what the
/// store does about a failure depends on it: a failed sync is never retried (see
/// [`IoOp::makes_durable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOp {
    Create,
    Fdatasync,
    List,
    Mkdir,
    Open,
    Preallocate,
    Read,
    Remove,
    RemoveDir,
    Rename,
    Stat,
    Statvfs,
    SyncDir,
    Truncate,
    Write,
}

impl IoOp {
    /// Whether the operation makes earlier writes durable (fdatasync of a file, fsync of a
    /// directory). After such a failure the kernel may have dropped the dirty pages it could
    /// not write, so the page cache no longer says what is on disk: never retried.
    pub fn makes_durable(self) -> bool {
        matches!(self, IoOp::Fdatasync | IoOp::SyncDir)
    }

    pub fn name(self) -> &'static str {
        match self {
            IoOp::Create => "create",
            IoOp::Fdatasync => "fdatasync",
            IoOp::List => "list",
            IoOp::Mkdir => "mkdir",
            IoOp::Open => "open",
            IoOp::Preallocate => "preallocate",
            IoOp::Read => "read",
            IoOp::Remove => "remove",
            IoOp::RemoveDir => "remove dir",
            IoOp::Rename => "rename",
            IoOp::Stat => "stat",
            IoOp::Statvfs => "statvfs",
            IoOp::SyncDir => "sync dir",
            IoOp::Truncate => "truncate",
            IoOp::Write => "write",
        }
    }
}

impl std::fmt::Display for IoOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation through the storage seam failed.
    #[error("I/O error during {op} on {path}: {source}")]
    Io {
        op: IoOp,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A record could not be encoded (too large, bad topic, ...).
    #[error("invalid message: {0}")]
    InvalidMessage(#[from] RecordError),
    /// Corruption below the durable point (or followed by durable data): an operator must look.
    #[error("commit log corrupt at offset {offset}: {reason}")]
    Corruption { offset: u64, reason: String },
    /// A read touches bytes of the log that the start-up check found missing or damaged
    /// ([`crate::store::DamagedRange`]): they are never served.
    #[error("commit log damaged: {path} bytes {file_pos}..{file_end} (log offsets {offset}..{end}): {reason}; not served")]
    Damaged { path: PathBuf, offset: u64, end: u64, file_pos: u64, file_end: u64, reason: String },
    /// A queue entry whose record was lost to damage found by an earlier start's recovery
    /// ([`crate::consume_queue::CqEntry::lost`]): never served, always refused.
    #[error("the record at {topic}:{queue_id} offset {queue_offset} was lost to commit-log damage found at start (log offset {log_offset}); not served")]
    LostRecord { topic: String, queue_id: QueueId, queue_offset: u64, log_offset: u64 },
    /// A metadata file (checkpoint, consume queue, index) is malformed.
    #[error("corrupt {what} file {path}: {reason}")]
    CorruptFile { what: &'static str, path: PathBuf, reason: String },
    /// A durable flush failed earlier; after a failed fdatasync the page cache cannot be trusted
    /// (the kernel may have dropped the dirty pages), so the log refuses further appends until
    /// it is reopened and recovered.
    #[error("the commit log is failed after an earlier flush error: {0}")]
    LogFailed(String),
    /// The log met a transient fault it retries by itself (descriptors or disk space ran out,
    /// see [`StoreError::is_transient`]): appends are refused until a retry succeeds. An append
    /// refused while it waited may still be stored once the fault clears.
    #[error("the commit log is stalled by a transient fault, retrying until it clears: {0}")]
    Stalled(String),
    /// The append was taken, then the log stalled on a transient fault before acknowledging
    /// it: it stays queued and is stored (and made visible) once the fault clears — unlike
    /// [`StoreError::Stalled`], which refused it. A caller that resends stores it twice.
    #[error("the commit log stalled on a transient fault after taking this append and is retrying until it clears; the append is stored then: {0}")]
    StalledQueued(String),
    /// Disk usage is above `disk_space_warning_level_ratio`; writes are refused.
    #[error("disk full: usage is above the warning level of {usage_pct}% (diskSpaceWarningLevelRatio)")]
    DiskFull { usage_pct: u32 },
    /// More bytes are waiting to be flushed than `max_pending_bytes` allows: back off and retry
    /// (the broker answers SYSTEM_BUSY).
    #[error("busy: {pending_bytes} bytes already wait for a flush (limit {limit_bytes})")]
    Busy { pending_bytes: usize, limit_bytes: usize },
    /// More log bytes wait for the dispatcher to write their consume-queue entries than
    /// `max_dispatch_behind_bytes` allows (it holds their records in memory until then): back
    /// off and retry (the broker answers SYSTEM_BUSY).
    #[error("busy: {behind_bytes} bytes of the log are not yet dispatched to consume queues (limit {limit_bytes})")]
    DispatchBehind { behind_bytes: u64, limit_bytes: u64 },
    /// The topic is being deleted ([`crate::Store::delete_topic`]): appends to it wait until
    /// the deletion is durable, so a crash cannot mix its old and new queue offsets. Retry.
    #[error("topic {0} is being deleted; retry")]
    TopicDeleting(String),
    /// The store has been shut down.
    #[error("store is shut down")]
    ShutDown,
    /// A local append to a replica (a slave's store): its log only copies its master's.
    #[error("this store is a replica: it takes writes only from its master's replication stream")]
    Replica,
    /// Bytes from a master do not continue this replica's log where it ends, or are not a
    /// complete batch or segment end: the stream is out of step (the follower reconnects).
    #[error("replication stream out of step: {0}")]
    ReplicaMismatch(String),
    /// A request named something that does not exist or is out of range.
    #[error("not found: {0}")]
    NotFound(String),
    /// A configuration value is out of its documented bounds.
    #[error("invalid config: {0}")]
    Config(String),
}

impl StoreError {
    pub(crate) fn io(op: IoOp, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io { op, path: path.into(), source }
    }

    /// Whether this is an I/O error an operator can clear without touching the data — the
    /// process ran out of descriptors (EMFILE, ENFILE), the disk or a quota ran out of space
    /// (ENOSPC, EDQUOT), or the kernel of memory (ENOMEM) — so the operation is retried with
    /// backoff instead of failing the log for good. Every other error (EIO, a torn or corrupt
    /// file) still stops the log.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => is_transient_errno(source),
            _ => false,
        }
    }
}

/// [`StoreError::is_transient`] for a bare `io::Error`.
pub fn is_transient_errno(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOSPC | libc::EDQUOT | libc::ENOMEM))
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
