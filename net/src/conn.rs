//! A framed remoting connection, the same for servers and clients (PROTOCOL.md §1.1, §1.6).
//!
//! Each connection runs two tasks on the thread's compio runtime:
//! - the **reader** reads frames into one growing buffer, checking each frame's length against
//!   [`WireLimits`] before reserving room for it; responses complete the matching pending
//!   request by `opaque`; each request runs the [`RequestHandler`] in a task of its own, up to
//!   a per-connection in-flight limit past which requests are answered SYSTEM_BUSY;
//! - the **writer** drains a queue of encoded frames, bounded in frames and in bytes
//!   ([`ConnLimits::write_queue_bytes`]), several per `writev`; a response
//!   whose body lies in files goes out with `sendfile`, or, when its file segments are small
//!   and many, is read into memory and joins the `writev` (see [`COPY_MAX_MEAN_SEGMENT_BYTES`];
//!   `file_body.rs`). File data not in the page cache is read (or, for `sendfile`, warmed) in
//!   compio's blocking pool, at most [`ConnLimits::max_cold_reads_in_flight`] at once per thread,
//!   so a consumer catching up on old data never blocks the thread's other connections; only
//!   the frames queued behind that body on its own connection wait (`cold.rs`). This is the
//!   same on both backends: the pool is compio's whether the driver is io_uring or epoll.
//!
//! A peer that sends requests and does not read the answers cannot make the broker hold their
//! memory: a request keeps its in-flight slot until its response is queued, queued bytes count
//! against the connection's byte budget until the writer takes them, and while the connection
//! is over that budget the reader serves no further request (it stops reading, so TCP pushes
//! back on the peer). What one such connection holds is thus at most the budget plus the
//! responses of its in-flight requests ([`ConnLimits::max_in_flight_requests`]).
//!
//! Because both directions carry requests, a server can call [`Connection::invoke`] on a client
//! connection (e.g. NOTIFY_CONSUMER_IDS_CHANGED) exactly as a client calls its server.
//!
//! A malformed frame closes the connection: its framing can no longer be trusted, and this is
//! what the Java server does. Nothing else is affected. Shard-resident: a `Connection` lives on
//! the thread that accepted or opened it (it is `!Send`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use compio::BufResult;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use futures_channel::oneshot;
use tracing::{debug, info, warn};

use crate::codec::{self, RemotingCommand, WireError, WireLimits};
use crate::codes::{FLAG_ONEWAY, FLAG_RESPONSE, response_code};

mod blocks;
mod cold;
mod file_body;
#[cfg(test)]
mod tests;

pub use blocks::{BlockStats, block_stats};
pub use cold::{ColdReadStats, cold_read_stats};
pub use file_body::{COPY_MAX_BODY_BYTES, COPY_MAX_MEAN_SEGMENT_BYTES, send as send_with_file_body};

/// Per-connection limits. Every buffer and in-flight count on a connection is bounded by one.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub wire: WireLimits,
    /// Requests this side has sent and not yet seen answered; beyond it `invoke` fails fast
    /// with [`RpcError::TooManyPending`] instead of queueing without bound.
    pub max_pending_requests: usize,
    /// Requests from the peer being served at once, each holding its slot until its response
    /// is queued; beyond it two-way requests get SYSTEM_BUSY (§1.7) and one-way requests make
    /// the reader wait for a free slot.
    pub max_in_flight_requests: usize,
    /// Encoded frames queued for the writer; a full queue makes senders wait (backpressure).
    pub write_queue_frames: usize,
    /// Bytes of encoded frames queued for the writer (file bodies count their head only: their
    /// data is not in memory) beyond which the connection serves no further request until the
    /// writer has drained below it. A single frame larger than this still goes through.
    pub write_queue_bytes: usize,
    /// Requests whose answer may be large ([`RequestHandler::may_answer_large`]) served at once;
    /// beyond it the reader waits for one to be queued. With `write_queue_bytes`, bounds a
    /// connection's unsent answers to about `write_queue_bytes` + this × the largest answer.
    pub max_large_answers_in_flight: usize,
    /// A connection that has neither read nor written for this long, with no request of the
    /// peer in flight, is closed (Java's `serverChannelMaxIdleTimeSeconds` /
    /// `clientChannelMaxIdleTimeSeconds`, 120 s; RocketMQ clients heartbeat every 30 s).
    /// `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A frame whose first bytes have arrived must be complete within this, or the connection
    /// is closed: a peer trickling a partial frame would otherwise hold its buffer forever.
    pub partial_frame_timeout: Duration,
    /// Initial read buffer; it grows to the largest frame in flight and shrinks back to this
    /// when it empties, so idle connections stay small.
    pub read_buffer_bytes: usize,
    /// The most one read asks for beyond the frame in progress. A read that fills all it was
    /// given doubles the next one's room, up to this; one that fills less than half halves it,
    /// down to `read_buffer_bytes`. A pipelining peer (64 sends in flight) is then read many
    /// frames per system call instead of two or three. A request's body is a slice of the
    /// buffer it was read into, so the requests in flight hold at most
    /// `max_in_flight_requests` such buffers (their frames' own size where that is larger).
    pub read_burst_bytes: usize,
    /// File bodies whose data is not in the page cache being read in the blocking pool at once,
    /// per thread: all connections of a thread (a shard) share these slots. A cold body beyond
    /// it waits for a slot, holding up only its own connection's writer. Bounds the pool
    /// threads and disk reads one shard can have in flight (and, for copied bodies, the memory:
    /// at most this many × [`COPY_MAX_BODY_BYTES`]), and keeps the thread well below compio's
    /// pool limit (256 threads per runtime), at which compio's submit spins on the calling
    /// thread. A connection's read waits while at least its own limit are taken, so with mixed
    /// limits on one thread the largest one bounds it.
    pub max_cold_reads_in_flight: usize,
    /// Whether each answered two-way request is recorded in this thread's
    /// `rocketmq_rpc_latency` table ([`crate::metrics::record_rpc`]): on when a metrics
    /// endpoint will read it. Off, a request pays nothing for metrics.
    pub record_rpc_latency: bool,
}

