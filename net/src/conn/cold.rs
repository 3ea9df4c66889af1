//! Cold reads: file-body data that is not in the page cache is read in compio's blocking pool,
//! never on the connection's (shard) thread, with a bounded number of such reads in flight per
//! thread.
//!
//! Owns, per thread (thread-local): the cold-read slots ([`ConnLimits::max_cold_reads_in_flight`],
//! FIFO waiters) and the counters behind [`cold_read_stats`]; per process: what the kernel was
//! found to support (`preadv2(RWF_NOWAIT)`, `cachestat(2)`), probed on first use.
//!
//! Asking the page cache, newest kernels first:
//! - **Copy path** (small bodies read into memory): `preadv2(…, RWF_NOWAIT)` (Linux 4.14+) reads
//!   only what is cached; a short read or EAGAIN means the rest is cold (the kernel also starts
//!   readahead for it). Called as a raw syscall, not through glibc's `preadv2` wrapper, which
//!   needs glibc 2.26 while release builds target 2.17. On ENOSYS (3.10), EOPNOTSUPP (a kernel or
//!   file system without RWF_NOWAIT) or EINVAL the process switches, once, to the residency check
//!   below before a plain `pread`.
//! - **sendfile path and fallback**: [`resident`] asks `cachestat(2)` (Linux 6.5+) for the cached
//!   pages of the range; without it (ENOSYS, or EPERM from a seccomp filter that does not know
//!   it), `mincore(2)` on a fresh `mmap` of the range. Since Linux 5.2, `mincore` reports page
//!   cache pages only for files the caller owns or may write (else only pages it has mapped,
//!   i.e. none here): the commit log is the broker's own, and a wrong answer only ever errs
//!   towards "cold" (a pool trip), never towards blocking the shard.
//!
//! A cold range of a `sendfile` body is warmed in the pool (read into a scratch buffer, which
//! leaves it in the page cache), then sent from the page cache on the shard. The kernel may
//! evict it again between the two: then that `sendfile` blocks on the disk as before. This needs
//! memory pressure within the few milliseconds between warm-up and send, and is accepted.
//!
//! The same code runs on both backends: the blocking pool is compio's thread pool whether the
//! driver is io_uring or epoll.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_channel::oneshot;

/// What a thread's file-body sends have done since it started; see [`cold_read_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColdReadStats {
    /// File bodies served entirely from the page cache on the thread.
    pub resident_bodies: u64,
    /// File bodies with (part of) their data not cached, read or warmed in the blocking pool.
    pub cold_bodies: u64,
    /// Bytes read in the blocking pool.
    pub cold_bytes: u64,
    /// Cold bodies that found every slot taken and waited for one.
    pub waited_bodies: u64,
    /// Cold reads in the pool now.
    pub in_flight: u64,
    /// Most cold reads in the pool at once since the thread started.
    pub max_in_flight: u64,
}

/// The calling thread's counters. Connections live on the thread that opened them, so on a
/// shard thread this is that shard's; the broker sums it over shards.
pub fn cold_read_stats() -> ColdReadStats {
    GATE.try_with(|gate| {
        let mut stats = gate.stats.get();
        stats.in_flight = gate.in_flight.get() as u64;
        stats
    })
    .unwrap_or_default()
}

thread_local! {
    static GATE: Gate = Gate::default();
}

/// The cold-read slots of one thread.
#[derive(Default)]
struct Gate {
    in_flight: Cell<usize>,
    /// Reads waiting for a slot, oldest first; a released slot is handed to the first one still
    /// waiting, so a newcomer cannot overtake them.
    waiters: RefCell<VecDeque<oneshot::Sender<()>>>,
    stats: Cell<ColdReadStats>,
}

impl Gate {
    fn update(&self, change: impl FnOnce(&mut ColdReadStats)) {
        let mut stats = self.stats.get();
        change(&mut stats);
        self.stats.set(stats);
    }

    fn release(&self) {
        loop {
            let waiter = self.waiters.borrow_mut().pop_front();
            match waiter {
                // The slot passes to the waiter: `in_flight` is unchanged.
                Some(waiter) => {
                    if waiter.send(()).is_ok() {
                        return;
                    }
                    // That waiter gave up (its future was dropped); try the next one.
                }
                None => {
                    self.in_flight.set(self.in_flight.get().saturating_sub(1));
                    return;
                }
            }
        }
    }
}

