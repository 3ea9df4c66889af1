//! `probe` mode: the machine's physical limits, measured so that every other result can be
//! reported as a ratio to them (DESIGN.md, "Physical limits").
//!
//! Each probe is a plain function that other modes reuse (the `store` mode runs the
//! fdatasync-bound probe at the batch size it has just measured):
//!
//! - [`fdatasync_latency`]: write 4 KiB + fdatasync, N times; latency distribution.
//! - [`sequential_write`]: 1 MiB writes without sync, then one fdatasync; MiB/s.
//! - [`fdatasync_bound`]: write B bytes + fdatasync back to back for a while: syncs/s and
//!   bytes/s, the ceiling of a group-committed log that flushes batches of B bytes.
//! - [`loopback_rtt`]: ping-pong of a small frame over 127.0.0.1 TCP; p50/p99.
//! - [`loopback_sendfile`]: `sendfile(2)` of a file over a loopback TCP socket to a reader
//!   thread; MiB/s.
//! - [`page_cache_touch`]: the CPU a buffered write costs per 4 KiB page when the page is new
//!   to the page cache, and when it rewrites a cached page. A broker's commit log is always new
//!   pages. On a VM with free page reporting (virtio-balloon; this project's machine), memory
//!   the guest freed some time ago went back to its host, and each first touch of it traps to
//!   the host: tens of µs a page, billed to the writer as system time (~1 µs on bare metal).
//!   Memory freed moments before is still backed, so the figure depends on what the machine
//!   freed lately: a lower bound of what a long-running writer pays.
//!
//! The fdatasync probes run twice, [`Wakeups::Idle`] and [`Wakeups::Ticking`]. On some VMs (the
//! one this project is developed on among them, see bench/RESULTS.md) an idle guest notices the
//! completion of an fdatasync only at its next timer tick: alone, one thread doing
//! `write + fdatasync` measures ~4 ms per round, while the same loop with another thread of the
//! machine waking every 100 µs measures 0.3–0.5 ms. A busy broker is never idle, so the ticking figure is the machine's bound and the one
//! other results are compared with; the idle figure is what a lone synchronous writer sees.
//!
//! The file probes write into a preallocated file (`fallocate`, 1 GiB like a commit-log segment)
//! sequentially, as the store does, so that the probe pays the same extent conversion on
//! fdatasync as the store's segment writes. They run synchronously on the calling thread with
//! plain `std` I/O: they measure the machine, not a runtime. Files live in a fresh directory
//! under `--dir` (default: the system temp directory) that is removed afterwards.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Bytes per MiB.
pub const MIB: u64 = 1 << 20;
/// Size of one write of the fdatasync-latency probe.
pub const FDATASYNC_PROBE_WRITE_BYTES: usize = 4096;
/// Size of one write of the sequential-write probe.
pub const SEQUENTIAL_WRITE_BYTES: usize = 1 << 20;
/// Preallocated size of the file the fdatasync probes write into: a RocketMQ commit-log segment.
pub const PROBE_FILE_BYTES: u64 = 1 << 30;
/// How often the helper thread of [`Wakeups::Ticking`] wakes.
pub const TICKER_INTERVAL: Duration = Duration::from_micros(100);
/// Socket read/write timeout of the loopback probes: a stuck peer fails the probe, not the run.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug, Clone)]
pub struct ProbeArgs {
    /// Directory for the probe files (a fresh subdirectory is created and removed); use the
    /// file system the store will use. Default: the system temp directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Number of 4 KiB write + fdatasync rounds of the latency probe.
    #[arg(long, default_value_t = 1000)]
    fsync_count: usize,
    /// MiB written by the sequential-write probe.
    #[arg(long, default_value_t = 256)]
    write_mib: u64,
    /// Batch sizes (bytes) of the fdatasync-bound probe, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "4096,65536,262144")]
    batch_bytes: Vec<usize>,
    /// Milliseconds each fdatasync-bound probe runs (once idle, once ticking).
    #[arg(long, default_value_t = 1000)]
    batch_ms: u64,
    /// Message size (bytes) used to express the fdatasync-bound rate as appends/s.
    #[arg(long, default_value_t = 1024)]
    message_bytes: usize,
    /// Round trips of the loopback RTT probe.
    #[arg(long, default_value_t = 20_000)]
    rtt_count: usize,
    /// MiB sent by the loopback sendfile probe.
    #[arg(long, default_value_t = 128)]
    sendfile_mib: u64,
    /// MiB the page-cache probe writes (twice). The more it writes, the more likely it reaches
    /// memory a VM's host has taken back, not only memory freed moments ago.
    #[arg(long, default_value_t = 512)]
    page_cache_mib: u64,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Whether something else wakes the machine while an fdatasync probe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Wakeups {
    /// Nothing else runs: an idle guest may notice I/O completions only at its next timer tick.
    Idle,
    /// A helper thread sleeps [`TICKER_INTERVAL`] at a time, as a busy server's threads do; the
    /// best rate the machine allows, and the bound other results are compared with.
    Ticking,
}

impl Wakeups {
    pub const BOTH: [Wakeups; 2] = [Wakeups::Idle, Wakeups::Ticking];

