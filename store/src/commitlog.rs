//! Commit-log segments and the byte-level pieces of the log that are ours rather than
//! RocketMQ's: the per-batch commit marker, segment naming, the end-of-file filler, and the
//! recovery scan that validates batches.
//!
//! The state machine that appends, group-commits and dispatches lives in [`crate::store`]; this
//! module is the on-disk vocabulary it uses. How local positions map to the offsets clients see
//! (a per-segment client base) is [`crate::offset_space`]'s.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use crate::error::{IoOp, Result, StoreError};
use crate::io::{Storage, StorageFile};
use crate::record::{self, BLANK_LEN, BLANK_MAGIC, RecordError};
use crate::types::{CommitLogOffset, QueueId};

/// Magic of the commit marker that ends every flush batch. Never referenced by a consume queue,
/// so it never appears in a pull body.
pub const MARKER_MAGIC: u32 = 0xFE5A_11ED;
pub const MARKER_TOTALSIZE_POS: usize = 0;
pub const MARKER_MAGIC_POS: usize = MARKER_TOTALSIZE_POS + 4;
pub const MARKER_BATCH_START_POS: usize = MARKER_MAGIC_POS + 4;
pub const MARKER_FLAGS_POS: usize = MARKER_BATCH_START_POS + 8;
pub const MARKER_CRC_POS: usize = MARKER_FLAGS_POS + 4;
/// Size of a commit marker.
pub const MARKER_LEN: usize = MARKER_CRC_POS + 4;
const _: () = assert!(MARKER_LEN == 24);
/// Marker flag: when this batch was written, every byte before it was already durable. Under
/// SYNC_FLUSH every marker carries it; it lets recovery tell a torn tail (nothing durable follows
/// the bad bytes) from corruption in the middle (a later batch proves the bad bytes were synced).
pub const MARKER_FLAG_PRECEDING_DURABLE: u32 = 1;

/// Bytes every segment keeps free after its last record: the closing marker and the filler.
pub const SEGMENT_RESERVED_BYTES: usize = MARKER_LEN + BLANK_LEN;

/// Segment file name: the 20-digit zero-padded offset of its first byte.
pub fn segment_name(base: u64) -> String {
    format!("{base:020}")
}

/// Parses a 20-digit segment (or consume-queue) file name.
pub fn parse_offset_name(name: &str) -> Option<u64> {
    if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) { name.parse().ok() } else { None }
}

/// Encodes the marker closing `batch` (the bytes from `batch_start` up to the marker).
pub fn encode_marker(batch_start: u64, flags: u32, batch: &[u8]) -> [u8; MARKER_LEN] {
    let mut m = [0u8; MARKER_LEN];
    m[MARKER_TOTALSIZE_POS..MARKER_MAGIC_POS].copy_from_slice(&(MARKER_LEN as i32).to_be_bytes());
    m[MARKER_MAGIC_POS..MARKER_BATCH_START_POS].copy_from_slice(&MARKER_MAGIC.to_be_bytes());
    m[MARKER_BATCH_START_POS..MARKER_FLAGS_POS].copy_from_slice(&batch_start.to_be_bytes());
    m[MARKER_FLAGS_POS..MARKER_CRC_POS].copy_from_slice(&flags.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(batch), &m[..MARKER_CRC_POS]);
    m[MARKER_CRC_POS..].copy_from_slice(&crc.to_be_bytes());
    m
}

/// A parsed (not yet CRC-checked) commit marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub batch_start: u64,
    pub flags: u32,
    pub crc: u32,
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

pub fn parse_marker(b: &[u8]) -> Option<Marker> {
    if be_u32(b, MARKER_TOTALSIZE_POS)? != MARKER_LEN as u32 || be_u32(b, MARKER_MAGIC_POS)? != MARKER_MAGIC {
        return None;
    }
    Some(Marker {
        batch_start: be_u64(b, MARKER_BATCH_START_POS)?,
        flags: be_u32(b, MARKER_FLAGS_POS)?,
        crc: be_u32(b, MARKER_CRC_POS)?,
    })
}

