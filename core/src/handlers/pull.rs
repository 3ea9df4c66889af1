//! Consumer path: PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361) with long polling
//! (PROTOCOL.md §2.2, §6.3).
//!
//! Checks run on the connection's shard; the read and any long-poll hold run on the queue's
//! owner shard, where appends wake held pulls. Every one of the four normal answers carries
//! suggestWhichBrokerId, nextBeginOffset, minOffset and maxOffset (the Java client unboxes
//! them unconditionally). `suggestWhichBrokerId` follows §7.6 ([`Steering`]): 0 (the master)
//! unless `slaveReadEnable` lets the group's `brokerId` through; a slave whose master is online
//! always answers 0, and PULL_RETRY_IMMEDIATELY for anything but found messages; a slave never
//! moves a consumer's offset (PULL_OFFSET_MOVED becomes PULL_RETRY_IMMEDIATELY at the offset
//! asked for, as Java with `offsetCheckInSlave=false`).

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::codes::response_code as code;
use ferromq_net::conn::FileSegment;
use ferromq_store::{LogFile, PullResult, PullStatus, QueueId, QueueOffset, TagFilter};

use super::reply::Reply;
use crate::control::plane::offset_key;
use crate::error::{BrokerError, BrokerResult};
use crate::header::Header;
use crate::meta::topics::PERM_READ;
use crate::shard::{JobSlot, MAX_PULL_SUSPEND, ShardCtx, Wake};

/// PullSysFlag bits (§2.2).
const FLAG_COMMIT_OFFSET: i32 = 1;
const FLAG_SUSPEND: i32 = 2;
const FLAG_SUBSCRIPTION: i32 = 4;

/// The largest `maxMsgNums` honoured; the store caps bytes per pull as well.
const MAX_PULL_MESSAGES: u32 = 1024;

/// The pull header (PullMessageRequestHeader, §2.2).
struct PullHeader<'a> {
    group: &'a str,
    topic: &'a str,
    queue_id: QueueId,
    /// As sent: a negative offset is below every queue's min offset, answered as the store's
    /// OFFSET_TOO_SMALL (Java compares the signed value; see [`below_every_queue`]).
    queue_offset: i64,
    max_messages: u32,
    sys_flag: i32,
    /// Piggy-backed commit (with FLAG_COMMIT_OFFSET); negative: none.
    commit_offset: i64,
    suspend: Duration,
    subscription: Option<&'a str>,
    /// `TAG` (also when absent or empty) or `SQL92`.
    expression_type: Option<&'a str>,
}

impl<'a> PullHeader<'a> {
    fn parse(request: &'a RemotingCommand) -> BrokerResult<PullHeader<'a>> {
        let h = Header::of(request);
        Ok(PullHeader {
            group: h.str("consumerGroup")?,
            topic: h.str("topic")?,
            queue_id: h.queue_id("queueId")?,
            queue_offset: h.i64("queueOffset")?,
            // More than the cap is served as the cap (the client asks again for the rest).
            max_messages: h.i32("maxMsgNums")?.clamp(1, MAX_PULL_MESSAGES as i32) as u32,
            sys_flag: h.i32("sysFlag")?,
            commit_offset: h.opt_i64("commitOffset")?.unwrap_or(-1),
            suspend: Duration::from_millis(h.opt_i64("suspendTimeoutMillis")?.unwrap_or(0).max(0) as u64),
            subscription: h.opt_str("subscription").filter(|s| !s.trim().is_empty()),
            expression_type: h.opt_str("expressionType").map(str::trim).filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("TAG")),
        })
    }
}

/// A TAG expression (`"TagA || TagB"`, `"*"`) as the store's tag-hash filter.
pub fn tag_filter(expression: &str) -> TagFilter {
    let tags: Vec<&str> = expression.split("||").map(str::trim).filter(|t| !t.is_empty()).collect();
    if tags.is_empty() || tags.contains(&"*") {
        return TagFilter::All;
    }
    TagFilter::Codes(tags.iter().map(|t| ferromq_store::record::java_string_hash(t)).collect())
}