    pub fn name(self) -> &'static str {
        match self {
            Wakeups::Idle => "idle",
            Wakeups::Ticking => "ticking",
        }
    }
}

/// A helper thread that wakes every [`TICKER_INTERVAL`] until dropped (for [`Wakeups::Ticking`]).
struct Ticker {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(wakeups: Wakeups) -> Ticker {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = (wakeups == Wakeups::Ticking).then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICKER_INTERVAL);
                }
            })
        });
        Ticker { stop, thread }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How much work each probe does.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeSizes {
    pub fsync_count: usize,
    pub write_mib: u64,
    pub batch_bytes: Vec<usize>,
    pub batch_duration_ms: u64,
    pub rtt_count: usize,
    pub sendfile_mib: u64,
    pub page_cache_mib: u64,
}

impl ProbeSizes {
    /// The baseline the `store` mode runs before its points (a few seconds in all).
    pub fn quick() -> ProbeSizes {
        ProbeSizes {
            fsync_count: 500,
            write_mib: 128,
            batch_bytes: vec![4096, 65536],
            batch_duration_ms: 500,
            rtt_count: 5_000,
            sendfile_mib: 64,
            // On this project's VM a write this size got only memory freed moments before
            // (0.8–1 µs a page) at some times, and 1–2 GiB reached memory the host had taken
            // back (7–26 µs a page) at others: more would cost tens of seconds there.
            page_cache_mib: 512,
        }
    }

    /// Tiny sizes for tests: checks that every probe works, measures nothing meaningful.
    pub fn tiny() -> ProbeSizes {
        ProbeSizes {
            fsync_count: 5,
            write_mib: 2,
            batch_bytes: vec![4096],
            batch_duration_ms: 20,
            rtt_count: 50,
            sendfile_mib: 2,
            page_cache_mib: 2,
        }
    }
}

/// What machine the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct MachineInfo {
    pub nproc: usize,
    /// `uname -r`.
    pub kernel: String,
    pub cpu_model: Option<String>,
    /// The directory the file probes and stores use.
    pub dir: String,
    /// File system type and device of `dir`, from `/proc/self/mounts`.
    pub filesystem: Option<String>,
    pub device: Option<String>,
}

/// A latency distribution in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl LatencySummary {
    /// Summarises a histogram recorded in nanoseconds.
    pub fn from_nanos(histogram: &Histogram<u64>) -> LatencySummary {
        let us = |ns: u64| ns as f64 / 1_000.0;
        LatencySummary {
            count: histogram.len(),
            mean_us: histogram.mean() / 1_000.0,
            p50_us: us(histogram.value_at_quantile(0.5)),
            p90_us: us(histogram.value_at_quantile(0.9)),
            p99_us: us(histogram.value_at_quantile(0.99)),
            max_us: us(histogram.max()),
        }
    }
}

