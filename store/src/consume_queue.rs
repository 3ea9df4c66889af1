//! Consume queues: per (topic, queueId), a stream of fixed 20-byte entries
//! `{commit-log offset i64, record size i32, tags code i64}` (PROTOCOL.md §6.2), split into
//! files of `cq_entries_per_file` entries named by the 20-digit byte offset of their first entry.
//!
//! Shard-resident: held only by the shard that owns the queue. The store's dispatcher appends
//! entries after the records they point at are visible, first to the queue's memory
//! ([`ConsumeQueue::unsynced`]: every entry not yet synced), and writes them to the files once
//! `cq_flush_least_entries` are unwritten (or a checkpoint asks): a queue that receives a
//! message a second, as 80,000 queues do at 40,000 messages a second, costs no file write, file
//! open or fdatasync per message. Reads of unsynced entries are served from memory.
//! Durability of entries is the checkpoint's job (write, fdatasync, then the checkpoint names
//! them); entries a crash loses from memory are rebuilt from the commit log, from the log offset
//! of the earliest entry a checkpoint did not name (`Checkpoint::replay_from`).
//! The commit-log offsets stored here are shard-local (a one-shard broker keeps Java's format).
//!
//! Descriptors: a queue names its files; it does not hold them open. Every read and write goes
//! through the store's [`CqDescriptors`], which keeps at most `max_open_cq_files` of them open
//! and closes the least recently used beyond that, so that 10,000 topics × 8 queues do not need
//! 80,000 descriptors (a Java broker maps every file and needs them all).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use hashlink::LruCache;

use crate::commitlog::{parse_offset_name, segment_name};
use crate::error::{IoOp, Result, StoreError};
use crate::io::{Storage, StorageFile};
use crate::types::QueueId;

pub const CQ_OFFSET_POS: usize = 0;
pub const CQ_SIZE_POS: usize = CQ_OFFSET_POS + 8;
pub const CQ_TAGS_POS: usize = CQ_SIZE_POS + 4;
/// Size of one consume-queue entry.
pub const CQ_ENTRY_LEN: usize = CQ_TAGS_POS + 8;
const _: () = assert!(CQ_ENTRY_LEN == 20);

/// One decoded consume-queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqEntry {
    /// Shard-local commit-log offset of the record.
    pub offset: u64,
    /// The record's size; 0 for a [lost](CqEntry::is_lost) record.
    pub size: u32,
    pub tags_code: i64,
}

/// The SIZE field of a lost record's entry on disk (never a real record's size, which is > 0;
/// Java's queues have no such entry).
pub const LOST_ENTRY_SIZE_FIELD: i32 = -1;

impl CqEntry {
    /// The entry of a record recovery knows existed but could not read: its queue offset lay
    /// in a damaged range of the log (`offset`: that range's start). Queue offsets stay
    /// consecutive, and a read of it fails instead of serving other bytes.
    pub fn lost(offset: u64) -> CqEntry {
        CqEntry { offset, size: 0, tags_code: 0 }
    }

    pub fn is_lost(&self) -> bool {
        self.size == 0
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let size = if self.is_lost() { LOST_ENTRY_SIZE_FIELD } else { self.size as i32 };
        out.extend_from_slice(&(self.offset as i64).to_be_bytes());
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&self.tags_code.to_be_bytes());
    }
    pub fn decode(b: &[u8]) -> Option<CqEntry> {
        let off = i64::from_be_bytes(b.get(CQ_OFFSET_POS..CQ_SIZE_POS)?.try_into().ok()?);
        let size = i32::from_be_bytes(b.get(CQ_SIZE_POS..CQ_TAGS_POS)?.try_into().ok()?);
        let tags = i64::from_be_bytes(b.get(CQ_TAGS_POS..CQ_ENTRY_LEN)?.try_into().ok()?);
        if off < 0 {
            return None;
        }
        match size {
            LOST_ENTRY_SIZE_FIELD => Some(CqEntry::lost(off as u64)),
            size if size > 0 => Some(CqEntry { offset: off as u64, size: size as u32, tags_code: tags }),
            _ => None,
        }
    }
}

