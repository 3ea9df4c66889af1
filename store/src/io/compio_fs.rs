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
//! - **Opens of existing files** try `openat2(RESOLVE_CACHED)` on the calling thread first,
//!   which succeeds only when the whole path resolves from the dentry cache (no disk read);
//!   anything else (a lookup that needs the disk, a new file, a kernel before 5.12) opens
//!   through compio (io_uring, or the blocking pool under epoll). Consume-queue files are
//!   reopened on use under the descriptor budget (`consume_queue::CqDescriptors`): at 80,000
//!   queues that is an open per dispatched entry, and a pool round trip each left the
//!   dispatcher behind the sends.
//! - **fdatasync** goes through compio: io_uring, or the blocking pool under epoll, so the
//!   shard keeps serving while a sync takes milliseconds. Directory listing, directory sync,
//!   fallocate and statvfs have no ring op in compio and always go to the blocking pool.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
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
        if !create && let Some(fd) = open_cached(path)? {
            // SAFETY: `fd` was opened here and is handed over whole; compio's drivers on Linux
            // need no registration of a file descriptor (their `attach` does nothing).
            return Ok(CompioFile { file: unsafe { compio::fs::File::from_raw_fd(fd.into_raw_fd()) } });
        }
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

/// Whether this kernel takes `openat2(RESOLVE_CACHED)` (Linux 5.12); cleared on the first
/// ENOSYS / EINVAL / E2BIG / EPERM (a seccomp filter), after which every open goes through
/// compio.
static CACHED_OPENS: AtomicBool = AtomicBool::new(true);

/// Opens the existing file at `path` for reading and writing on the calling thread when the
/// kernel can resolve the path from its caches alone (`openat2` with RESOLVE_CACHED fails with
/// EAGAIN rather than read a directory or inode from disk): `Ok(None)` when it cannot, or when
/// the kernel has no such call.
fn open_cached(path: &Path) -> io::Result<Option<OwnedFd>> {
    use std::os::unix::ffi::OsStrExt;
    if !CACHED_OPENS.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: `open_how` is a plain C struct for which all-zero bytes are a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDWR | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_CACHED;
    loop {
        // Through syscall(2): glibc has no openat2 wrapper (and the release binaries must load
        // on glibc 2.17). Every argument goes as a full register (`c_long`), as for preadv2.
        // SAFETY: `c_path` is a NUL-terminated string and `how` a valid `open_how` of the size
        // passed, both alive for the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                libc::AT_FDCWD as libc::c_long,
                c_path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>() as libc::c_long,
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just returned this descriptor; nothing else owns it.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }));
        }
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => Ok(None),
            Some(libc::ENOSYS | libc::EINVAL | libc::E2BIG | libc::EPERM) => {
                CACHED_OPENS.store(false, Ordering::Relaxed);
                Ok(None)
            }
            _ => Err(error),
        };
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_file_opens_from_the_caches_and_a_missing_one_is_not_found() {
        let dir = std::env::temp_dir().join(format!("ferromq-open-cached-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, b"cached").unwrap();
        // Just written: its dentry and inode are cached, so a 5.12+ kernel opens it on this
        // thread (older kernels, or a filter refusing openat2: the compio path, `None`).
        match open_cached(&path).unwrap() {
            Some(fd) => {
                let mut file = std::fs::File::from(fd);
                let mut text = String::new();
                std::io::Read::read_to_string(&mut file, &mut text).unwrap();
                assert_eq!(text, "cached");
            }
            None => assert!(!CACHED_OPENS.load(Ordering::Relaxed), "a cached path fell back while openat2 works"),
        }
        // A name never looked up is not cached either way (no negative dentry yet): the compio
        // path answers, NotFound.
        let missing = dir.join("missing");
        assert!(open_cached(&missing).map_or_else(|e| e.kind() == io::ErrorKind::NotFound, |fd| fd.is_none()));
        let (read, missing) = crate::test_support::block_on(async {
            let file = CompioStorage.open(&path, false).await.unwrap();
            (file.read_at(6, 0).await.unwrap(), CompioStorage.open(&missing, false).await.map(|_| ()).unwrap_err().kind())
        });
        assert_eq!(read, b"cached");
        assert_eq!(missing, io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
