//! The key / unique-id index in RocketMQ's index-file layout (PROTOCOL.md §6.4):
//! a 40-byte header, `index_hash_slots` 4-byte slots, then `index_max_entries` 20-byte entries
//! `{keyHash i32, phyOffset i64, timeDiff i32 (seconds), prevIndex i32}`; entry 0 is unused.
//! Keys are `topic#key` for every `KEYS` element and for `UNIQ_KEY`.
//!
//! Shard-resident. The active file's slots live in memory only: every start rebuilds them from
//! the entries the checkpoint names, so the checkpoint writes just the new entries and the
//! header, and syncs the file before naming its entry count. The slot table (20 MB at the
//! default 5,000,000 slots) is written once, when the file is full and sealed (written and
//! synced completely, then read from disk). Writing the slots the active file's keys had
//! dirtied at every checkpoint rewrote nearly the whole table each second at tens of thousands
//! of keys a second, and nearly doubled the bytes the broker wrote per send (bench/RESULTS.md,
//! 2026-12-07). Physical offsets stored here are shard-local.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::checkpoint::Checkpoint;
use crate::commitlog::DispatchRecord;
use crate::config::StoreConfig;
use crate::error::{IoOp, Result, StoreError};
use crate::io::{Storage, StorageFile};
use crate::record::{index_hash, java_string_hash, java_string_hash_continued};
use crate::store::Inner;
use crate::types::CommitLogOffset;

pub const INDEX_BEGIN_TS_POS: usize = 0;
pub const INDEX_END_TS_POS: usize = INDEX_BEGIN_TS_POS + 8;
pub const INDEX_BEGIN_PHY_POS: usize = INDEX_END_TS_POS + 8;
pub const INDEX_END_PHY_POS: usize = INDEX_BEGIN_PHY_POS + 8;
pub const INDEX_SLOT_COUNT_POS: usize = INDEX_END_PHY_POS + 8;
pub const INDEX_COUNT_POS: usize = INDEX_SLOT_COUNT_POS + 4;
pub const INDEX_HEADER_LEN: usize = INDEX_COUNT_POS + 4;
const _: () = assert!(INDEX_HEADER_LEN == 40);
pub const INDEX_SLOT_LEN: usize = 4;
pub const INDEX_ENTRY_LEN: usize = 4 + 8 + 4 + 4;
const _: () = assert!(INDEX_ENTRY_LEN == 20);