/// Result of [`sequential_write`].
#[derive(Debug, Clone, Serialize)]
pub struct WriteBandwidth {
    pub total_bytes: u64,
    pub write_bytes: usize,
    /// Bandwidth of the writes alone (page cache).
    pub write_mib_per_s: f64,
    /// Duration of the single fdatasync after the writes.
    pub sync_ms: f64,
    /// Bandwidth including that fdatasync.
    pub durable_mib_per_s: f64,
}

/// Result of [`fdatasync_latency`].
#[derive(Debug, Clone, Serialize)]
pub struct SyncLatency {
    pub wakeups: Wakeups,
    pub write_bytes: usize,
    pub latency: LatencySummary,
}

/// Result of [`fdatasync_bound`]: the rate of back-to-back `write(B) + fdatasync` rounds.
#[derive(Debug, Clone, Serialize)]
pub struct SyncBoundRate {
    pub wakeups: Wakeups,
    pub batch_bytes: usize,
    pub syncs: u64,
    pub duration_s: f64,
    pub syncs_per_s: f64,
    pub bytes_per_s: f64,
    pub mib_per_s: f64,
}

impl SyncBoundRate {
    /// Appends/s a log flushing batches of this size could acknowledge, for appends of
    /// `append_bytes` each (stored bytes: record header included).
    pub fn appends_per_s(&self, append_bytes: f64) -> f64 {
        if append_bytes <= 0.0 { 0.0 } else { self.syncs_per_s * self.batch_bytes as f64 / append_bytes }
    }
}

/// Result of [`loopback_rtt`].
#[derive(Debug, Clone, Serialize)]
pub struct RttSummary {
    pub frame_bytes: usize,
    pub latency: LatencySummary,
}

/// Result of [`loopback_sendfile`].
#[derive(Debug, Clone, Serialize)]
pub struct SendfileBandwidth {
    pub bytes: u64,
    pub duration_s: f64,
    pub mib_per_s: f64,
}

/// Result of [`page_cache_touch`]: thread CPU per 4 KiB page written.
#[derive(Debug, Clone, Serialize)]
pub struct PageCacheTouch {
    pub bytes: u64,
    /// Writing pages new to the page cache (a fresh file), µs of CPU per page.
    pub first_write_us_per_page: f64,
    /// Rewriting the same pages while they are cached, µs of CPU per page.
    pub rewrite_us_per_page: f64,
}

/// Every probe of one run.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub machine: MachineInfo,
    pub sizes: ProbeSizes,
    /// Idle, then ticking.
    pub fdatasync_latency: Vec<SyncLatency>,
    pub sequential_write: WriteBandwidth,
    /// For each batch size: idle, then ticking.
    pub fdatasync_bound: Vec<SyncBoundRate>,
    pub loopback_rtt: RttSummary,
    pub loopback_sendfile: SendfileBandwidth,
    pub page_cache_touch: PageCacheTouch,
}

/// A fresh directory for probe or store files, removed (with its contents) when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `<base>/ferromq-bench-<label>-<pid>-<n>`; `base` defaults to the temp directory.
    pub fn create(base: Option<&Path>, label: &str) -> Result<ScratchDir, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = base.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("ferromq-bench-{label}-{}-{n}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| format!("cannot clear {}: {e}", path.display()))?;
        }
        std::fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(ScratchDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("ferromq-bench: cannot remove {}: {e}", self.path.display());
        }
    }
}

/// A histogram of nanoseconds from 1 ns to 60 s, 3 significant digits.
pub fn nanos_histogram() -> Result<Histogram<u64>, String> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| e.to_string())
}

