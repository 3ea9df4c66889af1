//! Consumer path: PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361) with long polling
//! (PROTOCOL.md §2.2, §6.3).
//!
//! Checks run on the connection's shard; the read and any long-poll hold run on the queue's
//! owner shard, where appends wake held pulls. Every one of the four normal answers carries
//! suggestWhichBrokerId, nextBeginOffset, minOffset and maxOffset (the Java client unboxes
//! them unconditionally).

use std::rc::Rc;
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::codes::response_code as code;
use ferromq_net::conn::{Connection, FileSegment};
use ferromq_store::{PullResult, PullStatus, QueueOffset, TagFilter};

use crate::meta::topics::PERM_READ;
use crate::shard::{MAX_PULL_SUSPEND, ShardCtx, Wake};

/// PullSysFlag bits (§2.2).
const FLAG_COMMIT_OFFSET: i32 = 1;
const FLAG_SUSPEND: i32 = 2;
const FLAG_SUBSCRIPTION: i32 = 4;

/// The largest `maxMsgNums` honoured; the store caps bytes per pull as well.
const MAX_PULL_MESSAGES: u32 = 1024;

struct PullHeader {
    group: String,
    topic: String,
    queue_id: u32,
    queue_offset: u64,
    max_messages: u32,
    sys_flag: i32,
    commit_offset: i64,
    suspend: Duration,
    subscription: Option<String>,
}

