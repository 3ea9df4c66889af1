//! CPU accounting over a measured window: the broker's CPU per message next to the load
//! generator's own (issue 14: "the suite reports, at every point, the broker's CPU per message
//! next to the load generator's own CPU per message").
//!
//! # Which counter
//!
//! The broker's CPU is the whole process's: every thread, including compio's blocking-pool
//! threads and the io_uring `iou-wrk-*` workers (threads of the broker process that the kernel
//! starts for punted I/O and reaps when they idle), and including threads that exited during
//! the window. Three sources were considered:
//!
//! - **The process CPU-time clock** (`clock_getcpuclockid(pid)` + `clock_gettime`), used here:
//!   the kernel's `thread_group_cputime`, i.e. the runtime of every live thread plus what exited
//!   threads left in the process's signal struct, in nanoseconds. Readable for any process
//!   without privileges on Linux.
//! - `/proc/PID/stat` fields 14 + 15 (`utime` + `stime`): the same sum, but scaled and rounded
//!   to clock ticks (`sysconf(_SC_CLK_TCK)`, 100/s: 10 ms steps, ±10 ms per reading). Recorded
//!   beside the clock as a cross-check (`broker_stat_cpu_s`), and the fallback if the clock
//!   cannot be read.
//! - The sum of `/proc/PID/task/*/schedstat`: nanoseconds too, but only over threads alive at
//!   both ends — an `iou-wrk` worker that ran and exited inside the window is lost. Used only
//!   for the per-thread-name breakdown ([`CpuReport::broker_threads_cpu_s`]), where the part no
//!   live thread accounts for shows as `(exited threads)`.
//!
//! The generator's CPU is this process's own clock (`CLOCK_PROCESS_CPUTIME_ID`, same
//! accounting): every producer and consumer thread, and the few orchestration threads of the
//! suite (which mostly sleep). Machine-wide busy CPUs come from `/proc/stat`, so a report can
//! tell "the broker needs more CPU" from "the machine was full" (the two cores are shared).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// `sysconf(_SC_CLK_TCK)`: the unit of `/proc/*/stat` CPU times (100 where unknown).
pub fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf only reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// `utime + stime` (clock ticks) from the text of `/proc/PID/stat` or `/proc/PID/task/TID/stat`.
///
/// Field 2, the command name, is in parentheses and may itself hold spaces and parentheses, so
/// fields are counted after the *last* `)`: field 3 (state) is the first one there, utime
/// (field 14) the 12th, stime (field 15) the 13th.
pub fn parse_stat_cpu_ticks(stat: &str) -> Result<u64, String> {
    let close = stat.rfind(')').ok_or_else(|| format!("no command name in stat line {stat:?}"))?;
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> Result<u64, String> {
        let raw = fields.get(n - 3).ok_or_else(|| format!("stat line has no field {n}: {stat:?}"))?;
        raw.parse::<u64>().map_err(|e| format!("stat field {n} {raw:?}: {e}"))
    };
    Ok(field(14)? + field(15)?)
}

/// `(busy, total)` clock ticks of all CPUs from the text of `/proc/stat` (its `cpu ` line:
/// user nice system idle iowait irq softirq steal [guest guest_nice]). Busy is everything but
/// idle and iowait; guest time is already inside user and nice, so it is not added again.
pub fn parse_machine_ticks(proc_stat: &str) -> Result<(u64, u64), String> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu ")).ok_or("no cpu line in /proc/stat")?;
    let values: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|v| v.parse::<u64>().map_err(|e| format!("/proc/stat {v:?}: {e}"))).collect::<Result<_, _>>()?;
    if values.len() < 5 {
        return Err(format!("short cpu line in /proc/stat: {line:?}"));
    }
    let total: u64 = values.iter().sum();
    let idle = values[3] + values[4];
    Ok((total - idle, total))
}

/// Nanoseconds of CPU from a thread's `schedstat` text (first field: time on CPU).
pub fn parse_schedstat_ns(schedstat: &str) -> Result<u64, String> {
    let first = schedstat.split_whitespace().next().ok_or("empty schedstat")?;
    first.parse::<u64>().map_err(|e| format!("schedstat {first:?}: {e}"))
}