/// Whether `marker_bytes` is a valid marker for `batch`.
pub fn marker_matches(marker_bytes: &[u8], batch: &[u8]) -> bool {
    let Some(head) = marker_bytes.get(..MARKER_CRC_POS) else { return false };
    let Some(m) = parse_marker(marker_bytes) else { return false };
    crc32c::crc32c_append(crc32c::crc32c(batch), head) == m.crc
}

/// The 8-byte end-of-file filler for a segment whose data ends at `pos_in_segment`.
pub fn encode_blank(segment_size: u64, pos_in_segment: u64) -> [u8; BLANK_LEN] {
    let mut b = [0u8; BLANK_LEN];
    b[..4].copy_from_slice(&((segment_size - pos_in_segment) as i32).to_be_bytes());
    b[4..].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
    b
}

/// What dispatch needs to know about one appended record (consume queue + index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchRecord {
    /// Shared with the records of the same append and with the queue's entry in the store.
    pub topic: Rc<str>,
    pub queue_id: QueueId,
    /// `None` for PREPARED/ROLLBACK transaction records (no consume-queue entry).
    pub queue_offset: Option<u64>,
    pub offset: CommitLogOffset,
    /// 0 only for the placeholder of a record lost to damage (recovery's `CqEntry::lost`).
    pub size: u32,
    pub tags_code: i64,
    pub store_timestamp_ms: i64,
    /// Index key hashes ([`crate::index::key_hash`] of each `KEYS` element and of `UNIQ_KEY`),
    /// empty for rollback records. Hashes, not the keys: the index stores nothing else, and an
    /// append's record travels to the dispatcher without owning strings of the request. Inline
    /// up to two (a `KEYS` element and `UNIQ_KEY`, what most messages carry): no allocation.
    pub key_hashes: KeyHashes,
}

impl DispatchRecord {
    /// Extracts the dispatch information from a decoded record at local offset `offset`.
    pub fn from_view(v: &record::RecordView<'_>, offset: u64) -> Self {
        let props = v.properties();
        let dispatched = record::is_dispatched_sys_flag(v.sys_flag);
        let rollback = v.sys_flag & record::sysflag::TRANSACTION_MASK
            == record::sysflag::TRANSACTION_ROLLBACK;
        DispatchRecord {
            topic: Rc::from(v.topic),
            queue_id: v.queue_id,
            queue_offset: dispatched.then_some(v.queue_offset as u64),
            offset: CommitLogOffset(offset),
            size: v.total_size as u32,
            tags_code: record::tags_code(props.get(record::prop::TAGS)),
            store_timestamp_ms: v.store_timestamp_ms,
            key_hashes: if rollback {
                KeyHashes::new()
            } else {
                index_key_hashes(v.topic, props.get(record::prop::KEYS), props.get(record::prop::UNIQ_KEY))
            },
        }
    }
}

/// A record's index key hashes (see [`DispatchRecord::key_hashes`]).
pub type KeyHashes = smallvec::SmallVec<[u32; 2]>;

/// The index key hashes of a message of `topic`: of every non-empty space-separated `KEYS`
/// element, then of `UNIQ_KEY` (the keys of [`index_keys`], in its order).
pub fn index_key_hashes(topic: &str, keys: Option<&str>, uniq_key: Option<&str>) -> KeyHashes {
    let keys = keys.into_iter().flat_map(|k| k.split(' ')).filter(|s| !s.is_empty());
    keys.chain(uniq_key).map(|k| crate::index::key_hash(topic, k)).collect()
}

