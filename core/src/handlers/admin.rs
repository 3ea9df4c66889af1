//! Admin codes that clients, `mqadmin` and the dashboard send (PROTOCOL.md §2.3, §2.7, §4.7,
//! §4.8): topics, subscription groups, connection lists, statistics, runtime info, config,
//! and message lookup by offset id.

use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::Arc;

use ferromq_net::RemotingCommand;
use ferromq_net::codes::response_code as code;
use ferromq_store::record::decode_offset_msg_id;
use ferromq_store::{QueueId, QueueOffset, ShardId};

use crate::control::Command;
use crate::error::{BrokerError, BrokerResult};
use crate::header::Header;
use crate::meta::topics::{self, TopicConfig};
use crate::shard::ShardCtx;
use crate::shard::stats::{Figures, java_double, tps_triple};

/// 17 UPDATE_AND_CREATE_TOPIC. Missing queue counts and perm take Java's defaults (16, 16,
/// RW); values that are present must be valid.
pub async fn update_and_create_topic(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let h = Header::of(request);
    let config = TopicConfig {
        read_queue_nums: h.opt_i32("readQueueNums")?.unwrap_or(topics::DEFAULT_QUEUE_NUMS),
        write_queue_nums: h.opt_i32("writeQueueNums")?.unwrap_or(topics::DEFAULT_QUEUE_NUMS),
        perm: h.opt_i32("perm")?.unwrap_or(topics::PERM_READ | topics::PERM_WRITE),
        topic_filter_type: h.opt_str("topicFilterType").unwrap_or(topics::SINGLE_TAG).to_owned(),
        topic_sys_flag: h.opt_i32("topicSysFlag")?.unwrap_or(0),
        order: h.opt_bool("order")?.unwrap_or(false),
        ..TopicConfig::new(h.str("topic")?)
    };
    ctx.control.call(|reply| Command::UpdateTopic { config, reply }).await??;
    Ok(request.success_response())
}

/// 215 DELETE_TOPIC_IN_BROKER, as Java's `deleteTopicInBroker`: the topic's consume queues and
/// index entries, its config and its consumer offsets go; its records stay in the shard logs
/// until retention deletes their segments, unreachable.
///
/// Every shard deletes its store data first (each owns some of the topic's queues), each
/// durably (`Store::delete_topic` returns once its checkpoint names the deletion) and drops the
/// offset commits it still holds for the topic; only then does the control thread drop the
/// config and the offsets. A crash in between leaves the topic configured with empty queues,
/// and the operator's retry completes the deletion; the other order could leave the topic gone
/// from the config with its old queues still on disk, to come back when it is created again.
pub async fn delete_topic(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let topic = Header::of(request).str("topic")?.to_owned();
    let mut queues = 0;
    for shard in 0..ctx.router.shard_count() {
        let name = topic.clone();
        let deleted = ctx
            .on(ShardId(shard as u8), move |owner, _| async move {
                owner.offsets.forget_topic(&name);
                owner.store.delete_topic(&name).await
            })
            .await??;
        queues += deleted.queues;
    }
    ctx.control.call(|reply| Command::DeleteTopic { topic: topic.clone(), reply }).await?;
    tracing::info!(topic, queues, "topic deleted");
    Ok(request.success_response())
}

/// 21 GET_ALL_TOPIC_CONFIG.
pub async fn all_topic_config(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let body = ctx.control.call(|reply| Command::AllTopicConfigJson { reply }).await?;
    Ok(request.success_response().with_body(body))
}

/// 45 GET_ALL_DELAY_OFFSET: `delayOffset.json` (what a slave syncs, §7.5).
pub async fn all_delay_offset(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let body = ctx.control.call(|reply| Command::DelayOffsetsJson { reply }).await?;
    Ok(request.success_response().with_body(body))
}

/// 43 GET_ALL_CONSUMER_OFFSET: `consumerOffset.json` as it stands in memory (what a slave
/// merges, §7.5).
pub async fn all_consumer_offset(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let body = ctx.control.call(|reply| Command::AllConsumerOffsetJson { reply }).await?;
    Ok(request.success_response().with_body(body))
}

/// 201 GET_ALL_SUBSCRIPTIONGROUP_CONFIG: `{"dataVersion":..,"forbiddenTable":..,
/// "subscriptionGroupTable":..}` (what a slave copies, §7.5; mqadmin and the dashboard list
/// groups with it). 5.x paging fields are not read: the whole table is answered.
pub async fn all_subscription_group_config(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let body = ctx.control.call(|reply| Command::AllSubscriptionGroupJson { reply }).await?;
    Ok(request.success_response().with_body(body))
}

