//! A slave shard's side: connect to the master's HA port, say which shard this is, report
//! where the local log continues, then take the master's units into the store (verbatim, at
//! the same offsets) and report each acknowledged end (PROTOCOL.md §7.3). On any error the
//! stream is dropped and opened again after a pause; the store keeps what it acknowledged.
//! A replica that holds bytes its master lost (an ASYNC master's unsynced tail) cuts them off
//! before it follows ([`cut_back_to_master`] says when it refuses to).

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
use tracing::{error, info, warn};

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
            let refused = e.get_ref().is_some_and(|inner| inner.is::<Refused>());
            let e = e.to_string();
            // The same failure again (master down for a while) is logged once.
            if last_error.as_deref() != Some(e.as_str()) {
                if refused {
                    error!(shard = cfg.shard, master = %addr, "not following the master: {e}; asking again every {:?}", cfg.reconnect);
                } else {
                    warn!(shard = cfg.shard, master = %addr, "replication stream ended: {e}; reconnecting every {:?}", cfg.reconnect);
                }
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
    // Where this log agrees with the master's: the master checks the commit markers of this
    // replica's last segment against its own log (lengths alone cannot tell a master that lost
    // an unsynced tail and then wrote more than it lost).
    let held = store.replica_next_offset();
    let points = store.replica_resume_points(wire::MAX_RESUME_POINTS - 1).await.map_err(io::Error::other)?;
    write(&mut stream, wire::encode_resume_points(&points)).await?;
    let agreed = read_exact(&mut stream, 8, cfg.housekeeping).await?;
    let agreed = wire::decode_agreed(agreed.as_slice().try_into().map_err(io::Error::other)?);
    let mut truncated = 0;
    match agreed {
        Some(to) if to < held => truncated = cut_back_to_master(store, held, to).await?,
        Some(_) => {}
        None => {
            return Err(refused(format!(
                "the master's log (it ends at {master_written}) agrees with no point of this replica's last segment (this replica holds up to {held}): \
                 the master lost its store, not an unsynced tail, or the logs differ further back; {CHOICES}"
            )));
        }
    }
    let next = store.replica_next_offset();
    // After the settle every taken byte is acknowledged (a pending segment-end filler is
    // written with the next batch: no record lies between it and `next`).
    let report = next;
    write(&mut stream, wire::encode_report(report).to_vec()).await?;
    info!(shard = cfg.shard, master = %addr, from = next, master_written, truncated_bytes = truncated, "following the master");
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

/// A reason not to follow the master that waiting will not cure: an operator must choose
/// (logged at ERROR, once per reason, while the follower keeps asking).
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refused(why: String) -> io::Error {
    io::Error::other(Refused(why))
}

/// What an operator can do about a master this replica refuses to follow.
const CHOICES: &str = "either re-seed the master from this slave's store (stop both, copy this store over the master's, start the master) \
                       or empty this slave's store to copy the master afresh";

/// This replica holds bytes beyond the point `master_written` where its log agrees with the
/// master's (its log continues at `held`): cuts them off (`Store::truncate_replica`, logged at WARN with what
/// it dropped) so that it follows the master from its end. Returns the bytes dropped.
///
/// The rule. A master loses only the unsynced tail of its *active* segment: it writes and
/// fdatasyncs the end of every segment (its filler) before it writes a byte into the next
/// one, and it never sends a byte it has not written. Whatever this replica took from the
/// master before its crash therefore lies, beyond what the master kept, inside this
/// replica's last segment: a legitimate master end is at or above that segment's base. A
/// master whose end is below it — above all an empty master (`written == 0`) — did not lose
/// a tail: it lost its store (a new disk, a wiped or wrong directory, another broker at its
/// address), its offsets say nothing about where the two logs agree, and truncating would
/// destroy what may be the only copy of the data. That is refused, at ERROR, and nothing is
/// changed: the operator either re-seeds the master from this slave's store (stop both,
/// copy this store over the master's, start the master), or empties this slave's store to
/// copy the master afresh. The same refusal applies when the master's end is no batch
/// boundary of this log (the logs differ before it): the store refuses the truncation.
async fn cut_back_to_master<S: Storage>(store: &Store<S>, held: u64, master_written: u64) -> io::Result<u64> {
    let seg = store.config().segment_size_bytes;
    let last_segment = (held - 1) - (held - 1) % seg;
    if master_written == 0 || master_written < last_segment {
        let what = if master_written == 0 { "the master's log is empty" } else { "the master's log ends before this replica's last segment" };
        return Err(refused(format!(
            "{what} (it ends at {master_written}; this replica holds up to {held}, its last segment starting at {last_segment}): \
             the master lost its store, not an unsynced tail; truncating would destroy what may be the only copy; {CHOICES}"
        )));
    }
    match store.truncate_replica(master_written).await {
        Ok(report) => Ok(report.bytes),
        Err(StoreError::ReplicaMismatch(why)) => Err(refused(format!(
            "this replica holds up to {held}, the master only up to {master_written}, and this replica cannot be cut back to it ({why}): \
             the logs differ; {CHOICES}"
        ))),
        Err(e) => Err(io::Error::other(e)),
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

#[cfg(test)]
mod tests {
    use ferromq_store::io::mem::MemStorage;
    use ferromq_store::record::{MessageInput, Properties};
    use ferromq_store::test_support::block_on;
    use ferromq_store::{FlushMode, QueueId, StoreConfig};

    use super::*;

    const SEGMENT: u64 = 4096;

    /// A replica holding a copy of a master's messages, and the batch starts of its log.
    async fn replica_of(count: usize) -> (Store<MemStorage>, Vec<u64>) {
        let (master, _) = Store::open(MemStorage::new(), StoreConfig::test_min("/m")).await.unwrap();
        let (replica, _) = Store::open(MemStorage::new(), StoreConfig { replica: true, flush_mode: FlushMode::Sync, ..StoreConfig::test_min("/r") }).await.unwrap();
        // At least `count` messages, and several batches in the last segment.
        let mut i = 0;
        while i < count || master.write_offset().0 % SEGMENT < 1500 {
            let body = format!("m{i}-{}", "x".repeat(i * 37 % 300));
            master.append(vec![MessageInput::simple("T", QueueId(0), body.into_bytes(), &Properties::new())]).await.unwrap();
            i += 1;
        }
        let mut framer = ReplicaFramer::new(0, SEGMENT);
        let mut starts = Vec::new();
        while let Some(bytes) = master.replication_bytes(framer.next_offset(), 4096).await.unwrap() {
            framer.push(framer.next_offset(), &bytes).unwrap();
            while let Some((start, unit)) = framer.next_unit().unwrap() {
                starts.push(start);
                let (_, ack) = replica.append_replica(start, unit).await.unwrap();
                ack.await.unwrap();
            }
        }
        master.close().await.unwrap();
        (replica, starts)
    }

    fn is_refusal(r: &io::Result<u64>) -> bool {
        r.as_ref().err().and_then(|e| e.get_ref()).is_some_and(|e| e.is::<Refused>())
    }

    #[test]
    fn an_empty_master_or_one_ending_before_the_last_segment_is_refused_a_lost_tail_is_cut() {
        block_on(async {
            let (replica, starts) = replica_of(60).await;
            let held = replica.replica_next_offset();
            let last_segment = (held - 1) / SEGMENT * SEGMENT;
            assert!(last_segment >= 2 * SEGMENT, "the test needs several segments");

            // An empty master: nothing is cut.
            assert!(is_refusal(&cut_back_to_master(&replica, held, 0).await));
            // A master ending (even at a boundary) before this replica's last segment.
            let earlier = starts.iter().copied().rfind(|s| *s < last_segment && *s > 0).unwrap();
            assert!(is_refusal(&cut_back_to_master(&replica, held, earlier).await));
            // Not a boundary of this log: the logs differ.
            let inside = starts.iter().copied().rfind(|s| *s > last_segment).unwrap() + 3;
            assert!(is_refusal(&cut_back_to_master(&replica, held, inside).await));
            assert_eq!(replica.replica_next_offset(), held, "no refusal changed the log");

            // A lost tail inside the last segment: cut back to the master's end.
            let to = starts.iter().copied().rfind(|s| *s > last_segment).unwrap();
            assert_eq!(cut_back_to_master(&replica, held, to).await.unwrap(), held - to);
            assert_eq!(replica.replica_next_offset(), to);
            // Down to the last segment's base is a lost tail too.
            assert_eq!(cut_back_to_master(&replica, to, last_segment).await.unwrap(), to - last_segment);
            assert_eq!(replica.replica_next_offset(), last_segment);
            replica.close().await.unwrap();
        });
    }
}
