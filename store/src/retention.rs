//! Retention (PROTOCOL.md §6.1): deletes expired commit-log segments at the `deleteWhen` hours
//! or when the disk is fuller than `diskMaxUsedSpaceRatio`, oldest first, at most
//! `deleteFileBatchMax` per pass; above `diskSpaceCleanForciblyRatio` also unexpired ones (when
//! `cleanFileForciblyEnable`); above `diskSpaceWarningLevelRatio` the store refuses writes.
//! Consume-queue and index files whose entries all point below the new log minimum go with
//! them. The active (last) segment is never deleted.
//!
//! A segment's age is the store time of the first record of the segment after it (every record
//! of a segment is older than that), so retention needs no file mtimes and is testable with an
//! injected clock.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::commitlog::{Segment, read_first_record};
use crate::types::{CommitLogOffset, QueueId};
use crate::consume_queue::{CQ_ENTRY_LEN, CqEntry};
use crate::error::{IoOp, Result, StoreError};
use crate::io::{Storage, StorageFile};
use crate::record;
use crate::store::{Inner, Store};

/// What one retention pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionOutcome {
    pub ran: bool,
    pub segments_deleted: usize,
    pub cq_files_deleted: usize,
    pub disk_usage_ratio: f64,
    pub disk_full: bool,
    /// Set when the pass deleted unexpired segments because the disk was nearly full
    /// (`cleanFileForciblyEnable` above `diskSpaceCleanForciblyRatio`): what they destroyed.
    pub forced: Option<ForcedCleanup>,
}

/// What a forced clean-up destroyed: segments deleted before their retention time, whose
/// messages may never have been consumed (the store does not know consumer offsets; the broker
/// does, and it is told the queues and entry counts). Logged at WARN and counted in
/// [`crate::StoreStats::forced_segments_deleted`] and `forced_entries_deleted`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForcedCleanup {
    /// Segments deleted early.
    pub segments: usize,
    /// Local commit-log offsets `[start, end)` they covered.
    pub log_range: (u64, u64),
    /// The same range as clients see offsets (PHYSICALOFFSET), when known.
    pub client_range: Option<(i64, i64)>,
    /// Consume-queue entries that pointed into the range, per topic and queue id: messages
    /// whose bodies are gone.
    pub entries: BTreeMap<String, BTreeMap<QueueId, u64>>,
}

impl ForcedCleanup {
    /// Entries destroyed, over every queue.
    pub fn total_entries(&self) -> u64 {
        self.entries.values().flat_map(|q| q.values()).sum()
    }
}

/// Whether `hour` (0..24) is listed in a `deleteWhen` value such as `"04"` or `"04;16"`.
pub fn is_delete_hour(delete_when: &str, hour: u32) -> bool {
    delete_when.split(';').filter_map(|h| h.trim().parse::<u32>().ok()).any(|h| h == hour)
}

/// Local hour of day of a Unix-epoch millisecond timestamp.
pub fn local_hour(ms: i64) -> u32 {
    local_time(ms).map_or(0, |tm| tm.tm_hour as u32)
}

/// A number that changes exactly when the local date of a Unix-epoch millisecond timestamp
/// does (year × 366 + day of the year): the broker's daily totals roll over on it, at local
/// midnight as Java's `BrokerStats.record()` does.
pub fn local_day(ms: i64) -> i64 {
    local_time(ms).map_or(ms.div_euclid(86_400_000), |tm| i64::from(tm.tm_year) * 366 + i64::from(tm.tm_yday))
}

fn local_time(ms: i64) -> Option<libc::tm> {
    let t: libc::time_t = (ms / 1000) as libc::time_t;
    // SAFETY: `tm` is plain data for which all-zero bytes are valid; `localtime_r` only writes it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call; localtime_r is thread-safe.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    ok.then_some(tm)
}

async fn first_store_time<S: Storage>(seg: &Segment<S::File>, segment_size: u64) -> Option<i64> {
    let rec = read_first_record(&seg.file, &seg.path, segment_size).await.ok()?;
    record::decode_record(&rec, false).ok().map(|r| r.store_timestamp_ms)
}

