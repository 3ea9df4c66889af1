//! The durable timer index behind 5.x timer messages (`TIMER_DELIVER_MS`, `TIMER_DELAY_SEC`,
//! `TIMER_DELAY_MS`): which message of the timer topic is due when. The messages themselves
//! live in the timer topic of the commit log (flushed and replicated as any message); this
//! index only says when each is due, and can always be rebuilt from that topic.
//!
//! # Design: a timing wheel over an append-only log (the Java broker's shape, with exact times)
//!
//! * **Log** (`log/<20-digit start position>`, segments of [`LOG_SEGMENT_BYTES`]): 32-byte
//!   entries `prev u64 | due_ms i64 | queue_offset u64 | magic u32 | crc32c u32`, appended
//!   only. `prev` links each entry to the previous entry of the same slot, so a slot is a list
//!   read backwards from its newest entry.
//! * **Wheel** (`wheel`): a ring of [`TimerGeometry::ring_slots`] slots of `precision_ms`
//!   each, covering twice the roll window. A slot is `time_ms i64 | first u64 | last u64 |
//!   count u32 | crc32c u32`; its time says which turn of the ring it holds. A message due
//!   further than the window ahead goes to the slot one window ahead and is *rolled*
//!   (re-appended further on, a 32-byte entry, the message itself is not rewritten) when that
//!   slot comes up.
//! * **Loading**: one slot ahead of the clock ([`TimerGeometry::precision_ms`] early), the
//!   next slot's list is read into a min-heap by due time, and each entry is handed out when
//!   its own due time comes — not at the slot boundary, so delivery is not early and not late
//!   by up to a slot as Java's is. The heap holds at most
//!   [`TimerGeometry::max_loaded_entries`]: a slot with more is loaded in parts, so memory is
//!   bounded whatever is pending (and entries of a slot beyond the first part may be late by up
//!   to one slot).
//! * **Checkpoint** (`checkpoint`, written tmp + fdatasync + rename + dir fsync after the log
//!   and the wheel are synced): the log's durable end, the slot time up to which every entry
//!   has been handed out and delivered, and the caller's position in the timer topic. Recovery
//!   cuts the log at the durable end, walks every live slot back to entries below it, and loads
//!   from the delivered point again: a message handed out after the last checkpoint is handed
//!   out again (at least once, as in Java).
//! * **Safety of reuse**: a slot of the ring is overwritten by a later turn only once every
//!   entry of its old turn has been handed out, and the caller delivers (appends, acknowledged
//!   by the flush mode) what it is handed before it enqueues or polls again: a recovery that
//!   finds a reused slot needs nothing of its old turn. (A recovery that finds the old turn
//!   still there hands its entries after the delivered point out again: at least once.)
//! * **Damage**: an entry whose CRC or magic fails, or a wheel slot whose CRC fails, is
//!   reported as [`StoreError::CorruptFile`]; the broker then rebuilds the index from the
//!   timer topic ([`TimerIndex::reset`]) — it never hands out a damaged entry.
//!
//! Memory: the ring (32 bytes a slot; 72 000 slots at 100 ms precision and a 1 h window), the
//! heap, one 64 KiB write buffer and one 64 KiB read block — none of it grows with the number
//! of pending messages.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};

use crate::error::{IoOp, Result, StoreError};
use crate::io::{Storage, StorageFile};

/// Bytes of one log entry.
pub const ENTRY_BYTES: u64 = 32;
/// Bytes of one wheel slot.
pub const SLOT_BYTES: u64 = 32;
/// Bytes of one log segment (2 097 152 entries).
pub const LOG_SEGMENT_BYTES: u64 = 64 << 20;
/// Log bytes buffered before a write.
const WRITE_BUFFER_BYTES: usize = 64 << 10;
/// Bytes of the read block (one block is cached).
const READ_BLOCK_BYTES: u64 = 64 << 10;
const ENTRY_MAGIC: u32 = 0x544D_4C47;
const CHECKPOINT_MAGIC: u32 = 0x464D_5154;
const CHECKPOINT_VERSION: u32 = 1;
const CHECKPOINT_BYTES: usize = 4 + 4 + 8 + 8 + 8 + 8 + 8 + 8 + 8 + 4;
const NO_POS: u64 = u64::MAX;
/// A slot's time when it holds nothing.
const EMPTY_SLOT: i64 = i64::MIN;

/// One pending message: when it is due and where it is in the timer topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerEntry {
    pub due_ms: i64,
    pub queue_offset: u64,
}

/// The shape of the wheel and its memory bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerGeometry {
    /// Width of a slot in ms (`timerPrecisionMs`).
    pub precision_ms: u64,
    /// How far ahead a message is placed directly; later ones are rolled. The ring covers
    /// twice this.
    pub window_ms: u64,
    /// Most entries held in memory for delivery at once (the heap's bound).
    pub max_loaded_entries: usize,
}