/// `abs(javaHashCode(topic#key))`, 0 when the abs overflows.
pub fn key_hash(topic: &str, key: &str) -> u32 {
    // The hash of `topic#key`, computed over the parts (no joined string per index entry).
    index_hash(java_string_hash_continued(java_string_hash_continued(java_string_hash(topic), "#"), key))
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Header {
    begin_ts: i64,
    end_ts: i64,
    begin_phy: i64,
    end_phy: i64,
    slot_count: u32,
    count: u32,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(INDEX_HEADER_LEN);
        o.extend_from_slice(&self.begin_ts.to_be_bytes());
        o.extend_from_slice(&self.end_ts.to_be_bytes());
        o.extend_from_slice(&self.begin_phy.to_be_bytes());
        o.extend_from_slice(&self.end_phy.to_be_bytes());
        o.extend_from_slice(&self.slot_count.to_be_bytes());
        o.extend_from_slice(&self.count.to_be_bytes());
        o
    }
    fn decode(b: &[u8]) -> Option<Header> {
        let i64_at = |p: usize| -> Option<i64> { Some(i64::from_be_bytes(b.get(p..p + 8)?.try_into().ok()?)) };
        let u32_at = |p: usize| -> Option<u32> { Some(u32::from_be_bytes(b.get(p..p + 4)?.try_into().ok()?)) };
        Some(Header {
            begin_ts: i64_at(INDEX_BEGIN_TS_POS)?,
            end_ts: i64_at(INDEX_END_TS_POS)?,
            begin_phy: i64_at(INDEX_BEGIN_PHY_POS)?,
            end_phy: i64_at(INDEX_END_PHY_POS)?,
            slot_count: u32_at(INDEX_SLOT_COUNT_POS)?,
            count: u32_at(INDEX_COUNT_POS)?,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u32,
    phy: i64,
    time_diff_s: i32,
    prev: u32,
}

impl Entry {
    fn encode(&self, o: &mut Vec<u8>) {
        o.extend_from_slice(&(self.hash as i32).to_be_bytes());
        o.extend_from_slice(&self.phy.to_be_bytes());
        o.extend_from_slice(&self.time_diff_s.to_be_bytes());
        o.extend_from_slice(&(self.prev as i32).to_be_bytes());
    }
    fn decode(b: &[u8]) -> Option<Entry> {
        Some(Entry {
            hash: i32::from_be_bytes(b.get(0..4)?.try_into().ok()?) as u32,
            phy: i64::from_be_bytes(b.get(4..12)?.try_into().ok()?),
            time_diff_s: i32::from_be_bytes(b.get(12..16)?.try_into().ok()?),
            prev: i32::from_be_bytes(b.get(16..20)?.try_into().ok()?) as u32,
        })
    }
}

/// A sealed (full, durable, read-only) index file.
#[derive(Debug, Clone)]
struct Sealed<F> {
    name: String,
    path: PathBuf,
    file: F,
    header: Header,
}

/// The active index file with its in-memory slots and unwritten entries.
struct Active<F> {
    name: String,
    path: PathBuf,
    file: F,
    header: Header,
    /// Every slot, in memory only until the file is sealed (see the module comment).
    slots: Vec<u32>,
    /// Entries `persisted..header.count` not yet written, encoded.
    tail: Vec<u8>,
    persisted: u32,
}

/// What one checkpoint persists of the index.
pub struct IndexSnapshot {
    name: String,
    count: u32,
}

/// The shard's index: sealed files plus one active file.
pub struct IndexService<S: Storage> {
    dir: PathBuf,
    slots_per_file: u32,
    max_entries: u32,
    sealed: Vec<Sealed<S::File>>,
    active: Option<Active<S::File>>,
    /// Files sealed since the last checkpoint, still to be written and synced.
    to_seal: Vec<Active<S::File>>,
    dispatched: u64,
    at_dispatched: (String, u32),
    /// The last entry added, as (record log offset, key number): a dispatch retried after a
    /// transient fault (a roll that could not create its file) skips what it already added.
    added_through: Option<(u64, usize)>,
}

fn file_len(slots: u32, entries: u32) -> u64 {
    INDEX_HEADER_LEN as u64 + u64::from(slots) * INDEX_SLOT_LEN as u64 + u64::from(entries) * INDEX_ENTRY_LEN as u64
}

fn entry_pos(slots: u32, n: u32) -> u64 {
    INDEX_HEADER_LEN as u64 + u64::from(slots) * INDEX_SLOT_LEN as u64 + u64::from(n) * INDEX_ENTRY_LEN as u64
}

/// `yyyyMMddHHmmssSSS` of a Unix-epoch millisecond (UTC).
pub fn index_file_name(ms: i64) -> String {
    let (y, m, d, hour, minute, second) = utc_civil(ms.div_euclid(1000));
    format!("{y:04}{m:02}{d:02}{hour:02}{minute:02}{second:02}{:03}", ms.rem_euclid(1000))
}

/// The UTC calendar date and time of day of a Unix time in seconds:
/// `(year, month, day, hour, minute, second)` (proleptic Gregorian).
pub fn utc_civil(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, sod / 3600, sod % 3600 / 60, sod % 60)
}

fn corrupt(path: &Path, reason: &str) -> StoreError {
    StoreError::CorruptFile { what: "index", path: path.to_path_buf(), reason: reason.to_owned() }
}

impl<S: Storage> IndexService<S> {
    /// Opens the index directory: files after the checkpoint's active file are dropped (their
    /// entries are rebuilt by replay), the active file is cut to its checkpointed entry count
    /// and its slots are rebuilt from those entries.
    pub async fn open(storage: &S, dir: &Path, cfg: &StoreConfig, cp: Option<&Checkpoint>) -> Result<Self> {
        let mut svc = IndexService {
            dir: dir.to_path_buf(),
            slots_per_file: cfg.index_hash_slots,
            max_entries: cfg.index_max_entries,
            sealed: Vec::new(),
            active: None,
            to_seal: Vec::new(),
            dispatched: 0,
            at_dispatched: (String::new(), 0),
            // Every record below the checkpoint's dispatch point has its entries in the files
            // it names; replay may start below it (`Checkpoint::replay_from`) and adds none.
            added_through: cp.and_then(|c| c.dispatch_offset.checked_sub(1)).map(|last| (last, usize::MAX)),
        };
        let names = storage.list_dir(dir).await.map_err(|e| StoreError::io(IoOp::List, dir, e))?;
        let active_name = cp.map(|c| c.index_file.clone()).unwrap_or_default();
        let mut removed = false;
        for name in names {
            if name.len() != 17 || !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let path = dir.join(&name);
            if active_name.is_empty() || name > active_name {
                storage.remove_file(&path).await.map_err(|e| StoreError::io(IoOp::Remove, &path, e))?;
                removed = true;
                continue;
            }
            let file = storage.open(&path, false).await.map_err(|e| StoreError::io(IoOp::Open, &path, e))?;
            let hb = file.read_at(INDEX_HEADER_LEN, 0).await.map_err(|e| StoreError::io(IoOp::Read, &path, e))?;
            let header = Header::decode(&hb).ok_or_else(|| corrupt(&path, "short header"))?;
            if header.slot_count == 0 {
                return Err(corrupt(&path, "zero hash slots"));
            }
            if name == active_name {
                let count = cp.map(|c| c.index_entry_count).unwrap_or(1).max(1);
                let slots_n = header.slot_count;
                let bytes = file
                    .read_at((count as usize - 1) * INDEX_ENTRY_LEN, entry_pos(slots_n, 1))
                    .await
                    .map_err(|e| StoreError::io(IoOp::Read, &path, e))?;
                if bytes.len() != (count as usize - 1) * INDEX_ENTRY_LEN {
                    return Err(corrupt(&path, "fewer entries than the checkpoint names"));
                }
                let mut slots = vec![0u32; slots_n as usize];
                let mut hdr = header.clone();
                hdr.count = count;
                for (i, chunk) in bytes.chunks_exact(INDEX_ENTRY_LEN).enumerate() {
                    let e = Entry::decode(chunk).ok_or_else(|| corrupt(&path, "bad entry"))?;
                    if let Some(s) = slots.get_mut((e.hash % slots_n) as usize) {
                        *s = i as u32 + 1;
                    }
                    hdr.end_phy = e.phy;
                }
                // Whatever slot values the file holds are ignored (and overwritten when it is
                // sealed): these are rebuilt from the entries the checkpoint names.
                svc.active = Some(Active { name, path, file, header: hdr, slots, tail: Vec::new(), persisted: count });
            } else {
                svc.sealed.push(Sealed { name, path, file, header });
            }
        }
        if removed {
            storage.sync_dir(dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, dir, e))?;
        }
        svc.sealed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(svc)
    }

    /// Records the index position that corresponds to the store's dispatched offset.
    pub fn set_dispatched(&mut self, end: u64) {
        self.dispatched = end;
        self.at_dispatched = match &self.active {
            Some(a) => (a.name.clone(), a.header.count),
            None => (String::new(), 0),
        };
    }

    /// A replica's truncation took back every record at or past the dispatched offset: a
    /// dispatch after it never skips a record as already added (the retry bookkeeping names
    /// offsets of the records that are gone). The entries those records added stay in the
    /// files; a query never returns them (see [`query`]).
    pub fn forget_added(&mut self) {
        self.added_through = None;
    }

    /// The position a checkpoint may name (as of the dispatched offset).
    pub fn snapshot(&self) -> IndexSnapshot {
        IndexSnapshot { name: self.at_dispatched.0.clone(), count: self.at_dispatched.1 }
    }

    /// Reads the slots of `hashes` in the active file, and nothing else. Each key lands on a
    /// random slot of a table far larger than the CPU's caches (20 MB at the default 5,000,000
    /// slots), and that load was 87 % of the dispatcher's samples (perf, 2026-12-07): one cache
    /// miss per key, each waited for in turn by `add`. These loads depend on nothing but their
    /// hash, so the CPU keeps many of them in flight at once; `add` then finds its slot cached.
    fn touch_slots(&self, hashes: impl Iterator<Item = u32>) {
        let Some(a) = self.active.as_ref() else { return };
        let slots_n = self.slots_per_file.max(1);
        let mut seen = 0u32;
        for hash in hashes {
            seen |= a.slots.get((hash % slots_n) as usize).copied().unwrap_or(0);
        }
        std::hint::black_box(seen);
    }

    fn add(&mut self, hash: u32, phy: u64, store_ts: i64) -> bool {
        let slots_n = self.slots_per_file;
        let Some(a) = self.active.as_mut() else { return false };
        if a.header.count >= self.max_entries {
            return false;
        }
        if a.header.count == 1 {
            a.header.begin_ts = store_ts;
            a.header.begin_phy = phy as i64;
        }
        let slot = hash % slots_n;
        let prev = a.slots.get(slot as usize).copied().unwrap_or(0);
        let diff = ((store_ts - a.header.begin_ts) / 1000).clamp(0, i64::from(i32::MAX)) as i32;
        Entry { hash, phy: phy as i64, time_diff_s: diff, prev }.encode(&mut a.tail);
        let n = a.header.count;
        if let Some(s) = a.slots.get_mut(slot as usize) {
            *s = n;
        }
        a.header.count += 1;
        a.header.end_ts = store_ts;
        a.header.end_phy = phy as i64;
        true
    }
}

/// Adds index entries for dispatched records; rolls to a new file when the active one is full.
pub(crate) async fn dispatch<S: Storage>(inner: &Rc<Inner<S>>, records: &[DispatchRecord]) -> Result<()> {
    if let Some(ix) = inner.index.borrow().as_ref() {
        ix.touch_slots(records.iter().flat_map(|r| r.key_hashes.iter().copied()));
    }
    for r in records {
        for (key_no, &hash) in r.key_hashes.iter().enumerate() {
            let at = (r.offset.0, key_no);
            loop {
                let added = {
                    let mut ix = inner.index.borrow_mut();
                    let Some(ix) = ix.as_mut() else { return Ok(()) };
                    if ix.added_through.is_some_and(|done| at <= done) {
                        break;
                    }
                    let added = ix.add(hash, r.offset.0, r.store_timestamp_ms);
                    if added {
                        ix.added_through = Some(at);
                    }
                    added
                };
                if added {
                    break;
                }
                roll(inner, r.store_timestamp_ms).await?;
            }
        }
    }
    Ok(())
}

async fn roll<S: Storage>(inner: &Rc<Inner<S>>, ts: i64) -> Result<()> {
    let (dir, slots_n, max_entries, mut name) = {
        let ix = inner.index.borrow();
        let Some(ix) = ix.as_ref() else { return Ok(()) };
        let last = ix.active.as_ref().map(|a| a.name.clone()).or_else(|| ix.sealed.last().map(|s| s.name.clone()));
        let mut name = index_file_name(ts.max(crate::store::now_ms()));
        if let Some(l) = last.filter(|l| name <= *l) {
            // Names must grow; bump by a millisecond past the last one.
            let n: u64 = l.parse().unwrap_or(0);
            name = format!("{:017}", n + 1);
        }
        (ix.dir.clone(), ix.slots_per_file, ix.max_entries, name)
    };
    if name.len() != 17 {
        name = format!("{:017}", 0);
    }
    let path = dir.join(&name);
    let file = inner.storage.open(&path, true).await.map_err(|e| StoreError::io(IoOp::Create, &path, e))?;
    file.set_len(file_len(slots_n, max_entries)).await.map_err(|e| StoreError::io(IoOp::Truncate, &path, e))?;
    let header = Header { slot_count: slots_n, count: 1, ..Default::default() };
    file.write_all_at(header.encode(), 0).await.map_err(|e| StoreError::io(IoOp::Write, &path, e))?;
    inner.storage.sync_dir(&dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, &dir, e))?;
    let mut ix = inner.index.borrow_mut();
    let Some(ix) = ix.as_mut() else { return Ok(()) };
    let fresh = Active {
        name,
        path,
        file,
        header,
        slots: vec![0; slots_n as usize],
        tail: Vec::new(),
        persisted: 1,
    };
    if let Some(old) = ix.active.replace(fresh) {
        ix.to_seal.push(old);
    }
    Ok(())
}