impl PullHeader {
    fn parse(request: &RemotingCommand) -> Result<PullHeader, String> {
        let text = |key: &str| request.ext(key).ok_or_else(|| format!("the pull header has no {key}"));
        let number = |key: &str| -> Result<i64, String> {
            let value = text(key)?;
            value.trim().parse::<i64>().map_err(|_| format!("{key} is not a number: {value:?}"))
        };
        let optional = |key: &str| request.ext(key).and_then(|v| v.trim().parse::<i64>().ok());
        let queue_id = number("queueId")?;
        let queue_id = u32::try_from(queue_id).map_err(|_| format!("queueId {queue_id} is negative"))?;
        Ok(PullHeader {
            group: text("consumerGroup")?.to_owned(),
            topic: text("topic")?.to_owned(),
            queue_id,
            queue_offset: number("queueOffset")?.max(0) as u64,
            max_messages: number("maxMsgNums")?.clamp(1, i64::from(MAX_PULL_MESSAGES)) as u32,
            sys_flag: optional("sysFlag").unwrap_or(0) as i32,
            commit_offset: optional("commitOffset").unwrap_or(-1),
            suspend: Duration::from_millis(optional("suspendTimeoutMillis").unwrap_or(0).max(0) as u64),
            subscription: request.ext("subscription").filter(|s| !s.trim().is_empty()).map(str::to_owned),
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

/// 11 / 361. Found messages are sent from here as file segments (`sendfile`, or one copied
/// `writev` when they are many small ranges; `Connection::send_file_body` decides) and `None`
/// is returned; every other answer is returned for the connection to send.
pub async fn pull(ctx: &Rc<ShardCtx>, conn: &Connection, request: RemotingCommand) -> Option<RemotingCommand> {
    let (response, segments) = match checked_read(ctx, &request).await {
        Ok(found) => found,
        Err(answer) => return Some(*answer),
    };
    if segments.is_empty() {
        return Some(response);
    }
    if let Err(e) = conn.send_file_body(&response, segments).await {
        tracing::debug!(conn = conn.id(), "pull response not sent: {e}");
    }
    None
}

/// Checks the request (§2.2, in the Java broker's order), commits a piggy-backed offset, and
/// reads on the owner shard. Returns the answer and the log segments of its body; an early
/// answer (an error, or nothing to read) comes back as `Err`.
async fn checked_read(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> Result<(RemotingCommand, Vec<FileSegment>), Box<RemotingCommand>> {
    let refuse = |status: i32, remark: String| Box::new(request.error_response(status, remark));
    let header = PullHeader::parse(request).map_err(|reason| refuse(code::SYSTEM_ERROR, reason))?;
    let control = &ctx.control;
    if control.broker_permission() & PERM_READ == 0 {
        return Err(refuse(code::NO_PERMISSION, format!("the broker[{}] pulling message is forbidden", control.broker_name())));
    }
    let topic = control
        .topic(&header.topic)
        .ok_or_else(|| refuse(code::TOPIC_NOT_EXIST, format!("topic[{}] not exist, apply first please!", header.topic)))?;
    if topic.perm & PERM_READ == 0 {
        return Err(refuse(code::NO_PERMISSION, format!("the topic[{}] pulling message is forbidden", header.topic)));
    }
    if header.queue_id >= topic.read_queue_nums.max(0) as u32 {
        return Err(refuse(
            code::SYSTEM_ERROR,
            format!("queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]", header.queue_id, header.topic, topic.read_queue_nums),
        ));
    }
    let filter = if header.sys_flag & FLAG_SUBSCRIPTION != 0 {
        tag_filter(header.subscription.as_deref().unwrap_or("*"))
    } else {
        control.subscription_filter(&header.group, &header.topic).ok_or_else(|| {
            refuse(code::SUBSCRIPTION_NOT_EXIST, format!("the consumer's subscription not exist, group: {}", header.group))
        })?
    };
    // The piggy-backed offset commit happens on first processing, whatever the read finds.
    if header.sys_flag & FLAG_COMMIT_OFFSET != 0 && header.commit_offset >= 0 {
        control.commit_offset(&header.group, &header.topic, header.queue_id, header.commit_offset);
    }
    let suspend = if header.sys_flag & FLAG_SUSPEND != 0 {
        control.long_poll_duration(header.suspend).min(MAX_PULL_SUSPEND)
    } else {
        Duration::ZERO
    };

    let owner = ctx.router.owner(&header.topic, header.queue_id);
    let (topic_name, queue_id, offset, max_messages) = (header.topic, header.queue_id, header.queue_offset, header.max_messages);
    let read = ctx
        .router
        .invoke_on(ctx, owner, move |owner_ctx| async move {
            read_or_hold(&owner_ctx, &topic_name, queue_id, offset, max_messages, &filter, suspend).await
        })
        .await;
    match read {
        Ok(Ok((result, segments))) => Ok((pull_response(request, &result), segments)),
        Ok(Err(e)) => Err(refuse(code::SYSTEM_ERROR, e)),
        Err(busy) => Err(refuse(code::SYSTEM_BUSY, format!("[REJECTREQUEST]system busy, start flow control for a while ({busy})"))),
    }
}

/// On the owner shard: reads, and while nothing is found and the client allows it, holds the
/// pull until messages arrive or the suspension ends. Returns the result and, for found
/// messages, the segments to send.
async fn read_or_hold(
    ctx: &Rc<ShardCtx>,
    topic: &str,
    queue_id: u32,
    offset: u64,
    max_messages: u32,
    filter: &TagFilter,
    suspend: Duration,
) -> Result<(PullResult, Vec<FileSegment>), String> {
    let deadline = Instant::now() + suspend;
    loop {
        let result = ctx
            .store
            .get_message(topic, queue_id, QueueOffset(offset), max_messages, filter)
            .await
            .map_err(|e| e.to_string())?;
        let hold = nothing_new(&result, offset) && Instant::now() < deadline;
        if hold && ctx.held.wait(topic, queue_id, deadline).await == Wake::Arrived {
            continue;
        }
        let segments = if is_found(&result) { file_segments(ctx, &result)? } else { Vec::new() };
        return Ok((result, segments));
    }
}

fn is_found(result: &PullResult) -> bool {
    result.status == PullStatus::Found && result.message_count > 0
}

/// The log ranges of a pull as file segments to send: one duplicated descriptor per
/// segment file (adjacent records are already coalesced into one range by the store).
fn file_segments(ctx: &Rc<ShardCtx>, result: &PullResult) -> Result<Vec<FileSegment>, String> {
    let mut files: Vec<(u64, std::sync::Arc<std::fs::File>)> = Vec::new();
    let mut segments = Vec::with_capacity(result.ranges.len());
    for range in &result.ranges {
        let (fd, position) = ctx.store.log_slice_fd(*range).map_err(|e| e.to_string())?;
        // Ranges in one segment file share one descriptor; the segment base identifies it.
        let base = range.offset.0 - position;
        let file = match files.iter().find(|(b, _)| *b == base) {
            Some((_, file)) => file.clone(),
            None => {
                let file = std::sync::Arc::new(std::fs::File::from(fd));
                files.push((base, file.clone()));
                file
            }
        };
        segments.push(FileSegment { file, offset: position, len: range.len });
    }
    Ok(segments)
}

/// Whether the reader is simply caught up (PULL_NOT_FOUND), the one case long polling holds.
fn nothing_new(result: &PullResult, requested_offset: u64) -> bool {
    match result.status {
        PullStatus::OffsetOverflowOne | PullStatus::OffsetFoundNull => true,
        PullStatus::NoMessageInQueue | PullStatus::NoMatchedLogicQueue => requested_offset == 0,
        _ => false,
    }
}

/// Maps the store's status onto the four normal pull answers (§2.2, §6.3).
fn pull_response(request: &RemotingCommand, result: &PullResult) -> RemotingCommand {
    let (status, remark) = match result.status {
        PullStatus::Found if result.message_count > 0 => (code::SUCCESS, "FOUND"),
        PullStatus::Found | PullStatus::NoMatchedMessage | PullStatus::MessageWasRemoving => (code::PULL_RETRY_IMMEDIATELY, "NO_MATCHED_MESSAGE"),
        _ if nothing_new(result, request_offset(request)) => (code::PULL_NOT_FOUND, "NO_NEW_MESSAGE"),
        PullStatus::OffsetOverflowOne
        | PullStatus::OffsetFoundNull
        | PullStatus::NoMessageInQueue
        | PullStatus::NoMatchedLogicQueue
        | PullStatus::OffsetOverflowBadly
        | PullStatus::OffsetTooSmall => (code::PULL_OFFSET_MOVED, "OFFSET_ILLEGAL"),
    };
    RemotingCommand::response(status, request.opaque, Some(remark.to_owned()))
        .with_ext("suggestWhichBrokerId", 0)
        .with_ext("nextBeginOffset", result.next_begin_offset.0)
        .with_ext("minOffset", result.min_offset.0)
        .with_ext("maxOffset", result.max_offset.0)
}

fn request_offset(request: &RemotingCommand) -> u64 {
    request.ext("queueOffset").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0).max(0) as u64
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
