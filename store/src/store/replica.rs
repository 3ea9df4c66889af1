//! The two ends of commit-log replication inside a store (PROTOCOL.md §7.3, DESIGN-NOTES.md
//! "Replication"): what a master's sender reads (how far the log is written, a wait for more),
//! and how a replica (a slave's store, [`StoreConfig::replica`]) takes its master's bytes.
//!
//! A replica's log is a byte-for-byte copy of its master's, at the same local offsets: the
//! same records (with their PHYSICALOFFSETs, so every segment's client base is the master's),
//! the same commit markers, the same end-of-segment fillers. The follower hands over whole
//! units of the log only — a batch (records and the marker that closes them) or the end of a
//! segment (filler and padding) — and each is checked exactly as recovery checks a batch
//! (marker CRC, record CRCs, PHYSICALOFFSETs, queue-offset continuity) before it is queued to
//! the flusher, which writes it and syncs it by the replica's own flush mode; the dispatcher
//! builds consume queues and the index from it as for a local append. Nothing a master sent is
//! served before it is written, and a report of a durable offset (SYNC_FLUSH) means the bytes
//! below it were fdatasync'ed on the replica.
//!
//! [`StoreConfig::replica`]: crate::StoreConfig::replica

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use super::{Batch, Inner, QueueRef, Store, Waiter, stalled, wait_dispatched, wait_written};
use crate::commitlog::{self, MARKER_LEN, ScanStep, Segment, SegmentReader};
use crate::config::FlushMode;
use crate::error::{IoOp, Result, StoreError};
use crate::io::Storage;
use crate::notify::{AckSlot, AckWait};
use crate::offset_space::SegmentRange;
use crate::record::{self, BLANK_LEN, BLANK_MAGIC};
use crate::store::{LogFile, LogRange};
use crate::types::CommitLogOffset;

/// The largest unit (one batch) a [`ReplicaFramer`] buffers before it gives up on the stream:
/// a master's batch is at most its flush batch limit plus one append (itself at most one
/// message batch of `maxMessageSize`), far below this.
pub const REPLICA_MAX_UNIT_BYTES: usize = 64 << 20;

/// What [`Store::truncate_replica`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TruncateReport {
    /// Where the replica's log continued before.
    pub from: u64,
    /// Where it continues now.
    pub to: u64,
    /// Log bytes dropped (`from - to`: records, commit markers, fillers and segment padding).
    pub bytes: u64,
    /// Records dropped (counted batch by batch from `to`; a damaged batch there ends the count).
    pub records: u64,
    /// Consume-queue entries dropped, all queues together.
    pub queue_entries: u64,
    /// Segment files removed (those that started at or past `to`).
    pub segments_removed: usize,
}

/// At most this many batches of its last segment a replica looks back through for
/// [`Store::replica_resume_points`] (a master loses at most what it wrote since its last
/// fdatasync; beyond this the segment's base is the resume point).
pub const RESUME_MARKERS_WALKED: usize = 65_536;

/// A point where a replica's log may continue from its master's: a local offset, and the
/// commit marker that ends the batch before it (`None`: a segment base).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    pub end: u64,
    pub marker: Option<[u8; MARKER_LEN]>,
}

/// What [`Store::append_replica`] took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaUnit {
    /// A batch with this many records.
    Batch { records: usize },
    /// The end of a segment: the log continues at the next segment's base.
    SegmentEnd,
}

impl<S: Storage> Store<S> {
    /// Local offset through which the commit log is written (readable from its files): what a
    /// replication sender may send.
    pub fn written_offset(&self) -> CommitLogOffset {
        CommitLogOffset(self.inner.app.borrow().written)
    }

    /// Completes once the log is written beyond local offset `offset`; fails if the log fails.
    /// Keep one such wait across idle periods rather than asking again (each call queues a
    /// waiter until the next write).
    pub fn wait_written_beyond(&self, offset: u64) -> impl Future<Output = Result<()>> + use<S> {
        let slot = {
            let mut app = self.inner.app.borrow_mut();
            let slot = Rc::new(AckSlot::default());
            if app.written > offset {
                slot.complete(Ok(()));
            } else {
                let end = offset + 1;
                let at = app.written_waiters.iter().position(|w| w.end > end).unwrap_or(app.written_waiters.len());
                app.written_waiters.insert(at, Waiter { end, slot: slot.clone() });
            }
            slot
        };
        ack(slot)
    }

    /// The next piece of the log a replication sender sends from local offset `offset`: at most
    /// `max_bytes`, never past the written end nor past the end of `offset`'s segment (a unit
    /// never spans files, §7.3). `None` when nothing beyond `offset` is written yet. Gives the
    /// segment's shared descriptor and the position in it, for `sendfile`.
    pub fn replication_slice(&self, offset: u64, max_bytes: u32) -> Result<Option<(Arc<std::fs::File>, u64, u32)>> {
        let Some(len) = self.replication_len(offset, max_bytes)? else { return Ok(None) };
        let LogFile { file, position, .. } = self.log_file(LogRange { offset: CommitLogOffset(offset), len })?;
        Ok(Some((file, position, len)))
    }

