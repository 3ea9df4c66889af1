//! The per-shard store: append with group commit, dispatch to consume queues, pull reads,
//! checkpoint, recovery and shutdown. Retention and the index live in their own modules and
//! are driven from here.
//!
//! Shard-resident: one [`Store`] per shard, created and used on that shard's compio runtime
//! only (`!Send`). Three named background tasks run per store:
//! * **flusher** — the only writer of the commit log. Takes the next batch, writes it (one
//!   write), makes it durable (one fdatasync) under SYNC_FLUSH, and releases every waiter whose
//!   end offset is now covered. Exactly one flush is in flight; there is no batching timer:
//!   appends arriving during a flush simply accumulate in the next batch.
//! * **dispatcher** — appends consume-queue entries (and index entries) for batches the flusher
//!   made visible, then publishes the new queue max offsets.
//! * **checkpointer** — every `checkpoint_interval_ms`, syncs consume queues and index and
//!   rewrites the checkpoint.
//!
//! Offsets inside the store are shard-local ([`CommitLogOffset`]); the offsets clients see are
//! translated per segment through the broker-wide [`OffsetSpace`] (see that module): the store
//! keeps each segment's client base, derives it from the segment's first record at open, and
//! asks the space for one when an append enters a new segment.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::checkpoint::{Checkpoint, QueueCheckpoint};
use crate::commitlog::{
    self, DispatchRecord, MARKER_FLAG_PRECEDING_DURABLE, MARKER_LEN, SEGMENT_RESERVED_BYTES, ScanStep,
    Segment, SegmentReader,
};
use crate::config::{FlushMode, StoreConfig};
use crate::consume_queue::{self, ConsumeQueue, CqEntry};
use crate::error::{IoOp, Result, StoreError};
use crate::index::IndexService;
use crate::io::{Storage, StorageFile};
use crate::notify::{AckError, AckSlot, AckWait, Notify};
use crate::offset_space::{OffsetSpace, SegmentRange, ShardClaim};
use crate::queue_map::QueueMap;
use crate::record::{self, MessageInput, StoreAssigned};
use crate::types::{ClientPhysicalOffset, CommitLogOffset, QueueId, QueueOffset};

mod replica;
pub use replica::{REPLICA_MAX_UNIT_BYTES, RESUME_MARKERS_WALKED, ReplicaFramer, ReplicaUnit, ResumePoint, TruncateReport};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// When an append's future completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckLevel {
    /// Per the flush mode: durable under SYNC_FLUSH, written under ASYNC_FLUSH.
    FlushMode,
    /// Once written to the file (page cache), even under SYNC_FLUSH (`WAIT=false`).
    Written,
}

/// Outcome of a successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// Local commit-log offset of the first record.
    pub offset: CommitLogOffset,
    /// The same as clients see it (its PHYSICALOFFSET): a position in the broker-wide offset
    /// space, resolved back with [`OffsetSpace::locate`].
    pub client_offset: ClientPhysicalOffset,
    /// Queue offset of the first message (0 for undispatched transaction records).
    pub queue_offset: QueueOffset,
    pub message_count: u32,
    /// Bytes of all records of the append.
    pub wrote_bytes: u32,
    pub store_timestamp_ms: i64,
    /// offsetMsgId of each message, in order (no allocation for a single message).
    pub offset_msg_ids: smallvec::SmallVec<[record::OffsetMsgId; 1]>,
}

/// A contiguous byte range of the commit log (one or more whole records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRange {
    pub offset: CommitLogOffset,
    pub len: u32,
}

/// Status of a pull read (DefaultMessageStore `GetMessageStatus`, PROTOCOL.md §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    Found,
    NoMatchedMessage,
    MessageWasRemoving,
    OffsetFoundNull,
    OffsetOverflowBadly,
    OffsetOverflowOne,
    OffsetTooSmall,
    NoMatchedLogicQueue,
    NoMessageInQueue,
}

/// A filter on a message's properties (the broker's SQL92 selector), applied to each record a
/// pull would return, after the consume-queue scan.
pub trait PropertyFilter: std::fmt::Debug + Send + Sync {
    /// Whether the record with these encoded properties (§5.4) is wanted.
    fn matches(&self, encoded_properties: &[u8]) -> bool;
}

/// What a pull wants: every message, the tags hashes of a TAG subscription (matched in the
/// consume queue, without reading the log), or a property filter (each candidate record's
/// properties are read — only such subscriptions pay for it).
#[derive(Debug, Clone)]
pub enum TagFilter {
    All,
    /// Java hash codes of the subscribed tags; matched against the entry's tags code as int32.
    Codes(Vec<i32>),
    Properties(Arc<dyn PropertyFilter>),
}

impl PartialEq for TagFilter {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (TagFilter::All, TagFilter::All) => true,
            (TagFilter::Codes(a), TagFilter::Codes(b)) => a == b,
            (TagFilter::Properties(a), TagFilter::Properties(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for TagFilter {}

impl TagFilter {
    /// Whether a consume-queue entry with this tags code may match (a property filter decides
    /// on the record itself).
    pub fn matches(&self, tags_code: i64) -> bool {
        match self {
            TagFilter::All | TagFilter::Properties(_) => true,
            TagFilter::Codes(c) => c.contains(&(tags_code as i32)),
        }
    }
}

/// Result of a pull read: byte ranges of the log (adjacent records coalesced), ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullResult {
    pub status: PullStatus,
    pub next_begin_offset: QueueOffset,
    pub min_offset: QueueOffset,
    pub max_offset: QueueOffset,
    pub ranges: Vec<LogRange>,
    pub message_count: u32,
    pub total_bytes: u64,
    /// Bytes of this shard's log written after the last record returned (0 when none was):
    /// how far behind the log head the consumer reads (Java's `maxOffsetPy -
    /// maxPhyOffsetPulling`, which steers a slow consumer to a slave, PROTOCOL.md §7.6).
    pub behind_bytes: u64,
}

/// Counters for benchmarks and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub appends: u64,
    pub appended_messages: u64,
    pub appended_bytes: u64,
    /// Commit-log write calls (one per flush batch, plus segment fillers).
    pub log_writes: u64,
    /// Commit-log fdatasync calls.
    pub log_syncs: u64,
    /// Bytes made durable by those syncs (mean per sync = `synced_bytes / log_syncs`).
    pub synced_bytes: u64,
    pub flushes_in_flight: u64,
    /// Most commit-log flushes ever in flight at once (must stay 1).
    pub max_flushes_in_flight: u64,
    pub checkpoints: u64,
    /// Checkpoints that synced every consume queue ([`crate::StoreConfig::cq_thorough_interval_ms`]).
    pub thorough_checkpoints: u64,
    /// Log bytes the last checkpoint leaves to replay below its dispatch point, for the queues
    /// it left unsynced (0 after a thorough one).
    pub checkpoint_replay_behind_bytes: u64,
    /// Consume-queue entries held unsynced in memory now.
    pub cq_unsynced_entries: u64,
    pub segments_created: u64,
    pub segments_deleted: u64,
    /// Transient faults met by the flusher, the dispatcher or the checkpointer (each failed
    /// try counts; see [`StoreError::is_transient`]).
    pub transient_faults: u64,
    /// Times the log stalled on such a fault and refused appends until a retry succeeded.
    pub stalls: u64,
    /// Retention passes that deleted unexpired segments because the disk was nearly full
    /// (`cleanFileForciblyEnable`), the segments they deleted, and the consume-queue entries
    /// (messages, consumed or not) that pointed into them.
    pub forced_cleanups: u64,
    pub forced_segments_deleted: u64,
    pub forced_entries_deleted: u64,
    /// Consume-queue descriptors held open now (at most `max_open_cq_files`), and consume-queue
    /// files opened so far: opens well above the queues in use mean the budget is too small
    /// for the queues being written and read.
    pub cq_files_held: u64,
    pub cq_file_opens: u64,
    /// A replica: units of the master's stream that waited before they were taken, for the
    /// flusher (`max_pending_bytes`) and for the dispatcher (`max_dispatch_behind_bytes`).
    pub replica_flush_waits: u64,
    pub replica_dispatch_waits: u64,
}

impl StoreStats {
    pub fn mean_bytes_per_sync(&self) -> f64 {
        if self.log_syncs == 0 { 0.0 } else { self.synced_bytes as f64 / self.log_syncs as f64 }
    }
}

/// Where a log range lies on disk, for a sender ([`Store::log_file`]).
#[derive(Debug, Clone)]
pub struct LogFile {
    /// The segment's descriptor (shared; keeps the segment readable if retention deletes it).
    pub file: Arc<std::fs::File>,
    /// The range's byte position in the segment.
    pub position: u64,
    /// Position in the segment below which its bytes are written and never change through
    /// `file` (see `net::conn::FileSegment::settled_end`).
    pub settled_end: u64,
}

/// What recovery found, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Missing or damaged ranges of the log found at start ([`Store::damaged_ranges`]).
    pub damaged: Vec<DamagedRange>,
    pub abnormal: bool,
    pub had_checkpoint: bool,
    pub scanned_from: u64,
    pub log_end: u64,
    pub batches_replayed: u64,
    pub records_replayed: u64,
    /// Bytes of torn tail wiped (0 when the log ended cleanly).
    pub torn_bytes_wiped: u64,
    /// Bytes below the checkpointed durable offset found zero or missing at the log's end:
    /// acknowledged records lost to damage (logged at ERROR).
    pub lost_tail_bytes: u64,
    /// The offset a replica's truncation cut the log back to, when a crash interrupted the
    /// truncation after its first checkpoint and recovery completed it.
    pub completed_truncation: Option<u64>,
}

/// Segments whose batches are verified (record CRCs, commit markers) at every start, newest
/// first, as Java checks its last three files: damage there is what a crash or a bad disk most
/// often leaves, and what consumers read next. Every segment's length is checked.
pub const VERIFY_NEWEST_SEGMENTS: usize = 3;

/// A range of the log found missing or damaged at start: reads touching it fail with
/// [`StoreError::Damaged`] (logged at ERROR, at most every [`DAMAGE_LOG_EVERY`] per range).
#[derive(Debug, Clone)]
pub struct DamagedRange {
    /// Local log offsets `[offset, end)`.
    pub offset: u64,
    pub end: u64,
    /// The segment file and the range's position in it.
    pub path: PathBuf,
    pub file_pos: u64,
    pub reason: String,
    last_logged: Cell<Option<Instant>>,
}

impl PartialEq for DamagedRange {
    fn eq(&self, other: &Self) -> bool {
        (self.offset, self.end, &self.path, self.file_pos, &self.reason) == (other.offset, other.end, &other.path, other.file_pos, &other.reason)
    }
}

impl Eq for DamagedRange {}

/// How often a read of one damaged range is logged again.
pub const DAMAGE_LOG_EVERY: Duration = Duration::from_secs(60);

impl DamagedRange {
    fn error(&self) -> StoreError {
        StoreError::Damaged {
            path: self.path.clone(),
            offset: self.offset,
            end: self.end,
            file_pos: self.file_pos,
            file_end: self.file_pos + (self.end - self.offset),
            reason: self.reason.clone(),
        }
    }

    /// The error for a read touching this range, logged at ERROR unless it was lately.
    fn refuse_read(&self) -> StoreError {
        let error = self.error();
        if self.last_logged.get().is_none_or(|at| at.elapsed() >= DAMAGE_LOG_EVERY) {
            self.last_logged.set(Some(Instant::now()));
            tracing::error!(file = %self.path.display(), position = self.file_pos, "read refused: {error}");
        }
        error
    }
}

/// See [`Store::on_dispatched`].
type DispatchListener = Box<dyn Fn(&str, QueueId)>;

#[derive(Debug)]
struct Batch {
    start: u64,
    buf: Vec<u8>,
    /// Where to write the end-of-file filler of the previous segment before this batch.
    filler_at: Option<u64>,
    records: Vec<DispatchRecord>,
    /// Whether `buf` ends with its commit marker already (a batch whose write failed with a
    /// transient error is written again as it was).
    sealed: bool,
}

impl Batch {
    fn new(start: u64, filler_at: Option<u64>) -> Self {
        Batch { start, buf: Vec::new(), filler_at, records: Vec::new(), sealed: false }
    }

    /// A batch with room for as much as `previous` held (at most one flush's worth) and its
    /// commit marker: batches that follow each other under a steady load are alike, and
    /// growing each from empty copied it about twice over (realloc was a tenth of a send's
    /// instructions, callgrind 2026-12-06). Without the marker's room, a batch the size of the
    /// last one was copied whole to append its marker (2.4 % of a send's instructions,
    /// callgrind 2026-12-07). Sized to the last one's length alone, a batch larger than the
    /// last was copied whole once more as it grew (0.4–0.9 % of the broker's samples at
    /// 4 × 64 single sends, 1.6 % with batches of 16, perf 2026-12-08): so the room the last
    /// one grew to is kept, shrinking slowly ([`room_like`]).
    fn sized_like(start: u64, filler_at: Option<u64>, previous: &Batch) -> Self {
        Batch {
            start,
            buf: Vec::with_capacity(room_like(previous.buf.len() + MARKER_LEN, previous.buf.capacity())),
            filler_at,
            records: Vec::with_capacity(room_like(previous.records.len(), previous.records.capacity())),
            sealed: false,
        }
    }
}

/// Room for the next of a run of buffers, from the last one's `used` bytes (or items) and the
/// `capacity` it had: what it used, or seven eighths of its capacity if that is more. Batch
/// sizes under load swing between a few records and many (the flusher takes whatever came
/// while it wrote the last), so room sized to the last batch alone was too small for most
/// large ones, which then grew by copying themselves (0.79–0.90 reallocations per batch at
/// 4 × 64; keeping three quarters 0.38, seven eighths 0.19; heaptrack 2026-12-08). The room
/// follows the recent peak and falls to what batches use within about 30 batches once the
/// load falls. It never exceeds the larger of the two, so what bounds a batch
/// (`max_flush_batch_bytes`, one write's size) bounds its room too, at most doubled by the
/// growth that made it.
fn room_like(used: usize, capacity: usize) -> usize {
    used.max(capacity - capacity / 8)
}

/// A background task's transient fault, for as long as it lasts.
struct Stall {
    why: String,
    since: Instant,
    retries: u32,
    last_logged: Instant,
}

/// Which task a [`Stall`] belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StallOf {
    /// The flusher: the commit-log write (or the creation of its next segment) failed.
    Flush,
    /// The dispatcher: a consume-queue or index write (or file creation) failed.
    Dispatch,
}

/// While the disk is full, refused appends ask for a new usage reading at most this often.
const DISK_RECHECK_WHILE_FULL: Duration = Duration::from_secs(1);

/// The flusher reads the disk usage again after this many bytes of commit log (a quarter
/// segment, at most 4 MiB): one statvfs per 4 MiB costs nothing next to the writes, and a
/// writer cannot run far past `diskSpaceWarningLevelRatio` between two retention passes.
pub(crate) fn disk_check_every_bytes(segment_size_bytes: u64) -> u64 {
    (segment_size_bytes / 4).clamp(1, 4 << 20)
}

/// First wait before a stalled task tries again; it doubles per try up to [`STALL_RETRY_MAX`].
const STALL_RETRY_FIRST: Duration = Duration::from_millis(10);
/// Longest wait between two tries of a stalled task.
const STALL_RETRY_MAX: Duration = Duration::from_secs(1);
/// A stall that lasts is logged again this often (not once per try).
const STALL_LOG_EVERY: Duration = Duration::from_secs(10);

struct Waiter {
    end: u64,
    slot: Rc<AckSlot>,
}

struct AppendState {
    /// Next local offset to hand out.
    write_pos: u64,
    open: Batch,
    closed: VecDeque<Batch>,
    pending_bytes: usize,
    written: u64,
    durable: u64,
    durable_waiters: VecDeque<Waiter>,
    written_waiters: VecDeque<Waiter>,
    sync_requested: bool,
    last_sync: Instant,
    /// Next queue offset per queue (assigned at append).
    next_queue_offset: QueueMap<u64>,
    /// Under SYNC_FLUSH: batches written but not yet fdatasync'ed, whose records become
    /// visible (are dispatched) once they are durable. Several batches written back to back
    /// share one fdatasync (a replica's units arrive as many small batches).
    awaiting_sync: Vec<DispatchBatch>,
}

struct DispatchBatch {
    records: Vec<DispatchRecord>,
    end: u64,
}

type QueueRef = Rc<RefCell<ConsumeQueue>>;
type Queues = QueueMap<QueueRef>;

