//! Admin codes `mqadmin` and rocketmq-dashboard send about the broker's metadata and
//! configuration (PROTOCOL.md §2.3): who consumes a topic, what a group consumes, one topic's
//! config, the system topics, runtime configuration changes, orphaned consume queues and
//! per-topic / per-group statistics.

use std::fmt::Write as _;
use std::rc::Rc;

use ferromq_net::RemotingCommand;
use ferromq_net::codes::response_code as code;
use ferromq_store::ShardId;

use super::admin::{first_stored_since, queue_stats};
use crate::control::Command;
use crate::error::{BrokerError, BrokerResult};
use crate::header::Header;
use crate::meta::topics;
use crate::shard::ShardCtx;
use crate::shard::stats::java_double;

/// `{"<key>":["a","b"]}` (GroupList, TopicList bodies), names in the order given.
fn name_list_json(key: &str, names: &[String], broker_addr: Option<&str>) -> Vec<u8> {
    let mut body = serde_json::Map::new();
    if let Some(addr) = broker_addr {
        body.insert("brokerAddr".to_owned(), serde_json::Value::from(addr));
    }
    body.insert(key.to_owned(), serde_json::Value::from(names.to_vec()));
    serde_json::to_vec(&body).unwrap_or_default()
}

/// 300 QUERY_TOPIC_CONSUME_BY_WHO: GroupList of the groups with an online consumer subscribed
/// to the topic or with committed offsets for it (Java's two sources, merged).
pub async fn query_topic_consume_by_who(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let topic = Header::of(request).str("topic")?.to_owned();
    let groups = ctx.control.call(|reply| Command::TopicConsumers { topic, reply }).await?;
    Ok(request.success_response().with_body(name_list_json("groupList", &groups, None)))
}

/// 343 QUERY_TOPICS_BY_CONSUMER: TopicList of the topics the group has committed offsets for,
/// with this broker's address (Java's `whichTopicByConsumer`).
pub async fn query_topics_by_consumer(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let group = Header::of(request).str("group")?.to_owned();
    let offsets = ctx.control.call(|reply| Command::GroupOffsets { group, topic: None, reply }).await?;
    let mut topics: Vec<String> = offsets.into_iter().map(|(topic, _)| topic).collect();
    topics.sort();
    let addr = ctx.control.identity().broker_addr.clone();
    Ok(request.success_response().with_body(name_list_json("topicList", &topics, Some(&addr))))
}

/// 351 GET_TOPIC_CONFIG: the topic's TopicConfig as JSON (Java's TopicConfigAndQueueMapping
/// without a mapping: FerroMQ has no static topics). TOPIC_NOT_EXIST with Java's remark when
/// the broker does not hold it.
pub async fn topic_config(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let name = Header::of(request).str("topic")?;
    let topic = ctx.control.topic(name).ok_or_else(|| BrokerError::new(code::TOPIC_NOT_EXIST, format!("No topic in this broker. topic: {name}")))?;
    Ok(request.success_response().with_body(topic.to_json()))
}

/// 305 GET_SYSTEM_TOPIC_LIST_FROM_BROKER: TopicList of the broker's system topics.
pub async fn system_topic_list(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let names = ctx.control.call(|reply| Command::SystemTopicNames { reply }).await?;
    Ok(request.success_response().with_body(name_list_json("topicList", &names, None)))
}

/// 25 UPDATE_BROKER_CONFIG: a properties body. Applied only if every key can change while the
/// broker runs (`control/runtime_config.rs`); otherwise INVALID_PARAMETER naming the key, and
/// nothing changes. Answered once the change is kept on disk and visible to every shard.
pub async fn update_broker_config(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let body = request.body.clone();
    ctx.control.call(|reply| Command::UpdateBrokerConfig { body, reply }).await??;
    Ok(request.success_response())
}

/// 306 CLEAN_EXPIRED_CONSUMEQUEUE: removes the consume queues of topics the broker no longer
/// configures (Java's orphan half of `cleanExpiredConsumerQueue`). Java's other half — files
/// whose entries all point below the log's minimum — is what FerroMQ's retention already does
/// with every segment it deletes; FerroMQ does not drop a configured queue whose messages all
/// expired (Java does, restarting its offsets at 0 under its consumers). System topics are
/// never touched. A slave refuses: its queues follow its master's, and a topic its last
/// metadata sync has not copied yet would lose its replicated queues. Answers the number of
/// queues removed in `cleanedQueues`.
pub async fn clean_expired_consume_queue(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    if ctx.control.is_slave() {
        return Err(BrokerError::system(format!(
            "the broker[{}] is a slave (brokerRole=SLAVE): its consume queues follow its master's; clean them on the master",
            ctx.control.identity().broker_name
        )));
    }
    let mut cleaned = 0u64;
    for shard in 0..ctx.router.shard_count() {
        let control = ctx.control.clone();
        let removed = ctx
            .on(ShardId(shard as u8), move |owner, _| async move {
                let mut orphans: Vec<String> = owner.store.queues().into_iter().map(|(topic, _)| topic).filter(|t| is_orphan(&control, t)).collect();
                orphans.sort();
                orphans.dedup();
                let mut removed = 0u64;
                for topic in orphans {
                    owner.offsets.forget_topic(&topic);
                    let deletion = owner.store.delete_topic(&topic).await?;
                    tracing::info!(topic, queues = deletion.queues, shard = owner.id.0, "consume queues of an unconfigured topic removed");
                    removed += deletion.queues as u64;
                }
                Ok::<_, ferromq_store::StoreError>(removed)
            })
            .await??;
        cleaned += removed;
    }
    Ok(request.success_response().with_ext("cleanedQueues", cleaned))
}