impl Default for ConnLimits {
    fn default() -> ConnLimits {
        ConnLimits {
            wire: WireLimits::default(),
            max_pending_requests: 65_536,
            max_in_flight_requests: 1024,
            // Slots are allocated up front (~72 bytes each), so this is per-connection memory;
            // the writer drains up to WRITE_BATCH_FRAMES per writev.
            write_queue_frames: 64,
            // A few large admin answers (GET_ALL_TOPIC_CONFIG over thousands of topics is ~1 MiB)
            // or thousands of small ones; a reading peer never comes near it.
            write_queue_bytes: 4 * 1024 * 1024,
            max_large_answers_in_flight: 4,
            idle_timeout: Some(Duration::from_secs(120)),
            // A 16 MiB frame at 1 MB/s takes 16 s.
            partial_frame_timeout: Duration::from_secs(60),
            read_buffer_bytes: 4096,
            read_burst_bytes: 64 * 1024,
            // Enough to keep an SSD's queue busy for one shard; a few MiB of copy buffers.
            max_cold_reads_in_flight: 16,
            record_rpc_latency: false,
        }
    }
}

/// A part of a file sent as (part of) a frame body: with `sendfile(2)`, the bytes never passing
/// through user space, or copied when the body is small and fragmented.
#[derive(Debug, Clone)]
pub struct FileSegment {
    /// Kept open (shared) until the segment is sent, even if its file is deleted meanwhile.
    pub file: std::sync::Arc<std::fs::File>,
    pub offset: u64,
    pub len: u32,
    /// Position in `file` below which its bytes never change for as long as this `Arc` lives
    /// (written, and never rewritten through it). A copied body's segments below it go through
    /// the thread's block cache (`conn/blocks.rs`); 0 keeps a segment out of it.
    pub settled_end: u64,
}

/// What a [`RequestHandler`] answers: a response the connection encodes, one already encoded,
/// or one whose body lies in files.
#[derive(Debug)]
pub enum Response {
    /// Encoded by the connection, which also sets the response flag.
    Command(RemotingCommand),
    /// A whole encoded frame, length prefix included, already flagged as a response and
    /// carrying the request's `opaque` (see [`codec::ResponseFrame`]); queued as it is.
    Frame(Bytes),
    /// `RemotingCommand` (its `body` ignored, the response flag set by the connection) with a
    /// body made of file segments, sent with `sendfile` or copied (see
    /// [`Connection::send_file_body`]).
    FileBody(RemotingCommand, Vec<FileSegment>),
}

impl From<RemotingCommand> for Response {
    fn from(command: RemotingCommand) -> Response {
        Response::Command(command)
    }
}

/// What the writer sends: an encoded frame, or a frame whose body comes from files.
enum Outgoing {
    Frame(Bytes),
    /// `head` is the length prefix and header; the body is `segments`, in order.
    FileBody { head: Bytes, segments: Vec<FileSegment> },
    /// A body to copy that was found partly cold while a batch was being built; only the
    /// writer makes these, to finish the read where the page cache stopped.
    /// Boxed: it is rare, and every slot of a connection's write queue is as large as the
    /// largest variant (unboxed, 40 more bytes per slot: +2.5 KiB per idle connection).
    ColdCopy { head: Bytes, reader: Box<file_body::BodyReader> },
}

impl Outgoing {
    /// The memory this item holds while queued, as counted against
    /// [`ConnLimits::write_queue_bytes`]: file data is not in memory until the writer reads it.
    fn memory_bytes(&self) -> usize {
        match self {
            Outgoing::Frame(frame) => frame.len(),
            Outgoing::FileBody { head, .. } | Outgoing::ColdCopy { head, .. } => head.len(),
        }
    }
}

