//! What operators do to consumer groups (mqadmin, the dashboard; PROTOCOL.md §2.5, §2.7):
//! INVOKE_BROKER_TO_RESET_OFFSET (222), CLONE_GROUP_OFFSET (314), DELETE_SUBSCRIPTIONGROUP
//! (207), and what the broker asks the group's clients for: INVOKE_BROKER_TO_GET_CONSUMER_STATUS
//! (223, each client's GET_CONSUMER_STATUS_FROM_CLIENT answer) and GET_CONSUMER_RUNNING_INFO
//! (307, forwarded to the client).
//!
//! A reset by time moves each queue's committed offset to the first message stored at or
//! after the time (`-1`: the end), unless the group is already behind that and `isForce` is
//! false (as Java). The new offsets are committed here — so a group that is offline resumes
//! from them — and sent to every online consumer of the group in RESET_CONSUMER_CLIENT_OFFSET
//! (220), which replaces the offsets the client holds in memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::Duration;

use ferromq_net::RemotingCommand;
use ferromq_net::codes::{request_code, response_code};
use ferromq_store::QueueId;

use crate::clients::ClientInfo;
use crate::control::{Command, OffsetKey};
use crate::error::{BrokerError, BrokerResult};
use crate::header::Header;
use crate::shard::ShardCtx;

/// How long a forwarded request waits for the client (Java: 10 s for running info).
const CLIENT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long GET_CONSUMER_STATUS_FROM_CLIENT waits for each client (Java: 5 s).
const CONSUMER_STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// 222 INVOKE_BROKER_TO_RESET_OFFSET.
pub async fn reset_offset(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let h = Header::of(request);
    let topic = h.str("topic")?;
    let group = h.str("group")?;
    let timestamp_ms = h.i64("timestamp")?;
    let force = h.opt_bool("isForce")?.unwrap_or(true);
    // mqadmin `resetOffsetByTime -b -q [-o]` names one queue and maybe its offset (-1: none).
    let only_queue = h.opt_i32("queueId")?.and_then(|q| QueueId::try_from(q).ok());
    let explicit = h.opt_i64("offset")?.filter(|o| *o != -1);
    let config = ctx.control.topic(topic).ok_or_else(|| BrokerError::topic_not_exist(topic))?;
    let queues = config.read_queue_nums.max(0) as u32;
    let queue_ids: Vec<QueueId> = match only_queue {
        Some(q) if q.0 < queues => vec![q],
        Some(q) => return Err(BrokerError::new(response_code::INVALID_PARAMETER, format!("queueId {q} is not a queue of {topic} ({queues} queues)"))),
        None => (0..queues).map(QueueId).collect(),
    };
    let broker_name = ctx.control.identity().broker_name.clone();
    let mut table = Vec::with_capacity(queue_ids.len());
    for queue_id in queue_ids {
        let owner = ctx.owner(topic, queue_id);
        let name = topic.to_owned();
        let (min, max, by_time) = ctx
            .on(owner, move |owner_ctx, _| async move {
                let (min, max) = owner_ctx.store.queue_offsets(&name, queue_id);
                let by_time = if timestamp_ms < 0 { max } else { owner_ctx.store.search_offset_by_timestamp(&name, queue_id, timestamp_ms, false).await? };
                Ok::<_, ferromq_store::StoreError>((min.0 as i64, max.0 as i64, by_time.0 as i64))
            })
            .await??;
        let offset = match explicit {
            // An explicit offset is the operator's: taken as given, within the queue (Java's
            // server-side reset refuses one outside [min, max + 1] the same way).
            Some(offset) if offset < min || offset > max + 1 => {
                return Err(BrokerError::system(format!("Target offset {offset} not in consume queue range [{min}-{max}]")));
            }
            Some(offset) => offset,
            None => {
                let key = OffsetKey { group: group.to_owned(), topic: topic.to_owned(), queue_id };
                match ctx.control.call(|reply| Command::QueryOffset { key, reply }).await? {
                    Some(committed) if !force && committed <= by_time => committed,
                    _ => by_time,
                }
            }
        };
        table.push((queue_id, offset));
    }
    let queues = table.len();
    let commits = table
        .iter()
        .map(|(queue_id, offset)| (OffsetKey { group: group.to_owned(), topic: topic.to_owned(), queue_id: *queue_id }, *offset))
        .collect();
    ctx.control.tell(Command::CommitOffsets { commits }).await?;
    let body = reset_offset_body(&broker_name, topic, &table);
    let notify = RemotingCommand::request(request_code::RESET_CONSUMER_CLIENT_OFFSET)
        .with_ext("topic", topic)
        .with_ext("group", group)
        .with_ext("timestamp", timestamp_ms)
        .with_ext("isForce", force)
        .with_body(body.clone().into_bytes());
    let notified = ctx.control.call(|reply| Command::NotifyConsumers { group: group.to_owned(), request: Box::new(notify), reply }).await?;
    tracing::info!(group, topic, timestamp_ms, force, queues, notified, "consumer offsets reset by time");
    Ok(request.success_response().with_body(body.into_bytes()))
}