/// Index keys of a message: every non-empty space-separated `KEYS` element, then `UNIQ_KEY`.
pub fn index_keys(props: &record::Properties) -> Vec<String> {
    let mut keys: Vec<String> = props
        .get(record::prop::KEYS)
        .map(|k| k.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    if let Some(u) = props.get(record::prop::UNIQ_KEY) {
        keys.push(u.to_owned());
    }
    keys
}

/// One commit-log segment file.
#[derive(Debug, Clone)]
pub struct Segment<F> {
    pub base: u64,
    pub path: PathBuf,
    pub file: F,
    /// The same file as a plain descriptor shared with the senders of pull responses (`dup`ed
    /// once, when the segment is opened); `None` for storages without descriptors. Dropped
    /// with the segment, so a segment retention deletes is closed once the last pull that
    /// reads it is sent.
    pub shared: Option<Arc<std::fs::File>>,
    /// Whether senders may cache what they read through `shared` (its settled end is then the
    /// written end; else 0): false once a rewrite could not give the segment a new descriptor.
    pub cacheable: bool,
}

impl<F: StorageFile> Segment<F> {
    fn new(base: u64, path: PathBuf, file: F) -> Segment<F> {
        let shared = file.raw_fd().and_then(|raw| {
            // SAFETY: `raw` belongs to `file`, open for the duration of this borrow;
            // `try_clone_to_owned` dups it, so the result lives independently of `file`.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) }.try_clone_to_owned().ok()?;
            Some(Arc::new(std::fs::File::from(fd)))
        });
        Segment { base, path, file, shared, cacheable: true }
    }

    /// Gives senders a new shared descriptor for this segment, before bytes they may have read
    /// through the old one are rewritten: a sender's block cache knows bytes by the `Arc` they
    /// were read through (`FileSegment::settled_end` in `net`).
    pub fn reshare(&mut self) {
        let Some(old) = &self.shared else { return };
        match old.try_clone() {
            Ok(file) => self.shared = Some(Arc::new(file)),
            Err(e) => {
                // Out of descriptors, say: keep serving through the old one, never cached again.
                tracing::warn!(segment = %self.path.display(), "cannot give a rewritten segment a new descriptor ({e}); its reads bypass the senders' block caches from now on");
                self.cacheable = false;
            }
        }
    }
}

/// Lists segment files (sorted by base) and opens them.
pub async fn open_segments<S: Storage>(storage: &S, dir: &Path) -> Result<Vec<Segment<S::File>>> {
    let names = storage.list_dir(dir).await.map_err(|e| StoreError::io(IoOp::List, dir, e))?;
    let mut segs = Vec::new();
    for name in names {
        let Some(base) = parse_offset_name(&name) else { continue };
        let path = dir.join(&name);
        let file = storage.open(&path, false).await.map_err(|e| StoreError::io(IoOp::Open, &path, e))?;
        segs.push(Segment::new(base, path, file));
    }
    segs.sort_by_key(|s| s.base);
    Ok(segs)
}

/// Creates and preallocates a segment, and makes its name durable.
pub async fn create_segment<S: Storage>(
    storage: &S,
    dir: &Path,
    base: u64,
    size: u64,
) -> Result<Segment<S::File>> {
    let path = dir.join(segment_name(base));
    let file = storage.open(&path, true).await.map_err(|e| StoreError::io(IoOp::Create, &path, e))?;
    // The whole segment's space is reserved now (fallocate), so a full disk shows here, at
    // roll time, with this path in the error, rather than as a failed write mid-flush.
    if let Err(e) = file.preallocate(size).await {
        // Remove the half-made file, so that a restart before the retry does not find a
        // segment of the wrong size; the caller retries the whole creation.
        drop(file);
        let _ = storage.remove_file(&path).await;
        return Err(StoreError::io(IoOp::Preallocate, &path, e));
    }
    // fdatasync persists the new size; the directory sync persists the name. Both must precede
    // the first acknowledged write into the segment.
    file.sync_data().await.map_err(|e| StoreError::io(IoOp::Fdatasync, &path, e))?;
    storage.sync_dir(dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, dir, e))?;
    Ok(Segment::new(base, path, file))
}

/// A forward-only buffered reader over one segment, for the recovery scan; or over bytes in
/// memory that are to land in a segment (a replica checks what its master sent before writing
/// it, with the same scan).
pub struct SegmentReader<'a, F> {
    /// The file to read; `None` for a reader over bytes in memory only.
    seg: Option<&'a Segment<F>>,
    /// Local offset of the segment's first byte.
    base: u64,
    segment_size: u64,
    buf_start: u64,
    buf: Vec<u8>,
}

const READ_CHUNK_BYTES: usize = 1 << 20;

impl<'a, F: StorageFile> SegmentReader<'a, F> {
    pub fn new(seg: &'a Segment<F>, segment_size: u64) -> Self {
        SegmentReader { seg: Some(seg), base: seg.base, segment_size, buf_start: 0, buf: Vec::new() }
    }