fn nanos_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// Runs every probe with `sizes` in a scratch directory under `dir`.
pub fn run_probes(dir: Option<&Path>, sizes: &ProbeSizes) -> Result<ProbeReport, String> {
    let scratch = ScratchDir::create(dir, "probe")?;
    let machine = machine_info(scratch.path());
    let fdatasync_latency = Wakeups::BOTH
        .iter()
        .map(|w| fdatasync_latency(scratch.path(), sizes.fsync_count, *w))
        .collect::<Result<Vec<_>, _>>()?;
    let sequential_write = sequential_write(scratch.path(), sizes.write_mib)?;
    let mut bound_rates = Vec::new();
    for batch_bytes in &sizes.batch_bytes {
        for wakeups in Wakeups::BOTH {
            let duration = Duration::from_millis(sizes.batch_duration_ms);
            bound_rates.push(fdatasync_bound(scratch.path(), *batch_bytes, duration, wakeups)?);
        }
    }
    let loopback_rtt = loopback_rtt(sizes.rtt_count, 64)?;
    let loopback_sendfile = loopback_sendfile(scratch.path(), sizes.sendfile_mib)?;
    let page_cache_touch = page_cache_touch(scratch.path(), sizes.page_cache_mib)?;
    Ok(ProbeReport {
        machine,
        sizes: sizes.clone(),
        fdatasync_latency,
        sequential_write,
        fdatasync_bound: bound_rates,
        loopback_rtt,
        loopback_sendfile,
        page_cache_touch,
    })
}

/// `probe` mode: runs every probe, prints them, and writes JSON when asked.
pub fn run(args: ProbeArgs) -> Result<(), String> {
    let sizes = ProbeSizes {
        fsync_count: args.fsync_count.max(1),
        write_mib: args.write_mib.max(1),
        batch_bytes: args.batch_bytes.iter().map(|b| (*b).max(1)).collect(),
        batch_duration_ms: args.batch_ms.max(1),
        rtt_count: args.rtt_count.max(1),
        sendfile_mib: args.sendfile_mib.max(1),
        page_cache_mib: args.page_cache_mib.max(1),
    };
    let report = run_probes(args.dir.as_deref(), &sizes)?;
    print_report(&report, args.message_bytes);
    if let Some(path) = &args.json {
        let mut json = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        if let Some(obj) = json.as_object_mut() {
            obj.insert("mode".into(), "probe".into());
            obj.insert("message_bytes".into(), args.message_bytes.into());
        }
        write_json(path, &json)?;
    }
    Ok(())
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Prints the machine line and one line per probe.
pub fn print_report(report: &ProbeReport, message_bytes: usize) {
    for line in report_lines(report, message_bytes) {
        println!("{line}");
    }
}

/// A report's "## Probes" section: [`report_lines`] in a code block, then a blank line.
pub fn markdown_section(report: &ProbeReport, message_bytes: usize) -> Vec<String> {
    let mut lines = vec!["## Probes".to_owned(), String::new(), "```".to_owned()];
    lines.extend(report_lines(report, message_bytes));
    lines.extend(["```".to_owned(), String::new()]);
    lines
}

/// The machine line and one line per probe, as [`print_report`] prints them.
pub fn report_lines(report: &ProbeReport, message_bytes: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let m = &report.machine;
    lines.push(format!(
        "machine: {} cpus ({}), kernel {}, dir {} on {} ({})",
        m.nproc,
        m.cpu_model.as_deref().unwrap_or("unknown cpu"),
        m.kernel,
        m.dir,
        m.filesystem.as_deref().unwrap_or("unknown fs"),
        m.device.as_deref().unwrap_or("unknown device")
    ));
    if m.filesystem.as_deref() == Some("tmpfs") {
        lines.push(format!("warning: {} is on tmpfs: fdatasync is a no-op there, the sync figures mean nothing", m.dir));
    }
    for s in &report.fdatasync_latency {
        let l = &s.latency;
        lines.push(format!(
            "fdatasync, {:<7} (4 KiB write + fdatasync, {} rounds): p50 {:.0} us  p90 {:.0} us  p99 {:.0} us  max {:.0} us  mean {:.0} us",
            s.wakeups.name(), l.count, l.p50_us, l.p90_us, l.p99_us, l.max_us, l.mean_us
        ));
    }
    let w = &report.sequential_write;
    lines.push(format!(
        "sequential write ({} MiB in 1 MiB writes): {:.0} MiB/s without sync; final fdatasync {:.1} ms; {:.0} MiB/s durable",
        w.total_bytes / MIB, w.write_mib_per_s, w.sync_ms, w.durable_mib_per_s
    ));
    for b in &report.fdatasync_bound {
        lines.push(format!(
            "fdatasync-bound, {:<7} at batch {} B: {:.0} syncs/s, {:.1} MiB/s = {:.0} appends/s of {} B",
            b.wakeups.name(),
            b.batch_bytes,
            b.syncs_per_s,
            b.mib_per_s,
            b.appends_per_s(message_bytes as f64),
            message_bytes
        ));
    }
    let r = &report.loopback_rtt.latency;
    lines.push(format!(
        "loopback RTT ({} B frame, {} round trips): p50 {:.1} us  p99 {:.1} us  max {:.0} us",
        report.loopback_rtt.frame_bytes, r.count, r.p50_us, r.p99_us, r.max_us
    ));
    let s = &report.loopback_sendfile;
    lines.push(format!("loopback sendfile ({} MiB): {:.0} MiB/s", s.bytes / MIB, s.mib_per_s));
    let t = &report.page_cache_touch;
    lines.push(format!(
        "page cache ({} MiB written twice): {:.2} us CPU per 4 KiB page new to the cache, {:.2} us rewriting a cached one",
        t.bytes / MIB, t.first_write_us_per_page, t.rewrite_us_per_page
    ));
    lines
}

/// Machine facts: cpus, kernel release, cpu model, and the file system holding `dir`.
pub fn machine_info(dir: &Path) -> MachineInfo {
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|text| {
        text.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    });
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let (filesystem, device) = match mount_of(&dir) {
        Some((fs, dev)) => (Some(fs), Some(dev)),
        None => (None, None),
    };
    MachineInfo { nproc, kernel: kernel_release(), cpu_model, dir: dir.display().to_string(), filesystem, device }
}

