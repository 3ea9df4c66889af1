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

use super::{Batch, Store, Waiter, stalled};
use crate::commitlog::{self, MARKER_LEN, ScanStep, SegmentReader};
use crate::config::FlushMode;
use crate::error::{Result, StoreError};
use crate::io::Storage;
use crate::notify::{AckSlot, AckWait};
use crate::offset_space::SegmentRange;
use crate::record::{self, BLANK_LEN, BLANK_MAGIC};
use crate::store::LogRange;
use crate::types::CommitLogOffset;

/// The largest unit (one batch) a [`ReplicaFramer`] buffers before it gives up on the stream:
/// a master's batch is at most its flush batch limit plus one append (itself at most one
/// message batch of `maxMessageSize`), far below this.
pub const REPLICA_MAX_UNIT_BYTES: usize = 64 << 20;

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
        let (file, pos) = self.log_file(LogRange { offset: CommitLogOffset(offset), len })?;
        Ok(Some((file, pos, len)))
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
    pub async fn append_replica(&self, start: u64, bytes: Vec<u8>) -> Result<(ReplicaUnit, impl Future<Output = Result<()>> + use<S>)> {
        let inner = &self.inner;
        if !inner.cfg.replica {
            return Err(StoreError::ReplicaMismatch("not a replica".into()));
        }
        if let Some(f) = inner.failed.borrow().as_ref() {
            return Err(StoreError::LogFailed(f.clone()));
        }
        stalled(inner, true)?;
        if inner.closing.get() {
            return Err(StoreError::ShutDown);
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
        let len = bytes.len() as u64;
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
                let expected = next.get(&key).copied().or_else(|| app.next_queue_offset.get(&key).copied());
                if expected.is_some_and(|e| e != qo) && !inner.fenced(&r.topic, r.offset.0) {
                    if qo == 0 && !next.contains_key(&key) {
                        // The queue starts again at 0: the master deleted the topic
                        // (DELETE_TOPIC_IN_BROKER) and it was created again. Delete it here too.
                        recreated = Some(r.topic.clone());
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
            if app.pending_bytes + bytes.len() > inner.cfg.max_pending_bytes {
                return Err(StoreError::Busy { pending_bytes: app.pending_bytes, limit_bytes: inner.cfg.max_pending_bytes });
            }
            for r in &records {
                if let Some(qo) = r.queue_offset {
                    app.next_queue_offset.insert((r.topic.clone(), r.queue_id), qo + 1);
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
