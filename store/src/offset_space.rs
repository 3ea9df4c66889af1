//! The broker-wide space of client-visible commit-log offsets: which range of it each commit-log
//! segment of each shard owns, the allocator that hands a segment its range when the segment's
//! first record is encoded, and the lookup from a client offset back to (shard, local offset).
//!
//! Why: clients send physical offsets back (CONSUMER_SEND_MSG_BACK `offset`, END_TRANSACTION
//! `commitLogOffset`, VIEW_MESSAGE_BY_ID through the offsetMsgId) and JavaScript clients hold
//! them as IEEE doubles, exact only below 2^53 ([`CLIENT_OFFSET_EXACT_LIMIT`]). All shards of a
//! broker therefore share one offset space that grows at the rate of all their writes together,
//! like the Java broker's single commit log, instead of each shard owning a 2^55-byte slice of
//! it. Everything inside a store stays shard-local (segment files, consume queues, index,
//! checkpoint); only the offsets clients see are translated, per segment:
//!
//! ```text
//! client offset of local position p in the segment with local base L = G + (p − L)
//! ```
//!
//! where G, the segment's *client base*, is handed out by [`OffsetSpace::allocate`]. G is not
//! kept in a file of its own: every record carries its client offset in PHYSICALOFFSET, so a
//! store derives G from the first record of each segment when it opens (see `DESIGN-NOTES.md`).
//!
//! Thread-safety: one `OffsetSpace` is shared by every shard of a broker (`Arc<OffsetSpace>`).
//! Reads ([`OffsetSpace::locate`]) are lock-free (an atomically swapped, sorted snapshot);
//! changes (a segment roll, an open, a retention pass) take a mutex and publish a new snapshot.
//! Changes happen once per segment, never per message.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use crate::commitlog::segment_name;
use crate::error::{Result, StoreError};
use crate::types::{ClientPhysicalOffset, CommitLogOffset, LOCAL_OFFSET_BITS, MAX_LOCAL_OFFSET, ShardId};

/// Client offsets below this are exact as IEEE doubles (JavaScript numbers): 2^53.
pub const CLIENT_OFFSET_EXACT_LIMIT: u64 = 1 << 53;

/// Largest end (exclusive) of a client range: client offsets are positive Java longs.
const CLIENT_OFFSET_END_MAX: u64 = i64::MAX as u64;

/// The client base a segment had under the legacy encoding (shard id in bits 62..55, local
/// offset below), which stores written before the shared offset space carry. Shard 0's legacy
/// base equals its local base, which is also a valid base in the shared space.
pub fn legacy_client_base(shard: ShardId, local_base: CommitLogOffset) -> Option<u64> {
    (local_base.0 <= MAX_LOCAL_OFFSET).then(|| (u64::from(shard.0) << LOCAL_OFFSET_BITS) | local_base.0)
}

/// The range of client offsets one commit-log segment owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRange {
    /// First client offset of the segment (G): the client offset of its local base.
    pub client_base: u64,
    /// Length of the range: the segment size.
    pub len_bytes: u64,
    pub shard: ShardId,
    /// Local commit-log offset of the segment's first byte (its file name).
    pub local_base: CommitLogOffset,
}

impl SegmentRange {
    /// One past the last client offset of the range.
    pub fn client_end(&self) -> u64 {
        self.client_base.saturating_add(self.len_bytes)
    }

    /// Whether the range is a legacy one of shard ≥ 1 (shard id in the top bits, so above
    /// 2^53): readable by the offsets clients already hold, but never written to again.
    pub fn is_legacy_high(&self) -> bool {
        self.shard.0 != 0 && legacy_client_base(self.shard, self.local_base) == Some(self.client_base)
    }

    fn overlaps(&self, other: &SegmentRange) -> bool {
        self.client_base < other.client_end() && other.client_base < self.client_end()
    }

    fn describe(&self) -> String {
        format!(
            "segment {} of {} (client offsets {:#x}..{:#x})",
            segment_name(self.local_base.0),
            self.shard,
            self.client_base,
            self.client_end()
        )
    }
}

struct WriterState {
    /// Lowest client offset a new allocation may use: the end of every non-legacy range ever
    /// registered or allocated in this process. Never decreases, so a range unregistered by
    /// retention or by a failed store is never handed out again while the process runs.
    high_water: u64,
    /// Shards with an open store in this space.
    open_shards: BTreeSet<u8>,
}