/// The kernel release, as `uname -r` prints it.
fn kernel_release() -> String {
    // SAFETY: `utsname` is a plain C struct of byte arrays; all-zero is a valid value.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is a valid, writable `utsname` for the duration of the call.
    if unsafe { libc::uname(&mut name) } != 0 {
        return "unknown".to_owned();
    }
    // SAFETY: on success `release` holds a NUL-terminated string inside the array.
    let release = unsafe { std::ffi::CStr::from_ptr(name.release.as_ptr()) };
    release.to_string_lossy().into_owned()
}

/// (file system type, device) of the mount holding `path`: the longest matching mount point.
fn mount_of(path: &Path) -> Option<(String, String)> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mut best: Option<(usize, String, String)> = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(device), Some(mount_point), Some(fs)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        // /proc/mounts escapes spaces and a few other characters as octal.
        let mount_point = mount_point.replace("\\040", " ");
        if path.starts_with(&mount_point) && best.as_ref().is_none_or(|(len, _, _)| mount_point.len() >= *len) {
            best = Some((mount_point.len(), fs.to_owned(), device.to_owned()));
        }
    }
    best.map(|(_, fs, device)| (fs, device))
}

/// A file preallocated to [`PROBE_FILE_BYTES`] (like a commit-log segment), written from 0.
fn preallocated_file(path: &Path) -> Result<File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    // SAFETY: `file` is an open descriptor for the whole call.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, PROBE_FILE_BYTES as libc::off_t) };
    if rc != 0 {
        // No fallocate on this file system: writes extend the file instead, as the store's
        // fallback (a sparse file) does.
        tracing::debug!(error = %std::io::Error::last_os_error(), "fallocate unsupported for the probe file");
    }
    Ok(file)
}

