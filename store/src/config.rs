//! Store configuration: every size, interval and limit with its unit and the RocketMQ default
//! (PROTOCOL.md §11.3), plus a `test_min` profile where every limit is tiny so tests hit segment
//! rolls, consume-queue rolls and batching quickly.

use std::path::PathBuf;

use crate::error::{Result, StoreError};
use crate::types::ShardId;

/// When an append is acknowledged and how the log is made durable (`flushDiskType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// Group commit: an append completes once an fdatasync covering it has completed.
    Sync,
    /// An append completes once written to the file; fdatasync runs on an interval or when
    /// enough bytes are dirty.
    Async,
}

/// Configuration of one shard's store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Root directory of this shard's store (`storePathRootDir`, one per shard).
    pub root_dir: PathBuf,
    /// The owning shard; encoded into client-visible physical offsets.
    pub shard: ShardId,
    /// Commit-log segment size (`mappedFileSizeCommitLog`, 1 GiB).
    pub segment_size_bytes: u64,
    /// Consume-queue entries per file (`mappedFileSizeConsumeQueue` / 20 = 300 000).
    pub cq_entries_per_file: u64,
    pub flush_mode: FlushMode,
    /// ASYNC_FLUSH: sync at least this often while bytes are dirty (`flushIntervalCommitLog`).
    pub flush_interval_ms: u64,
    /// ASYNC_FLUSH: sync on the timer only (`flushCommitLogTimed`, true in the Java broker
    /// since 4.9.1): every `flush_interval_ms` while bytes are dirty, whatever their amount.
    /// False: also as soon as `flush_least_bytes` are dirty, which under load is an fdatasync
    /// every few appends (1,000 a second at 40k sends/s, 11-37 % of the broker's CPU per send
    /// on epoll: bench/RESULTS.md 2026-12-07 03:59).
    pub flush_timed: bool,
    /// ASYNC_FLUSH, untimed: sync as soon as this many bytes are dirty
    /// (`flushCommitLogLeastPages` × 4 KiB).
    pub flush_least_bytes: u64,
    /// SYNC_FLUSH: how long a producer waits for the flush (`syncFlushTimeout`); the broker
    /// applies it and answers FLUSH_DISK_TIMEOUT.
    pub sync_flush_timeout_ms: u64,
    /// Largest message body, or batch body total (`maxMessageSize`, 4 MiB).
    pub max_message_size_bytes: usize,
    /// Largest single write of the commit log; a larger backlog is split into several batches.
    pub max_flush_batch_bytes: usize,
    /// Appends buffered but not yet written, across all batches; above it appends get `Busy`.
    pub max_pending_bytes: usize,
    /// Log bytes appended but not yet dispatched to consume queues (the records the dispatcher
    /// still holds in memory); above it appends get [`StoreError::DispatchBehind`]. At least
    /// `max_pending_bytes`, which it includes.
    pub max_dispatch_behind_bytes: u64,
    /// How often consume queues and the index are synced and the checkpoint rewritten.
    pub checkpoint_interval_ms: u64,
    /// A queue's entries are written to its file once this many are unwritten, and a periodic
    /// checkpoint syncs only queues with at least this many unsynced entries (the others stay
    /// in memory, and a crash rebuilds them from the log); 0 writes every dispatch round and
    /// syncs every queue at every checkpoint (`flushConsumeQueueLeastPages` × 4 KiB ÷ 20:
    /// Java's default, 2 pages, is 409 entries).
    pub cq_flush_least_entries: u64,
    /// At least this often a checkpoint syncs every queue, whatever its count
    /// (`flushConsumeQueueThoroughInterval`, 60 s): it bounds the log a crash replays.
    pub cq_thorough_interval_ms: u64,
    /// Consume-queue entries held in memory unsynced, over all queues of the store: above it
    /// the next checkpoint syncs every queue, and above twice it the dispatcher waits for that
    /// checkpoint (appends then meet `max_dispatch_behind_bytes`). 524,288 entries: 12 MiB.
    pub cq_max_unsynced_entries: u64,
    /// Re-check BODYCRC on recovery (`checkCRCOnRecover`).
    pub check_crc_on_recover: bool,
    /// Build the key/unique-id index (`messageIndexEnable`).
    pub index_enable: bool,
    /// Hash slots per index file (`maxHashSlotNum`).
    pub index_hash_slots: u32,
    /// Entries per index file (`maxIndexNum`).
    pub index_max_entries: u32,
    /// Hours of day at which expired files are deleted (`deleteWhen`, `"04"`, `;`-separated).
    pub delete_when: String,
    /// Age after which a segment is expired (`fileReservedTime`, hours).
    pub file_reserved_time_hours: u64,
    /// Usage above which a deletion pass runs regardless of the hour (`diskMaxUsedSpaceRatio`).
    pub disk_max_used_space_ratio_pct: u32,
    /// Usage above which the oldest segments go even if not expired (when forcible clean is on).
    pub disk_space_clean_forcibly_ratio_pct: u32,
    /// Usage above which writes are refused (`diskSpaceWarningLevelRatio`).
    pub disk_space_warning_level_ratio_pct: u32,
    /// `cleanFileForciblyEnable`.
    pub clean_file_forcibly_enable: bool,
    /// Segments deleted per pass at most (`deleteFileBatchMax`).
    pub delete_file_batch_max: usize,
    /// Pull limits (`maxTransferBytesOnMessageInMemory` / `...CountOnMessageInMemory`).
    pub max_transfer_bytes: u32,
    pub max_transfer_count: u32,
    /// Consume-queue files this store keeps open at most; the least recently used is closed
    /// beyond it and opened again on its next use ([`crate::consume_queue::CqDescriptors`]).
    pub max_open_cq_files: usize,
    /// A slave's store: its log is a byte-for-byte copy of its master's, written only through
    /// [`crate::Store::append_replica`]; local appends are refused ([`crate::StoreError::Replica`]).
    pub replica: bool,
}