/// The open descriptors of one store's consume-queue files, at most `limit`
/// (`StoreConfig::max_open_cq_files`): a file not among them is opened on its next use, and
/// the least recently used one is closed to make room.
///
/// Closing a file with unsynced entries loses nothing: its dirty pages belong to the file, not
/// the descriptor, and the checkpoint opens it again to fdatasync it (the kernel reports a
/// write-back error no descriptor has seen to the next fdatasync of the file; the gap is in
/// store/DESIGN-NOTES.md).
/// Handles in use by an operation stay open until it ends (a clone shares the descriptor), so
/// the process may hold a few more than `limit` for as long as those operations run.
pub struct CqDescriptors<S: Storage> {
    storage: S,
    open: RefCell<LruCache<PathBuf, S::File>>,
    /// Bumped by every [`CqDescriptors::remove`]: an open under way while a file was removed is
    /// used once but not kept (its path may name a newer file by then).
    removals: Cell<u64>,
    /// Files opened, from the start (hits on a held descriptor not counted).
    opens: Cell<u64>,
}

impl<S: Storage> CqDescriptors<S> {
    pub fn new(storage: S, limit: usize) -> Self {
        CqDescriptors { storage, open: RefCell::new(LruCache::new(limit.max(1))), removals: Cell::new(0), opens: Cell::new(0) }
    }

    /// The file at `path`, from the held descriptors or opened (created, empty, when `create`).
    /// NotFound when the file is gone (retention or a topic deletion removed it).
    pub async fn file(&self, path: &Path, create: bool) -> io::Result<S::File> {
        if let Some(file) = self.open.borrow_mut().get(path) {
            return Ok(file.clone());
        }
        let removals = self.removals.get();
        let file = self.storage.open(path, create).await?;
        self.opens.set(self.opens.get() + 1);
        if self.removals.get() == removals {
            // Beyond the limit, the least recently used descriptor is dropped (closed once no
            // operation holds it).
            self.open.borrow_mut().insert(path.to_owned(), file.clone());
        }
        Ok(file)
    }

    /// The existing file at `path`, or `None` when it is gone (removed meanwhile by retention, a
    /// topic's deletion or a replica's truncation: each caller treats that as nothing to do).
    pub async fn existing(&self, path: &Path) -> Result<Option<S::File>> {
        match self.file(path, false).await {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(IoOp::Open, path, e)),
        }
    }

    /// Removes the file at `path` and drops its descriptor — after the removal, whether or not
    /// it succeeded: an open that completes while the file is being removed is then not kept,
    /// so the path can never lead to the removed file (a new file of the same name, a topic
    /// created again, would otherwise be written through the old descriptor).
    pub async fn remove(&self, path: &Path) -> io::Result<()> {
        let removed = self.storage.remove_file(path).await;
        self.open.borrow_mut().remove(path);
        self.removals.set(self.removals.get() + 1);
        removed
    }

    /// Descriptors held now (at most the limit).
    pub fn held(&self) -> usize {
        self.open.borrow().len()
    }

    /// Files opened since the store opened.
    pub fn opens(&self) -> u64 {
        self.opens.get()
    }
}

#[derive(Debug, Clone)]
pub struct CqFile {
    /// Logical offset of the file's first entry.
    pub first: u64,
    pub path: PathBuf,
}

