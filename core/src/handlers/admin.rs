//! Admin codes that clients, `mqadmin` and the dashboard send (PROTOCOL.md §2.3, §2.7, §4.7,
//! §4.8): topics, subscription groups, connection lists, statistics, runtime info, config,
//! and message lookup by offset id.

use std::fmt::Write as _;
use std::rc::Rc;

use ferromq_net::RemotingCommand;
use ferromq_net::codes::response_code as code;
use ferromq_store::record::decode_offset_msg_id;
use ferromq_store::{QueueOffset, ShardId, decode_client_offset};

use crate::meta::topics::TopicConfig;
use crate::shard::ShardCtx;

/// 17 UPDATE_AND_CREATE_TOPIC.
pub fn update_and_create_topic(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    let Some(topic) = request.ext("topic").filter(|t| !t.is_empty()) else {
        return request.error_response(code::SYSTEM_ERROR, "the request needs topic");
    };
    let int = |key: &str, default: i32| request.ext(key).and_then(|v| v.trim().parse::<i32>().ok()).unwrap_or(default);
    let config = TopicConfig {
        read_queue_nums: int("readQueueNums", 16),
        write_queue_nums: int("writeQueueNums", 16),
        perm: int("perm", 6),
        topic_filter_type: request.ext("topicFilterType").unwrap_or("SINGLE_TAG").to_owned(),
        topic_sys_flag: int("topicSysFlag", 0),
        order: request.ext("order") == Some("true"),
        ..TopicConfig::new(topic)
    };
    match ctx.control.update_topic(config) {
        Ok(()) => request.success_response(),
        Err(reason) => request.error_response(code::SYSTEM_ERROR, reason),
    }
}

/// 215 DELETE_TOPIC_IN_BROKER: the topic's config and consumer offsets go; its messages age
/// out with retention (they stay in the shard logs until their segments expire).
pub fn delete_topic(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    let Some(topic) = request.ext("topic").filter(|t| !t.is_empty()) else {
        return request.error_response(code::SYSTEM_ERROR, "the request needs topic");
    };
    ctx.control.delete_topic(topic);
    request.success_response()
}

/// 21 GET_ALL_TOPIC_CONFIG.
pub fn all_topic_config(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    request.success_response().with_body(ctx.control.topics_wrapper_json())
}

/// 200 UPDATE_AND_CREATE_SUBSCRIPTIONGROUP.
pub fn update_and_create_subscription_group(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    match ctx.control.update_subscription_group(&request.body) {
        Ok(_) => request.success_response(),
        Err(reason) => request.error_response(code::SYSTEM_ERROR, reason),
    }
}

/// 203 GET_CONSUMER_CONNECTION_LIST.
pub fn consumer_connection_list(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    let Some(group) = request.ext("consumerGroup") else {
        return request.error_response(code::SYSTEM_ERROR, "the request needs consumerGroup");
    };
    match ctx.control.consumer_connection_list_json(group) {
        Some(body) => request.success_response().with_body(body),
        None => request.error_response(206, format!("the consumer group[{group}] not online")),
    }
}

/// The fastjson form of a MessageQueue used as an object key (§4.1 rule 3).
fn queue_key(out: &mut String, broker_name: &str, queue_id: u32, topic: &str) {
    let _ = write!(
        out,
        "{{\"brokerName\":{},\"queueId\":{queue_id},\"topic\":{}}}",
        serde_json::Value::from(broker_name),
        serde_json::Value::from(topic)
    );
}

