//! The thread's cache of file blocks for copied bodies.
//!
//! Queues interleave in the commit log, so the 32 records of one pull are spread over a span
//! several times their size (four times with four queues on a shard), and the next pulls of
//! the other queues want the records in between. Reading each pull's covering span with one
//! `pread` made the kernel copy ~3.8 bytes out of the page cache per byte sent, in 1.7 reads
//! per pull. Blocks read here are kept for the next pulls on this thread instead (runs of
//! several segments only: a segment alone is read alone, see `file_body.rs`): a catch-up of 8
//! queues on 2 shards reads 1.22 bytes per byte sent in 0.61 reads per pull, and costs the
//! broker 5–10 % less CPU per record (not 3×: the repeated span reads had mostly hit the CPU's
//! cache; the first read of each byte from memory is what is left). Figures:
//! `bench/results/2026-12-07-consume-count/`, bench/RESULTS.md 2026-12-07 (17:20–19:15).
//!
//! Owned by one thread (a thread-local); only page-cache reads fill it (`preadv2(RWF_NOWAIT)`,
//! see [`cold`](super::cold)): a block that is not cached sends its body to the pool, which
//! reads past this cache. Bounded: [`CACHED_BLOCKS`] × [`BLOCK_BYTES`] (1 MiB) per thread.
//!
//! Why a cached byte is still the file's byte: a [`FileSegment`] promises that the bytes of
//! its file below `settled_end` never change while that `Arc<File>` lives (the store gives a
//! segment a new `Arc` when it rewrites bytes, as a replica's truncation does). A block holds
//! a `Weak` of the `Arc` it was read through, so no other `Arc` can be allocated at that
//! address while the block is kept, and only bytes below `settled_end` are ever read into it.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::sync::{Arc, Weak};

use super::FileSegment;
use super::cold::{self, NoWait};

/// Bytes per cached block (aligned in the file).
pub(super) const BLOCK_BYTES: u64 = 64 * 1024;
/// Blocks kept per thread, least recently used evicted first: 1 MiB per thread. A catch-up of
/// 8 queues on 2 shards through one connection's thread read 1.22 bytes per byte sent with 16
/// (0.61 reads per pull, what `block-cache-sim.py` beside the figures predicts) and 1.7–2.6
/// with 8, which also cost 3–5 % more broker CPU per record.
pub(super) const CACHED_BLOCKS: usize = 16;

struct Block {
    /// The `Arc` the block was read through (see the module comment).
    file: Weak<File>,
    /// Block number in the file (position / [`BLOCK_BYTES`]).
    index: u64,
    /// `data[lo..hi]` holds the file's bytes there (positions relative to the block's start);
    /// empty when `lo == hi`. A block is read whole when it can be, else from the bytes a
    /// segment wants (its start may have been evicted while they were not).
    lo: usize,
    hi: usize,
    data: Box<[u8]>,
    last_used: u64,
}

#[derive(Default)]
struct Blocks {
    blocks: Vec<Block>,
    clock: u64,
    stats: BlockStats,
}

std::thread_local! {
    static BLOCKS: RefCell<Blocks> = RefCell::new(Blocks::default());
}

/// Counters of this thread's block cache (tests and measurements).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BlockStats {
    /// Pieces of segments copied from a block already holding them.
    pub hits: u64,
    /// `pread`s that filled or extended a block.
    pub reads: u64,
    /// Bytes those reads brought in.
    pub read_bytes: u64,
}

/// This thread's block-cache counters.
pub fn block_stats() -> BlockStats {
    BLOCKS.with_borrow(|blocks| blocks.stats)
}

/// Whether `segment` may be copied through the cache: it ends below its file's settled end.
pub(super) fn cacheable(segment: &FileSegment) -> bool {
    segment.offset + u64::from(segment.len) <= segment.settled_end
}

/// Appends `segment`'s bytes to `body` through the cache. `false` (with `body` possibly grown:
/// the caller truncates it) when a block it needs is not in the page cache.
pub(super) fn copy(segment: &FileSegment, body: &mut Vec<u8>) -> io::Result<bool> {
    BLOCKS.with_borrow_mut(|blocks| blocks.copy(segment, body))
}

impl Blocks {
    fn copy(&mut self, segment: &FileSegment, body: &mut Vec<u8>) -> io::Result<bool> {
        let end = segment.offset + u64::from(segment.len);
        let mut at = segment.offset;
        while at < end {
            let index = at / BLOCK_BYTES;
            let block_start = index * BLOCK_BYTES;
            let piece_end = end.min(block_start + BLOCK_BYTES);
            let (a, b) = ((at - block_start) as usize, (piece_end - block_start) as usize);
            let Some(block) = self.block_holding(segment, index, a, b)? else {
                return Ok(false);
            };
            let piece = block.data.get(a..b).ok_or_else(|| io::Error::other("block shorter than its valid bytes"))?;
            body.extend_from_slice(piece);
            at = piece_end;
        }
        Ok(true)
    }