    /// [`Store::replication_slice`], copied into memory (storages without descriptors: tests).
    pub async fn replication_bytes(&self, offset: u64, max_bytes: u32) -> Result<Option<Vec<u8>>> {
        let Some(len) = self.replication_len(offset, max_bytes)? else { return Ok(None) };
        self.read_range(LogRange { offset: CommitLogOffset(offset), len }).await.map(Some)
    }

    fn replication_len(&self, offset: u64, max_bytes: u32) -> Result<Option<u32>> {
        let written = self.inner.app.borrow().written;
        if offset >= written {
            return Ok(None);
        }
        if offset < self.inner.log_min.get() {
            return Err(StoreError::NotFound(format!("commit-log offset {offset} is below the oldest stored segment ({})", self.inner.log_min.get())));
        }
        let seg = self.inner.cfg.segment_size_bytes;
        let seg_end = offset - offset % seg + seg;
        let len = (written.min(seg_end) - offset).min(u64::from(max_bytes)) as u32;
        self.check_undamaged(offset, len)?;
        Ok(Some(len))
    }

    /// Points where this replica's log could continue from its master's, newest first, for a
    /// master to check against its own log (PROTOCOL.md §7.3 has only lengths; two logs of which
    /// one is no longer than the other may still differ — a master that lost an unsynced tail
    /// and then wrote more than it lost). Each is the end of a batch in the replica's last
    /// segment with the commit marker that closes it (the marker's CRC covers the batch), at
    /// exponentially spaced distances back from the end (at most `max_markers` of them, looking
    /// back at most [`RESUME_MARKERS_WALKED`] batches), then that segment's base: a master
    /// loses at most an unsynced tail of its active segment (it syncs each segment's end
    /// before it writes the next one), so everything before the replica's last segment is the
    /// master's if the master's log reaches it.
    pub async fn replica_resume_points(&self, max_markers: usize) -> Result<Vec<ResumePoint>> {
        let seg = self.inner.cfg.segment_size_bytes;
        let end = self.replica_next_offset();
        if end == 0 {
            return Ok(Vec::new());
        }
        let base = (end - 1) - (end - 1) % seg;
        let mut points = Vec::new();
        let (mut at, mut walked, mut next_kept) = (end, 0usize, 0usize);
        while at > base && walked < RESUME_MARKERS_WALKED && points.len() < max_markers {
            let Some(head) = at.checked_sub(MARKER_LEN as u64) else { break };
            if head < base {
                break;
            }
            let bytes = self.read_range(LogRange { offset: CommitLogOffset(head), len: MARKER_LEN as u32 }).await?;
            let Some(marker) = commitlog::parse_marker(&bytes) else { break };
            if walked == next_kept {
                let mut m = [0u8; MARKER_LEN];
                m.copy_from_slice(&bytes);
                points.push(ResumePoint { end: at, marker: Some(m) });
                next_kept = (next_kept * 2).max(1);
            }
            walked += 1;
            at = marker.batch_start;
        }
        points.push(ResumePoint { end: base, marker: None });
        Ok(points)
    }

    /// Whether this log continues through `point` the way the replica's does: its commit
    /// marker there is the same (or, for a segment base, the log reaches it).
    pub async fn matches_resume_point(&self, point: &ResumePoint) -> Result<bool> {
        if point.end > self.written_offset().0 {
            return Ok(false);
        }
        match &point.marker {
            None => Ok(point.end.is_multiple_of(self.inner.cfg.segment_size_bytes)),
            Some(marker) => {
                let Some(head) = point.end.checked_sub(MARKER_LEN as u64) else { return Ok(false) };
                if head < self.inner.log_min.get() {
                    return Ok(false);
                }
                let bytes = self.read_range(LogRange { offset: CommitLogOffset(head), len: MARKER_LEN as u32 }).await?;
                Ok(bytes.as_slice() == marker.as_slice())
            }
        }
    }

    /// Where this replica's log continues: the local offset of the next byte it takes.
    pub fn replica_next_offset(&self) -> u64 {
        self.inner.app.borrow().write_pos
    }

    /// The offset a replica reports to its master: everything below it is stored here by the
    /// replica's flush mode (fdatasync'ed under SYNC_FLUSH, written under ASYNC_FLUSH).
    pub fn replica_acked_offset(&self) -> u64 {
        let app = self.inner.app.borrow();
        match self.inner.cfg.flush_mode {
            FlushMode::Sync => app.durable,
            FlushMode::Async => app.written,
        }
    }

    /// Waits until everything this replica has taken is acknowledged by its flush mode, so
    /// that [`Store::replica_acked_offset`] covers it (a follower does this before it reports
    /// a start offset to a master again).
    pub async fn replica_settle(&self) -> Result<()> {
        let (end, written) = {
            let app = self.inner.app.borrow();
            // A pending filler is written with the next batch: everything before it counts.
            (app.open.filler_at.unwrap_or(app.write_pos), app.written)
        };
        match self.inner.cfg.flush_mode {
            FlushMode::Sync => super::wait_durable(&self.inner, end).await,
            FlushMode::Async if written >= end => Ok(()),
            FlushMode::Async => self.wait_written_beyond(end - 1).await,
        }
    }