impl TimerGeometry {
    pub fn ring_slots(&self) -> u64 {
        (2 * self.window_ms).div_ceil(self.precision_ms.max(1)).max(4)
    }
}

/// What [`TimerIndex::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRecovery {
    /// Where the caller resumes reading the timer topic; `None` when there was no usable index
    /// (first start, a different geometry, damage): read it from its first message.
    pub enqueue_from: Option<u64>,
    /// Every entry due before this was delivered before the stop: when the index is rebuilt
    /// from the timer topic, such entries are skipped ([`TimerIndex::enqueue`] drops them).
    pub delivered_through_ms: i64,
    /// Why the index was rebuilt, if it was.
    pub rebuilt: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    time_ms: i64,
    first: u64,
    last: u64,
    count: u32,
}

impl Slot {
    const EMPTY: Slot = Slot { time_ms: EMPTY_SLOT, first: NO_POS, last: NO_POS, count: 0 };

    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        out.extend_from_slice(&self.first.to_be_bytes());
        out.extend_from_slice(&self.last.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(out.get(start..).unwrap_or_default());
        out.extend_from_slice(&crc.to_be_bytes());
    }

    /// `None` when the bytes are damaged; all zeros (never written) is an empty slot.
    fn decode(b: &[u8]) -> Option<Slot> {
        if b.iter().all(|x| *x == 0) {
            return Some(Slot::EMPTY);
        }
        let crc = be_u32(b, 28)?;
        if crc32c::crc32c(b.get(..28)?) != crc {
            return None;
        }
        Some(Slot { time_ms: be_u64(b, 0)? as i64, first: be_u64(b, 8)?, last: be_u64(b, 16)?, count: be_u32(b, 24)? })
    }
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A log entry as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LogEntry {
    prev: u64,
    entry: TimerEntry,
}

fn encode_entry(e: &LogEntry, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&e.prev.to_be_bytes());
    out.extend_from_slice(&e.entry.due_ms.to_be_bytes());
    out.extend_from_slice(&e.entry.queue_offset.to_be_bytes());
    out.extend_from_slice(&ENTRY_MAGIC.to_be_bytes());
    let crc = crc32c::crc32c(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&crc.to_be_bytes());
}