    /// A reader over `bytes` only, which are to be stored at local offset `at` of the segment
    /// starting at `base`. Reads outside them come back short (a scan sees a torn batch).
    pub fn in_memory(base: u64, segment_size: u64, at: u64, bytes: Vec<u8>) -> Self {
        SegmentReader { seg: None, base, segment_size, buf_start: at - base, buf: bytes }
    }

    /// Gives back the bytes of an [`SegmentReader::in_memory`] reader.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Bytes `[pos, pos+len)` of the segment (position within the segment), or fewer at EOF.
    pub async fn get(&mut self, pos: u64, len: usize) -> Result<&[u8]> {
        let end = pos + len as u64;
        let have_end = self.buf_start + self.buf.len() as u64;
        let missing = pos < self.buf_start || end > have_end;
        match self.seg {
            None if missing => {
                // In memory only: what there is of the range, possibly nothing.
                let from = usize::try_from(pos.saturating_sub(self.buf_start)).unwrap_or(usize::MAX);
                let tail = if pos < self.buf_start { &[][..] } else { self.buf.get(from..).unwrap_or_default() };
                return Ok(tail.get(..len.min(tail.len())).unwrap_or_default());
            }
            Some(seg) if missing => {
                let want = len.max(READ_CHUNK_BYTES).min((self.segment_size.saturating_sub(pos)) as usize).max(len);
                self.buf = seg.file.read_at(want, pos).await.map_err(|e| StoreError::io(IoOp::Read, &seg.path, e))?;
                self.buf_start = pos;
            }
            _ => {}
        }
        let from = (pos - self.buf_start) as usize;
        let to = (from + len).min(self.buf.len());
        Ok(self.buf.get(from..to).unwrap_or_default())
    }
}

/// Result of validating what starts at a position of a segment.
#[derive(Debug)]
pub enum ScanStep {
    /// A complete, valid batch: its records, the position after its marker, and the segment's
    /// client base (given, or read from the batch's first record when the batch opens the
    /// segment).
    Batch { records: Vec<DispatchRecord>, end: u64, max_store_timestamp_ms: i64, client_base: u64 },
    /// The end-of-file filler: the segment ends here.
    Blank,
    /// Not a valid batch (torn, zero, or corrupt), with the reason.
    Invalid(String),
}

/// Validates the batch starting at local offset `start` of `seg`. Every record's PHYSICALOFFSET
/// must equal `client_base + (position − segment base)`. Without a `client_base` the batch must
/// open the segment, and its first record's PHYSICALOFFSET *is* the client base (the caller
/// checks that it is plausible once the whole batch has been validated by its marker).
pub async fn scan_batch<F: StorageFile>(
    reader: &mut SegmentReader<'_, F>,
    client_base: Option<u64>,
    start: u64,
    verify_crc: bool,
) -> Result<ScanStep> {
    let base = reader.base;
    let mut client_base = client_base;
    if client_base.is_none() && start != base {
        return Ok(ScanStep::Invalid(format!("no client base is known for the segment holding {start}")));
    }
    let size = reader.segment_size;
    let mut pos = start;
    let mut records = Vec::new();
    let mut max_ts = i64::MIN;
    loop {
        let in_seg = pos - base;
        if in_seg + 8 > size {
            return Ok(ScanStep::Invalid(format!("batch runs past the segment end at {pos}")));
        }
        let head = reader.get(in_seg, 8).await?;
        let Ok((total, magic)) = record::peek_header(head) else {
            return Ok(ScanStep::Invalid(format!("short read at {pos}")));
        };
        if magic == BLANK_MAGIC && pos == start {
            if total as i64 == (size - in_seg) as i64 {
                return Ok(ScanStep::Blank);
            }
            return Ok(ScanStep::Invalid(format!("filler at {pos} has wrong length {total}")));
        }
        if magic == MARKER_MAGIC {
            let m = reader.get(in_seg, MARKER_LEN).await?.to_vec();
            let Some(marker) = parse_marker(&m) else {
                return Ok(ScanStep::Invalid(format!("bad marker header at {pos}")));
            };
            if marker.batch_start != start || records.is_empty() {
                return Ok(ScanStep::Invalid(format!("marker at {pos} does not close a batch from {start}")));
            }
            let batch = reader.get(start - base, (pos - start) as usize).await?.to_vec();
            if !marker_matches(&m, &batch) {
                return Ok(ScanStep::Invalid(format!("marker checksum mismatch for batch {start}..{pos}")));
            }
            let Some(client_base) = client_base else {
                return Ok(ScanStep::Invalid(format!("batch at {start} has no record")));
            };
            return Ok(ScanStep::Batch { records, end: pos + MARKER_LEN as u64, max_store_timestamp_ms: max_ts, client_base });
        }
        if magic != record::MAGIC_V1 && magic != record::MAGIC_V2 {
            return Ok(ScanStep::Invalid(format!("bad magic {magic:#x} at {pos}")));
        }
        if total <= 0 || in_seg + total as u64 + MARKER_LEN as u64 > size {
            return Ok(ScanStep::Invalid(format!("bad record size {total} at {pos}")));
        }
        let bytes = reader.get(in_seg, total as usize).await?;
        let view = match record::decode_record(bytes, verify_crc) {
            Ok(v) => v,
            Err(e @ (RecordError::Truncated { .. } | _)) => {
                return Ok(ScanStep::Invalid(format!("record at {pos}: {e}")));
            }
        };
        let g = match client_base {
            Some(g) => g,
            None => match u64::try_from(view.physical_offset) {
                Ok(g) if pos == base => *client_base.insert(g),
                _ => {
                    return Ok(ScanStep::Invalid(format!(
                        "record at {pos} opens its segment with PHYSICALOFFSET {}",
                        view.physical_offset
                    )));
                }
            },
        };
        let Some(expect) = g.checked_add(pos - base).and_then(|x| i64::try_from(x).ok()) else {
            return Ok(ScanStep::Invalid(format!("client base {g:#x} of the segment holding {pos} overflows")));
        };
        if view.physical_offset != expect {
            return Ok(ScanStep::Invalid(format!(
                "record at {pos} says PHYSICALOFFSET {} (expected {expect})",
                view.physical_offset
            )));
        }
        max_ts = max_ts.max(view.store_timestamp_ms);
        records.push(DispatchRecord::from_view(&view, pos));
        pos += total as u64;
    }
}