    /// Makes an empty replica's log begin at `offset` (the base of its master's oldest
    /// segment), so that it can follow a master whose log no longer starts at 0.
    pub fn replica_start_at(&self, offset: u64) -> Result<()> {
        let inner = &self.inner;
        let seg = inner.cfg.segment_size_bytes;
        if !inner.cfg.replica {
            return Err(StoreError::ReplicaMismatch("not a replica".into()));
        }
        if !offset.is_multiple_of(seg) {
            return Err(StoreError::ReplicaMismatch(format!("start offset {offset} is not a segment base")));
        }
        let mut app = inner.app.borrow_mut();
        let empty = app.write_pos == 0 && inner.segments.borrow().is_empty() && inner.queues.borrow().is_empty();
        if !empty {
            return Err(StoreError::ReplicaMismatch(format!("the replica is not empty (its log continues at {})", app.write_pos)));
        }
        app.write_pos = offset;
        app.written = offset;
        app.durable = offset;
        app.open = Batch::new(offset, None);
        drop(app);
        inner.dispatched_offset.set(offset);
        *inner.replay_points.borrow_mut() = std::collections::VecDeque::from([offset]);
        inner.log_min.set(offset);
        if let Some(ix) = inner.index.borrow_mut().as_mut() {
            ix.set_dispatched(offset);
        }
        tracing::info!(shard = %inner.cfg.shard, offset, "empty replica starts its log at its master's oldest segment");
        Ok(())
    }