/// fdatasync latency: `count` rounds of a 4 KiB write (sequential, into a preallocated file)
/// followed by fdatasync; each round's fdatasync is timed.
pub fn fdatasync_latency(dir: &Path, count: usize, wakeups: Wakeups) -> Result<SyncLatency, String> {
    let path = dir.join(format!("fdatasync-latency-{}", wakeups.name()));
    let file = preallocated_file(&path)?;
    let buf = vec![0x5Au8; FDATASYNC_PROBE_WRITE_BYTES];
    let mut histogram = nanos_histogram()?;
    let mut pos = 0u64;
    let ticker = Ticker::start(wakeups);
    for _ in 0..count {
        file.write_all_at(&buf, pos).map_err(|e| format!("write {}: {e}", path.display()))?;
        pos = (pos + buf.len() as u64) % PROBE_FILE_BYTES;
        let start = Instant::now();
        file.sync_data().map_err(|e| format!("fdatasync {}: {e}", path.display()))?;
        histogram.record(nanos_since(start)).map_err(|e| e.to_string())?;
    }
    drop(ticker);
    drop(file);
    remove(&path)?;
    Ok(SyncLatency { wakeups, write_bytes: FDATASYNC_PROBE_WRITE_BYTES, latency: LatencySummary::from_nanos(&histogram) })
}

/// Sequential write bandwidth: `total_mib` MiB in 1 MiB writes without sync, then one
/// fdatasync.
pub fn sequential_write(dir: &Path, total_mib: u64) -> Result<WriteBandwidth, String> {
    let path = dir.join("sequential-write");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let buf: Vec<u8> = (0..SEQUENTIAL_WRITE_BYTES).map(|i| (i % 251) as u8).collect();
    let total_bytes = total_mib * MIB;
    let start = Instant::now();
    let mut written = 0u64;
    while written < total_bytes {
        file.write_all(&buf).map_err(|e| format!("write {}: {e}", path.display()))?;
        written += buf.len() as u64;
    }
    let write_s = start.elapsed().as_secs_f64();
    let sync_start = Instant::now();
    file.sync_data().map_err(|e| format!("fdatasync {}: {e}", path.display()))?;
    let sync_s = sync_start.elapsed().as_secs_f64();
    drop(file);
    remove(&path)?;
    let mib = written as f64 / MIB as f64;
    Ok(WriteBandwidth {
        total_bytes: written,
        write_bytes: SEQUENTIAL_WRITE_BYTES,
        write_mib_per_s: mib / write_s.max(1e-9),
        sync_ms: sync_s * 1_000.0,
        durable_mib_per_s: mib / (write_s + sync_s).max(1e-9),
    })
}

/// Thread CPU per 4 KiB page of `total_mib` MiB written in 64 KiB buffered writes (a flush
/// batch's size), first into a new file, then over the same, still cached, pages. Nothing is
/// synced: write-back runs in the kernel's threads, not here.
pub fn page_cache_touch(dir: &Path, total_mib: u64) -> Result<PageCacheTouch, String> {
    const WRITE_BYTES: usize = 64 << 10;
    const PAGE_BYTES: u64 = 4096;
    let path = dir.join("page-cache-touch");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let buf: Vec<u8> = (0..WRITE_BYTES).map(|i| (i % 251) as u8).collect();
    let total_bytes = total_mib.max(1) * MIB;
    let pass = || -> Result<f64, String> {
        let start = crate::cpu::thread_cpu_ns();
        let mut pos = 0u64;
        while pos < total_bytes {
            file.write_all_at(&buf, pos).map_err(|e| format!("write {}: {e}", path.display()))?;
            pos += WRITE_BYTES as u64;
        }
        Ok(crate::cpu::thread_cpu_ns().saturating_sub(start) as f64 / 1_000.0 / (total_bytes / PAGE_BYTES) as f64)
    };
    let first_write_us_per_page = pass()?;
    let rewrite_us_per_page = pass()?;
    drop(file);
    remove(&path)?;
    Ok(PageCacheTouch { bytes: total_bytes, first_write_us_per_page, rewrite_us_per_page })
}

