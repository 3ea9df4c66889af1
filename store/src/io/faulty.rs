//! A fault-injecting [`Storage`](super::Storage) wrapper: fail the Nth operation, tear the Nth
//! write (only a prefix lands, then an error), fail reads, or "crash now" (every later operation
//! fails until the test resolves the crash on the inner storage, e.g. with
//! [`MemStorage::crash`](super::mem::MemStorage::crash)).
//!
//! Operations are counted across all files of one wrapper, in issue order, starting at 1.
//!
//! Besides those numbered faults, an errno can be injected into every operation of a class
//! ([`Fault::Errno`], in-process) or from outside the process ([`ExternalFaults`], a control
//! file the broker polls when `FERROMQ_FAULT_INJECTION_FILE` names one): that is how the
//! end-to-end tests run a real broker out of descriptors or disk space and then give them back.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use super::{DiskSpace, Storage, StorageFile};

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
    /// Every operation of the class fails with the OS error `errno` and has no effect, until
    /// the plan is cleared (a resource ran out: EMFILE, ENOSPC, ...).
    Errno { on: OpClass, errno: i32 },
    /// Every file open waits this long first, until the plan is cleared (a cold or slow file
    /// system; opens that go through a blocking pool).
    SlowOpens { ms: u64 },
}

/// The classes of operation an errno fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    /// Opening or creating a file or a directory (where EMFILE and ENFILE happen).
    Open,
    /// Writing, resizing or preallocating a file (where ENOSPC and EDQUOT happen).
    Write,
    /// fdatasync of a file or a directory.
    Sync,
}

impl OpClass {
    const ALL: [OpClass; 3] = [OpClass::Open, OpClass::Write, OpClass::Sync];

    fn name(self) -> &'static str {
        match self {
            OpClass::Open => "open",
            OpClass::Write => "write",
            OpClass::Sync => "sync",
        }
    }
}

/// Errno faults set from outside the process: one errno per [`OpClass`] (0 = none), shared by
/// every shard's storage. Reading it costs one relaxed atomic load per operation.
#[derive(Debug, Default)]
pub struct ExternalFaults {
    open: AtomicI32,
    write: AtomicI32,
    sync: AtomicI32,
}

/// How often [`ExternalFaults::watch_file`] reads its control file.
pub const FAULT_FILE_POLL_INTERVAL: Duration = Duration::from_millis(20);

impl ExternalFaults {
    fn slot(&self, class: OpClass) -> &AtomicI32 {
        match class {
            OpClass::Open => &self.open,
            OpClass::Write => &self.write,
            OpClass::Sync => &self.sync,
        }
    }

    /// The errno injected into `class` now, if any.
    pub fn errno(&self, class: OpClass) -> Option<i32> {
        Some(self.slot(class).load(Ordering::Relaxed)).filter(|e| *e != 0)
    }

