//! The one narrow file-I/O seam of the store. Every byte the store reads or writes goes through
//! [`Storage`] and [`StorageFile`]; nothing else in the crate touches the file system.
//!
//! Contract (what the store relies on, and what every implementation must provide):
//! * `write_all_at` writes the whole buffer or returns an error; after an error any prefix of the
//!   buffer may have landed (a torn write).
//! * Written bytes are readable at once by `read_at` (page cache), but survive a crash only after
//!   a later `sync_data` on the same file completes. Unsynced writes may survive a crash in any
//!   subset, in any order, or partially.
//! * A file's *name* (creation, removal, rename) survives a crash only after `sync_dir` of its
//!   parent directory completes. Directories themselves are created at open and synced then.
//! * `read_at` returns fewer bytes than asked only at end of file.
//! * Ops may be issued concurrently from several tasks of one runtime; there is no cross-thread
//!   use (every handle is shard-local and `!Send` where the implementation is).
//!
//! Implementations: [`compio_fs`] (the real one, on compio's file ops: async on io_uring, run on
//! compio's blocking pool on the poll driver so the shard loop never blocks on fdatasync),
//! [`mem`] (in memory, with a crash model that keeps only what a completed sync made durable) and
//! [`faulty`] (wraps another implementation: fail the Nth op, torn write, read error, crash now).

pub mod compio_fs;
pub mod faulty;
pub mod mem;

use std::io;
use std::path::Path;

/// Suspends once and goes on at the next turn of the runtime: lets the other tasks of a shard
/// run between steps of a long loop whose I/O may all complete at once (page-cache reads), and
/// makes the in-memory storage interleave concurrent tasks at every operation as real I/O does.
pub async fn yield_now() {
    struct YieldOnce(bool);
    impl std::future::Future for YieldOnce {
        type Output = ();
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
            if self.0 {
                return std::task::Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
    YieldOnce(false).await
}

/// A file system as the store sees it. Cloning is cheap (a handle).
// `async fn` in a public trait cannot promise `Send` futures; that is intended: every store
// future runs on its own shard's single-threaded runtime.
#[allow(async_fn_in_trait)]
pub trait Storage: Clone + 'static {
    type File: StorageFile;
    /// Opens `path` for reading and writing, creating it (empty) when `create` is set.
    async fn open(&self, path: &Path, create: bool) -> io::Result<Self::File>;
    async fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names (not paths) of the entries of a directory, sorted.
    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    async fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes an empty directory.
    async fn remove_dir(&self, path: &Path) -> io::Result<()>;
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, removals, renames) durable.
    async fn sync_dir(&self, path: &Path) -> io::Result<()>;
    async fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Size and free space of the file system holding `path`.
    async fn disk_space(&self, path: &Path) -> io::Result<DiskSpace>;
    /// Fraction (0.0..=1.0) of the partition holding `path` that is in use.
    async fn disk_usage_ratio(&self, path: &Path) -> io::Result<f64> {
        Ok(self.disk_space(path).await?.used_ratio())
    }
}

/// What statvfs(3) says of a file system, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskSpace {
    pub total_bytes: u64,
    /// Not allocated, blocks reserved for root included (Java's `File.getFreeSpace`, which
    /// GET_BROKER_RUNTIME_INFO's `commitLogDirCapacity` reports).
    pub free_bytes: u64,
    /// What an unprivileged process may still allocate (the disk-full thresholds' measure).
    pub available_bytes: u64,
}

impl DiskSpace {
    /// Fraction (0.0..=1.0) in use for an unprivileged writer: 1 − available / total.
    pub fn used_ratio(&self) -> f64 {
        if self.total_bytes == 0 {
            return 0.0;
        }
        (self.total_bytes.saturating_sub(self.available_bytes) as f64 / self.total_bytes as f64).clamp(0.0, 1.0)
    }
}

/// An open file. Cloning is cheap and shares the descriptor.
#[allow(async_fn_in_trait, clippy::len_without_is_empty)]
pub trait StorageFile: Clone + 'static {
    async fn write_all_at(&self, buf: Vec<u8>, pos: u64) -> io::Result<()>;
    /// [`StorageFile::write_all_at`] that hands the buffer back, written or not, so that a write
    /// that failed with a transient error can be retried at the same position without a copy.
    async fn write_all_at_keep(&self, buf: Vec<u8>, pos: u64) -> (io::Result<()>, Vec<u8>);
    /// Reads up to `len` bytes at `pos`; shorter only at end of file.
    async fn read_at(&self, len: usize, pos: u64) -> io::Result<Vec<u8>>;
    /// fdatasync: makes every completed write to this file durable.
    async fn sync_data(&self) -> io::Result<()>;
    async fn set_len(&self, len: u64) -> io::Result<()>;
    /// Reserves `len` bytes (fallocate where supported) so later writes need no allocation.
    async fn preallocate(&self, len: u64) -> io::Result<()> {
        self.set_len(len).await
    }
    async fn len(&self) -> io::Result<u64>;
    /// The OS descriptor, for zero-copy sends (`sendfile`); `None` for in-memory files.
    fn raw_fd(&self) -> Option<std::os::fd::RawFd>;
}