/// ResetOffsetBody: `{"offsetTable":{<MessageQueue>:<offset>,...}}` with MessageQueue object
/// keys as fastjson writes them (§4.1).
fn reset_offset_body(broker_name: &str, topic: &str, table: &[(QueueId, i64)]) -> String {
    let mut out = String::from("{\"offsetTable\":{");
    for (i, (queue_id, offset)) in table.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        super::admin::queue_key(&mut out, broker_name, *queue_id, topic);
        out.push(':');
        out.push_str(&offset.to_string());
    }
    out.push_str("}}");
    out
}

/// 314 CLONE_GROUP_OFFSET: `destGroup` gets `srcGroup`'s committed offsets of `topic` (every
/// topic when absent).
pub async fn clone_group_offset(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let h = Header::of(request);
    let src = h.str("srcGroup")?.to_owned();
    let dest = h.str("destGroup")?.to_owned();
    crate::meta::validate_name(&dest, crate::meta::topics::MAX_TOPIC_NAME_LEN).map_err(|reason| BrokerError::system(format!("destGroup {dest:?}: {reason}")))?;
    let topic = h.opt_str("topic").filter(|t| !t.is_empty()).map(str::to_owned);
    ctx.control.call(|reply| Command::CloneGroupOffset { src, dest, topic, reply }).await?;
    Ok(request.success_response())
}

/// 207 DELETE_SUBSCRIPTIONGROUP: the group's config goes, and its offsets with `cleanOffset`.
pub async fn delete_subscription_group(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let h = Header::of(request);
    let group = h.str("groupName")?.to_owned();
    let clean_offset = h.opt_bool("cleanOffset")?.unwrap_or(false);
    let existed = ctx.control.call(|reply| Command::DeleteGroup { group: group.clone(), clean_offset, reply }).await?;
    tracing::info!(group, clean_offset, existed, "subscription group deleted");
    Ok(request.success_response())
}

/// 307 GET_CONSUMER_RUNNING_INFO: asks the client (`clientId` of `consumerGroup`) on its
/// connection and relays its answer.
pub async fn consumer_running_info(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let h = Header::of(request);
    let group = h.str("consumerGroup")?.to_owned();
    let client_id = h.str("clientId")?.to_owned();
    let jstack = h.opt_bool("jstackEnable")?.unwrap_or(false);
    let channel = ctx
        .control
        .call(|reply| Command::ConsumerChannel { group: group.clone(), client_id: client_id.clone(), reply })
        .await?
        .ok_or_else(|| BrokerError::new(ferromq_net::codes::response_code::CONSUMER_NOT_ONLINE, format!("The Consumer <{client_id}> not online")))?;
    let forward = RemotingCommand::request(request_code::GET_CONSUMER_RUNNING_INFO)
        .with_ext("consumerGroup", &group)
        .with_ext("clientId", &client_id)
        .with_ext("jstackEnable", jstack);
    let answer = ctx
        .invoke_client(channel, forward, CLIENT_CALL_TIMEOUT)
        .await?
        .map_err(|e| BrokerError::system(format!("consumer <{client_id}> did not answer: {e}")))?;
    let mut response = request.success_response().with_body(answer.body.to_vec());
    response.code = answer.code;
    response.remark = answer.remark;
    Ok(response)
}