/// 200 UPDATE_AND_CREATE_SUBSCRIPTIONGROUP.
pub async fn update_and_create_subscription_group(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let body = request.body.clone();
    ctx.control.call(|reply| Command::UpdateSubscriptionGroup { body, reply }).await??;
    Ok(request.success_response())
}

/// 203 GET_CONSUMER_CONNECTION_LIST.
pub async fn consumer_connection_list(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let group = Header::of(request).str("consumerGroup")?.to_owned();
    match ctx.control.call(|reply| Command::ConsumerConnectionListJson { group: group.clone(), reply }).await? {
        Some(body) => Ok(request.success_response().with_body(body)),
        None => Err(BrokerError::new(ferromq_net::codes::response_code::CONSUMER_NOT_ONLINE, format!("the consumer group[{group}] not online"))),
    }
}

/// 204 GET_PRODUCER_CONNECTION_LIST: the live connections of a producer group (a producer that
/// unregistered or whose connection closed is gone at once). Java answers SYSTEM_ERROR for a
/// group with none.
pub async fn producer_connection_list(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let group = Header::of(request).str("producerGroup")?.to_owned();
    match ctx.control.call(|reply| Command::ProducerConnectionListJson { group: group.clone(), reply }).await? {
        Some(body) => Ok(request.success_response().with_body(body)),
        None => Err(BrokerError::new(ferromq_net::codes::response_code::SYSTEM_ERROR, format!("the producer group[{group}] not exist"))),
    }
}

/// The fastjson form of a MessageQueue used as an object key (§4.1 rule 3).
pub(super) fn queue_key(out: &mut String, broker_name: &str, queue_id: QueueId, topic: &str) {
    let _ = write!(
        out,
        "{{\"brokerName\":{},\"queueId\":{queue_id},\"topic\":{}}}",
        serde_json::Value::from(broker_name),
        serde_json::Value::from(topic)
    );
}

/// One queue's figures for GET_TOPIC_STATS_INFO and GET_CONSUME_STATS, read on its owner shard.
#[derive(Debug, Clone, Copy)]
pub(super) struct QueueStats {
    pub(super) queue_id: QueueId,
    pub(super) min: u64,
    pub(super) max: u64,
    /// Store time of the last message (0 when the queue is empty).
    last_store_ms: i64,
    /// Messages stored since the `recent_since_ms` asked for (0 when not asked).
    recent: u64,
}

/// `topicPutTps` is over the last minute, as Java's (a minute statistic of `TOPIC_PUT_NUMS`).
const TOPIC_PUT_TPS_WINDOW_MS: i64 = 60_000;

/// Per-queue figures of a topic, from the owner shards; with `recent_since_ms`, also how many
/// messages each queue stored since then.
pub(super) async fn queue_stats(ctx: &Rc<ShardCtx>, topic: &TopicConfig, recent_since_ms: Option<i64>) -> BrokerResult<Vec<QueueStats>> {
    let queues = topic.read_queue_nums.max(topic.write_queue_nums).max(0) as u32;
    let mut stats = Vec::with_capacity(queues as usize);
    for queue_id in (0..queues).map(QueueId) {
        let owner = ctx.owner(&topic.topic_name, queue_id);
        let name = topic.topic_name.clone();
        let queue = ctx
            .on(owner, move |owner_ctx, _| async move {
                let store = &owner_ctx.store;
                let (min, max) = store.queue_offsets(&name, queue_id);
                let last_store_ms = if max.0 > 0 { store.store_time_at(&name, queue_id, QueueOffset(max.0 - 1)).await?.unwrap_or(0) } else { 0 };
                let recent = match recent_since_ms {
                    Some(since) if last_store_ms >= since => max.0 - first_stored_since(store, &name, queue_id, min.0, max.0, since).await?,
                    _ => 0,
                };
                Ok::<_, ferromq_store::StoreError>(QueueStats { queue_id, min: min.0, max: max.0, last_store_ms, recent })
            })
            .await??;
        stats.push(queue);
    }
    Ok(stats)
}