/// Reads the disk usage of the store's partition and sets the store's disk-full flag from it
/// (appends are refused while it is set); returns the usage ratio. Called by every retention
/// pass and, so that a fast writer cannot run far past the warning level between two passes,
/// by the flusher every [`crate::store::disk_check_every_bytes`] written and at every segment
/// creation.
pub(crate) async fn refresh_disk_full<S: Storage>(inner: &Inner<S>) -> Result<f64> {
    let cfg = &inner.cfg;
    let root = &cfg.root_dir;
    let usage = inner.storage.disk_usage_ratio(root).await.map_err(|e| StoreError::io(IoOp::Statvfs, root, e))?;
    let pct = usage * 100.0;
    let full = pct >= f64::from(cfg.disk_space_warning_level_ratio_pct);
    // Said once per change, at WARN: refusing every write is an outage an operator must see.
    match (inner.disk_full.replace(full), full) {
        (false, true) => tracing::warn!(
            dir = %root.display(),
            usage_pct = format_args!("{pct:.1}"),
            warning_level_pct = cfg.disk_space_warning_level_ratio_pct,
            "disk nearly full: refusing writes (SERVICE_NOT_AVAILABLE) until usage drops below diskSpaceWarningLevelRatio"
        ),
        (true, false) => tracing::warn!(dir = %root.display(), usage_pct = format_args!("{pct:.1}"), "disk usage back below the warning level: accepting writes again"),
        _ => {}
    }
    Ok(usage)
}

impl<S: Storage> Store<S> {
    /// One retention pass at time `now_ms` with local hour `hour`; `force` is the admin trigger.
    /// Passes never overlap: one asked for while another runs (the periodic task, an admin
    /// trigger, the flusher's wake-up when the disk fills) waits for it and then runs.
    pub async fn run_retention(&self, now_ms: i64, hour: u32, force: bool) -> Result<RetentionOutcome> {
        while self.inner.retention_busy.replace(true) {
            compio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let r = self.run_retention_pass(now_ms, hour, force).await;
        self.inner.retention_busy.set(false);
        r
    }

    async fn run_retention_pass(&self, now_ms: i64, hour: u32, force: bool) -> Result<RetentionOutcome> {
        let inner = &self.inner;
        let cfg = &inner.cfg;
        let usage = refresh_disk_full(inner).await?;
        let pct = usage * 100.0;
        let mut out = RetentionOutcome { disk_usage_ratio: usage, disk_full: inner.disk_full.get(), ..Default::default() };
        let over_max = pct >= f64::from(cfg.disk_max_used_space_ratio_pct);
        if !(force || over_max || is_delete_hour(&cfg.delete_when, hour)) {
            return Ok(out);
        }
        out.ran = true;
        let forcibly = cfg.clean_file_forcibly_enable && pct >= f64::from(cfg.disk_space_clean_forcibly_ratio_pct);
        let reserved_ms = cfg.file_reserved_time_hours as i64 * 3_600_000;
        let segs = inner.segments.borrow().clone();
        // Plan first (what goes, and which only because the disk is nearly full), so a forced
        // deletion can be accounted for while its consume-queue entries are still readable.
        let mut doomed: Vec<(Segment<S::File>, u64, bool)> = Vec::new();
        // Never the last (active) segment: pairs (candidate, the segment after it).
        for pair in segs.windows(2) {
            let [seg, next] = pair else { continue };
            if doomed.len() >= cfg.delete_file_batch_max {
                break;
            }
            let newest = first_store_time::<S>(next, cfg.segment_size_bytes).await;
            let expired = newest.is_some_and(|t| t + reserved_ms <= now_ms);
            if !(expired || forcibly) {
                break;
            }
            // The highest client range of the shard must stay on disk: after a restart the
            // allocator starts above the ranges it finds, and a deleted top range would be
            // handed out again while clients may still hold offsets into it. A later segment
            // with a range of its own (hence a higher one) makes this one deletable.
            if !self.has_client_range(next.base) {
                break;
            }
            doomed.push((seg.clone(), next.base, !expired));
        }
        if !doomed.is_empty() {
            // Recovery rebuilds a queue's unsynced entries from the log (from the checkpoint's
            // replay start): sync every queue first, and keep every segment from where a crash
            // would replay (a write of a queue in progress meanwhile may leave it behind).
            crate::store::run_fresh_checkpoint(inner, crate::store::Sweep::Thorough).await?;
            let replay_from = inner.durable_replay_from.get();
            doomed.retain(|d| d.1 <= replay_from);
        }
        let forced_segments: Vec<(u64, u64)> = doomed.iter().filter(|d| d.2).map(|d| (d.0.base, d.1)).collect();
        if let (Some(first), Some(last)) = (forced_segments.first(), forced_segments.last()) {
            let (start, end) = (first.0, last.1);
            let client_start = self.client_offset(CommitLogOffset(start)).map(|c| c.0);
            let client_end = self.client_offset(CommitLogOffset(last.0)).map(|c| c.0 + (end - last.0) as i64);
            let forced = ForcedCleanup {
                segments: forced_segments.len(),
                log_range: (start, end),
                client_range: client_start.zip(client_end),
                entries: entries_pointing_into(inner, start, end).await,
            };
            report_forced(inner, &forced, pct);
            out.forced = Some(forced);
        }
        let mut deleted = 0;
        for (seg, next_base, _) in &doomed {
            // Move the minimum first so no reader is sent to a file about to vanish.
            inner.log_min.set(*next_base);
            inner.storage.remove_file(&seg.path).await.map_err(|e| StoreError::io(IoOp::Remove, &seg.path, e))?;
            inner.segments.borrow_mut().retain(|s| s.base != seg.base);
            self.drop_client_range(seg.base);
            deleted += 1;
        }
        if deleted > 0 {
            inner.storage.sync_dir(&inner.log_dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, &inner.log_dir, e))?;
            inner.stats.borrow_mut().segments_deleted += deleted as u64;
            out.segments_deleted = deleted;
            out.cq_files_deleted = retire_consume_queues(inner, inner.log_min.get()).await?;
            crate::index::retire_below(inner, inner.log_min.get()).await?;
            self.checkpoint().await?;
        }
        Ok(out)
    }
}