/// 223 INVOKE_BROKER_TO_GET_CONSUMER_STATUS (mqadmin getConsumerStatus), as Java's
/// `Broker2Client.getConsumeStatus`: GET_CONSUMER_STATUS_FROM_CLIENT (221, header `topic`,
/// `group`) goes to each online client of `group` — only to the one whose client id is
/// `clientAddr`, when that is not blank (mqadmin's `-i originClientId`) — and the answer is
/// `{"consumerTable":{<clientId>:{<MessageQueue>:<offset>,...},...},"messageQueueTable":{}}`
/// with each client's `messageQueueTable` (the offsets it holds in memory for `topic`).
/// A client that fails, times out, answers an error or a body that does not parse is left out
/// and the answer is still SUCCESS (Java logs and goes on); a group with no online client is
/// SYSTEM_ERROR, and so is a client older than 3.0.7 among those asked.
pub async fn consumer_status(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let h = Header::of(request);
    let topic = h.str("topic")?.to_owned();
    let group = h.str("group")?.to_owned();
    let only = h.opt_str("clientAddr").map(str::trim).filter(|id| !id.is_empty()).map(str::to_owned);
    let clients = ctx.control.call(|reply| Command::ConsumerClients { group: group.clone(), reply }).await?;
    if clients.is_empty() {
        // Java's message for an empty channel table. (Java answers a group it has never seen,
        // or whose last client left, with the NullPointerException its lookup then throws,
        // also SYSTEM_ERROR.)
        return Err(BrokerError::system(format!("No Any Consumer online in the consumer group: [{group}]")));
    }
    let asked = clients_to_ask(clients, only.as_deref())?;
    let forward = RemotingCommand::request(request_code::GET_CONSUMER_STATUS_FROM_CLIENT).with_ext("topic", &topic).with_ext("group", &group);
    let calls = asked.iter().map(|client| {
        let forward = forward.clone();
        async move { ctx.invoke_client(client.channel, forward, CONSUMER_STATUS_TIMEOUT).await }
    });
    let answers = futures_util::future::join_all(calls).await;
    let mut table: BTreeMap<String, BTreeMap<QueueKey, i64>> = BTreeMap::new();
    for (client, answer) in asked.iter().zip(answers) {
        let client_id = client.client_id.as_str();
        let answer = match answer {
            Ok(Ok(answer)) if answer.code == response_code::SUCCESS && !answer.body.is_empty() => answer,
            Ok(Ok(answer)) => {
                tracing::warn!(group, topic, client_id, code = answer.code, remark = answer.remark.as_deref().unwrap_or(""), "consumer status: the client answered no status");
                continue;
            }
            Ok(Err(e)) => {
                tracing::warn!(group, topic, client_id, "consumer status: the client did not answer: {e}");
                continue;
            }
            Err(e) => {
                tracing::warn!(group, topic, client_id, "consumer status: the client could not be asked: {e}");
                continue;
            }
        };
        match client_queue_table(&answer.body) {
            Ok(offsets) => {
                table.insert(client.client_id.clone(), offsets);
            }
            Err(e) => tracing::warn!(group, topic, client_id, "consumer status: the client's GetConsumerStatusBody does not parse: {e}"),
        }
    }
    tracing::info!(group, topic, asked = asked.len(), answered = table.len(), "consumer status from the clients");
    Ok(request.success_response().with_body(consumer_status_body(&table).into_bytes()))
}

/// The clients Java's loop asks, in its order (here: client-id order): every client, or up to
/// and including `only`; a client older than V3_0_7_SNAPSHOT met on the way fails the request.
fn clients_to_ask(clients: Vec<ClientInfo>, only: Option<&str>) -> BrokerResult<Vec<ClientInfo>> {
    let mut asked = Vec::new();
    for client in clients {
        if client.version < V3_0_7_SNAPSHOT {
            return Err(BrokerError::system(format!("the client does not support this feature. version={}", version_desc(client.version))));
        }
        match only {
            None => asked.push(client),
            Some(id) if id == client.client_id => {
                asked.push(client);
                break;
            }
            Some(_) => {}
        }
    }
    Ok(asked)
}