    /// The block `index` of `segment`'s file holding its bytes `[a, b)` (relative to the
    /// block's start): kept, completed (read before or after what it holds, up to the settled
    /// end) or read anew. `None` when the bytes are not in the page cache.
    fn block_holding(&mut self, segment: &FileSegment, index: u64, a: usize, b: usize) -> io::Result<Option<&Block>> {
        self.clock += 1;
        let clock = self.clock;
        let file_ptr = Arc::as_ptr(&segment.file);
        let block_start = index * BLOCK_BYTES;
        // Reads go up to the block's end, but never to or past the settled end.
        let readable = segment.settled_end.saturating_sub(block_start).min(BLOCK_BYTES) as usize;
        if b > readable || a >= b {
            return Err(io::Error::other("file segment past its settled end"));
        }
        let slot = match self.blocks.iter().position(|x| x.index == index && std::ptr::eq(x.file.as_ptr(), file_ptr)) {
            Some(slot) => slot,
            None => {
                let fresh = Block { file: Arc::downgrade(&segment.file), index, lo: 0, hi: 0, data: Box::default(), last_used: clock };
                if self.blocks.len() < CACHED_BLOCKS {
                    self.blocks.push(fresh);
                    self.blocks.len() - 1
                } else {
                    // The least recently used block, or one whose file is gone.
                    let slot = (0..self.blocks.len())
                        .min_by_key(|&i| self.blocks.get(i).map_or(0, |x| if x.file.strong_count() == 0 { 0 } else { x.last_used }))
                        .unwrap_or(0);
                    let old = self.blocks.get_mut(slot).ok_or_else(|| io::Error::other("block slot out of range"))?;
                    let data = std::mem::take(&mut old.data);
                    *old = Block { data, ..fresh };
                    slot
                }
            }
        };
        let block = self.blocks.get_mut(slot).ok_or_else(|| io::Error::other("block slot out of range"))?;
        block.last_used = clock;
        let stats = &mut self.stats;
        if block.lo <= a && b <= block.hi {
            stats.hits += 1;
            return Ok(Some(block));
        }
        if block.data.is_empty() {
            block.data = vec![0u8; BLOCK_BYTES as usize].into_boxed_slice();
        }
        let file = &segment.file;
        // Reads `data[from..to]`, of which `data[from..b]` is needed.
        let mut read_at = |block: &mut Block, from: usize, to: usize| -> io::Result<usize> {
            let into = block.data.get_mut(from..to).ok_or_else(|| io::Error::other("block read out of range"))?;
            let n = read_resident(file, into, block_start + from as u64, b.saturating_sub(from))?;
            stats.reads += 1;
            stats.read_bytes += n as u64;
            Ok(n)
        };
        if block.lo == block.hi || b < block.lo || a > block.hi {
            // Nothing held next to the bytes wanted: the whole block, once (the other queues'
            // records around these are what the next pulls want); from the bytes wanted when
            // the block's start is not cached.
            let n = read_at(block, 0, readable)?;
            (block.lo, block.hi) = (0, n);
            if n < b {
                let n = read_at(block, a, readable)?;
                (block.lo, block.hi) = (a, a + n);
            }
        } else {
            if a < block.lo {
                let n = read_at(block, a, block.lo)?;
                // Only a contiguous range is kept: the new bytes alone when the gap stays.
                (block.lo, block.hi) = if a + n == block.lo { (a, block.hi) } else { (a, a + n) };
            }
            if b > block.hi && block.lo <= a {
                let hi = block.hi;
                block.hi += read_at(block, hi, readable)?;
            }
        }
        Ok((block.lo <= a && b <= block.hi).then_some(&*block))
    }
}

