//! Offsets and queue queries: QUERY_CONSUMER_OFFSET (14), UPDATE_CONSUMER_OFFSET (15),
//! GET_MAX_OFFSET (30), GET_MIN_OFFSET (31), GET_EARLIEST_MSG_STORETIME (32),
//! SEARCH_OFFSET_BY_TIMESTAMP (29) (PROTOCOL.md §2.2).
//!
//! Consumer offsets live in the control plane (persisted to `consumerOffset.json`); queue
//! offsets and store times come from the owner shard's store.

use std::rc::Rc;

use ferromq_net::RemotingCommand;
use ferromq_net::codes::response_code as code;
use ferromq_store::QueueOffset;

use crate::shard::ShardCtx;

fn queue_header(request: &RemotingCommand) -> Result<(String, u32), Box<RemotingCommand>> {
    let topic = request.ext("topic").filter(|t| !t.is_empty());
    let queue_id = request.ext("queueId").and_then(|q| q.trim().parse::<u32>().ok());
    match (topic, queue_id) {
        (Some(topic), Some(queue_id)) => Ok((topic.to_owned(), queue_id)),
        _ => Err(Box::new(request.error_response(code::SYSTEM_ERROR, "the request needs topic and a non-negative queueId"))),
    }
}

/// Runs `read` against the store of the queue's owner shard.
async fn on_owner<T, F, Fut>(ctx: &Rc<ShardCtx>, request: &RemotingCommand, topic: &str, queue_id: u32, read: F) -> Result<T, RemotingCommand>
where
    T: Send + 'static,
    F: FnOnce(Rc<ShardCtx>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    let owner = ctx.router.owner(topic, queue_id);
    ctx.router
        .invoke_on(ctx, owner, read)
        .await
        .map_err(|busy| request.error_response(code::SYSTEM_BUSY, format!("[REJECTREQUEST]system busy ({busy})")))
}

/// 30 GET_MAX_OFFSET / 31 GET_MIN_OFFSET.
pub async fn queue_offset(ctx: &Rc<ShardCtx>, request: RemotingCommand, max: bool) -> RemotingCommand {
    let (topic, queue_id) = match queue_header(&request) {
        Ok(pair) => pair,
        Err(reply) => return *reply,
    };
    let name = topic.clone();
    let offsets = on_owner(ctx, &request, &topic, queue_id, move |owner| async move { owner.store.queue_offsets(&name, queue_id) }).await;
    match offsets {
        Ok((min, max_offset)) => request.success_response().with_ext("offset", if max { max_offset.0 } else { min.0 }),
        Err(reply) => reply,
    }
}

/// 32 GET_EARLIEST_MSG_STORETIME: store time at the queue's min offset, −1 when empty.
pub async fn earliest_store_time(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    let (topic, queue_id) = match queue_header(&request) {
        Ok(pair) => pair,
        Err(reply) => return *reply,
    };
    let name = topic.clone();
    let time = on_owner(ctx, &request, &topic, queue_id, move |owner| async move {
        owner.store.earliest_store_time(&name, queue_id).await.map_err(|e| e.to_string())
    })
    .await;
    match time {
        Ok(Ok(ms)) => request.success_response().with_ext("timestamp", ms),
        Ok(Err(_)) => request.success_response().with_ext("timestamp", -1),
        Err(reply) => reply,
    }
}

/// 29 SEARCH_OFFSET_BY_TIMESTAMP: LOWER (default) = first offset stored at or after the time;
/// UPPER = last offset stored at or before it.
pub async fn search_offset_by_timestamp(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    let (topic, queue_id) = match queue_header(&request) {
        Ok(pair) => pair,
        Err(reply) => return *reply,
    };
    let Some(timestamp_ms) = request.ext("timestamp").and_then(|t| t.trim().parse::<i64>().ok()) else {
        return request.error_response(code::SYSTEM_ERROR, "the request needs a timestamp in milliseconds");
    };
    let upper = request.ext("boundaryType").is_some_and(|b| b.eq_ignore_ascii_case("UPPER"));
    let name = topic.clone();
    let found = on_owner(ctx, &request, &topic, queue_id, move |owner| async move {
        owner.store.search_offset_by_timestamp(&name, queue_id, timestamp_ms, upper).await.map_err(|e| e.to_string())
    })
    .await;
    match found {
        Ok(Ok(QueueOffset(offset))) => request.success_response().with_ext("offset", offset),
        Ok(Err(_)) => request.success_response().with_ext("offset", 0),
        Err(reply) => reply,
    }
}

/// 14 QUERY_CONSUMER_OFFSET: the committed offset; with none, 0 while the queue still starts at
/// offset 0 (as the Java broker does for messages still in memory), else QUERY_NOT_FOUND so the
/// client applies its consumeFromWhere. Never a throttling code: 4.x clients treat any failure
/// as "no offset" and would reset.
pub async fn query_consumer_offset(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    let (topic, queue_id) = match queue_header(&request) {
        Ok(pair) => pair,
        Err(reply) => return *reply,
    };
    let Some(group) = request.ext("consumerGroup").filter(|g| !g.is_empty()) else {
        return request.error_response(code::SYSTEM_ERROR, "the request needs consumerGroup");
    };
    if let Some(offset) = ctx.control.query_offset(group, &topic, queue_id) {
        return request.success_response().with_ext("offset", offset);
    }
    let set_zero = request.ext("setZeroIfNotFound") != Some("false");
    let name = topic.clone();
    let min = on_owner(ctx, &request, &topic, queue_id, move |owner| async move { owner.store.queue_offsets(&name, queue_id).0 }).await;
    match min {
        Ok(QueueOffset(0)) if set_zero => request.success_response().with_ext("offset", 0),
        _ => request.error_response(code::QUERY_NOT_FOUND, "Not found, maybe this group consumer boot first"),
    }
}

/// 15 UPDATE_CONSUMER_OFFSET (usually one-way).
pub fn update_consumer_offset(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    let (topic, queue_id) = match queue_header(&request) {
        Ok(pair) => pair,
        Err(reply) => return *reply,
    };
    let group = request.ext("consumerGroup").filter(|g| !g.is_empty());
    let offset = request.ext("commitOffset").and_then(|o| o.trim().parse::<i64>().ok());
    let (Some(group), Some(offset)) = (group, offset) else {
        return request.error_response(code::SYSTEM_ERROR, "the request needs consumerGroup and commitOffset");
    };
    if ctx.control.topic(&topic).is_none() {
        return request.error_response(code::TOPIC_NOT_EXIST, format!("Topic {topic} not exist!"));
    }
    ctx.control.commit_offset(group, &topic, queue_id, offset);
    request.success_response()
}