/// What a connection's writer shares with its reader and handlers (all on one thread): the
/// bytes queued for it, and when it last wrote.
struct WriteState {
    limit_bytes: usize,
    /// Counted when an item is queued (before waiting for a free slot in the queue, so a
    /// response waiting to be queued counts too), released when the writer takes it.
    queued_bytes: Cell<usize>,
    /// Wakes the reader when the writer drains below `limit_bytes` (see [`Inner::wake_reader`]).
    wake_reader: async_channel::Sender<()>,
    /// When the writer last finished a write: a connection that writes is not idle.
    last_write_at: Cell<Instant>,
    /// Set when a write failed (the peer is gone): the reader serves nothing more.
    failed: Cell<bool>,
}

impl WriteState {
    fn over(&self) -> bool {
        self.queued_bytes.get() > self.limit_bytes
    }

    fn add(&self, bytes: usize) {
        self.queued_bytes.set(self.queued_bytes.get() + bytes);
    }

    fn release(&self, bytes: usize) {
        let was_over = self.over();
        self.queued_bytes.set(self.queued_bytes.get().saturating_sub(bytes));
        if was_over && !self.over() {
            let _ = self.wake_reader.try_send(());
        }
    }
}

/// Frames written by one `writev`, and the bytes after which a batch stops growing.
const WRITE_BATCH_FRAMES: usize = 64;
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Why an outbound request got no response.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("request code {code} timed out after {timeout:?}")]
    Timeout { code: i32, timeout: Duration },
    #[error("connection closed")]
    Closed,
    #[error("{limit} requests already pending on this connection")]
    TooManyPending { limit: usize },
    #[error("cannot encode request: {0}")]
    Encode(#[from] WireError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves requests that arrive on a connection.
pub trait RequestHandler: 'static {
    /// Serves one request. Each request runs as its own task, so a handler may wait (long
    /// polling, a flush, a call back to the peer on this same connection) without holding up
    /// other requests; at most [`ConnLimits::max_in_flight_requests`] run at once per
    /// connection, and beyond that requests are answered SYSTEM_BUSY. Return the response
    /// (a `RemotingCommand` converts with `.into()`), or `None` to send nothing; nothing is
    /// ever sent for a one-way request (§1.6), whatever the handler returns.
    fn handle(
        &self,
        conn: &Connection,
        request: RemotingCommand,
    ) -> impl Future<Output = Option<Response>>;

    /// Called once when the connection has closed, after pending requests have failed.
    fn on_close(&self, conn: &Connection) {
        let _ = conn;
    }

    /// Whether `request`'s answer may be large (a whole table, a query's messages): at most
    /// [`ConnLimits::max_large_answers_in_flight`] of these are served at once per connection,
    /// the reader waiting (not reading further) for one to be queued before it takes the next.
    /// Bounds what a peer that pipelines such requests and never reads can make us hold.
    fn may_answer_large(&self, request: &RemotingCommand) -> bool {
        let _ = request;
        false
    }
}

/// Answers every request with REQUEST_CODE_NOT_SUPPORTED: what a plain client offers a server
/// that calls it.
pub struct NotSupported;

impl RequestHandler for NotSupported {
    async fn handle(&self, _conn: &Connection, request: RemotingCommand) -> Option<Response> {
        Some(not_supported(&request).into())
    }
}

/// The Java server's answer to a code it has no processor for (§1.7).
pub fn not_supported(request: &RemotingCommand) -> RemotingCommand {
    request.error_response(
        response_code::REQUEST_CODE_NOT_SUPPORTED,
        format!(" request type {} not supported", request.code),
    )
}

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// A handle to an open (or closed) connection; cheap to clone.
#[derive(Clone)]
pub struct Connection {
    inner: Rc<Inner>,
}

struct Inner {
    id: u64,
    peer: SocketAddr,
    limits: ConnLimits,
    outgoing: async_channel::Sender<Outgoing>,
    pending: RefCell<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
    next_opaque: Cell<i32>,
    /// Requests from the peer whose response is not yet queued (or whose handler has not
    /// finished, for one-way requests).
    in_flight: Cell<usize>,
    /// Requests from the peer counted in `in_flight` whose answers may be large
    /// ([`RequestHandler::may_answer_large`]).
    large_in_flight: Cell<usize>,
    write_budget: Rc<WriteState>,
    /// Signalled when a request releases its slot or the writer drains below its byte budget,
    /// so that a reader holding a request it may not serve yet can go on (capacity 1: signals
    /// coalesce; only the reader waits on it); closed with the connection.
    wake_reader: (async_channel::Sender<()>, async_channel::Receiver<()>),
    closed: Cell<bool>,
    /// Whether the connection runs over TLS, and whether the kernel's ([`crate::ktls`]).
    tls: bool,
    kernel_tls: bool,
    stream: TcpStream,
}

