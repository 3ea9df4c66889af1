//! In-memory [`Storage`](super::Storage) with a crash model.
//!
//! Every file keeps its visible bytes, the bytes a completed `sync_data` made durable, and the
//! list of operations issued since. [`MemStorage::crash`] models power loss: each file restarts
//! from its durable image, and every unsynced operation independently lands fully, is lost, or
//! (for writes) lands only as a prefix — the adversarial superset of what a disk with a volatile
//! cache can do. File names follow the same rule through `sync_dir`. Handles opened before a
//! crash are dead afterwards (every op fails), so a crashed store instance cannot touch the
//! "disk" its successor recovers from.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{DiskSpace, Storage, StorageFile, yield_now};

#[derive(Debug, Clone)]
enum PendingOp {
    Write { pos: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<PendingOp>,
}

fn apply_write(data: &mut Vec<u8>, pos: u64, bytes: &[u8]) {
    let pos = pos as usize;
    let end = pos + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    if let Some(dst) = data.get_mut(pos..end) {
        dst.copy_from_slice(bytes);
    }
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    dirs: BTreeSet<PathBuf>,
    live: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    /// Completed `sync_data` calls (for tests that count syncs).
    syncs: u64,
    /// What `disk_usage_ratio` answers (tests of the disk-full paths set it).
    disk_usage_ratio: f64,
}

/// The size of the disk [`MemStorage`] reports (`disk_space`): 1 TiB.
pub const MEM_DISK_BYTES: u64 = 1 << 40;

/// A whole file system in memory. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    state: Rc<RefCell<State>>,
}

/// An open in-memory file.
#[derive(Debug, Clone)]
pub struct MemFile {
    state: Rc<RefCell<State>>,
    inode: u64,
    generation: u64,
}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", p.display()))
}

fn stale() -> io::Error {
    io::Error::other("file handle from before a simulated crash")
}

/// How unsynced operations fare in a crash.
#[derive(Debug, Clone, Copy)]
pub struct CrashOdds {
    /// Percent chance an unsynced op survives whole.
    pub keep_pct: u32,
    /// Percent chance an unsynced write survives as a random prefix (torn).
    pub torn_pct: u32,
}

impl Default for CrashOdds {
    fn default() -> Self {
        CrashOdds { keep_pct: 40, torn_pct: 30 }
    }
}

impl MemStorage {
    /// Sets what `disk_usage_ratio` reports from now on (0.0..=1.0).
    pub fn set_disk_usage_ratio(&self, ratio: f64) {
        self.state.borrow_mut().disk_usage_ratio = ratio;
    }

    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates power loss. `rand` supplies randomness (a value in `0..bound`) so that the caller's
    /// seeded generator makes the outcome reproducible.
    pub fn crash(&self, odds: CrashOdds, rand: &mut dyn FnMut(u64) -> u64) {
        let mut st = self.state.borrow_mut();
        st.generation += 1;
        let durable_names = st.durable_names.clone();
        st.live = durable_names;
        let mut ids: Vec<u64> = st.inodes.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(ino) = st.inodes.get_mut(&id) else { continue };
            let mut img = ino.durable.clone();
            for op in std::mem::take(&mut ino.pending) {
                let roll = rand(100) as u32;
                match op {
                    PendingOp::Write { pos, bytes } => {
                        if roll < odds.keep_pct {
                            apply_write(&mut img, pos, &bytes);
                        } else if roll < odds.keep_pct + odds.torn_pct && !bytes.is_empty() {
                            let cut = rand(bytes.len() as u64) as usize;
                            apply_write(&mut img, pos, bytes.get(..cut).unwrap_or_default());
                        }
                    }
                    PendingOp::SetLen(len) => {
                        if roll < odds.keep_pct + odds.torn_pct {
                            img.resize(len as usize, 0);
                        }
                    }
                }
            }
            ino.data = img.clone();
            ino.durable = img;
        }
    }

    /// Number of completed `sync_data` calls so far.
    pub fn sync_count(&self) -> u64 {
        self.state.borrow().syncs
    }

    /// The visible bytes of a file (for tests).
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state.borrow();
        let id = st.live.get(path)?;
        st.inodes.get(id).map(|i| i.data.clone())
    }

    /// Overwrites bytes of a file and marks them durable (for corruption tests).
    pub fn corrupt(&self, path: &Path, pos: u64, bytes: &[u8]) -> bool {
        let mut st = self.state.borrow_mut();
        let Some(id) = st.live.get(path).copied() else { return false };
        let Some(ino) = st.inodes.get_mut(&id) else { return false };
        apply_write(&mut ino.data, pos, bytes);
        apply_write(&mut ino.durable, pos, bytes);
        true
    }

    fn file(&self, st: &State, id: u64) -> MemFile {
        MemFile { state: self.state.clone(), inode: id, generation: st.generation }
    }
}