/// Per-queue (min, max, store time of the last message) of a topic, from the owner shards.
async fn queue_stats(ctx: &Rc<ShardCtx>, topic: &TopicConfig) -> Vec<(u32, u64, u64, i64)> {
    let queues = topic.read_queue_nums.max(topic.write_queue_nums).max(0) as u32;
    let mut stats = Vec::with_capacity(queues as usize);
    for queue_id in 0..queues {
        let owner = ctx.router.owner(&topic.topic_name, queue_id);
        let name = topic.topic_name.clone();
        let read = ctx
            .router
            .invoke_on(ctx, owner, move |owner_ctx| async move {
                let (min, max) = owner_ctx.store.queue_offsets(&name, queue_id);
                let last = if max.0 > 0 {
                    owner_ctx.store.store_time_at(&name, queue_id, QueueOffset(max.0 - 1)).await.ok().flatten().unwrap_or(0)
                } else {
                    0
                };
                (min.0, max.0, last)
            })
            .await;
        let (min, max, last) = read.unwrap_or((0, 0, 0));
        stats.push((queue_id, min, max, last));
    }
    stats
}

/// 202 GET_TOPIC_STATS_INFO: TopicStatsTable with MessageQueue object keys (§4.7).
pub async fn topic_stats(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    let Some(name) = request.ext("topic") else {
        return request.error_response(code::SYSTEM_ERROR, "the request needs topic");
    };
    let Some(topic) = ctx.control.topic(name) else {
        return request.error_response(code::TOPIC_NOT_EXIST, format!("topic[{name}] not exist"));
    };
    let broker = ctx.control.broker_name().to_owned();
    let mut body = String::from("{\"offsetTable\":{");
    for (i, (queue_id, min, max, last)) in queue_stats(ctx, &topic).await.into_iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        queue_key(&mut body, &broker, queue_id, &topic.topic_name);
        let _ = write!(body, ":{{\"lastUpdateTimestamp\":{last},\"maxOffset\":{max},\"minOffset\":{min}}}");
    }
    body.push_str("},\"topicPutTps\":0.0}");
    request.success_response().with_body(body.into_bytes())
}

/// 208 GET_CONSUME_STATS: ConsumeStats for one topic (header `topic`) or every topic the group
/// has offsets for.
pub async fn consume_stats(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    let Some(group) = request.ext("consumerGroup").filter(|g| !g.is_empty()) else {
        return request.error_response(code::SYSTEM_ERROR, "the request needs consumerGroup");
    };
    let topics: Vec<String> = match request.ext("topic").filter(|t| !t.is_empty()) {
        Some(topic) => vec![topic.to_owned()],
        None => ctx.control.topics_of_group(group),
    };
    let broker = ctx.control.broker_name().to_owned();
    let mut body = String::from("{\"consumeTps\":0.0,\"offsetTable\":{");
    let mut first = true;
    for name in topics {
        let Some(topic) = ctx.control.topic(&name) else { continue };
        let committed: std::collections::HashMap<i32, i64> = ctx.control.offsets_of(group, &name).into_iter().collect();
        for (queue_id, _min, max, last) in queue_stats(ctx, &topic).await {
            let consumer = committed.get(&(queue_id as i32)).copied().unwrap_or(0).max(0);
            if !first {
                body.push(',');
            }
            first = false;
            queue_key(&mut body, &broker, queue_id, &name);
            let last = if consumer as u64 >= max { last } else { 0 };
            let _ = write!(
                body,
                ":{{\"brokerOffset\":{max},\"consumerOffset\":{consumer},\"lastTimestamp\":{last},\"pullOffset\":{consumer}}}"
            );
        }
    }
    body.push_str("}}");
    request.success_response().with_body(body.into_bytes())
}