/// 11 / 361. Found messages are answered as file segments ([`Reply::Messages`]: `sendfile`,
/// or one copied `writev` when they are many small ranges; the connection decides).
pub async fn pull(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<Reply> {
    let header = PullHeader::parse(request)?;
    let control = &ctx.control;
    let view = control.view();
    if view.broker_permission & PERM_READ == 0 {
        return Err(BrokerError::no_permission(format!("the broker[{}] pulling message is forbidden", control.identity().broker_name)));
    }
    // A group the broker did not create (auto-creation off, or beyond its limit) is refused,
    // as a Java broker refuses it with autoCreateSubscriptionGroup=false.
    view.check_group(header.group)?;
    let topic = view.topic(header.topic).ok_or_else(|| BrokerError::topic_not_exist(header.topic))?;
    if topic.perm & PERM_READ == 0 {
        return Err(BrokerError::no_permission(format!("the topic[{}] pulling message is forbidden", header.topic)));
    }
    if header.queue_id.0 >= topic.read_queue_nums.max(0) as u32 {
        return Err(BrokerError::system(format!(
            "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
            header.queue_id, header.topic, topic.read_queue_nums
        )));
    }
    let filter = if header.sys_flag & FLAG_SUBSCRIPTION != 0 {
        match header.expression_type {
            None => Arc::new(tag_filter(header.subscription.unwrap_or("*"))),
            Some(kind) => Arc::new(crate::selector::expression_filter(kind, header.subscription.unwrap_or(""), control.config().consumer.enable_property_filter)?),
        }
    } else {
        view.subscription(header.group, header.topic)
            .cloned()
            .ok_or_else(|| BrokerError::new(code::SUBSCRIPTION_NOT_EXIST, format!("the consumer's subscription not exist, group: {}", header.group)))??
    };
    let steering = Steering::of(control, &view, header.group);
    drop(view);
    // The piggy-backed offset commit happens on first processing, whatever the read finds. A
    // slave stores none (§7.5, as Java): a client reading from a slave commits to the master.
    if header.sys_flag & FLAG_COMMIT_OFFSET != 0 && header.commit_offset >= 0 && !control.is_slave() {
        ctx.offsets.commit(offset_key(header.group, header.topic, header.queue_id), header.commit_offset).await;
    }
    // How long the pull may be held: the client's suspension, or the short-polling time when
    // long polling is off; a slave sending the client back to its master holds nothing (the
    // answer is PULL_RETRY_IMMEDIATELY anyway).
    let suspend = if header.sys_flag & FLAG_SUSPEND == 0 || steering.to_master {
        Duration::ZERO
    } else if control.config().consumer.long_polling_enable {
        header.suspend.min(MAX_PULL_SUSPEND)
    } else {
        Duration::from_millis(control.config().consumer.short_polling_time_ms).min(MAX_PULL_SUSPEND)
    };

    let owner = ctx.owner(header.topic, header.queue_id);
    let (topic_name, queue_id, offset, max_messages) = (header.topic.to_owned(), header.queue_id, header.queue_offset, header.max_messages);
    let (result, segments) = ctx
        .on(owner, move |owner_ctx, slot| async move {
            let Ok(offset) = u64::try_from(offset) else { return Ok((below_every_queue(&owner_ctx, &topic_name, queue_id), Vec::new())) };
            read_or_hold(&owner_ctx, &slot, &topic_name, queue_id, offset, max_messages, &filter, suspend).await
        })
        .await??;
    if is_found(&result) {
        ctx.runtime_stats.count_group_get(header.group, header.topic, result.message_count);
        if ctx.metrics.enabled() {
            let bytes = segments.iter().map(|s| u64::from(s.len)).sum();
            ctx.metrics.count_out(header.topic, header.group, u64::from(result.message_count), bytes);
        }
    }
    // Every pull moves the group's pull offset, as Java's `commitPullOffset` does.
    ctx.runtime_stats.note_pull_offset(header.group, header.topic, header.queue_id, result.next_begin_offset.0, ferromq_store::store::now_ms());
    let response = pull_response(request, header.queue_offset, &result, steering);
    Ok(if segments.is_empty() { Reply::Response(response) } else { Reply::Messages(response, segments) })
}

/// Where a pull answer sends the consumer next (§7.6), and how a slave answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Steering {
    /// `suggestWhichBrokerId`.
    suggest: u64,
    /// A slave whose master is online: every answer but FOUND becomes PULL_RETRY_IMMEDIATELY,
    /// so the client goes straight to the master.
    to_master: bool,
    /// A slave: it never moves a consumer's offset (below).
    slave: bool,
    /// The group's `brokerId`, which a slave suggests instead of moving an offset.
    group_broker: u64,
    /// With `slaveReadEnable` on a master: a consumer reading further behind its shard's log
    /// head than this many bytes is suggested the group's `whichBrokerWhenConsumeSlowly`
    /// (`slow_broker`), as Java's `suggestPullingFromSlave`.
    slow_after_bytes: Option<u64>,
    slow_broker: u64,
}