pub(crate) struct Inner<S: Storage> {
    pub(crate) cfg: StoreConfig,
    pub(crate) storage: S,
    pub(crate) log_dir: PathBuf,
    pub(crate) cq_root: PathBuf,
    pub(crate) checkpoint_path: PathBuf,
    pub(crate) abort_path: PathBuf,
    pub(crate) segments: RefCell<Vec<Segment<S::File>>>,
    /// The broker-wide client offset space this store's segments are registered in.
    space: Arc<OffsetSpace>,
    /// This shard's registration in `space`; released on close.
    claim: RefCell<Option<ShardClaim>>,
    /// Client range of every segment that has one, by local base (a segment gets one when its
    /// first record is encoded). Mirrors this shard's entries in `space`.
    client_ranges: RefCell<BTreeMap<u64, SegmentRange>>,
    app: RefCell<AppendState>,
    pub(crate) queues: RefCell<Queues>,
    /// The open descriptors of the queues' files, at most `cfg.max_open_cq_files`.
    pub(crate) cq_files: consume_queue::CqDescriptors<S>,
    pub(crate) index: RefCell<Option<IndexService<S>>>,
    flusher_wake: Notify,
    dispatcher_wake: Notify,
    checkpointer_wake: Notify,
    retention_wake: Notify,
    dispatch_queue: RefCell<VecDeque<DispatchBatch>>,
    /// Log offset through which consume queues and index have been written.
    pub(crate) dispatched_offset: Cell<u64>,
    dispatched_waiters: RefCell<Vec<Waiter>>,
    /// Told of every queue that got new entries, once they are visible to pulls (long polling).
    dispatch_listener: RefCell<Option<DispatchListener>>,
    pub(crate) last_dispatched_ts: Cell<i64>,
    /// Lowest log offset still present (moves with retention).
    pub(crate) log_min: Cell<u64>,
    pub(crate) stats: RefCell<StoreStats>,
    /// Bytes and duration of each commit-log fdatasync (`flush_stats.rs`).
    flush_stats: RefCell<crate::flush_stats::FlushStats>,
    closing: Cell<bool>,
    pub(crate) failed: RefCell<Option<String>>,
    /// Set while the flusher retries a write that met a transient fault: appends are refused.
    flush_stall: RefCell<Option<Stall>>,
    /// Set while the dispatcher retries consume-queue or index writes: appends are refused.
    dispatch_stall: RefCell<Option<Stall>>,
    pub(crate) disk_full: Cell<bool>,
    /// Commit-log bytes written since the flusher last read the disk usage.
    bytes_since_disk_check: Cell<u64>,
    /// When a refused append last asked the retention task to read the disk usage again.
    disk_recheck_asked: Cell<Option<Instant>>,
    /// Missing or damaged ranges found at start, by local start offset; never served.
    damaged: RefCell<BTreeMap<u64, DamagedRange>>,
    /// When a read of each queue's lost entries (`CqEntry::lost`) was last logged: one line
    /// per queue per [`DAMAGE_LOG_EVERY`] (at most one entry per queue).
    lost_logged: RefCell<HashMap<(String, QueueId), Instant>>,
    tasks: RefCell<Vec<compio::runtime::JoinHandle<()>>>,
    /// Serializes checkpoint runs (the periodic task and explicit calls).
    checkpoint_busy: Cell<bool>,
    /// Set by `close` before its final checkpoint: from then on checkpoints, the one in
    /// progress included, write and sync several files at a time ([`files_in_flight`]).
    close_begun: Cell<bool>,
    /// Set while a retention pass runs (they must not overlap: both would delete the same
    /// segments).
    pub(crate) retention_busy: Cell<bool>,
    /// Completed when the checkpoint run in progress ends ([`run_fresh_checkpoint`]), and when
    /// the store fails or closes ([`release_checkpoint_waiters`]).
    checkpoint_waiters: RefCell<Vec<Rc<AckSlot>>>,
    /// Consume-queue entries held unsynced in memory, over all queues
    /// (`cfg.cq_max_unsynced_entries` bounds it).
    cq_unsynced_entries: Cell<u64>,
    /// When a checkpoint last synced every queue (`cfg.cq_thorough_interval_ms`).
    last_thorough_checkpoint: Cell<Instant>,
    /// Where recovery would start replaying the log after a crash now: the replay start the
    /// last checkpoint on disk names. Retention deletes no log at or past it.
    pub(crate) durable_replay_from: Cell<u64>,
    /// Log offsets where a replay may start (batch boundaries: dispatched points), oldest
    /// first, one per [`REPLAY_POINT_EVERY_BYTES`] dispatched, from the durable replay start
    /// on. A checkpoint that leaves a queue unsynced replays from the last point at or below
    /// its first unsynced entry's record (which may lie inside a batch, where no scan can
    /// start).
    pub(crate) replay_points: RefCell<VecDeque<u64>>,
    /// Deleted topics, by name: see [`Fence`].
    pub(crate) fences: RefCell<BTreeMap<String, Fence>>,
    /// Consume queues of deleted topics whose files the dispatcher is to remove.
    removals: RefCell<Vec<Removal>>,
    /// Set while [`Store::truncate_replica`] runs: the replica takes no units meanwhile.
    replica_truncating: Cell<bool>,
}

/// Where a deleted topic's old incarnation ends in this shard's log. Every record of the topic
/// at a local commit-log offset below `offset` was appended before the deletion: dispatch
/// (live and in recovery) skips it and a query by key never returns it, so a topic created
/// again under the same name starts empty at queue offset 0 while the old bytes stay in the log
/// until retention deletes their segments (Java's `deleteTopics` likewise leaves the commit log
/// alone). The fence is named in every checkpoint until the log minimum passes it.
///
/// Crash safety: recovery replays the log from the checkpoint's dispatch point, which may lie
/// below the fence, so the fence must be durable before the deletion is acknowledged — and
/// before the topic takes a new record: a record with queue offset 0 after old records with
/// offsets 0..n, replayed without the fence, would be a broken queue-offset sequence (refused as
/// corruption). Until a checkpoint naming the fence is on disk (`durable`), appends to the topic
/// are refused with [`StoreError::TopicDeleting`]. A crash before that point leaves the old
/// checkpoint: the deletion never happened as far as recovery can tell (it was not
/// acknowledged), and the old queue offsets continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fence {
    pub(crate) offset: u64,
    pub(crate) durable: bool,
}

/// A deleted topic's detached consume queues, handed to the dispatcher (the only writer of
/// consume queues) so their files never vanish under a write in progress.
struct Removal {
    topic: String,
    queues: Vec<QueueRef>,
    slot: Rc<AckSlot>,
}

/// What [`Store::delete_topic`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicDeletion {
    /// Consume queues removed (0 when this store held nothing of the topic).
    pub queues: usize,
    /// Consume-queue entries those queues still held (`max - min` summed).
    pub entries: u64,
    /// The fence: local commit-log offset below which the topic's records are dead.
    pub fence: u64,
}

/// One shard's store. Cheap to clone (a handle).
pub struct Store<S: Storage> {
    pub(crate) inner: Rc<Inner<S>>,
}

impl<S: Storage> Clone for Store<S> {
    fn clone(&self) -> Self {
        Store { inner: self.inner.clone() }
    }
}

/// How an append is acknowledged: per the flush mode, or once written when its first message
/// carries `WAIT=false`. Scans the first message's properties once and keeps the result for
/// `enqueue`.
fn ack_level(msgs: &mut [MessageInput]) -> AckLevel {
    let Some(first) = msgs.first_mut() else { return AckLevel::FlushMode };
    let summary = first.summary.get_or_insert_with(|| record::PropertySummary::scan(&first.properties));
    if summary.no_wait { AckLevel::Written } else { AckLevel::FlushMode }
}

fn fits(segment_size: u64, pos: u64, len: usize) -> bool {
    pos % segment_size + len as u64 + SEGMENT_RESERVED_BYTES as u64 <= segment_size
}

impl<S: Storage> Store<S> {
    /// Opens (and if needed recovers) the store under `cfg.root_dir` in an offset space of its
    /// own, then starts its background tasks on the current compio runtime. For tests and tools
    /// that open one store; a broker opens all its shards with [`Store::open_in`].
    pub async fn open(storage: S, cfg: StoreConfig) -> Result<(Self, RecoveryReport)> {
        Self::open_in(storage, cfg, Arc::new(OffsetSpace::new())).await
    }

    /// Opens (and if needed recovers) the store of shard `cfg.shard` under `cfg.root_dir`,
    /// registering its segments' client ranges in the broker-wide `space`, then starts its
    /// background tasks. Fails if the shard is already open in `space`, or if a segment's range
    /// overlaps another's ([`StoreError::Corruption`]). Every shard's store must be open before
    /// any of them appends (see [`OffsetSpace`]).
    pub async fn open_in(storage: S, cfg: StoreConfig, space: Arc<OffsetSpace>) -> Result<(Self, RecoveryReport)> {
        cfg.validate()?;
        let claim = space.claim(cfg.shard)?;
        let root = cfg.root_dir.clone();
        let log_dir = root.join("commitlog");
        let cq_root = root.join("consumequeue");
        let index_dir = root.join("index");
        for d in [&root, &log_dir, &cq_root, &index_dir] {
            storage.create_dir_all(d).await.map_err(|e| StoreError::io(IoOp::Mkdir, d, e))?;
        }
        if let Some(parent) = root.parent()
            && storage.exists(parent).await.unwrap_or(false)
        {
            storage.sync_dir(parent).await.map_err(|e| StoreError::io(IoOp::SyncDir, parent, e))?;
        }
        storage.sync_dir(&root).await.map_err(|e| StoreError::io(IoOp::SyncDir, &root, e))?;
        let checkpoint_path = root.join("checkpoint");
        let abort_path = root.join("abort");
        let abnormal = storage.exists(&abort_path).await.map_err(|e| StoreError::io(IoOp::Stat, &abort_path, e))?;
        let cp = read_checkpoint(&storage, &checkpoint_path).await?;
        let segments = commitlog::open_segments(&storage, &log_dir).await?;

        let index = if cfg.index_enable {
            Some(IndexService::open(&storage, &index_dir, &cfg, cp.as_ref()).await?)
        } else {
            None
        };

        let inner = Rc::new(Inner {
            storage: storage.clone(),
            log_dir,
            cq_root: cq_root.clone(),
            checkpoint_path,
            abort_path: abort_path.clone(),
            segments: RefCell::new(segments),
            space: claim.space().clone(),
            claim: RefCell::new(Some(claim)),
            client_ranges: RefCell::new(BTreeMap::new()),
            app: RefCell::new(AppendState {
                write_pos: 0,
                open: Batch::new(0, None),
                closed: VecDeque::new(),
                pending_bytes: 0,
                written: 0,
                durable: 0,
                durable_waiters: VecDeque::new(),
                written_waiters: VecDeque::new(),
                sync_requested: false,
                last_sync: Instant::now(),
                next_queue_offset: QueueMap::default(),
                awaiting_sync: Vec::new(),
            }),
            queues: RefCell::new(QueueMap::default()),
            cq_files: consume_queue::CqDescriptors::new(storage.clone(), cfg.max_open_cq_files),
            index: RefCell::new(index),
            flusher_wake: Notify::default(),
            dispatcher_wake: Notify::default(),
            checkpointer_wake: Notify::default(),
            retention_wake: Notify::default(),
            dispatch_queue: RefCell::new(VecDeque::new()),
            dispatched_offset: Cell::new(0),
            dispatched_waiters: RefCell::new(Vec::new()),
            dispatch_listener: RefCell::new(None),
            last_dispatched_ts: Cell::new(cp.as_ref().map(|c| c.last_store_timestamp_ms).unwrap_or(0)),
            log_min: Cell::new(0),
            stats: RefCell::new(StoreStats::default()),
            flush_stats: RefCell::new(Default::default()),
            closing: Cell::new(false),
            close_begun: Cell::new(false),
            failed: RefCell::new(None),
            flush_stall: RefCell::new(None),
            dispatch_stall: RefCell::new(None),
            disk_full: Cell::new(false),
            bytes_since_disk_check: Cell::new(0),
            disk_recheck_asked: Cell::new(None),
            damaged: RefCell::new(BTreeMap::new()),
            lost_logged: RefCell::new(HashMap::new()),
            tasks: RefCell::new(Vec::new()),
            checkpoint_busy: Cell::new(false),
            cq_unsynced_entries: Cell::new(0),
            last_thorough_checkpoint: Cell::new(Instant::now()),
            durable_replay_from: Cell::new(cp.as_ref().map_or(0, |c| c.replay_from.unwrap_or(c.dispatch_offset))),
            replay_points: RefCell::new(VecDeque::new()),
            retention_busy: Cell::new(false),
            checkpoint_waiters: RefCell::new(Vec::new()),
            fences: RefCell::new(BTreeMap::new()),
            removals: RefCell::new(Vec::new()),
            replica_truncating: Cell::new(false),
            cfg,
        });
        let store = Store { inner };
        let mut report = store.recover(cp, abnormal).await?;
        report.abnormal = abnormal;
        store.verify_stored_log(report.log_end).await?;
        report.damaged = store.damaged_ranges();

        // The abort marker says "a run is in progress"; its name must be durable before any
        // append is acknowledged, or a crash would look like a clean stop.
        let f = storage.open(&abort_path, true).await.map_err(|e| StoreError::io(IoOp::Create, &abort_path, e))?;
        f.write_all_at(std::process::id().to_string().into_bytes(), 0)
            .await
            .map_err(|e| StoreError::io(IoOp::Write, &abort_path, e))?;
        let root = store.inner.cfg.root_dir.clone();
        storage.sync_dir(&root).await.map_err(|e| StoreError::io(IoOp::SyncDir, &root, e))?;

        store.spawn_tasks();
        // Record the recovered state so the next recovery does not rescan it. On failure, stop
        // the tasks again: they hold the store, and with it the shard's claim on the space.
        if let Err(e) = store.checkpoint().await {
            store.abandon().await;
            return Err(e);
        }
        Ok((store, report))
    }

    fn spawn_tasks(&self) {
        let mut t = self.inner.tasks.borrow_mut();
        t.push(compio::runtime::spawn(flusher_task(self.inner.clone())));
        t.push(compio::runtime::spawn(dispatcher_task(self.inner.clone())));
        t.push(compio::runtime::spawn(checkpointer_task(self.inner.clone())));
        t.push(compio::runtime::spawn(retention_task(self.clone())));
    }

    /// The configuration this store runs with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// The file system this store runs on (for files kept beside it, such as the timer index,
    /// which then share its fault seam).
    pub fn storage(&self) -> &S {
        &self.inner.storage
    }

    /// The broker-wide client offset space this store is registered in.
    pub fn offset_space(&self) -> &Arc<OffsetSpace> {
        &self.inner.space
    }

    /// The client-visible offset of a local commit-log offset, if its segment has a client
    /// range (it has once a record was appended to it). The inverse of [`OffsetSpace::locate`].
    pub fn client_offset(&self, local: CommitLogOffset) -> Option<ClientPhysicalOffset> {
        let seg = self.inner.cfg.segment_size_bytes;
        let base = local.0 - local.0 % seg;
        let r = *self.inner.client_ranges.borrow().get(&base)?;
        i64::try_from(r.client_base.checked_add(local.0 - base)?).ok().map(ClientPhysicalOffset)
    }

    /// The client base of the segment an append at local offset `start` lands in, allocating
    /// one from the offset space when the append is the segment's first.
    fn client_base_for_append(&self, start: u64) -> Result<u64> {
        let inner = &self.inner;
        let seg = inner.cfg.segment_size_bytes;
        let base = start - start % seg;
        if let Some(r) = inner.client_ranges.borrow().get(&base) {
            return Ok(r.client_base);
        }
        let shard = inner.cfg.shard;
        let g = inner.space.allocate(shard, CommitLogOffset(base), seg)?.0 as u64;
        let range = SegmentRange { client_base: g, len_bytes: seg, shard, local_base: CommitLogOffset(base) };
        inner.client_ranges.borrow_mut().insert(base, range);
        tracing::debug!(%shard, local_base = base, client_base = g, "segment gets its client offset range");
        Ok(g)
    }

    /// Whether the segment holding `pos` takes no more records: a legacy segment (client
    /// offsets above 2^53) that was still open when the store was upgraded.
    fn sealed_at(&self, pos: u64) -> bool {
        let seg = self.inner.cfg.segment_size_bytes;
        !pos.is_multiple_of(seg) && self.inner.client_ranges.borrow().get(&(pos - pos % seg)).is_some_and(SegmentRange::is_legacy_high)
    }

    /// Forgets the client range of a segment that is gone (retention, torn tail).
    pub(crate) fn drop_client_range(&self, local_base: u64) {
        if self.inner.client_ranges.borrow_mut().remove(&local_base).is_some() {
            self.inner.space.unregister(self.inner.cfg.shard, CommitLogOffset(local_base));
        }
    }