    /// Takes bytes of the master's log that start at local offset `start`, where this
    /// replica's log continues: either one whole batch (records and their commit marker) or
    /// the end of a segment (its 8-byte filler; the padding after it is the zeros the new
    /// segment file already holds). [`ReplicaFramer`] cuts a master's stream into these.
    /// The bytes are checked as recovery checks a batch, then queued to the flusher; the
    /// returned future completes when they are stored by this replica's flush mode. A unit
    /// that does not fit ([`StoreError::ReplicaMismatch`], [`StoreError::Corruption`]) changes
    /// nothing.
    ///
    /// Where a local append is refused ([`StoreError::Busy`], [`StoreError::DispatchBehind`]),
    /// it waits before taking the unit: while `max_pending_bytes` wait for the flusher, or
    /// `max_dispatch_behind_bytes` of the log for the dispatcher. The follower then stops
    /// reading its stream and TCP holds the master back, instead of dropping the connection
    /// and sending the same bytes again.
    pub async fn append_replica(&self, start: u64, bytes: Vec<u8>) -> Result<(ReplicaUnit, impl Future<Output = Result<()>> + use<S>)> {
        let inner = &self.inner;
        if !inner.cfg.replica {
            return Err(StoreError::ReplicaMismatch("not a replica".into()));
        }
        let len = bytes.len() as u64;
        // Where the data taken so far ends: after a segment end, `write_pos` lies past padding
        // that neither the flusher nor the dispatcher crosses before the next unit.
        let (data_end, pending) = {
            let app = inner.app.borrow();
            (app.open.filler_at.unwrap_or(app.write_pos), app.pending_bytes as u64)
        };
        // Pending bytes are the data between `written` and `data_end` (less markers). A unit
        // larger than a limit waits for everything before it and then goes alone.
        let pending_limit = inner.cfg.max_pending_bytes as u64;
        if pending + len > pending_limit {
            inner.stats.borrow_mut().replica_flush_waits += 1;
            wait_written(inner, (data_end + len).saturating_sub(pending_limit).min(data_end)).await?;
        }
        let behind_limit = inner.cfg.max_dispatch_behind_bytes;
        if data_end.saturating_sub(inner.dispatched_offset.get()) + len > behind_limit {
            inner.stats.borrow_mut().replica_dispatch_waits += 1;
            wait_dispatched(inner, (data_end + len).saturating_sub(behind_limit).min(data_end)).await?;
        }
        if let Some(f) = inner.failed.borrow().as_ref() {
            return Err(StoreError::LogFailed(f.clone()));
        }
        stalled(inner, true)?;
        if inner.closing.get() {
            return Err(StoreError::ShutDown);
        }
        if inner.replica_truncating.get() {
            return Err(StoreError::ReplicaMismatch("the replica is truncating its log".into()));
        }
        let seg = inner.cfg.segment_size_bytes;
        let seg_base = start - start % seg;
        let (write_pos, pending_filler) = {
            let app = inner.app.borrow();
            (app.write_pos, app.open.filler_at)
        };
        let (total, magic) = record::peek_header(&bytes).map_err(|_| StoreError::ReplicaMismatch(format!("{} bytes at {start} are not a unit", bytes.len())))?;
        if magic == BLANK_MAGIC {
            let rest = seg - start % seg;
            if i64::from(total) != rest as i64 || bytes.len() != BLANK_LEN {
                return Err(StoreError::ReplicaMismatch(format!("filler at {start} says {total} bytes, segment has {rest}, unit has {}", bytes.len())));
            }
            if pending_filler == Some(start) {
                // Sent again after a reconnection: this replica has it already.
                return Ok((ReplicaUnit::SegmentEnd, ack(done_slot())));
            }
            if start != write_pos {
                return Err(out_of_step(start, write_pos));
            }
            let mut app = inner.app.borrow_mut();
            app.write_pos = seg_base + seg;
            app.open = Batch::new(app.write_pos, Some(start));
            return Ok((ReplicaUnit::SegmentEnd, ack(done_slot())));
        }
        if start != write_pos {
            return Err(out_of_step(start, write_pos));
        }
        let known_base = inner.client_ranges.borrow().get(&seg_base).map(|r| r.client_base);
        let mut reader = SegmentReader::<S::File>::in_memory(seg_base, seg, start, bytes);
        let step = commitlog::scan_batch(&mut reader, known_base, start, inner.cfg.check_crc_on_recover).await?;
        let (records, client_base) = match step {
            ScanStep::Batch { records, end, client_base, .. } if end == start + len => (records, client_base),
            ScanStep::Batch { end, .. } => {
                return Err(StoreError::ReplicaMismatch(format!("batch at {start} ends at {end}, the unit at {}", start + len)));
            }
            ScanStep::Blank => return Err(StoreError::ReplicaMismatch(format!("unexpected filler at {start}"))),
            ScanStep::Invalid(reason) => return Err(StoreError::Corruption { offset: start, reason: format!("from the master: {reason}") }),
        };
        let bytes = reader.into_bytes();
        let mut recreated: Option<String> = None;
        {
            // Queue offsets must continue each queue exactly (a queue this replica has never
            // seen starts wherever its first record says: a replica that began mid-log).
            let app = inner.app.borrow();
            let mut next = std::collections::HashMap::new();
            for r in &records {
                let Some(qo) = r.queue_offset else { continue };
                // While a deletion of the topic here is made durable, its records wait (as local
                // appends do): see `Fence`.
                inner.check_not_deleting(&r.topic)?;
                let key = (r.topic.clone(), r.queue_id);
                let expected = next.get(&key).copied().or_else(|| app.next_queue_offset.get(&r.topic, r.queue_id).copied());
                if expected.is_some_and(|e| e != qo) && !inner.fenced(&r.topic, r.offset.0) {
                    if qo == 0 && !next.contains_key(&key) {
                        // The queue starts again at 0: the master deleted the topic
                        // (DELETE_TOPIC_IN_BROKER) and it was created again. Delete it here too.
                        recreated = Some(r.topic.to_string());
                        break;
                    }
                    return Err(StoreError::Corruption {
                        offset: r.offset.0,
                        reason: format!("from the master: record for {}:{} has QUEUEOFFSET {qo}, the queue continues at {}", r.topic, r.queue_id, expected.unwrap_or(0)),
                    });
                }
                next.insert(key, qo + 1);
            }
        }
        if let Some(topic) = recreated {
            // Its fence goes at this batch, which is not taken: the follower sends it again
            // once the deletion is durable, and its records start the new incarnation.
            tracing::warn!(shard = %inner.cfg.shard, topic, offset = start, "the master deleted and recreated a topic: deleting its old queues on this replica");
            let store = self.clone();
            let deleting = topic.clone();
            compio::runtime::spawn(async move {
                if let Err(e) = store.delete_topic(&deleting).await {
                    tracing::error!(topic = deleting, "deleting a recreated topic on the replica failed: {e}");
                }
            })
            .detach();
            return Err(StoreError::TopicDeleting(topic));
        }
        if known_base.is_none() {
            let shard = inner.cfg.shard;
            let range = SegmentRange { client_base, len_bytes: seg, shard, local_base: CommitLogOffset(seg_base) };
            inner.space.adopt(range)?;
            inner.client_ranges.borrow_mut().insert(seg_base, range);
            tracing::debug!(%shard, local_base = seg_base, client_base, "replicated segment takes its master's client offset range");
        }
        let count = records.len();
        let slot = Rc::new(AckSlot::default());
        {
            let mut app = inner.app.borrow_mut();
            // Only if the flusher fell behind again since the wait above.
            if app.pending_bytes > 0 && app.pending_bytes + bytes.len() > inner.cfg.max_pending_bytes {
                return Err(StoreError::Busy { pending_bytes: app.pending_bytes, limit_bytes: inner.cfg.max_pending_bytes });
            }
            for r in &records {
                if let Some(qo) = r.queue_offset {
                    app.next_queue_offset.insert(r.topic.clone(), r.queue_id, qo + 1);
                }
            }
            let filler_at = app.open.filler_at.take();
            let end = start + len;
            // The flusher subtracts what it wrote less the marker it would have added.
            app.pending_bytes += bytes.len().saturating_sub(MARKER_LEN);
            app.closed.push_back(Batch { start, buf: bytes, filler_at, records, sealed: true });
            app.write_pos = end;
            app.open = Batch::new(end, None);
            let waiter = Waiter { end, slot: slot.clone() };
            match inner.cfg.flush_mode {
                FlushMode::Sync => app.durable_waiters.push_back(waiter),
                FlushMode::Async => app.written_waiters.push_back(waiter),
            }
        }
        {
            let mut st = inner.stats.borrow_mut();
            st.appends += 1;
            st.appended_messages += count as u64;
            st.appended_bytes += len;
        }
        inner.flusher_wake.notify();
        Ok((ReplicaUnit::Batch { records: count }, ack(slot)))
    }
}

