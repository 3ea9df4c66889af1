//! The timer deliverer (5.x timer messages, PROTOCOL.md §9.3): one task, on the shard that owns
//! queue 0 of `rmq_sys_wheel_timer`, on a master with `timerWheelEnable`.
//!
//! The send path parks a timer message in that queue with its due time in `TIMER_OUT_MS`
//! (`crate::delay::to_timer`). This task reads the queue in order and hands each entry (due
//! time, queue offset) to the timer index (`ferromq_store::timer`: a timing wheel over an
//! append-only log in `<shard dir>/timer/`, bounded in memory whatever is pending). When the
//! index hands an entry out at its due time, the task reads the parked record, rebuilds it for
//! its real topic (`crate::delay::restored`) and appends it there, acknowledged per the flush
//! mode, before it asks the index for anything else — so a checkpoint of the index never claims
//! a delivery that did not happen. The index is checkpointed every [`CHECKPOINT_INTERVAL`];
//! after a crash, what was handed out since the last checkpoint is delivered again (at least
//! once, as in Java).
//!
//! An index that cannot be used (first start, another `timerPrecisionMs`, damage, a failed
//! sync) is rebuilt from the queue itself; entries the old index had delivered are skipped. A damaged or
//! unreadable parked record is logged at ERROR and skipped, never delivered wrong. A failed
//! delivery is retried after [`RETRY_AFTER`], logged once per failure streak.

use std::rc::Rc;
use std::time::{Duration, Instant};

use ferromq_store::record::decode_record;
use ferromq_store::store::now_ms;
use ferromq_store::timer::{TimerEntry, TimerGeometry, TimerIndex};
use ferromq_store::io::compio_fs::CompioStorage;
use ferromq_store::io::faulty::FaultyStorage;
use ferromq_store::{AckLevel, MessageInput, StoreError};
use futures_util::FutureExt;
use tracing::{error, info, warn};

use super::ctx::{ShardCtx, TimerStats};
use super::queue_reader::read_queue;
use crate::delay::{restored, timer_out_ms};
use crate::meta::topics::{TIMER_QUEUE, TIMER_TOPIC};

/// How far ahead a timer message goes into the wheel directly; later ones are rolled forward
/// (re-appended as a 32-byte entry) once per window. The wheel covers twice this.
pub const TIMER_WINDOW_MS: u64 = 3_600_000;
/// Parked records read from the timer topic per step.
const READ_BATCH_ENTRIES: u32 = 256;
/// Due entries delivered per step.
const DELIVER_BATCH_ENTRIES: usize = 256;
/// How often the index is made durable (when it changed).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// Wait before retrying a failed read, index operation or delivery.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest sleep without looking at the stop flag and the checkpoint (stops and new parked
/// records also wake the task through `timer_wake`).
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// The index on the shard store's own file system (and fault seam).
type Index = TimerIndex<FaultyStorage<CompioStorage>>;

/// Starts the deliverer if this shard owns the timer queue, on a master with the wheel on.
pub fn spawn(ctx: &Rc<ShardCtx>) -> Option<compio::runtime::JoinHandle<()>> {
    let config = ctx.control.config();
    if ctx.control.is_slave() || !config.timer.wheel_enable || ctx.owner(TIMER_TOPIC, TIMER_QUEUE) != ctx.id {
        return None;
    }
    let geometry = TimerGeometry {
        precision_ms: config.timer.precision_ms,
        window_ms: TIMER_WINDOW_MS,
        max_loaded_entries: config.timer.max_loaded_entries,
    };
    let ctx = ctx.clone();
    Some(compio::runtime::spawn(async move { run(ctx, geometry).await }))
}

/// Sleeps `duration` (at most [`MAX_SLEEP`]), less if the shard begins to stop or new parked
/// records arrive.
async fn pause(ctx: &ShardCtx, duration: Duration) {
    let listener = ctx.timer_wake.listen();
    if ctx.stopping.get() {
        return;
    }
    let sleep = compio::time::sleep(duration.min(MAX_SLEEP)).fuse();
    futures_util::future::select(std::pin::pin!(sleep), listener).await;
}