/// The bytes of the record a segment file starts with (a new segment always starts with one).
/// [`StoreError::NotFound`] says why there is none; I/O errors are [`StoreError::Io`].
pub async fn read_first_record<F: StorageFile>(file: &F, path: &Path, segment_size: u64) -> Result<Vec<u8>> {
    let head = file.read_at(8, 0).await.map_err(|e| StoreError::io(IoOp::Read, path, e))?;
    let missing = |why: String| StoreError::NotFound(format!("no record starts {}: {why}", path.display()));
    let (total, magic) = record::peek_header(&head).map_err(|e| missing(e.to_string()))?;
    if magic != record::MAGIC_V1 && magic != record::MAGIC_V2 {
        return Err(missing(format!("magic {magic:#x}")));
    }
    if total <= 0 || total as u64 + MARKER_LEN as u64 > segment_size {
        return Err(missing(format!("size {total}")));
    }
    file.read_at(total as usize, 0).await.map_err(|e| StoreError::io(IoOp::Read, path, e))
}

/// The client base of a segment whose first record is durable: that record's PHYSICALOFFSET.
/// Used at open for segments the recovery scan does not read from their start; a missing or
/// undecodable record there is corruption.
pub async fn first_record_client_base<F: StorageFile>(seg: &Segment<F>, segment_size: u64, verify_crc: bool) -> Result<u64> {
    let corrupt = |reason: String| StoreError::Corruption {
        offset: seg.base,
        reason: format!("segment {} holds durable data, but {reason}", segment_name(seg.base)),
    };
    let bytes = match read_first_record(&seg.file, &seg.path, segment_size).await {
        Ok(b) => b,
        Err(StoreError::NotFound(why)) => return Err(corrupt(why)),
        Err(e) => return Err(e),
    };
    let view = record::decode_record(&bytes, verify_crc).map_err(|e| corrupt(format!("its first record does not decode: {e}")))?;
    u64::try_from(view.physical_offset).map_err(|_| corrupt(format!("its first record has PHYSICALOFFSET {}", view.physical_offset)))
}