impl Connection {
    /// Starts the reader and writer tasks of `stream` on the current runtime.
    pub fn spawn<H: RequestHandler>(stream: TcpStream, handler: Rc<H>, limits: ConnLimits) -> Connection {
        Connection::spawn_with(stream, None, handler, limits)
    }

    /// [`Connection::spawn`] over TLS when `tls` is given: a stream whose handshake is done
    /// ([`crate::tls`]). In user space its reader decrypts, its writer encrypts and sends file
    /// bodies copied; in the kernel's TLS it is served as a plain stream.
    pub fn spawn_with<H: RequestHandler>(
        stream: TcpStream,
        tls: Option<crate::tls::TlsSession>,
        handler: Rc<H>,
        limits: ConnLimits,
    ) -> Connection {
        // (user-space record layer, runs TLS, runs the kernel's TLS)
        let (tls, is_tls, kernel_tls) = match tls {
            Some(crate::tls::TlsSession::User(state)) => (Some(Rc::new(state)), true, false),
            Some(crate::tls::TlsSession::Kernel) => (None, true, true),
            None => (None, false, false),
        };
        let peer = stream.peer_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let _ = stream.set_nodelay(true);
        // Non-blocking on both backends: `sendfile` must never block the shard, and io_uring
        // arms its own poll for non-blocking sockets (checked: idle receives and large sends
        // behave the same).
        let _ = socket2::SockRef::from(&stream).set_nonblocking(true);
        let (outgoing, queue) = async_channel::bounded(limits.write_queue_frames.max(1));
        let wake_reader = async_channel::bounded(1);
        let write_budget = Rc::new(WriteState {
            limit_bytes: limits.write_queue_bytes,
            queued_bytes: Cell::new(0),
            wake_reader: wake_reader.0.clone(),
            last_write_at: Cell::new(Instant::now()),
            failed: Cell::new(false),
        });
        let conn = Connection {
            inner: Rc::new(Inner {
                id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
                peer,
                limits,
                outgoing,
                pending: RefCell::new(HashMap::new()),
                next_opaque: Cell::new(0),
                in_flight: Cell::new(0),
                large_in_flight: Cell::new(0),
                write_budget: write_budget.clone(),
                wake_reader,
                closed: Cell::new(false),
                tls: is_tls,
                kernel_tls,
                stream: stream.clone(),
            }),
        };
        compio::runtime::spawn(write_loop(stream.clone(), tls.clone(), kernel_tls, queue, write_budget, limits)).detach();
        let reader = conn.clone();
        compio::runtime::spawn(async move {
            match read_loop(&reader, stream, tls.as_deref(), &handler).await {
                Ok(()) => {}
                Err(ReadStop::Idle(idle)) => {
                    info!(peer = %reader.peer(), conn = reader.id(), "closing connection: idle for {idle:?}");
                }
                Err(reason) => warn!(peer = %reader.peer(), conn = reader.id(), "closing connection: {reason}"),
            }
            reader.close();
            handler.on_close(&reader);
        })
        .detach();
        conn
    }

