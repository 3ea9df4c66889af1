//! The real [`Storage`](super::Storage): the local file system.
//!
//! - **Writes** are buffered `pwrite`s on the calling (shard) thread: they only copy into the
//!   page cache. Submitted to io_uring instead, an ext4 buffered write cannot complete without
//!   blocking, so the kernel punts every one to an io-wq worker thread — a thread hop and two
//!   context switches per commit-log batch and per consume-queue write (measured on the
//!   previous broker under load: a quarter of the broker's CPU samples were io-wq workers
//!   switching, not copying). Under epoll compio ran each write on its blocking pool: the same
//!   hop. The cost of the direct write: a writer that hits the kernel's dirty-page throttling
//!   waits on the shard thread (as the Java broker's mmap writes do).
//! - **Reads** try `preadv2(RWF_NOWAIT)` first, which succeeds only from the page cache; what is
//!   not cached is read through compio (io_uring, or its blocking pool under epoll), so a cold
//!   consume-queue or log read never blocks the shard thread. Kernels without preadv2 or
//!   RWF_NOWAIT (before 4.14) always take the compio path.
//! - **fdatasync** goes through compio: io_uring, or the blocking pool under epoll, so the
//!   shard keeps serving while a sync takes milliseconds. Directory listing, directory sync,
//!   fallocate and statvfs have no ring op in compio and always go to the blocking pool.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use compio::BufResult;
use compio::io::AsyncReadAtExt;

use super::{DiskSpace, Storage, StorageFile};

/// The production storage on the local file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompioStorage;

/// An open file on the local file system.
#[derive(Debug, Clone)]
pub struct CompioFile {
    file: compio::fs::File,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    match compio::runtime::spawn_blocking(f).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::other("blocking file task panicked")),
    }
}

impl Storage for CompioStorage {
    type File = CompioFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<CompioFile> {
        let file = compio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .open(path)
            .await?;
        Ok(CompioFile { file })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        compio::fs::create_dir_all(path).await
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let path = path.to_path_buf();
        blocking(move || {
            let mut names = Vec::new();
            for e in std::fs::read_dir(&path)? {
                if let Ok(name) = e?.file_name().into_string() {
                    names.push(name);
                }
            }
            names.sort();
            Ok(names)
        })
        .await
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        compio::fs::remove_file(path).await
    }

    async fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let path = path.to_path_buf();
        blocking(move || std::fs::remove_dir(&path)).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        compio::fs::rename(from, to).await
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let path: PathBuf = path.to_path_buf();
        blocking(move || std::fs::File::open(&path)?.sync_all()).await
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        let path = path.to_path_buf();
        blocking(move || path.try_exists()).await
    }

    async fn disk_space(&self, path: &Path) -> io::Result<DiskSpace> {
        let path = path.to_path_buf();
        blocking(move || statvfs_space(&path)).await
    }
}

fn statvfs_space(path: &Path) -> io::Result<DiskSpace> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: `statvfs` is a plain C struct for which all-zero bytes are a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `st` a valid out-pointer for the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // Block counts are in units of the fragment size.
    let fragment_bytes = st.f_frsize as u64;
    Ok(DiskSpace {
        total_bytes: (st.f_blocks as u64).saturating_mul(fragment_bytes),
        free_bytes: (st.f_bfree as u64).saturating_mul(fragment_bytes),
        available_bytes: (st.f_bavail as u64).saturating_mul(fragment_bytes),
    })
}

/// Bytes in use on the file system holding `path` (total minus free, as Java's
/// `File.getTotalSpace() - getFreeSpace()`). Blocking: call it off the shards.
pub fn disk_used_bytes(path: &Path) -> io::Result<u64> {
    let space = statvfs_space(path)?;
    Ok(space.total_bytes.saturating_sub(space.free_bytes))
}

/// Writes all of `buf` at `pos` with `pwrite`, retrying short writes and EINTR.
fn pwrite_all(fd: RawFd, mut buf: &[u8], mut pos: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let offset = libc::off_t::try_from(pos).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
        // SAFETY: `buf` is a valid readable slice of `buf.len()` bytes and `fd` is open for the
        // whole call (owned by the caller's file).
        let written = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), offset) };
        if written < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if written == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "pwrite wrote nothing"));
        }
        let written = written as usize;
        buf = buf.get(written..).unwrap_or_default();
        pos += written as u64;
    }
    Ok(())
}

