//! The transaction check-back task (PROTOCOL.md §10.2 step 6), on the shard that owns the half
//! queue (`RMQ_SYS_TRANS_HALF_TOPIC` queue 0).
//!
//! Every `transactionCheckInterval` it reads the op queue for half offsets that were committed
//! or rolled back, then walks the half queue from its progress offset: a resolved half message
//! is passed; one younger than `transactionTimeOut` (or its producer's
//! `CHECK_IMMUNITY_TIME_IN_SECONDS`) ends the pass; one checked `transactionCheckMax` times is
//! copied to `TRANS_CHECK_MAX_TIME_TOPIC` and passed; any other is stored again with
//! `TRANSACTION_CHECK_TIMES` + 1 and CHECK_TRANSACTION_STATE is sent for that copy to one live
//! producer of its group (the control plane picks the connection). The progress is kept as
//! Java keeps it, as the offsets of the group `CID_RMQ_SYS_TRANS` on the half and op queues
//! (`consumerOffset.json`), so a restart resumes where the last persisted pass got to: state is
//! rebuilt from the half and op topics. An op offset is committed only once every half offset
//! it names is behind the half progress, so no resolution is forgotten across a restart.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use ferromq_store::record::decode_record;
use ferromq_store::store::now_ms;
use tracing::{debug, error, info, warn};

use super::ctx::ShardCtx;
use super::queue_reader::{QueueRecords, read_queue};
use crate::control::{Command, OffsetKey};
use crate::meta::topics::{TRANS_HALF_TOPIC, TRANS_OP_HALF_TOPIC};
use crate::transaction::{CHECKER_GROUP, HALF_QUEUE, check_request, discarded, half_copy, half_info, op_offsets};

/// Records read per step.
const READ_BATCH_ENTRIES: u32 = 32;

/// Starts the check-back task if this shard owns the half queue and the broker is a master
/// (a slave resolves no transactions: END_TRANSACTION is its master's, §7.5).
pub fn spawn(ctx: &Rc<ShardCtx>) -> Option<compio::runtime::JoinHandle<()>> {
    if ctx.owner(TRANS_HALF_TOPIC, HALF_QUEUE) != ctx.id || ctx.control.is_slave() {
        return None;
    }
    Some(compio::runtime::spawn(run(ctx.clone())))
}

/// What the checker keeps between passes.
struct Progress {
    /// Next half queue offset to look at.
    half_next: u64,
    /// Next op queue offset to read.
    op_next: u64,
    /// Resolved half offsets not yet passed → the op queue offset that resolved them.
    done: BTreeMap<u64, u64>,
}

async fn run(ctx: Rc<ShardCtx>) {
    let config = ctx.control.config();
    let interval = Duration::from_millis(config.transaction.check_interval_ms);
    let query = |topic: &str| {
        let key = OffsetKey { group: CHECKER_GROUP.to_owned(), topic: topic.to_owned(), queue_id: HALF_QUEUE };
        ctx.control.call(move |reply| Command::QueryOffset { key, reply })
    };
    let (half_next, op_next) = match (query(TRANS_HALF_TOPIC).await, query(TRANS_OP_HALF_TOPIC).await) {
        (Ok(half), Ok(op)) => (half.unwrap_or(0).max(0) as u64, op.unwrap_or(0).max(0) as u64),
        _ => {
            error!(shard = ctx.id.0, "transaction check-back not started: the control plane stopped");
            return;
        }
    };
    let mut progress = Progress { half_next, op_next, done: BTreeMap::new() };
    info!(shard = ctx.id.0, half_offset = half_next, op_offset = op_next, "transaction check-back started");
    loop {
        if sleep_unless_stopping(&ctx, interval).await {
            return;
        }
        if let Err(e) = check_pass(&ctx, &mut progress).await {
            warn!("transaction check-back pass ended early: {e}");
        }
        let op_committed = progress.done.values().min().copied().unwrap_or(progress.op_next);
        let commits = vec![
            (OffsetKey { group: CHECKER_GROUP.to_owned(), topic: TRANS_HALF_TOPIC.to_owned(), queue_id: HALF_QUEUE }, progress.half_next as i64),
            (OffsetKey { group: CHECKER_GROUP.to_owned(), topic: TRANS_OP_HALF_TOPIC.to_owned(), queue_id: HALF_QUEUE }, op_committed as i64),
        ];
        if ctx.control.tell(Command::CommitOffsets { commits }).await.is_err() {
            return;
        }
    }
}