/// 33 VIEW_MESSAGE_BY_ID: header `offset` is the shard-qualified physical offset (from an
/// offsetMsgId); the record is read from that shard's log.
pub async fn view_message_by_id(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    let offset = request
        .ext("offset")
        .and_then(|o| o.trim().parse::<i64>().ok())
        .or_else(|| request.ext("msgId").and_then(decode_offset_msg_id).map(|(_, offset)| offset.0));
    let Some(offset) = offset else {
        return request.error_response(code::SYSTEM_ERROR, "the request needs offset (a commit-log offset)");
    };
    let Ok((shard, local)) = decode_client_offset(ferromq_store::ClientPhysicalOffset(offset)) else {
        return request.error_response(code::SYSTEM_ERROR, format!("offset {offset} is not a FerroMQ commit-log offset"));
    };
    if u16::from(shard.0) >= ctx.router.shard_count() {
        return request.error_response(code::SYSTEM_ERROR, format!("offset {offset} names shard {} of {}", shard.0, ctx.router.shard_count()));
    }
    let read = ctx
        .router
        .invoke_on(ctx, ShardId(shard.0), move |owner| async move { owner.store.read_record(local).await.map_err(|e| e.to_string()) })
        .await;
    match read {
        Ok(Ok(record)) => request.success_response().with_body(record),
        Ok(Err(reason)) => request.error_response(code::SYSTEM_ERROR, format!("message at offset {offset} not found: {reason}")),
        Err(busy) => request.error_response(code::SYSTEM_BUSY, busy.to_string()),
    }
}

/// Largest `maxNum` honoured for QUERY_MESSAGE, and the cap for unique-key lookups
/// (`defaultQueryMaxNum`).
const QUERY_MAX_MESSAGES: usize = 64;
const UNIQUE_KEY_QUERY_MAX_MESSAGES: usize = 32;

/// 12 QUERY_MESSAGE: records whose KEYS or UNIQ_KEY match, stored within the time range,
/// looked up in every shard's index (each shard indexes its own log). The client re-filters by
/// the actual keys.
pub async fn query_message(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    let (Some(topic), Some(key)) = (request.ext("topic"), request.ext("key")) else {
        return request.error_response(code::SYSTEM_ERROR, "the request needs topic and key");
    };
    let number = |name: &str, default: i64| request.ext(name).and_then(|v| v.trim().parse::<i64>().ok()).unwrap_or(default);
    let cap = if request.ext("_UNIQUE_KEY_QUERY") == Some("true") { UNIQUE_KEY_QUERY_MAX_MESSAGES } else { QUERY_MAX_MESSAGES };
    let max = (number("maxNum", cap as i64).max(1) as usize).min(cap);
    let (begin_ms, end_ms) = (number("beginTimestamp", 0), number("endTimestamp", i64::MAX));
    let mut body = Vec::new();
    let mut found = 0usize;
    for shard in 0..ctx.router.shard_count() {
        if found >= max {
            break;
        }
        let (topic, key, remaining) = (topic.to_owned(), key.to_owned(), max - found);
        let records = ctx
            .router
            .invoke_on(ctx, ShardId(shard as u8), move |owner| async move {
                let offsets = ferromq_store::index::query(&owner.store, &topic, &key, remaining, begin_ms, end_ms)
                    .await
                    .unwrap_or_default();
                let mut records = Vec::new();
                for offset in offsets {
                    if let Ok(record) = owner.store.read_record(offset).await {
                        records.push(record);
                    }
                }
                records
            })
            .await;
        for record in records.unwrap_or_default() {
            body.extend_from_slice(&record);
            found += 1;
        }
    }
    if found == 0 {
        return request.error_response(code::QUERY_NOT_FOUND, format!("can not find message, maybe time range not correct, key: {key}"));
    }
    request
        .success_response()
        .with_ext("indexLastUpdateTimestamp", ferromq_store::store::now_ms())
        .with_ext("indexLastUpdatePhyoffset", ctx.store.write_offset().0)
        .with_body(body)
}