    /// Applies a control text: one `class=ERRNO` per line (`open=EMFILE`, `write=ENOSPC`,
    /// `sync=EIO`); classes not named are cleared, so an empty text clears everything.
    pub fn apply(&self, text: &str) -> Result<(), String> {
        let mut plan: Vec<(OpClass, i32)> = OpClass::ALL.iter().map(|c| (*c, 0)).collect();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (class, name) = line.split_once('=').ok_or_else(|| format!("fault line `{line}` is not class=ERRNO"))?;
            let entry = plan
                .iter_mut()
                .find(|(c, _)| c.name() == class.trim())
                .ok_or_else(|| format!("fault class `{}` is not open, write or sync", class.trim()))?;
            entry.1 = errno_by_name(name.trim())
                .ok_or_else(|| format!("fault errno `{}` is not one of EMFILE, ENFILE, ENOSPC, EDQUOT, ENOMEM, EIO", name.trim()))?;
        }
        for (class, errno) in plan {
            self.slot(class).store(errno, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Starts a thread that applies `path` every [`FAULT_FILE_POLL_INTERVAL`] (a missing file
    /// means no faults) for as long as the process lives. A control file that does not parse
    /// is logged and leaves the plan as it was.
    pub fn watch_file(path: PathBuf) -> io::Result<Arc<ExternalFaults>> {
        let faults = Arc::new(ExternalFaults::default());
        let shared = faults.clone();
        std::thread::Builder::new().name("fault-injection".into()).spawn(move || {
            let mut last = String::new();
            loop {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if text != last {
                    match shared.apply(&text) {
                        Ok(()) => tracing::warn!(file = %path.display(), plan = %text.trim(), "fault injection plan applied"),
                        Err(e) => tracing::error!(file = %path.display(), error = %e, "fault injection file ignored"),
                    }
                    last = text;
                }
                std::thread::sleep(FAULT_FILE_POLL_INTERVAL);
            }
        })?;
        Ok(faults)
    }
}

fn errno_by_name(name: &str) -> Option<i32> {
    Some(match name {
        "EMFILE" => libc::EMFILE,
        "ENFILE" => libc::ENFILE,
        "ENOSPC" => libc::ENOSPC,
        "EDQUOT" => libc::EDQUOT,
        "ENOMEM" => libc::ENOMEM,
        "EIO" => libc::EIO,
        _ => return None,
    })
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
    Open,
    Sync,
    Other,
}

impl OpKind {
    fn class(self) -> Option<OpClass> {
        match self {
            OpKind::Open => Some(OpClass::Open),
            OpKind::Write => Some(OpClass::Write),
            OpKind::Sync => Some(OpClass::Sync),
            OpKind::Read | OpKind::Other => None,
        }
    }
}

enum Verdict {
    Proceed,
    Fail,
    Tear(usize),
    Errno(i32),
}

fn injected() -> io::Error {
    io::Error::other("injected fault")
}

/// Shared fault plan and op counter.
#[derive(Debug, Clone, Default)]
pub struct FaultHandle {
    state: Rc<RefCell<FaultState>>,
    external: Option<Arc<ExternalFaults>>,
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

    /// How long an open waits under [`Fault::SlowOpens`].
    fn open_delay(&self) -> Option<std::time::Duration> {
        self.state.borrow().faults.iter().find_map(|f| match *f {
            Fault::SlowOpens { ms } => Some(std::time::Duration::from_millis(ms)),
            _ => None,
        })
    }

    fn check(&self, kind: OpKind) -> Verdict {
        if let (Some(ext), Some(class)) = (&self.external, kind.class())
            && let Some(errno) = ext.errno(class)
        {
            self.state.borrow_mut().injected += 1;
            return Verdict::Errno(errno);
        }
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
                Fault::Errno { on, errno } if kind.class() == Some(on) => verdict = Verdict::Errno(errno),
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
            Verdict::Errno(e) => Err(io::Error::from_raw_os_error(e)),
            Verdict::Fail | Verdict::Tear(_) => Err(injected()),
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
    /// A wrapper that also obeys errno faults set from outside ([`ExternalFaults`]); `None`
    /// injects nothing of that kind.
    pub fn with_external(inner: S, external: Option<Arc<ExternalFaults>>) -> Self {
        FaultyStorage { inner, faults: FaultHandle { state: Rc::default(), external } }
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
        if let Some(delay) = self.faults.open_delay() {
            compio::time::sleep(delay).await;
        }
        self.faults.gate(OpKind::Open)?;
        let inner = self.inner.open(path, create).await?;
        Ok(FaultyFile { inner, faults: self.faults.clone() })
    }
    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.faults.gate(OpKind::Open)?;
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
        self.faults.gate(OpKind::Sync)?;
        self.inner.sync_dir(path).await
    }
    async fn exists(&self, path: &Path) -> io::Result<bool> {
        self.faults.gate(OpKind::Read)?;
        self.inner.exists(path).await
    }
    async fn disk_space(&self, path: &Path) -> io::Result<DiskSpace> {
        self.faults.gate(OpKind::Read)?;
        self.inner.disk_space(path).await
    }
}

impl<F: StorageFile> StorageFile for FaultyFile<F> {
    async fn write_all_at(&self, buf: Vec<u8>, pos: u64) -> io::Result<()> {
        self.write_all_at_keep(buf, pos).await.0
    }
    async fn write_all_at_keep(&self, buf: Vec<u8>, pos: u64) -> (io::Result<()>, Vec<u8>) {
        match self.faults.check(OpKind::Write) {
            Verdict::Proceed => self.inner.write_all_at_keep(buf, pos).await,
            Verdict::Fail => (Err(injected()), buf),
            Verdict::Errno(e) => (Err(io::Error::from_raw_os_error(e)), buf),
            Verdict::Tear(keep) => {
                let (r, buf) = self.inner.write_all_at_keep(buf.get(..keep).unwrap_or(&buf).to_vec(), pos).await;
                (r.and(Err(injected())), buf)
            }
        }
    }
    async fn read_at(&self, len: usize, pos: u64) -> io::Result<Vec<u8>> {
        self.faults.gate(OpKind::Read)?;
        self.inner.read_at(len, pos).await
    }
    async fn sync_data(&self) -> io::Result<()> {
        self.faults.gate(OpKind::Sync)?;
        self.inner.sync_data().await
    }
    async fn set_len(&self, len: u64) -> io::Result<()> {
        self.faults.gate(OpKind::Write)?;
        self.inner.set_len(len).await
    }
    async fn preallocate(&self, len: u64) -> io::Result<()> {
        self.faults.gate(OpKind::Write)?;
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