    /// Whether the segment at `local_base` has a client range (has held a record).
    pub(crate) fn has_client_range(&self, local_base: u64) -> bool {
        self.inner.client_ranges.borrow().contains_key(&local_base)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            cq_files_held: self.inner.cq_files.held() as u64,
            cq_file_opens: self.inner.cq_files.opens(),
            cq_unsynced_entries: self.inner.cq_unsynced_entries.get(),
            ..*self.inner.stats.borrow()
        }
    }

    /// A copy of the group-commit distributions (bytes and duration per fdatasync).
    pub fn flush_stats(&self) -> crate::flush_stats::FlushStats {
        *self.inner.flush_stats.borrow()
    }

    /// Offset one past the last byte acknowledged durable.
    pub fn durable_offset(&self) -> CommitLogOffset {
        CommitLogOffset(self.inner.app.borrow().durable)
    }

    /// Offset one past the last byte handed out (including unflushed appends).
    pub fn write_offset(&self) -> CommitLogOffset {
        CommitLogOffset(self.inner.app.borrow().write_pos)
    }

    /// Lowest commit-log offset still stored.
    pub fn min_log_offset(&self) -> CommitLogOffset {
        CommitLogOffset(self.inner.log_min.get())
    }

    /// Offset through which consume queues have been written (pulls see records below it).
    pub fn dispatched_offset(&self) -> CommitLogOffset {
        CommitLogOffset(self.inner.dispatched_offset.get())
    }

    fn check_writable(&self) -> Result<()> {
        if let Some(f) = self.inner.failed.borrow().as_ref() {
            return Err(StoreError::LogFailed(f.clone()));
        }
        stalled(&self.inner, true)?;
        if self.inner.closing.get() {
            return Err(StoreError::ShutDown);
        }
        if self.inner.disk_full.get() {
            // Nothing is written while the disk is full, so the flusher never reads the usage
            // again: ask the retention task to (at most once a second) rather than wait for
            // its next 10 s pass, so writes resume soon after space is freed.
            let asked = self.inner.disk_recheck_asked.get();
            if asked.is_none_or(|t| t.elapsed() >= DISK_RECHECK_WHILE_FULL) {
                self.inner.disk_recheck_asked.set(Some(Instant::now()));
                self.inner.retention_wake.notify();
            }
            return Err(StoreError::DiskFull { usage_pct: self.inner.cfg.disk_space_warning_level_ratio_pct });
        }
        Ok(())
    }

    /// Appends one message, or a batch of messages for one topic and queue (placed contiguously in
    /// one segment). Completes when the append is acknowledged per the flush mode, or when written
    /// if the first message carries `WAIT=false`.
    pub async fn append(&self, mut msgs: Vec<MessageInput>) -> Result<AppendResult> {
        let level = ack_level(&mut msgs);
        self.append_with(msgs, level).await
    }

    /// [`Store::append`] with an explicit acknowledgement level.
    pub async fn append_with(&self, msgs: Vec<MessageInput>, level: AckLevel) -> Result<AppendResult> {
        let (result, wait) = self.enqueue(&msgs, level)?;
        // Encoded: not held while the acknowledgement is awaited.
        drop(msgs);
        self.inner.flusher_wake.notify();
        match wait.await {
            Ok(()) => Ok(result),
            Err(e) => Err(e.into()),
        }
    }

    /// Registers the function told of every (topic, queueId) that got new consume-queue entries,
    /// right after they became visible to [`Store::get_message`] (the broker wakes held pulls
    /// with it). Runs on the dispatcher task: it must not block.
    pub fn on_dispatched(&self, listener: impl Fn(&str, QueueId) + 'static) {
        *self.inner.dispatch_listener.borrow_mut() = Some(Box::new(listener));
    }

    /// Appends like [`Store::append`], but waits for the acknowledgement at most `timeout`.
    /// Returns the assigned offsets either way, with `true` when the append was acknowledged
    /// in time and `false` when the wait timed out — the records are in the log and will still
    /// be flushed (RocketMQ's FLUSH_DISK_TIMEOUT: "the message IS stored").
    ///
    /// The inputs stay the caller's (the first one's property summary filled in): a caller
    /// that runs this on the queue owner's shard for another shard hands them back to be freed
    /// on the thread that allocated them. Freed here, glibc's `free` of another thread's chunks
    /// (once its per-thread cache is full) took that thread's arena lock against its `malloc`:
    /// 0.48-0.78 futex calls per cross-shard send, 0.045-0.124 without (bench/RESULTS.md,
    /// 2026-12-07).
    pub async fn append_within(&self, msgs: &mut [MessageInput], timeout: std::time::Duration) -> Result<(AppendResult, bool)> {
        let level = ack_level(msgs);
        let durable = level == AckLevel::FlushMode && self.inner.cfg.flush_mode == FlushMode::Sync;
        let (result, wait) = self.enqueue(msgs, level)?;
        self.inner.flusher_wake.notify();
        if !durable {
            // Acknowledged once written: no disk wait to time out, so no timer either.
            return match wait.await {
                Ok(()) => Ok((result, true)),
                Err(e) => Err(e.into()),
            };
        }
        match compio::time::timeout(timeout, wait).await {
            Ok(Ok(())) => Ok((result, true)),
            Ok(Err(e)) => Err(e.into()),
            Err(_elapsed) => Ok((result, false)),
        }
    }

    /// Encodes the messages into the open batch and registers the waiter. Synchronous: offsets
    /// are assigned in call order with no await in between.
    fn enqueue(&self, msgs: &[MessageInput], level: AckLevel) -> Result<(AppendResult, AckWait)> {
        if self.inner.cfg.replica {
            return Err(StoreError::Replica);
        }
        self.check_writable()?;
        let cfg = &self.inner.cfg;
        let first = msgs.first().ok_or_else(|| StoreError::NotFound("empty append".into()))?;
        self.inner.check_not_deleting(&first.topic)?;
        let topic = &*first.topic;
        let queue_id = first.queue_id;
        let mut total = 0usize;
        let mut body_total = 0usize;
        for m in msgs {
            if *m.topic != *topic || m.queue_id != queue_id {
                return Err(StoreError::InvalidMessage(record::RecordError::BadTopic));
            }
            total += m.encoded_len()?;
            body_total += m.body.len();
        }
        if body_total > cfg.max_message_size_bytes
            || total + SEGMENT_RESERVED_BYTES > cfg.segment_size_bytes as usize
        {
            return Err(StoreError::InvalidMessage(record::RecordError::BadLength(total as i64)));
        }
        let seg = cfg.segment_size_bytes;
        let mut app = self.inner.app.borrow_mut();
        if app.pending_bytes + total > cfg.max_pending_bytes {
            return Err(StoreError::Busy { pending_bytes: app.pending_bytes, limit_bytes: cfg.max_pending_bytes });
        }
        // A dispatcher slower than the writes (consume-queue files reopened through a blocking
        // pool on a kernel without openat2, a slow disk) would otherwise hold ever more records.
        let behind = app.write_pos.saturating_sub(self.inner.dispatched_offset.get());
        if behind + total as u64 > cfg.max_dispatch_behind_bytes {
            return Err(StoreError::DispatchBehind { behind_bytes: behind, limit_bytes: cfg.max_dispatch_behind_bytes });
        }
        // Split the open batch when it would exceed one write's size limit.
        if !app.open.buf.is_empty() && app.open.buf.len() + total > cfg.max_flush_batch_bytes {
            close_open_batch(&mut app, None);
        }
        // A legacy segment still open at the upgrade is closed like a full one, so new records
        // go to a fresh segment with client offsets below 2^53.
        if !fits(seg, app.write_pos, total) || self.sealed_at(app.write_pos) {
            close_open_batch(&mut app, Some(seg));
        }
        let start = app.write_pos;
        assert!(fits(seg, start, total), "append at {start} of {total} bytes does not fit a fresh segment");
        let client_base = self.client_base_for_append(start)?;
        let seg_base = start - start % seg;
        // Within one segment client offsets run parallel to local ones (the allocator keeps the
        // whole range below 2^63).
        let client_of = |pos: u64| ClientPhysicalOffset((client_base + (pos - seg_base)) as i64);
        if app.open.buf.is_empty() {
            app.open.start = start;
        }
        let store_ts = now_ms();
        // The topic's name, shared by every record of the append and the queue's entry.
        let (topic_name, mut qoff) = match app.next_queue_offset.named(topic, queue_id) {
            Some((name, next)) => (name.clone(), next.copied().unwrap_or(0)),
            None => (Rc::from(topic), 0),
        };
        let first_qoff = qoff;
        let mut pos = start;
        let mut ids = smallvec::SmallVec::with_capacity(msgs.len());
        // Every index key of the append is completed with the same topic's hash.
        let topic_hash = record::java_string_hash(topic);
        for m in msgs {
            let dispatched = m.is_dispatched();
            // Borrowed, not taken: the inputs stay the caller's (see `append_within`).
            let scanned;
            let summary = match &m.summary {
                Some(s) => s,
                None => {
                    scanned = record::PropertySummary::scan(&m.properties);
                    &scanned
                }
            };
            let assigned = StoreAssigned {
                queue_offset: qoff,
                physical_offset: client_of(pos),
                store_timestamp_ms: store_ts,
            };
            let before = app.open.buf.len();
            let n = record::encode_record(m, assigned, &mut app.open.buf)?;
            let rollback = m.sys_flag & record::sysflag::TRANSACTION_MASK == record::sysflag::TRANSACTION_ROLLBACK;
            app.open.records.push(DispatchRecord {
                topic: topic_name.clone(),
                queue_id,
                queue_offset: dispatched.then_some(qoff),
                offset: CommitLogOffset(pos),
                size: n as u32,
                tags_code: summary.tags_code,
                store_timestamp_ms: store_ts,
                key_hashes: if rollback {
                    crate::commitlog::KeyHashes::new()
                } else {
                    summary.index_keys.iter().map(|k| k.under_topic_hash(topic_hash)).collect()
                },
            });
            debug_assert_eq!(app.open.buf.len() - before, n);
            ids.push(record::OffsetMsgId { store_host: m.store_host, offset: assigned.physical_offset });
            if dispatched {
                qoff += 1;
            }
            pos += n as u64;
        }
        match app.next_queue_offset.get_mut(&topic_name, queue_id) {
            Some(next) => *next = qoff,
            None => {
                app.next_queue_offset.insert(topic_name, queue_id, qoff);
            }
        }
        app.write_pos = pos;
        app.pending_bytes += total;
        let slot = Rc::new(AckSlot::default());
        let waiter = Waiter { end: pos, slot: slot.clone() };
        let durable_ack = level == AckLevel::FlushMode && cfg.flush_mode == FlushMode::Sync;
        if durable_ack {
            app.durable_waiters.push_back(waiter);
        } else {
            app.written_waiters.push_back(waiter);
        }
        drop(app);
        let mut st = self.inner.stats.borrow_mut();
        st.appends += 1;
        st.appended_messages += msgs.len() as u64;
        st.appended_bytes += total as u64;
        let dispatched_any = msgs.iter().any(|m| m.is_dispatched());
        Ok((
            AppendResult {
                offset: CommitLogOffset(start),
                client_offset: client_of(start),
                queue_offset: QueueOffset(if dispatched_any { first_qoff } else { 0 }),
                message_count: msgs.len() as u32,
                wrote_bytes: total as u32,
                store_timestamp_ms: store_ts,
                offset_msg_ids: ids,
            },
            AckWait(slot),
        ))
    }

    /// Waits until everything appended so far is durable (forces an fdatasync under
    /// ASYNC_FLUSH).
    pub async fn flush(&self) -> Result<()> {
        let end = self.inner.app.borrow().write_pos;
        wait_durable(&self.inner, end).await
    }

    /// Waits until consume queues have been written for everything appended so far, so pulls see
    /// it (tests and tools; the broker uses long polling instead).
    pub async fn wait_dispatched(&self) -> Result<()> {
        let end = self.inner.app.borrow().write_pos;
        // Under ASYNC_FLUSH records become visible once written; under SYNC once durable.
        self.inner.flusher_wake.notify();
        wait_dispatched(&self.inner, end).await
    }

    /// Runs one checkpoint of the state as of this call: syncs consume queues and index, makes
    /// the log durable up to the dispatched point, and atomically rewrites the checkpoint file.
    /// A periodic checkpoint in progress (whose snapshot may predate the caller's change) is
    /// waited for first, not taken for this one.
    pub async fn checkpoint(&self) -> Result<()> {
        run_fresh_checkpoint(&self.inner, Sweep::Thorough).await
    }

    /// Runs one checkpoint with the given sweep (the periodic checkpoint's is
    /// [`Sweep::Partial`]); as [`Store::checkpoint`] otherwise.
    pub async fn checkpoint_with(&self, sweep: Sweep) -> Result<()> {
        run_fresh_checkpoint(&self.inner, sweep).await
    }

    /// Clean shutdown: drains and syncs everything, writes a final checkpoint, removes the abort
    /// marker.
    pub async fn close(self) -> Result<()> {
        let inner = &self.inner;
        let end = inner.app.borrow().write_pos;
        let flushed = wait_durable(inner, end).await;
        let dispatched = if flushed.is_ok() { wait_dispatched(inner, end).await } else { Ok(()) };
        // Nothing else runs now: checkpoints may keep many files in flight, the periodic one
        // this waits for first included.
        inner.close_begun.set(true);
        let cp = if flushed.is_ok() && dispatched.is_ok() { run_fresh_checkpoint(inner, Sweep::Thorough).await } else { Ok(()) };
        inner.closing.set(true);
        release_checkpoint_waiters(inner);
        wake_all(inner);
        let tasks: Vec<_> = inner.tasks.borrow_mut().drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        // The store serves no reads from here on: its ranges leave the offset space.
        if let Some(mut claim) = inner.claim.borrow_mut().take() {
            claim.release();
        }
        flushed?;
        dispatched?;
        cp?;
        if inner.failed.borrow().is_none() {
            inner.storage.remove_file(&inner.abort_path).await.map_err(|e| StoreError::io(IoOp::Remove, &inner.abort_path, e))?;
            let root = &inner.cfg.root_dir;
            inner.storage.sync_dir(root).await.map_err(|e| StoreError::io(IoOp::SyncDir, root, e))?;
        }
        Ok(())
    }

    /// Stops the background tasks without flushing anything: what a crash leaves behind (for
    /// tests that simulate a crash and reopen the same storage).
    pub async fn abandon(self) {
        self.inner.closing.set(true);
        fail_all(&self.inner, "store abandoned".into());
        let tasks: Vec<_> = self.inner.tasks.borrow_mut().drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        if let Some(mut claim) = self.inner.claim.borrow_mut().take() {
            claim.release();
        }
    }

    /// Deletes a topic's data from this store (DELETE_TOPIC_IN_BROKER; Java's
    /// `DefaultMessageStore.deleteTopics`): its consume queues go (files and state), its index
    /// entries become unreachable, and its next queue offsets restart at 0; its records stay in
    /// the log until retention. Returns once the deletion is durable (a checkpoint naming the
    /// topic's [`Fence`] and no longer its queues has been written); a crash or restart never
    /// brings the old queues back. Appends to the topic are refused
    /// ([`StoreError::TopicDeleting`]) in the meantime. A store that holds nothing of the topic
    /// does nothing.
    pub async fn delete_topic(&self, topic: &str) -> Result<TopicDeletion> {
        let inner = &self.inner;
        if let Some(f) = inner.failed.borrow().as_ref() {
            return Err(StoreError::LogFailed(f.clone()));
        }
        if inner.closing.get() {
            return Err(StoreError::ShutDown);
        }
        // One synchronous step: from here on no append of the topic is accepted until the fence
        // is durable, every record already appended lies below the fence (so the dispatcher
        // skips it), and no reader finds the old queues.
        let (queues, outcome) = {
            let mut app = inner.app.borrow_mut();
            let mut queues_map = inner.queues.borrow_mut();
            if !queues_map.contains_topic(topic) && !app.next_queue_offset.contains_topic(topic) {
                return Ok(TopicDeletion::default());
            }
            let queues: Vec<QueueRef> = queues_map.remove_topic(topic).into_iter().map(|(_, q)| q).collect();
            for q in &queues {
                let forgotten = q.borrow_mut().retire();
                inner.cq_unsynced_entries.set(inner.cq_unsynced_entries.get().saturating_sub(forgotten));
            }
            app.next_queue_offset.remove_topic(topic);
            let fence = app.write_pos;
            inner.fences.borrow_mut().insert(topic.to_owned(), Fence { offset: fence, durable: false });
            let entries = queues.iter().map(|q| {
                let q = q.borrow();
                q.max_offset.saturating_sub(q.min_offset)
            }).sum();
            let count = queues.len();
            (queues, TopicDeletion { queues: count, entries, fence })
        };
        // The dispatcher removes the files between two rounds; a crash after it but before the
        // checkpoint below leaves the old checkpoint, which recovery honours (the old queues
        // continue at their checkpointed ends).
        let slot = Rc::new(AckSlot::default());
        inner.removals.borrow_mut().push(Removal { topic: topic.to_owned(), queues, slot: slot.clone() });
        inner.dispatcher_wake.notify();
        AckWait(slot).await.map_err(StoreError::from)?;
        // A checkpoint started after the fence was set: it names the fence, not the queues.
        run_fresh_checkpoint(inner, Sweep::Partial).await?;
        tracing::info!(shard = %inner.cfg.shard, topic, queues = outcome.queues, entries = outcome.entries, fence = outcome.fence, "topic deleted from the store");
        Ok(outcome)
    }

    pub(crate) fn queue(&self, topic: &str, queue_id: QueueId) -> Option<QueueRef> {
        self.inner.queues.borrow().get(topic, queue_id).cloned()
    }

    /// Min and max (one past last) offsets of a queue; `(0, 0)` for an unknown queue.
    pub fn queue_offsets(&self, topic: &str, queue_id: QueueId) -> (QueueOffset, QueueOffset) {
        match self.queue(topic, queue_id) {
            Some(q) => {
                let q = q.borrow();
                (QueueOffset(q.min_offset), QueueOffset(q.max_offset))
            }
            None => (QueueOffset(0), QueueOffset(0)),
        }
    }

    /// All known queues as (topic, queue id).
    pub fn queues(&self) -> Vec<(String, QueueId)> {
        self.inner.queues.borrow().iter().map(|(topic, queue_id, _)| (topic.to_string(), queue_id)).collect()
    }

    /// Pull read (PROTOCOL.md §6.3): which log ranges to send for `max_msgs` messages from
    /// `offset`, with the next offset to pull from.
    pub async fn get_message(
        &self,
        topic: &str,
        queue_id: QueueId,
        offset: QueueOffset,
        max_msgs: u32,
        filter: &TagFilter,
    ) -> Result<PullResult> {
        let cfg = &self.inner.cfg;
        let offset = offset.0;
        let mut res = PullResult {
            status: PullStatus::NoMatchedLogicQueue,
            next_begin_offset: QueueOffset(0),
            min_offset: QueueOffset(0),
            max_offset: QueueOffset(0),
            ranges: Vec::new(),
            message_count: 0,
            total_bytes: 0,
            behind_bytes: 0,
        };
        let Some(q) = self.queue(topic, queue_id) else { return Ok(res) };
        let (min, max) = {
            let q = q.borrow();
            (q.min_offset, q.max_offset)
        };
        res.min_offset = QueueOffset(min);
        res.max_offset = QueueOffset(max);
        if max == 0 {
            res.status = PullStatus::NoMessageInQueue;
            return Ok(res);
        }
        if offset < min {
            res.status = PullStatus::OffsetTooSmall;
            res.next_begin_offset = QueueOffset(min);
            return Ok(res);
        }
        if offset == max {
            res.status = PullStatus::OffsetOverflowOne;
            res.next_begin_offset = QueueOffset(offset);
            return Ok(res);
        }
        if offset > max {
            res.status = PullStatus::OffsetOverflowBadly;
            res.next_begin_offset = QueueOffset(max);
            return Ok(res);
        }
        // Scan budget: stop once max(16000 bytes of entries, max_msgs entries) were looked at.
        // Without a tag filter every entry matches, so `max_msgs` entries are all a pull can use:
        // reading (and decoding) the whole budget would be 25 times the work for 32 messages.
        let max_scan = match filter {
            TagFilter::All => u64::from(max_msgs).max(1),
            // A property filter reads each candidate record: the same budget as Java's.
            TagFilter::Codes(_) | TagFilter::Properties(_) => (16_000 / consume_queue::CQ_ENTRY_LEN as u64).max(u64::from(max_msgs)),
        };
        let Some(entries) = consume_queue::read_entries(&self.inner.cq_files, &q, offset, max_scan).await? else {
            let per = q.borrow().entries_per_file;
            res.status = PullStatus::OffsetFoundNull;
            res.next_begin_offset = QueueOffset(offset + per - offset % per);
            return Ok(res);
        };
        res.status = PullStatus::NoMatchedMessage;
        let log_min = self.inner.log_min.get();
        let visible_end = self.inner.dispatched_offset.get();
        let mut examined = 0u64;
        let mut removed_segment_end: Option<u64> = None;
        let seg = cfg.segment_size_bytes;
        for e in &entries {
            if batch_full(cfg, max_msgs, res.message_count, res.total_bytes, e.size) {
                break;
            }
            examined += 1;
            if removed_segment_end.is_some_and(|end| e.offset < end) {
                continue;
            }
            if e.is_lost() && e.offset >= log_min {
                // Checked before the filter: the lost record may have matched it. As for a
                // damaged record, this pull ends before it and one that starts at it fails.
                if res.message_count == 0 {
                    return Err(self.lost_record(topic, queue_id, offset + examined - 1, e.offset));
                }
                examined -= 1;
                break;
            }
            if !filter.matches(e.tags_code) {
                continue;
            }
            if e.offset < log_min {
                if res.message_count == 0 {
                    res.status = PullStatus::MessageWasRemoving;
                }
                removed_segment_end = Some(e.offset - e.offset % seg + seg);
                continue;
            }
            let entry_end = e.offset + u64::from(e.size);
            if let Err(damaged) = self.check_undamaged(e.offset, e.size) {
                // Never served: this pull ends before it (what precedes it is good), and a
                // pull that starts at it fails with the damage.
                if res.message_count == 0 {
                    return Err(damaged);
                }
                examined -= 1;
                break;
            }
            if entry_end > visible_end {
                // The dispatcher writes a round's queue entries before it publishes the round's
                // end, so an entry past `visible_end` but within what was written is simply not
                // visible yet: stop here, as if the queue ended. Past everything ever written,
                // it is corruption.
                if entry_end > self.inner.app.borrow().written {
                    return Err(StoreError::CorruptFile {
                        what: "consume queue",
                        path: q.borrow().dir.clone(),
                        reason: format!("entry points at {}..{entry_end} past the log end {visible_end}", e.offset),
                    });
                }
                examined -= 1;
                if examined == 0 {
                    res.status = PullStatus::OffsetOverflowOne;
                }
                break;
            }
            if let TagFilter::Properties(wanted) = filter {
                let record = self.read_range(LogRange { offset: CommitLogOffset(e.offset), len: e.size }).await?;
                let properties = record::decode_record(&record, false).map_err(|err| StoreError::CorruptFile {
                    what: "commit log",
                    path: q.borrow().dir.clone(),
                    reason: format!("the record at {} that a consume-queue entry names does not decode: {err}", e.offset),
                })?;
                if !wanted.matches(properties.properties) {
                    continue;
                }
            }
            match res.ranges.last_mut() {
                Some(r) if r.offset.0 + u64::from(r.len) == e.offset => r.len += e.size,
                _ => res.ranges.push(LogRange { offset: CommitLogOffset(e.offset), len: e.size }),
            }
            res.message_count += 1;
            res.total_bytes += u64::from(e.size);
            res.status = PullStatus::Found;
        }
        res.next_begin_offset = QueueOffset(offset + examined);
        if let Some(last) = res.ranges.last() {
            res.behind_bytes = self.inner.app.borrow().written.saturating_sub(last.offset.0 + u64::from(last.len));
        }
        Ok(res)
    }

    /// Reads a log range (for tools, tests and non-zero-copy sends).
    pub async fn read_range(&self, range: LogRange) -> Result<Vec<u8>> {
        self.check_undamaged(range.offset.0, range.len)?;
        let (file, path, pos) = self.locate(range.offset)?;
        let b = file.read_at(range.len as usize, pos).await.map_err(|e| StoreError::io(IoOp::Read, &path, e))?;
        if b.len() != range.len as usize {
            return Err(StoreError::NotFound(format!("range {}+{} is past the end of its segment", range.offset, range.len)));
        }
        Ok(b)
    }

    /// The file and position holding a log range, for zero-copy sends (`sendfile` from
    /// `file.raw_fd()` at `pos` for `range.len` bytes).
    pub fn log_slice(&self, range: LogRange) -> Result<(S::File, u64)> {
        let (file, _, pos) = self.locate(range.offset)?;
        Ok((file, pos))
    }

    /// The segment file holding a log range, shared (one descriptor per segment, no syscall per
    /// call), and the range's position in it, for zero-copy sends from the connection's writer:
    /// the descriptor keeps the segment readable even if retention deletes it meanwhile.
    pub fn log_file(&self, range: LogRange) -> Result<LogFile> {
        self.check_readable(range.offset)?;
        let segs = self.inner.segments.borrow();
        let seg = segs
            .iter()
            .rev()
            .find(|s| s.base <= range.offset.0)
            .ok_or_else(|| StoreError::NotFound(format!("no segment holds offset {}", range.offset)))?;
        let file = seg
            .shared
            .clone()
            .ok_or_else(|| StoreError::NotFound(format!("{} has no file descriptor (in-memory storage)", seg.path.display())))?;
        // Written bytes are never rewritten through this descriptor: a replica's truncation
        // gives the segment a new one first (`Segment::reshare`).
        let written = self.inner.app.borrow().written;
        let settled_end = if seg.cacheable { written.saturating_sub(seg.base).min(self.inner.cfg.segment_size_bytes) } else { 0 };
        Ok(LogFile { file, position: range.offset.0 - seg.base, settled_end })
    }

    /// The error for a read of a [lost](CqEntry::lost) queue entry: the damage itself while it
    /// is known (this run found it), logged like any read of it.
    fn lost_record(&self, topic: &str, queue_id: QueueId, queue_offset: u64, log_offset: u64) -> StoreError {
        if let Err(damaged) = self.check_undamaged(log_offset, 1) {
            return damaged;
        }
        let error = StoreError::LostRecord { topic: topic.to_owned(), queue_id, queue_offset, log_offset };
        // The damage was found by an earlier start: tell the operator again when its records
        // are asked for, as for a damaged range, without a line per pull.
        let mut logged = self.inner.lost_logged.borrow_mut();
        let key = (topic.to_owned(), queue_id);
        if logged.get(&key).is_none_or(|at| at.elapsed() >= DAMAGE_LOG_EVERY) {
            logged.insert(key, Instant::now());
            tracing::error!(shard = %self.inner.cfg.shard, "read refused: {error}");
        }
        error
    }

    /// The damaged ranges found at start (see [`VERIFY_NEWEST_SEGMENTS`]).
    pub fn damaged_ranges(&self) -> Vec<DamagedRange> {
        self.inner.damaged.borrow().values().cloned().collect()
    }

    /// Fails (and logs) if `[offset, offset+len)` touches a damaged range. One map lookup, and
    /// none at all on a store without damage.
    fn check_undamaged(&self, offset: u64, len: u32) -> Result<()> {
        let damaged = self.inner.damaged.borrow();
        if damaged.is_empty() {
            return Ok(());
        }
        let end = offset + u64::from(len);
        // The range starting at or before `offset`, and any starting inside `[offset, end)`.
        let before = damaged.range(..=offset).next_back().map(|(_, d)| d).filter(|d| d.end > offset);
        let inside = damaged.range(offset..end).next().map(|(_, d)| d);
        match before.or(inside) {
            Some(d) => Err(d.refuse_read()),
            None => Ok(()),
        }
    }

    /// The start-up check of the stored log: every segment's file must hold its bytes up to the
    /// log end `end` (a file cut short while the broker was stopped leaves a missing range), and
    /// the batches of the newest [`VERIFY_NEWEST_SEGMENTS`] segments must validate (record CRCs
    /// when `check_crc_on_recover`, PHYSICALOFFSETs, commit-marker checksums). A bad batch is
    /// damaged up to the next batch that validates. Each finding is logged at ERROR with its
    /// file and position, recorded, and never served; the store still opens, so every other
    /// queue is served.
    async fn verify_stored_log(&self, end: u64) -> Result<()> {
        let inner = &self.inner;
        let seg_size = inner.cfg.segment_size_bytes;
        let log_min = inner.log_min.get();
        let segs: Vec<Segment<S::File>> =
            inner.segments.borrow().iter().filter(|s| s.base < end && s.base + seg_size > log_min).cloned().collect();
        let newest_from = segs.len().saturating_sub(VERIFY_NEWEST_SEGMENTS);
        for (i, seg) in segs.iter().enumerate() {
            let data_end = (seg.base + seg_size).min(end);
            let file_len = seg.file.len().await.map_err(|e| StoreError::io(IoOp::Stat, &seg.path, e))?;
            let present_end = (seg.base + file_len).min(data_end);
            if present_end < data_end && self.known_damage_end(present_end).is_none() {
                self.record_damage(seg, present_end, data_end, format!("the file ends at {file_len} bytes; the log's data runs to {}", data_end - seg.base));
            }
            if i < newest_from {
                continue;
            }
            let Some(client_base) = inner.client_ranges.borrow().get(&seg.base).map(|r| r.client_base) else { continue };
            let mut reader = SegmentReader::new(seg, seg_size);
            let mut pos = seg.base.max(log_min);
            while pos < present_end {
                // Ranges the recovery scan already found are skipped, not reported twice.
                if let Some(known_end) = self.known_damage_end(pos) {
                    pos = known_end;
                    continue;
                }
                match commitlog::scan_batch(&mut reader, Some(client_base), pos, inner.cfg.check_crc_on_recover).await? {
                    ScanStep::Batch { end: batch_end, .. } => pos = batch_end,
                    ScanStep::Blank => break,
                    ScanStep::Invalid(reason) => {
                        let next = commitlog::next_batch_start_after(&mut reader, pos, present_end).await?.max(pos + 1);
                        self.record_damage(seg, pos, next, reason);
                        pos = next;
                    }
                }
            }
        }
        Ok(())
    }

    fn check_readable(&self, offset: CommitLogOffset) -> Result<()> {
        if offset.0 < self.inner.log_min.get() || offset.0 >= self.inner.dispatched_offset.get().max(self.inner.app.borrow().written) {
            return Err(StoreError::NotFound(format!("commit-log offset {offset} is not stored")));
        }
        Ok(())
    }

    fn locate(&self, offset: CommitLogOffset) -> Result<(S::File, PathBuf, u64)> {
        self.check_readable(offset)?;
        let segs = self.inner.segments.borrow();
        let seg = segs
            .iter()
            .rev()
            .find(|s| s.base <= offset.0)
            .ok_or_else(|| StoreError::NotFound(format!("no segment holds offset {offset}")))?;
        Ok((seg.file.clone(), seg.path.clone(), offset.0 - seg.base))
    }

    /// The record at a physical offset (VIEW_MESSAGE_BY_ID, CONSUMER_SEND_MSG_BACK).
    pub async fn read_record(&self, offset: CommitLogOffset) -> Result<Vec<u8>> {
        let head = self.read_range(LogRange { offset, len: 8 }).await?;
        let (total, magic) = record::peek_header(&head)?;
        if magic != record::MAGIC_V1 && magic != record::MAGIC_V2 || total <= 0 {
            return Err(StoreError::NotFound(format!("no record starts at {offset}")));
        }
        let bytes = self.read_range(LogRange { offset, len: total as u32 }).await?;
        record::decode_record(&bytes, false)?;
        Ok(bytes)
    }

    /// Store timestamp of the message at a queue offset.
    pub async fn store_time_at(&self, topic: &str, queue_id: QueueId, offset: QueueOffset) -> Result<Option<i64>> {
        let Some(q) = self.queue(topic, queue_id) else { return Ok(None) };
        let Some(e) = consume_queue::read_entries(&self.inner.cq_files, &q, offset.0, 1).await? else { return Ok(None) };
        let Some(e) = e.first() else { return Ok(None) };
        if e.offset < self.inner.log_min.get() {
            return Ok(None);
        }
        if e.is_lost() {
            return Err(self.lost_record(topic, queue_id, offset.0, e.offset));
        }
        let rec = self.read_range(LogRange { offset: CommitLogOffset(e.offset), len: e.size }).await?;
        Ok(Some(record::decode_record(&rec, false)?.store_timestamp_ms))
    }

    /// GET_EARLIEST_MSG_STORETIME: store time of the message at the queue's min offset, -1 when
    /// empty or unknown.
    pub async fn earliest_store_time(&self, topic: &str, queue_id: QueueId) -> Result<i64> {
        let (min, max) = self.queue_offsets(topic, queue_id);
        if min >= max {
            return Ok(-1);
        }
        Ok(self.store_time_at(topic, queue_id, min).await?.unwrap_or(-1))
    }

    /// SEARCH_OFFSET_BY_TIMESTAMP by binary search over store times. `upper == false` (LOWER,
    /// default): first offset whose store time ≥ `ts` (`max` if none); `upper`: last offset whose
    /// store time ≤ `ts` (min if none). 0 for an unknown queue.
    pub async fn search_offset_by_timestamp(&self, topic: &str, queue_id: QueueId, ts: i64, upper: bool) -> Result<QueueOffset> {
        let (min, max) = self.queue_offsets(topic, queue_id);
        if self.queue(topic, queue_id).is_none() {
            return Ok(QueueOffset(0));
        }
        // Skip entries whose records were deleted by retention.
        let mut lo = min.0;
        let mut hi = max.0;
        while lo < hi {
            if self.store_time_at(topic, queue_id, QueueOffset(lo)).await?.is_some() {
                break;
            }
            lo += 1;
        }
        if lo >= hi {
            return Ok(QueueOffset(max.0));
        }
        if !upper {
            // first offset with time >= ts
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let t = self.store_time_at(topic, queue_id, QueueOffset(mid)).await?.unwrap_or(i64::MIN);
                if t >= ts { hi = mid } else { lo = mid + 1 }
            }
            Ok(QueueOffset(lo))
        } else {
            // last offset with time <= ts
            let first = lo;
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let t = self.store_time_at(topic, queue_id, QueueOffset(mid)).await?.unwrap_or(i64::MIN);
                if t <= ts { lo = mid + 1 } else { hi = mid }
            }
            Ok(QueueOffset(if lo > first { lo - 1 } else { first }))
        }
    }

    /// Recovery: cut consume queues to the checkpoint, replay and validate the log from the
    /// checkpoint's dispatch point, wipe a torn tail, and reject corruption below durable data.
    async fn recover(&self, cp: Option<Checkpoint>, abnormal: bool) -> Result<RecoveryReport> {
        let inner = &self.inner;
        let storage = &inner.storage;
        let cfg = &inner.cfg;
        let mut report = RecoveryReport { had_checkpoint: cp.is_some(), ..Default::default() };
        if let Some(at) = cp.as_ref().and_then(|c| c.truncate_log_at) {
            // A replica's truncation was interrupted after its first checkpoint: finish it
            // before anything reads the log (see `Store::truncate_replica`).
            let (zeroed, removed) = self.wipe_log_from(at, None).await?;
            tracing::warn!(shard = %cfg.shard, offset = at, zeroed_bytes = zeroed, segments_removed = removed,
                "completing a replica truncation a crash interrupted: the log ends at {at}");
            report.completed_truncation = Some(at);
        }
        let first_base = inner.segments.borrow().first().map(|s| s.base);
        let cp = cp.unwrap_or_else(|| Checkpoint { log_min_offset: first_base.unwrap_or(0), dispatch_offset: first_base.unwrap_or(0), ..Default::default() });
        inner.log_min.set(first_base.map(|b| b.max(cp.log_min_offset)).unwrap_or(cp.log_min_offset));

        // Deleted topics: their old records are never replayed into queues again.
        *inner.fences.borrow_mut() =
            cp.deleted_topics.iter().map(|(t, offset)| (t.clone(), Fence { offset: *offset, durable: true })).collect();
        // Consume queues: keep exactly the durable entries the checkpoint names.
        let mut keep: HashMap<(String, QueueId), (u64, u64)> = HashMap::new();
        for q in &cp.queues {
            keep.insert((q.topic.to_string(), q.queue_id), (q.max_offset, q.min_offset));
        }
        let topics = storage.list_dir(&inner.cq_root).await.map_err(|e| StoreError::io(IoOp::List, &inner.cq_root, e))?;
        for topic in topics {
            let tdir = inner.cq_root.join(&topic);
            let qids = storage.list_dir(&tdir).await.map_err(|e| StoreError::io(IoOp::List, &tdir, e))?;
            for qid in qids {
                let Ok(queue_id) = qid.parse::<u32>().map(QueueId) else { continue };
                let named = keep.get(&(topic.clone(), queue_id)).copied();
                let (k, min) = named.unwrap_or((0, 0));
                let cq = ConsumeQueue::open(&inner.cq_files, &inner.cq_root, &topic, queue_id, cfg.cq_entries_per_file, k, min).await?;
                if named.is_none() && inner.fences.borrow().contains_key(&topic) {
                    // Left by a deletion whose file removal the crash interrupted after its
                    // checkpoint (which no longer names the queue): emptied above, now gone.
                    let _ = storage.remove_dir(&cq.dir).await;
                    continue;
                }
                self.register_queue(cq);
            }
        }
        for q in &cp.queues {
            if self.queue(&q.topic, q.queue_id).is_none() && q.max_offset > 0 {
                // Every file of the queue was retired; it continues at its old end.
                let cq = ConsumeQueue::starting_at(&inner.cq_root, q.topic.clone(), q.queue_id, cfg.cq_entries_per_file, q.max_offset);
                self.register_queue(cq);
            }
        }

        // Replay the log from the dispatch point, or from below it where the checkpoint left
        // queues unsynced (records already in their queues are skipped there).
        let start = cp.replay_from.unwrap_or(cp.dispatch_offset).max(inner.log_min.get());
        report.scanned_from = start;
        inner.dispatched_offset.set(start);
        let seg_size = cfg.segment_size_bytes;
        let segs: Vec<Segment<S::File>> = inner.segments.borrow().clone();

        // Client bases. A segment the scan enters at its start gets its base from the first
        // batch the scan validates; every other stored segment starts below the dispatch point,
        // so its first record is durable and names the base (see DESIGN-NOTES.md). Leftovers of
        // an interrupted retention pass (wholly below the log minimum) are never read again.
        let mut client_bases: BTreeMap<u64, u64> = BTreeMap::new();
        for seg in segs.iter().filter(|s| s.base < start && s.base + seg_size > inner.log_min.get()) {
            match commitlog::first_record_client_base(seg, seg_size, cfg.check_crc_on_recover).await {
                Ok(g) => {
                    client_bases.insert(seg.base, g);
                }
                Err(StoreError::Corruption { reason, .. }) => {
                    // The first record is damaged: the base comes from the first batch after it
                    // that validates (none: the whole segment is damaged and never served).
                    let mut reader = SegmentReader::new(seg, seg_size);
                    let data_end = commitlog::data_end(&mut reader, seg.base).await?;
                    let next = commitlog::next_batch_start_after(&mut reader, seg.base, data_end).await?;
                    let found = if next < data_end { commitlog::client_base_from_record_at(&mut reader, next, cfg.check_crc_on_recover).await? } else { None };
                    let damaged_to = if found.is_some() { next } else { seg.base + seg_size };
                    self.record_damage(seg, seg.base, damaged_to, reason);
                    if let Some(g) = found {
                        client_bases.insert(seg.base, g);
                    }
                }
                Err(e) => return Err(e),
            }
        }

        let mut end = start;
        let mut idx = segs.iter().position(|s| s.base <= start && start < s.base + seg_size);
        'segments: while let Some(i) = idx {
            let Some(seg) = segs.get(i) else { break };
            let mut reader = SegmentReader::new(seg, seg_size);
            let mut pos = end.max(seg.base);
            loop {
                match commitlog::scan_batch(&mut reader, client_bases.get(&seg.base).copied(), pos, cfg.check_crc_on_recover).await? {
                    ScanStep::Batch { records, end: e, max_store_timestamp_ms, client_base } => {
                        client_bases.insert(seg.base, client_base);
                        report.batches_replayed += 1;
                        report.records_replayed += records.len() as u64;
                        self.replay_records(records, start, cp.dispatch_offset).await?;
                        inner.dispatched_offset.set(e);
                        if max_store_timestamp_ms > inner.last_dispatched_ts.get() {
                            inner.last_dispatched_ts.set(max_store_timestamp_ms);
                        }
                        pos = e;
                    }
                    ScanStep::Blank => {
                        end = seg.base + seg_size;
                        inner.dispatched_offset.set(end);
                        idx = if segs.get(i + 1).is_some_and(|n| n.base == end) { Some(i + 1) } else { None };
                        continue 'segments;
                    }
                    ScanStep::Invalid(reason) => {
                        // Bytes that do not validate. Durable ones — below the checkpointed
                        // durable offset, after a clean stop, or followed by a batch written
                        // once they were durable — are damage: recorded (never served, reads
                        // fail), and the scan resumes at the next batch that validates, so
                        // every other record is still replayed and served. After a crash,
                        // anything else is a torn tail: cut off.
                        let durable = pos < cp.log_durable_offset || !abnormal || self.durable_marker_after(&segs, i, pos).await?.is_some();
                        if !durable {
                            report.torn_bytes_wiped = self.cut_torn_tail(&segs, i, pos).await?;
                            if report.torn_bytes_wiped > 0 {
                                tracing::warn!(offset = pos, wiped_bytes = report.torn_bytes_wiped, %reason, "commit log ends with a torn tail; truncated");
                            } else {
                                tracing::info!(offset = pos, "commit log ends cleanly at the last complete record");
                            }
                            end = pos;
                            break 'segments;
                        }
                        let data_end = commitlog::data_end(&mut reader, pos).await?;
                        let next_seg = segs.get(i + 1).is_some_and(|n| n.base == seg.base + seg_size);
                        if data_end <= pos && !next_seg {
                            // Only zeros from here on: the log ends here.
                            if pos < cp.log_durable_offset {
                                tracing::error!(
                                    file = %seg.path.display(),
                                    position = pos - seg.base,
                                    "commit log damaged (found at start): the bytes from here to the checkpointed durable offset {} are missing or zero; the records written there are lost",
                                    cp.log_durable_offset
                                );
                                report.lost_tail_bytes = cp.log_durable_offset - pos;
                            }
                            end = pos;
                            break 'segments;
                        }
                        let next = if data_end > pos { commitlog::next_batch_start_after(&mut reader, pos, data_end).await?.max(pos + 1) } else { pos };
                        if next < data_end {
                            self.record_damage(seg, pos, next, reason);
                            if !client_bases.contains_key(&seg.base)
                                && let Some(g) = commitlog::client_base_from_record_at(&mut reader, next, cfg.check_crc_on_recover).await?
                            {
                                client_bases.insert(seg.base, g);
                            }
                            pos = next;
                            continue;
                        }
                        // Nothing in the rest of this segment validates.
                        if next_seg {
                            self.record_damage(seg, pos, seg.base + seg_size, reason);
                            end = seg.base + seg_size;
                            inner.dispatched_offset.set(end);
                            idx = Some(i + 1);
                            continue 'segments;
                        }
                        // The damage runs to the end of the log's data; the log goes on after it.
                        self.record_damage(seg, pos, data_end, reason);
                        end = data_end;
                        break 'segments;
                    }
                }
            }
        }
        // Segments past the end that the scan never reached (e.g. an empty, freshly created one)
        // are kept; anything non-empty beyond `end` was already refused or wiped above.
        report.log_end = end;
        self.register_client_ranges(&client_bases)?;
        let mut app = inner.app.borrow_mut();
        app.write_pos = end;
        app.written = end;
        app.durable = end;
        app.open = Batch::new(end, None);
        for (t, q, cq) in inner.queues.borrow().iter() {
            app.next_queue_offset.insert(t.clone(), q, cq.borrow().max_offset);
        }
        drop(app);
        inner.dispatched_offset.set(end);
        // Replayed entries are unsynced until the checkpoint that ends the open.
        *inner.replay_points.borrow_mut() = VecDeque::from([start]);
        if let Some(ix) = inner.index.borrow_mut().as_mut() {
            ix.set_dispatched(end);
        }
        if self.sealed_at(end) {
            tracing::info!(
                shard = %cfg.shard,
                segment = %commitlog::segment_name(end - end % seg_size),
                "the active segment carries legacy client offsets above 2^53: the next append closes it and starts a new segment"
            );
        }
        Ok(report)
    }

    /// Registers the client range of every stored segment that has a client base in the offset
    /// space (which checks them: plausible bases, growing with local bases, no overlaps).
    fn register_client_ranges(&self, client_bases: &BTreeMap<u64, u64>) -> Result<()> {
        let inner = &self.inner;
        let seg = inner.cfg.segment_size_bytes;
        let shard = inner.cfg.shard;
        let ranges: Vec<SegmentRange> = inner
            .segments
            .borrow()
            .iter()
            .filter_map(|s| client_bases.get(&s.base).map(|g| (s.base, *g)))
            .map(|(base, g)| SegmentRange { client_base: g, len_bytes: seg, shard, local_base: CommitLogOffset(base) })
            .collect();
        inner.space.register_shard(shard, &ranges)?;
        *inner.client_ranges.borrow_mut() = ranges.into_iter().map(|r| (r.local_base.0, r)).collect();
        Ok(())
    }

    fn register_queue(&self, cq: ConsumeQueue) {
        let (topic, queue_id) = (cq.topic.clone(), cq.queue_id);
        self.inner.queues.borrow_mut().insert(topic, queue_id, Rc::new(RefCell::new(cq)));
    }

    /// Replays `records` into their queues. Below `dispatched_before` (the checkpoint's dispatch
    /// point), a record whose queue offset lies below its queue's current end is already in the
    /// queue (the checkpoint named it there): skipped.
    async fn replay_records(&self, mut records: Vec<DispatchRecord>, replay_from: u64, dispatched_before: u64) -> Result<()> {
        self.inner.drop_fenced(&mut records);
        // Consistency: each record's QUEUEOFFSET must continue its queue exactly, unless records
        // of the queue were lost in a damaged range this replay found before it: those queue
        // offsets get lost entries (`CqEntry::lost`), so the offsets stay what clients were
        // told, and reads of the lost ones fail.
        let mut expected: HashMap<(Rc<str>, QueueId), u64> = HashMap::new();
        let mut replayed = Vec::with_capacity(records.len());
        for r in records {
            if let Some(qo) = r.queue_offset {
                let key = (r.topic.clone(), r.queue_id);
                let next = match expected.get(&key) {
                    Some(n) => *n,
                    None => self.queue(&r.topic, r.queue_id).map(|q| q.borrow().max_offset).unwrap_or(0),
                };
                if r.offset.0 < dispatched_before && qo < next {
                    continue;
                }
                let lost_in = self.inner.damaged.borrow().range(replay_from..r.offset.0).next_back().map(|(at, _)| *at);
                match lost_in {
                    Some(damage) if qo > next => {
                        tracing::error!(topic = %r.topic, queue_id = r.queue_id.0, first = next, last = qo - 1, log_offset = damage,
                            "records lost to commit-log damage: their queue offsets are kept, and reads of them are refused");
                        replayed.extend((next..qo).map(|lost| DispatchRecord {
                            topic: r.topic.clone(),
                            queue_id: r.queue_id,
                            queue_offset: Some(lost),
                            offset: CommitLogOffset(damage),
                            size: 0,
                            tags_code: 0,
                            store_timestamp_ms: r.store_timestamp_ms,
                            key_hashes: crate::commitlog::KeyHashes::new(),
                        }));
                    }
                    _ if qo != next => {
                        return Err(StoreError::Corruption {
                            offset: r.offset.0,
                            reason: format!("record for {}:{} has QUEUEOFFSET {qo}, queue continues at {next}", r.topic, r.queue_id),
                        });
                    }
                    _ => {}
                }
                expected.insert(key, qo + 1);
            }
            replayed.push(r);
        }
        dispatch_records(&self.inner, &replayed).await
    }

    /// Makes the log end at local offset `at`: removes every segment that starts at or past it,
    /// and zeroes the rest of the segment holding it up to `data_end` (where its bytes end; read
    /// from the file when not given), syncing both. Idempotent. Returns the bytes zeroed and the
    /// segments removed.
    pub(crate) async fn wipe_log_from(&self, at: u64, data_end: Option<u64>) -> Result<(u64, usize)> {
        let inner = &self.inner;
        let seg_size = inner.cfg.segment_size_bytes;
        let segs: Vec<Segment<S::File>> = inner.segments.borrow().clone();
        let doomed: Vec<&Segment<S::File>> = segs.iter().filter(|s| s.base >= at).collect();
        if !doomed.is_empty() {
            for s in &doomed {
                match inner.storage.remove_file(&s.path).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(StoreError::io(IoOp::Remove, &s.path, e)),
                    _ => {}
                }
            }
            inner.storage.sync_dir(&inner.log_dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, &inner.log_dir, e))?;
            inner.segments.borrow_mut().retain(|s| s.base < at);
            for s in &doomed {
                self.drop_client_range(s.base);
            }
            inner.stats.borrow_mut().segments_deleted += doomed.len() as u64;
        }
        let mut zeroed = 0;
        if !at.is_multiple_of(seg_size)
            && let Some(seg) = segs.iter().find(|s| s.base == at - at % seg_size)
        {
            let end = match data_end {
                Some(end) => end.min(seg.base + seg_size),
                None => commitlog::data_end(&mut SegmentReader::new(seg, seg_size), at).await?,
            };
            let mut pos = at;
            while pos < end {
                let len = (end - pos).min(1 << 20);
                seg.file.write_all_at(vec![0u8; len as usize], pos - seg.base).await.map_err(|e| StoreError::io(IoOp::Write, &seg.path, e))?;
                pos += len;
            }
            if end > at {
                seg.file.sync_data().await.map_err(|e| StoreError::io(IoOp::Fdatasync, &seg.path, e))?;
                zeroed = end - at;
            }
        }
        Ok((zeroed, doomed.len()))
    }

    /// Whether a batch after `pos` (in segment `i` or a later one) carries a valid commit marker
    /// written once everything before it was durable: then the bytes at `pos` had been synced,
    /// and bad bytes there are damage, not a torn tail. The marker's position if so.
    async fn durable_marker_after(&self, segs: &[Segment<S::File>], i: usize, pos: u64) -> Result<Option<u64>> {
        let seg_size = self.inner.cfg.segment_size_bytes;
        for (j, seg) in segs.iter().enumerate().skip(i) {
            let from = if j == i { pos } else { seg.base };
            let (found, _) = commitlog::find_durable_marker_after(&mut SegmentReader::new(seg, seg_size), from).await?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Cuts a torn tail at `pos` (the caller found nothing durable after it): zeroes segment
    /// `i` from `pos` to its last non-zero byte and removes later segments. Returns the bytes
    /// wiped.
    async fn cut_torn_tail(&self, segs: &[Segment<S::File>], i: usize, pos: u64) -> Result<u64> {
        let inner = &self.inner;
        let seg_size = inner.cfg.segment_size_bytes;
        let seg = segs.get(i).ok_or_else(|| StoreError::NotFound("segment".into()))?;
        let wipe_end = commitlog::data_end(&mut SegmentReader::new(seg, seg_size), pos).await?;
        let wiped = wipe_end.saturating_sub(pos);
        if wiped > 0 {
            let zeros = vec![0u8; wiped as usize];
            seg.file.write_all_at(zeros, pos - seg.base).await.map_err(|e| StoreError::io(IoOp::Write, &seg.path, e))?;
            seg.file.sync_data().await.map_err(|e| StoreError::io(IoOp::Fdatasync, &seg.path, e))?;
        }
        let later: Vec<Segment<S::File>> = segs.iter().skip(i + 1).cloned().collect();
        if !later.is_empty() {
            for s in &later {
                inner.storage.remove_file(&s.path).await.map_err(|e| StoreError::io(IoOp::Remove, &s.path, e))?;
            }
            inner.storage.sync_dir(&inner.log_dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, &inner.log_dir, e))?;
            inner.segments.borrow_mut().retain(|s| s.base <= seg.base);
            for s in &later {
                self.drop_client_range(s.base);
            }
        }
        Ok(wiped)
    }

    /// Records `[offset, end)` of `seg` as damaged (found at start): logged at ERROR with the
    /// file and position, and never served. A range that continues the previous one extends it.
    fn record_damage(&self, seg: &Segment<S::File>, offset: u64, end: u64, reason: String) {
        let mut damaged = self.inner.damaged.borrow_mut();
        if let Some((_, last)) = damaged.range_mut(..offset).next_back()
            && last.end == offset
            && last.path == seg.path
        {
            last.end = end;
            tracing::error!(file = %seg.path.display(), position = last.file_pos, bytes = end - last.offset,
                "commit log damaged (found at start): {} (the damage runs on: {reason}); reads of it will be refused", last.reason);
            return;
        }
        let range = DamagedRange { offset, end, path: seg.path.clone(), file_pos: offset - seg.base, reason, last_logged: Cell::new(None) };
        tracing::error!(
            file = %seg.path.display(),
            position = range.file_pos,
            bytes = end - offset,
            "commit log damaged (found at start): {}; reads of it will be refused",
            range.reason
        );
        damaged.insert(offset, range);
    }

    /// The end of a damaged range known to hold `offset`, if any.
    fn known_damage_end(&self, offset: u64) -> Option<u64> {
        self.inner.damaged.borrow().range(..=offset).next_back().map(|(_, d)| d.end).filter(|end| *end > offset)
    }
}