/// The first queue offset in `min..max` whose message was stored at `since_ms` or later (`max`
/// if none), by binary search over store times (a queue's store times only grow; an entry
/// whose record retention deleted counts as old). O(log n) record reads, no scan.
pub(super) async fn first_stored_since(store: &crate::shard::ShardStore, topic: &str, queue_id: QueueId, min: u64, max: u64, since_ms: i64) -> Result<u64, ferromq_store::StoreError> {
    let (mut lo, mut hi) = (min, max);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if store.store_time_at(topic, queue_id, QueueOffset(mid)).await?.unwrap_or(i64::MIN) >= since_ms {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// 202 GET_TOPIC_STATS_INFO: TopicStatsTable with MessageQueue object keys (§4.7);
/// `topicPutTps` is the messages the topic stored in the last minute, per second.
pub async fn topic_stats(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let name = Header::of(request).str("topic")?;
    let topic = ctx.control.topic(name).ok_or_else(|| BrokerError::new(code::TOPIC_NOT_EXIST, format!("topic[{name}] not exist")))?;
    let broker = ctx.control.identity().broker_name.clone();
    let mut body = String::from("{\"offsetTable\":{");
    let since = ferromq_store::store::now_ms() - TOPIC_PUT_TPS_WINDOW_MS;
    let mut recent = 0;
    for (i, q) in queue_stats(ctx, &topic, Some(since)).await?.into_iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        recent += q.recent;
        queue_key(&mut body, &broker, q.queue_id, &topic.topic_name);
        let _ = write!(body, ":{{\"lastUpdateTimestamp\":{},\"maxOffset\":{},\"minOffset\":{}}}", q.last_store_ms, q.max, q.min);
    }
    let tps = recent as f64 * 1000.0 / TOPIC_PUT_TPS_WINDOW_MS as f64;
    let _ = write!(body, "}},\"topicPutTps\":{}}}", java_double(tps));
    Ok(request.success_response().with_body(body.into_bytes()))
}

/// 208 GET_CONSUME_STATS: ConsumeStats for one topic (header `topic`) or every topic the group
/// has offsets for.
pub async fn consume_stats(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let h = Header::of(request);
    let group = h.str("consumerGroup")?.to_owned();
    let topic = h.opt_str("topic").map(str::to_owned);
    let offsets = ctx.control.call(|reply| Command::GroupOffsets { group: group.clone(), topic, reply }).await?;
    let broker = ctx.control.identity().broker_name.clone();
    let mut table = String::new();
    let mut topics = Vec::new();
    for (name, queues) in offsets {
        let Some(topic) = ctx.control.topic(&name) else { continue };
        let committed: std::collections::HashMap<QueueId, i64> = queues.into_iter().collect();
        // Java's pullOffset: where the group's latest pull of the queue told it to go on (never
        // below the committed offset). Pulls are noted on the shard whose connection served
        // them: the latest note over all shards.
        let mut pulled: std::collections::HashMap<QueueId, (u64, i64)> = std::collections::HashMap::new();
        for shard in 0..ctx.router.shard_count() {
            let (group, name) = (group.clone(), name.clone());
            let noted = ctx.on(ShardId(shard as u8), move |owner, _| async move { owner.runtime_stats.pull_offsets(&group, &name) });
            for (queue_id, (offset, at_ms)) in noted.await.unwrap_or_default() {
                let latest = pulled.entry(queue_id).or_insert((offset, at_ms));
                if (at_ms, offset) > (latest.1, latest.0) {
                    *latest = (offset, at_ms);
                }
            }
        }
        for q in queue_stats(ctx, &topic, None).await? {
            let consumer = committed.get(&q.queue_id).copied().unwrap_or(0).max(0) as u64;
            let pull = pulled.get(&q.queue_id).map_or(consumer, |(offset, _)| (*offset).max(consumer));
            if !table.is_empty() {
                table.push(',');
            }
            queue_key(&mut table, &broker, q.queue_id, &name);
            // Java's: the store time of the message at consumerOffset - 1 (0 if none).
            let last = if consumer == 0 {
                0
            } else if consumer >= q.max {
                q.last_store_ms
            } else {
                let (owner, name, queue_id) = (ctx.owner(&name, q.queue_id), name.clone(), q.queue_id);
                ctx.on(owner, move |owner_ctx, _| async move { owner_ctx.store.store_time_at(&name, queue_id, QueueOffset(consumer - 1)).await })
                    .await??
                    .unwrap_or(0)
            };
            let _ = write!(
                table,
                ":{{\"brokerOffset\":{},\"consumerOffset\":{consumer},\"lastTimestamp\":{last},\"pullOffset\":{pull}}}",
                q.max
            );
        }
        topics.push(name);
    }
    // Java's consumeTps: the messages the group pulled of these topics per second over the
    // last minute, summed over the shards its pulls came in on (a busy shard is left out).
    let topics = Arc::new(topics);
    let mut tps = 0.0;
    for shard in 0..ctx.router.shard_count() {
        let (group, topics) = (group.clone(), topics.clone());
        let rate = ctx.on(ShardId(shard as u8), move |owner, _| async move { topics.iter().map(|t| owner.runtime_stats.group_get_tps(&group, t)).sum::<f64>() });
        tps += rate.await.unwrap_or(0.0);
    }
    let body = format!("{{\"consumeTps\":{},\"offsetTable\":{{{table}}}}}", java_double(tps));
    Ok(request.success_response().with_body(body.into_bytes()))
}

/// 33 VIEW_MESSAGE_BY_ID: header `offset` is the client-visible physical offset (from an
/// offsetMsgId); the broker's offset space names the shard whose log holds it.
pub async fn view_message_by_id(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let h = Header::of(request);
    let offset = match h.opt_i64("offset")? {
        Some(offset) => offset,
        None => match h.opt_str("msgId") {
            Some(id) => decode_offset_msg_id(id).map(|(_, offset)| offset.0).ok_or_else(|| BrokerError::system(format!("msgId {id:?} is not an offset message id")))?,
            None => return Err(BrokerError::system("the request header has no offset")),
        },
    };
    let record = ctx.record_at(offset).await?.map_err(|e| BrokerError::system(format!("message at offset {offset} not found: {e}")))?;
    Ok(request.success_response().with_body(record))
}

/// 12 QUERY_MESSAGE: records whose KEYS or UNIQ_KEY match, stored within the time range,
/// looked up in every shard's index (each shard indexes its own log). The client re-filters by
/// the actual keys.
pub async fn query_message(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let h = Header::of(request);
    let (topic, key) = (h.str("topic")?, h.str("key")?);
    // A lookup by message id (`_UNIQUE_KEY_QUERY`) takes `defaultQueryMaxNum` instead of the
    // client's maxNum, as Java does; the index's batch cap applies to both.
    // `maxMsgsNumBatch` caps both, and is what a request without maxNum gets.
    let config = ctx.control.config();
    let cap = config.query_max_messages();
    let requested = h.opt_i32("maxNum")?.map_or(cap, |n| usize::try_from(n).unwrap_or(0));
    let wanted = if h.opt_bool("_UNIQUE_KEY_QUERY")? == Some(true) { config.unique_key_query_max_num() } else { requested };
    let max = wanted.clamp(1, cap);
    let (begin_ms, end_ms) = (h.opt_i64("beginTimestamp")?.unwrap_or(0), h.opt_i64("endTimestamp")?.unwrap_or(i64::MAX));
    let mut body = Vec::new();
    let mut found = 0usize;
    for shard in 0..ctx.router.shard_count() {
        if found >= max {
            break;
        }
        let (topic, key, remaining) = (topic.to_owned(), key.to_owned(), max - found);
        let records = ctx
            .on(ShardId(shard as u8), move |owner, _| async move {
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
            .await?;
        for record in records {
            body.extend_from_slice(&record);
            found += 1;
        }
    }
    if found == 0 {
        return Err(BrokerError::query_not_found(format!("can not find message, maybe time range not correct, key: {key}")));
    }
    Ok(request
        .success_response()
        .with_ext("indexLastUpdateTimestamp", ferromq_store::store::now_ms())
        .with_ext("indexLastUpdatePhyoffset", ctx.store.write_offset().0)
        .with_body(body))
}

/// 28 GET_BROKER_RUNTIME_INFO: `{"table":{..}}`, every value a numeric string where tools parse
/// numbers (§4.8), every figure summed (or taken at its extreme) over the shards, each read on
/// its own shard. FerroMQ adds the commit-log counters of every shard summed (`ferromq*` keys;
/// tools ignore keys they do not know): the benchmark suite reads the mean flush batch from them.
pub async fn broker_runtime_info(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let mut totals = ferromq_store::store::StoreStats::default();
    let mut cold = ferromq_net::conn::ColdReadStats::default();
    let mut blocks = ferromq_net::conn::BlockStats::default();
    let mut replication = ReplicationSnapshot::default();
    let mut figures = Figures::default();
    let (mut log_min, mut log_end, mut earliest) = (None::<i64>, None::<i64>, None::<i64>);
    let (mut dispatch_behind, mut unflushed, mut held) = (0u64, 0u64, 0usize);
    let (mut commit_log_ratio, mut consume_queue_ratio) = (None::<f64>, None::<f64>);
    let mut ratio_per_dir = Vec::new();
    let mut commit_log_space = None;
    let shards = ctx.router.shard_count();
    for shard in 0..shards {
        // A shard whose mailbox is full is left out of the sums rather than failing the request.
        // Cold-read counters are per thread: read on the shard's own thread.
        let on_shard = ctx.on(ShardId(shard as u8), |owner, _| async move { ShardRuntime::of(&owner).await }).await;
        let Ok(s) = on_shard else { continue };
        replication.add(s.replication);
        figures.add(&s.figures);
        let c = s.cold;
        cold.resident_bodies += c.resident_bodies;
        cold.cold_bodies += c.cold_bodies;
        cold.cold_bytes += c.cold_bytes;
        cold.waited_bodies += c.waited_bodies;
        cold.in_flight += c.in_flight;
        cold.max_in_flight = cold.max_in_flight.max(c.max_in_flight);
        blocks.hits += s.blocks.hits;
        blocks.reads += s.blocks.reads;
        blocks.read_bytes += s.blocks.read_bytes;
        let t = s.store;
        totals.appended_messages += t.appended_messages;
        totals.appended_bytes += t.appended_bytes;
        totals.log_writes += t.log_writes;
        totals.log_syncs += t.log_syncs;
        totals.synced_bytes += t.synced_bytes;
        totals.appends += t.appends;
        totals.forced_cleanups += t.forced_cleanups;
        totals.forced_segments_deleted += t.forced_segments_deleted;
        totals.forced_entries_deleted += t.forced_entries_deleted;
        totals.cq_files_held += t.cq_files_held;
        totals.cq_file_opens += t.cq_file_opens;
        totals.replica_flush_waits += t.replica_flush_waits;
        totals.replica_dispatch_waits += t.replica_dispatch_waits;
        totals.checkpoints += t.checkpoints;
        totals.thorough_checkpoints += t.thorough_checkpoints;
        totals.cq_unsynced_entries += t.cq_unsynced_entries;
        // How far a crash now would replay: the shard furthest behind.
        totals.checkpoint_replay_behind_bytes = totals.checkpoint_replay_behind_bytes.max(t.checkpoint_replay_behind_bytes);
        log_min = min_of(log_min, s.log_min);
        log_end = s.log_end.max(log_end);
        earliest = min_of(earliest, s.earliest_store_ms);
        dispatch_behind += s.dispatch_behind_bytes;
        unflushed += s.unflushed_bytes;
        held += s.held_pulls;
        // The fullest disk is the one that stops its shard first.
        commit_log_ratio = max_ratio(commit_log_ratio, s.commit_log_disk_ratio);
        consume_queue_ratio = max_ratio(consume_queue_ratio, s.consume_queue_disk_ratio);
        ratio_per_dir.push((s.commit_log_dir, s.commit_log_disk_ratio));
        // Java reports its one commit-log directory; shards' directories share the store root,
        // so the first readable one speaks for them.
        commit_log_space = commit_log_space.or(s.commit_log_space);
    }
    let control = &ctx.control;
    let config = control.config();
    let now = ferromq_store::store::now_ms();
    // Java's `-1` where a disk's usage cannot be read.
    let ratio = |r: Option<f64>| java_double(r.unwrap_or(-1.0));
    let entries: Vec<(&str, String)> = vec![
        ("brokerVersionDesc", ferromq_net::codec::FERROMQ_VERSION_NAME.into()),
        ("brokerVersion", ferromq_net::codec::FERROMQ_VERSION_ORDINAL.to_string()),
        ("brokerActive", "true".into()),
        ("bootTimestamp", control.boot_timestamp_ms.to_string()),
        ("runtime", runtime_text(now - control.boot_timestamp_ms)),
        // Totals since start, and at the last two local midnights (0 until the first, as
        // Java's BrokerStats): mqadmin clusterList shows today's and yesterday's differences.
        ("msgPutTotalTodayNow", figures.totals.put.to_string()),
        ("msgPutTotalTodayMorning", figures.days.today_morning.put.to_string()),
        ("msgPutTotalYesterdayMorning", figures.days.yesterday_morning.put.to_string()),
        ("msgGetTotalTodayNow", figures.totals.get_transferred.to_string()),
        ("msgGetTotalTodayMorning", figures.days.today_morning.get_transferred.to_string()),
        ("msgGetTotalYesterdayMorning", figures.days.yesterday_morning.get_transferred.to_string()),
        ("putTps", tps_triple(&figures.put_tps)),
        ("getTransferredTps", tps_triple(&figures.get_transferred_tps)),
        // 4.x tools read Java 4.x's spelling.
        ("getTransferedTps", tps_triple(&figures.get_transferred_tps)),
        ("getFoundTps", tps_triple(&figures.get_found_tps)),
        ("getMissTps", tps_triple(&figures.get_miss_tps)),
        ("getTotalTps", tps_triple(&figures.get_total_tps)),
        // Client-visible offsets (the broker's one offset space) over every shard's log.
        ("commitLogMinOffset", log_min.unwrap_or(0).to_string()),
        ("commitLogMaxOffset", log_end.unwrap_or(0).to_string()),
        ("dispatchBehindBytes", dispatch_behind.to_string()),
        ("remainHowManyDataToFlush", unflushed.to_string()),
        ("commitLogDiskRatio", ratio(commit_log_ratio)),
        ("consumeQueueDiskRatio", ratio(consume_queue_ratio)),
        ("earliestMessageTimeStamp", earliest.unwrap_or(-1).to_string()),
        // No lock guards FerroMQ's log appends (one writer per shard): never held.
        ("pageCacheLockTimeMills", "0".into()),
        // Java's broker setting of that name, which FerroMQ does not have: accepted from start.
        ("startAcceptSendRequestTimeStamp", "0".into()),
        // Requests run as tasks on their connection's shard, not in thread pools: no queue of
        // sends or queries waits for a thread. Pulls held by long polling are the pull "queue".
        ("sendThreadPoolQueueSize", "0".into()),
        ("sendThreadPoolQueueCapacity", config.limits.max_in_flight_requests_per_connection.to_string()),
        ("pullThreadPoolQueueSize", held.to_string()),
        ("pullThreadPoolQueueCapacity", (config.limits.max_held_pulls_per_shard as u64 * shards as u64).to_string()),
        ("queryThreadPoolQueueSize", "0".into()),
        ("queryThreadPoolQueueCapacity", "0".into()),
        ("sendThreadPoolQueueHeadWaitTimeMills", "0".into()),
        ("pullThreadPoolQueueHeadWaitTimeMills", "0".into()),
        ("queryThreadPoolQueueHeadWaitTimeMills", "0".into()),
        ("shards", shards.to_string()),
        ("ferromqAppendedMessages", totals.appended_messages.to_string()),
        ("ferromqAppendedBytes", totals.appended_bytes.to_string()),
        ("ferromqCommitLogWrites", totals.log_writes.to_string()),
        ("ferromqCommitLogSyncs", totals.log_syncs.to_string()),
        ("ferromqCommitLogSyncedBytes", totals.synced_bytes.to_string()),
        // Forced clean-ups (cleanFileForciblyEnable on a nearly full disk): passes, segments
        // deleted before their retention time, and the messages (consumed or not) they held.
        ("ferromqForcedCleanups", totals.forced_cleanups.to_string()),
        ("ferromqForcedCleanSegments", totals.forced_segments_deleted.to_string()),
        ("ferromqForcedCleanMessages", totals.forced_entries_deleted.to_string()),
        // Consume-queue descriptors held now (at most maxOpenConsumeQueueFiles) and files
        // opened since start: opens far above the queues in use mean the budget is too small.
        ("ferromqCqFilesOpen", totals.cq_files_held.to_string()),
        ("ferromqCqFileOpens", totals.cq_file_opens.to_string()),
        // Partial consume-queue checkpoints (flushConsumeQueueLeastPages): checkpoints written
        // and those that synced every queue (every flushConsumeQueueThoroughInterval, or at the
        // memory bound), entries held unsynced in memory now, and the log bytes a crash now
        // would replay on the shard furthest behind (store/DESIGN-NOTES.md).
        ("ferromqCheckpoints", totals.checkpoints.to_string()),
        ("ferromqThoroughCheckpoints", totals.thorough_checkpoints.to_string()),
        ("ferromqCqUnsyncedEntries", totals.cq_unsynced_entries.to_string()),
        ("ferromqCheckpointReplayBehindBytes", totals.checkpoint_replay_behind_bytes.to_string()),
        // A slave: replicated units that waited for its flusher (maxPendingFlushBytes) or its
        // dispatcher, which holds the replication stream back.
        ("ferromqReplicaFlushWaits", totals.replica_flush_waits.to_string()),
        ("ferromqReplicaDispatchWaits", totals.replica_dispatch_waits.to_string()),
        // Pull bodies read from the page cache on the shard vs read in the blocking pool
        // (`net/src/conn/cold.rs`; ARCHITECTURE.md, "Departures").
        ("ferromqResidentReadBodies", cold.resident_bodies.to_string()),
        ("ferromqColdReadBodies", cold.cold_bodies.to_string()),
        ("ferromqColdReadBytes", cold.cold_bytes.to_string()),
        ("ferromqColdReadsWaited", cold.waited_bodies.to_string()),
        ("ferromqColdReadsInFlight", cold.in_flight.to_string()),
        ("ferromqColdReadsMaxInFlight", cold.max_in_flight.to_string()),
        // Copied pull bodies through the shard threads' block caches (`net/src/conn/blocks.rs`):
        // pieces served from a held block, and the page-cache reads (and bytes) that filled them.
        ("ferromqBlockCacheHits", blocks.hits.to_string()),
        ("ferromqBlockCacheReads", blocks.reads.to_string()),
        ("ferromqBlockCacheReadBytes", blocks.read_bytes.to_string()),
        // topics.json / subscriptionGroup.json writes since start (batched: control/writer.rs).
        ("ferromqMetadataFileWrites", control.metadata_file_writes().to_string()),
    ];
    let mut table: serde_json::Map<String, serde_json::Value> =
        entries.into_iter().map(|(k, v)| (k.to_owned(), serde_json::Value::String(v))).collect();
    // Replication (§7): on a master, its slave streams and how far the furthest-behind shard's
    // best slave trails; on a slave, its streams from the master and how far it trails.
    for (key, value) in [
        ("ferromqReplicationStreams", replication.streams),
        ("ferromqReplicationLagBytes", replication.lag_bytes),
        ("ferromqReplicationLagMs", replication.lag_ms),
    ] {
        table.insert(key.to_owned(), serde_json::Value::String(value.to_string()));
    }
    // "Total : 98.3 GiB, Free : 93.5 GiB." (rocketmq-dashboard parses it); left out when no
    // shard could read its file system, rather than made up.
    if let Some(space) = commit_log_space {
        table.insert("commitLogDirCapacity".to_owned(), serde_json::Value::String(dir_capacity_text(&space)));
    }
    // Java's per-path key, one per shard's commit-log directory.
    for (dir, r) in ratio_per_dir {
        table.insert(format!("commitLogDiskRatio_{}", dir.display()), serde_json::Value::String(ratio(r)));
    }
    // Java's `scheduleMessageOffset_<level>`: "<next offset to deliver>,<queue end>" per delay
    // level — how far each level's deliverer is behind (§9.3).
    let delivered = control.call(|reply| Command::DelayOffsets { reply }).await?;
    for level in 1..=ctx.delay_levels_ms.len() as u32 {
        let queue = crate::delay::schedule_queue(level);
        let owner = ctx.owner(topics::SCHEDULE_TOPIC, queue);
        let Ok((_, end)) = ctx.on(owner, move |owner_ctx, _| async move { owner_ctx.store.queue_offsets(topics::SCHEDULE_TOPIC, queue) }).await else { continue };
        let next = delivered.get(&level).copied().unwrap_or(0);
        table.insert(format!("scheduleMessageOffset_{level}"), serde_json::Value::String(format!("{next},{}", end.0)));
    }
    // Java's 5.x timer keys (§4): parked messages not yet indexed, how far delivery trails the
    // clock (s), entries held for delivery, and the index's rates. Numbers, 0 where the timer
    // does not run (a slave, timerWheelEnable=false), as mqadmin parses them.
    let timer_owner = ctx.owner(topics::TIMER_TOPIC, topics::TIMER_QUEUE);
    let timer = ctx
        .on(timer_owner, move |owner_ctx, _| async move { (owner_ctx.timer_stats.get(), owner_ctx.store.queue_offsets(topics::TIMER_TOPIC, topics::TIMER_QUEUE).1 .0) })
        .await;
    let (stats, end) = timer.unwrap_or_default();
    let running = stats != crate::shard::ctx::TimerStats::default();
    let read_behind_secs = if running { (ferromq_store::store::now_ms() - stats.delivered_through_ms).max(0) / 1000 } else { 0 };
    for (key, value) in [
        ("timerOffsetBehind", if running { end.saturating_sub(stats.next_offset) } else { 0 }),
        ("timerReadBehind", read_behind_secs as u64),
        ("timerCongestNum", stats.loaded),
        ("timerEnqueueTps", stats.enqueue_per_sec),
        ("timerDequeueTps", stats.dequeue_per_sec),
    ] {
        table.insert(key.to_owned(), serde_json::Value::String(value.to_string()));
    }
    let body = serde_json::json!({ "table": table });
    Ok(request.success_response().with_body(serde_json::to_vec(&body).unwrap_or_default()))
}

/// 26 GET_BROKER_CONFIG: the effective configuration as properties text, with the changes
/// UPDATE_BROKER_CONFIG made since start.
pub fn broker_config(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    Ok(request.success_response().with_body(ctx.control.live_config().to_properties_text().into_bytes()))
}

/// One shard's replication state for GET_BROKER_RUNTIME_INFO, and their sum over shards
/// (streams added, lags the worst shard's).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReplicationSnapshot {
    pub(crate) streams: u64,
    pub(crate) lag_bytes: u64,
    pub(crate) lag_ms: u64,
}

impl ReplicationSnapshot {
    pub(crate) fn of(ctx: &ShardCtx) -> ReplicationSnapshot {
        if ctx.control.config().broker.role == crate::config::BrokerRole::Slave {
            let f = &ctx.follower;
            return ReplicationSnapshot {
                streams: u64::from(f.connected.get()),
                lag_bytes: f.lag_bytes(),
                lag_ms: f.behind_for().as_millis() as u64,
            };
        }
        let streams = ctx.slave_acks.connected() as u64;
        match ctx.slave_acks.lag(ctx.store.written_offset().0) {
            Some(lag) => ReplicationSnapshot { streams, lag_bytes: lag.bytes, lag_ms: lag.behind_for.as_millis() as u64 },
            None => ReplicationSnapshot::default(),
        }
    }

    fn add(&mut self, other: ReplicationSnapshot) {
        self.streams += other.streams;
        self.lag_bytes = self.lag_bytes.max(other.lag_bytes);
        self.lag_ms = self.lag_ms.max(other.lag_ms);
    }
}

/// What GET_BROKER_RUNTIME_INFO reads on one shard, on that shard.
struct ShardRuntime {
    store: ferromq_store::store::StoreStats,
    cold: ferromq_net::conn::ColdReadStats,
    blocks: ferromq_net::conn::BlockStats,
    replication: ReplicationSnapshot,
    figures: Figures,
    /// The shard log's lowest and one-past-highest client-visible offsets (`None` while it
    /// holds no record).
    log_min: Option<i64>,
    log_end: Option<i64>,
    /// Store time of the oldest record in the shard's log.
    earliest_store_ms: Option<i64>,
    dispatch_behind_bytes: u64,
    unflushed_bytes: u64,
    held_pulls: usize,
    commit_log_dir: std::path::PathBuf,
    /// The file system holding the commit log (statvfs, in the blocking pool); `None` when it
    /// cannot be read.
    commit_log_space: Option<ferromq_store::io::DiskSpace>,
    /// Used fraction of the partitions holding the commit log and the consume queues; `None`
    /// when it cannot be read.
    commit_log_disk_ratio: Option<f64>,
    consume_queue_disk_ratio: Option<f64>,
}

impl ShardRuntime {
    async fn of(ctx: &Rc<ShardCtx>) -> ShardRuntime {
        use ferromq_store::io::Storage as _;
        let store = &ctx.store;
        let stats = store.stats();
        let (min, write) = (store.min_log_offset(), store.write_offset());
        let log_min = store.client_offset(min).map(|o| o.0);
        // At a segment boundary the next segment has no client range yet: the end is one past
        // the previous byte's.
        let log_end = store.client_offset(write).or_else(|| store.client_offset(ferromq_store::CommitLogOffset(write.0.checked_sub(1)?)).map(|o| ferromq_store::ClientPhysicalOffset(o.0 + 1))).map(|o| o.0);
        let earliest_store_ms = match log_min {
            Some(_) => store.read_record(min).await.ok().and_then(|r| ferromq_store::record::decode_record(&r, false).ok().map(|r| r.store_timestamp_ms)),
            None => None,
        };
        let root = &store.config().root_dir;
        let commit_log_dir = root.join("commitlog");
        let commit_log_space = store.storage().disk_space(&commit_log_dir).await.ok();
        let commit_log_disk_ratio = commit_log_space.map(|space| space.used_ratio());
        let consume_queue_disk_ratio = store.storage().disk_usage_ratio(&root.join("consumequeue")).await.ok();
        ShardRuntime {
            store: stats,
            cold: ferromq_net::conn::cold_read_stats(),
            blocks: ferromq_net::conn::block_stats(),
            replication: ReplicationSnapshot::of(ctx),
            figures: ctx.runtime_stats.figures(stats.appended_messages),
            log_min,
            log_end,
            earliest_store_ms,
            dispatch_behind_bytes: write.0.saturating_sub(store.dispatched_offset().0),
            unflushed_bytes: write.0.saturating_sub(store.durable_offset().0),
            held_pulls: ctx.held.held(),
            commit_log_dir,
            commit_log_space,
            commit_log_disk_ratio,
            consume_queue_disk_ratio,
        }
    }
}

/// Java's `commitLogDirCapacity`: total and free (unallocated) bytes of the commit log's file
/// system, each as [`human_readable_bytes`].
fn dir_capacity_text(space: &ferromq_store::io::DiskSpace) -> String {
    format!("Total : {}, Free : {}.", human_readable_bytes(space.total_bytes), human_readable_bytes(space.free_bytes))
}

/// Java's `MixAll.humanReadableByteCount(bytes, false)`: binary units with one decimal
/// ("512 B", "1.5 KiB", "98.3 GiB").
pub(crate) fn human_readable_bytes(bytes: u64) -> String {
    const UNIT: u64 = 1024;
    if bytes < UNIT {
        return format!("{bytes} B");
    }
    let mut exponent = 0usize;
    let mut scaled = bytes as f64;
    while scaled >= UNIT as f64 && exponent < 6 {
        scaled /= UNIT as f64;
        exponent += 1;
    }
    let prefix = ["K", "M", "G", "T", "P", "E"].get(exponent - 1).copied().unwrap_or("E");
    format!("{scaled:.1} {prefix}iB")
}

fn min_of(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Java's `runtime` text: "[ 1 days, 2 hours, 3 minutes, 4 seconds ]".
fn runtime_text(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    format!("[ {} days, {} hours, {} minutes, {} seconds ]", secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60, secs % 60)
}