/// The name a thread's CPU is grouped under: its `comm`, with the per-worker number of the
/// io_uring workers dropped (`iou-wrk-4711` → `iou-wrk`, `iou-sqp-4711` → `iou-sqp`).
pub fn thread_group_name(comm: &str) -> String {
    let comm = comm.trim();
    for prefix in ["iou-wrk", "iou-sqp"] {
        if comm.starts_with(prefix) {
            return prefix.to_owned();
        }
    }
    comm.to_owned()
}

/// CPU nanoseconds of process `pid`, all threads (live and exited), by its CPU-time clock.
pub fn process_cpu_ns(pid: u32) -> Result<u64, String> {
    let pid_t = libc::pid_t::try_from(pid).map_err(|e| e.to_string())?;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: plain out-parameter calls; `clock` and `ts` are owned locals.
    let ts = unsafe {
        let rc = libc::clock_getcpuclockid(pid_t, &mut clock);
        if rc != 0 {
            return Err(format!("clock_getcpuclockid({pid}): {}", std::io::Error::from_raw_os_error(rc)));
        }
        let mut ts: libc::timespec = std::mem::zeroed();
        if libc::clock_gettime(clock, &mut ts) != 0 {
            return Err(format!("clock_gettime(cpu clock of {pid}): {}", std::io::Error::last_os_error()));
        }
        ts
    };
    Ok(timespec_ns(&ts))
}

/// CPU nanoseconds of this process (all threads).
pub fn self_cpu_ns() -> u64 {
    // SAFETY: `ts` is an owned local the call fills.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts);
        ts
    };
    timespec_ns(&ts)
}

/// CPU nanoseconds of the calling thread.
pub fn thread_cpu_ns() -> u64 {
    // SAFETY: `ts` is an owned local the call fills.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts
    };
    timespec_ns(&ts)
}

fn timespec_ns(ts: &libc::timespec) -> u64 {
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// `utime + stime` of process `pid` in clock ticks (`/proc/PID/stat`).
pub fn process_stat_ticks(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    parse_stat_cpu_ticks(&std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?)
}

/// CPU nanoseconds of each live thread of `pid`: tid → (group name, ns).
fn thread_cpu(pid: u32) -> BTreeMap<u32, (String, u64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let path = entry.path();
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| parse_schedstat_ns(&s).ok())
            .or_else(|| {
                let ticks = parse_stat_cpu_ticks(&std::fs::read_to_string(path.join("stat")).ok()?).ok()?;
                Some(ticks * 1_000_000_000 / clock_ticks_per_s())
            });
        let (Ok(comm), Some(ns)) = (std::fs::read_to_string(path.join("comm")), ns) else { continue };
        out.insert(tid, (thread_group_name(&comm), ns));
    }
    out
}

fn machine_ticks() -> Option<(u64, u64)> {
    parse_machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?).ok()
}

/// The counters at one instant.
#[derive(Debug, Clone)]
struct Snapshot {
    at: Instant,
    generator_ns: u64,
    broker_ns: Option<u64>,
    broker_ticks: Option<u64>,
    broker_threads: BTreeMap<u32, (String, u64)>,
    machine: Option<(u64, u64)>,
}

impl Snapshot {
    fn take(pid: Option<u32>) -> Snapshot {
        // Broker first and the generator's own clock last, tightly around `at`.
        let broker_threads = pid.map(thread_cpu).unwrap_or_default();
        let broker_ticks = pid.and_then(|p| process_stat_ticks(p).ok());
        let broker_ns = pid.and_then(|p| process_cpu_ns(p).ok());
        let machine = machine_ticks();
        Snapshot { at: Instant::now(), generator_ns: self_cpu_ns(), broker_ns, broker_ticks, broker_threads, machine }
    }
}

/// A measured window: [`CpuWindow::start`] at its beginning, [`CpuWindow::finish`] at its end.
#[derive(Debug, Clone)]
pub struct CpuWindow {
    pid: Option<u32>,
    start: Snapshot,
}

impl CpuWindow {
    /// Starts a window; `broker_pid` is `None` when the broker's process is unknown (another
    /// machine, a Java broker started elsewhere): then only the generator side is reported.
    pub fn start(broker_pid: Option<u32>) -> CpuWindow {
        CpuWindow { pid: broker_pid, start: Snapshot::take(broker_pid) }
    }