fn batch_full(cfg: &StoreConfig, max_msgs: u32, count: u32, bytes: u64, next_size: u32) -> bool {
    if count == 0 || bytes == 0 {
        return false;
    }
    count >= max_msgs
        || bytes + u64::from(next_size) > u64::from(cfg.max_transfer_bytes)
        || count >= cfg.max_transfer_count
}

/// Closes the open batch (its marker is reserved right after it). With `roll_segment_size`, the
/// next batch starts at the next segment and carries the filler position for this one.
fn close_open_batch(app: &mut AppendState, roll_segment_size: Option<u64>) {
    let closed = if app.open.buf.is_empty() {
        None
    } else {
        let b = std::mem::replace(&mut app.open, Batch::new(0, None));
        app.write_pos = b.start + b.buf.len() as u64 + MARKER_LEN as u64;
        Some(b)
    };
    let mut filler_at = None;
    if let Some(seg) = roll_segment_size {
        filler_at = Some(app.write_pos);
        app.write_pos = app.write_pos - app.write_pos % seg + seg;
    }
    app.open = match &closed {
        Some(b) => Batch::sized_like(app.write_pos, filler_at, b),
        None => Batch::new(app.write_pos, filler_at),
    };
    app.closed.extend(closed);
}

async fn read_checkpoint<S: Storage>(storage: &S, path: &Path) -> Result<Option<Checkpoint>> {
    if !storage.exists(path).await.map_err(|e| StoreError::io(IoOp::Stat, path, e))? {
        return Ok(None);
    }
    let f = storage.open(path, false).await.map_err(|e| StoreError::io(IoOp::Open, path, e))?;
    let len = f.len().await.map_err(|e| StoreError::io(IoOp::Stat, path, e))?;
    let b = f.read_at(len as usize, 0).await.map_err(|e| StoreError::io(IoOp::Read, path, e))?;
    Checkpoint::decode(&b, path).map(Some)
}

