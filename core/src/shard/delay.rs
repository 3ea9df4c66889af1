//! The delay-level deliverers (PROTOCOL.md §9.3): one task per delay level, on the shard that
//! owns the level's queue of `SCHEDULE_TOPIC_XXXX`.
//!
//! A deliverer walks its queue from the level's persisted offset (`delayOffset.json`, owned by
//! the control plane). Every record of a level has the same delay, so the queue is due in
//! order: the task sleeps until its head is due, appends the restored message to its real queue
//! (on that queue's owner shard, acknowledged per the flush mode so that a delivered message is
//! as durable as a sent one before the level's offset moves past it), and reports the new
//! offset to the control plane after each batch. With nothing queued it waits for the store's
//! dispatch of new schedule entries — no polling. A restart resumes from the last persisted
//! offset: messages delivered after it are delivered again (at least once, as in Java).
//!
//! A record that cannot be restored (no `REAL_TOPIC`, a bad `REAL_QID`, a failed CRC) is
//! logged at ERROR with its level and offset and skipped: it is never delivered wrong. A
//! failed append (store full, busy, shard stopping) is retried after [`RETRY_AFTER`], logged
//! once per failure streak.

use std::rc::Rc;
use std::time::Duration;

use ferromq_store::AckLevel;
use ferromq_store::record::decode_record;
use ferromq_store::store::now_ms;
use futures_util::FutureExt;
use tracing::{error, info, warn};

use super::ctx::ShardCtx;
use super::queue_reader::read_queue;
use crate::control::Command;
use crate::delay::{due_ms, restored, schedule_queue};
use crate::meta::topics::SCHEDULE_TOPIC;

/// Schedule entries read per step.
const READ_BATCH_ENTRIES: u32 = 32;
/// Wait before retrying a failed read or delivery.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest sleep without looking at the stop flag (stops are also signalled on the wake event).
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Starts the deliverers of the delay levels this shard owns, as one task. They read their
/// start offsets from the control plane first (which may start after the shards). A slave
/// delivers nothing (it appends nothing; its master delivers, and the slave copies the
/// master's delay offsets, §7.5): the task ends at once.
pub fn spawn(ctx: &Rc<ShardCtx>) -> compio::runtime::JoinHandle<()> {
    let ctx = ctx.clone();
    compio::runtime::spawn(async move {
        if ctx.control.is_slave() {
            return;
        }
        let levels: Vec<(u32, u64)> = ctx
            .delay_levels_ms
            .iter()
            .enumerate()
            .map(|(i, ms)| (i as u32 + 1, *ms))
            .filter(|(level, _)| ctx.owner(SCHEDULE_TOPIC, schedule_queue(*level)) == ctx.id)
            .collect();
        if levels.is_empty() {
            return;
        }
        let offsets = match ctx.control.call(|reply| Command::DelayOffsets { reply }).await {
            Ok(offsets) => offsets,
            Err(e) => {
                error!(shard = ctx.id.0, "delayed delivery not started: {e}");
                return;
            }
        };
        let deliverers = levels.into_iter().map(|(level, delay_ms)| {
            let start = offsets.get(&level).copied().unwrap_or(0).max(0) as u64;
            deliver_level(ctx.clone(), level, delay_ms, start)
        });
        futures_util::future::join_all(deliverers).await;
    })
}

/// Ends the deliverers: each finishes the message in hand and reports its offset.
pub async fn stop(ctx: &ShardCtx, task: compio::runtime::JoinHandle<()>) {
    ctx.stopping.set(true);
    ctx.schedule_wake.notify(usize::MAX);
    let _ = task.await;
}