impl StoreConfig {
    /// RocketMQ defaults under `root_dir`.
    pub fn new(root_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            root_dir: root_dir.into(),
            shard: ShardId(0),
            segment_size_bytes: 1 << 30,
            cq_entries_per_file: 300_000,
            flush_mode: FlushMode::Async,
            flush_interval_ms: 500,
            flush_timed: true,
            flush_least_bytes: 4 * 4096,
            sync_flush_timeout_ms: 5_000,
            max_message_size_bytes: 4 << 20,
            max_flush_batch_bytes: 4 << 20,
            max_pending_bytes: 64 << 20,
            max_dispatch_behind_bytes: 256 << 20,
            checkpoint_interval_ms: 1_000,
            cq_flush_least_entries: 2 * 4096 / crate::consume_queue::CQ_ENTRY_LEN as u64,
            cq_thorough_interval_ms: 60_000,
            cq_max_unsynced_entries: 1 << 19,
            check_crc_on_recover: true,
            index_enable: true,
            index_hash_slots: 5_000_000,
            index_max_entries: 20_000_000,
            delete_when: "04".to_owned(),
            file_reserved_time_hours: 72,
            disk_max_used_space_ratio_pct: 75,
            disk_space_clean_forcibly_ratio_pct: 85,
            disk_space_warning_level_ratio_pct: 90,
            clean_file_forcibly_enable: true,
            delete_file_batch_max: 10,
            max_transfer_bytes: 262_144,
            max_transfer_count: 32,
            max_open_cq_files: 4096,
            replica: false,
        }
    }

    /// Every limit tiny: 4 KiB segments, 8-entry consume-queue files, 64-slot index files.
    pub fn test_min(root_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            segment_size_bytes: 4096,
            cq_entries_per_file: 8,
            flush_mode: FlushMode::Sync,
            flush_interval_ms: 5,
            flush_timed: false,
            flush_least_bytes: 1024,
            max_message_size_bytes: 1024,
            max_flush_batch_bytes: 2048,
            max_pending_bytes: 1 << 20,
            max_dispatch_behind_bytes: 4 << 20,
            checkpoint_interval_ms: 20,
            // Every entry written and synced at once, as before partial checkpoints existed:
            // tests of them (and the crash model) set their own.
            cq_flush_least_entries: 0,
            index_hash_slots: 16,
            index_max_entries: 32,
            // Every test with more than four queues closes and reopens their files.
            max_open_cq_files: 4,
            // Tests on real files share the machine's disk, whose usage is not theirs: with
            // thresholds near 100 % a nearly full CI disk neither refuses nor deletes their
            // writes (the flusher reads the usage as it writes). Disk-full tests set their own.
            disk_max_used_space_ratio_pct: 95,
            disk_space_clean_forcibly_ratio_pct: 98,
            disk_space_warning_level_ratio_pct: 99,
            ..StoreConfig::new(root_dir)
        }
    }

    /// Checks bounds the rest of the store relies on.
    pub fn validate(&self) -> Result<()> {
        // A segment must hold the largest body plus a record header with modest topic and
        // properties; appends whose record still does not fit are refused individually.
        let overhead = crate::commitlog::SEGMENT_RESERVED_BYTES as u64 + 1024;
        if self.segment_size_bytes < 4096 || self.segment_size_bytes < self.max_message_size_bytes as u64 + overhead {
            return Err(StoreError::Config(format!(
                "segment_size_bytes {} too small for max_message_size_bytes {}",
                self.segment_size_bytes, self.max_message_size_bytes
            )));
        }
        if self.max_open_cq_files == 0 {
            return Err(StoreError::Config("max_open_cq_files is 0: no consume queue could be read or written".into()));
        }
        if self.cq_entries_per_file == 0 || self.index_hash_slots == 0 || self.index_max_entries < 2 {
            return Err(StoreError::Config("zero-sized consume-queue or index file".into()));
        }
        if self.max_flush_batch_bytes == 0 || self.max_pending_bytes < self.max_flush_batch_bytes {
            return Err(StoreError::Config("max_pending_bytes below max_flush_batch_bytes".into()));
        }
        if self.cq_max_unsynced_entries == 0 || self.cq_thorough_interval_ms == 0 {
            return Err(StoreError::Config("cq_max_unsynced_entries and cq_thorough_interval_ms must be positive".into()));
        }
        if self.max_dispatch_behind_bytes < self.max_pending_bytes as u64 {
            return Err(StoreError::Config("max_dispatch_behind_bytes below max_pending_bytes, which it includes".into()));
        }
        Ok(())
    }
}