/// One consume queue.
#[derive(Debug)]
pub struct ConsumeQueue {
    /// Shared with every checkpoint that names the queue (a periodic checkpoint names every
    /// queue: at 10,000 topics a `String` copy per queue per second was 40,000 allocations per
    /// shard and second).
    pub topic: Rc<str>,
    pub queue_id: QueueId,
    pub dir: PathBuf,
    pub entries_per_file: u64,
    pub files: Vec<CqFile>,
    /// First readable logical offset.
    pub min_offset: u64,
    /// One past the last entry dispatched (what pulls see): in the files below
    /// `written_offset`, in [`ConsumeQueue::unsynced`] from `synced_offset`.
    pub max_offset: u64,
    /// Next logical offset handed out at append time (≥ `max_offset`).
    pub next_offset: u64,
    /// Entries below this are in the files (synced or not); `synced_offset ≤ written_offset ≤
    /// max_offset`.
    pub written_offset: u64,
    /// Entries below this are durable (written and synced by a checkpoint).
    pub synced_offset: u64,
    /// The entries `[synced_offset, max_offset)`, oldest first: what pulls read above
    /// `synced_offset`, what the next write takes from `written_offset`, and where a checkpoint
    /// finds the log offset of the first entry it leaves unsynced.
    pub unsynced: VecDeque<CqEntry>,
    /// A file write of this queue's entries is in progress (the dispatcher's or a
    /// checkpoint's): another writer leaves the queue alone meanwhile instead of waiting.
    pub writing: bool,
    /// `max_offset` as of the store's dispatched offset: published together with it after a
    /// whole dispatch round, so a checkpoint never names entries of a half-dispatched round.
    pub dispatched_max: u64,
}

/// Directory of a queue: `<root>/consumequeue/<topic>/<queueId>`.
pub fn queue_dir(cq_root: &Path, topic: &str, queue_id: QueueId) -> PathBuf {
    cq_root.join(topic).join(queue_id.to_string())
}

fn file_index(first_offset: u64, per_file: u64) -> u64 {
    first_offset / per_file
}

impl ConsumeQueue {
    /// `topic` is taken as an `Rc<str>` where the caller has one to share (dispatch does).
    pub fn empty(cq_root: &Path, topic: impl Into<Rc<str>>, queue_id: QueueId, entries_per_file: u64) -> Self {
        let topic: Rc<str> = topic.into();
        ConsumeQueue {
            dir: queue_dir(cq_root, &topic, queue_id),
            topic,
            queue_id,
            entries_per_file,
            files: Vec::new(),
            min_offset: 0,
            max_offset: 0,
            next_offset: 0,
            written_offset: 0,
            synced_offset: 0,
            unsynced: VecDeque::new(),
            writing: false,
            dispatched_max: 0,
        }
    }

    /// A queue that starts at `first` (0, or on a replica that began mid-log, its master's
    /// first record) with nothing stored yet.
    pub fn starting_at(cq_root: &Path, topic: impl Into<Rc<str>>, queue_id: QueueId, entries_per_file: u64, first: u64) -> Self {
        let mut cq = Self::empty(cq_root, topic, queue_id, entries_per_file);
        cq.min_offset = first;
        cq.max_offset = first;
        cq.next_offset = first;
        cq.written_offset = first;
        cq.synced_offset = first;
        cq.dispatched_max = first;
        cq
    }

    /// Appends `entries` at logical offset `first` (which must be `max_offset`) to memory.
    pub fn push(&mut self, first: u64, entries: &[CqEntry]) {
        assert_eq!(first, self.max_offset, "consume queue entries must be appended in order");
        self.unsynced.extend(entries.iter().copied());
        self.max_offset += entries.len() as u64;
    }

    /// Entries in memory not yet written to the files.
    pub fn unwritten(&self) -> u64 {
        self.max_offset - self.written_offset
    }

    /// The entry at logical offset `at`, if it is held in memory (`synced_offset ≤ at <
    /// max_offset`).
    pub fn unsynced_entry(&self, at: u64) -> Option<&CqEntry> {
        self.unsynced.get(usize::try_from(at.checked_sub(self.synced_offset)?).ok()?)
    }

    /// A checkpoint made the entries below `to` durable: they leave memory. Returns how many
    /// did.
    pub fn mark_synced(&mut self, to: u64) -> u64 {
        let to = to.min(self.written_offset);
        if to <= self.synced_offset {
            return 0;
        }
        let n = ((to - self.synced_offset) as usize).min(self.unsynced.len());
        self.unsynced.drain(..n);
        self.synced_offset = to;
        n as u64
    }