fn wake_all<S: Storage>(inner: &Inner<S>) {
    inner.flusher_wake.notify();
    inner.dispatcher_wake.notify();
    inner.checkpointer_wake.notify();
    inner.retention_wake.notify();
}

fn fail_all<S: Storage>(inner: &Inner<S>, why: String) {
    {
        let mut f = inner.failed.borrow_mut();
        if f.is_none() {
            *f = Some(why.clone());
        }
    }
    fail_ack_waiters(inner, &AckError::Failed(why.clone()));
    fail_dispatched_waiters(inner, &AckError::Failed(why.clone()));
    let removals: Vec<Removal> = inner.removals.borrow_mut().drain(..).collect();
    for r in removals {
        r.slot.complete(Err(AckError::Failed(why.clone())));
    }
    release_checkpoint_waiters(inner);
    wake_all(inner);
}

fn fail_ack_waiters<S: Storage>(inner: &Inner<S>, err: &AckError) {
    let (d, w) = {
        let mut app = inner.app.borrow_mut();
        (std::mem::take(&mut app.durable_waiters), std::mem::take(&mut app.written_waiters))
    };
    for x in d.into_iter().chain(w) {
        x.slot.complete(Err(err.clone()));
    }
}

fn fail_dispatched_waiters<S: Storage>(inner: &Inner<S>, err: &AckError) {
    let waiters: Vec<Waiter> = inner.dispatched_waiters.borrow_mut().drain(..).collect();
    for x in waiters {
        x.slot.complete(Err(err.clone()));
    }
}