/// Logs a forced clean-up at WARN (one line, then one per topic) and counts it.
fn report_forced<S: Storage>(inner: &Inner<S>, forced: &ForcedCleanup, usage_pct: f64) {
    let total = forced.total_entries();
    let client = forced.client_range.map(|(a, b)| format!("{a}..{b}")).unwrap_or_else(|| "unknown".into());
    tracing::warn!(
        shard = %inner.cfg.shard,
        usage_pct = format_args!("{usage_pct:.1}"),
        forcibly_ratio_pct = inner.cfg.disk_space_clean_forcibly_ratio_pct,
        segments = forced.segments,
        log_offsets = format_args!("{}..{}", forced.log_range.0, forced.log_range.1),
        client_offsets = %client,
        topics = forced.entries.len(),
        messages = total,
        "forced clean-up (cleanFileForciblyEnable): the disk is nearly full, so commit-log segments are deleted before fileReservedTime; \
         their messages are gone whether or not they were consumed"
    );
    for (topic, queues) in &forced.entries {
        let per_queue = queues.iter().map(|(q, n)| format!("{q}:{n}")).collect::<Vec<_>>().join(",");
        tracing::warn!(
            shard = %inner.cfg.shard,
            topic = %topic,
            messages = queues.values().sum::<u64>(),
            queues = %per_queue,
            "forced clean-up removed messages of this topic (queueId:count); consumers behind them skip to the new minimum offset"
        );
    }
    let mut st = inner.stats.borrow_mut();
    st.forced_cleanups += 1;
    st.forced_segments_deleted += forced.segments as u64;
    st.forced_entries_deleted += total;
}