    /// Ends the window; `messages` are what it measured (acknowledged sends' messages,
    /// consumed records).
    pub fn finish(&self, messages: u64) -> CpuReport {
        let end = Snapshot::take(self.pid);
        CpuReport::between(self.pid, &self.start, &end, messages)
    }
}

/// CPU spent over a window, and per message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuReport {
    pub window_s: f64,
    /// Messages the window measured.
    pub messages: u64,
    pub broker_pid: Option<u32>,
    /// Broker CPU seconds: the process CPU-time clock (all threads, exited ones included);
    /// the `/proc/PID/stat` figure where the clock could not be read.
    pub broker_cpu_s: Option<f64>,
    /// The same from `/proc/PID/stat` utime + stime (clock ticks: ±10 ms per reading).
    pub broker_stat_cpu_s: Option<f64>,
    /// Broker CPU seconds by thread name (live threads' schedstat); `(exited threads)` is the
    /// rest of `broker_cpu_s` (threads that ended inside the window, e.g. io_uring workers).
    pub broker_threads_cpu_s: BTreeMap<String, f64>,
    /// This process's CPU seconds (the load generator).
    pub generator_cpu_s: f64,
    /// Busy CPUs of the whole machine over the window (`/proc/stat`; everything but idle and
    /// iowait), whoever used them.
    pub machine_busy_cpus: Option<f64>,
    /// Broker CPU µs per message.
    pub broker_us_per_message: Option<f64>,
    /// Generator CPU µs per message.
    pub generator_us_per_message: Option<f64>,
    /// `broker_us_per_message ÷ generator_us_per_message`.
    pub broker_per_generator: Option<f64>,
}

/// Name of the breakdown entry for CPU no live thread accounts for.
pub const EXITED_THREADS: &str = "(exited threads)";

impl CpuReport {
    fn between(pid: Option<u32>, start: &Snapshot, end: &Snapshot, messages: u64) -> CpuReport {
        let window_s = (end.at - start.at).as_secs_f64();
        let secs = |ns: u64| ns as f64 / 1e9;
        let tick_s = 1.0 / clock_ticks_per_s() as f64;
        let broker_stat_cpu_s = start.broker_ticks.zip(end.broker_ticks).map(|(a, b)| b.saturating_sub(a) as f64 * tick_s);
        let broker_cpu_s = start.broker_ns.zip(end.broker_ns).map(|(a, b)| secs(b.saturating_sub(a))).or(broker_stat_cpu_s);
        let mut threads: BTreeMap<String, f64> = BTreeMap::new();
        if broker_cpu_s.is_some() {
            for (tid, (name, ns)) in &end.broker_threads {
                // A thread born inside the window spent all its time in it.
                let before = start.broker_threads.get(tid).map_or(0, |(_, ns)| *ns);
                *threads.entry(name.clone()).or_default() += secs(ns.saturating_sub(before));
            }
            let live: f64 = threads.values().sum();
            if let Some(total) = broker_cpu_s {
                threads.insert(EXITED_THREADS.to_owned(), (total - live).max(0.0));
            }
        }
        let machine_busy_cpus = start.machine.zip(end.machine).and_then(|((b0, t0), (b1, t1))| {
            let total = t1.saturating_sub(t0);
            // Ticks of all CPUs over the window ÷ ticks of one CPU over it = CPUs.
            (total > 0 && window_s > 0.0).then(|| b1.saturating_sub(b0) as f64 * tick_s / window_s)
        });
        let generator_cpu_s = secs(end.generator_ns.saturating_sub(start.generator_ns));
        let per = |cpu_s: f64| (messages > 0).then(|| cpu_s * 1e6 / messages as f64);
        let broker_us_per_message = broker_cpu_s.and_then(per);
        let generator_us_per_message = per(generator_cpu_s);
        let broker_per_generator = broker_us_per_message.zip(generator_us_per_message).and_then(|(b, g)| (g > 0.0).then(|| b / g));
        CpuReport {
            window_s,
            messages,
            broker_pid: pid,
            broker_cpu_s,
            broker_stat_cpu_s,
            broker_threads_cpu_s: threads,
            generator_cpu_s,
            machine_busy_cpus,
            broker_us_per_message,
            generator_us_per_message,
            broker_per_generator,
        }
    }

