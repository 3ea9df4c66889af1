//! Test support: a compio runtime on the backend named by `FERROMQ_IO_BACKEND`
//! (`io_uring` | `epoll`; unset = compio's own choice). The net crate will offer a shared helper;
//! until then store tests use this one.

use compio::driver::{DriverType, ProactorBuilder};
use compio::runtime::{Runtime, RuntimeBuilder};

/// Environment variable that forces the I/O backend.
pub const BACKEND_ENV: &str = "FERROMQ_IO_BACKEND";

/// The backend requested by the environment, if any.
pub fn requested_backend() -> Option<DriverType> {
    match std::env::var(BACKEND_ENV).ok()?.as_str() {
        "io_uring" | "iouring" | "uring" => Some(DriverType::IoUring),
        "epoll" | "poll" => Some(DriverType::Poll),
        _ => None,
    }
}

/// Builds a single-threaded compio runtime on the requested backend.
pub fn runtime() -> std::io::Result<Runtime> {
    let mut proactor = ProactorBuilder::new();
    if let Some(t) = requested_backend() {
        proactor.driver_type(t);
    }
    RuntimeBuilder::new().with_proactor(proactor).build()
}

/// Runs a future to completion on a fresh runtime (panics if the runtime cannot be built: tests
/// only).
#[allow(clippy::expect_used)]
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let rt = runtime().expect("build compio runtime");
    rt.block_on(f)
}
