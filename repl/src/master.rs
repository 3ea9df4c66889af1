//! A master shard's side of one slave stream: answer the handshake, read the slave's start
//! offset, then send the log from there — zero-copy from the segment files — while reading the
//! slave's acknowledgements into [`SlaveAcks`] (PROTOCOL.md §7.3).

use std::io;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use compio::BufResult;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use ferromq_net::conn::{FileSegment, send_with_file_body};
use ferromq_store::{ResumePoint, Store};
use ferromq_store::io::Storage;
use futures_util::future::{Either, select};
use tracing::{info, warn};

use crate::acks::SlaveAcks;
use crate::wire::{self, Hello, REPORT_LEN, UnitHeader, Welcome};

/// How a master shard serves its slaves.
#[derive(Debug, Clone, Copy)]
pub struct MasterConfig {
    /// Most log bytes in one unit (`haTransferBatchSize`).
    pub transfer_batch_bytes: u32,
    /// A heartbeat unit goes out after this long without data (`haSendHeartbeatInterval`).
    pub heartbeat: Duration,
    /// A slave that sent no report for this long is disconnected (`haHousekeepingInterval`).
    pub housekeeping: Duration,
    /// Cold (uncached) segment reads in the blocking pool at once, per shard.
    pub max_cold_reads: usize,
    /// A slave further behind is not in sync (`haMaxGapNotInSync`): logged when it crosses.
    pub max_gap_bytes: u64,
}

/// Serves one slave on this shard: `hello` was read (and checked) by the acceptor. Returns when
/// the stream ends; the error says why.
pub async fn serve_slave<S: Storage>(mut stream: TcpStream, hello: Hello, store: Store<S>, acks: Rc<SlaveAcks>, cfg: MasterConfig) -> io::Result<()> {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let written = store.written_offset().0;
    let BufResult(sent, _) = stream.write_all(Welcome::Accepted { written }.encode()).await;
    sent?;
    // Where the slave's log could continue: the first point this log agrees with.
    let points = read_resume_points(&mut stream, cfg.housekeeping).await?;
    let mut agreed = if points.is_empty() { Some(0) } else { None };
    for point in &points {
        if store.matches_resume_point(point).await.map_err(io::Error::other)? {
            agreed = Some(point.end);
            break;
        }
    }
    let BufResult(sent, _) = stream.write_all(wire::encode_agreed(agreed).to_vec()).await;
    sent?;
    let report = read_report(&mut stream, cfg.housekeeping).await?;
    let seg = store.config().segment_size_bytes;
    let oldest = store.min_log_offset().0;
    let start = if report == 0 {
        // An empty slave gets everything the master still holds, not only the last segment as
        // Java's does: if the master is lost, consumers must find every message they have not
        // read yet on the slave.
        oldest - oldest % seg
    } else {
        report
    };
    if start > written {
        return Err(io::Error::other(format!(
            "slave {peer} reports log end {start}, beyond this master's {written}: it holds bytes this master does not (lost with an unsynced tail?)"
        )));
    }
    if start < oldest - oldest % seg {
        return Err(io::Error::other(format!(
            "slave {peer} continues at {start}, below this master's oldest segment ({oldest}): empty its store to re-sync it"
        )));
    }
    let id = acks.connect(report);
    info!(%peer, shard = hello.shard, start, written, "slave connected; replicating");
    let reader = {
        let stream = stream.clone();
        let acks = acks.clone();
        let housekeeping = cfg.housekeeping;
        let store = store.clone();
        let max_gap = cfg.max_gap_bytes;
        let shard = hello.shard;
        async move {
            let mut stream = stream;
            let mut in_sync = true;
            loop {
                let offset = read_report(&mut stream, housekeeping).await?;
                let written = store.written_offset().0;
                acks.report(id, offset, written);
                // Said when it changes, not per report.
                let behind = written.saturating_sub(offset);
                if in_sync && behind >= max_gap {
                    warn!(shard, behind_bytes = behind, "slave is {behind} bytes behind (haMaxGapNotInSync {max_gap}): not in sync; SYNC_MASTER sends answer SLAVE_NOT_AVAILABLE until it catches up");
                    in_sync = false;
                } else if !in_sync && behind < max_gap {
                    info!(shard, behind_bytes = behind, "slave is in sync again");
                    in_sync = true;
                }
            }
        }
    };
    let sender = send_log(stream, store, start, cfg);
    let outcome = match select(Box::pin(reader), Box::pin(sender)).await {
        Either::Left((r, _)) | Either::Right((r, _)) => r,
    };
    acks.disconnect(id);
    outcome
}

/// Sends the log from `next` on, forever: units of what is written, heartbeats when idle.
async fn send_log<S: Storage>(mut stream: TcpStream, store: Store<S>, mut next: u64, cfg: MasterConfig) -> io::Result<()> {
    loop {
        match store.replication_slice(next, cfg.transfer_batch_bytes).map_err(io::Error::other)? {
            Some((file, pos, len)) => {
                let head = Bytes::copy_from_slice(&UnitHeader { offset: next, size: len }.encode());
                // `settled_end` 0: the stream reads each byte once, so not through the block cache.
                send_with_file_body(&mut stream, head, &[FileSegment { file, offset: pos, len, settled_end: 0 }], cfg.max_cold_reads).await?;
                next += u64::from(len);
            }
            None => {
                // One wait for new bytes across heartbeats (each call queues a waiter).
                let mut more = Box::pin(store.wait_written_beyond(next));
                loop {
                    let tick = Box::pin(compio::time::sleep(cfg.heartbeat));
                    match select(more, tick).await {
                        Either::Left((r, _)) => {
                            r.map_err(io::Error::other)?;
                            break;
                        }
                        Either::Right(((), pending)) => {
                            more = pending;
                            let BufResult(sent, _) = stream.write_all(UnitHeader { offset: next, size: 0 }.encode().to_vec()).await;
                            sent?;
                        }
                    }
                }
            }
        }
    }
}

async fn read_resume_points(stream: &mut TcpStream, within: Duration) -> io::Result<Vec<ResumePoint>> {
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, format!("no resume points from the slave for {within:?}"));
    let BufResult(read, count) = compio::time::timeout(within, stream.read_exact(vec![0u8; 2])).await.map_err(|_| timed_out())?;
    read?;
    let n = wire::decode_resume_count([count[0], count[1]]).map_err(io::Error::other)?;
    let BufResult(read, points) = compio::time::timeout(within, stream.read_exact(vec![0u8; n * wire::RESUME_POINT_LEN])).await.map_err(|_| timed_out())?;
    read?;
    wire::decode_resume_points(&points).map_err(io::Error::other)
}

async fn read_report(stream: &mut TcpStream, within: Duration) -> io::Result<u64> {
    let buf = vec![0u8; REPORT_LEN];
    let BufResult(read, buf) = compio::time::timeout(within, stream.read_exact(buf))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("no report from the slave for {within:?}")))?;
    read?;
    let mut b = [0u8; REPORT_LEN];
    b.copy_from_slice(&buf);
    wire::decode_report(&b).map_err(io::Error::other)
}