    /// Its topic was deleted: the queue is never read, written or synced again (a write in
    /// progress ends first: [`ConsumeQueue::writing`] stays set). Returns how many entries
    /// left memory.
    pub fn retire(&mut self) -> u64 {
        let n = self.unsynced.len() as u64;
        self.unsynced.clear();
        self.synced_offset = self.max_offset;
        self.written_offset = self.written_offset.max(self.synced_offset);
        n
    }

    /// A replica's truncation: the queue ends at `cut` (its files are cut by the caller).
    /// Returns how many entries left memory.
    pub fn cut_to(&mut self, cut: u64) -> u64 {
        let before = self.unsynced.len() as u64;
        if cut < self.max_offset {
            self.unsynced.truncate(cut.saturating_sub(self.synced_offset) as usize);
            self.max_offset = cut;
        }
        self.next_offset = cut;
        self.dispatched_max = cut;
        self.written_offset = self.written_offset.min(cut);
        self.synced_offset = self.synced_offset.min(cut);
        self.min_offset = self.min_offset.min(cut);
        before - self.unsynced.len() as u64
    }

    /// Opens an existing queue and cuts it to `keep` entries (the checkpoint's durable count);
    /// entries beyond may be torn and are rebuilt from the commit log by the caller.
    pub async fn open<S: Storage>(
        files: &CqDescriptors<S>,
        cq_root: &Path,
        topic: &str,
        queue_id: QueueId,
        entries_per_file: u64,
        keep: u64,
        min_hint: u64,
    ) -> Result<Self> {
        let mut cq = Self::empty(cq_root, topic, queue_id, entries_per_file);
        let storage = &files.storage;
        let names = storage.list_dir(&cq.dir).await.map_err(|e| StoreError::io(IoOp::List, &cq.dir, e))?;
        let entry_len = CQ_ENTRY_LEN as u64;
        let file_bytes = entries_per_file * entry_len;
        let mut removed = false;
        for name in names {
            let Some(byte_off) = parse_offset_name(&name) else { continue };
            let path = cq.dir.join(&name);
            if byte_off % file_bytes != 0 {
                return Err(StoreError::CorruptFile {
                    what: "consume queue",
                    path,
                    reason: "file name is not a multiple of the file size".into(),
                });
            }
            let first = byte_off / entry_len;
            if first >= keep {
                files.remove(&path).await.map_err(|e| StoreError::io(IoOp::Remove, &path, e))?;
                removed = true;
                continue;
            }
            let file = files.file(&path, false).await.map_err(|e| StoreError::io(IoOp::Open, &path, e))?;
            let want = ((keep - first).min(entries_per_file)) * entry_len;
            let len = file.len().await.map_err(|e| StoreError::io(IoOp::Stat, &path, e))?;
            if len > want {
                file.set_len(want).await.map_err(|e| StoreError::io(IoOp::Truncate, &path, e))?;
                file.sync_data().await.map_err(|e| StoreError::io(IoOp::Fdatasync, &path, e))?;
            } else if len < want {
                return Err(StoreError::CorruptFile {
                    what: "consume queue",
                    path,
                    reason: format!("holds {len} bytes, checkpoint says {want} are durable"),
                });
            }
            cq.files.push(CqFile { first, path });
        }
        if removed {
            storage.sync_dir(&cq.dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, &cq.dir, e))?;
        }
        cq.files.sort_by_key(|f| f.first);
        // With every file retired by retention the queue still continues at its old end.
        cq.max_offset = keep;
        cq.next_offset = cq.max_offset;
        cq.written_offset = cq.max_offset;
        cq.synced_offset = cq.max_offset;
        cq.dispatched_max = cq.max_offset;
        let first_file = cq.files.first().map(|f| f.first).unwrap_or(cq.max_offset);
        cq.min_offset = min_hint.max(first_file).min(cq.max_offset);
        Ok(cq)
    }

    /// Files holding entries in `[synced_offset, to)`: what a checkpoint that makes the queue
    /// durable up to `to` (at most `written_offset`) syncs.
    pub fn unsynced_files(&self, to: u64) -> Vec<CqFile> {
        let per = self.entries_per_file;
        self.files.iter().filter(|f| f.first + per > self.synced_offset && f.first < to).cloned().collect()
    }

    /// The file that holds logical offset `offset`, if it exists.
    pub fn file_for(&self, offset: u64) -> Option<&CqFile> {
        let idx = file_index(offset, self.entries_per_file);
        self.files.iter().rev().find(|f| file_index(f.first, self.entries_per_file) == idx)
    }
}

