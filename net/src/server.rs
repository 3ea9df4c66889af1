//! A TCP listener serving one [`RequestHandler`] on every accepted connection.
//!
//! Connections beyond [`ServerLimits::max_connections`] are closed at once (and logged), so a
//! connection storm cannot exhaust memory. The accept loop stops when `shutdown` resolves;
//! compio cancels the in-flight accept and keeps its resources alive until the kernel is done
//! with them.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use compio::net::TcpListener;
use futures_util::FutureExt;
use tracing::{info, warn};

use crate::conn::{ConnLimits, Connection, RequestHandler, Response};
use crate::tls::TlsAcceptor;

/// Limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub conn: ConnLimits,
    /// Open connections served at once by this listener.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits { conn: ConnLimits::default(), max_connections: 10_000 }
    }
}

/// The open-file limits of this process before and after [`raise_open_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    pub soft_before: u64,
    pub soft_now: u64,
    pub hard: u64,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, as RocketMQ's start scripts do with
/// `ulimit -n`: every connection, commit-log segment and consume-queue file holds a descriptor,
/// and distributions start services with a soft limit of 1,024 under a hard one of 500,000 or
/// more. Called once by each server binary at start, which logs the result.
pub fn raise_open_file_limit() -> io::Result<OpenFileLimit> {
    let mut limit = open_file_limit()?;
    let soft_before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit reads the struct it is given; raising the soft limit up to the hard
        // one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok(OpenFileLimit { soft_before, soft_now: limit.rlim_cur, hard: limit.rlim_max })
}