/// The client base of a segment read from the record starting at local offset `at` in it
/// (`None` if no record that decodes starts there): its PHYSICALOFFSET less its position in
/// the segment. Recovery uses it when the segment's first record is damaged.
pub async fn client_base_from_record_at<F: StorageFile>(reader: &mut SegmentReader<'_, F>, at: u64, verify_crc: bool) -> Result<Option<u64>> {
    let in_seg = at - reader.base;
    if in_seg + 8 > reader.segment_size {
        return Ok(None);
    }
    let Ok((total, magic)) = record::peek_header(reader.get(in_seg, 8).await?) else { return Ok(None) };
    if magic != record::MAGIC_V1 && magic != record::MAGIC_V2 || total <= 0 || in_seg + total as u64 > reader.segment_size {
        return Ok(None);
    }
    let Ok(view) = record::decode_record(reader.get(in_seg, total as usize).await?, verify_crc) else { return Ok(None) };
    Ok(u64::try_from(view.physical_offset).ok().and_then(|p| p.checked_sub(in_seg)))
}

/// Searches `[from, segment end)` of a segment for a valid commit marker that carries
/// [`MARKER_FLAG_PRECEDING_DURABLE`] and closes a batch starting at or after `from`. Also
/// returns the end of the last non-zero byte seen, so the caller can wipe the torn tail.
pub async fn find_durable_marker_after<F: StorageFile>(
    reader: &mut SegmentReader<'_, F>,
    from: u64,
) -> Result<(Option<u64>, u64)> {
    let base = reader.base;
    let size = reader.segment_size;
    let magic = MARKER_MAGIC.to_be_bytes();
    let mut last_nonzero_end = from;
    let mut found = None;
    let mut chunk_start = from - base;
    // Most of what this scans after a crash is the zero-filled, preallocated rest of the
    // segment: compare whole chunks against zeros (memcmp) and search the others for the
    // marker magic with memmem, instead of testing every byte offset.
    let zeros = vec![0u8; READ_CHUNK_BYTES];
    while chunk_start < size {
        let len = (READ_CHUNK_BYTES as u64).min(size - chunk_start) as usize;
        let chunk = reader.get(chunk_start, len).await?.to_vec();
        if chunk.is_empty() {
            break;
        }
        let all_zero = zeros.get(..chunk.len()).is_some_and(|z| z == chunk.as_slice());
        if !all_zero {
            if let Some(p) = chunk.iter().rposition(|b| *b != 0) {
                last_nonzero_end = base + chunk_start + p as u64 + 1;
            }
            let candidates: Vec<usize> = memchr::memmem::find_iter(&chunk, &magic).filter(|i| *i >= MARKER_MAGIC_POS).collect();
            for i in candidates {
                let at = chunk_start + (i - MARKER_MAGIC_POS) as u64;
                let m = reader.get(at, MARKER_LEN).await?.to_vec();
                if let Some(mk) = parse_marker(&m) {
                    let abs = base + at;
                    if mk.flags & MARKER_FLAG_PRECEDING_DURABLE != 0 && mk.batch_start >= from && mk.batch_start < abs {
                        let batch = reader.get(mk.batch_start - base, (abs - mk.batch_start) as usize).await?.to_vec();
                        if marker_matches(&m, &batch) {
                            found = Some(abs);
                        }
                    }
                }
            }
        }
        if found.is_some() {
            break;
        }
        // Overlap so a marker split across chunks is still seen.
        if chunk.len() < len || chunk_start + len as u64 >= size {
            break;
        }
        chunk_start += (len - MARKER_LEN) as u64;
    }
    Ok((found, last_nonzero_end))
}

/// The end of the last non-zero byte in `[from, segment end)` of a segment (`from` when all of
/// it is zero): where the segment's data ends.
pub async fn data_end<F: StorageFile>(reader: &mut SegmentReader<'_, F>, from: u64) -> Result<u64> {
    let base = reader.base;
    let size = reader.segment_size;
    let mut end = from;
    let mut chunk_start = from - base;
    while chunk_start < size {
        let len = (READ_CHUNK_BYTES as u64).min(size - chunk_start) as usize;
        let chunk = reader.get(chunk_start, len).await?;
        if let Some(p) = chunk.iter().rposition(|b| *b != 0) {
            end = base + chunk_start + p as u64 + 1;
        }
        if chunk.len() < len {
            break;
        }
        chunk_start += len as u64;
    }
    Ok(end)
}