/// The fdatasync-bound rate at batch size `batch_bytes`: back-to-back rounds of one write of
/// `batch_bytes` (sequential, into a preallocated file) and one fdatasync, for `duration` (or
/// until the preallocated gigabyte is full).
pub fn fdatasync_bound(
    dir: &Path,
    batch_bytes: usize,
    duration: Duration,
    wakeups: Wakeups,
) -> Result<SyncBoundRate, String> {
    let batch_bytes = batch_bytes.max(1);
    let path = dir.join(format!("fdatasync-bound-{batch_bytes}-{}", wakeups.name()));
    let file = preallocated_file(&path)?;
    let buf = vec![0xA5u8; batch_bytes];
    let mut pos = 0u64;
    let mut syncs = 0u64;
    let ticker = Ticker::start(wakeups);
    let start = Instant::now();
    while start.elapsed() < duration && pos + batch_bytes as u64 <= PROBE_FILE_BYTES {
        file.write_all_at(&buf, pos).map_err(|e| format!("write {}: {e}", path.display()))?;
        file.sync_data().map_err(|e| format!("fdatasync {}: {e}", path.display()))?;
        pos += batch_bytes as u64;
        syncs += 1;
    }
    let duration_s = start.elapsed().as_secs_f64().max(1e-9);
    drop(ticker);
    drop(file);
    remove(&path)?;
    let bytes_per_s = pos as f64 / duration_s;
    Ok(SyncBoundRate {
        wakeups,
        batch_bytes,
        syncs,
        duration_s,
        syncs_per_s: syncs as f64 / duration_s,
        bytes_per_s,
        mib_per_s: bytes_per_s / MIB as f64,
    })
}

/// Loopback round-trip time: `count` ping-pongs of a `frame_bytes` frame between this thread
/// and an echo thread over 127.0.0.1 TCP (TCP_NODELAY on both ends), after 100 unmeasured ones.
pub fn loopback_rtt(count: usize, frame_bytes: usize) -> Result<RttSummary, String> {
    const WARMUP_ROUND_TRIPS: usize = 100;
    let frame_bytes = frame_bytes.max(1);
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut socket, _) = listener.accept()?;
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(SOCKET_TIMEOUT))?;
        let mut buf = vec![0u8; frame_bytes];
        loop {
            match socket.read_exact(&mut buf) {
                Ok(()) => socket.write_all(&buf)?,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    });
    let result = (|| -> Result<Histogram<u64>, String> {
        let mut socket = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        socket.set_nodelay(true).map_err(|e| e.to_string())?;
        socket.set_read_timeout(Some(SOCKET_TIMEOUT)).map_err(|e| e.to_string())?;
        let ping = vec![0x42u8; frame_bytes];
        let mut pong = vec![0u8; frame_bytes];
        let mut histogram = nanos_histogram()?;
        for round in 0..WARMUP_ROUND_TRIPS + count {
            let start = Instant::now();
            socket.write_all(&ping).map_err(|e| format!("loopback write: {e}"))?;
            socket.read_exact(&mut pong).map_err(|e| format!("loopback read: {e}"))?;
            if round >= WARMUP_ROUND_TRIPS {
                histogram.record(nanos_since(start)).map_err(|e| e.to_string())?;
            }
        }
        // Closing the socket ends the echo thread.
        Ok(histogram)
    })();
    if result.is_err() {
        // Unblock the echo thread's accept if the client never connected.
        let _ = TcpStream::connect(addr);
    }
    let echoed = echo.join().map_err(|_| "loopback echo thread panicked".to_string())?;
    let histogram = result?;
    echoed.map_err(|e| format!("loopback echo: {e}"))?;
    Ok(RttSummary { frame_bytes, latency: LatencySummary::from_nanos(&histogram) })
}

/// Loopback sendfile bandwidth: a `file_mib` MiB file (written first, so it sits in the page
/// cache) is sent with `sendfile(2)` over a 127.0.0.1 TCP socket to a thread that reads and
/// discards it. Timed from the first sendfile to the reader having received every byte.
pub fn loopback_sendfile(dir: &Path, file_mib: u64) -> Result<SendfileBandwidth, String> {
    loopback_sendfile_with(dir, file_mib, false)
}