impl Storage for MemStorage {
    type File = MemFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<MemFile> {
        let mut st = self.state.borrow_mut();
        if let Some(id) = st.live.get(path).copied() {
            return Ok(self.file(&st, id));
        }
        if !create {
            return Err(not_found(path));
        }
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if !st.dirs.contains(&parent) {
            return Err(not_found(&parent));
        }
        let id = st.next_inode;
        st.next_inode += 1;
        st.inodes.insert(id, Inode::default());
        st.live.insert(path.to_path_buf(), id);
        Ok(self.file(&st, id))
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        let mut p = Some(path);
        while let Some(d) = p {
            st.dirs.insert(d.to_path_buf());
            p = d.parent();
        }
        Ok(())
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let st = self.state.borrow();
        if !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        let mut names: Vec<String> = st
            .live
            .keys()
            .chain(st.dirs.iter())
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        st.live.remove(path).map(|_| ()).ok_or_else(|| not_found(path))
    }

    async fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        if !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        if st.live.keys().chain(st.dirs.iter()).any(|p| p.parent() == Some(path)) {
            return Err(io::Error::new(io::ErrorKind::DirectoryNotEmpty, format!("{} is not empty", path.display())));
        }
        st.dirs.remove(path);
        Ok(())
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        let id = st.live.remove(from).ok_or_else(|| not_found(from))?;
        st.live.insert(to.to_path_buf(), id);
        Ok(())
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        let in_dir = |p: &PathBuf| p.parent() == Some(path);
        st.durable_names.retain(|p, _| !in_dir(p));
        let entries: Vec<(PathBuf, u64)> =
            st.live.iter().filter(|(p, _)| in_dir(p)).map(|(p, i)| (p.clone(), *i)).collect();
        st.durable_names.extend(entries);
        Ok(())
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        let st = self.state.borrow();
        Ok(st.live.contains_key(path) || st.dirs.contains(path))
    }

    /// A disk of [`MEM_DISK_BYTES`], used as [`MemStorage::set_disk_usage_ratio`] says.
    async fn disk_space(&self, _path: &Path) -> io::Result<DiskSpace> {
        let ratio = self.state.borrow().disk_usage_ratio.clamp(0.0, 1.0);
        let available_bytes = ((1.0 - ratio) * MEM_DISK_BYTES as f64) as u64;
        Ok(DiskSpace { total_bytes: MEM_DISK_BYTES, free_bytes: available_bytes, available_bytes })
    }

    /// Exactly the ratio the test set (no rounding through bytes): thresholds compare with it.
    async fn disk_usage_ratio(&self, _path: &Path) -> io::Result<f64> {
        Ok(self.state.borrow().disk_usage_ratio)
    }
}

impl MemFile {
    fn with<T>(&self, f: impl FnOnce(&mut State, u64) -> io::Result<T>) -> io::Result<T> {
        let mut st = self.state.borrow_mut();
        if st.generation != self.generation {
            return Err(stale());
        }
        f(&mut st, self.inode)
    }
}

impl StorageFile for MemFile {
    async fn write_all_at(&self, buf: Vec<u8>, pos: u64) -> io::Result<()> {
        yield_now().await;
        self.with(|st, id| {
            let ino = st.inodes.get_mut(&id).ok_or_else(stale)?;
            apply_write(&mut ino.data, pos, &buf);
            ino.pending.push(PendingOp::Write { pos, bytes: buf });
            Ok(())
        })
    }

    async fn write_all_at_keep(&self, buf: Vec<u8>, pos: u64) -> (io::Result<()>, Vec<u8>) {
        let r = self.write_all_at(buf.clone(), pos).await;
        (r, buf)
    }

    async fn read_at(&self, len: usize, pos: u64) -> io::Result<Vec<u8>> {
        yield_now().await;
        self.with(|st, id| {
            let ino = st.inodes.get(&id).ok_or_else(stale)?;
            let start = (pos as usize).min(ino.data.len());
            let end = start.saturating_add(len).min(ino.data.len());
            Ok(ino.data.get(start..end).unwrap_or_default().to_vec())
        })
    }

    async fn sync_data(&self) -> io::Result<()> {
        yield_now().await;
        self.with(|st, id| {
            let ino = st.inodes.get_mut(&id).ok_or_else(stale)?;
            ino.durable = ino.data.clone();
            ino.pending.clear();
            st.syncs += 1;
            Ok(())
        })
    }

    async fn set_len(&self, len: u64) -> io::Result<()> {
        yield_now().await;
        self.with(|st, id| {
            let ino = st.inodes.get_mut(&id).ok_or_else(stale)?;
            ino.data.resize(len as usize, 0);
            ino.pending.push(PendingOp::SetLen(len));
            Ok(())
        })
    }

    async fn len(&self) -> io::Result<u64> {
        self.with(|st, id| Ok(st.inodes.get(&id).ok_or_else(stale)?.data.len() as u64))
    }

    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
}