/// One index file's pending writes, copied out of the index so that queries and dispatch keep
/// seeing the file — and its unwritten entries — while the writes and the sync are in flight.
/// (Taking the file out of the index for the duration made every key query of that window miss
/// the active file, and made a concurrent dispatch roll a fresh file.)
struct WriteJob<F> {
    name: String,
    path: PathBuf,
    file: F,
    /// Encoded entries `from..to`.
    tail: Vec<u8>,
    from: u32,
    to: u32,
    /// The whole slot table as of the copy, for a file being sealed; `None` for the active file.
    slots: Option<Vec<u8>>,
    header: Vec<u8>,
}

/// The pending writes of `a`: its unwritten entries and header, and for a file being sealed
/// (`seal`) its slot table too.
fn write_job<F: StorageFile>(a: &Active<F>, seal: bool) -> WriteJob<F> {
    let slots = seal.then(|| {
        let mut buf = vec![0u8; a.slots.len() * INDEX_SLOT_LEN];
        for (bytes, slot) in buf.chunks_exact_mut(INDEX_SLOT_LEN).zip(&a.slots) {
            bytes.copy_from_slice(&slot.to_be_bytes());
        }
        buf
    });
    WriteJob {
        name: a.name.clone(),
        path: a.path.clone(),
        file: a.file.clone(),
        tail: a.tail.clone(),
        from: a.persisted,
        to: a.header.count,
        slots,
        header: a.header.encode(),
    }
}