/// The log from a truncation point on, as read by [`Store::truncate_replica`].
struct Tail {
    records: u64,
    /// Where the data of the segment holding the truncation point ends (its filler's end, or
    /// the end of its last batch), when the scan got that far.
    data_end: Option<u64>,
}

/// Holds what a truncation excludes (retention, checkpoints, replica units) and lets it go
/// however the truncation ends; one that ends (an error, or its future dropped) after it
/// changed the store's state but before it completed fails the store: what is on disk is
/// then the state before it or a checkpoint that makes recovery complete it.
struct TruncationGuard<S: Storage> {
    inner: Rc<Inner<S>>,
    retention: bool,
    checkpoint: bool,
    applied: bool,
    done: bool,
}

impl<S: Storage> Drop for TruncationGuard<S> {
    fn drop(&mut self) {
        let inner = &self.inner;
        if self.applied && !self.done {
            tracing::error!(shard = %inner.cfg.shard, "a replica truncation stopped half way; the store refuses writes until it is reopened (recovery completes the truncation or keeps the log as it was)");
            super::fail_all(inner, "a replica truncation stopped half way; reopen the store".into());
        }
        if self.checkpoint {
            inner.checkpoint_busy.set(false);
            super::release_checkpoint_waiters(inner);
        }
        if self.retention {
            inner.retention_busy.set(false);
        }
        inner.replica_truncating.set(false);
    }
}