/// This process's RLIMIT_NOFILE (soft and hard).
pub fn open_file_limit() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` into the struct it is given, which lives here.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// [`raise_open_file_limit`], logged: the limits at `info`, a failure at `warn` (the server
/// still starts, with the limit it was given).
pub fn raise_and_log_open_file_limit() {
    match raise_open_file_limit() {
        Ok(l) => info!(soft_before = l.soft_before, soft = l.soft_now, hard = l.hard, "open-file limit (RLIMIT_NOFILE)"),
        Err(e) => warn!("cannot raise the open-file limit: {e}"),
    }
}

/// Binds a listener on `addr` (SO_REUSEADDR, so a restarted server can rebind at once).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Binds a listening socket with SO_REUSEPORT (and SO_REUSEADDR), one per shard on the same
/// address: the kernel spreads incoming connections over the shards' sockets.
pub fn bind_reuse_port(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Wraps a handler so that the server can count open connections.
struct Counted<H> {
    handler: Rc<H>,
    open: Rc<Cell<usize>>,
}

impl<H: RequestHandler> RequestHandler for Counted<H> {
    fn handle(
        &self,
        conn: &Connection,
        request: crate::RemotingCommand,
    ) -> impl std::future::Future<Output = Option<Response>> {
        self.handler.handle(conn, request)
    }

    fn on_close(&self, conn: &Connection) {
        self.open.set(self.open.get().saturating_sub(1));
        self.handler.on_close(conn);
    }

    fn may_answer_large(&self, request: &crate::RemotingCommand) -> bool {
        self.handler.may_answer_large(request)
    }
}

/// First and longest pause after a failed `accept`, and how often a run of failures is logged.
const ACCEPT_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(10);
const ACCEPT_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(1);
const ACCEPT_FAILURE_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// A run of failed `accept`s (EMFILE, ENFILE, ENOBUFS: the process or the machine is out of
/// something another part of it will give back): retried with a growing pause, logged when it
/// starts, every [`ACCEPT_FAILURE_LOG_EVERY`] while it lasts, and when it ends, not once per
/// try (a busy loop of failures logged ~300 lines a second).
#[derive(Default)]
struct AcceptFailures {
    failed: u64,
    pause: std::time::Duration,
    logged_at: Option<std::time::Instant>,
}

impl AcceptFailures {
    /// Records a failure and returns how long to pause before the next try.
    fn failed(&mut self, error: &io::Error) -> std::time::Duration {
        self.failed += 1;
        self.pause = if self.failed == 1 { ACCEPT_RETRY_FIRST } else { (self.pause * 2).min(ACCEPT_RETRY_MAX) };
        if self.logged_at.is_none_or(|at| at.elapsed() >= ACCEPT_FAILURE_LOG_EVERY) {
            warn!(failures = self.failed, retry_in = ?self.pause, "accept failed: {error}; serving the connections already open");
            self.logged_at = Some(std::time::Instant::now());
        }
        self.pause
    }

    fn succeeded(&mut self) {
        if self.failed > 0 {
            info!(failures = self.failed, "accept works again");
            *self = AcceptFailures::default();
        }
    }
}

/// Accepts connections on `listener` and serves `handler` on each until `shutdown` resolves.
pub async fn serve<H: RequestHandler>(
    listener: TcpListener,
    handler: Rc<H>,
    limits: ServerLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    serve_with_tls(listener, handler, limits, None, shutdown).await
}

/// [`serve`], with TLS when `tls` is given: each accepted connection is classified by its first
/// byte (without consuming it) and handshaken in a task of its own, so a slow or silent peer
/// never holds up the accept loop (it is closed after [`crate::tls::HANDSHAKE_TIMEOUT`]). A
/// plain client in enforcing mode and a failed handshake close that connection (logged at most
/// every few seconds); the connection counts against `max_connections` from its accept.
pub async fn serve_with_tls<H: RequestHandler>(
    listener: TcpListener,
    handler: Rc<H>,
    limits: ServerLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    let open = Rc::new(Cell::new(0usize));
    let counted = Rc::new(Counted { handler, open: open.clone() });
    let mut shutdown = std::pin::pin!(shutdown.fuse());
    let mut failures = AcceptFailures::default();
    loop {
        let accepted = futures_util::select_biased! {
            () = shutdown => {
                info!("listener on {} stopping", listener.local_addr()?);
                return Ok(());
            }
            accepted = listener.accept().fuse() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                failures.succeeded();
                pair
            }
            Err(e) => {
                let pause = failures.failed(&e);
                compio::time::sleep(pause).await;
                continue;
            }
        };
        if open.get() >= limits.max_connections {
            warn!(%peer, limit = limits.max_connections, "refusing connection: too many open");
            drop(stream);
            continue;
        }
        open.set(open.get() + 1);
        let Some(acceptor) = &tls else {
            Connection::spawn(stream, counted.clone(), limits.conn);
            continue;
        };
        let (acceptor, counted, open) = (acceptor.clone(), counted.clone(), open.clone());
        compio::runtime::spawn(async move {
            match acceptor.accept(&stream).await {
                Ok(tls) => {
                    Connection::spawn_with(stream, tls, counted, limits.conn);
                }
                Err(e) => {
                    crate::tls::log_refusal(peer, &e);
                    open.set(open.get().saturating_sub(1));
                }
            }
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_back_off_and_reset() {
        let mut failures = AcceptFailures::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let pauses: Vec<_> = (0..10).map(|_| failures.failed(&emfile)).collect();
        assert_eq!(pauses[0], ACCEPT_RETRY_FIRST);
        assert_eq!(pauses[1], ACCEPT_RETRY_FIRST * 2);
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]), "{pauses:?}");
        assert_eq!(*pauses.last().unwrap(), ACCEPT_RETRY_MAX);
        // Logged once for the whole run (the next line only after ACCEPT_FAILURE_LOG_EVERY).
        let first_log = failures.logged_at.unwrap();
        assert!(first_log.elapsed() < ACCEPT_FAILURE_LOG_EVERY);
        failures.succeeded();
        assert_eq!(failures.failed, 0);
        assert_eq!(failures.failed(&emfile), ACCEPT_RETRY_FIRST);
    }
}