async fn run_job<F: StorageFile>(slots_n: u32, job: &WriteJob<F>) -> Result<()> {
    let path = &job.path;
    if !job.tail.is_empty() {
        job.file.write_all_at(job.tail.clone(), entry_pos(slots_n, job.from)).await.map_err(|e| StoreError::io(IoOp::Write, path, e))?;
    }
    if let Some(slots) = &job.slots {
        job.file.write_all_at(slots.clone(), INDEX_HEADER_LEN as u64).await.map_err(|e| StoreError::io(IoOp::Write, path, e))?;
    }
    job.file.write_all_at(job.header.clone(), 0).await.map_err(|e| StoreError::io(IoOp::Write, path, e))?;
    job.file.sync_data().await.map_err(|e| StoreError::io(IoOp::Fdatasync, path, e))?;
    Ok(())
}

/// The written entries leave the in-memory tail (entries added meanwhile stay in it).
fn complete_job<F>(a: &mut Active<F>, job: &WriteJob<F>) {
    if job.to > a.persisted {
        let written = ((job.to - a.persisted) as usize * INDEX_ENTRY_LEN).min(a.tail.len());
        a.tail.drain(..written);
        a.persisted = job.to;
    }
}

fn find_active<'a, S: Storage>(ix: &'a mut IndexService<S>, name: &str) -> Option<&'a mut Active<S::File>> {
    if ix.active.as_ref().is_some_and(|a| a.name == name) {
        return ix.active.as_mut();
    }
    ix.to_seal.iter_mut().find(|a| a.name == name)
}