    /// Process-unique id, stable for the connection's life (used e.g. to find the brokers that
    /// registered through it).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    pub fn peer(&self) -> SocketAddr {
        self.inner.peer
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Whether the connection runs over TLS (in user space, or in the kernel's).
    pub fn is_tls(&self) -> bool {
        self.inner.tls
    }

    /// Whether the connection runs over kernel TLS ([`crate::ktls`]): file bodies go out with
    /// `sendfile`, as on a plain connection. False for plain connections and for TLS in user
    /// space (copy path: file bodies are read into memory and encrypted).
    pub fn is_kernel_tls(&self) -> bool {
        self.inner.kernel_tls
    }

    /// Sends `request` and waits for its response, at most `timeout`.
    pub async fn invoke(&self, mut request: RemotingCommand, timeout: Duration) -> Result<RemotingCommand, RpcError> {
        let code = request.code;
        let limit = self.inner.limits.max_pending_requests;
        if self.is_closed() {
            return Err(RpcError::Closed);
        }
        if self.inner.pending.borrow().len() >= limit {
            return Err(RpcError::TooManyPending { limit });
        }
        let opaque = self.next_opaque();
        request.opaque = opaque;
        request.flag &= !(FLAG_RESPONSE | FLAG_ONEWAY);
        let (done, response) = oneshot::channel();
        self.inner.pending.borrow_mut().insert(opaque, done);
        let exchange = async {
            self.send(&request).await?;
            response.await.map_err(|_| RpcError::Closed)
        };
        let result = match compio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_elapsed) => Err(RpcError::Timeout { code, timeout }),
        };
        if result.is_err() {
            self.inner.pending.borrow_mut().remove(&opaque);
        }
        result
    }

    /// Sends `request` one-way: the peer will not answer it.
    pub async fn invoke_oneway(&self, mut request: RemotingCommand) -> Result<(), RpcError> {
        request.opaque = self.next_opaque();
        request.flag = (request.flag & !FLAG_RESPONSE) | FLAG_ONEWAY;
        self.send(&request).await
    }

    /// Sends a response outside the handler that received its request (e.g. a held pull
    /// released by another task). A `Command` or `FileBody` gets the response flag; a `Frame`
    /// is sent as it is.
    pub async fn respond(&self, response: impl Into<Response>) -> Result<(), RpcError> {
        match response.into() {
            Response::Command(mut command) => {
                command.flag |= FLAG_RESPONSE;
                self.send(&command).await
            }
            Response::Frame(frame) => self.send_frame(frame).await,
            Response::FileBody(mut command, segments) => {
                command.flag |= FLAG_RESPONSE;
                self.send_file_body(&command, segments).await
            }
        }
    }

    /// Encodes and queues one frame, waiting while the write queue is full.
    pub async fn send(&self, command: &RemotingCommand) -> Result<(), RpcError> {
        let frame = codec::encode_to_bytes(command)?;
        self.send_frame(frame).await
    }

    /// Queues one already encoded frame.
    pub async fn send_frame(&self, frame: Bytes) -> Result<(), RpcError> {
        self.queue(Outgoing::Frame(frame)).await
    }

    /// Sends `command` (a response) with a body made of file segments, sent with `sendfile`
    /// (zero copy), or copied and written with the head in one `writev` when the segments are
    /// small (at most [`COPY_MAX_MEAN_SEGMENT_BYTES`] on average, [`COPY_MAX_BODY_BYTES`] in
    /// all). `command.body` is ignored. Data not in the page cache is read in the blocking
    /// pool (see [`ConnLimits::max_cold_reads_in_flight`]); the thread never waits for the disk.
    pub async fn send_file_body(&self, command: &RemotingCommand, segments: Vec<FileSegment>) -> Result<(), RpcError> {
        let body_len: usize = segments.iter().map(|s| s.len as usize).sum();
        let mut head = bytes::BytesMut::with_capacity(256);
        codec::encode_frame_prefix(command, body_len, &mut head)?;
        self.queue(Outgoing::FileBody { head: head.freeze(), segments }).await
    }

    async fn queue(&self, outgoing: Outgoing) -> Result<(), RpcError> {
        if self.is_closed() {
            return Err(RpcError::Closed);
        }
        let bytes = outgoing.memory_bytes();
        let budget = &self.inner.write_budget;
        budget.add(bytes);
        let queued = self.inner.outgoing.send(outgoing).await;
        if queued.is_err() {
            budget.release(bytes);
        }
        queued.map_err(|_| RpcError::Closed)
    }

    /// Closes the connection: pending requests fail with [`RpcError::Closed`], queued frames
    /// are still written, then the socket is shut down.
    pub fn close(&self) {
        if self.inner.closed.replace(true) {
            return;
        }
        self.inner.pending.borrow_mut().clear();
        self.inner.outgoing.close();
        self.inner.wake_reader.0.close();
        // Wakes a reader blocked in recv; the writer shuts the socket down fully when done.
        let _ = shutdown(&self.inner.stream, std::net::Shutdown::Read);
    }

    fn next_opaque(&self) -> i32 {
        let opaque = self.inner.next_opaque.get();
        self.inner.next_opaque.set(opaque.wrapping_add(1));
        opaque
    }

    fn complete(&self, response: RemotingCommand) {
        let waiter = self.inner.pending.borrow_mut().remove(&response.opaque);
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(response);
            }
            None => debug!(opaque = response.opaque, code = response.code, "dropping unmatched response"),
        }
    }
}