/// Writes the queue's unwritten entries (`[written_offset, max_offset)` as of the call) to its
/// files, creating files as needed. Returns `Ok(false)` without writing when another write of
/// the queue is in progress (the dispatcher's and a checkpoint's never wait for each other).
pub async fn write_unwritten<S: Storage>(files: &CqDescriptors<S>, cq: &RefCell<ConsumeQueue>) -> Result<bool> {
    let (first, entries, per_file, dir) = {
        let mut q = cq.borrow_mut();
        if q.writing {
            return Ok(false);
        }
        if q.written_offset == q.max_offset {
            return Ok(true);
        }
        let from = (q.written_offset - q.synced_offset) as usize;
        let entries: Vec<CqEntry> = q.unsynced.range(from..).copied().collect();
        q.writing = true;
        (q.written_offset, entries, q.entries_per_file, q.dir.clone())
    };
    let r = write_entries(files, cq, first, &entries, per_file, &dir).await;
    cq.borrow_mut().writing = false;
    r.map(|()| true)
}

/// Writes `entries` at logical offset `first` (the queue's `written_offset`); the caller holds
/// the queue's `writing` flag. `written_offset` moves after each file's write completes.
async fn write_entries<S: Storage>(
    files: &CqDescriptors<S>,
    cq: &RefCell<ConsumeQueue>,
    first: u64,
    entries: &[CqEntry],
    per_file: u64,
    dir: &Path,
) -> Result<()> {
    let storage = &files.storage;
    let mut done = 0usize;
    while done < entries.len() {
        let at = first + done as u64;
        let room = (per_file - at % per_file) as usize;
        let take = room.min(entries.len() - done);
        let existing = cq.borrow().file_for(at).cloned();
        let (f, file) = match existing {
            Some(f) => {
                let file = files.file(&f.path, false).await.map_err(|e| StoreError::io(IoOp::Open, &f.path, e))?;
                (f, file)
            }
            None => {
                let file_first = at - at % per_file;
                if cq.borrow().files.is_empty() {
                    storage.create_dir_all(dir).await.map_err(|e| StoreError::io(IoOp::Mkdir, dir, e))?;
                    // Make the new topic/queue directories themselves durable.
                    let mut p = dir;
                    for _ in 0..2 {
                        if let Some(parent) = p.parent() {
                            storage.sync_dir(parent).await.map_err(|e| StoreError::io(IoOp::SyncDir, parent, e))?;
                            p = parent;
                        }
                    }
                }
                let path = dir.join(segment_name(file_first * CQ_ENTRY_LEN as u64));
                let file = files.file(&path, true).await.map_err(|e| StoreError::io(IoOp::Create, &path, e))?;
                storage.sync_dir(dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, dir, e))?;
                let f = CqFile { first: file_first, path };
                cq.borrow_mut().files.push(f.clone());
                (f, file)
            }
        };
        let mut buf = Vec::with_capacity(take * CQ_ENTRY_LEN);
        for e in entries.iter().skip(done).take(take) {
            e.encode(&mut buf);
        }
        let pos = (at - f.first) * CQ_ENTRY_LEN as u64;
        file.write_all_at(buf, pos).await.map_err(|e| StoreError::io(IoOp::Write, &f.path, e))?;
        done += take;
        let mut q = cq.borrow_mut();
        // A replica's truncation cut the queue meanwhile: what it cut stays unwritten.
        q.written_offset = (first + done as u64).min(q.max_offset).max(q.written_offset);
    }
    Ok(())
}