/// The task's state: the index and where it reads the timer queue.
struct Deliverer {
    ctx: Rc<ShardCtx>,
    index: Index,
    /// The next timer-queue offset to hand to the index.
    next: u64,
    /// Whether the index changed since its last checkpoint.
    changed: bool,
    /// A delivery failure streak is under way (logged once).
    failing: bool,
    /// A rebuild asked for and not yet done: (the delivered point, the queue offset indexed
    /// below) of the index being replaced.
    rebuild: Option<(i64, u64)>,
    /// Entries taken and delivered since `rate_since`, for the per-second rates.
    enqueued: u64,
    delivered: u64,
    rate_since: Instant,
    stats: TimerStats,
}

async fn run(ctx: Rc<ShardCtx>, geometry: TimerGeometry) {
    let dir = ctx.store.config().root_dir.join("timer");
    let (index, recovery) = loop {
        match TimerIndex::open(ctx.store.storage().clone(), &dir, geometry, now_ms()).await {
            Ok(opened) => break opened,
            Err(e) => {
                error!(shard = ctx.id.0, dir = %dir.display(), "timer index cannot be opened, retrying every {RETRY_AFTER:?}: {e}");
                pause(&ctx, RETRY_AFTER).await;
                if ctx.stopping.get() {
                    return;
                }
            }
        }
    };
    let (min, max) = ctx.store.queue_offsets(TIMER_TOPIC, TIMER_QUEUE);
    if let Some(why) = &recovery.rebuilt {
        if max.0 > min.0 {
            warn!(shard = ctx.id.0, "timer index rebuilt from {TIMER_TOPIC} offsets {}..{} ({why}); messages due before {} that it had indexed are skipped as delivered", min.0, max.0, recovery.delivered_through_ms);
        } else {
            info!(shard = ctx.id.0, "timer index created ({why})");
        }
    }
    let next = recovery.enqueue_from.unwrap_or(min.0);
    info!(shard = ctx.id.0, from = next, pending_to = max.0, precision_ms = geometry.precision_ms, "timer deliverer started");
    let mut d = Deliverer { ctx, index, next, changed: false, failing: false, rebuild: None, enqueued: 0, delivered: 0, rate_since: Instant::now(), stats: TimerStats::default() };
    let mut last_checkpoint = Instant::now();
    while !d.ctx.stopping.get() {
        let read_more = match d.step().await {
            Ok(read_more) => read_more,
            Err(e) => {
                d.on_index_error(e).await;
                pause(&d.ctx, RETRY_AFTER).await;
                continue;
            }
        };
        d.publish_stats();
        if d.changed && last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
            last_checkpoint = Instant::now();
            if let Err(e) = d.checkpoint().await {
                d.on_index_error(e).await;
            }
        }
        if read_more {
            // More parked records wait: go on, letting the shard's other tasks run first.
            ferromq_store::io::yield_now().await;
            continue;
        }
        let wake_in_ms = (d.index.next_wake_ms() - now_ms()).clamp(0, MAX_SLEEP.as_millis() as i64);
        pause(&d.ctx, Duration::from_millis(wake_in_ms as u64)).await;
    }
    if let Err(e) = d.checkpoint().await {
        error!(shard = d.ctx.id.0, "timer index: final checkpoint failed: {e}");
    }
}

impl Deliverer {
    /// Updates what GET_BROKER_RUNTIME_INFO reports; the rates once a second.
    fn publish_stats(&mut self) {
        let elapsed = self.rate_since.elapsed();
        if elapsed >= Duration::from_secs(1) {
            let per_sec = |n: u64| (n as f64 / elapsed.as_secs_f64()).round() as u64;
            self.stats.enqueue_per_sec = per_sec(self.enqueued);
            self.stats.dequeue_per_sec = per_sec(self.delivered);
            (self.enqueued, self.delivered, self.rate_since) = (0, 0, Instant::now());
        }
        self.stats.next_offset = self.next;
        self.stats.delivered_through_ms = self.index.delivered_through_ms();
        self.stats.loaded = self.index.loaded() as u64;
        self.ctx.timer_stats.set(self.stats);
    }