impl<S: Storage> Store<S> {
    /// Cuts this replica's log back to local offset `to`, its master's written end, when the
    /// master lost a tail this replica holds (an ASYNC master that crashed before syncing
    /// it, and will write other bytes at those offsets). `to` must be a batch boundary of
    /// this log — the end of a batch's commit marker, or a segment base — at or above the
    /// oldest stored offset, else [`StoreError::ReplicaMismatch`] and nothing changes. It
    /// waits for the flusher and the dispatcher to finish what was taken, and refuses while
    /// units are still queued (the follower settles first).
    ///
    /// Afterwards nothing at or past `to` is served or found: later segments are removed
    /// (their client ranges leave the offset space), the rest of `to`'s segment is zeroed,
    /// every consume queue ends at its last entry below `to` (its files cut), queries by key
    /// check each hit against its record ([`crate::index::query`]), and the log continues at
    /// `to`. Crash safety: a first checkpoint names the truncated state and
    /// [`Checkpoint::truncate_log_at`](crate::checkpoint::Checkpoint::truncate_log_at); only
    /// then are files changed; a second checkpoint without it ends the truncation. A crash
    /// before the first one's rename leaves the log as it was (the follower truncates again),
    /// a crash after it recovers to the truncated state (recovery redoes the wipe).
    pub async fn truncate_replica(&self, to: u64) -> Result<TruncateReport> {
        let inner = &self.inner;
        if !inner.cfg.replica {
            return Err(StoreError::ReplicaMismatch("not a replica".into()));
        }
        if let Some(f) = inner.failed.borrow().as_ref() {
            return Err(StoreError::LogFailed(f.clone()));
        }
        if inner.closing.get() {
            return Err(StoreError::ShutDown);
        }
        if inner.replica_truncating.replace(true) {
            return Err(StoreError::ReplicaMismatch("a truncation is already running".into()));
        }
        let mut guard = TruncationGuard { inner: inner.clone(), retention: false, checkpoint: false, applied: false, done: false };
        let queued = |app: &super::AppendState| !app.closed.is_empty() || !app.open.buf.is_empty();
        if queued(&inner.app.borrow()) {
            return Err(StoreError::ReplicaMismatch("units are still queued to the flusher; settle first".into()));
        }
        // No retention pass nor checkpoint runs from here on (a checkpoint in progress may
        // have taken its snapshot already: it ends first).
        while inner.retention_busy.replace(true) {
            compio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        guard.retention = true;
        while inner.checkpoint_busy.replace(true) {
            let slot = Rc::new(AckSlot::default());
            inner.checkpoint_waiters.borrow_mut().push(slot.clone());
            let _ = AckWait(slot).await;
        }
        guard.checkpoint = true;
        // Everything taken is durable and dispatched: the flusher and the dispatcher are idle
        // (both wait for work once they released these waiters), and no unit comes in.
        let end = {
            let app = inner.app.borrow();
            app.open.filler_at.unwrap_or(app.write_pos)
        };
        super::wait_durable(inner, end).await?;
        super::wait_dispatched(inner, end).await?;
        let (from, pending_filler) = {
            let app = inner.app.borrow();
            let idle = !queued(&app)
                && app.durable >= end
                && inner.dispatched_offset.get() >= end
                && inner.dispatch_queue.borrow().is_empty()
                && inner.removals.borrow().is_empty()
                && inner.stats.borrow().flushes_in_flight == 0;
            if !idle {
                return Err(StoreError::ReplicaMismatch("the log changed while the truncation waited for it to settle".into()));
            }
            (app.write_pos, app.open.filler_at)
        };
        let mut report = TruncateReport { from, to, ..Default::default() };
        if to == from {
            return Ok(report);
        }
        if to > from {
            return Err(StoreError::ReplicaMismatch(format!("cannot truncate to {to}: this replica's log ends at {from}")));
        }
        let log_min = inner.log_min.get();
        if to < log_min {
            return Err(StoreError::ReplicaMismatch(format!("cannot truncate to {to}: below this replica's oldest stored offset {log_min}")));
        }
        let tail = self.truncation_tail(to, from, pending_filler).await?;
        let cuts = self.queue_cuts(to).await?;

        // The truncated state, in one synchronous step: from here on nothing at or past `to`
        // is read, found or located.
        guard.applied = true;
        {
            let queues = inner.queues.borrow();
            for (q, cut) in &cuts {
                if !queues.values().any(|x| Rc::ptr_eq(x, q)) {
                    continue; // detached by a topic deletion meanwhile
                }
                let mut q = q.borrow_mut();
                report.queue_entries += q.max_offset.saturating_sub(*cut);
                let forgotten = q.cut_to(*cut);
                inner.cq_unsynced_entries.set(inner.cq_unsynced_entries.get().saturating_sub(forgotten));
            }
            // Bytes at or past `to` are written again: senders get a new descriptor for the
            // segment holding `to`, so that no block they cached through the old one is taken
            // for the new bytes (later segments are removed below).
            if let Some(seg) = inner.segments.borrow_mut().iter_mut().rev().find(|s| s.base <= to) {
                seg.reshare();
            }
            let mut app = inner.app.borrow_mut();
            app.write_pos = to;
            app.written = to;
            app.durable = to;
            app.open = Batch::new(to, None);
            app.pending_bytes = 0;
            app.sync_requested = false;
            // As recovery sets it: each queue continues at its end.
            app.next_queue_offset.clear();
            for (topic, queue_id, q) in queues.iter() {
                app.next_queue_offset.insert(topic.clone(), queue_id, q.borrow().max_offset);
            }
        }
        inner.dispatched_offset.set(to);
        // Every queue is cut at or below `to` and the next checkpoint is thorough.
        *inner.replay_points.borrow_mut() = std::collections::VecDeque::from([to]);
        if let Some(ix) = inner.index.borrow_mut().as_mut() {
            ix.set_dispatched(to);
            ix.forget_added();
        }
        // A fence past `to` guards exactly the records below `to`; left where it is, it would
        // take the master's new records of the topic for the deleted incarnation's.
        for f in inner.fences.borrow_mut().values_mut() {
            f.offset = f.offset.min(to);
        }
        {
            let mut damaged = inner.damaged.borrow_mut();
            damaged.retain(|offset, _| *offset < to);
            for d in damaged.values_mut() {
                d.end = d.end.min(to);
            }
        }
        let gone: Vec<u64> = inner.segments.borrow().iter().map(|s| s.base).filter(|b| *b >= to).collect();
        for base in gone {
            self.drop_client_range(base);
        }

        // 1. The checkpoint that makes the truncation happen, whatever a crash leaves of the
        //    steps after it.
        super::run_checkpoint_inner(inner, Some(to), super::Sweep::Thorough).await?;
        // 2. The log and the consume queues on disk.
        let (zeroed, removed) = self.wipe_log_from(to, tail.data_end).await?;
        report.segments_removed = removed;
        for (q, cut) in &cuts {
            cut_queue_files(&inner.cq_files, &inner.storage, q, *cut).await?;
        }
        // 3. A checkpoint that no longer needs recovery to wipe anything.
        super::run_checkpoint_inner(inner, None, super::Sweep::Thorough).await?;
        guard.done = true;
        drop(guard);

        report.bytes = from - to;
        report.records = tail.records;
        tracing::warn!(
            shard = %inner.cfg.shard,
            from,
            to,
            dropped_bytes = report.bytes,
            dropped_records = report.records,
            dropped_queue_entries = report.queue_entries,
            segments_removed = removed,
            zeroed_bytes = zeroed,
            "replica truncated to where its log agrees with its master's: it held {} bytes ({} records) past that point, which it copies again or the master no longer has",
            report.bytes,
            report.records
        );
        Ok(report)
    }

    /// Checks that `to` is a batch boundary of this log and counts the records from it to
    /// `from` (the log end). A segment's pending filler (taken, not yet written) counts as
    /// its end.
    async fn truncation_tail(&self, to: u64, from: u64, pending_filler: Option<u64>) -> Result<Tail> {
        let inner = &self.inner;
        let seg_size = inner.cfg.segment_size_bytes;
        let verify_crc = inner.cfg.check_crc_on_recover;
        let not_boundary = |why: &str| StoreError::ReplicaMismatch(format!("{to} is not a batch boundary of this replica's log: {why}"));
        let segs: Vec<Segment<S::File>> = inner.segments.borrow().clone();
        let client_base = |base: u64| inner.client_ranges.borrow().get(&base).map(|r| r.client_base);
        let to_base = to - to % seg_size;
        if !to.is_multiple_of(seg_size) {
            // A commit marker must end at `to`, closing a batch that validates.
            let seg = segs.iter().find(|s| s.base == to_base).ok_or_else(|| not_boundary("no segment holds it"))?;
            let in_seg = to - to_base;
            if in_seg < MARKER_LEN as u64 {
                return Err(not_boundary("no commit marker ends there"));
            }
            let mut reader = SegmentReader::new(seg, seg_size);
            let m = reader.get(in_seg - MARKER_LEN as u64, MARKER_LEN).await?.to_vec();
            let marker = commitlog::parse_marker(&m)
                .filter(|mk| mk.batch_start >= to_base && mk.batch_start < to - MARKER_LEN as u64)
                .ok_or_else(|| not_boundary("no commit marker ends there"))?;
            match commitlog::scan_batch(&mut reader, client_base(to_base), marker.batch_start, verify_crc).await? {
                ScanStep::Batch { end, .. } if end == to => {}
                _ => return Err(not_boundary("the batch the marker before it closes does not validate")),
            }
        }
        // From `to` on, batch by batch: the first must validate (or be a filler).
        let mut tail = Tail { records: 0, data_end: None };
        let mut pos = to;
        let mut reader: Option<SegmentReader<'_, S::File>> = None;
        let mut reader_base = u64::MAX;
        while pos < from {
            let base = pos - pos % seg_size;
            if pending_filler == Some(pos) {
                if base == to_base {
                    tail.data_end = Some(pos);
                }
                pos = base + seg_size;
                continue;
            }
            if reader_base != base {
                let Some(seg) = segs.iter().find(|s| s.base == base) else {
                    if pos == to {
                        return Err(not_boundary("no segment holds it"));
                    }
                    tracing::warn!(offset = pos, "no segment holds the log at {pos}: records past it are not counted");
                    break;
                };
                reader = Some(SegmentReader::new(seg, seg_size));
                reader_base = base;
            }
            let Some(r) = reader.as_mut() else { break };
            match commitlog::scan_batch(r, client_base(base), pos, verify_crc).await? {
                ScanStep::Batch { records, end, .. } => {
                    tail.records += records.len() as u64;
                    pos = end;
                    if base == to_base {
                        tail.data_end = Some(end);
                    }
                }
                ScanStep::Blank => {
                    if base == to_base {
                        tail.data_end = Some(pos + record::BLANK_LEN as u64);
                    }
                    pos = base + seg_size;
                }
                ScanStep::Invalid(reason) => {
                    if pos == to {
                        return Err(not_boundary(&reason));
                    }
                    tracing::warn!(offset = pos, %reason, "a damaged batch in the truncated tail: records past it are not counted");
                    if base == to_base {
                        tail.data_end = None;
                    }
                    break;
                }
            }
        }
        Ok(tail)
    }

    /// Each consume queue whose last entry points at or past `to`, with the offset of its
    /// first such entry (entries of a queue point at growing log offsets: a binary search).
    async fn queue_cuts(&self, to: u64) -> Result<Vec<(QueueRef, u64)>> {
        let queues: Vec<QueueRef> = self.inner.queues.borrow().values().cloned().collect();
        let mut cuts = Vec::new();
        for q in queues {
            let (min, max) = {
                let q = q.borrow();
                (q.min_offset, q.max_offset)
            };
            if max <= min {
                continue;
            }
            let at_or_past = |e: Option<crate::consume_queue::CqEntry>| e.is_some_and(|e| e.offset >= to);
            if !at_or_past(entry_at(&self.inner.cq_files, &q, max - 1).await?) {
                continue;
            }
            let (mut lo, mut hi) = (min, max - 1);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if at_or_past(entry_at(&self.inner.cq_files, &q, mid).await?) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            cuts.push((q, lo));
        }
        Ok(cuts)
    }
}

async fn entry_at<S: Storage>(files: &crate::consume_queue::CqDescriptors<S>, q: &QueueRef, offset: u64) -> Result<Option<crate::consume_queue::CqEntry>> {
    Ok(crate::consume_queue::read_entries(files, q, offset, 1).await?.and_then(|e| e.first().copied()))
}

/// Cuts a consume queue's files to `cut` entries: later files go, the one holding `cut` is
/// shortened; both synced. Files already gone (a topic deleted meanwhile) are fine.
async fn cut_queue_files<S: Storage>(files: &crate::consume_queue::CqDescriptors<S>, storage: &S, q: &QueueRef, cut: u64) -> Result<()> {
    use crate::io::StorageFile;
    let (queue_files, dir, per) = {
        let q = q.borrow();
        (q.files.clone(), q.dir.clone(), q.entries_per_file)
    };
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let mut removed = false;
    for f in &queue_files {
        if f.first >= cut {
            match files.remove(&f.path).await {
                Err(e) if !gone(&e) => return Err(StoreError::io(IoOp::Remove, &f.path, e)),
                _ => removed = true,
            }
        } else if f.first + per > cut {
            let want = (cut - f.first) * crate::consume_queue::CQ_ENTRY_LEN as u64;
            let Some(file) = files.existing(&f.path).await? else { continue };
            let len = file.len().await.map_err(|e| StoreError::io(IoOp::Stat, &f.path, e))?;
            if len > want {
                file.set_len(want).await.map_err(|e| StoreError::io(IoOp::Truncate, &f.path, e))?;
                file.sync_data().await.map_err(|e| StoreError::io(IoOp::Fdatasync, &f.path, e))?;
            }
        }
    }
    if removed && storage.exists(&dir).await.unwrap_or(false) {
        storage.sync_dir(&dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, &dir, e))?;
    }
    q.borrow_mut().files.retain(|f| f.first < cut);
    Ok(())
}