/// [`loopback_sendfile`]; with `synced`, the file is written back to disk (fdatasync) before
/// the timed send, as a broker's flushed segments are: no writeback runs under the measurement,
/// and the pages are still cached.
pub fn loopback_sendfile_with(dir: &Path, file_mib: u64, synced: bool) -> Result<SendfileBandwidth, String> {
    let path = dir.join("sendfile-source");
    let total_bytes = file_mib.max(1) * MIB;
    {
        let mut file = File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let chunk: Vec<u8> = (0..MIB as usize).map(|i| (i % 239) as u8).collect();
        for _ in 0..file_mib.max(1) {
            file.write_all(&chunk).map_err(|e| format!("write {}: {e}", path.display()))?;
        }
        if synced {
            file.sync_data().map_err(|e| format!("fdatasync {}: {e}", path.display()))?;
        }
    }
    let file = File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut socket, _) = listener.accept()?;
        socket.set_read_timeout(Some(SOCKET_TIMEOUT))?;
        let mut buf = vec![0u8; MIB as usize];
        let mut received = 0u64;
        loop {
            match socket.read(&mut buf)? {
                0 => return Ok(received),
                n => received += n as u64,
            }
        }
    });
    let sent = (|| -> Result<Instant, String> {
        let socket = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        socket.set_write_timeout(Some(SOCKET_TIMEOUT)).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let mut offset: libc::off_t = 0;
        while (offset as u64) < total_bytes {
            let remaining = (total_bytes - offset as u64) as usize;
            // SAFETY: both descriptors are open for the whole call and `offset` is a valid
            // pointer to an `off_t` that the kernel advances.
            let n = unsafe { libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut offset, remaining) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("sendfile: {e}"));
            }
            if n == 0 {
                return Err(format!("sendfile: {} ended early at {offset}", path.display()));
            }
        }
        socket.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
        Ok(start)
    })();
    if sent.is_err() {
        // Unblock the reader's accept if the sender never connected.
        let _ = TcpStream::connect(addr);
    }
    let received = reader.join().map_err(|_| "sendfile reader thread panicked".to_string())?;
    let start = sent?;
    let received = received.map_err(|e| format!("sendfile reader: {e}"))?;
    let duration_s = start.elapsed().as_secs_f64().max(1e-9);
    drop(file);
    remove(&path)?;
    if received != total_bytes {
        return Err(format!("sendfile: reader got {received} of {total_bytes} bytes"));
    }
    Ok(SendfileBandwidth { bytes: total_bytes, duration_s, mib_per_s: total_bytes as f64 / MIB as f64 / duration_s })
}

fn remove(path: &Path) -> Result<(), String> {
    std::fs::remove_file(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_runs_and_cleans_up() {
        let base = std::env::temp_dir().join(format!("ferromq-bench-probe-test-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let report = run_probes(Some(&base), &ProbeSizes::tiny()).unwrap();
        assert_eq!(report.fdatasync_latency.len(), 2);
        assert_eq!(report.fdatasync_latency[1].wakeups, Wakeups::Ticking);
        assert_eq!(report.fdatasync_latency[0].latency.count, 5);
        assert!(report.fdatasync_latency[0].latency.p50_us > 0.0);
        assert_eq!(report.sequential_write.total_bytes, 2 * MIB);
        assert!(report.sequential_write.write_mib_per_s > 0.0);
        assert_eq!(report.fdatasync_bound.len(), 2);
        let bound = &report.fdatasync_bound[1];
        assert!(bound.syncs > 0 && bound.syncs_per_s > 0.0);
        assert!((bound.appends_per_s(1024.0) - bound.syncs_per_s * 4.0).abs() < 1e-6);
        assert_eq!(report.loopback_rtt.latency.count, 50);
        assert_eq!(report.loopback_sendfile.bytes, 2 * MIB);
        let touch = &report.page_cache_touch;
        assert_eq!(touch.bytes, 2 * MIB);
        assert!(touch.first_write_us_per_page > 0.0 && touch.rewrite_us_per_page > 0.0, "{touch:?}");
        assert!(report.machine.nproc >= 1 && !report.machine.kernel.is_empty());
        // The scratch directory is gone.
        assert_eq!(std::fs::read_dir(&base).unwrap().count(), 0);
        std::fs::remove_dir(&base).unwrap();
    }
}