    /// Hands newly parked records to the index, then delivers what is due. `Ok(true)` when more
    /// parked records are waiting.
    async fn step(&mut self) -> Result<bool, StoreError> {
        if !self.try_rebuild().await {
            pause(&self.ctx, RETRY_AFTER).await;
            return Ok(false);
        }
        let read_more = self.take_parked().await?;
        loop {
            let due = self.index.poll_due(now_ms(), DELIVER_BATCH_ENTRIES).await?;
            if due.is_empty() {
                break;
            }
            self.changed = true;
            if !self.deliver(due).await {
                pause(&self.ctx, RETRY_AFTER).await;
                break;
            }
        }
        Ok(read_more)
    }

    /// Reads parked records from `next` and enqueues them. `Ok(true)` when it stopped before
    /// the end of the queue (a full read, or the index asked to deliver first).
    async fn take_parked(&mut self) -> Result<bool, StoreError> {
        let read = match read_queue(&self.ctx.store, TIMER_TOPIC, TIMER_QUEUE, self.next, READ_BATCH_ENTRIES).await {
            Ok(Some(read)) => read,
            Ok(None) => return Ok(false),
            Err(e) => {
                error!(offset = self.next, "timer: {e}");
                return Ok(false);
            }
        };
        if read.first > self.next {
            warn!(from = self.next, to = read.first, "timer: parked messages before the queue's oldest were removed by retention before they were indexed; not delivered");
            self.next = read.first;
        }
        let full = read.records.len() as u32 >= READ_BATCH_ENTRIES;
        for record in read.records {
            let view = record.as_deref().and_then(|bytes| decode_record(bytes, true).ok());
            let Some(view) = view else {
                error!(queue_offset = self.next, "timer: damaged parked record skipped, not delivered");
                self.next += 1;
                continue;
            };
            let due_ms = timer_out_ms(&view).unwrap_or_else(|| {
                error!(queue_offset = self.next, "timer: parked record without a readable TIMER_OUT_MS; delivering it now");
                now_ms()
            });
            if !self.index.enqueue(TimerEntry { due_ms, queue_offset: self.next }).await? {
                // Its ring slot frees once what is due is delivered.
                return Ok(true);
            }
            self.changed = true;
            self.enqueued += 1;
            self.next += 1;
        }
        Ok(full)
    }

    /// Delivers `due` to the real queues (one append per queue, acknowledged per the flush
    /// mode). `false`, with the undelivered entries back in the index, when an append failed.
    async fn deliver(&mut self, due: Vec<TimerEntry>) -> bool {
        // Rebuild each message; group by destination queue, keeping due order within a queue.
        let mut groups: Vec<(Vec<TimerEntry>, Vec<MessageInput>)> = Vec::new();
        for entry in due {
            let Some(message) = self.parked_message(entry.queue_offset).await else { continue };
            match groups.iter_mut().find(|(_, m)| m.first().is_some_and(|f| f.topic == message.topic && f.queue_id == message.queue_id)) {
                Some((entries, messages)) => {
                    entries.push(entry);
                    messages.push(message);
                }
                None => groups.push((vec![entry], vec![message])),
            }
        }
        let appends = groups.into_iter().map(|(entries, messages)| {
            let ctx = self.ctx.clone();
            async move {
                let Some(first) = messages.first() else { return (entries, None) };
                let (topic, queue_id) = (first.topic.clone(), first.queue_id);
                let owner = ctx.owner(&topic, queue_id);
                let appended = ctx.on(owner, move |owner_ctx, _slot| async move { owner_ctx.store.append_with(messages, AckLevel::FlushMode).await }).await;
                let failure = match appended {
                    Ok(Ok(_)) => None,
                    // Taken by the log, stored once the fault clears: delivering it again would
                    // store it twice.
                    Ok(Err(StoreError::StalledQueued(why))) => {
                        warn!(topic = &*topic, queue_id = %queue_id, "timer: delivery taken by a stalled log; stored once the fault clears: {why}");
                        None
                    }
                    Ok(Err(e)) => Some(format!("{topic}:{queue_id}: {e}")),
                    Err(e) => Some(format!("{topic}:{queue_id}: {}", e.remark)),
                };
                (entries, failure)
            }
        });
        let mut ok = true;
        for (entries, failure) in futures_util::future::join_all(appends).await {
            if failure.is_none() {
                self.delivered += entries.len() as u64;
            }
            if let Some(why) = failure {
                if !self.failing {
                    error!("timer: delivery failed, retrying every {RETRY_AFTER:?}: {why}");
                    self.failing = true;
                }
                self.index.put_back(entries);
                ok = false;
            }
        }
        if ok && self.failing {
            info!("timer: delivering again");
            self.failing = false;
        }
        ok
    }

