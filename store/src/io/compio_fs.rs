//! The real [`Storage`](super::Storage): compio's positional file ops.
//!
//! On io_uring, write/read/fdatasync are submitted to the ring. On the poll (epoll) driver
//! compio runs them on its blocking thread pool, so the shard's event loop keeps serving while an
//! fdatasync takes milliseconds. Directory listing, directory sync, fallocate and statvfs have no
//! ring op in compio and always go to the blocking pool.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use compio::BufResult;
use compio::io::{AsyncReadAtExt, AsyncWriteAtExt};

use super::{Storage, StorageFile};

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

    async fn disk_usage_ratio(&self, path: &Path) -> io::Result<f64> {
        let path = path.to_path_buf();
        blocking(move || statvfs_usage(&path)).await
    }
}

fn statvfs_usage(path: &Path) -> io::Result<f64> {
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
    let total = st.f_blocks as f64;
    if total <= 0.0 {
        return Ok(0.0);
    }
    let avail = st.f_bavail as f64;
    Ok(((total - avail) / total).clamp(0.0, 1.0))
}

impl StorageFile for CompioFile {
    async fn write_all_at(&self, buf: Vec<u8>, pos: u64) -> io::Result<()> {
        let mut f = &self.file;
        let BufResult(res, _) = f.write_all_at(buf, pos).await;
        res
    }

    async fn read_at(&self, len: usize, pos: u64) -> io::Result<Vec<u8>> {
        // Loop over short reads until EOF (a 0-byte read) or `len` bytes.
        let mut out: Vec<u8> = Vec::with_capacity(len);
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
            Err(_) => self.file.set_len(len).await,
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