/// Whether `topic`'s queues belong to no configured topic and to no system topic.
fn is_orphan(control: &crate::control::ControlHandle, topic: &str) -> bool {
    control.topic(topic).is_none() && !topics::SYSTEM_TOPICS.contains(&topic) && !topic.starts_with(topics::SYSTEM_TOPIC_PREFIX)
}

/// Java's stats names (`BrokerStatsManager`) VIEW_BROKER_STATS_DATA serves.
const TOPIC_PUT_NUMS: &str = "TOPIC_PUT_NUMS";
const GROUP_GET_NUMS: &str = "GROUP_GET_NUMS";

/// The windows of BrokerStatsData: statsMinute, statsHour, statsDay.
const STATS_WINDOWS_MS: [(&str, i64); 3] = [("statsMinute", MINUTE_MS), ("statsHour", 3_600_000), ("statsDay", 86_400_000)];
const MINUTE_MS: i64 = 60_000;

/// 315 VIEW_BROKER_STATS_DATA (`mqadmin statsAll`, the dashboard): BrokerStatsData for
/// - `TOPIC_PUT_NUMS` / `<topic>`: messages stored in the last minute, hour and day, counted
///   exactly from the queues' store times (binary search per queue, no scan), each with its
///   rate per second;
/// - `GROUP_GET_NUMS` / `<topic>@<group>`: messages the group pulled of the topic in the last
///   minute, from the shards' one-minute pull samples. FerroMQ keeps no hour or day figure for
///   a group, so `statsHour` and `statsDay` are left out rather than made up.
///
/// `avgpt` (Java's messages per put call) is left out: FerroMQ does not count put calls per
/// topic. Any other name is SYSTEM_ERROR with Java's remark.
pub async fn view_broker_stats_data(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let h = Header::of(request);
    let (name, key) = (h.str("statsName")?, h.str("statsKey")?);
    let not_exist = || BrokerError::system(format!("The stats <{name}> <{key}> not exist"));
    let mut body = String::from("{");
    match name {
        TOPIC_PUT_NUMS => {
            let topic = ctx.control.topic(key).ok_or_else(not_exist)?;
            let now = ferromq_store::store::now_ms();
            let mut sums = [0u64; 3];
            for q in queue_stats(ctx, &topic, None).await? {
                if q.max == 0 {
                    continue;
                }
                let (owner, name, queue_id, (min, max)) = (ctx.owner(&topic.topic_name, q.queue_id), topic.topic_name.clone(), q.queue_id, (q.min, q.max));
                let firsts = ctx
                    .on(owner, move |owner_ctx, _| async move {
                        let mut firsts = [max; 3];
                        for (first, (_, window_ms)) in firsts.iter_mut().zip(STATS_WINDOWS_MS) {
                            *first = first_stored_since(&owner_ctx.store, &name, queue_id, min, max, now - window_ms).await?;
                        }
                        Ok::<_, ferromq_store::StoreError>(firsts)
                    })
                    .await??;
                for (sum, first) in sums.iter_mut().zip(firsts) {
                    *sum += max - first;
                }
            }
            for (i, ((window, window_ms), sum)) in STATS_WINDOWS_MS.iter().zip(sums).enumerate() {
                if i > 0 {
                    body.push(',');
                }
                let tps = sum as f64 * 1000.0 / *window_ms as f64;
                let _ = write!(body, "\"{window}\":{{\"sum\":{sum},\"tps\":{}}}", java_double(tps));
            }
        }
        GROUP_GET_NUMS => {
            let (topic, group) = key.split_once('@').ok_or_else(not_exist)?;
            let (topic, group) = (std::sync::Arc::<str>::from(topic), std::sync::Arc::<str>::from(group));
            let mut tps = 0.0;
            for shard in 0..ctx.router.shard_count() {
                let (topic, group) = (topic.clone(), group.clone());
                // A busy shard is left out of the sum, as GET_CONSUME_STATS does.
                let rate = ctx.on(ShardId(shard as u8), move |owner, _| async move { owner.runtime_stats.group_get_tps(&group, &topic) });
                tps += rate.await.unwrap_or(0.0);
            }
            let sum = (tps * MINUTE_MS as f64 / 1000.0).round() as u64;
            let _ = write!(body, "\"statsMinute\":{{\"sum\":{sum},\"tps\":{}}}", java_double(tps));
        }
        _ => return Err(not_exist()),
    }
    body.push('}');
    Ok(request.success_response().with_body(body.into_bytes()))
}