    /// The parked record at `queue_offset`, rebuilt for its real queue; `None` (logged) when it
    /// is gone or cannot be delivered.
    async fn parked_message(&self, queue_offset: u64) -> Option<MessageInput> {
        let read = match read_queue(&self.ctx.store, TIMER_TOPIC, TIMER_QUEUE, queue_offset, 1).await {
            Ok(Some(read)) if read.first == queue_offset => read,
            Ok(_) => {
                error!(queue_offset, "timer: the parked message was removed (retention) before it was due; not delivered");
                return None;
            }
            Err(e) => {
                error!(queue_offset, "timer: parked message unreadable, not delivered: {e}");
                return None;
            }
        };
        let bytes = read.records.into_iter().next().flatten();
        let Some(view) = bytes.as_deref().and_then(|b| decode_record(b, true).ok()) else {
            error!(queue_offset, "timer: damaged parked record skipped, not delivered");
            return None;
        };
        match restored(&view) {
            Ok(message) => Some(message),
            Err(e) => {
                error!(queue_offset, "timer: parked record skipped, not delivered: {e}");
                None
            }
        }
    }

    async fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.index.checkpoint(self.next).await?;
        self.changed = false;
        Ok(())
    }

    /// A damaged index, or one whose sync failed (after a failed fdatasync the page cache no
    /// longer says what is on disk), is rebuilt from the timer queue: what it had delivered is
    /// skipped. Any other error (a full disk, no descriptors) is logged and the step retried.
    async fn on_index_error(&mut self, e: StoreError) {
        let rebuild = match &e {
            StoreError::CorruptFile { .. } => true,
            StoreError::Io { op, .. } => op.makes_durable(),
            _ => false,
        };
        if !rebuild {
            error!(shard = self.ctx.id.0, "timer index: {e}; retrying every {RETRY_AFTER:?}");
            return;
        }
        error!(shard = self.ctx.id.0, "timer index unusable ({e}); rebuilding it from {TIMER_TOPIC}");
        if self.rebuild.is_none() {
            self.rebuild = Some((self.index.delivered_through_ms(), self.next));
        }
        self.try_rebuild().await;
    }

    /// Resets the index for a rebuild asked by [`Deliverer::on_index_error`]; `false` (logged,
    /// retried at the next step) while the reset fails.
    async fn try_rebuild(&mut self) -> bool {
        let Some((delivered, indexed_below)) = self.rebuild else { return true };
        match self.index.reset(delivered, indexed_below, now_ms()).await {
            Ok(()) => {
                let (min, _) = self.ctx.store.queue_offsets(TIMER_TOPIC, TIMER_QUEUE);
                info!(shard = self.ctx.id.0, from = min.0, "timer index reset; re-reading {TIMER_TOPIC}");
                self.next = min.0;
                self.rebuild = None;
                true
            }
            Err(e) => {
                error!(shard = self.ctx.id.0, "timer index cannot be reset yet, retrying every {RETRY_AFTER:?}: {e}");
                false
            }
        }
    }
}