/// 28 GET_BROKER_RUNTIME_INFO: `{"table":{..}}`, every value a numeric string where tools parse
/// numbers (§4.8). FerroMQ adds the commit-log counters of every shard summed (`ferromq*` keys;
/// tools ignore keys they do not know): the benchmark suite reads the mean flush batch from them.
pub async fn broker_runtime_info(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    let mut totals = ferromq_store::store::StoreStats::default();
    for shard in 0..ctx.router.shard_count() {
        // A shard whose mailbox is full is left out of the sums rather than failing the request.
        if let Ok(s) = ctx.router.invoke_on(ctx, ShardId(shard as u8), |owner| async move { owner.store.stats() }).await {
            totals.appended_messages += s.appended_messages;
            totals.appended_bytes += s.appended_bytes;
            totals.log_writes += s.log_writes;
            totals.log_syncs += s.log_syncs;
            totals.synced_bytes += s.synced_bytes;
        }
    }
    let control = &ctx.control;
    let store = &ctx.store;
    let now = ferromq_store::store::now_ms();
    let put_total = control.messages_put.load(std::sync::atomic::Ordering::Relaxed);
    let entries: Vec<(&str, String)> = vec![
        ("brokerVersionDesc", "V5_3_3".into()),
        ("brokerVersion", ferromq_net::codec::FERROMQ_VERSION_ORDINAL.to_string()),
        ("brokerActive", "true".into()),
        ("bootTimestamp", control.boot_timestamp_ms.to_string()),
        ("runtime", format!("[ {} ms ]", now - control.boot_timestamp_ms)),
        ("msgPutTotalTodayNow", put_total.to_string()),
        ("msgPutTotalTodayMorning", "0".into()),
        ("msgPutTotalYesterdayMorning", "0".into()),
        ("msgGetTotalTodayNow", "0".into()),
        ("msgGetTotalTodayMorning", "0".into()),
        ("msgGetTotalYesterdayMorning", "0".into()),
        ("putTps", "0.0 0.0 0.0".into()),
        ("getTransferredTps", "0.0 0.0 0.0".into()),
        ("getFoundTps", "0.0 0.0 0.0".into()),
        ("getMissTps", "0.0 0.0 0.0".into()),
        ("getTotalTps", "0.0 0.0 0.0".into()),
        ("commitLogMinOffset", store.min_log_offset().0.to_string()),
        ("commitLogMaxOffset", store.write_offset().0.to_string()),
        ("dispatchBehindBytes", store.write_offset().0.saturating_sub(store.dispatched_offset().0).to_string()),
        ("remainHowManyDataToFlush", store.write_offset().0.saturating_sub(store.durable_offset().0).to_string()),
        ("commitLogDiskRatio", "0.0".into()),
        ("consumeQueueDiskRatio", "0.0".into()),
        ("earliestMessageTimeStamp", "0".into()),
        ("pageCacheLockTimeMills", "0".into()),
        ("startAcceptSendRequestTimeStamp", "0".into()),
        ("sendThreadPoolQueueSize", "0".into()),
        ("sendThreadPoolQueueCapacity", control.config.limits.max_in_flight_requests_per_connection.to_string()),
        ("pullThreadPoolQueueSize", ctx.held.held().to_string()),
        ("pullThreadPoolQueueCapacity", control.config.limits.max_held_pulls_per_shard.to_string()),
        ("queryThreadPoolQueueSize", "0".into()),
        ("queryThreadPoolQueueCapacity", "0".into()),
        ("sendThreadPoolQueueHeadWaitTimeMills", "0".into()),
        ("pullThreadPoolQueueHeadWaitTimeMills", "0".into()),
        ("queryThreadPoolQueueHeadWaitTimeMills", "0".into()),
        ("shards", ctx.router.shard_count().to_string()),
        ("ferromqAppendedMessages", totals.appended_messages.to_string()),
        ("ferromqAppendedBytes", totals.appended_bytes.to_string()),
        ("ferromqCommitLogWrites", totals.log_writes.to_string()),
        ("ferromqCommitLogSyncs", totals.log_syncs.to_string()),
        ("ferromqCommitLogSyncedBytes", totals.synced_bytes.to_string()),
    ];
    let table: serde_json::Map<String, serde_json::Value> =
        entries.into_iter().map(|(k, v)| (k.to_owned(), serde_json::Value::String(v))).collect();
    let body = serde_json::json!({ "table": table });
    request.success_response().with_body(serde_json::to_vec(&body).unwrap_or_default())
}

/// 26 GET_BROKER_CONFIG: the effective configuration as properties text.
pub fn broker_config(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    request.success_response().with_body(ctx.control.config.to_properties_text().into_bytes())
}
