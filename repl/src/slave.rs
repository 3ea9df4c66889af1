//! A slave shard's side: connect to the master's HA port, say which shard this is, report
//! where the local log continues, then take the master's units into the store (verbatim, at
//! the same offsets) and report each acknowledged end (PROTOCOL.md §7.3). On any error the
//! stream is dropped and opened again after a pause; the store keeps what it acknowledged.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use compio::BufResult;
use compio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use ferromq_store::io::Storage;
use ferromq_store::{ReplicaFramer, Store, StoreError};
use tracing::{info, warn};

use crate::wire::{self, Hello, UNIT_HEADER_LEN, UnitHeader, VERSION, WELCOME_HEAD_LEN, Welcome};

/// Bytes read from the stream at once at most (a read's units are acknowledged together).
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// Largest unit a master may send (Java's are at most `haTransferBatchSize`, 32 KiB).
pub const MAX_UNIT_BYTES: u32 = 4 << 20;

/// How a slave shard follows its master.
#[derive(Debug, Clone, Copy)]
pub struct SlaveConfig {
    pub shard: u16,
    pub shard_count: u16,
    /// A report goes out at least this often (`haSendHeartbeatInterval`).
    pub heartbeat: Duration,
    /// The stream is dropped after this long without a byte from the master
    /// (`haHousekeepingInterval`).
    pub housekeeping: Duration,
    /// Wait before connecting again after a failure.
    pub reconnect: Duration,
    pub connect_timeout: Duration,
}

/// What a follower knows, for status reports (shard-local).
#[derive(Debug, Default)]
pub struct FollowerState {
    pub connected: Cell<bool>,
    /// The master's log end as of its latest unit.
    pub master_end: Cell<u64>,
    /// This replica's acknowledged end, as last reported.
    pub acked: Cell<u64>,
    /// When the stream last brought bytes.
    pub last_contact: Cell<Option<Instant>>,
    /// When this replica last held everything the master had sent word of.
    pub caught_up_at: Cell<Option<Instant>>,
}

impl FollowerState {
    /// Bytes the master holds that this replica has not acknowledged.
    pub fn lag_bytes(&self) -> u64 {
        self.master_end.get().saturating_sub(self.acked.get())
    }

    /// How long this replica has been behind (zero when caught up, or never connected).
    pub fn behind_for(&self) -> Duration {
        match self.caught_up_at.get() {
            Some(at) if self.lag_bytes() > 0 => at.elapsed(),
            _ => Duration::ZERO,
        }
    }
}

/// Follows the master whose HA address `master` gives (asked again before every connection),
/// forever; cancel the task to stop.
pub async fn follow<S: Storage>(store: Store<S>, cfg: SlaveConfig, master: impl Fn() -> Option<String>, state: Rc<FollowerState>) {
    let mut last_error: Option<String> = None;
    loop {
        let Some(addr) = master() else {
            compio::time::sleep(cfg.reconnect.min(Duration::from_secs(1))).await;
            continue;
        };
        let outcome = follow_once(&store, &cfg, &addr, &state).await;
        state.connected.set(false);
        if let Err(e) = outcome {
            let e = e.to_string();
            // The same failure again (master down for a while) is logged once.
            if last_error.as_deref() != Some(e.as_str()) {
                warn!(shard = cfg.shard, master = %addr, "replication stream ended: {e}; reconnecting every {:?}", cfg.reconnect);
                last_error = Some(e);
            }
        }
        compio::time::sleep(cfg.reconnect).await;
    }
}