impl Steering {
    /// With `slaveReadEnable`, the group's `brokerId` (0 unless set), or its
    /// `whichBrokerWhenConsumeSlowly` for a consumer reading cold data (see
    /// [`Steering::for_result`]); else 0. A slave answers 0 whenever its master is online.
    fn of(control: &crate::control::ControlHandle, view: &crate::control::ControlView, group: &str) -> Steering {
        let (slave, read) = (control.is_slave(), view.group_read_brokers(group));
        let group_broker = read.usual;
        if slave && control.master_online() {
            return Steering { suggest: 0, to_master: true, slave, group_broker, slow_after_bytes: None, slow_broker: 0 };
        }
        let config = control.config();
        if !config.consumer.slave_read_enable {
            return Steering { suggest: 0, to_master: false, slave, group_broker, slow_after_bytes: None, slow_broker: 0 };
        }
        // Java compares the distance from the whole commit log's head with a share of the
        // machine's memory; here each shard's log grows at its share of the writes.
        let slow_after_bytes = physical_memory_bytes().filter(|_| !slave).map(|memory| {
            memory / 100 * u64::from(config.consumer.access_message_in_memory_max_ratio_pct) / u64::from(config.effective_shards().max(1))
        });
        Steering { suggest: group_broker, to_master: false, slave, group_broker, slow_after_bytes, slow_broker: read.when_slow }
    }

    /// The broker to suggest for this result: the slow-consumer broker when the records read
    /// lie further behind the log head than the memory share.
    fn for_result(&self, result: &PullResult) -> u64 {
        match self.slow_after_bytes {
            Some(limit) if result.behind_bytes > limit => self.slow_broker,
            _ => self.suggest,
        }
    }
}

/// The machine's physical memory (sysinfo(2)), if known.
fn physical_memory_bytes() -> Option<u64> {
    // SAFETY: an all-zero `sysinfo` is a valid value of this plain C struct.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: sysinfo(2) only writes into the struct we own and pass by pointer.
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return None;
    }
    Some((info.totalram as u64).saturating_mul(u64::from(info.mem_unit)))
}

/// On the owner shard: reads, and while nothing is found and the client allows it, holds the
/// pull until messages arrive or the suspension ends. Returns the result and, for found
/// messages, the segments to send.
#[allow(clippy::too_many_arguments)]
async fn read_or_hold(
    ctx: &Rc<ShardCtx>,
    slot: &JobSlot,
    topic: &str,
    queue_id: QueueId,
    offset: u64,
    max_messages: u32,
    filter: &TagFilter,
    suspend: Duration,
) -> BrokerResult<(PullResult, Vec<FileSegment>)> {
    let deadline = Instant::now() + suspend;
    loop {
        let result = ctx.store.get_message(topic, queue_id, QueueOffset(offset), max_messages, filter).await?;
        // Every read counts, as Java's store counts each getMessage (a held pull's too).
        ctx.runtime_stats.count_get(if is_found(&result) { result.message_count } else { 0 });
        let hold = nothing_new(&result, offset as i64) && Instant::now() < deadline;
        if hold {
            // A held pull is bounded by maxHeldPullsPerShard, not by the executor's cap.
            slot.release();
            if ctx.held.wait(topic, queue_id, deadline).await == Wake::Arrived {
                continue;
            }
        }
        let segments = if is_found(&result) { file_segments(ctx, &result)? } else { Vec::new() };
        return Ok((result, segments));
    }
}

/// The store's answer to a negative offset, as Java's `getMessage` gives it for any offset
/// below the min offset on a master: NO_MESSAGE_IN_QUEUE when the queue is empty (next 0),
/// else OFFSET_TOO_SMALL with next = min offset — both PULL_OFFSET_MOVED, since the requested
/// offset is not 0. (A negative offset used to read as 0 and answer FOUND.)
fn below_every_queue(ctx: &Rc<ShardCtx>, topic: &str, queue_id: QueueId) -> PullResult {
    let (min, max) = ctx.store.queue_offsets(topic, queue_id);
    let empty = max.0 == 0;
    PullResult {
        status: if empty { PullStatus::NoMessageInQueue } else { PullStatus::OffsetTooSmall },
        next_begin_offset: if empty { QueueOffset(0) } else { min },
        min_offset: min,
        max_offset: max,
        ranges: Vec::new(),
        message_count: 0,
        total_bytes: 0,
        behind_bytes: 0,
    }
}