/// Where the first batch after the damaged batch starting at `batch_start` begins, searching
/// `[batch_start, limit)` of a segment (`limit`: the end of the data): the end of that batch's
/// own commit marker when the marker survived (it names `batch_start`), else the start of the
/// first later batch whose marker checksum matches its bytes, else `limit`. Every byte from
/// `batch_start` to the returned position is unusable: record boundaries inside a damaged batch
/// cannot be trusted (its TOTALSIZE fields may be what was damaged).
pub async fn next_batch_start_after<F: StorageFile>(reader: &mut SegmentReader<'_, F>, batch_start: u64, limit: u64) -> Result<u64> {
    let base = reader.base;
    let magic = MARKER_MAGIC.to_be_bytes();
    let end_in_seg = limit.saturating_sub(base).min(reader.segment_size);
    let mut chunk_start = batch_start - base;
    while chunk_start < end_in_seg {
        let len = (READ_CHUNK_BYTES as u64).min(end_in_seg - chunk_start) as usize;
        let chunk = reader.get(chunk_start, len).await?.to_vec();
        if chunk.is_empty() {
            break;
        }
        let candidates: Vec<usize> = memchr::memmem::find_iter(&chunk, &magic).filter(|i| *i >= MARKER_MAGIC_POS).collect();
        for i in candidates {
            let at = chunk_start + (i - MARKER_MAGIC_POS) as u64;
            let m = reader.get(at, MARKER_LEN).await?.to_vec();
            let Some(mk) = parse_marker(&m) else { continue };
            let abs = base + at;
            if mk.batch_start == batch_start {
                return Ok((abs + MARKER_LEN as u64).min(limit));
            }
            if mk.batch_start > batch_start && mk.batch_start < abs {
                let batch = reader.get(mk.batch_start - base, (abs - mk.batch_start) as usize).await?.to_vec();
                if marker_matches(&m, &batch) {
                    return Ok(mk.batch_start);
                }
            }
        }
        if chunk.len() < len || chunk_start + len as u64 >= end_in_seg {
            break;
        }
        // Overlap so a marker split across chunks is still seen.
        chunk_start += (len - MARKER_LEN) as u64;
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hashes a record's dispatch carries are those of the keys a query checks hits
    /// against, in the same order (empty `KEYS` elements skipped, `UNIQ_KEY` last), and match
    /// what an append computes from its property summary.
    #[test]
    fn index_key_hashes_are_the_hashes_of_index_keys() {
        let mut props = record::Properties::new();
        props.insert(record::prop::KEYS, " order-1  order-2 ");
        props.insert(record::prop::UNIQ_KEY, "7F0000010000");
        let keys = index_keys(&props);
        assert_eq!(keys, ["order-1", "order-2", "7F0000010000"]);
        let expected: Vec<u32> = keys.iter().map(|k| crate::index::key_hash("T", k)).collect();
        assert_eq!(index_key_hashes("T", props.get(record::prop::KEYS), props.get(record::prop::UNIQ_KEY)).to_vec(), expected);
        let summary = record::PropertySummary::scan(&props.encode());
        let from_summary: Vec<u32> = summary.index_keys.iter().map(|k| k.under("T")).collect();
        assert_eq!(from_summary, expected);
        assert!(index_key_hashes("T", None, None).is_empty());
    }

    #[test]
    fn marker_round_trip_and_tamper() {
        let batch = b"some records".to_vec();
        let m = encode_marker(4096, MARKER_FLAG_PRECEDING_DURABLE, &batch);
        assert!(marker_matches(&m, &batch));
        assert_eq!(parse_marker(&m).unwrap().batch_start, 4096);
        let mut bad = batch.clone();
        bad[0] ^= 1;
        assert!(!marker_matches(&m, &bad));
        let mut m2 = m;
        m2[MARKER_FLAGS_POS] ^= 0x80;
        assert!(!marker_matches(&m2, &batch));
    }

    #[test]
    fn names_are_twenty_digits() {
        assert_eq!(segment_name(1073741824), "00000000001073741824");
        assert_eq!(parse_offset_name("00000000001073741824"), Some(1 << 30));
        assert_eq!(parse_offset_name("123"), None);
        assert_eq!(parse_offset_name("0000000000107374182x"), None);
    }
}