/// `Err(Stalled)` while the flusher (or, with `or_dispatch`, the dispatcher) is stalled.
fn stalled<S: Storage>(inner: &Inner<S>, or_dispatch: bool) -> Result<()> {
    if let Some(st) = inner.flush_stall.borrow().as_ref() {
        return Err(StoreError::Stalled(st.why.clone()));
    }
    if or_dispatch && let Some(st) = inner.dispatch_stall.borrow().as_ref() {
        return Err(StoreError::Stalled(st.why.clone()));
    }
    Ok(())
}

/// Errors a background task retries instead of failing the log: a transient fault (descriptors
/// or space ran out) in anything but an fdatasync. A failed fdatasync is never retried: the
/// kernel may already have dropped the dirty pages it could not write, so what the page cache
/// shows can no longer be trusted to be on disk (the PostgreSQL "fsyncgate" lesson).
fn retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Io { op, .. } => e.is_transient() && !op.makes_durable(),
        StoreError::Stalled(_) => true,
        _ => false,
    }
}

/// Records one failed try of a stalled task and returns how long to wait before the next. The
/// first try of a stall refuses appends from then on and fails the waiters the stall blocks:
/// under a flush stall every unacknowledged append (its record may still be stored once the
/// fault clears: a producer that retries may store it twice, as after any timeout), under a
/// dispatch stall only the waiters for visibility (what is acknowledged is in the log).
fn note_stall<S: Storage>(inner: &Inner<S>, of: StallOf, e: &StoreError) -> Duration {
    let why = e.to_string();
    let cell = match of {
        StallOf::Flush => &inner.flush_stall,
        StallOf::Dispatch => &inner.dispatch_stall,
    };
    let task = if of == StallOf::Flush { "commit-log write" } else { "consume-queue/index write" };
    inner.stats.borrow_mut().transient_faults += 1;
    let retries = {
        let mut slot = cell.borrow_mut();
        match slot.as_mut() {
            Some(st) => {
                st.retries = st.retries.saturating_add(1);
                if st.last_logged.elapsed() >= STALL_LOG_EVERY {
                    st.last_logged = Instant::now();
                    tracing::warn!(error = %why, stalled_s = st.since.elapsed().as_secs(), retries = st.retries,
                        "{task} still failing with a transient error; appends stay refused, retrying");
                }
                st.why = why;
                st.retries
            }
            None => {
                tracing::warn!(error = %why, "{task} failed with a transient error; appends are refused until a retry succeeds");
                let now = Instant::now();
                *slot = Some(Stall { why: why.clone(), since: now, retries: 0, last_logged: now });
                drop(slot);
                inner.stats.borrow_mut().stalls += 1;
                let err = AckError::Stalled(why);
                if of == StallOf::Flush {
                    fail_ack_waiters(inner, &err);
                }
                fail_dispatched_waiters(inner, &err);
                0
            }
        }
    };
    STALL_RETRY_FIRST.saturating_mul(1u32 << retries.min(7)).min(STALL_RETRY_MAX)
}

/// Ends a stall after the try that succeeded.
fn clear_stall<S: Storage>(inner: &Inner<S>, of: StallOf) {
    let cell = match of {
        StallOf::Flush => &inner.flush_stall,
        StallOf::Dispatch => &inner.dispatch_stall,
    };
    if let Some(st) = cell.borrow_mut().take() {
        let task = if of == StallOf::Flush { "commit-log write" } else { "consume-queue/index write" };
        tracing::warn!(stalled_ms = st.since.elapsed().as_millis() as u64, retries = st.retries, last_error = %st.why,
            "{task} succeeded again; appends are accepted");
    }
}

async fn wait_durable<S: Storage>(inner: &Rc<Inner<S>>, end: u64) -> Result<()> {
    wait_flushed(inner, end, Flushed::Durable).await
}

/// Waits until the flusher has written the log up to `end` (not synced it).
async fn wait_written<S: Storage>(inner: &Rc<Inner<S>>, end: u64) -> Result<()> {
    wait_flushed(inner, end, Flushed::Written).await
}

/// How far a waiter needs the flusher to have taken the log.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flushed {
    Written,
    Durable,
}

async fn wait_flushed<S: Storage>(inner: &Rc<Inner<S>>, end: u64, to: Flushed) -> Result<()> {
    let slot = {
        if let Some(f) = inner.failed.borrow().as_ref() {
            return Err(StoreError::LogFailed(f.clone()));
        }
        let mut app = inner.app.borrow_mut();
        let app = &mut *app;
        let reached = match to {
            Flushed::Written => app.written,
            Flushed::Durable => app.durable,
        };
        if reached >= end {
            return Ok(());
        }
        stalled(inner, false)?;
        let waiters = match to {
            Flushed::Written => &mut app.written_waiters,
            Flushed::Durable => {
                app.sync_requested = true;
                &mut app.durable_waiters
            }
        };
        let slot = Rc::new(AckSlot::default());
        // Keep the queue sorted by end offset (`release` takes from the front).
        let at = waiters.iter().position(|w| w.end > end).unwrap_or(waiters.len());
        waiters.insert(at, Waiter { end, slot: slot.clone() });
        slot
    };
    inner.flusher_wake.notify();
    AckWait(slot).await.map_err(StoreError::from)
}

async fn wait_dispatched<S: Storage>(inner: &Rc<Inner<S>>, end: u64) -> Result<()> {
    let slot = {
        if let Some(f) = inner.failed.borrow().as_ref() {
            return Err(StoreError::LogFailed(f.clone()));
        }
        if inner.dispatched_offset.get() >= end {
            return Ok(());
        }
        stalled(inner, true)?;
        let slot = Rc::new(AckSlot::default());
        inner.dispatched_waiters.borrow_mut().push(Waiter { end, slot: slot.clone() });
        slot
    };
    inner.flusher_wake.notify();
    AckWait(slot).await.map_err(StoreError::from)
}

fn release(waiters: &mut VecDeque<Waiter>, upto: u64) -> Vec<Rc<AckSlot>> {
    let mut out = Vec::new();
    while waiters.front().is_some_and(|w| w.end <= upto) {
        if let Some(w) = waiters.pop_front() {
            out.push(w.slot);
        }
    }
    out
}

/// The flusher: the only commit-log writer. One flush in flight, by construction.
async fn flusher_task<S: Storage>(inner: Rc<Inner<S>>) {
    // A batch whose write met a transient fault: written again, at the same offset, before
    // anything else (appends are refused meanwhile, so nothing queues up behind it).
    let mut retry: Option<Batch> = None;
    loop {
        if inner.failed.borrow().is_some() {
            return;
        }
        let next = if retry.is_some() {
            retry.take()
        } else {
            let mut app = inner.app.borrow_mut();
            if let Some(b) = app.closed.pop_front() {
                Some(b)
            } else if !app.open.buf.is_empty() {
                let start = app.write_pos;
                let b = std::mem::replace(&mut app.open, Batch::new(0, None));
                app.write_pos = start + MARKER_LEN as u64;
                app.open = Batch::sized_like(app.write_pos, None, &b);
                Some(b)
            } else {
                None
            }
        };
        let r = match next {
            Some(mut b) => match flush_batch(&inner, &mut b).await {
                Err(e) if retryable(&e) => {
                    if inner.closing.get() {
                        // Shutting down mid-stall: the abort marker stays, recovery replays.
                        return;
                    }
                    let wait = note_stall(&inner, StallOf::Flush, &e);
                    retry = Some(b);
                    compio::time::sleep(wait).await;
                    continue;
                }
                r => {
                    if r.is_ok() {
                        clear_stall(&inner, StallOf::Flush);
                    }
                    r
                }
            },
            None => {
                let (need_sync, wait_for) = {
                    let app = inner.app.borrow();
                    let dirty = app.written > app.durable;
                    let elapsed = app.last_sync.elapsed();
                    let interval = Duration::from_millis(inner.cfg.flush_interval_ms);
                    if dirty && (app.sync_requested || elapsed >= interval) {
                        (true, None)
                    } else if dirty {
                        (false, Some(interval.saturating_sub(elapsed)))
                    } else {
                        (false, None)
                    }
                };
                if need_sync {
                    sync_log(&inner).await
                } else {
                    if inner.closing.get() {
                        return;
                    }
                    {
                        // Nothing dirty and a sync was requested: everything is durable already.
                        let mut app = inner.app.borrow_mut();
                        if app.written == app.durable {
                            app.sync_requested = false;
                            let upto = app.durable;
                            let slots = release(&mut app.durable_waiters, upto);
                            let visible = durable_batches(&mut app);
                            drop(app);
                            for b in visible {
                                push_dispatch(&inner, b.records, b.end);
                            }
                            for s in slots {
                                s.complete(Ok(()));
                            }
                        }
                    }
                    match wait_for {
                        Some(d) => {
                            let _ = compio::time::timeout(d, inner.flusher_wake.wait()).await;
                        }
                        None => inner.flusher_wake.wait().await,
                    }
                    Ok(())
                }
            }
        };
        if let Err(e) = r {
            tracing::error!(error = %e, "commit-log flush failed; the log refuses further appends");
            fail_all(&inner, e.to_string());
            return;
        }
    }
}

fn segment_of<S: Storage>(inner: &Inner<S>, offset: u64) -> Option<Segment<S::File>> {
    let base = offset - offset % inner.cfg.segment_size_bytes;
    inner.segments.borrow().iter().find(|s| s.base == base).cloned()
}

async fn flush_batch<S: Storage>(inner: &Rc<Inner<S>>, b: &mut Batch) -> Result<()> {
    let seg_size = inner.cfg.segment_size_bytes;
    {
        let mut st = inner.stats.borrow_mut();
        st.flushes_in_flight += 1;
        st.max_flushes_in_flight = st.max_flushes_in_flight.max(st.flushes_in_flight);
    }
    let r = flush_batch_inner(inner, b, seg_size).await;
    inner.stats.borrow_mut().flushes_in_flight -= 1;
    r
}