fn decode_entry(b: &[u8]) -> Option<LogEntry> {
    if be_u32(b, 24)? != ENTRY_MAGIC || crc32c::crc32c(b.get(..28)?) != be_u32(b, 28)? {
        return None;
    }
    Some(LogEntry { prev: be_u64(b, 0)?, entry: TimerEntry { due_ms: be_u64(b, 8)? as i64, queue_offset: be_u64(b, 16)? } })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checkpoint {
    precision_ms: u64,
    ring_slots: u64,
    delivered_through_ms: i64,
    log_end: u64,
    enqueued_offset: u64,
    /// The next slot to load, and where its walk stood ([`NO_POS`]: not begun): entries
    /// rolled out of slots walked before it are already further on in the log.
    cursor_ms: i64,
    resume: u64,
}

impl Checkpoint {
    fn encode(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(CHECKPOINT_BYTES);
        o.extend_from_slice(&CHECKPOINT_MAGIC.to_be_bytes());
        o.extend_from_slice(&CHECKPOINT_VERSION.to_be_bytes());
        o.extend_from_slice(&self.precision_ms.to_be_bytes());
        o.extend_from_slice(&self.ring_slots.to_be_bytes());
        o.extend_from_slice(&self.delivered_through_ms.to_be_bytes());
        o.extend_from_slice(&self.log_end.to_be_bytes());
        o.extend_from_slice(&self.enqueued_offset.to_be_bytes());
        o.extend_from_slice(&self.cursor_ms.to_be_bytes());
        o.extend_from_slice(&self.resume.to_be_bytes());
        let crc = crc32c::crc32c(&o);
        o.extend_from_slice(&crc.to_be_bytes());
        o
    }

    fn decode(b: &[u8]) -> std::result::Result<Checkpoint, String> {
        if b.len() != CHECKPOINT_BYTES {
            return Err(format!("{} bytes, expected {CHECKPOINT_BYTES}", b.len()));
        }
        let body = b.get(..CHECKPOINT_BYTES - 4).unwrap_or_default();
        if be_u32(b, CHECKPOINT_BYTES - 4) != Some(crc32c::crc32c(body)) {
            return Err("CRC mismatch".to_owned());
        }
        if be_u32(b, 0) != Some(CHECKPOINT_MAGIC) || be_u32(b, 4) != Some(CHECKPOINT_VERSION) {
            return Err("unknown magic or version".to_owned());
        }
        let at = |i| be_u64(b, i).unwrap_or_default();
        Ok(Checkpoint {
            precision_ms: at(8),
            ring_slots: at(16),
            delivered_through_ms: at(24) as i64,
            log_end: at(32),
            enqueued_offset: at(40),
            cursor_ms: at(48) as i64,
            resume: at(56),
        })
    }
}

/// The timer index of one broker (on the shard that owns the timer topic).
pub struct TimerIndex<S: Storage> {
    storage: S,
    dir: PathBuf,
    geometry: TimerGeometry,
    ring: Vec<Slot>,
    /// Slots changed since the last checkpoint (one flag per slot).
    dirty: Vec<bool>,
    dirty_count: usize,
    wheel: S::File,
    /// Open log segments by start position (the tail and the one last read).
    segments: Vec<(u64, S::File)>,
    /// Log position of `write_buf`'s first byte; the log ends at `buf_start + write_buf.len()`.
    buf_start: u64,
    write_buf: Vec<u8>,
    /// Log bytes below this are written (not necessarily synced).
    written_end: u64,
    /// Log bytes below this are durable (synced at the last checkpoint).
    synced_end: u64,
    /// The cached read block: its log position and bytes.
    block: Option<(u64, Vec<u8>)>,
    /// Start of the next slot to load.
    cursor_ms: i64,
    /// When the slot at `cursor_ms` is loaded in parts: where its walk resumes.
    resume: Option<u64>,
    heap: BinaryHeap<Reverse<TimerEntry>>,
    /// Entries due in a loaded slot that found the heap full went to the next slot to load
    /// (at most two slots): (that slot, the earliest such due time). The delivered point stays
    /// before them until their slot is loaded.
    late: Vec<(i64, i64)>,
    /// An entry due before `skip_before_ms` whose timer-topic offset is below
    /// `skip_offsets_below` was delivered before the last stop ([`TimerIndex::skips`]).
    skip_before_ms: i64,
    skip_offsets_below: u64,
    /// From the last checkpoint before this open: slots before `walked_below_ms` (and entries
    /// of that slot newer than `walked_resume`) had been walked, their rolled entries appended
    /// further on; a recovery that walks them again does not roll those entries twice.
    walked_below_ms: i64,
    walked_resume: u64,
    /// The delivered point in the last durable checkpoint.
    checkpointed_through_ms: i64,
    /// The caller's position in the timer topic, as given to the last checkpoint.
    enqueued_offset: u64,
    /// Entries appended since the index opened (rolls included), for the broker's counters.
    pub appended_entries: u64,
}

impl<S: Storage> TimerIndex<S> {
    /// Opens (or creates) the index in `dir`, recovering it to its last checkpoint. An index
    /// that cannot be used (none yet, another geometry, a damaged checkpoint or wheel) is wiped
    /// and reported in [`TimerRecovery::rebuilt`]: the caller then re-reads the timer topic.
    pub async fn open(storage: S, dir: &Path, geometry: TimerGeometry, now_ms: i64) -> Result<(TimerIndex<S>, TimerRecovery)> {
        let log_dir = dir.join("log");
        storage.create_dir_all(&log_dir).await.map_err(|e| StoreError::io(IoOp::Mkdir, &log_dir, e))?;
        let wheel_path = dir.join("wheel");
        let wheel = storage.open(&wheel_path, true).await.map_err(|e| StoreError::io(IoOp::Open, &wheel_path, e))?;
        let slots = geometry.ring_slots();
        let mut index = TimerIndex {
            storage,
            dir: dir.to_path_buf(),
            geometry,
            ring: vec![Slot::EMPTY; slots as usize],
            dirty: vec![false; slots as usize],
            dirty_count: 0,
            wheel,
            segments: Vec::new(),
            buf_start: 0,
            write_buf: Vec::with_capacity(WRITE_BUFFER_BYTES),
            written_end: 0,
            synced_end: 0,
            block: None,
            cursor_ms: 0,
            resume: None,
            heap: BinaryHeap::new(),
            late: Vec::new(),
            skip_before_ms: i64::MIN,
            skip_offsets_below: 0,
            walked_below_ms: i64::MIN,
            walked_resume: NO_POS,
            checkpointed_through_ms: i64::MIN,
            enqueued_offset: 0,
            appended_entries: 0,
        };
        let checkpoint_path = dir.join("checkpoint");
        let prior = match index.storage.exists(&checkpoint_path).await.map_err(|e| StoreError::io(IoOp::Stat, &checkpoint_path, e))? {
            false => Err("no checkpoint (first start of the timer)".to_owned()),
            true => {
                let file = index.storage.open(&checkpoint_path, false).await.map_err(|e| StoreError::io(IoOp::Open, &checkpoint_path, e))?;
                let bytes = file.read_at(CHECKPOINT_BYTES + 1, 0).await.map_err(|e| StoreError::io(IoOp::Read, &checkpoint_path, e))?;
                Checkpoint::decode(&bytes).map_err(|why| format!("checkpoint {}: {why}", checkpoint_path.display()))
            }
        };
        let usable = prior.clone().and_then(|c| {
            if c.precision_ms == geometry.precision_ms && c.ring_slots == slots {
                Ok(c)
            } else {
                Err(format!(
                    "the index was built with {} ms slots and {} slots, the configuration asks for {} ms and {slots}",
                    c.precision_ms, c.ring_slots, geometry.precision_ms
                ))
            }
        });
        let outcome = match usable {
            Ok(c) => index.recover(c).await.map(|()| c),
            Err(why) => Err(why),
        };
        match outcome {
            Ok(c) => Ok((index, TimerRecovery { enqueue_from: Some(c.enqueued_offset), delivered_through_ms: c.delivered_through_ms, rebuilt: None })),
            Err(why) => {
                // The old checkpoint's delivered point still holds for the entries it had
                // indexed when only the index itself is unusable.
                let (delivered, indexed_below) = prior.map_or((i64::MIN, 0), |c| (c.delivered_through_ms, c.enqueued_offset));
                index.reset(delivered, indexed_below, now_ms).await?;
                Ok((index, TimerRecovery { enqueue_from: None, delivered_through_ms: delivered, rebuilt: Some(why) }))
            }
        }
    }

    /// Wipes the index (log, wheel, checkpoint) to be rebuilt from the timer topic: entries of
    /// the topic below `indexed_below` that are due before `delivered_through_ms` were
    /// delivered and will be dropped. Loading starts at the slot of `delivered_through_ms`, or
    /// of `now_ms` when nothing is known.
    pub async fn reset(&mut self, delivered_through_ms: i64, indexed_below: u64, now_ms: i64) -> Result<()> {
        let log_dir = self.dir.join("log");
        self.segments.clear();
        self.block = None;
        for name in self.storage.list_dir(&log_dir).await.map_err(|e| StoreError::io(IoOp::List, &log_dir, e))? {
            let path = log_dir.join(&name);
            self.storage.remove_file(&path).await.map_err(|e| StoreError::io(IoOp::Remove, &path, e))?;
        }
        self.storage.sync_dir(&log_dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, &log_dir, e))?;
        self.ring.fill(Slot::EMPTY);
        self.dirty.fill(true);
        self.dirty_count = self.dirty.len();
        let wheel_path = self.dir.join("wheel");
        self.wheel.set_len(0).await.map_err(|e| StoreError::io(IoOp::Truncate, &wheel_path, e))?;
        self.buf_start = 0;
        self.write_buf.clear();
        self.written_end = 0;
        self.synced_end = 0;
        self.heap.clear();
        self.late.clear();
        self.resume = None;
        let start = if delivered_through_ms == i64::MIN { now_ms } else { delivered_through_ms };
        self.cursor_ms = self.slot_floor(start);
        self.skip_before_ms = delivered_through_ms;
        self.skip_offsets_below = indexed_below;
        self.checkpointed_through_ms = self.cursor_ms;
        self.enqueued_offset = 0;
        // The rebuilt index starts from an empty, durable state.
        self.checkpoint(0).await
    }

    async fn recover(&mut self, c: Checkpoint) -> std::result::Result<(), String> {
        let wheel_path = self.dir.join("wheel");
        let bytes = self.wheel.read_at(self.ring.len() * SLOT_BYTES as usize, 0).await.map_err(|e| format!("cannot read {}: {e}", wheel_path.display()))?;
        for (i, slot) in self.ring.iter_mut().enumerate() {
            let at = i * SLOT_BYTES as usize;
            *slot = match bytes.get(at..at + SLOT_BYTES as usize) {
                // Never written (the file is shorter): empty.
                None => Slot::EMPTY,
                Some(b) => Slot::decode(b).ok_or_else(|| format!("{}: slot {i} is damaged (CRC mismatch)", wheel_path.display()))?,
            };
        }
        // Cut the log at its durable end: later entries are re-created by re-reading the timer
        // topic from the checkpointed position and re-loading from the delivered point.
        let log_dir = self.dir.join("log");
        let names = self.storage.list_dir(&log_dir).await.map_err(|e| format!("cannot list {}: {e}", log_dir.display()))?;
        for name in names {
            let Ok(start) = name.parse::<u64>() else { continue };
            let path = log_dir.join(&name);
            if start >= c.log_end {
                self.storage.remove_file(&path).await.map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
            } else if start + LOG_SEGMENT_BYTES > c.log_end {
                let file = self.storage.open(&path, false).await.map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                file.set_len(c.log_end - start).await.map_err(|e| format!("cannot truncate {}: {e}", path.display()))?;
            }
        }
        self.buf_start = c.log_end;
        self.written_end = c.log_end;
        self.synced_end = c.log_end;
        self.cursor_ms = self.slot_floor(c.delivered_through_ms);
        self.checkpointed_through_ms = c.delivered_through_ms;
        self.skip_before_ms = c.delivered_through_ms;
        self.skip_offsets_below = c.enqueued_offset;
        self.walked_below_ms = c.cursor_ms;
        self.walked_resume = c.resume;
        self.enqueued_offset = c.enqueued_offset;
        // Walk every live slot back to its entries below the durable end.
        for i in 0..self.ring.len() {
            let Some(slot) = self.ring.get(i).copied() else { continue };
            if slot.time_ms == EMPTY_SLOT || slot.time_ms < self.cursor_ms || slot.last == NO_POS || slot.last < c.log_end {
                continue;
            }
            let mut pos = slot.last;
            let mut kept = Slot { time_ms: slot.time_ms, first: NO_POS, last: NO_POS, count: 0 };
            while pos != NO_POS {
                let e = self.read_entry(pos).await.map_err(|e| e.to_string())?;
                if pos < c.log_end {
                    if kept.last == NO_POS {
                        kept.last = pos;
                    }
                    kept.first = pos;
                    kept.count += 1;
                }
                pos = e.prev;
            }
            let kept = if kept.last == NO_POS { Slot::EMPTY } else { kept };
            self.set_slot(i, kept);
        }
        Ok(())
    }

    pub fn geometry(&self) -> TimerGeometry {
        self.geometry
    }

    /// Entries loaded and waiting for their due time.
    pub fn loaded(&self) -> usize {
        self.heap.len()
    }

    /// Whether another entry fits the heap.
    pub fn has_room(&self) -> bool {
        self.heap.len() < self.geometry.max_loaded_entries
    }

    /// The caller's timer-topic position recorded by the last checkpoint.
    pub fn enqueued_offset(&self) -> u64 {
        self.enqueued_offset
    }

    fn slot_floor(&self, ms: i64) -> i64 {
        let p = self.geometry.precision_ms.max(1) as i64;
        ms.div_euclid(p) * p
    }

    fn ring_index(&self, slot_ms: i64) -> usize {
        let p = self.geometry.precision_ms.max(1) as i64;
        slot_ms.div_euclid(p).rem_euclid(self.ring.len() as i64) as usize
    }

    fn set_slot(&mut self, i: usize, slot: Slot) {
        if let Some(s) = self.ring.get_mut(i) {
            *s = slot;
        }
        if let Some(d) = self.dirty.get_mut(i)
            && !*d
        {
            *d = true;
            self.dirty_count += 1;
        }
    }

    /// Every entry due before this was handed out (and, per the caller's contract, delivered).
    pub fn delivered_through_ms(&self) -> i64 {
        let loaded_min = self.heap.peek().map_or(i64::MAX, |Reverse(e)| e.due_ms);
        let late_min = self.late.iter().map(|(_, due)| *due).min().unwrap_or(i64::MAX);
        self.cursor_ms.min(loaded_min).min(late_min)
    }

    /// Whether `entry` was delivered before the last stop: due before the checkpointed
    /// delivered point, and indexed then (its timer-topic offset below the checkpointed one; an
    /// entry read from the topic after that checkpoint may not have been delivered).
    fn skips(&self, entry: &TimerEntry) -> bool {
        entry.due_ms < self.skip_before_ms && entry.queue_offset < self.skip_offsets_below
    }

    /// Takes `entry`: into its slot (or the slot one window ahead, to be rolled). When its slot
    /// is already loaded it goes into the heap too, and into the newest loaded slot's list (so
    /// that a crash before its delivery finds it); with the heap full it goes into the next slot
    /// to load instead (late by up to two slots, never lost, never early). Entries delivered
    /// before the last stop are dropped ([`TimerIndex::skips`]).
    ///
    /// `Ok(false)`: not taken now, because the ring slot it needs still holds an earlier turn
    /// with an entry not yet handed out; hand out what is due ([`TimerIndex::poll_due`]),
    /// deliver it, and offer it again.
    pub async fn enqueue(&mut self, entry: TimerEntry) -> Result<bool> {
        if self.skips(&entry) {
            return Ok(true);
        }
        let p = self.geometry.precision_ms as i64;
        let slot_ms = self.slot_floor(entry.due_ms);
        let loading = slot_ms < self.cursor_ms || (slot_ms == self.cursor_ms && self.resume.is_some());
        if loading {
            if self.has_room() {
                // Kept in the newest slot already walked (the one loading in parts, else the one
                // before the cursor), which a recovery loads again.
                let keep_in = if self.resume.is_some() { self.cursor_ms } else { self.cursor_ms - p };
                if !self.append_to_slot(keep_in, entry).await? {
                    return Ok(false);
                }
                self.heap.push(Reverse(entry));
            } else {
                // The first slot whose walk has not begun; the delivered point stays before the
                // entry until that slot is loaded.
                let next = if self.resume.is_some() { self.cursor_ms + p } else { self.cursor_ms };
                if !self.append_to_slot(next, entry).await? {
                    return Ok(false);
                }
                match self.late.iter_mut().find(|(slot, _)| *slot == next) {
                    Some((_, min_due)) => *min_due = (*min_due).min(entry.due_ms),
                    None => self.late.push((next, entry.due_ms)),
                }
            }
            return Ok(true);
        }
        let horizon = self.slot_floor(self.cursor_ms + self.geometry.window_ms as i64);
        self.append_to_slot(slot_ms.min(horizon), entry).await
    }

    /// Appends `entry` to the list of the slot at `slot_ms`; `Ok(false)` when that ring slot
    /// still holds an earlier turn not all handed out (see [`TimerIndex::enqueue`]).
    async fn append_to_slot(&mut self, slot_ms: i64, entry: TimerEntry) -> Result<bool> {
        let i = self.ring_index(slot_ms);
        let mut slot = self.ring.get(i).copied().unwrap_or(Slot::EMPTY);
        if slot.time_ms != slot_ms {
            // Reusing the ring slot for a later turn: only once every entry of its old turn has
            // been handed out (the caller delivers what it is handed before it enqueues or polls
            // again). An entry still loaded and due before the old turn's end may be one of
            // them; it is handed out at the next poll.
            let loaded_min = self.heap.peek().map_or(i64::MAX, |Reverse(e)| e.due_ms);
            if slot.time_ms != EMPTY_SLOT && (slot.time_ms >= self.cursor_ms || slot.time_ms + self.geometry.precision_ms as i64 > loaded_min) {
                return Ok(false);
            }
            slot = Slot { time_ms: slot_ms, first: NO_POS, last: NO_POS, count: 0 };
        }
        // A full buffer is written out before the entry joins it: a failed write leaves the
        // index as it was (the entry not taken), never with a gap under later positions.
        if self.write_buf.len() >= WRITE_BUFFER_BYTES {
            self.write_out().await?;
        }
        let pos = self.buf_start + self.write_buf.len() as u64;
        encode_entry(&LogEntry { prev: slot.last, entry }, &mut self.write_buf);
        self.appended_entries += 1;
        if slot.first == NO_POS {
            slot.first = pos;
        }
        slot.last = pos;
        slot.count = slot.count.saturating_add(1);
        self.set_slot(i, slot);
        Ok(true)
    }

    /// Hands out up to `max` entries due at `now_ms`, earliest first, loading slots up to one
    /// slot ahead of the clock. The caller delivers them before its next checkpoint; one it
    /// cannot deliver goes back with [`TimerIndex::put_back`].
    pub async fn poll_due(&mut self, now_ms: i64, max: usize) -> Result<Vec<TimerEntry>> {
        let lead = self.geometry.precision_ms as i64;
        while self.has_room() && self.cursor_ms <= now_ms + lead {
            self.skip_empty_gap(now_ms);
            self.load_cursor_slot().await?;
            if self.resume.is_some() {
                break;
            }
        }
        let mut due = Vec::new();
        while due.len() < max {
            match self.heap.peek() {
                Some(Reverse(e)) if e.due_ms <= now_ms => {
                    due.push(*e);
                    self.heap.pop();
                }
                _ => break,
            }
        }
        Ok(due)
    }

    /// After a long stop the cursor may trail the clock by more than the ring spans: every slot
    /// between it and the first slot still holding entries is empty, so the cursor jumps there
    /// (or to the clock) instead of stepping through each one.
    fn skip_empty_gap(&mut self, now_ms: i64) {
        let span = self.ring.len() as i64 * self.geometry.precision_ms as i64;
        if self.resume.is_some() || self.cursor_ms.saturating_add(span) >= now_ms {
            return;
        }
        let next_live = self.ring.iter().filter(|s| s.time_ms != EMPTY_SLOT && s.time_ms >= self.cursor_ms).map(|s| s.time_ms).min();
        let now_slot = self.slot_floor(now_ms);
        self.cursor_ms = next_live.map_or(now_slot, |t| t.min(now_slot)).max(self.cursor_ms);
    }

    /// Returns entries [`TimerIndex::poll_due`] handed out that could not be delivered.
    pub fn put_back(&mut self, entries: impl IntoIterator<Item = TimerEntry>) {
        self.heap.extend(entries.into_iter().map(Reverse));
    }

    /// When the caller should call [`TimerIndex::poll_due`] next: the earliest loaded due
    /// time, or the next slot's load time.
    pub fn next_wake_ms(&self) -> i64 {
        let next_load = if self.has_room() { self.cursor_ms - self.geometry.precision_ms as i64 } else { i64::MAX };
        let loaded = self.heap.peek().map_or(i64::MAX, |Reverse(e)| e.due_ms);
        next_load.min(loaded)
    }

    /// Loads (part of) the slot at the cursor into the heap; rolled entries due beyond the
    /// slot are appended further on. Advances the cursor once the whole list is walked.
    async fn load_cursor_slot(&mut self) -> Result<()> {
        let slot_ms = self.cursor_ms;
        let p = self.geometry.precision_ms as i64;
        let i = self.ring_index(slot_ms);
        let slot = self.ring.get(i).copied().unwrap_or(Slot::EMPTY);
        let mut pos = match self.resume {
            Some(pos) => pos,
            None if slot.time_ms == slot_ms => slot.last,
            None => NO_POS,
        };
        while pos != NO_POS {
            if !self.has_room() {
                self.resume = Some(pos);
                return Ok(());
            }
            // A failed read or roll leaves the walk to resume at this entry: what was loaded
            // before it is not loaded twice.
            self.resume = Some(pos);
            let e = self.read_entry(pos).await?;
            let entry = e.entry;
            if self.skips(&entry) {
                pos = e.prev;
                continue;
            }
            let rolled_before = slot_ms < self.walked_below_ms || (slot_ms == self.walked_below_ms && self.walked_resume != NO_POS && pos > self.walked_resume);
            if entry.due_ms >= slot_ms + p && rolled_before {
                // Rolled before the crash: the log below its checkpointed end has it further on.
                pos = e.prev;
                continue;
            }
            if entry.due_ms >= slot_ms + p {
                // Rolled: placed here because it was more than a window ahead.
                let horizon = self.slot_floor(slot_ms + self.geometry.window_ms as i64);
                let target = self.slot_floor(entry.due_ms).min(horizon).max(slot_ms + p);
                if !self.append_to_slot(target, entry).await? {
                    // Its slot still holds an earlier turn: go on from this entry once that
                    // turn is handed out.
                    return Ok(());
                }
            } else {
                self.heap.push(Reverse(entry));
            }
            pos = e.prev;
        }
        self.resume = None;
        self.late.retain(|(slot, _)| *slot != slot_ms);
        self.cursor_ms = slot_ms + p;
        Ok(())
    }

    async fn segment(&mut self, start: u64, create: bool) -> Result<S::File> {
        if let Some((_, f)) = self.segments.iter().find(|(s, _)| *s == start) {
            return Ok(f.clone());
        }
        let path = self.dir.join("log").join(format!("{start:020}"));
        let file = self.storage.open(&path, create).await.map_err(|e| StoreError::io(IoOp::Open, &path, e))?;
        if create {
            let dir = self.dir.join("log");
            self.storage.sync_dir(&dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, &dir, e))?;
        }
        // Keep the tail's handle and the last read one.
        if self.segments.len() >= 2 {
            let tail = self.written_end / LOG_SEGMENT_BYTES * LOG_SEGMENT_BYTES;
            self.segments.retain(|(s, _)| *s == tail);
        }
        self.segments.push((start, file.clone()));
        Ok(file)
    }

    /// Writes the buffered entries to their segments (not synced).
    async fn write_out(&mut self) -> Result<()> {
        while !self.write_buf.is_empty() {
            let seg = self.buf_start / LOG_SEGMENT_BYTES * LOG_SEGMENT_BYTES;
            let room = (seg + LOG_SEGMENT_BYTES - self.buf_start) as usize;
            let n = room.min(self.write_buf.len());
            let file = self.segment(seg, true).await?;
            // Copied, not drained: after a failed (possibly torn) write the same bytes are
            // written again at the same place.
            let chunk = self.write_buf.get(..n).unwrap_or_default().to_vec();
            let path = self.dir.join("log");
            file.write_all_at(chunk, self.buf_start - seg).await.map_err(|e| StoreError::io(IoOp::Write, &path, e))?;
            self.write_buf.drain(..n);
            self.buf_start += n as u64;
            self.written_end = self.buf_start;
        }
        Ok(())
    }

    async fn read_entry(&mut self, pos: u64) -> Result<LogEntry> {
        let log_dir = self.dir.join("log");
        let damaged = |why: &str| StoreError::CorruptFile { what: "timer log", path: log_dir.clone(), reason: format!("entry at {pos}: {why}") };
        let bytes: Vec<u8> = if pos >= self.buf_start {
            let at = (pos - self.buf_start) as usize;
            self.write_buf.get(at..at + ENTRY_BYTES as usize).ok_or_else(|| damaged("past the end of the log"))?.to_vec()
        } else {
            let cached = self.block.as_ref().is_some_and(|(start, b)| pos >= *start && pos + ENTRY_BYTES <= *start + b.len() as u64);
            if !cached {
                let seg = pos / LOG_SEGMENT_BYTES * LOG_SEGMENT_BYTES;
                let block_start = pos / READ_BLOCK_BYTES * READ_BLOCK_BYTES;
                let file = self.segment(seg, false).await?;
                let len = READ_BLOCK_BYTES.min(self.written_end - block_start) as usize;
                let read = file.read_at(len, block_start - seg).await.map_err(|e| StoreError::io(IoOp::Read, &log_dir, e))?;
                self.block = Some((block_start, read));
            }
            let (start, block) = self.block.as_ref().ok_or_else(|| damaged("unreadable"))?;
            let at = (pos - start) as usize;
            block.get(at..at + ENTRY_BYTES as usize).ok_or_else(|| damaged("short read"))?.to_vec()
        };
        decode_entry(&bytes).ok_or_else(|| damaged("CRC or magic mismatch"))
    }

    /// Makes the index durable up to now: the log and the wheel synced, then the checkpoint
    /// (delivered point, log end, `enqueued_offset`) written and renamed in. Log segments no
    /// live slot refers to are removed afterwards.
    pub async fn checkpoint(&mut self, enqueued_offset: u64) -> Result<()> {
        self.write_out().await?;
        let log_dir = self.dir.join("log");
        if self.written_end > self.synced_end {
            let first = self.synced_end / LOG_SEGMENT_BYTES * LOG_SEGMENT_BYTES;
            let mut seg = first;
            while seg < self.written_end {
                let file = self.segment(seg, true).await?;
                file.sync_data().await.map_err(|e| StoreError::io(IoOp::Fdatasync, &log_dir, e))?;
                seg += LOG_SEGMENT_BYTES;
            }
            self.synced_end = self.written_end;
        }
        let wheel_path = self.dir.join("wheel");
        if self.dirty_count > 0 {
            // Runs of dirty slots, one write each; a slot stays dirty until its write succeeded.
            let mut i = 0usize;
            while i < self.ring.len() {
                if !self.dirty.get(i).copied().unwrap_or(false) {
                    i += 1;
                    continue;
                }
                let start = i;
                let mut buf = Vec::new();
                while i < self.ring.len() && self.dirty.get(i).copied().unwrap_or(false) {
                    if let Some(s) = self.ring.get(i) {
                        s.encode(&mut buf);
                    }
                    i += 1;
                }
                self.wheel.write_all_at(buf, start as u64 * SLOT_BYTES).await.map_err(|e| StoreError::io(IoOp::Write, &wheel_path, e))?;
                for d in self.dirty.get_mut(start..i).unwrap_or_default() {
                    *d = false;
                }
            }
            self.dirty_count = 0;
            self.wheel.sync_data().await.map_err(|e| StoreError::io(IoOp::Fdatasync, &wheel_path, e))?;
        }
        let delivered = self.delivered_through_ms();
        let c = Checkpoint {
            precision_ms: self.geometry.precision_ms,
            ring_slots: self.ring.len() as u64,
            delivered_through_ms: delivered,
            log_end: self.written_end,
            enqueued_offset,
            cursor_ms: self.cursor_ms,
            resume: self.resume.unwrap_or(NO_POS),
        };
        let tmp = self.dir.join("checkpoint.tmp");
        let path = self.dir.join("checkpoint");
        let file = self.storage.open(&tmp, true).await.map_err(|e| StoreError::io(IoOp::Create, &tmp, e))?;
        file.set_len(0).await.map_err(|e| StoreError::io(IoOp::Truncate, &tmp, e))?;
        file.write_all_at(c.encode(), 0).await.map_err(|e| StoreError::io(IoOp::Write, &tmp, e))?;
        file.sync_data().await.map_err(|e| StoreError::io(IoOp::Fdatasync, &tmp, e))?;
        self.storage.rename(&tmp, &path).await.map_err(|e| StoreError::io(IoOp::Rename, &tmp, e))?;
        self.storage.sync_dir(&self.dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, &self.dir, e))?;
        self.checkpointed_through_ms = delivered;
        self.enqueued_offset = enqueued_offset;
        self.remove_dead_segments().await
    }

    /// Removes log segments entirely below the oldest entry a live slot (one not yet fully
    /// loaded) or the heap still needs.
    async fn remove_dead_segments(&mut self) -> Result<()> {
        let live_from = self.slot_floor(self.checkpointed_through_ms);
        let mut oldest = self.written_end;
        for s in &self.ring {
            if s.time_ms != EMPTY_SLOT && s.time_ms >= live_from && s.first != NO_POS {
                oldest = oldest.min(s.first);
            }
        }
        let log_dir = self.dir.join("log");
        let names = self.storage.list_dir(&log_dir).await.map_err(|e| StoreError::io(IoOp::List, &log_dir, e))?;
        let mut removed = false;
        for name in names {
            let Ok(start) = name.parse::<u64>() else { continue };
            if start + LOG_SEGMENT_BYTES <= oldest {
                let path = log_dir.join(&name);
                self.segments.retain(|(s, _)| *s != start);
                if self.block.as_ref().is_some_and(|(b, _)| *b >= start && *b < start + LOG_SEGMENT_BYTES) {
                    self.block = None;
                }
                self.storage.remove_file(&path).await.map_err(|e| StoreError::io(IoOp::Remove, &path, e))?;
                removed = true;
            }
        }
        if removed {
            self.storage.sync_dir(&log_dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, &log_dir, e))?;
        }
        Ok(())
    }
}
