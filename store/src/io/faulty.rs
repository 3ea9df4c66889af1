//! A fault-injecting [`Storage`](super::Storage) wrapper: fail the Nth operation, tear the Nth
//! write (only a prefix lands, then an error), fail reads, or "crash now" (every later operation
//! fails until the test resolves the crash on the inner storage, e.g. with
//! [`MemStorage::crash`](super::mem::MemStorage::crash)).
//!
//! Operations are counted across all files of one wrapper, in issue order, starting at 1.

use std::cell::RefCell;
use std::io;
use std::path::Path;
use std::rc::Rc;

use super::{Storage, StorageFile};

/// Which fault to inject at which operation number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The Nth operation (any kind) fails with EIO and has no effect.
    FailOp(u64),
    /// If the Nth operation is a write, only the first `keep_bytes` land, then it fails.
    TornWrite { op: u64, keep_bytes: usize },
    /// Every read from the Nth operation on fails.
    ReadErrorsFrom(u64),
    /// The Nth operation and every later one fail: the machine "lost power" at that point.
    CrashAt(u64),
}

#[derive(Debug, Default)]
struct FaultState {
    ops: u64,
    faults: Vec<Fault>,
    crashed: bool,
    injected: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Read,
    Write,
    Other,
}

enum Verdict {
    Proceed,
    Fail,
    Tear(usize),
}

fn injected() -> io::Error {
    io::Error::other("injected fault")
}

/// Shared fault plan and op counter.
#[derive(Debug, Clone, Default)]
pub struct FaultHandle {
    state: Rc<RefCell<FaultState>>,
}

impl FaultHandle {
    pub fn add(&self, f: Fault) {
        self.state.borrow_mut().faults.push(f);
    }
    pub fn clear(&self) {
        let mut st = self.state.borrow_mut();
        st.faults.clear();
        st.crashed = false;
    }
    /// Operations issued so far.
    pub fn ops(&self) -> u64 {
        self.state.borrow().ops
    }
    /// Whether a `CrashAt` fault has fired.
    pub fn crashed(&self) -> bool {
        self.state.borrow().crashed
    }
    /// Number of faults that fired.
    pub fn injected(&self) -> u64 {
        self.state.borrow().injected
    }

    fn check(&self, kind: OpKind) -> Verdict {
        let mut st = self.state.borrow_mut();
        st.ops += 1;
        let n = st.ops;
        if st.crashed {
            return Verdict::Fail;
        }
        let mut verdict = Verdict::Proceed;
        let mut crash = false;
        for f in &st.faults {
            match *f {
                Fault::FailOp(k) if k == n => verdict = Verdict::Fail,
                Fault::TornWrite { op, keep_bytes } if op == n && kind == OpKind::Write => {
                    verdict = Verdict::Tear(keep_bytes)
                }
                Fault::ReadErrorsFrom(k) if n >= k && kind == OpKind::Read => {
                    verdict = Verdict::Fail
                }
                Fault::CrashAt(k) if n >= k => {
                    crash = true;
                    verdict = Verdict::Fail;
                }
                _ => {}
            }
        }
        if crash {
            st.crashed = true;
        }
        if !matches!(verdict, Verdict::Proceed) {
            st.injected += 1;
        }
        verdict
    }

    fn gate(&self, kind: OpKind) -> io::Result<()> {
        match self.check(kind) {
            Verdict::Proceed => Ok(()),
            _ => Err(injected()),
        }
    }
}

/// Wraps a storage with a fault plan.
#[derive(Debug, Clone)]
pub struct FaultyStorage<S> {
    inner: S,
    faults: FaultHandle,
}

/// A file of a [`FaultyStorage`].
#[derive(Debug, Clone)]
pub struct FaultyFile<F> {
    inner: F,
    faults: FaultHandle,
}

impl<S: Storage> FaultyStorage<S> {
    pub fn new(inner: S) -> Self {
        FaultyStorage { inner, faults: FaultHandle::default() }
    }
    pub fn faults(&self) -> &FaultHandle {
        &self.faults
    }
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Storage> Storage for FaultyStorage<S> {
    type File = FaultyFile<S::File>;

    async fn open(&self, path: &Path, create: bool) -> io::Result<Self::File> {
        self.faults.gate(OpKind::Other)?;
        let inner = self.inner.open(path, create).await?;
        Ok(FaultyFile { inner, faults: self.faults.clone() })
    }
    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.faults.gate(OpKind::Other)?;
        self.inner.create_dir_all(path).await
    }
    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.faults.gate(OpKind::Read)?;
        self.inner.list_dir(path).await
    }
    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.faults.gate(OpKind::Other)?;
        self.inner.remove_file(path).await
    }
    async fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.faults.gate(OpKind::Other)?;
        self.inner.remove_dir(path).await
    }
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.faults.gate(OpKind::Other)?;
        self.inner.rename(from, to).await
    }
    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.faults.gate(OpKind::Other)?;
        self.inner.sync_dir(path).await
    }
    async fn exists(&self, path: &Path) -> io::Result<bool> {
        self.faults.gate(OpKind::Read)?;
        self.inner.exists(path).await
    }
    async fn disk_usage_ratio(&self, path: &Path) -> io::Result<f64> {
        self.faults.gate(OpKind::Read)?;
        self.inner.disk_usage_ratio(path).await
    }
}

impl<F: StorageFile> StorageFile for FaultyFile<F> {
    async fn write_all_at(&self, mut buf: Vec<u8>, pos: u64) -> io::Result<()> {
        match self.faults.check(OpKind::Write) {
            Verdict::Proceed => self.inner.write_all_at(buf, pos).await,
            Verdict::Fail => Err(injected()),
            Verdict::Tear(keep) => {
                buf.truncate(keep);
                self.inner.write_all_at(buf, pos).await?;
                Err(injected())
            }
        }
    }
    async fn read_at(&self, len: usize, pos: u64) -> io::Result<Vec<u8>> {
        self.faults.gate(OpKind::Read)?;
        self.inner.read_at(len, pos).await
    }
    async fn sync_data(&self) -> io::Result<()> {
        self.faults.gate(OpKind::Other)?;
        self.inner.sync_data().await
    }
    async fn set_len(&self, len: u64) -> io::Result<()> {
        self.faults.gate(OpKind::Other)?;
        self.inner.set_len(len).await
    }
    async fn preallocate(&self, len: u64) -> io::Result<()> {
        self.faults.gate(OpKind::Other)?;
        self.inner.preallocate(len).await
    }
    async fn len(&self) -> io::Result<u64> {
        self.faults.gate(OpKind::Read)?;
        self.inner.len().await
    }
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.raw_fd()
    }
}