async fn flush_batch_inner<S: Storage>(inner: &Rc<Inner<S>>, b: &mut Batch, seg_size: u64) -> Result<()> {
    if let Some(f) = b.filler_at {
        // Close the previous segment durably before anything lands in the next one, so recovery
        // never sees data in segment k+1 after an unterminated segment k.
        if let Some(seg) = segment_of(inner, f) {
            let blank = commitlog::encode_blank(seg_size, f - seg.base);
            seg.file.write_all_at(blank.to_vec(), f - seg.base).await.map_err(|e| StoreError::io(IoOp::Write, &seg.path, e))?;
            seg.file.sync_data().await.map_err(|e| StoreError::io(IoOp::Fdatasync, &seg.path, e))?;
            let mut st = inner.stats.borrow_mut();
            st.log_writes += 1;
            st.log_syncs += 1;
        }
        let mut app = inner.app.borrow_mut();
        app.written = b.start;
        app.durable = b.start;
        drop(app);
        // Done: a retry of this batch does not write the filler again.
        b.filler_at = None;
    }
    let seg = match segment_of(inner, b.start) {
        Some(s) => s,
        None => {
            // A new segment takes a segment's worth of space at once: read the usage first.
            check_disk_usage(inner).await;
            let base = b.start - b.start % seg_size;
            let s = commitlog::create_segment(&inner.storage, &inner.log_dir, base, seg_size).await?;
            let mut segs = inner.segments.borrow_mut();
            segs.push(s.clone());
            segs.sort_by_key(|s| s.base);
            inner.stats.borrow_mut().segments_created += 1;
            s
        }
    };
    let (preceding_durable, prev_end) = {
        let app = inner.app.borrow();
        (app.durable == b.start, app.written)
    };
    assert_eq!(prev_end, b.start, "flush batches must be contiguous");
    if !b.sealed {
        let flags = if preceding_durable { MARKER_FLAG_PRECEDING_DURABLE } else { 0 };
        let marker = commitlog::encode_marker(b.start, flags, &b.buf);
        b.buf.extend_from_slice(&marker);
        b.sealed = true;
    }
    let len = b.buf.len() as u64;
    let end = b.start + len;
    // Written whole or not at all as far as the log is concerned: after a failed (possibly
    // partial) write the same bytes go to the same place again, and nothing past `written`
    // is read before they have.
    let (r, buf) = seg.file.write_all_at_keep(std::mem::take(&mut b.buf), b.start - seg.base).await;
    if let Err(e) = r {
        b.buf = buf;
        return Err(StoreError::io(IoOp::Write, &seg.path, e));
    }
    let since = inner.bytes_since_disk_check.get() + len;
    if since >= disk_check_every_bytes(seg_size) {
        check_disk_usage(inner).await;
    } else {
        inner.bytes_since_disk_check.set(since);
    }
    let written_slots = {
        let mut app = inner.app.borrow_mut();
        app.written = end;
        app.pending_bytes = app.pending_bytes.saturating_sub((len as usize).saturating_sub(MARKER_LEN));
        release(&mut app.written_waiters, end)
    };
    inner.stats.borrow_mut().log_writes += 1;
    for s in written_slots {
        s.complete(Ok(()));
    }
    let sync_now = {
        let app = inner.app.borrow();
        inner.cfg.flush_mode == FlushMode::Sync
            || app.sync_requested
            || (!inner.cfg.flush_timed && app.written - app.durable >= inner.cfg.flush_least_bytes)
            || app.last_sync.elapsed() >= Duration::from_millis(inner.cfg.flush_interval_ms)
    };
    let records = std::mem::take(&mut b.records);
    if inner.cfg.flush_mode == FlushMode::Async {
        // Visible once written (page cache), as in the Java broker.
        push_dispatch(inner, records, end);
        if sync_now {
            sync_log(inner).await?;
        }
    } else {
        // Visible only once durable: a consumer never sees what a crash could take back. When
        // more batches are ready to be written now, they are written first and share the
        // fdatasync (group commit; without it a replica, whose master's batches arrive one by
        // one, would pay one fdatasync per batch).
        let more_ready = {
            let mut app = inner.app.borrow_mut();
            app.awaiting_sync.push(DispatchBatch { records, end });
            !app.closed.is_empty()
        };
        if !more_ready {
            sync_log(inner).await?;
        }
    }
    Ok(())
}

/// The flusher's disk-usage reading (see [`crate::retention::refresh_disk_full`]); wakes the
/// retention task when usage is past `diskMaxUsedSpaceRatio`, so clean-up starts at once.
async fn check_disk_usage<S: Storage>(inner: &Rc<Inner<S>>) {
    inner.bytes_since_disk_check.set(0);
    match crate::retention::refresh_disk_full(inner).await {
        Ok(usage) => {
            if usage * 100.0 >= f64::from(inner.cfg.disk_max_used_space_ratio_pct) {
                inner.retention_wake.notify();
            }
        }
        Err(e) => tracing::debug!(error = %e, "disk usage reading failed; the retention task reads it again"),
    }
}

impl<S: Storage> Inner<S> {
    /// Whether the record of `topic` at local log offset `offset` belongs to a deleted
    /// incarnation of the topic (see [`Fence`]).
    pub(crate) fn fenced(&self, topic: &str, offset: u64) -> bool {
        let fences = self.fences.borrow();
        !fences.is_empty() && fences.get(topic).is_some_and(|f| offset < f.offset)
    }

    /// The fence of `topic`, 0 when it was never deleted (or its old records aged out).
    pub(crate) fn fence_of(&self, topic: &str) -> u64 {
        self.fences.borrow().get(topic).map_or(0, |f| f.offset)
    }

    /// Drops the records of deleted incarnations from a dispatch round.
    fn drop_fenced(&self, records: &mut Vec<DispatchRecord>) {
        if !self.fences.borrow().is_empty() {
            records.retain(|r| !self.fenced(&r.topic, r.offset.0));
        }
    }

    fn check_not_deleting(&self, topic: &str) -> Result<()> {
        let fences = self.fences.borrow();
        if !fences.is_empty() && fences.get(topic).is_some_and(|f| !f.durable) {
            return Err(StoreError::TopicDeleting(topic.to_owned()));
        }
        Ok(())
    }
}

fn push_dispatch<S: Storage>(inner: &Inner<S>, records: Vec<DispatchRecord>, end: u64) {
    inner.dispatch_queue.borrow_mut().push_back(DispatchBatch { records, end });
    inner.dispatcher_wake.notify();
}

/// fdatasync of the active segment, releasing durable waiters.
async fn sync_log<S: Storage>(inner: &Rc<Inner<S>>) -> Result<()> {
    let (target, durable_before) = {
        let mut app = inner.app.borrow_mut();
        app.sync_requested = false;
        (app.written, app.durable)
    };
    if target > durable_before {
        // Every earlier segment was synced when its filler was written, so only the segment
        // holding the unsynced bytes needs it.
        let seg = segment_of(inner, target - 1).ok_or_else(|| StoreError::NotFound("active segment".into()))?;
        let started = Instant::now();
        seg.file.sync_data().await.map_err(|e| StoreError::io(IoOp::Fdatasync, &seg.path, e))?;
        let took = started.elapsed();
        let mut st = inner.stats.borrow_mut();
        st.log_syncs += 1;
        st.synced_bytes += target - durable_before;
        let mut flush = inner.flush_stats.borrow_mut();
        flush.sync_bytes.record(target - durable_before);
        flush.sync_micros.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }
    let (slots, visible) = {
        let mut app = inner.app.borrow_mut();
        app.durable = app.durable.max(target);
        app.last_sync = Instant::now();
        let upto = app.durable;
        (release(&mut app.durable_waiters, upto), durable_batches(&mut app))
    };
    for b in visible {
        push_dispatch(inner, b.records, b.end);
    }
    for s in slots {
        s.complete(Ok(()));
    }
    Ok(())
}

/// The SYNC_FLUSH batches that are durable now, in log order, to be dispatched.
fn durable_batches(app: &mut AppendState) -> Vec<DispatchBatch> {
    let durable = app.durable;
    let ready = app.awaiting_sync.iter().take_while(|b| b.end <= durable).count();
    app.awaiting_sync.drain(..ready).collect()
}

/// The dispatcher: writes consume-queue and index entries for visible batches.
async fn dispatcher_task<S: Storage>(inner: Rc<Inner<S>>) {
    // Records whose dispatch met a transient fault, with their end: dispatched again first
    // (`dispatch_records` skips what the failed try already wrote).
    let mut retry: Option<(Vec<DispatchRecord>, u64)> = None;
    loop {
        // Deleted topics' queues first, between two rounds: no entry write is in progress.
        let removals: Vec<Removal> = inner.removals.borrow_mut().drain(..).collect();
        for r in removals {
            let result = remove_queue_files(&inner, &r).await;
            if let Err(e) = &result {
                tracing::error!(topic = %r.topic, error = %e, "removing a deleted topic's consume queues failed");
            }
            r.slot.complete(result.map_err(|e| AckError::Failed(e.to_string())));
        }
        // Unsynced consume-queue entries in memory are bounded: above the limit the
        // checkpointer is woken (its sweep is then thorough), above twice the limit no round
        // is dispatched until a checkpoint has run (appends meanwhile meet the dispatch-behind
        // limit). With a round's own entries, memory holds at most three times the limit plus
        // one flush batch's records.
        let limit = inner.cfg.cq_max_unsynced_entries;
        if inner.cq_unsynced_entries.get() > limit {
            inner.checkpointer_wake.notify();
            if inner.cq_unsynced_entries.get() > limit.saturating_mul(2) {
                if inner.closing.get() || inner.failed.borrow().is_some() {
                    return;
                }
                let slot = Rc::new(AckSlot::default());
                inner.checkpoint_waiters.borrow_mut().push(slot.clone());
                let _ = compio::time::timeout(Duration::from_millis(inner.cfg.checkpoint_interval_ms), AckWait(slot)).await;
                continue;
            }
        }
        let (records, end) = match retry.take() {
            Some(r) => r,
            None => {
                // Whole batches, as many as hold `limit` records (at least one): a round adds
                // at most that many entries to memory beyond the checks above.
                let batches: Vec<DispatchBatch> = {
                    let mut queue = inner.dispatch_queue.borrow_mut();
                    let mut taken = Vec::new();
                    let mut records = 0u64;
                    while records < limit
                        && let Some(b) = queue.pop_front()
                    {
                        records += b.records.len() as u64;
                        taken.push(b);
                    }
                    taken
                };
                if batches.is_empty() {
                    if !inner.removals.borrow().is_empty() {
                        continue;
                    }
                    if inner.closing.get() || inner.failed.borrow().is_some() {
                        return;
                    }
                    inner.dispatcher_wake.wait().await;
                    continue;
                }
                let end = batches.last().map(|b| b.end).unwrap_or(0);
                let mut records: Vec<DispatchRecord> = batches.into_iter().flat_map(|b| b.records).collect();
                inner.drop_fenced(&mut records);
                (records, end)
            }
        };
        match dispatch_records(&inner, &records).await {
            Ok(()) => clear_stall(&inner, StallOf::Dispatch),
            Err(e) if retryable(&e) => {
                if inner.closing.get() || inner.failed.borrow().is_some() {
                    return;
                }
                let wait = note_stall(&inner, StallOf::Dispatch, &e);
                retry = Some((records, end));
                compio::time::sleep(wait).await;
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "dispatch failed");
                fail_all(&inner, e.to_string());
                return;
            }
        }
        inner.dispatched_offset.set(end);
        note_replay_point(&inner, end);
        if let Some(ix) = inner.index.borrow_mut().as_mut() {
            ix.set_dispatched(end);
        }
        if let Some(listener) = inner.dispatch_listener.borrow().as_ref() {
            let mut queues: Vec<(&str, QueueId)> =
                records.iter().filter(|r| r.queue_offset.is_some()).map(|r| (&*r.topic, r.queue_id)).collect();
            queues.sort_unstable();
            queues.dedup();
            for (topic, queue_id) in queues {
                listener(topic, queue_id);
            }
        }
        let done: Vec<Rc<AckSlot>> = {
            let mut w = inner.dispatched_waiters.borrow_mut();
            let (ready, rest): (Vec<Waiter>, Vec<Waiter>) = w.drain(..).partition(|x| x.end <= end);
            *w = rest;
            ready.into_iter().map(|x| x.slot).collect()
        };
        for s in done {
            s.complete(Ok(()));
        }
    }
}

/// Replay points are kept one per this many bytes dispatched: the most a replay after a crash
/// scans beyond what the unsynced queues need.
pub(crate) const REPLAY_POINT_EVERY_BYTES: u64 = 1 << 20;

/// Records `at` (a dispatched point: where a batch starts or a segment's filler stands) as a
/// replay point when it is far enough past the last one.
pub(crate) fn note_replay_point<S: Storage>(inner: &Inner<S>, at: u64) {
    let mut points = inner.replay_points.borrow_mut();
    if points.back().is_none_or(|last| at >= last.saturating_add(REPLAY_POINT_EVERY_BYTES)) {
        points.push_back(at);
    }
}

/// How many of a dispatch round's most recently touched queues a run is matched against
/// before the store's queue table is searched (see [`dispatch_records`]).
const DISPATCH_RECENT_QUEUES: usize = 8;

/// Appends consume-queue entries to memory, a run of one queue's records at a time, writing a
/// queue's to its files once enough are unwritten, and index entries.
async fn dispatch_records<S: Storage>(inner: &Rc<Inner<S>>, records: &[DispatchRecord]) -> Result<()> {
    let mut touched: Vec<Rc<RefCell<ConsumeQueue>>> = Vec::new();
    let mut max_ts = inner.last_dispatched_ts.get();
    // The round is taken in runs of consecutive records of one queue (an append's records are
    // one run; a batch of 16 is 16 records of one run), in log order, which is each queue's
    // order. Grouping the whole round per queue in a map of vectors first cost a map lookup
    // and a name clone per record and a vector per queue (0.94 allocations per single send,
    // heaptrack 2026-12-08); a queue met in several runs simply gets several pushes.
    let mut entries: Vec<CqEntry> = Vec::new();
    let mut rest = records;
    while let Some(head) = rest.first() {
        let (topic, qid) = (&head.topic, head.queue_id);
        let run_len = rest.iter().take_while(|r| r.queue_id == qid && (Rc::ptr_eq(&r.topic, topic) || r.topic == *topic)).count();
        let (run, tail) = rest.split_at(run_len);
        rest = tail;
        entries.clear();
        let mut first = None;
        for r in run {
            max_ts = max_ts.max(r.store_timestamp_ms);
            let Some(qo) = r.queue_offset else { continue };
            let start = *first.get_or_insert(qo);
            assert_eq!(start + entries.len() as u64, qo, "queue offsets of one queue must be consecutive");
            entries.push(CqEntry { offset: r.offset.0, size: r.size, tags_code: r.tags_code });
        }
        let Some(mut first) = first else { continue };
        // A deletion while an earlier queue of this round was written: every record of the
        // round was appended before it, so the whole run is below the fence.
        if entries.first().is_some_and(|e| inner.fenced(topic, e.offset)) {
            continue;
        }
        // The queues of the round's last runs first: at 4 × 64 a round's single sends go to a
        // handful of queues, and looking each up in the store's table hashed its topic again.
        let recent = touched.iter().rev().take(DISPATCH_RECENT_QUEUES).find(|q| {
            let q = q.borrow();
            q.queue_id == qid && (Rc::ptr_eq(&q.topic, topic) || *q.topic == **topic)
        });
        let (q, seen) = match recent {
            Some(q) => (q.clone(), true),
            None => {
                let existing = inner.queues.borrow().get(topic, qid).cloned();
                let q = match existing {
                    Some(q) => q,
                    None => {
                        let cq = ConsumeQueue::starting_at(&inner.cq_root, topic.clone(), qid, inner.cfg.cq_entries_per_file, first);
                        let q = Rc::new(RefCell::new(cq));
                        inner.queues.borrow_mut().insert(topic.clone(), qid, q.clone());
                        q
                    }
                };
                (q, false)
            }
        };
        // A retry after a transient fault skips the entries the failed try appended.
        let appended = q.borrow().max_offset;
        let mut pushed: &[CqEntry] = &entries;
        if appended > first {
            let skip = ((appended - first) as usize).min(pushed.len());
            pushed = pushed.get(skip..).unwrap_or_default();
            first += skip as u64;
        }
        if !pushed.is_empty() {
            q.borrow_mut().push(first, pushed);
            inner.cq_unsynced_entries.set(inner.cq_unsynced_entries.get() + pushed.len() as u64);
        }
        // Written to the file once enough have gathered (a checkpoint writes the rest).
        let unwritten = q.borrow().unwritten();
        if unwritten > 0 && unwritten >= inner.cfg.cq_flush_least_entries {
            consume_queue::write_unwritten(&inner.cq_files, &q).await?;
        }
        if !seen {
            // (A queue met again past the recent ones is listed twice: published twice, harmless.)
            touched.push(q);
        }
    }
    let has_index = inner.index.borrow().is_some();
    if has_index {
        crate::index::dispatch(inner, records).await?;
    }
    inner.last_dispatched_ts.set(max_ts);
    // Publish the round: queue ends first, the caller then moves the dispatched offset, with no
    // await in between.
    for q in touched {
        let mut q = q.borrow_mut();
        q.dispatched_max = q.max_offset;
    }
    Ok(())
}

/// Removes a deleted topic's consume-queue files and directories (run by the dispatcher).
/// A file already gone (retention got there first) is fine.
async fn remove_queue_files<S: Storage>(inner: &Rc<Inner<S>>, r: &Removal) -> Result<()> {
    let storage = &inner.storage;
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    for q in &r.queues {
        // A checkpoint writing the queue's entries ends first; from here on nobody writes it.
        while q.borrow().writing {
            compio::time::sleep(Duration::from_millis(1)).await;
        }
        q.borrow_mut().writing = true;
        let (files, dir) = {
            let q = q.borrow();
            (q.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(), q.dir.clone())
        };
        for path in files {
            if let Err(e) = inner.cq_files.remove(&path).await
                && !gone(&e)
            {
                return Err(StoreError::io(IoOp::Remove, &path, e));
            }
        }
        q.borrow_mut().files.clear();
        if let Err(e) = storage.remove_dir(&dir).await
            && !gone(&e)
        {
            return Err(StoreError::io(IoOp::RemoveDir, &dir, e));
        }
    }
    // The topic's directory goes too when nothing else is in it; one directory sync makes the
    // whole removal durable (or, when the topic directory stays, one sync of it).
    let topic_dir = inner.cq_root.join(&r.topic);
    let empty = storage.list_dir(&topic_dir).await.map(|names| names.is_empty()).unwrap_or(false);
    let synced = if empty {
        if let Err(e) = storage.remove_dir(&topic_dir).await
            && !gone(&e)
        {
            return Err(StoreError::io(IoOp::RemoveDir, &topic_dir, e));
        }
        inner.cq_root.clone()
    } else {
        topic_dir
    };
    if storage.exists(&synced).await.unwrap_or(false) {
        storage.sync_dir(&synced).await.map_err(|e| StoreError::io(IoOp::SyncDir, &synced, e))?;
    }
    Ok(())
}