/// Reads into `into` at `position` what the page cache holds, from the start: the bytes read
/// (fewer than asked when a page is not cached, or at the end of the file). The first `need`
/// bytes are what the caller wants; the rest is read only as far as it is cached.
fn read_resident(file: &File, into: &mut [u8], position: u64, need: usize) -> io::Result<usize> {
    let need = need.min(into.len());
    let mut done = 0usize;
    while let Some(rest) = into.get_mut(done..)
        && !rest.is_empty()
    {
        let at = position + done as u64;
        match cold::pread_nowait(file, rest, at)? {
            NoWait::Read(0) | NoWait::WouldBlock => break,
            NoWait::Read(n) => done += n,
            NoWait::Unsupported => {
                // Kernels without RWF_NOWAIT: a residency check first, then a plain read of
                // the whole rest when it is all cached, else of the bytes needed alone.
                let len = if cold::resident(file, at, rest.len() as u64) {
                    rest.len()
                } else if need > done && cold::resident(file, at, (need - done) as u64) {
                    need - done
                } else {
                    break;
                };
                use std::os::unix::fs::FileExt;
                file.read_exact_at(rest.get_mut(..len).unwrap_or_default(), at)?;
                done += len;
                break;
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    use proptest::prelude::*;

    use super::*;
    use crate::conn::cold::test_hook;

    /// A temp file holding `content`, removed when dropped (the open descriptor outlives it).
    fn file_with(name: &str, content: &[u8]) -> Arc<File> {
        let path = std::env::temp_dir().join(format!("ferromq-blocks-{}-{name}", std::process::id()));
        let mut file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
        file.write_all(content).unwrap();
        std::fs::remove_file(&path).unwrap();
        Arc::new(file)
    }

    fn content(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed).rotate_left(3)).collect()
    }

    fn segment(file: &Arc<File>, offset: u64, len: u32, settled_end: u64) -> FileSegment {
        FileSegment { file: file.clone(), offset, len, settled_end }
    }

    fn copied(segment: &FileSegment) -> Vec<u8> {
        let mut body = Vec::new();
        assert!(copy(segment, &mut body).unwrap(), "a freshly written file is in the page cache");
        body
    }

    fn clear() {
        BLOCKS.with_borrow_mut(|b| *b = Blocks::default());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any segments below the settled end come out as the file's bytes, in any order and
        /// however they straddle blocks, with the cache holding at most its bound.
        #[test]
        fn copies_are_the_files_bytes(reads in proptest::collection::vec((0u64..600_000, 1u32..70_000), 1..40), old_kernel: bool) {
            clear();
            // Also as on kernels without RWF_NOWAIT (residency asked with mincore).
            test_hook::pretend_old_kernel(old_kernel);
            let bytes = content(700_000, 7);
            let file = file_with("prop", &bytes);
            for (offset, len) in reads {
                let end = (offset + u64::from(len)).min(bytes.len() as u64);
                let s = segment(&file, offset, (end - offset) as u32, bytes.len() as u64);
                prop_assert!(copied(&s) == bytes[offset as usize..end as usize]);
                prop_assert!(BLOCKS.with_borrow(|b| b.blocks.len()) <= CACHED_BLOCKS);
            }
            test_hook::pretend_old_kernel(false);
        }
    }

    /// Read again, the same segments are copied from the cache without a `pread`; a segment
    /// reaching past what the cache read of a block extends it with the missing bytes only.
    #[test]
    fn blocks_are_read_once_and_extended_as_the_file_settles() {
        clear();
        let bytes = content(3 * BLOCK_BYTES as usize, 1);
        let file = file_with("grow", &bytes);
        // Only the first 100 KiB are settled: block 1 is read up to there.
        let settled = 100 * 1024;
        let first = segment(&file, 60 * 1024, 30 * 1024, settled);
        let before = block_stats();
        assert_eq!(copied(&first), bytes[60 * 1024..90 * 1024]);
        let after_first = block_stats();
        assert_eq!(after_first.reads - before.reads, 2, "blocks 0 and 1");
        assert_eq!(after_first.read_bytes - before.read_bytes, settled, "whole blocks, nothing past the settled end");
        assert_eq!(copied(&first), bytes[60 * 1024..90 * 1024]);
        let again = block_stats();
        assert_eq!((again.reads, again.hits - after_first.hits), (after_first.reads, 2));
        // The file settles further: the next segment reads block 1's rest only.
        let second = segment(&file, 95 * 1024, 20 * 1024, bytes.len() as u64);
        assert_eq!(copied(&second), bytes[95 * 1024..115 * 1024]);
        let extended = block_stats();
        assert_eq!(extended.reads - again.reads, 1);
        assert_eq!(extended.read_bytes - again.read_bytes, 2 * BLOCK_BYTES - settled);
    }

    /// A segment past its settled end is an error, not a read of unsettled bytes.
    #[test]
    fn a_segment_past_its_settled_end_is_refused() {
        clear();
        let file = file_with("past", &content(10_000, 2));
        let mut body = Vec::new();
        assert!(copy(&segment(&file, 9_000, 1_000, 9_500), &mut body).is_err());
        assert!(!cacheable(&segment(&file, 9_000, 1_000, 9_500)) && cacheable(&segment(&file, 9_000, 500, 9_500)));
    }

    /// Bytes rewritten in the file reach a sender through a new `Arc` of it (what the store
    /// does when a replica truncates), never from a block cached through the old one.
    #[test]
    fn a_new_arc_of_a_rewritten_file_never_sees_the_old_blocks() {
        clear();
        let old = content(200_000, 3);
        let file = file_with("rewrite", &old);
        let s = segment(&file, 70_000, 5_000, old.len() as u64);
        assert_eq!(copied(&s), old[70_000..75_000]);
        let new = content(200_000, 99);
        file.write_all_at(&new[65_536..], 65_536).unwrap();
        let reshared = Arc::new(file.try_clone().unwrap());
        assert_eq!(copied(&segment(&reshared, 70_000, 5_000, new.len() as u64)), new[70_000..75_000]);
    }

    /// Bytes not in the page cache are not read on the thread: the copy says so, and the
    /// caller goes to the pool.
    #[test]
    fn cold_blocks_are_not_read() {
        clear();
        let file = file_with("cold", &content(100_000, 4));
        test_hook::pretend_cold(true);
        let mut body = Vec::new();
        let copied = copy(&segment(&file, 1_000, 2_000, 100_000), &mut body).unwrap();
        test_hook::pretend_cold(false);
        assert!(!copied);
    }
}