async fn follow_once<S: Storage>(store: &Store<S>, cfg: &SlaveConfig, addr: &str, state: &FollowerState) -> io::Result<()> {
    // What was taken before is acknowledged first: the first report counts as an ack.
    store.replica_settle().await.map_err(io::Error::other)?;
    let mut stream = compio::time::timeout(cfg.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    let hello = Hello { version: VERSION, shard: cfg.shard, shard_count: cfg.shard_count };
    write(&mut stream, hello.encode().to_vec()).await?;
    let head = read_exact(&mut stream, WELCOME_HEAD_LEN, cfg.housekeeping).await?;
    let head: [u8; WELCOME_HEAD_LEN] = head.as_slice().try_into().map_err(io::Error::other)?;
    let (status, reason_len, master_written) = Welcome::decode_head(&head).map_err(io::Error::other)?;
    let reason = read_exact(&mut stream, reason_len, cfg.housekeeping).await?;
    if status != 0 {
        return Err(io::Error::other(format!("the master refused: {}", String::from_utf8_lossy(&reason))));
    }
    let next = store.replica_next_offset();
    if next > master_written {
        // An ASYNC master that lost its unsynced tail: this replica holds bytes the master
        // does not, and the master will write other bytes at those offsets.
        return Err(io::Error::other(format!(
            "this replica's log ends at {next}, beyond the master's {master_written}: it holds bytes the master lost; \
             not following (empty this slave's store to re-sync it)"
        )));
    }
    // After the settle every taken byte is acknowledged (a pending segment-end filler is
    // written with the next batch: no record lies between it and `next`).
    let report = next;
    write(&mut stream, wire::encode_report(report).to_vec()).await?;
    info!(shard = cfg.shard, master = %addr, from = next, master_written, "following the master");
    state.connected.set(true);
    state.master_end.set(master_written);
    state.acked.set(report);

    let segment_size = store.config().segment_size_bytes;
    let mut framer: Option<ReplicaFramer> = (next != 0).then(|| ReplicaFramer::new(next, segment_size));
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK_BYTES);
    let mut last_report = Instant::now();
    loop {
        let read = compio::time::timeout(cfg.heartbeat, stream.read(Vec::<u8>::with_capacity(READ_CHUNK_BYTES))).await;
        match read {
            Err(_) => {
                // Quiet for a heartbeat interval: say where we are, and give up after the
                // housekeeping interval without a byte.
                if state.last_contact.get().is_some_and(|t| t.elapsed() >= cfg.housekeeping) {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, format!("nothing from the master for {:?}", cfg.housekeeping)));
                }
            }
            Ok(BufResult(Ok(0), _)) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the master closed the stream")),
            Ok(BufResult(Ok(_), chunk)) => {
                state.last_contact.set(Some(Instant::now()));
                buf.extend_from_slice(&chunk);
                let last_ack = take_units(store, &mut buf, &mut framer, segment_size, state).await?;
                if let Some(ack) = last_ack {
                    ack.await.map_err(io::Error::other)?;
                }
            }
            Ok(BufResult(Err(e), _)) => return Err(e),
        }
        let acked = store.replica_acked_offset();
        if acked > state.acked.get() || last_report.elapsed() >= cfg.heartbeat {
            write(&mut stream, wire::encode_report(acked).to_vec()).await?;
            state.acked.set(acked);
            last_report = Instant::now();
        }
        if acked >= state.master_end.get() {
            state.caught_up_at.set(Some(Instant::now()));
        }
    }
}

type Ack = Pin<Box<dyn Future<Output = Result<(), StoreError>>>>;

/// Takes every complete unit in `buf` into the store; returns the wait for the last one.
async fn take_units<S: Storage>(
    store: &Store<S>,
    buf: &mut Vec<u8>,
    framer: &mut Option<ReplicaFramer>,
    segment_size: u64,
    state: &FollowerState,
) -> io::Result<Option<Ack>> {
    let mut last: Option<Ack> = None;
    let mut at = 0;
    while let Some(head) = buf.get(at..at + UNIT_HEADER_LEN) {
        let h = UnitHeader::decode(head).map_err(io::Error::other)?;
        if h.size > MAX_UNIT_BYTES {
            return Err(io::Error::other(format!("a {}-byte unit (at most {MAX_UNIT_BYTES})", h.size)));
        }
        let body_at = at + UNIT_HEADER_LEN;
        let Some(body) = buf.get(body_at..body_at + h.size as usize) else { break };
        let end = h.offset + u64::from(h.size);
        state.master_end.set(state.master_end.get().max(end));
        let f = match framer {
            Some(f) => f,
            None => {
                // An empty replica starts where the master begins sending (its oldest segment).
                if h.offset != 0 {
                    store.replica_start_at(h.offset).map_err(io::Error::other)?;
                }
                framer.insert(ReplicaFramer::new(h.offset, segment_size))
            }
        };
        if h.size == 0 {
            // A heartbeat names the master's next offset: it must be where this stream is.
            if h.offset != f.next_offset() {
                return Err(io::Error::other(format!("heartbeat at {}, the stream is at {}", h.offset, f.next_offset())));
            }
        } else {
            f.push(h.offset, body).map_err(io::Error::other)?;
            while let Some((start, unit)) = f.next_unit().map_err(io::Error::other)? {
                let (_, ack) = store.append_replica(start, unit).await.map_err(io::Error::other)?;
                last = Some(Box::pin(ack));
            }
        }
        at = body_at + h.size as usize;
    }
    buf.drain(..at);
    Ok(last)
}

async fn write(stream: &mut TcpStream, bytes: Vec<u8>) -> io::Result<()> {
    let BufResult(r, _) = stream.write_all(bytes).await;
    r
}

async fn read_exact(stream: &mut TcpStream, len: usize, within: Duration) -> io::Result<Vec<u8>> {
    let BufResult(r, buf) = compio::time::timeout(within, stream.read_exact(vec![0u8; len]))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the master did not answer"))?;
    r?;
    Ok(buf)
}
