//! Cold file bodies, over real loopback sockets on both backends: data evicted from the page
//! cache is detected and read (copy path) or warmed (`sendfile` path) in the blocking pool and
//! arrives byte-exact; resident data never touches the pool; the per-thread bound on cold reads
//! holds; and the thread keeps answering other connections while a cold read is in flight.
//!
//! Eviction uses `posix_fadvise(POSIX_FADV_DONTNEED)` after `fsync` on a file under
//! `CARGO_TARGET_TMPDIR` or `/var/tmp` (a real disk, not tmpfs) and is verified with the
//! residency check itself; a test whose file system will not evict prints why and skips. Tests
//! of what follows a cold read (the bound, the thread's responsiveness) make reads cold with
//! `test_hook::pretend_cold` instead: eviction on request is the kernel's to honour, and now and
//! then it leaves a range cached (three CI failures, 2026-12).

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cold::{self, cold_read_stats, test_hook};
use super::*;
use crate::backend::{IoBackend, build_runtime};
use crate::client::Client;
use crate::server::{self, ServerLimits};

const FAST: i32 = 2;
/// Ext `path`, `offset`, `len`, `times`, `stride`: a body of `times` segments of `len` bytes,
/// each `stride` bytes after the previous one.
const FILE: i32 = 6;
/// Answers with the serving thread's CPU time (`cpuNs`) and its cold-read counters.
const THREAD_STATS: i32 = 8;

struct Handler;

impl RequestHandler for Handler {
    async fn handle(&self, _conn: &Connection, request: RemotingCommand) -> Option<Response> {
        let number = |key: &str| request.ext(key).map_or(0, |v| v.parse::<u64>().unwrap());
        match request.code {
            FAST => Some(request.success_response().with_body(request.body.clone()).into()),
            FILE => {
                let file = Arc::new(std::fs::File::open(request.ext("path").unwrap()).unwrap());
                // `cached`: the test file never changes, so all of it is settled.
                let settled_end = if number("cached") == 1 { file.metadata().unwrap().len() } else { 0 };
                let segments = (0..number("times"))
                    .map(|i| FileSegment { file: file.clone(), offset: number("offset") + i * number("stride"), len: number("len") as u32, settled_end })
                    .collect();
                Some(Response::FileBody(request.success_response(), segments))
            }
            THREAD_STATS => {
                let stats = cold_read_stats();
                Some(request.success_response().with_ext("cpuNs", thread_cpu_ns()).with_ext("cold", stats.cold_bodies).with_ext("resident", stats.resident_bodies).into())
            }
            _ => Some(not_supported(&request).into()),
        }
    }
}

fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Runs `test` on each backend this kernel offers.
fn on_both_backends(test: impl Fn(&'static str) -> std::pin::Pin<Box<dyn Future<Output = ()>>>) {
    for (backend, name) in [(IoBackend::IoUring, "io_uring"), (IoBackend::Epoll, "epoll")] {
        match build_runtime(backend) {
            Ok((runtime, _)) => runtime.block_on(test(name)),
            Err(e) => println!("skipping {name}: {e}"),
        }
    }
}

fn start_server(limits: ServerLimits) -> std::net::SocketAddr {
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    compio::runtime::spawn(server::serve(listener, Rc::new(Handler), limits, std::future::pending())).detach();
    addr
}

/// A test file on a real disk, removed on drop.
struct TestFile {
    path: PathBuf,
    content: Vec<u8>,
    file: std::fs::File,
}

impl Drop for TestFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl TestFile {
    fn new(name: &str, len: usize) -> TestFile {
        let dir = std::env::var_os("CARGO_TARGET_TMPDIR").map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
        let path = dir.join(format!("ferromq-cold-{}-{name}", std::process::id()));
        let content: Vec<u8> = (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        file.sync_all().unwrap();
        TestFile { path, content, file }
    }

    /// Drops the file's pages from the page cache; false (with the reason printed) if the file
    /// system keeps them. Retried a few times: pages just sent with `sendfile` stay referenced
    /// by socket buffers until the kernel frees them, which it may defer to another CPU.
    fn evict(&self) -> bool {
        let len = self.content.len() as u64;
        for _ in 0..50 {
            // SAFETY: the fd is owned by `self.file`; fadvise has no memory effects.
            let rc = unsafe { libc::posix_fadvise(self.file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            assert_eq!(rc, 0, "posix_fadvise");
            if cold::cached_pages(&self.file, 0, len).is_none_or(|(cached, _)| cached == 0) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Verified with cachestat where the kernel has it (independent of the residency check
        // under test, which a test may have switched to its mincore fallback), else with it.
        let evicted = match cold::cached_pages(&self.file, 0, len) {
            Some((cached, pages)) => cached * 10 <= pages,
            None => !cold::resident(&self.file, 0, len),
        };
        if !evicted {
            println!("skipping: {} stays in the page cache after POSIX_FADV_DONTNEED (tmpfs?)", self.path.display());
        }
        evicted
    }

    fn request(&self, offset: u64, len: u64, times: u64, stride: u64, cached: bool) -> RemotingCommand {
        RemotingCommand::request(FILE)
            .with_ext("path", self.path.display())
            .with_ext("cached", u8::from(cached))
            .with_ext("offset", offset)
            .with_ext("len", len)
            .with_ext("times", times)
            .with_ext("stride", stride)
    }

    fn check(&self, body: &[u8], offset: u64, len: u64, times: u64, stride: u64) {
        assert_eq!(body.len() as u64, len * times);
        for (i, chunk) in body.chunks(len as usize).enumerate() {
            let at = (offset + i as u64 * stride) as usize;
            assert!(chunk == &self.content[at..at + len as usize], "segment {i} differs from the file");
        }
    }
}

/// The two layouts: 64 fragmented 1200-byte records (copied: one pread of a covering span),
/// and three 512 KiB segments (sendfile).
const COPIED: (u64, u64, u64, u64) = (4096 + 5, 1200, 64, 2400);
const SENT: (u64, u64, u64, u64) = (3, 512 * 1024, 3, 600 * 1024);

fn stats_delta(before: ColdReadStats) -> ColdReadStats {
    let now = cold_read_stats();
    ColdReadStats {
        resident_bodies: now.resident_bodies - before.resident_bodies,
        cold_bodies: now.cold_bodies - before.cold_bodies,
        cold_bytes: now.cold_bytes - before.cold_bytes,
        waited_bodies: now.waited_bodies - before.waited_bodies,
        in_flight: now.in_flight,
        max_in_flight: now.max_in_flight,
    }
}

async fn fetch(client: &Client, file: &TestFile, layout: (u64, u64, u64, u64)) -> Bytes {
    fetch_with(client, file, layout, false).await
}

/// [`fetch`], the segments settled (copied through the block cache) when `cached`.
async fn fetch_with(client: &Client, file: &TestFile, layout: (u64, u64, u64, u64), cached: bool) -> Bytes {
    let (offset, len, times, stride) = layout;
    let response = client.invoke(file.request(offset, len, times, stride, cached), Duration::from_secs(30)).await.unwrap();
    assert_eq!(response.code, 0, "{response:?}");
    file.check(&response.body, offset, len, times, stride);
    response.body
}

/// Evicted data, on either path and backend, is found cold, goes through the pool once, and
/// arrives exactly; asked again, it is resident and skips the pool. Also with the fallbacks of
/// kernels older than 4.14 (mincore instead of RWF_NOWAIT and cachestat).
#[test]
fn cold_bodies_are_read_in_the_pool_and_arrive_exact() {
    for old_kernel in [false, true] {
        test_hook::pretend_old_kernel(old_kernel);
        on_both_backends(|backend| {
            Box::pin(async move {
                let addr = start_server(ServerLimits::default());
                let client = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
                for (path, layout) in [("copy", COPIED), ("cached", COPIED), ("sendfile", SENT)] {
                    let cached = path == "cached";
                    // A fresh file per attempt: now and then an evicted range reads as resident
                    // all the same (the page cache is the kernel's; seen in CI). That attempt
                    // proves nothing either way and is run again; three in a row fail the test.
                    let mut attempt = 0;
                    let (file, probe, cold) = loop {
                        attempt += 1;
                        let file = TestFile::new(&format!("exact-{backend}-{old_kernel}-{path}-{attempt}"), 2 * 1024 * 1024);
                        assert_eq!(file_body::worth_copying(&segments_of(&file, layout)), path != "sendfile");
                        if !file.evict() {
                            return;
                        }
                        // What the kernel still held of the range to read once eviction was
                        // accepted: printed when the range reads as resident, to tell a partial
                        // eviction from pages brought back before the read.
                        let (offset, len, times, stride) = layout;
                        let left = cold::cached_pages(&file.file, offset, (times - 1) * stride + len);
                        let probe = Arc::new(test_hook::PoolProbe::default());
                        test_hook::install(probe.clone());
                        let before = cold_read_stats();
                        fetch_with(&client, &file, layout, cached).await;
                        let cold = stats_delta(before);
                        if (cold.cold_bodies, cold.resident_bodies) == (0, 1) && attempt < 3 {
                            println!("{backend} {path} old={old_kernel}: attempt {attempt} read the evicted file as resident (cached pages of the range after eviction: {left:?}); again with a new file");
                            continue;
                        }
                        break (file, probe, cold);
                    };
                    assert_eq!((cold.cold_bodies, cold.resident_bodies), (1, 0), "{backend} {path} old={old_kernel}: {cold:?}");
                    assert!(cold.cold_bytes > 0 && cold.cold_bytes <= layout.1 * layout.2, "{cold:?}");
                    assert_eq!(probe.started.load(std::sync::atomic::Ordering::SeqCst), 1);
                    if path == "sendfile" {
                        // The warm-up left the segments in the page cache.
                        let (offset, len, _, stride) = layout;
                        assert!(cold::resident(&file.file, offset, len) && cold::resident(&file.file, offset + stride, len));
                    }
                    let before = cold_read_stats();
                    fetch_with(&client, &file, layout, cached).await;
                    let hot = stats_delta(before);
                    assert_eq!((hot.cold_bodies, hot.resident_bodies), (0, 1), "{backend} {path} hot: {hot:?}");
                    assert_eq!(probe.started.load(std::sync::atomic::Ordering::SeqCst), 1, "a resident body went to the pool");
                }
            })
        });
    }
    test_hook::pretend_old_kernel(false);
}

fn segments_of(file: &TestFile, (offset, len, times, stride): (u64, u64, u64, u64)) -> Vec<FileSegment> {
    let shared = Arc::new(file.file.try_clone().unwrap());
    (0..times).map(|i| FileSegment { file: shared.clone(), offset: offset + i * stride, len: len as u32, settled_end: 0 }).collect()
}

/// A freshly written file is in the page cache: both paths serve it on the thread, the pool
/// never runs.
#[test]
fn resident_bodies_never_use_the_pool() {
    on_both_backends(|backend| {
        Box::pin(async move {
            let addr = start_server(ServerLimits::default());
            let client = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
            let file = TestFile::new(&format!("hot-{backend}"), 2 * 1024 * 1024);
            let probe = Arc::new(test_hook::PoolProbe::default());
            test_hook::install(probe.clone());
            let before = cold_read_stats();
            for (layout, cached) in [(COPIED, false), (SENT, false), (COPIED, true), (COPIED, true), (COPIED, false)] {
                fetch_with(&client, &file, layout, cached).await;
            }
            let stats = stats_delta(before);
            assert_eq!((stats.resident_bodies, stats.cold_bodies, stats.cold_bytes), (5, 0, 0), "{backend}: {stats:?}");
            assert_eq!(probe.started.load(std::sync::atomic::Ordering::SeqCst), 0);
        })
    });
}

/// With a limit of one cold read per thread and three connections asking for cold bodies at
/// once (a slow disk: each pool read takes 200 ms), the pool never runs two at once; the other
/// two wait for the slot, and all three arrive exact. The bodies are made cold by the test hook,
/// not by eviction: what is under test starts once a read is found cold (detection has tests of
/// its own above and below), and the kernel now and then leaves an evicted range cached.
#[test]
fn cold_reads_in_flight_are_bounded_per_thread() {
    on_both_backends(|backend| {
        Box::pin(async move {
            let limits = ServerLimits { conn: ConnLimits { max_cold_reads_in_flight: 1, ..ConnLimits::default() }, ..ServerLimits::default() };
            let addr = start_server(limits);
            let files = [0, 1, 2].map(|i| TestFile::new(&format!("bound-{backend}-{i}"), 4 * 1024 * 1024));
            let probe = Arc::new(test_hook::PoolProbe { delay: Duration::from_millis(200), ..Default::default() });
            test_hook::install(probe.clone());
            test_hook::pretend_cold(true);
            let before = cold_read_stats();
            let layouts = [COPIED, (1024 * 1024 + 7, 1000, 64, 3000), (2 * 1024 * 1024, 512 * 1024, 2, 700 * 1024)];
            let started = Instant::now();
            let fetches = layouts.iter().zip(&files).map(|(&layout, file)| async move {
                let client = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
                fetch(&client, file, layout).await;
            });
            futures_util::future::join_all(fetches).await;
            let elapsed = started.elapsed();
            test_hook::pretend_cold(false);
            let stats = stats_delta(before);
            let max_running = probe.max_running.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(probe.started.load(std::sync::atomic::Ordering::SeqCst), 3, "{stats:?}");
            assert_eq!(max_running, 1, "{backend}: {max_running} cold reads ran at once");
            assert_eq!((stats.resident_bodies, stats.cold_bodies, stats.waited_bodies, stats.max_in_flight, stats.in_flight), (0, 3, 2, 1, 0), "{backend}: {stats:?}");
            assert!(elapsed >= Duration::from_millis(600), "three 200 ms reads one at a time took {elapsed:?}");
        })
    });
}

/// While a cold read is in flight (a slow disk: the pool read takes 3 s), the thread keeps
/// serving: another connection's pings are answered within milliseconds, and the cold body
/// still arrives exact. Cold by the test hook, as in the test above.
#[test]
fn the_thread_keeps_serving_while_a_cold_read_is_in_flight() {
    on_both_backends(|backend| {
        Box::pin(async move {
            let addr = start_server(ServerLimits::default());
            let file = TestFile::new(&format!("ping-{backend}"), 2 * 1024 * 1024);
            for (path, layout) in [("sendfile", (0, 1024 * 1024, 1, 0)), ("copy", COPIED)] {
                test_hook::install(Arc::new(test_hook::PoolProbe { delay: Duration::from_secs(3), ..Default::default() }));
                test_hook::pretend_cold(true);
                let puller = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
                let pinger = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
                let started = Instant::now();
                let cold = async {
                    fetch(&puller, &file, layout).await;
                    started.elapsed()
                };
                let pings = async {
                    // Ping only once the cold read is in the pool, and check it still is after
                    // each answer: every ping below is answered while the disk read is pending.
                    while cold_read_stats().in_flight == 0 {
                        assert!(started.elapsed() < Duration::from_secs(5), "{backend} {path}: the cold read never reached the pool");
                        compio::time::sleep(Duration::from_millis(1)).await;
                    }
                    let mut slowest = Duration::ZERO;
                    for i in 0..10 {
                        let sent = Instant::now();
                        let r = pinger.invoke(RemotingCommand::request(FAST).with_body(&b"ping"[..]), Duration::from_secs(5)).await.unwrap();
                        assert_eq!(&r.body[..], b"ping");
                        slowest = slowest.max(sent.elapsed());
                        assert_eq!(cold_read_stats().in_flight, 1, "the cold read ended before ping {i} was answered");
                        compio::time::sleep(Duration::from_millis(20)).await;
                    }
                    (slowest, started.elapsed())
                };
                let (cold_took, (slowest, pings_done)) = futures_util::join!(cold, pings);
                test_hook::pretend_cold(false);
                println!("{backend} {path}: cold body took {cold_took:?}; slowest of 10 pings meanwhile {slowest:?}");
                // Milliseconds on an idle machine. The bound is generous for a loaded 2-core CI
                // box (a 100 ms bound failed once with builds running beside it) and still far
                // below the 3 s the cold read is held in the pool: a blocked shard would answer
                // nothing until then.
                assert!(slowest < Duration::from_millis(500), "{backend} {path}: a ping took {slowest:?} during a cold read");
                assert!(pings_done < cold_took, "the pings did not overlap the cold read");
                assert!(cold_took >= Duration::from_secs(3), "{cold_took:?}");
            }
        })
    });
}

/// The mincore fallback agrees with cachestat on resident and evicted ranges.
#[test]
fn mincore_and_cachestat_agree() {
    let file = TestFile::new("agree", 1024 * 1024);
    let len = file.content.len() as u64;
    assert!(cold::resident(&file.file, 0, len));
    test_hook::pretend_old_kernel(true);
    assert!(cold::resident(&file.file, 5, len - 5), "mincore: fresh file not resident");
    test_hook::pretend_old_kernel(false);
    if !file.evict() {
        return;
    }
    test_hook::pretend_old_kernel(true);
    assert!(!cold::resident(&file.file, 0, len), "mincore: evicted file resident");
    assert!(cold::resident(&file.file, 0, 0), "an empty range is trivially resident");
    test_hook::pretend_old_kernel(false);
}

/// Measurement, not a check (run with `--ignored --nocapture`, release build for real numbers):
/// a 1 MiB body served hot and cold on each path, the server on a thread of its own. Reports
/// per body the wall time at the client, the server thread's CPU time, and the slowest answer
/// to pings sent every millisecond on another connection meanwhile; and, for comparison, how
/// long a plain `pread` of the evicted MiB blocks its thread (what the shard stalled for before
/// cold reads went to the pool).
#[test]
#[ignore]
fn measure_cold_versus_hot_1mib() {
    const ROUNDS: usize = 20;
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (runtime, backend) = crate::backend::runtime_from_env().unwrap();
        runtime.block_on(async move {
            addr_tx.send((start_server(ServerLimits::default()), backend)).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let (addr, backend) = addr_rx.recv().unwrap();
    let (runtime, _) = crate::backend::runtime_from_env().unwrap();
    runtime.block_on(async move {
        let file = TestFile::new("measure", 8 * 1024 * 1024);
        let client = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        let pinger = Client::connect(addr, Duration::from_secs(2)).await.unwrap();
        let server_stats = || async {
            let r = client.invoke(RemotingCommand::request(THREAD_STATS), Duration::from_secs(5)).await.unwrap();
            let get = |k: &str| r.ext(k).unwrap().parse::<u64>().unwrap();
            (get("cpuNs"), get("cold"))
        };
        println!("backend {backend}, {ROUNDS} rounds of a 1 MiB body; median / max");
        for (path, layout) in [("copy (64 x 16 KiB)", (0u64, 16 * 1024u64, 64u64, 16 * 1024u64)), ("sendfile (1 x 1 MiB)", (0, 1024 * 1024, 1, 0))] {
            for cold in [false, true] {
                let (mut walls, mut cpus, mut pings) = (Vec::new(), Vec::new(), Vec::new());
                let mut cold_seen = 0;
                for round in 0..ROUNDS {
                    // A different MiB each round, so that hot rounds do not share pages with cold ones.
                    let layout = (layout.0 + (round % 8) as u64 * 1024 * 1024, layout.1, layout.2, layout.3);
                    if cold {
                        assert!(file.evict(), "cannot evict on this file system");
                    } else {
                        fetch(&client, &file, layout).await;
                    }
                    let (cpu_before, cold_before) = server_stats().await;
                    let started = Instant::now();
                    let done = std::cell::Cell::new(false);
                    let body = async {
                        fetch(&client, &file, layout).await;
                        done.set(true);
                        started.elapsed()
                    };
                    let ping = async {
                        let mut slowest = Duration::ZERO;
                        while !done.get() {
                            let sent = Instant::now();
                            pinger.invoke(RemotingCommand::request(FAST), Duration::from_secs(5)).await.unwrap();
                            slowest = slowest.max(sent.elapsed());
                            compio::time::sleep(Duration::from_millis(1)).await;
                        }
                        slowest
                    };
                    let (wall, slowest) = futures_util::join!(body, ping);
                    let (cpu_after, cold_after) = server_stats().await;
                    cold_seen += cold_after - cold_before;
                    walls.push(wall);
                    cpus.push(Duration::from_nanos(cpu_after - cpu_before));
                    pings.push(slowest);
                }
                let summary = |v: &mut Vec<Duration>| {
                    v.sort();
                    format!("{:>9.1?} / {:>9.1?}", v[v.len() / 2], v[v.len() - 1])
                };
                println!(
                    "{path:<22} {:<4} wall {}  server CPU {}  slowest ping {}  (cold bodies seen: {cold_seen})",
                    if cold { "cold" } else { "hot" },
                    summary(&mut walls),
                    summary(&mut cpus),
                    summary(&mut pings)
                );
            }
        }
        let mut blocked = Vec::new();
        let mut buf = vec![0u8; 1024 * 1024];
        for round in 0..ROUNDS {
            assert!(file.evict());
            let started = Instant::now();
            std::os::unix::fs::FileExt::read_exact_at(&file.file, &mut buf, (round % 8) as u64 * 1024 * 1024).unwrap();
            blocked.push(started.elapsed());
        }
        blocked.sort();
        println!("plain pread of an evicted MiB blocks its thread for {:?} (median) / {:?} (max)", blocked[ROUNDS / 2], blocked[ROUNDS - 1]);
        // What the residency check adds per sendfile segment (on resident data).
        std::os::unix::fs::FileExt::read_exact_at(&file.file, &mut buf, 0).unwrap();
        for old_kernel in [false, true] {
            test_hook::pretend_old_kernel(old_kernel);
            for len in [16 * 1024u64, 1024 * 1024] {
                let started = Instant::now();
                for _ in 0..10_000 {
                    assert!(cold::resident(&file.file, 0, len));
                }
                let check = if old_kernel { "mmap+mincore+munmap" } else { "cachestat" };
                println!("residency check ({check}) of a resident {len}-byte range: {:?}", started.elapsed() / 10_000);
            }
        }
        test_hook::pretend_old_kernel(false);
    });
}

/// Every slot of a connection's write queue is as large as the largest `Outgoing`, and the
/// queue's slots are allocated (and touched) when the connection opens: at the broker's 64
/// frames, 8 bytes more per variant is 0.5 KiB more per idle connection (target: ≤ 16 KiB).
#[test]
fn write_queue_slots_stay_small() {
    let size = std::mem::size_of::<super::Outgoing>();
    assert!(size <= 56, "Outgoing is {size} bytes: box the large variant");
}

#[test]
fn reads_ask_for_more_room_while_they_fill_and_less_when_they_do_not() {
    let (idle, burst) = (4096, 64 * 1024);
    // Full reads double the room, up to the burst bound.
    let mut ahead = idle;
    for expected in [8192, 16_384, 32_768, 65_536, 65_536] {
        ahead = next_read_ahead(ahead, ahead, ahead, idle, burst);
        assert_eq!(ahead, expected);
    }
    // A read at least half full keeps it; less than half halves it, down to the idle size.
    assert_eq!(next_read_ahead(ahead, 40_000, 65_536, idle, burst), 65_536);
    assert_eq!(next_read_ahead(ahead, 10_000, 65_536, idle, burst), 32_768);
    assert_eq!(next_read_ahead(idle, 10, idle, idle, burst), idle);
    // Full means the room there really was (a reservation may give more than asked for).
    assert_eq!(next_read_ahead(idle, 9000, 9000, idle, burst), idle * 2);
    assert_eq!(next_read_ahead(idle, 5000, 9000, idle, burst), idle);
    // A burst bound below the idle size never shrinks reads below the idle size.
    assert_eq!(next_read_ahead(idle, idle, idle, idle, 1024), idle);
}