/// Sleeps `duration`, or less if the shard begins to stop or (with `wake_early`) new schedule
/// entries arrive.
async fn pause(ctx: &ShardCtx, duration: Duration, wake_early: bool) {
    let listener = ctx.schedule_wake.listen();
    if ctx.stopping.get() {
        return;
    }
    let sleep = compio::time::sleep(duration.min(MAX_SLEEP)).fuse();
    if wake_early {
        futures_util::future::select(std::pin::pin!(sleep), listener).await;
    } else {
        // Only a stop ends this sleep early: the queue head is what we are waiting for.
        let stop = async {
            loop {
                let listener = ctx.schedule_wake.listen();
                if ctx.stopping.get() {
                    return;
                }
                listener.await;
            }
        };
        futures_util::future::select(std::pin::pin!(sleep), std::pin::pin!(stop)).await;
    }
}

async fn deliver_level(ctx: Rc<ShardCtx>, level: u32, delay_ms: u64, start: u64) {
    let queue = schedule_queue(level);
    let mut next = start;
    let mut reported = start;
    let mut failing = false;
    info!(shard = ctx.id.0, level, delay_ms, from = next, "delay level deliverer started");
    'reads: while !ctx.stopping.get() {
        let read = match read_queue(&ctx.store, SCHEDULE_TOPIC, queue, next, READ_BATCH_ENTRIES).await {
            Ok(Some(read)) => read,
            Ok(None) => {
                report(&ctx, level, next, &mut reported).await;
                pause(&ctx, MAX_SLEEP, true).await;
                continue;
            }
            Err(e) => {
                error!(level, offset = next, "delay level: {e}");
                pause(&ctx, RETRY_AFTER, false).await;
                continue;
            }
        };
        if read.first > next {
            warn!(level, from = next, to = read.first, "delay level: entries before its offset were removed by retention; skipping to the oldest");
            next = read.first;
        }
        for record in read.records {
            // The CRC is checked here: a damaged record is never delivered.
            let Some(view) = record.as_deref().and_then(|bytes| decode_record(bytes, true).ok()) else {
                error!(level, queue_offset = next, "delay level: damaged record skipped, not delivered");
                next += 1;
                continue;
            };
            // Wait for the head to be due.
            loop {
                if ctx.stopping.get() {
                    break 'reads;
                }
                let now = now_ms();
                let due = due_ms(view.store_timestamp_ms, delay_ms, now);
                if due <= now {
                    break;
                }
                report(&ctx, level, next, &mut reported).await;
                pause(&ctx, Duration::from_millis((due - now) as u64), false).await;
            }
            let message = match restored(&view) {
                Ok(message) => message,
                Err(e) => {
                    error!(level, queue_offset = next, "delay level: record skipped, not delivered: {e}");
                    next += 1;
                    continue;
                }
            };
            let owner = ctx.owner(&message.topic, message.queue_id);
            let (topic, queue_id) = (message.topic.clone(), message.queue_id);
            let delivered = ctx.on(owner, move |owner_ctx, _slot| async move { owner_ctx.store.append_with(vec![message], AckLevel::FlushMode).await }).await;
            let failure = match delivered {
                Ok(Ok(_)) => None,
                // Taken by the log, stored once the fault clears: delivering it again would
                // store it twice.
                Ok(Err(ferromq_store::StoreError::StalledQueued(why))) => {
                    warn!(level, queue_offset = next, "delay level: delivery taken by a stalled log; stored once the fault clears: {why}");
                    None
                }
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.remark),
            };
            match failure {
                None => {
                    if failing {
                        info!(level, "delay level: delivering again");
                        failing = false;
                    }
                    next += 1;
                }
                Some(why) => {
                    if !failing {
                        error!(level, queue_offset = next, topic = &*topic, queue_id = %queue_id, "delay level: delivery failed, retrying every {RETRY_AFTER:?}: {why}");
                        failing = true;
                    }
                    pause(&ctx, RETRY_AFTER, false).await;
                    continue 'reads;
                }
            }
        }
        report(&ctx, level, next, &mut reported).await;
    }
    report(&ctx, level, next, &mut reported).await;
}

/// Tells the control plane the level's progress if it moved.
async fn report(ctx: &ShardCtx, level: u32, next: u64, reported: &mut u64) {
    if next == *reported {
        return;
    }
    if ctx.control.tell(Command::CommitDelayOffset { level, offset: next as i64 }).await.is_ok() {
        *reported = next;
    }
}