fn shutdown(stream: &TcpStream, how: std::net::Shutdown) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let how = match how {
        std::net::Shutdown::Read => libc::SHUT_RD,
        std::net::Shutdown::Write => libc::SHUT_WR,
        std::net::Shutdown::Both => libc::SHUT_RDWR,
    };
    // SAFETY: the fd is owned by `stream`, which is alive for the duration of the call.
    let rc = unsafe { libc::shutdown(stream.as_raw_fd(), how) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Why a reader stopped, for the log; a clean EOF is not an error.
#[derive(Debug, thiserror::Error)]
enum ReadStop {
    #[error("malformed frame: {0}")]
    Wire(#[from] WireError),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("a frame begun {0:?} ago is still incomplete (partial_frame_timeout)")]
    PartialFrame(Duration),
    #[error("idle for {0:?}")]
    Idle(Duration),
}

/// Appends what the peer sent next to `buf`: plaintext read from the socket, or decrypted.
async fn read_more(
    stream: &mut TcpStream,
    tls: Option<&crate::tls::TlsState>,
    kernel_tls: bool,
    buf: BytesMut,
) -> BufResult<usize, BytesMut> {
    match tls {
        None => {
            let BufResult(read, mut buf) = stream.append(buf).await;
            match read {
                // Kernel TLS: a record other than application data is next (crate::ktls).
                Err(e) if kernel_tls && e.raw_os_error() == Some(libc::EIO) => {
                    match crate::ktls::take_control_record(std::os::fd::AsRawFd::as_raw_fd(&*stream), &mut buf) {
                        Ok(Some(n)) => BufResult(Ok(n), buf),
                        Ok(None) => BufResult(Err(e), buf),
                        Err(taken) => BufResult(Err(taken), buf),
                    }
                }
                read => BufResult(read, buf),
            }
        }
        Some(tls) => tls.append(stream, buf).await,
    }
}

async fn read_loop<H: RequestHandler>(
    conn: &Connection,
    mut stream: TcpStream,
    tls: Option<&crate::tls::TlsState>,
    handler: &Rc<H>,
) -> Result<(), ReadStop> {
    let limits = conn.inner.limits;
    let kernel_tls = conn.inner.kernel_tls;
    let idle_capacity = limits.read_buffer_bytes.max(64);
    let mut buf = BytesMut::with_capacity(idle_capacity);
    // Room the next read asks for beyond the frame in progress (see `read_burst_bytes`).
    let mut read_ahead = idle_capacity;
    // When the first bytes of the frame now in `buf` arrived (None: `buf` holds no partial
    // frame), and when the connection last read anything.
    let mut partial_since: Option<Instant> = None;
    let mut last_read_at = Instant::now();
    loop {
        // Serve every whole frame already buffered.
        let mut served = false;
        let wanted = loop {
            let Some(total) = codec::frame_length(&buf, &limits.wire)? else {
                break codec::LENGTH_PREFIX_BYTES;
            };
            if buf.len() < total {
                break total;
            }
            if conn.inner.write_budget.failed.get() {
                // Nothing can be answered any more: stop, not serve what is still buffered.
                return Ok(());
            }
            let frame = buf.split_to(total).freeze();
            let command = codec::decode_frame_contents(&frame.slice(codec::LENGTH_PREFIX_BYTES..), &limits.wire)?;
            dispatch(conn, handler, command).await;
            served = true;
        };
        if buf.is_empty() {
            partial_since = None;
        } else if served || partial_since.is_none() {
            // What is left begins a new frame (a pipelining peer's reads often end mid-frame).
            partial_since = Some(Instant::now());
        }
        if buf.is_empty() && buf.capacity() > 4 * idle_capacity {
            // A large frame has gone through: give its memory back.
            buf = BytesMut::with_capacity(idle_capacity);
        }
        // `wanted` is within the frame limit, so this reservation is bounded by it.
        let missing = wanted.saturating_sub(buf.len()).max(read_ahead);
        buf.reserve(missing);
        let room = buf.capacity() - buf.len();
        let deadline = match (partial_since, limits.idle_timeout) {
            (Some(since), _) => Some(since + limits.partial_frame_timeout),
            (None, Some(idle)) => Some(last_read_at.max(conn.inner.write_budget.last_write_at.get()) + idle),
            (None, None) => None,
        };
        let read = match deadline {
            None => read_more(&mut stream, tls, kernel_tls, buf).await,
            Some(deadline) => match compio::time::timeout_at(deadline, read_more(&mut stream, tls, kernel_tls, buf)).await {
                Ok(read) => read,
                // The cancelled read took `buf` with it: either the connection closes now, or
                // `buf` was empty (idle) and a fresh one replaces it.
                Err(_elapsed) => {
                    if let Some(since) = partial_since {
                        return Err(ReadStop::PartialFrame(since.elapsed()));
                    }
                    let last_active = last_read_at.max(conn.inner.write_budget.last_write_at.get());
                    if conn.inner.in_flight.get() > 0 || conn.is_closed() {
                        // A request of the peer still being served (a held pull) keeps the
                        // connection active.
                        last_read_at = Instant::now();
                    } else if let Some(idle) = limits.idle_timeout
                        && last_active.elapsed() >= idle
                    {
                        return Err(ReadStop::Idle(last_active.elapsed()));
                    }
                    buf = BytesMut::with_capacity(idle_capacity);
                    continue;
                }
            },
        };
        let BufResult(read, returned) = read;
        buf = returned;
        last_read_at = Instant::now();
        if tls.is_some_and(|tls| tls.wants_write()) {
            // Something rustls must answer (a key update): an empty frame makes the writer flush.
            let _ = conn.inner.outgoing.try_send(Outgoing::Frame(Bytes::new()));
        }
        match read {
            Ok(0) => return Ok(()),
            Ok(n) => read_ahead = next_read_ahead(read_ahead, n, room, idle_capacity, limits.read_burst_bytes),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if conn.is_closed() => {
                debug!("read ended after close: {e}");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The room the read after one of `read` bytes into `room` asks for, from `read_ahead` (see
/// `ConnLimits::read_burst_bytes`): doubled after a full read, up to `burst`; halved after one
/// under half full, down to `idle`. Netty's adaptive receive buffer (which Java brokers use)
/// follows the same rule up to the same 64 KiB. With 4-KiB reads a producer pipelining 64
/// sends was read about two frames per read; the reads, and under epoll the readiness polls
/// behind them, were a large share of a send's CPU (bench/RESULTS.md, 2026-12-07 read burst).
fn next_read_ahead(read_ahead: usize, read: usize, room: usize, idle: usize, burst: usize) -> usize {
    if read >= room {
        read_ahead.saturating_mul(2).min(burst.max(idle))
    } else if read < room / 2 {
        (read_ahead / 2).max(idle)
    } else {
        read_ahead
    }
}

/// Routes one decoded frame: a response completes its pending request; a request runs as its
/// own task once the connection may take it (see `must_wait`), or is answered SYSTEM_BUSY at
/// the in-flight limit.
async fn dispatch<H: RequestHandler>(conn: &Connection, handler: &Rc<H>, command: RemotingCommand) {
    if command.is_response() {
        conn.complete(command);
        return;
    }
    let oneway = command.is_oneway();
    let large = handler.may_answer_large(&command);
    #[cfg(debug_assertions)]
    let opaque = command.opaque;
    let limits = &conn.inner.limits;
    let limit = limits.max_in_flight_requests;
    // The reader holds this request, and so stops reading the connection (TCP pushes back on
    // the peer), while
    // - the connection is over its write budget: the peer is not reading what it asked for;
    // - it is a request whose answer may be large and enough of those are in flight: without
    //   this, a burst of them would all be building answers before the first is queued;
    // - it is one-way and every slot is taken: it cannot be told SYSTEM_BUSY, and dropping it
    //   would lose data silently.
    let must_wait = |conn: &Connection| {
        conn.inner.write_budget.over()
            || (large && conn.inner.large_in_flight.get() >= limits.max_large_answers_in_flight)
            || (oneway && conn.inner.in_flight.get() >= limit)
    };
    while must_wait(conn) && !conn.is_closed() && !conn.inner.write_budget.failed.get() {
        if conn.inner.wake_reader.1.recv().await.is_err() {
            return;
        }
    }
    if conn.inner.write_budget.failed.get() {
        return;
    }
    if conn.inner.in_flight.get() >= limit {
        debug!(conn = conn.id(), code = command.code, limit, "rejecting request: too many in flight");
        let busy = command.error_response(response_code::SYSTEM_BUSY, "[OVERLOAD]system busy, start flow control for a while");
        let sent = conn.send(&busy).await;
        if limits.record_rpc_latency {
            crate::metrics::record_rpc(command.code, response_code::SYSTEM_BUSY, rpc_result(&sent), Duration::ZERO);
        }
        return;
    }
    // Java measures from the request's decoding to its answer being written; this is from
    // the decoded frame to the answer being queued for the writer.
    let started = (limits.record_rpc_latency && !oneway).then(|| (Instant::now(), command.code));
    conn.inner.in_flight.set(conn.inner.in_flight.get() + 1);
    if large {
        conn.inner.large_in_flight.set(conn.inner.large_in_flight.get() + 1);
    }
    let (conn, handler) = (conn.clone(), handler.clone());
    // Boxed before spawning: the broker's handler future is about 2.5 KB (one state per request
    // code), and the executor moved it by value five times on its way into the task (spawning
    // cost 3.3k instructions per send, most of them memcpy, callgrind 2026-12-07); a box moves
    // as a pointer.
    compio::runtime::spawn(Box::pin(async move {
        let response = handler.handle(&conn, command).await;
        if let Some(response) = response.filter(|_| !oneway) {
            #[cfg(debug_assertions)]
            if let Response::Frame(frame) = &response {
                debug_assert!(frame_answers(frame, opaque), "a Response::Frame must be a response to opaque {opaque}");
            }
            let code = started.and_then(|_| response_code_of(&response));
            let sent = conn.respond(response).await;
            if let (Some((at, request_code)), Some(code)) = (started, code) {
                crate::metrics::record_rpc(request_code, code, rpc_result(&sent), at.elapsed());
            }
            if let Err(e) = sent {
                debug!(conn = conn.id(), "response not sent: {e}");
            }
        }
        // The slot is held until the response is queued (and so counted in the write budget):
        // released when the handler returned, a peer that does not read could have any number
        // of finished responses waiting for room in the queue.
        conn.inner.in_flight.set(conn.inner.in_flight.get().saturating_sub(1));
        if large {
            conn.inner.large_in_flight.set(conn.inner.large_in_flight.get().saturating_sub(1));
        }
        let _ = conn.inner.wake_reader.0.try_send(());
    }))
    .detach();
}

/// The response code an answer carries, for `rocketmq_rpc_latency`.
fn response_code_of(response: &Response) -> Option<i32> {
    match response {
        Response::Command(command) | Response::FileBody(command, _) => Some(command.code),
        Response::Frame(frame) => crate::metrics::frame_response_code(frame),
    }
}

fn rpc_result(sent: &Result<(), RpcError>) -> crate::metrics::RpcResult {
    match sent {
        Ok(()) => crate::metrics::RpcResult::Success,
        Err(_) => crate::metrics::RpcResult::WriteChannelFailed,
    }
}

/// Whether `frame` decodes as a response to the request `opaque` (debug builds check every
/// [`Response::Frame`] with it).
#[cfg(debug_assertions)]
fn frame_answers(frame: &Bytes, opaque: i32) -> bool {
    let limits = WireLimits { max_frame_bytes: usize::MAX, max_header_bytes: usize::MAX };
    matches!(codec::decode_frame(frame, &limits), Ok(Some((command, used))) if used == frame.len() && command.is_response() && command.opaque == opaque)
}

async fn write_loop(
    mut stream: TcpStream,
    tls: Option<Rc<crate::tls::TlsState>>,
    kernel_tls: bool,
    queue: async_channel::Receiver<Outgoing>,
    budget: Rc<WriteState>,
    limits: ConnLimits,
) {
    let max_cold = limits.max_cold_reads_in_flight;
    let mut batch: Vec<Bytes> = Vec::with_capacity(WRITE_BATCH_FRAMES);
    let mut next = None;
    // Every item leaves the budget as it is taken from the queue: from then on it is the
    // writer's one batch (at most WRITE_BATCH_BYTES plus one frame).
    let take = |item: Outgoing| {
        budget.release(item.memory_bytes());
        item
    };
    loop {
        let first = match next.take() {
            Some(outgoing) => outgoing,
            None => match queue.recv().await {
                Ok(outgoing) => take(outgoing),
                Err(_) => break,
            },
        };
        let written = match first {
            Outgoing::FileBody { head, segments } if !file_body::worth_copying(&segments) => match &tls {
                None => file_body::send(&mut stream, head, &segments, max_cold).await,
                Some(tls) => file_body::send_tls(&stream, tls, head, &segments, max_cold).await,
            },
            first => {
                // Coalesce the frames queued behind this one (copied file bodies included)
                // into one writev. A file body sent with sendfile, or one to copy whose data is
                // not all in the page cache, ends the batch and goes next: the frames before it
                // are not held up by its disk read.
                let mut batch_bytes = 0;
                let mut pushed = match first {
                    Outgoing::Frame(frame) => Ok(Some(frame)),
                    Outgoing::FileBody { head, segments } => file_body::copy(segments, max_cold).await.map(|body| {
                        batch_bytes += head.len();
                        batch.push(head);
                        Some(body)
                    }),
                    Outgoing::ColdCopy { head, reader } => file_body::finish_cold(*reader, max_cold).await.map(|body| {
                        batch_bytes += head.len();
                        batch.push(head);
                        Some(body)
                    }),
                };
                let mut failed = None;
                loop {
                    let frame = match pushed {
                        Ok(Some(frame)) => frame,
                        Ok(None) => break,
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    };
                    batch_bytes += frame.len();
                    batch.push(frame);
                    if batch.len() >= WRITE_BATCH_FRAMES || batch_bytes >= WRITE_BATCH_BYTES {
                        break;
                    }
                    pushed = match queue.try_recv().map(take) {
                        Ok(Outgoing::Frame(frame)) => Ok(Some(frame)),
                        Ok(Outgoing::FileBody { head, segments }) if file_body::worth_copying(&segments) => {
                            match file_body::copy_resident(segments) {
                                Ok(file_body::Copied::Ready(body)) => {
                                    batch_bytes += head.len();
                                    batch.push(head);
                                    Ok(Some(body))
                                }
                                Ok(file_body::Copied::Cold(reader)) => {
                                    next = Some(Outgoing::ColdCopy { head, reader: Box::new(reader) });
                                    Ok(None)
                                }
                                Err(e) => Err(e),
                            }
                        }
                        Ok(other) => {
                            next = Some(other);
                            Ok(None)
                        }
                        Err(_) => Ok(None),
                    };
                }
                match failed {
                    None => match &tls {
                        None => {
                            let BufResult(written, returned) = stream.write_vectored_all(batch).await;
                            batch = returned;
                            batch.clear();
                            written
                        }
                        Some(tls) => {
                            let written = tls.write_all(&stream, &batch).await;
                            batch.clear();
                            written
                        }
                    },
                    Some(e) => Err(e),
                }
            }
        };
        budget.last_write_at.set(Instant::now());
        if let Err(e) = written {
            debug!("write failed, dropping the rest of the queue: {e}");
            budget.failed.set(true);
            let _ = budget.wake_reader.try_send(());
            queue.close();
            while let Ok(item) = queue.try_recv() {
                take(item);
            }
            break;
        }
    }
    if let Some(tls) = &tls
        && !budget.failed.get()
    {
        tls.close(&stream).await;
    }
    if kernel_tls && !budget.failed.get() {
        crate::ktls::send_close_notify(std::os::fd::AsRawFd::as_raw_fd(&stream));
    }
    let _ = shutdown(&stream, std::net::Shutdown::Both);
}