/// A cold-read slot of this thread, released (or handed to the next waiter) on drop.
struct Slot;

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = GATE.try_with(Gate::release);
    }
}

/// A wait for a slot; if the slot is handed over but the wait is dropped before seeing it, the
/// slot is passed on rather than lost.
struct Waiting(oneshot::Receiver<()>);

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Ok(Some(())) = self.0.try_recv() {
            let _ = GATE.try_with(Gate::release);
        }
    }
}

/// Takes one of this thread's cold-read slots, waiting (FIFO) while `limit` or more are taken.
async fn acquire(limit: usize) -> Slot {
    let limit = limit.max(1);
    let wait = GATE.try_with(|gate| {
        if gate.in_flight.get() < limit && gate.waiters.borrow().is_empty() {
            gate.in_flight.set(gate.in_flight.get() + 1);
            None
        } else {
            let (handed, wait) = oneshot::channel();
            gate.waiters.borrow_mut().push_back(handed);
            gate.update(|s| s.waited_bodies += 1);
            Some(Waiting(wait))
        }
    });
    if let Ok(Some(mut waiting)) = wait {
        // Err only if the gate itself is gone (thread exit): nothing left to bound.
        let _ = (&mut waiting.0).await;
    }
    Slot
}

/// Counts a body served from the page cache alone.
pub(super) fn record_resident() {
    let _ = GATE.try_with(|gate| gate.update(|s| s.resident_bodies += 1));
}

/// Runs `work` (blocking file reads of `bytes` bytes) in compio's blocking pool once a
/// cold-read slot of this thread is free, and returns its result; the thread keeps serving
/// meanwhile. Holding the slot until the result is back bounds the pool's work per thread.
pub(super) async fn in_pool<T: Send + 'static>(
    limit: usize,
    bytes: u64,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let _slot = acquire(limit).await;
    let _ = GATE.try_with(|gate| {
        let in_flight = gate.in_flight.get() as u64;
        gate.update(|s| {
            s.cold_bodies += 1;
            s.cold_bytes += bytes;
            s.max_in_flight = s.max_in_flight.max(in_flight);
        });
    });
    #[cfg(test)]
    let probe = test_hook::current();
    let task = compio::runtime::spawn_blocking(move || {
        #[cfg(test)]
        let _running = probe.as_ref().map(|p| p.enter());
        work()
    });
    task.await.unwrap_or_else(|_| Err(io::Error::other("a cold read in the blocking pool panicked")))
}

/// Set, once and for the process, when the kernel turns out to lack a feature (never cleared:
/// a later success on another file must not make every read probe again).
static NOWAIT_READS_UNSUPPORTED: AtomicBool = AtomicBool::new(false);
static CACHESTAT_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// What a non-blocking read got.
pub(super) enum NoWait {
    /// This many bytes (fewer than asked when the rest is not cached; 0 at end of file).
    Read(usize),
    /// The first page asked for is not cached.
    WouldBlock,
    /// The kernel cannot read without blocking: use [`resident`] and a plain `pread`.
    Unsupported,
}

/// Reads from `file` at `position` into `into` only what is in the page cache
/// (`preadv2(RWF_NOWAIT)`).
pub(super) fn pread_nowait(file: &File, into: &mut [u8], position: u64) -> io::Result<NoWait> {
    #[cfg(test)]
    if test_hook::cold() {
        return Ok(NoWait::WouldBlock);
    }
    #[cfg(test)]
    if test_hook::old_kernel() {
        return Ok(NoWait::Unsupported);
    }
    if NOWAIT_READS_UNSUPPORTED.load(Ordering::Relaxed) {
        return Ok(NoWait::Unsupported);
    }
    let iov = libc::iovec { iov_base: into.as_mut_ptr().cast(), iov_len: into.len() };
    // The raw syscall takes the offset as two words (low, high); on 64-bit targets the low
    // word carries all of it (the kernel's pos_from_hilo).
    #[cfg(target_pointer_width = "64")]
    let (low, high) = (position as libc::c_ulong, 0 as libc::c_ulong);
    #[cfg(not(target_pointer_width = "64"))]
    let (low, high) = ((position & 0xFFFF_FFFF) as libc::c_ulong, (position >> 32) as libc::c_ulong);
    loop {
        // SAFETY: `iov` describes `into`, which is exclusively borrowed and valid for writes
        // of its whole length for the duration of the call; the fd is owned by `file`.
        let read = unsafe {
            libc::syscall(libc::SYS_preadv2, file.as_raw_fd(), &iov as *const libc::iovec, 1 as libc::c_int, low, high, libc::RWF_NOWAIT)
        };
        if read >= 0 {
            return Ok(NoWait::Read(read as usize));
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EAGAIN) => return Ok(NoWait::WouldBlock),
            Some(libc::EINTR) => {}
            Some(libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL) => {
                if !NOWAIT_READS_UNSUPPORTED.swap(true, Ordering::Relaxed) {
                    tracing::info!("preadv2(RWF_NOWAIT) unavailable ({error}): checking page-cache residency with cachestat/mincore before each read");
                }
                return Ok(NoWait::Unsupported);
            }
            _ => return Err(error),
        }
    }
}