/// Persists the index up to the snapshot (checkpoint step): seals full files (entries, slots,
/// header), writes the active file's new entries and header, and syncs each. Returns the
/// active file and count. The files stay in the index (queryable, and the active one writable)
/// throughout.
pub(crate) async fn persist<S: Storage>(inner: &Rc<Inner<S>>, snap: IndexSnapshot) -> Result<(String, u32)> {
    let (slots_n, jobs) = {
        let mut ix = inner.index.borrow_mut();
        let Some(ix) = ix.as_mut() else { return Ok((String::new(), 0)) };
        let slots_n = ix.slots_per_file;
        // Files to seal first (oldest first), then the active one.
        let mut jobs: Vec<WriteJob<S::File>> = ix.to_seal.iter().map(|a| write_job(a, true)).collect();
        jobs.extend(ix.active.as_ref().map(|a| write_job(a, false)));
        (slots_n, jobs)
    };
    for job in &jobs {
        // On an error nothing is lost: unwritten entries stay in the tails, the slots in memory,
        // and a file waiting for its seal stays waiting.
        run_job(slots_n, job).await?;
    }
    let mut ix = inner.index.borrow_mut();
    if let Some(ix) = ix.as_mut() {
        for job in &jobs {
            if let Some(a) = find_active(ix, &job.name) {
                complete_job(a, job);
            }
        }
        // Files that were waiting to be sealed and are now fully written become sealed, in
        // order. (One that rolled during the awaits stays queued until the next checkpoint.)
        let mut still = Vec::new();
        for a in std::mem::take(&mut ix.to_seal) {
            let written = jobs.iter().any(|j| j.name == a.name && j.to == a.header.count && j.slots.is_some()) && a.tail.is_empty();
            if written {
                ix.sealed.push(Sealed { name: a.name, path: a.path, file: a.file, header: a.header });
            } else {
                still.push(a);
            }
        }
        ix.to_seal = still;
    }
    // Entries added after the snapshot are persisted too; naming the smaller snapshot count in
    // the checkpoint stays correct (recovery cuts to it and replays the rest).
    Ok((snap.name, snap.count))
}

