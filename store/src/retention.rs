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

use std::rc::Rc;

use crate::commitlog::{Segment, read_first_record};
use crate::consume_queue::{CQ_ENTRY_LEN, CqEntry};
use crate::error::{Result, StoreError};
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
}

/// Whether `hour` (0..24) is listed in a `deleteWhen` value such as `"04"` or `"04;16"`.
pub fn is_delete_hour(delete_when: &str, hour: u32) -> bool {
    delete_when.split(';').filter_map(|h| h.trim().parse::<u32>().ok()).any(|h| h == hour)
}

/// Local hour of day of a Unix-epoch millisecond timestamp.
pub fn local_hour(ms: i64) -> u32 {
    let t: libc::time_t = (ms / 1000) as libc::time_t;
    // SAFETY: `tm` is plain data for which all-zero bytes are valid; `localtime_r` only writes it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call; localtime_r is thread-safe.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok { tm.tm_hour as u32 } else { 0 }
}

async fn first_store_time<S: Storage>(seg: &Segment<S::File>, segment_size: u64) -> Option<i64> {
    let rec = read_first_record(&seg.file, &seg.path, segment_size).await.ok()?;
    record::decode_record(&rec, false).ok().map(|r| r.store_timestamp_ms)
}

impl<S: Storage> Store<S> {
    /// One retention pass at time `now_ms` with local hour `hour`; `force` is the admin trigger.
    pub async fn run_retention(&self, now_ms: i64, hour: u32, force: bool) -> Result<RetentionOutcome> {
        let inner = &self.inner;
        let cfg = &inner.cfg;
        let root = &cfg.root_dir;
        let usage = inner.storage.disk_usage_ratio(root).await.map_err(|e| StoreError::io("statvfs", root, e))?;
        let pct = usage * 100.0;
        let mut out = RetentionOutcome { disk_usage_ratio: usage, ..Default::default() };
        out.disk_full = pct >= f64::from(cfg.disk_space_warning_level_ratio_pct);
        // Said once per change, at WARN: refusing every write is an outage an operator must see.
        match (inner.disk_full.replace(out.disk_full), out.disk_full) {
            (false, true) => tracing::warn!(
                dir = %root.display(),
                usage_pct = format_args!("{pct:.1}"),
                warning_level_pct = cfg.disk_space_warning_level_ratio_pct,
                "disk nearly full: refusing writes (SERVICE_NOT_AVAILABLE) until usage drops below diskSpaceWarningLevelRatio"
            ),
            (true, false) => tracing::warn!(dir = %root.display(), usage_pct = format_args!("{pct:.1}"), "disk usage back below the warning level: accepting writes again"),
            _ => {}
        }
        let over_max = pct >= f64::from(cfg.disk_max_used_space_ratio_pct);
        if !(force || over_max || is_delete_hour(&cfg.delete_when, hour)) {
            return Ok(out);
        }
        out.ran = true;
        let forcibly = cfg.clean_file_forcibly_enable && pct >= f64::from(cfg.disk_space_clean_forcibly_ratio_pct);
        let reserved_ms = cfg.file_reserved_time_hours as i64 * 3_600_000;
        let segs = inner.segments.borrow().clone();
        let mut deleted = 0;
        // Never the last (active) segment: pairs (candidate, the segment after it).
        for pair in segs.windows(2) {
            let [seg, next] = pair else { continue };
            if deleted >= cfg.delete_file_batch_max {
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
            // Move the minimum first so no reader is sent to a file about to vanish.
            inner.log_min.set(next.base);
            inner.storage.remove_file(&seg.path).await.map_err(|e| StoreError::io("remove", &seg.path, e))?;
            inner.segments.borrow_mut().retain(|s| s.base != seg.base);
            self.drop_client_range(seg.base);
            deleted += 1;
        }
        if deleted > 0 {
            inner.storage.sync_dir(&inner.log_dir).await.map_err(|e| StoreError::io("sync dir", &inner.log_dir, e))?;
            inner.stats.borrow_mut().segments_deleted += deleted as u64;
            out.segments_deleted = deleted;
            out.cq_files_deleted = retire_consume_queues(inner, inner.log_min.get()).await?;
            crate::index::retire_below(inner, inner.log_min.get()).await?;
            self.checkpoint().await?;
        }
        Ok(out)
    }
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
            inner.queues.borrow().get(&(qm.topic.clone(), qm.queue_id)).is_some_and(|x| Rc::ptr_eq(x, &q))
        };
        for f in files.iter().take(files.len().saturating_sub(1)) {
            let last_pos = (per - 1) * CQ_ENTRY_LEN as u64;
            let b = f.file.read_at(CQ_ENTRY_LEN, last_pos).await.map_err(|e| StoreError::io("read", &f.path, e))?;
            let Some(last) = CqEntry::decode(&b) else { break };
            if last.offset >= log_min || !registered(inner) {
                break;
            }
            {
                let mut qm = q.borrow_mut();
                qm.min_offset = qm.min_offset.max(f.first + per);
                qm.files.retain(|x| x.first != f.first);
            }
            inner.storage.remove_file(&f.path).await.map_err(|e| StoreError::io("remove", &f.path, e))?;
            dir_dirty = true;
            removed += 1;
        }
        if dir_dirty && registered(inner) {
            let dir = q.borrow().dir.clone();
            inner.storage.sync_dir(&dir).await.map_err(|e| StoreError::io("sync dir", &dir, e))?;
        }
        // Within the first remaining file, skip entries whose records are gone.
        let mut min = q.borrow().min_offset;
        while min < max {
            let Some(e) = crate::consume_queue::read_entries(&q, min, 1).await? else { break };
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
    }
}