fn out_of_step(start: u64, write_pos: u64) -> StoreError {
    StoreError::ReplicaMismatch(format!("the master sent bytes at {start}, this replica continues at {write_pos}"))
}

/// The wait for one unit's acknowledgement.
async fn ack(slot: Rc<AckSlot>) -> Result<()> {
    AckWait(slot).await.map_err(StoreError::from)
}

fn done_slot() -> Rc<AckSlot> {
    let slot = Rc::new(AckSlot::default());
    slot.complete(Ok(()));
    slot
}

/// Cuts the byte stream a master sends (PROTOCOL.md §7.3: raw log bytes, in units that may
/// split a batch anywhere) into the units [`Store::append_replica`] takes: whole batches, and
/// segment ends (the filler; the padding after it is dropped). Holds at most one unit.
#[derive(Debug)]
pub struct ReplicaFramer {
    segment_size: u64,
    /// Local offset of `buf[0]`.
    start: u64,
    buf: Vec<u8>,
    /// How far into `buf` whole records have been seen.
    scanned: usize,
    /// Padding after a filler is skipped up to here (the next segment's base).
    skip_to: u64,
}

impl ReplicaFramer {
    /// A framer for a stream that continues the log at local offset `next`.
    pub fn new(next: u64, segment_size: u64) -> Self {
        ReplicaFramer { segment_size, start: next, buf: Vec::new(), scanned: 0, skip_to: next }
    }