/// How often the retention task checks the clock and the disk (`10 s` in the Java broker).
pub const RETENTION_CHECK_INTERVAL_MS: u64 = 10_000;

/// The retention task: every [`RETENTION_CHECK_INTERVAL_MS`], one pass at the local hour.
async fn retention_task<S: Storage>(store: Store<S>) {
    let period = Duration::from_millis(RETENTION_CHECK_INTERVAL_MS);
    loop {
        let _ = compio::time::timeout(period, store.inner.retention_wake.wait()).await;
        if store.inner.closing.get() || store.inner.failed.borrow().is_some() {
            return;
        }
        let now = now_ms();
        if let Err(e) = store.run_retention(now, crate::retention::local_hour(now), false).await {
            tracing::warn!(error = %e, "retention pass failed");
        }
    }
}

/// The checkpointer task.
async fn checkpointer_task<S: Storage>(inner: Rc<Inner<S>>) {
    let period = Duration::from_millis(inner.cfg.checkpoint_interval_ms);
    let mut last_logged: Option<Instant> = None;
    loop {
        let _ = compio::time::timeout(period, inner.checkpointer_wake.wait()).await;
        if inner.closing.get() || inner.failed.borrow().is_some() {
            return;
        }
        match run_checkpoint(&inner, Sweep::Partial).await {
            Ok(()) => {
                if last_logged.take().is_some() {
                    tracing::warn!("checkpoint succeeded again");
                }
            }
            // The previous checkpoint stays valid (the new one is renamed into place only when
            // complete), so a transient fault costs a longer replay after a crash, nothing else:
            // the next period tries again.
            Err(e) if retryable(&e) => {
                inner.stats.borrow_mut().transient_faults += 1;
                if last_logged.is_none_or(|t| t.elapsed() >= STALL_LOG_EVERY) {
                    tracing::warn!(error = %e, "checkpoint failed with a transient error; retrying every checkpoint period");
                    last_logged = Some(Instant::now());
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "checkpoint failed");
                fail_all(&inner, e.to_string());
                return;
            }
        }
    }
}

/// Which consume queues a checkpoint syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// Those with at least `cq_flush_least_entries` unsynced entries (every queue when the
    /// thorough interval has passed or memory holds more than `cq_max_unsynced_entries`).
    Partial,
    /// Every queue.
    Thorough,
}

/// Consume-queue files a checkpoint writes or fdatasyncs at once once `close` has begun, at
/// most.
const CLOSE_FILES_IN_FLIGHT: usize = 32;

/// How many consume-queue files a checkpoint writes or fdatasyncs at once now.
/// - While the broker serves: one. With up to 32 in flight the 10,000-topic produce width fell
///   from 0.71 / 0.59 to 0.62 / 0.52 (bench/RESULTS.md, 2026-12-05 21:52), probably because
///   compio's blocking-pool threads then take CPU from the shards.
/// - Once `close` has begun, when nothing else runs: up to [`CLOSE_FILES_IN_FLIGHT`], at most an
///   eighth of the descriptor budget (each holds a descriptor the budget cannot close
///   meanwhile). A 10,000-topic broker took 46–60 s to stop after a 40-s window with one file
///   at a time, 22 s with this (bench/RESULTS.md, 2026-12-06).
fn files_in_flight<S: Storage>(inner: &Inner<S>) -> usize {
    if inner.close_begun.get() { (inner.cfg.max_open_cq_files / 8).clamp(1, CLOSE_FILES_IN_FLIGHT) } else { 1 }
}

/// Runs `job` over `items`, [`files_in_flight`] at a time, read again before each group: a
/// checkpoint in progress when `close` begins speeds up, since `close` waits for it. Every job
/// of a group runs to its end before the first error is returned: a job is never cancelled
/// (`consume_queue::write_unwritten` holds the queue's `writing` flag across its awaits).
async fn for_each_file<S: Storage, T, Fut>(inner: &Inner<S>, items: Vec<T>, job: impl Fn(T) -> Fut) -> Result<()>
where
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let group: Vec<Fut> = items.by_ref().take(files_in_flight(inner)).map(&job).collect();
        futures_util::future::join_all(group).await.into_iter().collect::<Result<()>>()?;
    }
    Ok(())
}

async fn run_checkpoint<S: Storage>(inner: &Rc<Inner<S>>, sweep: Sweep) -> Result<()> {
    if inner.checkpoint_busy.replace(true) {
        return Ok(());
    }
    let r = run_checkpoint_inner(inner, None, sweep).await;
    inner.checkpoint_busy.set(false);
    release_checkpoint_waiters(inner);
    r
}

/// Completes every [`Inner::checkpoint_waiters`] slot: when a checkpoint run ends, and when the
/// store fails or closes — the checkpointer then runs no more checkpoints, and a waiter left
/// behind (the dispatcher over its memory bound) would hold `abandon` or `close` for a whole
/// checkpoint period. Each waiter looks at the store's state again when woken.
pub(crate) fn release_checkpoint_waiters<S: Storage>(inner: &Inner<S>) {
    let waiters: Vec<Rc<AckSlot>> = inner.checkpoint_waiters.borrow_mut().drain(..).collect();
    for w in waiters {
        w.complete(Ok(()));
    }
}

/// A checkpoint of the state as of this call: a run already in progress may have taken its
/// snapshot before the caller's change, so wait for it to end, then run one.
pub(crate) async fn run_fresh_checkpoint<S: Storage>(inner: &Rc<Inner<S>>, sweep: Sweep) -> Result<()> {
    while inner.checkpoint_busy.get() {
        let slot = Rc::new(AckSlot::default());
        inner.checkpoint_waiters.borrow_mut().push(slot.clone());
        let _ = AckWait(slot).await;
    }
    run_checkpoint(inner, sweep).await
}

/// Writes a checkpoint of the current state; `truncate_log_at` is for a replica's truncation
/// only ([`Checkpoint::truncate_log_at`]), and makes the sweep thorough. The caller holds
/// `checkpoint_busy`.
pub(crate) async fn run_checkpoint_inner<S: Storage>(inner: &Rc<Inner<S>>, truncate_log_at: Option<u64>, sweep: Sweep) -> Result<()> {
    let cfg = &inner.cfg;
    let cq_files = &inner.cq_files;
    let thorough = sweep == Sweep::Thorough
        || truncate_log_at.is_some()
        || inner.last_thorough_checkpoint.get().elapsed() >= Duration::from_millis(cfg.cq_thorough_interval_ms)
        || inner.cq_unsynced_entries.get() > cfg.cq_max_unsynced_entries;
    let sweep_started = Instant::now();
    let least = cfg.cq_flush_least_entries;
    // Whether this checkpoint syncs the queue: it has unsynced entries, and either the sweep is
    // thorough or enough of them have gathered (`flushConsumeQueueLeastPages`).
    let syncs = |q: &ConsumeQueue| {
        let (d, s) = (q.dispatched_max, q.synced_offset);
        d > s && (thorough || d - s >= least)
    };
    // The entries named up to `dispatched_max`, at most those in the files.
    let named_end = |q: &ConsumeQueue| {
        if syncs(q) { q.dispatched_max.min(q.written_offset) } else { q.synced_offset.min(q.dispatched_max) }
    };
    // 0. Write the unwritten entries of the queues this checkpoint syncs (a queue whose write
    //    the dispatcher has in progress is named where its files end).
    let to_write: Vec<QueueRef> = inner
        .queues
        .borrow()
        .values()
        .filter(|q| {
            let q = q.borrow();
            syncs(&q) && q.written_offset < q.dispatched_max
        })
        .cloned()
        .collect();
    for_each_file(inner, to_write, |q| async move { consume_queue::write_unwritten(cq_files, &q).await.map(drop) }).await?;
    // 1. Snapshot the dispatched point and the queue ends that correspond to it. No await
    //    happens between the two reads, so they are consistent. A queue named below its
    //    dispatched end (left unsynced) moves the replay start down to its first unsynced
    //    entry's record.
    let dispatch_offset = inner.dispatched_offset.get();
    let last_ts = inner.last_dispatched_ts.get();
    let log_min = inner.log_min.get();
    let mut record_from = dispatch_offset;
    let mut queues = Vec::new();
    let mut to_sync = Vec::new();
    let mut synced_marks = Vec::new();
    for (_, qid, q) in inner.queues.borrow().iter() {
        let q_ref = q.borrow();
        let named = named_end(&q_ref);
        if named < q_ref.dispatched_max {
            // Always held (`unsynced` covers [synced_offset, max_offset)); replaying the whole
            // log is the safe answer were it not.
            let first_unsynced = q_ref.unsynced_entry(named).map_or(log_min, |e| e.offset);
            record_from = record_from.min(first_unsynced);
        }
        queues.push(QueueCheckpoint { topic: q_ref.topic.clone(), queue_id: qid, max_offset: named, min_offset: q_ref.min_offset.min(named) });
        if q_ref.synced_offset < named {
            to_sync.extend(q_ref.unsynced_files(named));
            synced_marks.push((q.clone(), named));
        }
    }
    // Where a scan can start: the last replay point at or below that record (none: the
    // oldest segment's base, where the log starts).
    let replay_from = if record_from < dispatch_offset {
        let points = inner.replay_points.borrow();
        let i = points.partition_point(|p| *p <= record_from);
        match i.checked_sub(1).and_then(|i| points.get(i)) {
            Some(p) => *p,
            None => inner.segments.borrow().first().map_or(log_min, |s| s.base.max(log_min)).min(dispatch_offset),
        }
    } else {
        dispatch_offset
    };
    let index_state = inner.index.borrow().as_ref().map(|ix| ix.snapshot());
    // Fences, taken in the same step as the queues (a deletion is one synchronous step too).
    // A fence the log minimum has passed guards nothing any more: its records are gone and
    // replay starts above it.
    let deleted_topics: Vec<(String, u64)> = {
        let mut fences = inner.fences.borrow_mut();
        fences.retain(|_, f| !(f.durable && f.offset <= log_min));
        fences.iter().map(|(t, f)| (t.clone(), f.offset)).collect()
    };
    // 2. Make those entries durable.
    for_each_file(inner, to_sync, |f| async move {
        // Removed meanwhile (its topic deleted, or retired): nothing of it to make durable.
        let Some(file) = cq_files.existing(&f.path).await? else { return Ok(()) };
        file.sync_data().await.map_err(|e| StoreError::io(IoOp::Fdatasync, &f.path, e))
    })
    .await?;
    for (q, mark) in synced_marks {
        let left_memory = q.borrow_mut().mark_synced(mark);
        inner.cq_unsynced_entries.set(inner.cq_unsynced_entries.get().saturating_sub(left_memory));
    }
    let (index_file, index_count) = match index_state {
        Some(s) => crate::index::persist(inner, s).await?,
        None => (String::new(), 0),
    };
    // 3. The log must be durable at least as far as what the queues point at.
    wait_durable(inner, dispatch_offset).await?;
    let log_durable_offset = inner.app.borrow().durable;
    // 4. Atomically replace the checkpoint file.
    let cp = Checkpoint {
        log_durable_offset,
        dispatch_offset,
        last_store_timestamp_ms: last_ts,
        log_min_offset: log_min,
        index_file,
        index_entry_count: index_count,
        queues,
        deleted_topics,
        truncate_log_at,
        replay_from: (replay_from < dispatch_offset).then_some(replay_from),
    };
    write_checkpoint(&inner.storage, &inner.checkpoint_path, &cp).await?;
    inner.durable_replay_from.set(replay_from);
    {
        // Later checkpoints replay from here or above: older points are of no use.
        let mut points = inner.replay_points.borrow_mut();
        let below = points.partition_point(|p| *p < replay_from);
        points.drain(..below);
        if points.is_empty() {
            points.push_back(replay_from);
        }
    }
    {
        let mut stats = inner.stats.borrow_mut();
        stats.checkpoints += 1;
        stats.checkpoint_replay_behind_bytes = dispatch_offset.saturating_sub(replay_from);
        if thorough {
            stats.thorough_checkpoints += 1;
        }
    }
    if thorough && replay_from == dispatch_offset {
        inner.last_thorough_checkpoint.set(sweep_started);
    }
    // The fences it names are durable: their topics take appends again.
    let mut fences = inner.fences.borrow_mut();
    for (topic, offset) in &cp.deleted_topics {
        if let Some(f) = fences.get_mut(topic)
            && f.offset == *offset
        {
            f.durable = true;
        }
    }
    Ok(())
}

async fn write_checkpoint<S: Storage>(storage: &S, path: &Path, cp: &Checkpoint) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = storage.remove_file(&tmp).await;
    let f = storage.open(&tmp, true).await.map_err(|e| StoreError::io(IoOp::Create, &tmp, e))?;
    f.write_all_at(cp.encode(), 0).await.map_err(|e| StoreError::io(IoOp::Write, &tmp, e))?;
    f.sync_data().await.map_err(|e| StoreError::io(IoOp::Fdatasync, &tmp, e))?;
    storage.rename(&tmp, path).await.map_err(|e| StoreError::io(IoOp::Rename, path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    storage.sync_dir(dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, dir, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatcher, over twice its memory bound, waits for a checkpoint. When the store fails
    /// before the checkpointer got to run one (it then stops), `abandon` must not wait for the
    /// dispatcher for a whole checkpoint period (an hour here): the failure releases the wait.
    /// Found by `model_crash` (seed 1796672655834887768).
    #[test]
    fn a_failure_releases_the_dispatcher_waiting_for_a_checkpoint() {
        crate::test_support::block_on(async {
            let mut cfg = StoreConfig::test_min("/store");
            cfg.checkpoint_interval_ms = 3_600_000;
            cfg.cq_max_unsynced_entries = 4;
            let (store, _) = Store::open(crate::io::mem::MemStorage::new(), cfg).await.unwrap();
            let inner = store.inner.clone();
            inner.cq_unsynced_entries.set(100);
            inner.dispatcher_wake.notify();
            // This task steps aside once: the dispatcher (queued first) parks on a checkpoint and
            // wakes the checkpointer, which is queued behind this task's next step.
            crate::io::yield_now().await;
            assert_eq!(inner.checkpoint_waiters.borrow().len(), 1, "the dispatcher waits for a checkpoint");
            assert!(!inner.checkpoint_busy.get(), "no checkpoint has started yet (else it would release the wait)");
            fail_all(&inner, "injected".into());
            let abandoned = compio::time::timeout(Duration::from_secs(10), store.abandon()).await;
            assert!(abandoned.is_ok(), "abandon waited for the dispatcher");
        });
    }

    /// Batches that swing between small and large grow only the first large one; a load that
    /// falls gives the room back within a few batches.
    #[test]
    fn a_batch_keeps_most_of_the_room_the_last_grew_to() {
        let mut previous = Batch::new(0, None);
        previous.buf.extend_from_slice(&[7u8; 3000]);
        previous.buf.extend_from_slice(&[7u8; 100]);
        let grown = previous.buf.capacity();
        assert!(grown >= 6000, "the buffer grew by doubling");
        // A small batch after it, then a large one again: the large one fits without growing.
        let mut small = Batch::sized_like(0, None, &previous);
        small.buf.extend_from_slice(&[7u8; 100]);
        let mut large = Batch::sized_like(0, None, &small);
        let room = large.buf.capacity();
        assert!(room >= grown / 2, "room {room} of {grown}");
        large.buf.extend_from_slice(&[7u8; 3000]);
        assert_eq!(large.buf.capacity(), room, "a large batch after a small one was reallocated");
        // Small batches from then on: the room falls to what they use.
        let mut batch = large;
        for _ in 0..40 {
            let mut next = Batch::sized_like(0, None, &batch);
            next.buf.extend_from_slice(&[7u8; 100]);
            batch = next;
        }
        assert_eq!(Batch::sized_like(0, None, &batch).buf.capacity(), 100 + MARKER_LEN);
        assert_eq!(room_like(10, 4), 10, "never less than what was used");
    }

    /// Under a steady load one batch is the size of the last: sealing it must not copy it.
    #[test]
    fn a_batch_like_the_last_takes_its_marker_without_growing() {
        let mut previous = Batch::new(0, None);
        previous.buf.extend_from_slice(&[7u8; 4000]);
        let mut next = Batch::sized_like(4000 + MARKER_LEN as u64, None, &previous);
        next.buf.extend_from_slice(&[7u8; 4000]);
        let capacity = next.buf.capacity();
        let marker = commitlog::encode_marker(next.start, 0, &next.buf);
        next.buf.extend_from_slice(&marker);
        assert_eq!(next.buf.capacity(), capacity, "the marker did not fit: the batch was reallocated");
    }
}