/// Query by key (QUERY_MESSAGE): physical offsets of up to `max` records of `topic` with `key`
/// stored within `[begin_ms, end_ms]`, newest first. Also serves unique-id lookups.
///
/// Every hit is checked against the record it names: the record must be readable, of `topic`,
/// and carry `key` (a `KEYS` element or its `UNIQ_KEY`); each offset is returned once. The
/// index can hold entries whose records are gone or replaced: a replica's truncation
/// ([`crate::Store::truncate_replica`]) takes back the records at or past its offset but not
/// their entries (cutting chained entries out of an index file, sealed or not, across a crash,
/// is far more machinery than one record read per hit), and the master's new records then
/// occupy the same offsets. The check also drops the hash collisions Java leaves to the client.
pub async fn query<S: Storage>(
    store: &crate::store::Store<S>,
    topic: &str,
    key: &str,
    max: usize,
    begin_ms: i64,
    end_ms: i64,
) -> Result<Vec<CommitLogOffset>> {
    let hash = key_hash(topic, key);
    let mut out = Vec::new();
    // Entries below the topic's deletion fence belong to a deleted incarnation of the topic,
    // and entries below the log minimum to records retention removed: neither is found.
    let floor = store.inner.fence_of(topic).max(store.inner.log_min.get());
    let wanted = Wanted { topic, key, hash, begin_ms, end_ms, floor, max };
    // In-memory files (the active one and any awaiting their seal), newest first, copied out so
    // no borrow is held across the reads below; then sealed files, newest first.
    let (mem_files, sealed) = {
        let ix = store.inner.index.borrow();
        let Some(ix) = ix.as_ref() else { return Ok(out) };
        let slots_n = ix.slots_per_file;
        let mut mem = Vec::new();
        for a in ix.active.iter().chain(ix.to_seal.iter().rev()) {
            let head = a.slots.get((hash % slots_n) as usize).copied().unwrap_or(0);
            mem.push((a.file.clone(), a.path.clone(), a.header.clone(), a.persisted, a.tail.clone(), head));
        }
        (mem, ix.sealed.iter().rev().cloned().collect::<Vec<_>>())
    };
    for (file, path, header, persisted, tail, head) in mem_files {
        let mut n = head;
        let mut guard = 0u32;
        while n > 0 && n < header.count && guard < header.count && out.len() < max {
            guard += 1;
            let e = if n >= persisted {
                let at = (n - persisted) as usize * INDEX_ENTRY_LEN;
                match tail.get(at..at + INDEX_ENTRY_LEN).and_then(Entry::decode) {
                    Some(e) => e,
                    None => break,
                }
            } else {
                let b = file.read_at(INDEX_ENTRY_LEN, entry_pos(header.slot_count, n)).await.map_err(|e| StoreError::io(IoOp::Read, &path, e))?;
                Entry::decode(&b).ok_or_else(|| corrupt(&path, "short entry"))?
            };
            wanted.take(store, &header, &e, &mut out).await;
            if e.prev >= n {
                break;
            }
            n = e.prev;
        }
    }
    for s in sealed {
        if out.len() >= max {
            break;
        }
        if s.header.end_ts < begin_ms || s.header.begin_ts > end_ms {
            continue;
        }
        walk_file(store, &s.file, &s.path, &s.header, &wanted, &mut out).await?;
    }
    out.truncate(max);
    Ok(out)
}

/// What a query looks for.
struct Wanted<'a> {
    topic: &'a str,
    key: &'a str,
    hash: u32,
    begin_ms: i64,
    end_ms: i64,
    floor: u64,
    max: usize,
}

impl Wanted<'_> {
    /// Adds the record an entry names to `out` if it is a hit (see [`query`]).
    async fn take<S: Storage>(&self, store: &crate::store::Store<S>, header: &Header, e: &Entry, out: &mut Vec<CommitLogOffset>) {
        if e.hash != self.hash || !in_window(header, e, self.begin_ms, self.end_ms) || e.phy < 0 || (e.phy as u64) < self.floor {
            return;
        }
        let at = CommitLogOffset(e.phy as u64);
        if out.contains(&at) || !carries_key(store, self.topic, self.key, at).await {
            return;
        }
        out.push(at);
    }
}

/// Whether the record at `at` is readable, of `topic`, and carries `key` as an index key.
async fn carries_key<S: Storage>(store: &crate::store::Store<S>, topic: &str, key: &str, at: CommitLogOffset) -> bool {
    let Ok(bytes) = store.read_record(at).await else { return false };
    let Ok(view) = crate::record::decode_record(&bytes, false) else { return false };
    view.topic == topic && crate::commitlog::index_keys(&view.properties()).iter().any(|k| k == key)
}

fn in_window(h: &Header, e: &Entry, begin_ms: i64, end_ms: i64) -> bool {
    let t = h.begin_ts + i64::from(e.time_diff_s) * 1000;
    // timeDiff has second resolution: widen by the lost fraction.
    t + 999 >= begin_ms && t <= end_ms
}

async fn walk_file<S: Storage>(
    store: &crate::store::Store<S>,
    file: &S::File,
    path: &Path,
    header: &Header,
    wanted: &Wanted<'_>,
    out: &mut Vec<CommitLogOffset>,
) -> Result<()> {
    let slots_n = header.slot_count;
    let pos = INDEX_HEADER_LEN as u64 + u64::from(wanted.hash % slots_n) * INDEX_SLOT_LEN as u64;
    let b = file.read_at(4, pos).await.map_err(|e| StoreError::io(IoOp::Read, path, e))?;
    let mut n = u32::from_be_bytes(b.get(..4).and_then(|s| s.try_into().ok()).ok_or_else(|| corrupt(path, "short slot"))?);
    let mut guard = 0u32;
    while n > 0 && n < header.count && out.len() < wanted.max && guard < header.count {
        guard += 1;
        let b = file.read_at(INDEX_ENTRY_LEN, entry_pos(slots_n, n)).await.map_err(|e| StoreError::io(IoOp::Read, path, e))?;
        let e = Entry::decode(&b).ok_or_else(|| corrupt(path, "short entry"))?;
        wanted.take(store, header, &e, out).await;
        if e.prev >= n {
            break;
        }
        n = e.prev;
    }
    Ok(())
}