    /// Broker CPUs busy on average (CPU seconds ÷ window seconds).
    pub fn broker_cpus(&self) -> Option<f64> {
        self.broker_cpu_s.filter(|_| self.window_s > 0.0).map(|s| s / self.window_s)
    }

    /// Generator CPUs busy on average.
    pub fn generator_cpus(&self) -> f64 {
        if self.window_s > 0.0 { self.generator_cpu_s / self.window_s } else { 0.0 }
    }

    /// Busy CPUs of the machine that neither the broker nor the generator used (the name server,
    /// kernel threads, other work on a shared machine); `None` without the machine figure or
    /// the broker's.
    pub fn other_cpus(&self) -> Option<f64> {
        Some((self.machine_busy_cpus? - self.broker_cpus()? - self.generator_cpus()).max(0.0))
    }

    /// One line for the modes' printed summaries.
    pub fn line(&self) -> String {
        let per = |v: Option<f64>| v.map_or("— µs/msg (no messages)".to_owned(), |v| format!("{v:.2} µs/msg"));
        let generator = format!("generator {} ({:.2} CPUs)", per(self.generator_us_per_message), self.generator_cpus());
        let machine = match (self.machine_busy_cpus, self.other_cpus()) {
            (Some(m), Some(o)) => format!("; machine {m:.2} CPUs busy, {o:.2} of them by others"),
            (Some(m), None) => format!("; machine {m:.2} CPUs busy"),
            _ => String::new(),
        };
        match self.broker_cpus() {
            Some(cpus) => format!(
                "cpu: broker {} ({cpus:.2} CPUs), {generator}, broker ÷ generator {}{machine}",
                per(self.broker_us_per_message),
                self.broker_per_generator.map_or("—".to_owned(), |r| format!("{r:.2}"))
            ),
            None => format!("cpu: {generator} (broker not measured: no --pid){machine}"),
        }
    }