fn is_found(result: &PullResult) -> bool {
    result.status == PullStatus::Found && result.message_count > 0
}

/// The log ranges of a pull as file segments to send: each range's segment file, shared (the
/// store keeps one descriptor per segment; adjacent records are already coalesced into one
/// range by the store).
fn file_segments(ctx: &Rc<ShardCtx>, result: &PullResult) -> BrokerResult<Vec<FileSegment>> {
    let mut segments = Vec::with_capacity(result.ranges.len());
    for range in &result.ranges {
        let LogFile { file, position, settled_end } = ctx.store.log_file(*range)?;
        segments.push(FileSegment { file, offset: position, len: range.len, settled_end });
    }
    Ok(segments)
}

/// Whether the reader is simply caught up (PULL_NOT_FOUND), the one case long polling holds.
fn nothing_new(result: &PullResult, requested_offset: i64) -> bool {
    match result.status {
        PullStatus::OffsetOverflowOne | PullStatus::OffsetFoundNull => true,
        PullStatus::NoMessageInQueue | PullStatus::NoMatchedLogicQueue => requested_offset == 0,
        _ => false,
    }
}

/// Maps the store's status onto the four normal pull answers (§2.2, §6.3), steered (§7.6).
fn pull_response(request: &RemotingCommand, requested_offset: i64, result: &PullResult, steering: Steering) -> RemotingCommand {
    let (mut status, remark) = match result.status {
        PullStatus::Found if result.message_count > 0 => (code::SUCCESS, "FOUND"),
        PullStatus::Found | PullStatus::NoMatchedMessage | PullStatus::MessageWasRemoving => (code::PULL_RETRY_IMMEDIATELY, "NO_MATCHED_MESSAGE"),
        _ if nothing_new(result, requested_offset) => (code::PULL_NOT_FOUND, "NO_NEW_MESSAGE"),
        PullStatus::OffsetOverflowOne
        | PullStatus::OffsetFoundNull
        | PullStatus::NoMessageInQueue
        | PullStatus::NoMatchedLogicQueue
        | PullStatus::OffsetOverflowBadly
        | PullStatus::OffsetTooSmall => (code::PULL_OFFSET_MOVED, "OFFSET_ILLEGAL"),
    };
    let (mut suggest, mut next_begin_offset) = (steering.for_result(result), result.next_begin_offset.0);
    if steering.slave {
        // A slave's replica may lag its master's log or start later: an offset it does not
        // hold is not an illegal one. As Java with `offsetCheckInSlave=false`
        // (`nextOffsetCorrection`), it answers with the offset asked for, and turns
        // PULL_OFFSET_MOVED into PULL_RETRY_IMMEDIATELY towards the group's broker, so no
        // consumer's offset is ever moved by a slave.
        if !matches!(result.status, PullStatus::Found | PullStatus::NoMatchedMessage | PullStatus::MessageWasRemoving) && requested_offset >= 0 {
            next_begin_offset = requested_offset as u64;
        }
        if status == code::PULL_OFFSET_MOVED {
            status = code::PULL_RETRY_IMMEDIATELY;
            suggest = if steering.to_master { 0 } else { steering.group_broker };
        }
    }
    if steering.to_master && status != code::SUCCESS {
        status = code::PULL_RETRY_IMMEDIATELY;
    }
    RemotingCommand::response(status, request.opaque, Some(remark.to_owned()))
        .with_ext("suggestWhichBrokerId", suggest)
        .with_ext("nextBeginOffset", next_begin_offset)
        .with_ext("minOffset", result.min_offset.0)
        .with_ext("maxOffset", result.max_offset.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_expressions() {
        assert_eq!(tag_filter("*"), TagFilter::All);
        assert_eq!(tag_filter(""), TagFilter::All);
        assert_eq!(tag_filter("TagA || TagB"), TagFilter::Codes(vec![2598919, 2598920]));
        assert_eq!(tag_filter(" TagA "), TagFilter::Codes(vec![2598919]));
    }
}
