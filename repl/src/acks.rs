//! A master shard's view of its slaves: each connected slave's acknowledged offset, and the
//! SYNC_MASTER wait for one of them to reach a send's end (PROTOCOL.md §7.4, 4.x semantics).
//!
//! Shard-local (`!Send`): the streams that update it and the sends that wait on it run on the
//! shard that owns the commit log. Waiters are kept sorted by the offset they need and are
//! released by the report that covers them — one replication "group commit" per report,
//! never a timer per send.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use futures_channel::oneshot;

/// Waiters beyond this many make an insertion drop those whose send gave up (timed out).
const PRUNE_WAITERS_ABOVE: usize = 4096;

/// How a SYNC_MASTER send's wait for a slave ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaveAck {
    /// A slave reported an offset at or beyond the send's end.
    Acked,
    /// No slave reported it within `slaveTimeout` (FLUSH_SLAVE_TIMEOUT).
    Timeout,
    /// No slave is connected, or the best one is more than `haMaxGapNotInSync` behind
    /// (SLAVE_NOT_AVAILABLE, at once).
    NotAvailable,
}

/// One connected slave stream.
#[derive(Debug, Clone, Copy)]
struct Slave {
    acked: u64,
    /// The slave holds everything the master had written at this moment.
    caught_up_at: Instant,
    /// The master's written end at `mark_at`: once the slave reports it, it holds everything
    /// written up to `mark_at` (a slave trailing steadily by a few milliseconds never reports
    /// the master's exact end, so comparing with "now" would make its lag grow forever).
    mark: u64,
    mark_at: Instant,
}

/// How far the best slave of a shard is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    pub bytes: u64,
    /// How old the newest write is that the slave is known to hold all of (0 when it holds
    /// everything): the slave is at most this far behind in time, to within one report.
    pub behind_for: Duration,
}

/// The slaves of one master shard.
#[derive(Default)]
pub struct SlaveAcks {
    /// Each connected slave stream, by stream id.
    slaves: RefCell<BTreeMap<u64, Slave>>,
    next_id: Cell<u64>,
    /// (end offset, completion) sorted by end.
    waiters: RefCell<VecDeque<(u64, oneshot::Sender<()>)>>,
}

impl SlaveAcks {
    pub fn new() -> Self {
        Self::default()
    }