/// Sleeps `duration` in steps of at most a second; true when the shard began to stop.
async fn sleep_unless_stopping(ctx: &ShardCtx, duration: Duration) -> bool {
    let mut left = duration;
    while !left.is_zero() {
        if ctx.stopping.get() {
            return true;
        }
        let step = left.min(Duration::from_secs(1));
        compio::time::sleep(step).await;
        left -= step;
    }
    ctx.stopping.get()
}

async fn check_pass(ctx: &Rc<ShardCtx>, progress: &mut Progress) -> Result<(), String> {
    let config = ctx.control.config();
    let pass_start_ms = now_ms();
    // 1. Resolutions recorded since the last pass.
    loop {
        let Some(QueueRecords { first, records }) = read_queue(&ctx.store, TRANS_OP_HALF_TOPIC, HALF_QUEUE, progress.op_next, READ_BATCH_ENTRIES).await? else { break };
        progress.op_next = first;
        for record in records {
            if let Some(bytes) = record
                && let Ok(view) = decode_record(&bytes, true)
            {
                for half in op_offsets(view.body).filter(|h| *h >= progress.half_next) {
                    progress.done.insert(half, progress.op_next);
                }
            }
            progress.op_next += 1;
        }
    }
    // 2. The half messages, oldest first.
    loop {
        let Some(QueueRecords { first, records }) = read_queue(&ctx.store, TRANS_HALF_TOPIC, HALF_QUEUE, progress.half_next, READ_BATCH_ENTRIES).await? else { return Ok(()) };
        if first > progress.half_next {
            progress.done.retain(|half, _| *half >= first);
            progress.half_next = first;
        }
        for record in records {
            let offset = progress.half_next;
            if ctx.stopping.get() {
                return Ok(());
            }
            if progress.done.remove(&offset).is_some() {
                progress.half_next += 1;
                continue;
            }
            let Some(bytes) = record else {
                error!(half_offset = offset, "transaction check-back: damaged half record skipped");
                progress.half_next += 1;
                continue;
            };
            let Ok(view) = decode_record(&bytes, true) else {
                error!(half_offset = offset, "transaction check-back: damaged half record skipped");
                progress.half_next += 1;
                continue;
            };
            if view.store_timestamp_ms >= pass_start_ms {
                // Stored during this pass (a copy this pass made): the next pass looks at it.
                return Ok(());
            }
            let info = match half_info(&view) {
                Ok(info) => info,
                Err(e) => {
                    error!(half_offset = offset, "transaction check-back: half record skipped: {e}");
                    progress.half_next += 1;
                    continue;
                }
            };
            if info.check_times >= config.transaction.check_max {
                warn!(
                    half_offset = offset, topic = info.real_topic, producer_group = info.producer_group, msg_id = info.uniq_key,
                    checks = info.check_times, "transaction never resolved: discarded to TRANS_CHECK_MAX_TIME_TOPIC"
                );
                let copy = discarded(&view, info.check_times);
                let topic = copy.topic.to_string();
                ctx.control
                    .call(|reply| Command::InternalTopic { topic, queue_nums: 1, reply })
                    .await
                    .map_err(|e| e.remark)?
                    .map_err(|e| e.remark)?;
                let owner = ctx.owner(&copy.topic, copy.queue_id);
                ctx.on(owner, move |owner_ctx, _| async move { owner_ctx.store.append(vec![copy]).await })
                    .await
                    .map_err(|e| e.remark)?
                    .map_err(|e| format!("cannot store the discarded half message: {e}"))?;
                progress.half_next += 1;
                continue;
            }
            let immunity_ms = info.immunity_ms.unwrap_or(0).max(config.transaction.timeout_ms);
            if now_ms().saturating_sub(view.born_timestamp_ms) < immunity_ms as i64 {
                // Too young to ask about; so is everything after it.
                return Ok(());
            }
            let copy = half_copy(&view, TRANS_HALF_TOPIC, info.check_times + 1);
            let stored = ctx.store.append(vec![copy.clone()]).await.map_err(|e| format!("cannot store the half message for its check: {e}"))?;
            let request = Box::new(check_request(&copy, &info, stored.queue_offset.0, stored.client_offset, stored.store_timestamp_ms));
            let producer_group = info.producer_group.clone();
            match ctx.control.call(|reply| Command::CheckTransaction { producer_group, request, reply }).await {
                Ok(true) => debug!(half_offset = offset, producer_group = info.producer_group, "transaction check sent"),
                Ok(false) => debug!(half_offset = offset, producer_group = info.producer_group, "no producer of the group is online: checked again next pass"),
                Err(e) => return Err(e.remark),
            }
            progress.half_next += 1;
        }
    }
}