/// Whether this kernel takes `preadv2(RWF_NOWAIT)`; cleared on the first ENOSYS / EOPNOTSUPP /
/// EINVAL, after which every read goes through compio.
static NOWAIT_READS: AtomicBool = AtomicBool::new(true);

/// Reads into `out` (appending) from `pos` as much as the page cache holds, without blocking:
/// stops at the first byte that would need the disk, or at end of file (`Ok(true)`).
fn read_cached(fd: RawFd, out: &mut Vec<u8>, len: usize, pos: u64) -> io::Result<bool> {
    while out.len() < len && NOWAIT_READS.load(Ordering::Relaxed) {
        let start = out.len();
        out.resize(len, 0);
        let spare = out.get_mut(start..).unwrap_or_default();
        let iov = libc::iovec { iov_base: spare.as_mut_ptr().cast(), iov_len: spare.len() };
        let offset = libc::off_t::try_from(pos + start as u64).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
        // Through syscall(2), not glibc's preadv2 wrapper: that symbol is GLIBC_2.26, and the
        // release binaries must load on glibc 2.17 (CentOS 7, README "Deploying"); kernels
        // before 4.6 answer ENOSYS, handled below. The offset goes as glibc passes it on
        // 64-bit targets: the low word, then the high word (the kernel ignores it there).
        // Every argument goes as a full register (`c_long`): the kernel reads `fd` and `vlen` as
        // unsigned longs, and syscall(2) is variadic, so a 32-bit value would leave the upper
        // half of its register to chance.
        // SAFETY: `iov` points into `out`'s initialised spare bytes, valid for the call; `fd` is
        // open for the whole call.
        let n = unsafe {
            libc::syscall(
                libc::SYS_preadv2,
                fd as libc::c_long,
                &iov as *const libc::iovec,
                1 as libc::c_long,
                offset as libc::c_long,
                ((offset as u64) >> 32) as libc::c_long,
                libc::RWF_NOWAIT as libc::c_long,
            )
        };
        if n < 0 {
            out.truncate(start);
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(false),
                Some(libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL) => {
                    NOWAIT_READS.store(false, Ordering::Relaxed);
                    return Ok(false);
                }
                _ => return Err(error),
            }
        }
        out.truncate(start + n as usize);
        if n == 0 {
            return Ok(true);
        }
    }
    Ok(out.len() >= len)
}

impl StorageFile for CompioFile {
    async fn write_all_at(&self, buf: Vec<u8>, pos: u64) -> io::Result<()> {
        pwrite_all(self.file.as_raw_fd(), &buf, pos)
    }

    async fn write_all_at_keep(&self, buf: Vec<u8>, pos: u64) -> (io::Result<()>, Vec<u8>) {
        (pwrite_all(self.file.as_raw_fd(), &buf, pos), buf)
    }

    async fn read_at(&self, len: usize, pos: u64) -> io::Result<Vec<u8>> {
        let mut out: Vec<u8> = Vec::with_capacity(len);
        if read_cached(self.file.as_raw_fd(), &mut out, len, pos)? {
            return Ok(out);
        }
        // The rest is not in the page cache: read it off the shard thread. Loop over short
        // reads until EOF (a 0-byte read) or `len` bytes.
        while out.len() < len {
            let want = len - out.len();
            let chunk = Vec::with_capacity(want);
            let BufResult(res, chunk) =
                compio::io::AsyncReadAt::read_at(&self.file, chunk, pos + out.len() as u64).await;
            let n = res?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        Ok(out)
    }

    async fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data().await
    }

    async fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len).await
    }

    async fn preallocate(&self, len: u64) -> io::Result<()> {
        let fd = self.file.as_raw_fd();
        // The descriptor stays open: `self` (and so the file) outlives the awaited task.
        let res = blocking(move || {
            // SAFETY: `fd` is a valid open descriptor owned by `self.file` for the whole call.
            let rc = unsafe { libc::fallocate(fd, 0, 0, len as libc::off_t) };
            if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
        })
        .await;
        match res {
            Ok(()) => Ok(()),
            // File systems without fallocate: a sparse extension still gives the right size.
            // Any other error (ENOSPC above all) is the caller's: a segment that could not get
            // its space must not be created sparse and fail later, mid-flush.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOSYS)) => self.file.set_len(len).await,
            Err(e) => Err(e),
        }
    }

    async fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata().await?.len())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
}

#[allow(unused_imports)]
use AsyncReadAtExt as _;