/// Deletes sealed index files whose entries all point below `log_min`.
pub(crate) async fn retire_below<S: Storage>(inner: &Rc<Inner<S>>, log_min: u64) -> Result<()> {
    let doomed: Vec<Sealed<S::File>> = {
        let mut ix = inner.index.borrow_mut();
        let Some(ix) = ix.as_mut() else { return Ok(()) };
        let (gone, keep): (Vec<_>, Vec<_>) = ix.sealed.drain(..).partition(|s| s.header.end_phy >= 0 && (s.header.end_phy as u64) < log_min);
        ix.sealed = keep;
        gone
    };
    if doomed.is_empty() {
        return Ok(());
    }
    let dir = doomed.first().and_then(|d| d.path.parent().map(Path::to_path_buf)).unwrap_or_default();
    for d in doomed {
        inner.storage.remove_file(&d.path).await.map_err(|e| StoreError::io(IoOp::Remove, &d.path, e))?;
    }
    inner.storage.sync_dir(&dir).await.map_err(|e| StoreError::io(IoOp::SyncDir, &dir, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QueueId;
    use crate::record::{MessageInput, Properties};

    /// A message to topic `T` whose one `KEYS` element is `key`.
    fn keyed(key: &str) -> MessageInput {
        let mut p = Properties::new();
        p.insert("KEYS", key);
        MessageInput::simple("T", QueueId(0), key.as_bytes().to_vec(), &p)
    }

    #[test]
    fn file_names_are_utc_timestamps() {
        assert_eq!(index_file_name(0), "19700101000000000");
        assert_eq!(index_file_name(1_700_000_000_123), "20231114221320123");
    }

    #[test]
    fn key_hash_uses_topic_hash_key() {
        assert_eq!(key_hash("T", "k"), java_string_hash("T#k").unsigned_abs());
        // Non-ASCII parts hash as the UTF-16 of the whole string, as Java's String.hashCode.
        for (topic, key) in [("Tópico", "clé-𝄞"), ("", ""), ("TopicTest", "7F000001000022B7000000000000A3C1")] {
            let whole = java_string_hash(&format!("{topic}#{key}"));
            assert_eq!(key_hash(topic, key), if whole == i32::MIN { 0 } else { whole.unsigned_abs() }, "{topic}#{key}");
        }
    }

    proptest::proptest! {
        /// A key's share of the hash, completed with the topic at append, is the hash of the
        /// joined `topic#key` (any text: ASCII, accents, astral characters as UTF-16 pairs).
        #[test]
        fn a_keys_share_of_the_hash_completes_to_the_key_hash(topic in "[a-zA-Z%_é😀]{0,12}", key in "[ -~é中😀]{0,40}") {
            proptest::prop_assert_eq!(crate::record::IndexKeyHash::of(&key).under(&topic), key_hash(&topic, &key));
        }
    }

    /// A checkpoint writes the active file's new entries and header only; its slot table is
    /// written when the file is sealed, and every start rebuilds the active file's slots from
    /// its entries. After a crash, keys of both files are found: the sealed file's through its
    /// slots on disk, the active file's through slots rebuilt from the checkpointed entries.
    #[test]
    fn the_active_files_slots_reach_the_disk_only_when_it_is_sealed() {
        use crate::io::compio_fs::CompioStorage;
        use crate::{Store, StoreConfig};

        const SLOTS: usize = 64;
        let slot_table = |path: &Path| {
            let bytes = std::fs::read(path).unwrap();
            bytes[INDEX_HEADER_LEN..INDEX_HEADER_LEN + SLOTS * INDEX_SLOT_LEN].to_vec()
        };
        let header_count = |path: &Path| Header::decode(&std::fs::read(path).unwrap()).unwrap().count;
        let index_files = |dir: &Path| {
            let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join("index")).unwrap().map(|e| e.unwrap().path()).collect();
            names.sort();
            names
        };

        let dir = std::env::temp_dir().join(format!("ferromq-index-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cfg = StoreConfig::test_min(&dir);
        cfg.segment_size_bytes = 1 << 20;
        cfg.index_hash_slots = SLOTS as u32;
        cfg.index_max_entries = 16; // 15 entries a file (entry 0 is unused)
        crate::test_support::block_on(async {
            let (store, _) = Store::open(CompioStorage, cfg.clone()).await.unwrap();
            for i in 0..10 {
                store.append(vec![keyed(&format!("k{i}"))]).await.unwrap();
            }
            store.wait_dispatched().await.unwrap();
            store.checkpoint().await.unwrap();
            let files = index_files(&dir);
            assert_eq!(files.len(), 1);
            assert_eq!(header_count(&files[0]), 11, "the header and the entries are written");
            assert!(slot_table(&files[0]).iter().all(|b| *b == 0), "no slot of the active file is written");

            for i in 10..20 {
                store.append(vec![keyed(&format!("k{i}"))]).await.unwrap();
            }
            store.wait_dispatched().await.unwrap();
            store.checkpoint().await.unwrap();
            let files = index_files(&dir);
            assert_eq!(files.len(), 2, "the first file filled up and a second one took over");
            assert_eq!(header_count(&files[0]), 16);
            // The sealed file's table holds the newest entry of every slot its keys used.
            let sealed = slot_table(&files[0]);
            let used: std::collections::BTreeSet<u32> = (0..15).map(|i| key_hash("T", &format!("k{i}")) % SLOTS as u32).collect();
            for (slot, value) in sealed.chunks_exact(INDEX_SLOT_LEN).enumerate() {
                let value = u32::from_be_bytes(value.try_into().unwrap());
                assert_eq!(value != 0, used.contains(&(slot as u32)), "slot {slot} holds {value}");
            }
            assert!(slot_table(&files[1]).iter().all(|b| *b == 0), "no slot of the new active file is written");
            store.abandon().await;

            let (store, report) = Store::open(CompioStorage, cfg).await.unwrap();
            assert!(report.abnormal);
            for i in 0..20 {
                let hits = query(&store, "T", &format!("k{i}"), 10, 0, i64::MAX / 2).await.unwrap();
                assert_eq!(hits.len(), 1, "k{i}");
            }
            store.close().await.unwrap();
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A checkpoint writes and syncs the index while the shard keeps serving: key queries in
    /// that window must still see the active file's entries, and dispatch must keep adding to
    /// the same file (the persist step once took the file out of the index for its duration).
    #[test]
    fn keys_stay_queryable_and_dispatch_stays_in_one_file_while_the_index_is_persisted() {
        use std::cell::Cell;
        use std::rc::Rc;

        use crate::io::compio_fs::CompioStorage;
        use crate::{Store, StoreConfig};


        let dir = std::env::temp_dir().join(format!("ferromq-index-persist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cfg = StoreConfig::test_min(&dir);
        cfg.segment_size_bytes = 1 << 20;
        cfg.index_hash_slots = 64;
        cfg.index_max_entries = 4096;
        crate::test_support::block_on(async {
            let (store, _) = Store::open(CompioStorage, cfg).await.unwrap();
            let store = Rc::new(store);
            for i in 0..20 {
                store.append(vec![keyed(&format!("k{i}"))]).await.unwrap();
            }
            store.wait_dispatched().await.unwrap();
            // Checkpoints back to back on one task, queries and appends on this one.
            let stop = Rc::new(Cell::new(false));
            let checkpoints = compio::runtime::spawn({
                let (store, stop) = (store.clone(), stop.clone());
                async move {
                    let mut n = 0u32;
                    while !stop.get() && n < 100_000 {
                        store.checkpoint().await.unwrap();
                        n += 1;
                        // A checkpoint already running (the store's own timer) returns at once.
                        compio::time::sleep(std::time::Duration::from_micros(50)).await;
                    }
                    n
                }
            });
            let mut queries = 0u32;
            let mut appended = 20u32;
            while queries < 300 {
                let key = format!("k{}", queries % appended);
                let hits = query(&store, "T", &key, 10, 0, i64::MAX / 2).await.unwrap();
                assert_eq!(hits.len(), 1, "query {queries} for {key}");
                queries += 1;
                if queries.is_multiple_of(8) {
                    store.append(vec![keyed(&format!("k{appended}"))]).await.unwrap();
                    store.wait_dispatched().await.unwrap();
                    appended += 1;
                }
                compio::time::sleep(std::time::Duration::from_micros(100)).await;
            }
            stop.set(true);
            let checkpoints = checkpoints.await.unwrap();
            assert!(checkpoints > 10, "checkpoints ran alongside the queries: {checkpoints:?}");
            store.wait_dispatched().await.unwrap();
            for i in 0..appended {
                assert_eq!(query(&store, "T", &format!("k{i}"), 10, 0, i64::MAX / 2).await.unwrap().len(), 1, "k{i}");
            }
            let files = std::fs::read_dir(dir.join("index")).unwrap().count();
            assert_eq!(files, 1, "dispatch rolled index files while the index was being persisted");
            Rc::try_unwrap(store).ok().unwrap().close().await.unwrap();
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