/// Consume-queue entries pointing into local log offsets `[start, end)`, per topic and queue.
/// Entries of a queue point at growing log offsets, so two binary searches per queue find them
/// (a few 20-byte reads per queue, page-cached for recent queues); a queue whose entries cannot
/// be read is left out (the count is a report, not a decision).
async fn entries_pointing_into<S: Storage>(inner: &Rc<Inner<S>>, start: u64, end: u64) -> BTreeMap<String, BTreeMap<QueueId, u64>> {
    let queues: Vec<_> = inner.queues.borrow().iter().map(|(topic, queue_id, q)| (topic.clone(), queue_id, q.clone())).collect();
    let mut out: BTreeMap<String, BTreeMap<QueueId, u64>> = BTreeMap::new();
    for (topic, queue_id, q) in queues {
        let (min, max) = {
            let q = q.borrow();
            (q.min_offset, q.max_offset)
        };
        if min >= max {
            continue;
        }
        let (Some(from), Some(to)) = (first_at_or_above(&inner.cq_files, &q, min, max, start).await, first_at_or_above(&inner.cq_files, &q, min, max, end).await) else { continue };
        if to > from {
            out.entry(topic.to_string()).or_default().insert(queue_id, to - from);
        }
    }
    out
}

/// The first queue offset in `[lo, hi)` whose entry points at or above `target` (`hi` if none);
/// `None` if an entry cannot be read.
async fn first_at_or_above<S: Storage>(
    files: &crate::consume_queue::CqDescriptors<S>,
    q: &std::cell::RefCell<crate::consume_queue::ConsumeQueue>,
    mut lo: u64,
    mut hi: u64,
    target: u64,
) -> Option<u64> {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let entry = crate::consume_queue::read_entries(files, q, mid, 1).await.ok()??;
        if entry.first()?.offset >= target {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}

/// Deletes consume-queue files whose entries all point below `log_min` and moves each queue's
/// min offset to its first entry at or above it.
async fn retire_consume_queues<S: Storage>(inner: &Rc<Inner<S>>, log_min: u64) -> Result<usize> {
    let queues: Vec<_> = inner.queues.borrow().values().cloned().collect();
    let mut removed = 0;
    for q in queues {
        let (files, per, max) = {
            let q = q.borrow();
            (q.files.clone(), q.entries_per_file, q.max_offset)
        };
        let mut dir_dirty = false;
        // A queue its topic's deletion detached meanwhile is the dispatcher's to remove.
        let registered = |inner: &Inner<S>| {
            let qm = q.borrow();
            inner.queues.borrow().get(&qm.topic, qm.queue_id).is_some_and(|x| Rc::ptr_eq(x, &q))
        };
        for f in files.iter().take(files.len().saturating_sub(1)) {
            let last_pos = (per - 1) * CQ_ENTRY_LEN as u64;
            // Gone already (its topic's deletion got there first).
            let Some(file) = inner.cq_files.existing(&f.path).await? else { break };
            let b = file.read_at(CQ_ENTRY_LEN, last_pos).await.map_err(|e| StoreError::io(IoOp::Read, &f.path, e))?;
            let Some(last) = CqEntry::decode(&b) else { break };
            if last.offset >= log_min || !registered(inner) {
                break;
            }
            {
                let mut qm = q.borrow_mut();
                qm.min_offset = qm.min_offset.max(f.first + per);
                qm.files.retain(|x| x.first != f.first);
            }
            inner.cq_files.remove(&f.path).await.map_err(|e| StoreError::io(IoOp::Remove, &f.path, e))?;
            dir_dirty = true;
            removed += 1;
        }
        if dir_dirty && registered(inner) {
            let dir = q.borrow().dir.clone();
            inner.storage.sync_dir(&dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, &dir, e))?;
        }
        // Within the first remaining file, skip entries whose records are gone.
        let mut min = q.borrow().min_offset;
        while min < max {
            let Some(e) = crate::consume_queue::read_entries(&inner.cq_files, &q, min, 1).await? else { break };
            match e.first() {
                Some(e) if e.offset < log_min => min += 1,
                _ => break,
            }
        }
        q.borrow_mut().min_offset = min;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_when_parses_hour_lists() {
        assert!(is_delete_hour("04", 4));
        assert!(!is_delete_hour("04", 5));
        assert!(is_delete_hour("04;16", 16));
        assert!(!is_delete_hour("", 0));
        assert!(local_hour(0) < 24);
        let noon = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000 + 43_200_000;
        assert_eq!(local_day(noon), local_day(noon + 3_600_000), "one local day");
        assert_ne!(local_day(noon), local_day(noon + 86_400_000), "the next day");
    }
}