/// `MQVersion.Version.V3_0_7_SNAPSHOT.ordinal()`: the first client version that answers 220
/// and 221.
const V3_0_7_SNAPSHOT: i32 = 28;

/// `MQVersion.getVersionDesc` for the versions refused here (below V3_0_7_SNAPSHOT).
fn version_desc(version: i32) -> String {
    const NAMES: [&str; V3_0_7_SNAPSHOT as usize] = [
        "V3_0_0_SNAPSHOT", "V3_0_0_ALPHA1", "V3_0_0_BETA1", "V3_0_0_BETA2", "V3_0_0_BETA3", "V3_0_0_BETA4", "V3_0_0_BETA5",
        "V3_0_0_BETA6_SNAPSHOT", "V3_0_0_BETA6", "V3_0_0_BETA7_SNAPSHOT", "V3_0_0_BETA7", "V3_0_0_BETA8_SNAPSHOT", "V3_0_0_BETA8",
        "V3_0_0_BETA9_SNAPSHOT", "V3_0_0_BETA9", "V3_0_0_FINAL", "V3_0_1_SNAPSHOT", "V3_0_1", "V3_0_2_SNAPSHOT", "V3_0_2",
        "V3_0_3_SNAPSHOT", "V3_0_3", "V3_0_4_SNAPSHOT", "V3_0_4", "V3_0_5_SNAPSHOT", "V3_0_5", "V3_0_6_SNAPSHOT", "V3_0_6",
    ];
    usize::try_from(version).ok().and_then(|i| NAMES.get(i)).map_or_else(|| version.to_string(), |name| (*name).to_owned())
}

/// A MessageQueue as a map key, ordered (topic, brokerName, queueId).
type QueueKey = (String, String, i32);

/// The `messageQueueTable` of a client's GetConsumerStatusBody (fastjson MessageQueue object
/// keys, §4.1; any key order inside them).
pub(super) fn client_queue_table(body: &[u8]) -> Result<BTreeMap<QueueKey, i64>, String> {
    let fields = ferromq_net::fastjson::object_entries(body).map_err(|e| e.to_string())?;
    let mut table = BTreeMap::new();
    let Some((_, map)) = fields.into_iter().find(|(key, _)| *key == b"\"messageQueueTable\"") else {
        return Ok(table);
    };
    if map == b"null" {
        return Ok(table);
    }
    for (key, value) in ferromq_net::fastjson::object_entries(map).map_err(|e| e.to_string())? {
        let key: serde_json::Value = serde_json::from_slice(key).map_err(|e| format!("a MessageQueue key: {e}"))?;
        let text = |field: &str| key.get(field).and_then(serde_json::Value::as_str).map(str::to_owned).ok_or_else(|| format!("MessageQueue {key} without {field}"));
        let queue_id = key.get("queueId").and_then(serde_json::Value::as_i64).and_then(|q| i32::try_from(q).ok()).ok_or_else(|| format!("MessageQueue {key} without queueId"))?;
        let offset: i64 = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()).ok_or_else(|| format!("offset {:?} of {key}", String::from_utf8_lossy(value)))?;
        table.insert((text("topic")?, text("brokerName")?, queue_id), offset);
    }
    Ok(table)
}

/// GetConsumerStatusBody as fastjson writes it: fields in name order, MessageQueue object keys
/// (§4.1); the broker's own `messageQueueTable` is always empty.
fn consumer_status_body(table: &BTreeMap<String, BTreeMap<QueueKey, i64>>) -> String {
    let mut out = String::from("{\"consumerTable\":{");
    for (i, (client_id, offsets)) in table.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}:{{", serde_json::Value::from(client_id.as_str()));
        for (j, ((topic, broker_name, queue_id), offset)) in offsets.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"brokerName\":{},\"queueId\":{queue_id},\"topic\":{}}}:{offset}",
                serde_json::Value::from(broker_name.as_str()),
                serde_json::Value::from(topic.as_str())
            );
        }
        out.push('}');
    }
    out.push_str("},\"messageQueueTable\":{}}");
    out
}