    /// The local offset the next byte of the stream must have.
    pub fn next_offset(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    /// Takes `data`, which the master sent for local offset `offset`.
    pub fn push(&mut self, offset: u64, mut data: &[u8]) -> Result<()> {
        let expected = self.next_offset();
        if offset != expected {
            return Err(StoreError::ReplicaMismatch(format!("the master sent bytes for {offset}, the stream is at {expected}")));
        }
        if self.buf.is_empty() && self.start < self.skip_to {
            // Padding after a filler: zeros on the master, zeros in the new file here.
            let skip = (self.skip_to - self.start).min(data.len() as u64);
            data = data.get(skip as usize..).unwrap_or_default();
            self.start += skip;
        }
        if self.buf.len() + data.len() > REPLICA_MAX_UNIT_BYTES {
            return Err(StoreError::ReplicaMismatch(format!("no batch ends within {REPLICA_MAX_UNIT_BYTES} bytes of {}", self.start)));
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next complete unit, with its local offset; `None` until more bytes arrive.
    pub fn next_unit(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        if self.start < self.skip_to {
            return Ok(None);
        }
        loop {
            let Some(head) = self.buf.get(self.scanned..self.scanned + 8) else { return Ok(None) };
            let (total, magic) = record::peek_header(head).map_err(|e| StoreError::ReplicaMismatch(e.to_string()))?;
            let at = self.start + self.scanned as u64;
            if magic == BLANK_MAGIC {
                if self.scanned != 0 {
                    return Err(StoreError::ReplicaMismatch(format!("filler at {at} inside a batch from {}", self.start)));
                }
                let unit: Vec<u8> = self.buf.drain(..BLANK_LEN).collect();
                let seg_end = at - at % self.segment_size + self.segment_size;
                self.start = at + BLANK_LEN as u64;
                self.skip_to = seg_end;
                // Whatever of the padding already arrived is dropped now.
                let skip = ((seg_end - self.start) as usize).min(self.buf.len());
                self.buf.drain(..skip);
                self.start += skip as u64;
                return Ok(Some((at, unit)));
            }
            if magic == commitlog::MARKER_MAGIC {
                let end = self.scanned + MARKER_LEN;
                if self.buf.len() < end {
                    return Ok(None);
                }
                let unit: Vec<u8> = self.buf.drain(..end).collect();
                let unit_start = self.start;
                self.start += end as u64;
                self.scanned = 0;
                return Ok(Some((unit_start, unit)));
            }
            if magic != record::MAGIC_V1 && magic != record::MAGIC_V2 || total <= 0 || (total as u64) >= self.segment_size {
                return Err(StoreError::ReplicaMismatch(format!("no record, marker or filler at {at} (size {total}, magic {magic:#x})")));
            }
            if self.buf.len() < self.scanned + total as usize {
                return Ok(None);
            }
            self.scanned += total as usize;
        }
    }
}