/// The broker-wide client offset space. See the module documentation.
///
/// Contract with the broker:
/// * create **one** `OffsetSpace` per broker and open every shard's store with it
///   ([`crate::Store::open_in`]); all opens must complete before any shard appends, so that
///   the first allocation sees the ranges of every shard's existing segments (allocation is
///   lazy, at the first append into a new segment, so the natural start-up order — open all
///   shards, then accept traffic — satisfies this);
/// * resolve a client offset with [`OffsetSpace::locate`] (from any thread) and read the record
///   on the owning shard with `Store::read_record(local)`; `None` means no stored segment owns
///   the offset (never written, or deleted by retention): answer "not found".
///
/// Invariants: ranges never overlap (an overlap found at open is reported as corruption naming
/// both segments); within one shard, client bases grow with local bases.
pub struct OffsetSpace {
    /// Every registered range, sorted by client base. Swapped whole on every change.
    ranges: ArcSwap<Vec<SegmentRange>>,
    writer: Mutex<WriterState>,
}

// Shared by every shard thread of a broker.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<OffsetSpace>();
};

impl Default for OffsetSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for OffsetSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetSpace")
            .field("segments", &self.ranges.load().len())
            .field("allocated_end", &self.allocated_end())
            .finish()
    }
}

impl OffsetSpace {
    /// An empty space.
    pub fn new() -> Self {
        OffsetSpace {
            ranges: ArcSwap::from_pointee(Vec::new()),
            writer: Mutex::new(WriterState { high_water: 0, open_shards: BTreeSet::new() }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, WriterState> {
        // A panic while holding the lock cannot leave the snapshot half-changed (it is swapped
        // whole), so a poisoned lock is still consistent.
        self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The shard and local commit-log offset of a client offset, if a registered segment owns it.
    /// Lock-free.
    pub fn locate(&self, offset: ClientPhysicalOffset) -> Option<(ShardId, CommitLogOffset)> {
        let x = u64::try_from(offset.0).ok()?;
        let ranges = self.ranges.load();
        let i = ranges.partition_point(|r| r.client_base <= x).checked_sub(1)?;
        let r = ranges.get(i)?;
        (x < r.client_end()).then(|| (r.shard, CommitLogOffset(r.local_base.0 + (x - r.client_base))))
    }

    /// A snapshot of every registered range, sorted by client base.
    pub fn ranges(&self) -> Vec<SegmentRange> {
        self.ranges.load().as_ref().clone()
    }

    /// Where the next allocation starts at the earliest: one past the highest client offset
    /// handed out or registered in the low (non-legacy) space.
    pub fn allocated_end(&self) -> u64 {
        self.lock().high_water
    }

    /// Hands the segment at `local_base` of `shard` the next free range of `len_bytes` client
    /// offsets, aligned to `len_bytes` and above every range registered or allocated so far
    /// (except legacy ones, which sit above 2^53 and are skipped over if ever reached). A range
    /// the segment held before (an allocation whose first record never became durable) is
    /// replaced.
    pub fn allocate(&self, shard: ShardId, local_base: CommitLogOffset, len_bytes: u64) -> Result<ClientPhysicalOffset> {
        let exhausted = || StoreError::Config(format!(
            "the client offset space is exhausted: no {len_bytes}-byte range is free below 2^63 for segment {} of {shard}",
            segment_name(local_base.0)
        ));
        if len_bytes == 0 {
            return Err(StoreError::Config("a segment range cannot be empty".into()));
        }
        let mut w = self.lock();
        let current = self.ranges.load_full();
        let others: Vec<SegmentRange> =
            current.iter().filter(|r| !(r.shard == shard && r.local_base == local_base)).copied().collect();
        let mut start = round_up(w.high_water, len_bytes).ok_or_else(exhausted)?;
        loop {
            let end = start.checked_add(len_bytes).filter(|e| *e <= CLIENT_OFFSET_END_MAX).ok_or_else(exhausted)?;
            let probe = SegmentRange { client_base: start, len_bytes, shard, local_base };
            match others.iter().find(|r| r.overlaps(&probe)) {
                Some(r) => start = round_up(r.client_end(), len_bytes).ok_or_else(exhausted)?,
                None => {
                    let mut next = others;
                    let at = next.partition_point(|r| r.client_base < start);
                    next.insert(at, probe);
                    self.ranges.store(Arc::new(next));
                    // Said once: by the first range that reaches past 2^53.
                    if w.high_water <= CLIENT_OFFSET_EXACT_LIMIT && end > CLIENT_OFFSET_EXACT_LIMIT {
                        tracing::warn!(
                            %shard,
                            client_offset = start,
                            "client-visible commit-log offsets now pass 2^53: JavaScript clients will round them (as with a Java broker's commit log at this size)"
                        );
                    }
                    w.high_water = w.high_water.max(end);
                    return Ok(ClientPhysicalOffset(start as i64));
                }
            }
        }
    }

    /// Marks `shard` open in this space until the returned claim is dropped or released. A
    /// second store for the same shard in one space is a configuration error.
    pub(crate) fn claim(self: &Arc<Self>, shard: ShardId) -> Result<ShardClaim> {
        let mut w = self.lock();
        if !w.open_shards.insert(shard.0) {
            return Err(StoreError::Config(format!("{shard} is already open in this offset space")));
        }
        Ok(ShardClaim { space: self.clone(), shard, released: false })
    }

    /// Registers the segments of `shard` found on disk (in local order), replacing whatever the
    /// shard had registered. Fails with [`StoreError::Corruption`] when a client base is not one
    /// this allocator or the legacy encoding could have produced, when client bases do not grow
    /// with local bases, or when a range overlaps another segment's (of this or another shard).
    pub(crate) fn register_shard(&self, shard: ShardId, segments: &[SegmentRange]) -> Result<()> {
        let corrupt = |r: &SegmentRange, reason: String| StoreError::Corruption { offset: r.local_base.0, reason };
        let mut prev: Option<&SegmentRange> = None;
        for r in segments {
            assert_eq!(r.shard, shard, "a shard registers only its own segments");
            if r.len_bytes == 0 || r.client_base.checked_add(r.len_bytes).is_none_or(|e| e > CLIENT_OFFSET_END_MAX) {
                return Err(corrupt(r, format!("{} is not a valid client range", r.describe())));
            }
            if !r.is_legacy_high() && !r.client_base.is_multiple_of(r.len_bytes) {
                return Err(corrupt(
                    r,
                    format!(
                        "{}: the first record's PHYSICALOFFSET is neither a legacy offset of this shard ({:#x}) nor aligned to the segment size",
                        r.describe(),
                        legacy_client_base(shard, r.local_base).unwrap_or(0)
                    ),
                ));
            }
            if let Some(p) = prev {
                let ordered = p.local_base < r.local_base
                    && match (p.is_legacy_high(), r.is_legacy_high()) {
                        // Legacy segments come first, then segments of the shared space, each
                        // allocated after (hence above) the one before.
                        (true, _) => true,
                        (false, true) => false,
                        (false, false) => p.client_end() <= r.client_base,
                    };
                if !ordered {
                    return Err(corrupt(r, format!("{} does not follow {} in the client offset space", r.describe(), p.describe())));
                }
            }
            prev = Some(r);
        }
        let mut w = self.lock();
        let current = self.ranges.load_full();
        let mut next: Vec<SegmentRange> = current.iter().filter(|r| r.shard != shard).copied().collect();
        for r in segments {
            let at = next.partition_point(|x| x.client_base < r.client_base);
            let neighbours = [at.checked_sub(1).and_then(|i| next.get(i)), next.get(at)];
            if let Some(o) = neighbours.into_iter().flatten().find(|o| o.overlaps(r)) {
                return Err(corrupt(r, format!("{} overlaps {}", r.describe(), o.describe())));
            }
            next.insert(at, *r);
        }
        let low_end = segments.iter().filter(|r| !r.is_legacy_high()).map(SegmentRange::client_end).max().unwrap_or(0);
        w.high_water = w.high_water.max(low_end);
        self.ranges.store(Arc::new(next));
        Ok(())
    }

    /// Registers the range a replica's new segment takes from its master's records (a replica
    /// never allocates: its ranges are its master's). Fails with [`StoreError::Corruption`]
    /// when the range is implausible or overlaps another segment's.
    pub(crate) fn adopt(&self, range: SegmentRange) -> Result<()> {
        let corrupt = |reason: String| StoreError::Corruption { offset: range.local_base.0, reason };
        if range.len_bytes == 0 || range.client_base.checked_add(range.len_bytes).is_none_or(|e| e > CLIENT_OFFSET_END_MAX) {
            return Err(corrupt(format!("{} from the master is not a valid client range", range.describe())));
        }
        if !range.is_legacy_high() && !range.client_base.is_multiple_of(range.len_bytes) {
            return Err(corrupt(format!("{} from the master is not aligned to the segment size", range.describe())));
        }
        let mut w = self.lock();
        let current = self.ranges.load_full();
        let mut next: Vec<SegmentRange> =
            current.iter().filter(|r| !(r.shard == range.shard && r.local_base == range.local_base)).copied().collect();
        if let Some(o) = next.iter().find(|o| o.overlaps(&range)) {
            return Err(corrupt(format!("{} from the master overlaps {}", range.describe(), o.describe())));
        }
        let at = next.partition_point(|r| r.client_base < range.client_base);
        next.insert(at, range);
        if !range.is_legacy_high() {
            w.high_water = w.high_water.max(range.client_end());
        }
        self.ranges.store(Arc::new(next));
        Ok(())
    }

    /// Removes the range of one segment (deleted by retention, or cut as a torn tail).
    pub(crate) fn unregister(&self, shard: ShardId, local_base: CommitLogOffset) {
        let _w = self.lock();
        let current = self.ranges.load_full();
        if current.iter().any(|r| r.shard == shard && r.local_base == local_base) {
            let next = current.iter().filter(|r| !(r.shard == shard && r.local_base == local_base)).copied().collect();
            self.ranges.store(Arc::new(next));
        }
    }

    fn release(&self, shard: ShardId) {
        let mut w = self.lock();
        w.open_shards.remove(&shard.0);
        let current = self.ranges.load_full();
        let next = current.iter().filter(|r| r.shard != shard).copied().collect();
        self.ranges.store(Arc::new(next));
    }
}

fn round_up(x: u64, to: u64) -> Option<u64> {
    x.checked_next_multiple_of(to)
}

/// A shard's registration in an [`OffsetSpace`], held by its open store. Releasing it (on
/// close, or when the store is dropped) removes the shard's ranges, so `locate` stops naming a
/// store that can no longer serve reads; the allocator's high-water mark stays, so those ranges
/// are not handed out again in this process.
pub(crate) struct ShardClaim {
    space: Arc<OffsetSpace>,
    shard: ShardId,
    released: bool,
}

impl ShardClaim {
    pub(crate) fn space(&self) -> &Arc<OffsetSpace> {
        &self.space
    }

    pub(crate) fn release(&mut self) {
        if !std::mem::replace(&mut self.released, true) {
            self.space.release(self.shard);
        }
    }
}

impl Drop for ShardClaim {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 4096;

    fn range(shard: u8, local: u64, client: u64) -> SegmentRange {
        SegmentRange { client_base: client, len_bytes: SEG, shard: ShardId(shard), local_base: CommitLogOffset(local) }
    }

    #[test]
    fn allocations_interleave_shards_and_locate_back() {
        let space = OffsetSpace::new();
        let a = space.allocate(ShardId(0), CommitLogOffset(0), SEG).unwrap();
        let b = space.allocate(ShardId(1), CommitLogOffset(0), SEG).unwrap();
        let c = space.allocate(ShardId(0), CommitLogOffset(SEG), SEG).unwrap();
        assert_eq!((a.0, b.0, c.0), (0, 4096, 8192));
        assert_eq!(space.locate(ClientPhysicalOffset(4096 + 17)), Some((ShardId(1), CommitLogOffset(17))));
        assert_eq!(space.locate(ClientPhysicalOffset(8192)), Some((ShardId(0), CommitLogOffset(SEG))));
        assert_eq!(space.locate(ClientPhysicalOffset(3 * 4096)), None);
        assert_eq!(space.locate(ClientPhysicalOffset(-1)), None);
        assert_eq!(space.allocated_end(), 3 * 4096);
    }

    #[test]
    fn legacy_ranges_are_located_but_not_followed() {
        let space = OffsetSpace::new();
        let legacy1 = legacy_client_base(ShardId(1), CommitLogOffset(0)).unwrap();
        assert_eq!(legacy1, 0x80_0000_0000_0000);
        space.register_shard(ShardId(0), &[range(0, 0, 0), range(0, SEG, SEG)]).unwrap();
        space.register_shard(ShardId(1), &[range(1, 0, legacy1), range(1, SEG, legacy1 + SEG)]).unwrap();
        assert!(space.ranges()[2].is_legacy_high());
        // The issue's example: a legacy offset stays addressable by the value clients hold,
        // though a JavaScript client rounds it (which is why new ranges stay below 2^53).
        let held = 0x80_0000_0000_0ebf_i64;
        assert_eq!(space.locate(ClientPhysicalOffset(held)), Some((ShardId(1), CommitLogOffset(0xebf))));
        assert_eq!((held as f64) as i64, 0x80_0000_0000_0ec0);
        // New space starts above shard 0's (low) segments, not above the legacy ones.
        let g = space.allocate(ShardId(1), CommitLogOffset(2 * SEG), SEG).unwrap();
        assert_eq!(g.0, 2 * SEG as i64);
        assert!((g.0 as f64) as i64 == g.0);
    }

    #[test]
    fn allocation_skips_over_legacy_ranges_it_reaches() {
        let space = OffsetSpace::new();
        let legacy1 = legacy_client_base(ShardId(1), CommitLogOffset(0)).unwrap();
        space.register_shard(ShardId(1), &[range(1, 0, legacy1)]).unwrap();
        space.register_shard(ShardId(2), &[range(2, 0, legacy1 - SEG)]).unwrap();
        // The low space runs right up to the legacy range of shard 1: skip it.
        let g = space.allocate(ShardId(2), CommitLogOffset(SEG), SEG).unwrap();
        assert_eq!(g.0 as u64, legacy1 + SEG);
    }

    #[test]
    fn allocation_continues_past_2_pow_53_as_java_offsets_do() {
        let space = OffsetSpace::new();
        let top = CLIENT_OFFSET_EXACT_LIMIT - 2 * SEG;
        space.register_shard(ShardId(0), &[range(0, 0, top)]).unwrap();
        let last_exact = space.allocate(ShardId(1), CommitLogOffset(0), SEG).unwrap();
        assert_eq!(last_exact.0 as u64 + SEG, CLIENT_OFFSET_EXACT_LIMIT);
        let past = space.allocate(ShardId(1), CommitLogOffset(SEG), SEG).unwrap();
        assert_eq!(past.0 as u64, CLIENT_OFFSET_EXACT_LIMIT);
        // A store that really wrote that much still opens.
        space.register_shard(ShardId(1), &[range(1, 0, last_exact.0 as u64), range(1, SEG, past.0 as u64)]).unwrap();
    }

    #[test]
    fn overlaps_and_disorder_are_corruption_naming_both_segments() {
        let space = OffsetSpace::new();
        space.register_shard(ShardId(0), &[range(0, 0, 0), range(0, SEG, 2 * SEG)]).unwrap();
        let e = space.register_shard(ShardId(1), &[range(1, 0, 2 * SEG)]).unwrap_err().to_string();
        assert!(e.contains("shard-1") && e.contains("shard-0") && e.contains("overlaps"), "{e}");
        // Nothing of the failed registration is visible.
        assert_eq!(space.locate(ClientPhysicalOffset(2 * SEG as i64)), Some((ShardId(0), CommitLogOffset(SEG))));
        let e = space.register_shard(ShardId(1), &[range(1, 0, 8 * SEG), range(1, SEG, 4 * SEG)]).unwrap_err().to_string();
        assert!(e.contains("does not follow"), "{e}");
        let e = space.register_shard(ShardId(1), &[range(1, 0, 8 * SEG + 1)]).unwrap_err().to_string();
        assert!(e.contains("aligned"), "{e}");
        let legacy1 = legacy_client_base(ShardId(1), CommitLogOffset(SEG)).unwrap();
        let e = space.register_shard(ShardId(1), &[range(1, 0, 8 * SEG), range(1, SEG, legacy1)]).unwrap_err().to_string();
        assert!(e.contains("does not follow"), "a legacy segment after a new one: {e}");
    }

    #[test]
    fn unregistered_ranges_are_not_handed_out_again() {
        let space = OffsetSpace::new();
        space.allocate(ShardId(0), CommitLogOffset(0), SEG).unwrap();
        let g = space.allocate(ShardId(0), CommitLogOffset(SEG), SEG).unwrap();
        space.unregister(ShardId(0), CommitLogOffset(SEG));
        assert_eq!(space.locate(g), None);
        // A fresh allocation for the same segment (its first record never became durable).
        let g2 = space.allocate(ShardId(0), CommitLogOffset(SEG), SEG).unwrap();
        assert!(g2.0 > g.0);
    }

    #[test]
    fn a_shard_opens_once_per_space() {
        let space = Arc::new(OffsetSpace::new());
        let mut claim = space.claim(ShardId(3)).unwrap();
        assert!(space.claim(ShardId(3)).is_err());
        space.allocate(ShardId(3), CommitLogOffset(0), SEG).unwrap();
        claim.release();
        assert_eq!(space.locate(ClientPhysicalOffset(0)), None);
        assert!(space.claim(ShardId(3)).is_ok());
    }
}