/// Whether every page of `file` covering `[offset, offset + len)` is in the page cache.
/// Errors count as "not resident": the caller then reads in the pool, which is never wrong.
pub(super) fn resident(file: &File, offset: u64, len: u64) -> bool {
    if len == 0 {
        return true;
    }
    #[cfg(test)]
    if test_hook::cold() {
        return false;
    }
    if let Some(resident) = resident_by_cachestat(file, offset, len) {
        return resident;
    }
    resident_by_mincore(file, offset, len).unwrap_or(false)
}

/// The system page size (4 KiB where it cannot be read).
fn page_bytes() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 { page as u64 } else { 4096 }
}

/// The pages covering `[offset, offset + len)`, `len > 0`: (first page's byte offset, count).
fn covering_pages(offset: u64, len: u64, page: u64) -> (u64, u64) {
    let first = offset / page;
    let last = (offset.saturating_add(len) - 1) / page;
    (first * page, last - first + 1)
}

/// `cachestat(2)`'s syscall number: 451 in the unified syscall table of every 64-bit
/// architecture FerroMQ builds for (libc 0.2 defines `SYS_cachestat` only for a few targets).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64", target_arch = "loongarch64"))]
const SYS_CACHESTAT: Option<libc::c_long> = Some(451);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64", target_arch = "loongarch64")))]
const SYS_CACHESTAT: Option<libc::c_long> = None;