/// Reads up to `max_count` entries from `from`, never past `max_offset`, nor, for entries
/// read from a file (below `synced_offset`), past the end of that file. `Ok(None)` when that
/// file is gone (retention).
pub async fn read_entries<S: Storage>(
    files: &CqDescriptors<S>,
    cq: &RefCell<ConsumeQueue>,
    from: u64,
    max_count: u64,
) -> Result<Option<Vec<CqEntry>>> {
    let (f, end) = {
        let q = cq.borrow();
        if from >= q.synced_offset {
            let end = q.max_offset.min(from.saturating_add(max_count));
            return Ok(Some((from..end).filter_map(|at| q.unsynced_entry(at).copied()).collect()));
        }
        let Some(f) = q.file_for(from).cloned() else { return Ok(None) };
        let file_end = f.first + q.entries_per_file;
        (f, file_end.min(q.written_offset).min(from.saturating_add(max_count)))
    };
    if end <= from {
        return Ok(Some(Vec::new()));
    }
    let n = (end - from) as usize;
    let pos = (from - f.first) * CQ_ENTRY_LEN as u64;
    // Gone: retention removed it after the lookup above.
    let Some(file) = files.existing(&f.path).await? else { return Ok(None) };
    let bytes = file.read_at(n * CQ_ENTRY_LEN, pos).await.map_err(|e| StoreError::io(IoOp::Read, &f.path, e))?;
    let mut out = Vec::with_capacity(n);
    for (i, chunk) in bytes.chunks_exact(CQ_ENTRY_LEN).enumerate() {
        let e = CqEntry::decode(chunk).ok_or_else(|| StoreError::CorruptFile {
            what: "consume queue",
            path: f.path.clone(),
            reason: format!("invalid entry at logical offset {}", from + i as u64),
        })?;
        out.push(e);
    }
    if out.len() != n {
        return Err(StoreError::CorruptFile {
            what: "consume queue",
            path: f.path.clone(),
            reason: format!("short read: {} of {n} entries", out.len()),
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mem::MemStorage;
    use crate::test_support::block_on;

    #[test]
    fn descriptors_stay_within_the_budget_and_a_removed_path_never_reaches_its_old_file() {
        block_on(async {
            let storage = MemStorage::new();
            storage.create_dir_all(Path::new("/q")).await.unwrap();
            let files = CqDescriptors::new(storage.clone(), 2);
            let paths: Vec<PathBuf> = (0..5).map(|i| PathBuf::from(format!("/q/{i}"))).collect();
            for (i, path) in paths.iter().enumerate() {
                files.file(path, true).await.unwrap().write_all_at(vec![i as u8; 4], 0).await.unwrap();
                assert!(files.held() <= 2);
            }
            assert_eq!(files.opens(), 5);
            // The two most recent are held; an older one is opened again, with its bytes.
            files.file(&paths[4], false).await.unwrap();
            assert_eq!(files.opens(), 5, "a held descriptor is reused");
            assert_eq!(files.file(&paths[0], false).await.unwrap().read_at(4, 0).await.unwrap(), vec![0; 4]);
            assert_eq!(files.opens(), 6);
            // Removed while held: a new file of that name is the new one, not the old one.
            files.remove(&paths[0]).await.unwrap();
            assert_eq!(files.file(&paths[0], false).await.unwrap_err().kind(), io::ErrorKind::NotFound);
            assert_eq!(files.file(&paths[0], true).await.unwrap().read_at(4, 0).await.unwrap(), Vec::<u8>::new());
            assert!(files.held() <= 2);
        });
    }
}
