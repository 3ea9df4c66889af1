//! Offsets and queue queries: QUERY_CONSUMER_OFFSET (14), UPDATE_CONSUMER_OFFSET (15),
//! GET_MAX_OFFSET (30), GET_MIN_OFFSET (31), GET_EARLIEST_MSG_STORETIME (32),
//! SEARCH_OFFSET_BY_TIMESTAMP (29) (PROTOCOL.md §2.2).
//!
//! Consumer offsets belong to the control plane (persisted to `consumerOffset.json`); commits
//! are coalesced per shard on their way there (`shard/offsets.rs`). Queue offsets and store
//! times come from the owner shard's store.

use std::rc::Rc;

use ferromq_net::RemotingCommand;
use ferromq_store::{QueueId, QueueOffset};

use crate::control::Command;
use crate::control::plane::offset_key;
use crate::error::{BrokerError, BrokerResult};
use crate::header::Header;
use crate::shard::ShardCtx;

/// (topic, queueId) of a queue request.
fn queue_of(request: &RemotingCommand) -> BrokerResult<(String, QueueId)> {
    let header = Header::of(request);
    Ok((header.str("topic")?.to_owned(), header.queue_id("queueId")?))
}

/// (min, max) offsets of a queue, from its owner shard.
async fn queue_bounds(ctx: &Rc<ShardCtx>, topic: String, queue_id: QueueId) -> BrokerResult<(QueueOffset, QueueOffset)> {
    let owner = ctx.owner(&topic, queue_id);
    ctx.on(owner, move |owner, _| async move { owner.store.queue_offsets(&topic, queue_id) }).await
}

/// 30 GET_MAX_OFFSET: one past the queue's last entry (0 for an unknown queue).
pub async fn max_offset(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let (topic, queue_id) = queue_of(request)?;
    let (_, max) = queue_bounds(ctx, topic, queue_id).await?;
    Ok(request.success_response().with_ext("offset", max.0))
}

/// 31 GET_MIN_OFFSET: the queue's first entry still stored (0 for an unknown queue).
pub async fn min_offset(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let (topic, queue_id) = queue_of(request)?;
    let (min, _) = queue_bounds(ctx, topic, queue_id).await?;
    Ok(request.success_response().with_ext("offset", min.0))
}

/// 32 GET_EARLIEST_MSG_STORETIME: store time at the queue's min offset, −1 when empty.
pub async fn earliest_store_time(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let (topic, queue_id) = queue_of(request)?;
    let owner = ctx.owner(&topic, queue_id);
    let time = ctx.on(owner, move |owner, _| async move { owner.store.earliest_store_time(&topic, queue_id).await }).await??;
    Ok(request.success_response().with_ext("timestamp", time))
}

/// 29 SEARCH_OFFSET_BY_TIMESTAMP: LOWER (default) = first offset stored at or after the time;
/// UPPER = last offset stored at or before it.
pub async fn search_offset_by_timestamp(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let (topic, queue_id) = queue_of(request)?;
    let header = Header::of(request);
    let timestamp_ms = header.i64("timestamp")?;
    let upper = match header.opt_str("boundaryType") {
        None => false,
        Some(b) if b.eq_ignore_ascii_case("LOWER") => false,
        Some(b) if b.eq_ignore_ascii_case("UPPER") => true,
        Some(other) => return Err(BrokerError::system(format!("the request header's boundaryType is not LOWER or UPPER: {other:?}"))),
    };
    let owner = ctx.owner(&topic, queue_id);
    let found = ctx
        .on(owner, move |owner, _| async move { owner.store.search_offset_by_timestamp(&topic, queue_id, timestamp_ms, upper).await })
        .await??;
    Ok(request.success_response().with_ext("offset", found.0))
}

/// 14 QUERY_CONSUMER_OFFSET: the committed offset; with none, 0 while the queue still starts at
/// offset 0 (as the Java broker does for messages still in memory), else QUERY_NOT_FOUND so the
/// client applies its consumeFromWhere. Never a throttling code: 4.x clients treat any failure
/// as "no offset" and would reset.
pub async fn query_consumer_offset(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let (topic, queue_id) = queue_of(request)?;
    let header = Header::of(request);
    let group = header.str("consumerGroup")?;
    let set_zero = header.opt_bool("setZeroIfNotFound")?.unwrap_or(true);
    let key = offset_key(group, &topic, queue_id);
    let committed = match ctx.offsets.pending(&key) {
        Some(offset) => Some(offset),
        None => ctx.control.call(|reply| Command::QueryOffset { key, reply }).await?,
    };
    if let Some(offset) = committed {
        return Ok(request.success_response().with_ext("offset", offset));
    }
    let (min, _) = queue_bounds(ctx, topic, queue_id).await?;
    if min.0 == 0 && set_zero {
        return Ok(request.success_response().with_ext("offset", 0));
    }
    Err(BrokerError::query_not_found("Not found, maybe this group consumer boot first"))
}

/// 15 UPDATE_CONSUMER_OFFSET (usually one-way).
pub async fn update_consumer_offset(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let (topic, queue_id) = queue_of(request)?;
    let header = Header::of(request);
    let group = header.str("consumerGroup")?;
    let offset = header.i64("commitOffset")?;
    if ctx.control.topic(&topic).is_none() {
        return Err(BrokerError::new(ferromq_net::codes::response_code::TOPIC_NOT_EXIST, format!("Topic {topic} not exist!")));
    }
    ctx.offsets.commit(offset_key(group, &topic, queue_id), offset).await;
    Ok(request.success_response())
}