/// `struct cachestat_range` (include/uapi/linux/mman.h).
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` (include/uapi/linux/mman.h).
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// `Some(resident)` from `cachestat(2)`, or `None` where it is unavailable.
fn resident_by_cachestat(file: &File, offset: u64, len: u64) -> Option<bool> {
    let number = SYS_CACHESTAT?;
    #[cfg(test)]
    if test_hook::old_kernel() {
        return None;
    }
    if CACHESTAT_UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    let page = page_bytes();
    let (start, pages) = covering_pages(offset, len, page);
    let range = CachestatRange { off: start, len: pages * page };
    let mut stat = Cachestat::default();
    // SAFETY: `range` and `stat` are valid, properly aligned `repr(C)` values matching the
    // kernel's structs, alive for the call; the fd is owned by `file`; flags must be 0.
    let rc = unsafe {
        libc::syscall(number, file.as_raw_fd(), &range as *const CachestatRange, &mut stat as *mut Cachestat, 0 as libc::c_uint)
    };
    if rc == 0 {
        return Some(stat.nr_cache >= pages);
    }
    let error = io::Error::last_os_error();
    if matches!(error.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) && !CACHESTAT_UNSUPPORTED.swap(true, Ordering::Relaxed) {
        tracing::info!("cachestat(2) unavailable ({error}): checking page-cache residency with mincore");
    }
    None
}

/// Cached pages of `file` over `[offset, offset + len)` by `cachestat(2)`, for tests that
/// check eviction and warm-up; `None` without cachestat.
#[cfg(test)]
pub(crate) fn cached_pages(file: &File, offset: u64, len: u64) -> Option<(u64, u64)> {
    let number = SYS_CACHESTAT?;
    let page = page_bytes();
    let (start, pages) = covering_pages(offset, len.max(1), page);
    let range = CachestatRange { off: start, len: pages * page };
    let mut stat = Cachestat::default();
    // SAFETY: as in `resident_by_cachestat`.
    let rc = unsafe { libc::syscall(number, file.as_raw_fd(), &range as *const CachestatRange, &mut stat as *mut Cachestat, 0 as libc::c_uint) };
    (rc == 0).then_some((stat.nr_cache, pages))
}

/// Residency by `mincore(2)` on a fresh, never touched `mmap` of the range (mapping it reads
/// nothing; mincore looks the pages up in the file's page cache).
fn resident_by_mincore(file: &File, offset: u64, len: u64) -> io::Result<bool> {
    /// Pages asked per `mincore` call: its result vector lives on the stack.
    const PAGES_PER_CALL: usize = 512;
    let page = page_bytes();
    let (start, pages) = covering_pages(offset, len, page);
    let map_bytes = usize::try_from(pages * page).map_err(|_| io::Error::other("range too large to map"))?;
    let map_offset = libc::off_t::try_from(start).map_err(|_| io::Error::other("offset too large to map"))?;
    // SAFETY: a fresh read-only shared mapping chosen by the kernel (null hint); it aliases no
    // Rust memory, is never dereferenced, and is unmapped below.
    let addr = unsafe { libc::mmap(std::ptr::null_mut(), map_bytes, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), map_offset) };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let mut resident = Ok(true);
    let mut vec = [0u8; PAGES_PER_CALL];
    let mut done = 0usize;
    let total = pages as usize;
    while done < total {
        let now = (total - done).min(PAGES_PER_CALL);
        // SAFETY: `addr + done pages` lies within the mapping made above (done < total pages),
        // and `vec` has room for `now` ≤ PAGES_PER_CALL entries.
        let rc = unsafe { libc::mincore(addr.cast::<u8>().add(done * page as usize).cast(), now * page as usize, vec.as_mut_ptr()) };
        if rc != 0 {
            resident = Err(io::Error::last_os_error());
            break;
        }
        if vec.iter().take(now).any(|v| v & 1 == 0) {
            resident = Ok(false);
            break;
        }
        done += now;
    }
    // SAFETY: unmaps exactly the mapping made above, which nothing references.
    unsafe { libc::munmap(addr, map_bytes) };
    resident
}

/// Test hooks: a per-thread probe, captured when a cold read is handed to the pool, that
/// counts the pool tasks running at once and can slow each down (a slow disk on demand).
#[cfg(test)]
pub(crate) mod test_hook {
    use std::cell::RefCell;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[derive(Default)]
    pub(crate) struct PoolProbe {
        pub running: AtomicUsize,
        pub max_running: AtomicUsize,
        pub started: AtomicUsize,
        /// Each pool task sleeps this long before reading.
        pub delay: Duration,
    }

    pub(crate) struct Running(Arc<PoolProbe>);

    impl PoolProbe {
        pub(crate) fn enter(self: &Arc<PoolProbe>) -> Running {
            self.started.fetch_add(1, Ordering::SeqCst);
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_running.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(self.delay);
            Running(self.clone())
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.0.running.fetch_sub(1, Ordering::SeqCst);
        }
    }

    thread_local! {
        static PROBE: RefCell<Option<Arc<PoolProbe>>> = const { RefCell::new(None) };
        static OLD_KERNEL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        static COLD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Makes every residency check on this thread answer "not cached" (the pool reads then
    /// find the data wherever it is), for tests of what happens once a read is cold: the
    /// thread's responsiveness, the bound on reads in flight. Those do not depend on the
    /// kernel evicting on request, which it now and then does not do completely (seen in CI:
    /// an evicted range read as resident three attempts in a row).
    pub(crate) fn pretend_cold(cold: bool) {
        COLD.with(|c| c.set(cold));
    }

    pub(super) fn cold() -> bool {
        COLD.with(std::cell::Cell::get)
    }

    /// Makes this thread behave as on a kernel without `preadv2(RWF_NOWAIT)` and `cachestat`
    /// (3.10 to 4.13): residency is then asked with `mincore` only.
    pub(crate) fn pretend_old_kernel(old: bool) {
        OLD_KERNEL.with(|o| o.set(old));
    }

    pub(super) fn old_kernel() -> bool {
        OLD_KERNEL.with(std::cell::Cell::get)
    }

    /// Installs `probe` for the cold reads started on this thread.
    pub(crate) fn install(probe: Arc<PoolProbe>) {
        PROBE.with(|p| *p.borrow_mut() = Some(probe));
    }

    pub(super) fn current() -> Option<Arc<PoolProbe>> {
        PROBE.with(|p| p.borrow().clone())
    }
}