    /// The JSON object the modes' summaries carry under `"cpu"`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = value.as_object_mut() {
            obj.insert("broker_cpus".into(), self.broker_cpus().into());
            obj.insert("generator_cpus".into(), self.generator_cpus().into());
            obj.insert("other_cpus".into(), self.other_cpus().into());
        }
        value
    }

    /// Reads the `"cpu"` object of a mode's summary.
    pub fn from_summary(summary: &serde_json::Value) -> Option<CpuReport> {
        serde_json::from_value(summary.get("cpu")?.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line of a broker's /proc/PID/stat (52 fields), with a command name that holds
    /// spaces and parentheses.
    const STAT: &str = "4711 (mq (bro) ker) S 1 4711 4711 0 -1 4194560 2163 0 0 0 1234 567 3 4 20 0 9 0 1000 \
                        1000000 2000 18446744073709551615 1 1 0 0 0 0 0 4096 17408 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn stat_cpu_is_utime_plus_stime_counted_after_the_last_parenthesis() {
        assert_eq!(parse_stat_cpu_ticks(STAT).unwrap(), 1234 + 567);
        // The naive split on spaces would read the command name's pieces as fields.
        assert_eq!(parse_stat_cpu_ticks("1 (a b c d e f g h i j k l m) S 1 1 1 0 -1 0 0 0 0 0 5 6 0 0").unwrap(), 11);
    }

    #[test]
    fn stat_parse_errors_name_the_problem() {
        assert!(parse_stat_cpu_ticks("4711 S 1 2").unwrap_err().contains("no command name"));
        assert!(parse_stat_cpu_ticks("4711 (x) S 1 2 3").unwrap_err().contains("no field 14"));
        assert!(parse_stat_cpu_ticks("4711 (x) S 1 1 1 0 -1 0 0 0 0 0 x 6").unwrap_err().contains("field 14"));
    }

    #[test]
    fn machine_ticks_leave_out_idle_and_iowait() {
        let text = "cpu  100 5 50 1000 20 3 2 1 7 0\ncpu0 50 2 25 500 10 1 1 0 3 0\nintr 1\n";
        // busy = user + nice + system + irq + softirq + steal; guest is inside user already.
        assert_eq!(parse_machine_ticks(text).unwrap(), (100 + 5 + 50 + 3 + 2 + 1, 100 + 5 + 50 + 1000 + 20 + 3 + 2 + 1));
        assert!(parse_machine_ticks("cpu0 1 2 3 4 5\n").is_err());
        assert!(parse_machine_ticks("cpu  1 2 3\n").is_err());
    }

    #[test]
    fn schedstat_and_thread_names() {
        assert_eq!(parse_schedstat_ns("123456789 2000 31\n").unwrap(), 123_456_789);
        assert!(parse_schedstat_ns("").is_err());
        assert_eq!(thread_group_name("iou-wrk-4711\n"), "iou-wrk");
        assert_eq!(thread_group_name("iou-sqp-12"), "iou-sqp");
        assert_eq!(thread_group_name("shard-1\n"), "shard-1");
    }

    /// Spins until the calling thread has used `d` of CPU (not of wall time: the machine may
    /// be busy with other work).
    fn burn(d: std::time::Duration) {
        let until = thread_cpu_ns() + d.as_nanos() as u64;
        let mut x = 0u64;
        while thread_cpu_ns() < until {
            for _ in 0..1000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
    }

    #[test]
    fn the_clock_and_proc_stat_agree_on_this_process() {
        let pid = std::process::id();
        let (ns0, ticks0) = (process_cpu_ns(pid).unwrap(), process_stat_ticks(pid).unwrap());
        burn(std::time::Duration::from_millis(120));
        let (ns1, ticks1) = (process_cpu_ns(pid).unwrap(), process_stat_ticks(pid).unwrap());
        let clock_s = (ns1 - ns0) as f64 / 1e9;
        let stat_s = (ticks1 - ticks0) as f64 / clock_ticks_per_s() as f64;
        assert!(clock_s >= 0.1, "the clock saw {clock_s} s of a 120 ms spin");
        // Two readings, each rounded to a tick (10 ms); other test threads may run meanwhile,
        // and both sources count them.
        assert!((clock_s - stat_s).abs() <= 0.03, "clock {clock_s} s vs /proc/PID/stat {stat_s} s");
    }

    #[test]
    fn a_window_reports_cpu_per_message_for_both_sides() {
        // The "broker" is this process itself: both sides see the same spin.
        let window = CpuWindow::start(Some(std::process::id()));
        // A thread that runs and exits inside the window: the clock keeps its time, the live
        // threads' breakdown cannot.
        std::thread::spawn(|| burn(std::time::Duration::from_millis(60))).join().unwrap();
        burn(std::time::Duration::from_millis(40));
        let report = window.finish(1000);
        let broker = report.broker_cpu_s.unwrap();
        assert!(broker >= 0.09, "{report:?}");
        assert!(report.generator_cpu_s >= 0.09, "{report:?}");
        let us = report.broker_us_per_message.unwrap();
        assert!((us - broker * 1e3).abs() < 1e-6, "{report:?}");
        assert!(report.broker_per_generator.unwrap().is_finite());
        assert!(report.broker_threads_cpu_s[EXITED_THREADS] >= 0.05, "{report:?}");
        let total: f64 = report.broker_threads_cpu_s.values().sum();
        assert!((total - broker).abs() < 0.02, "breakdown {total} vs total {broker}");
        let json = report.to_json();
        assert!(json["broker_cpus"].as_f64().unwrap() > 0.0);
        // The "broker" is this process: nothing is left for others beyond rounding and the
        // other tests running meanwhile.
        assert!(report.other_cpus().unwrap() >= 0.0);
        assert_eq!(CpuReport::from_summary(&serde_json::json!({"cpu": json})).unwrap(), report);
    }

    #[test]
    fn without_a_broker_pid_only_the_generator_is_reported() {
        let window = CpuWindow::start(None);
        burn(std::time::Duration::from_millis(20));
        let report = window.finish(0);
        assert_eq!((report.broker_cpu_s, report.broker_us_per_message, report.generator_us_per_message), (None, None, None));
        assert!(report.broker_threads_cpu_s.is_empty());
        assert!(report.generator_cpu_s > 0.0);
        assert!(report.line().contains("broker not measured"));
        assert!(report.line().contains("no messages"), "{}", report.line());
    }
}
