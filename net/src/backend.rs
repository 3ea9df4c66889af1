//! The I/O backend: io_uring or epoll, chosen once per process by a start-up probe, or forced.
//!
//! Contract: every thread that does I/O runs one compio runtime built by [`build_runtime`]
//! with the process's [`IoBackend`]. `Auto` lets compio probe io_uring (it creates a tiny ring
//! and checks the opcodes it needs) and fall back to its epoll ("poll") driver when the probe
//! or `io_uring_setup` fails — ENOSYS on a 3.10 kernel, EPERM under Docker's default seccomp
//! profile, or io_uring disabled by sysctl. Forcing `io_uring` fails loudly instead of falling
//! back. The choice is logged at start by the binaries.
//!
//! The choice comes from, in order: the `FERROMQ_IO_BACKEND` environment variable
//! (`auto | io_uring | epoll`), then the `io.backend` config key, then `auto`.

use std::fmt;
use std::io;
use std::str::FromStr;

use compio::driver::{DriverType, ProactorBuilder};
use compio::runtime::{Runtime, RuntimeBuilder};

/// Name of the environment variable that forces the backend for every binary and test.
pub const BACKEND_ENV: &str = "FERROMQ_IO_BACKEND";

/// The requested backend (`io.backend` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoBackend {
    /// Probe io_uring; use epoll if it is unavailable.
    #[default]
    Auto,
    IoUring,
    Epoll,
}

impl FromStr for IoBackend {
    type Err = String;

    fn from_str(text: &str) -> Result<IoBackend, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(IoBackend::Auto),
            "io_uring" | "iouring" | "uring" => Ok(IoBackend::IoUring),
            "epoll" | "poll" => Ok(IoBackend::Epoll),
            other => Err(format!("unknown I/O backend {other:?}: expected auto, io_uring or epoll")),
        }
    }
}

impl fmt::Display for IoBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoBackend::Auto => "auto",
            IoBackend::IoUring => "io_uring",
            IoBackend::Epoll => "epoll",
        })
    }
}

impl IoBackend {
    /// The backend requested by `FERROMQ_IO_BACKEND` if set, else `configured`.
    pub fn resolve(configured: IoBackend) -> Result<IoBackend, String> {
        match std::env::var(BACKEND_ENV) {
            Ok(text) if !text.trim().is_empty() => text.parse().map_err(|e| format!("{BACKEND_ENV}: {e}")),
            _ => Ok(configured),
        }
    }
}

/// The backend a runtime actually runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveBackend {
    IoUring,
    Epoll,
}

impl fmt::Display for ActiveBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActiveBackend::IoUring => "io_uring",
            ActiveBackend::Epoll => "epoll",
        })
    }
}

/// Builds a single-threaded compio runtime on `backend` for the calling thread.
pub fn build_runtime(backend: IoBackend) -> io::Result<(Runtime, ActiveBackend)> {
    build_runtime_on(backend, None)
}

/// Slots of a runtime's queue of wake-ups from other threads (compio's `sync_queue_size`,
/// default 64). A wake-up that finds the queue full spins in `sched_yield` until the target
/// thread drains it: with 64 slots a broker answering 256 sends in flight across two shards
/// spent 6 % of its CPU in `sched_yield` (perf, 2026-12-02). Each slot is a task id; 16384 slots
/// (about 256 KiB per thread) exceed what the broker's cross-shard limits
/// (`crossShardQueueDepth` + `crossShardMaxRunningJobs`, each wake-up a reply or a job) let
/// wait at once with the defaults.
pub const REMOTE_WAKE_QUEUE_SLOTS: usize = 16_384;

/// Like [`build_runtime`], and pins the calling thread to `cpu` when given (a shard's core).
pub fn build_runtime_on(backend: IoBackend, cpu: Option<usize>) -> io::Result<(Runtime, ActiveBackend)> {
    let mut proactor = ProactorBuilder::new();
    match backend {
        IoBackend::Auto => {}
        IoBackend::IoUring => {
            proactor.driver_type(DriverType::IoUring);
        }
        IoBackend::Epoll => {
            proactor.driver_type(DriverType::Poll);
        }
    }
    let mut builder = RuntimeBuilder::new();
    builder.with_proactor(proactor);
    builder.sync_queue_size(REMOTE_WAKE_QUEUE_SLOTS);
    if let Some(cpu) = cpu {
        builder.thread_affinity(std::collections::HashSet::from([cpu]));
    }
    let runtime = builder.build().map_err(|e| {
        io::Error::new(e.kind(), format!("cannot start the {backend} I/O backend: {e}"))
    })?;
    let active = if runtime.driver_type().is_iouring() { ActiveBackend::IoUring } else { ActiveBackend::Epoll };
    Ok((runtime, active))
}

/// A runtime on the backend `FERROMQ_IO_BACKEND` asks for (`auto` when unset): what tests and
/// tools use so that one environment variable moves the whole suite between backends.
pub fn runtime_from_env() -> io::Result<(Runtime, ActiveBackend)> {
    let backend = IoBackend::resolve(IoBackend::Auto)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    build_runtime(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!("io_uring".parse(), Ok(IoBackend::IoUring));
        assert_eq!("EPOLL".parse(), Ok(IoBackend::Epoll));
        assert_eq!(" auto ".parse(), Ok(IoBackend::Auto));
        assert!("kqueue".parse::<IoBackend>().is_err());
    }

    #[test]
    fn forced_epoll_runs_on_epoll() {
        let (runtime, active) = build_runtime(IoBackend::Epoll).unwrap();
        assert_eq!(active, ActiveBackend::Epoll);
        assert_eq!(runtime.block_on(async { 1 + 1 }), 2);
    }
}