    /// A slave stream connected, having reported `offset`; returns its id.
    pub fn connect(&self, offset: u64) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let now = Instant::now();
        self.slaves.borrow_mut().insert(id, Slave { acked: offset, caught_up_at: now, mark: offset, mark_at: now });
        self.release();
        id
    }

    /// A slave reported `offset` (everything below it is stored there) while the master's log
    /// was written up to `written`.
    pub fn report(&self, id: u64, offset: u64, written: u64) {
        if let Some(slave) = self.slaves.borrow_mut().get_mut(&id) {
            slave.acked = slave.acked.max(offset);
            let now = Instant::now();
            if slave.acked >= written {
                slave.caught_up_at = now;
            } else if slave.acked >= slave.mark {
                slave.caught_up_at = slave.mark_at;
            }
            if slave.acked >= slave.mark {
                // The next mark: what is written now.
                slave.mark = written;
                slave.mark_at = now;
            }
        }
        self.release();
    }

    pub fn disconnect(&self, id: u64) {
        self.slaves.borrow_mut().remove(&id);
    }

    /// Slave streams connected now.
    pub fn connected(&self) -> usize {
        self.slaves.borrow().len()
    }

    /// The highest offset any connected slave acknowledged; `None` without slaves.
    pub fn max_acked(&self) -> Option<u64> {
        self.slaves.borrow().values().map(|s| s.acked).max()
    }

    /// How far the best connected slave is behind a log written up to `written`; `None`
    /// without slaves.
    pub fn lag(&self, written: u64) -> Option<Lag> {
        let slaves = self.slaves.borrow();
        let best = slaves.values().max_by_key(|s| s.acked)?;
        let bytes = written.saturating_sub(best.acked);
        let behind_for = if bytes == 0 { Duration::ZERO } else { best.caught_up_at.elapsed() };
        Some(Lag { bytes, behind_for })
    }

    /// Waits until a slave acknowledged `end` (a send's end offset), at most `timeout`.
    /// `log_end` is the master's log end now: a slave further than `max_gap_bytes` behind it is
    /// not in sync, and neither is no slave at all: [`SlaveAck::NotAvailable`] at once.
    pub async fn wait(&self, end: u64, log_end: u64, max_gap_bytes: u64, timeout: Duration) -> SlaveAck {
        let Some(best) = self.max_acked() else { return SlaveAck::NotAvailable };
        if best >= end {
            return SlaveAck::Acked;
        }
        if log_end.saturating_sub(best) >= max_gap_bytes {
            return SlaveAck::NotAvailable;
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut w = self.waiters.borrow_mut();
            if w.len() > PRUNE_WAITERS_ABOVE {
                w.retain(|(_, tx)| !tx.is_canceled());
            }
            let at = w.partition_point(|(e, _)| *e <= end);
            w.insert(at, (end, tx));
        }
        match compio::time::timeout(timeout, rx).await {
            Ok(Ok(())) => SlaveAck::Acked,
            // Timed out (or the shard is stopping and dropped the waiters).
            Ok(Err(_)) | Err(_) => SlaveAck::Timeout,
        }
    }

    fn release(&self) {
        let Some(best) = self.max_acked() else { return };
        let mut w = self.waiters.borrow_mut();
        while w.front().is_some_and(|(e, _)| *e <= best) {
            if let Some((_, tx)) = w.pop_front() {
                let _ = tx.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        compio::runtime::Runtime::new().unwrap().block_on(f)
    }

    #[test]
    fn sends_wait_for_the_report_that_covers_them() {
        block_on(async {
            let acks = Rc::new(SlaveAcks::new());
            let long = Duration::from_secs(5);
            assert_eq!(acks.wait(10, 10, 1 << 20, long).await, SlaveAck::NotAvailable, "no slave");
            let id = acks.connect(0);
            assert_eq!(acks.wait(10, 4 << 20, 1 << 20, long).await, SlaveAck::NotAvailable, "too far behind");
            assert_eq!(acks.wait(10, 10, 1 << 20, Duration::from_millis(20)).await, SlaveAck::Timeout);

            let waiting = {
                let acks = acks.clone();
                compio::runtime::spawn(async move { (acks.wait(100, 100, 1 << 20, long).await, acks.wait(300, 300, 1 << 20, long).await) })
            };
            compio::time::sleep(Duration::from_millis(10)).await;
            acks.report(id, 99, 300);
            assert_eq!(acks.lag(300).map(|l| l.bytes), Some(201));
            acks.report(id, 300, 300);
            assert_eq!(acks.lag(300), Some(Lag { bytes: 0, behind_for: Duration::ZERO }));
            assert_eq!(waiting.await.unwrap(), (SlaveAck::Acked, SlaveAck::Acked));
            // The best of several slaves counts; a gone slave does not.
            let other = acks.connect(50);
            assert_eq!(acks.max_acked(), Some(300));
            acks.disconnect(id);
            assert_eq!(acks.max_acked(), Some(50));
            acks.disconnect(other);
            assert_eq!(acks.connected(), 0);
        });
    }

    #[test]
    fn a_slave_trailing_steadily_has_a_bounded_time_lag() {
        block_on(async {
            let acks = SlaveAcks::new();
            let connected_at = Instant::now();
            let id = acks.connect(0);
            let step = Duration::from_millis(20);
            // Each report covers what was written at the previous one, never the current end.
            let mut written = 100;
            for _ in 0..4 {
                compio::time::sleep(step).await;
                acks.report(id, written - 50, written);
                written += 100;
            }
            let lag = acks.lag(written - 100).unwrap();
            assert_eq!(lag.bytes, 50);
            // It holds everything written at the second-to-last report, at least `step` after
            // the connection: the lag is measured from there, not from the connection.
            assert!(lag.behind_for <= connected_at.elapsed().saturating_sub(step), "{lag:?} after {:?}", connected_at.elapsed());
        });
    }
}
