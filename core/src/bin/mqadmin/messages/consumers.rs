//! consumerProgress, consumerConnection, producerConnection, consumerStatus: what the brokers
//! know of a group's connections and offsets (GET_CONSUME_STATS, GET_CONSUMER_CONNECTION_LIST,
//! GET_PRODUCER_CONNECTION_LIST) and what each consumer says of itself
//! (GET_CONSUMER_RUNNING_INFO, forwarded by the broker), printed in the Java tool's layouts.

use std::collections::{BTreeMap, BTreeSet};

use ferromq_net::RemotingCommand;
use ferromq_net::codes::{request_code, response_code};
use ferromq_net::fastjson::{self, lenient_bool, lenient_i32, lenient_i64, lenient_string};
use serde_json::Value;

use super::format::{date_time, front, human_time, queue_text, version_desc};
use crate::common::{Admin, AdminError, AdminResult, BrokerGroup, TopicRoute, json_object};

/// A group's retry topic, which every broker serving the group has (Java's
/// `MixAll.getRetryTopic`): the route admin lookups of a group start from.
pub fn retry_topic(group: &str) -> String {
    format!("%RETRY%{group}")
}

/// A MessageQueue: (topic, brokerName, queueId), ordered as Java's `MessageQueue.compareTo`.
pub type Queue = (String, String, i32);

/// The entries of a map keyed by MessageQueue objects (fastjson's bean keys, PROTOCOL.md §4.1),
/// with their raw values.
fn queue_entries(raw: &[u8]) -> AdminResult<Vec<(Queue, &[u8])>> {
    let bad = AdminError::BadAnswer;
    let mut out = Vec::new();
    for (key, value) in fastjson::object_entries(raw).map_err(|e| bad(e.to_string()))? {
        let key: Value = serde_json::from_slice(key).map_err(|e| bad(format!("a MessageQueue key: {e}")))?;
        let text = |field: &str| lenient_string(key.get(field)).ok_or_else(|| bad(format!("MessageQueue {key} without {field}")));
        let queue_id = lenient_i32(key.get("queueId")).ok_or_else(|| bad(format!("MessageQueue {key} without queueId")))?;
        out.push(((text("topic")?, text("brokerName")?, queue_id), value));
    }
    Ok(out)
}

/// The raw value of field `name` of the object `raw` (`None` when absent or null).
fn field<'a>(raw: &'a [u8], name: &str) -> AdminResult<Option<&'a [u8]>> {
    let quoted = format!("\"{name}\"");
    Ok(fastjson::object_entries(raw)
        .map_err(|e| AdminError::BadAnswer(e.to_string()))?
        .into_iter()
        .find(|(k, _)| *k == quoted.as_bytes())
        .map(|(_, v)| v)
        .filter(|v| *v != b"null"))
}

/// The first broker address of `route` (master preferred), for lookups any broker answers.
fn any_addr(route: &TopicRoute, what: &str) -> AdminResult<String> {
    route
        .brokers
        .iter()
        .find_map(BrokerGroup::serving_addr)
        .map(str::to_owned)
        .ok_or_else(|| AdminError::Other(format!("no broker serves {what}")))
}

// ---- consume stats -----------------------------------------------------------------------------

/// One queue's line of ConsumeStats (OffsetWrapper).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueProgress {
    pub topic: String,
    pub broker_name: String,
    pub queue_id: i32,
    pub broker_offset: i64,
    pub consumer_offset: i64,
    pub pull_offset: i64,
    pub last_timestamp_ms: i64,
}

impl QueueProgress {
    fn key(&self) -> (&str, &str, i32) {
        (&self.topic, &self.broker_name, self.queue_id)
    }
}

#[derive(Debug, Default)]
pub struct ConsumeStats {
    /// Sorted by queue.
    pub queues: Vec<QueueProgress>,
    pub consume_tps: f64,
}

fn parse_consume_stats(body: &[u8]) -> AdminResult<ConsumeStats> {
    let mut stats = ConsumeStats::default();
    if let Some(tps) = field(body, "consumeTps")? {
        stats.consume_tps = std::str::from_utf8(tps).ok().and_then(|t| t.parse().ok()).unwrap_or(0.0);
    }
    let Some(table) = field(body, "offsetTable")? else { return Ok(stats) };
    for ((topic, broker_name, queue_id), value) in queue_entries(table)? {
        let v: Value = serde_json::from_slice(value).map_err(|e| AdminError::BadAnswer(format!("an OffsetWrapper: {e}")))?;
        let num = |name: &str| lenient_i64(v.get(name)).unwrap_or(0);
        stats.queues.push(QueueProgress {
            topic,
            broker_name,
            queue_id,
            broker_offset: num("brokerOffset"),
            consumer_offset: num("consumerOffset"),
            pull_offset: num("pullOffset"),
            last_timestamp_ms: num("lastTimestamp"),
        });
    }
    Ok(stats)
}

/// The route of the first of `topics` the name server routes (Java's `examineConsumeStats`
/// tries the group's retry topic, then the topic).
async fn first_route(admin: &Admin, topics: &[String]) -> AdminResult<TopicRoute> {
    let mut last = None;
    for topic in topics {
        match admin.route(topic).await {
            Ok(route) => return Ok(route),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| AdminError::Other("no topic to route".to_owned())))
}

/// Java's `examineConsumeStats(group[, topic])`: GET_CONSUME_STATS from every broker group of
/// the route of the group's retry topic (or of the topic), merged. An empty table for a group
/// that is not online, or consumes by broadcast, is an error, as in Java.
pub async fn consume_stats(admin: &Admin, group: &str, topic: Option<&str>) -> AdminResult<ConsumeStats> {
    let mut topics = vec![retry_topic(group)];
    topics.extend(topic.map(str::to_owned));
    let route = first_route(admin, &topics).await?;
    let mut merged = ConsumeStats::default();
    for broker in &route.brokers {
        let Some(addr) = broker.serving_addr() else { continue };
        let mut request = RemotingCommand::request(request_code::GET_CONSUME_STATS).with_ext("consumerGroup", group);
        if let Some(topic) = topic {
            request = request.with_ext("topic", topic);
        }
        let stats = parse_consume_stats(&admin.invoke_ok(addr, request).await?.body)?;
        merged.consume_tps += stats.consume_tps;
        merged.queues.extend(stats.queues);
    }
    merged.queues.sort_by(|a, b| a.key().cmp(&b.key()));
    merged.queues.dedup_by(|a, b| a.key() == b.key());
    if merged.queues.is_empty() {
        match connection(admin, group, None).await {
            Err(_) => {
                return Err(AdminError::Other(format!(
                    "Not found the consumer group consume stats, because return offset table is empty, maybe the consumer not online (group {group})"
                )));
            }
            Ok(c) if c.message_model == "BROADCASTING" => {
                return Err(AdminError::Other(format!(
                    "Not found the consumer group consume stats, because return offset table is empty, the consumer is under the broadcast mode (group {group})"
                )));
            }
            Ok(_) => {}
        }
    }
    Ok(merged)
}

// ---- connections -------------------------------------------------------------------------------

/// One client connection (Connection).
#[derive(Debug, Clone)]
pub struct Connection {
    pub client_id: String,
    pub client_addr: String,
    pub language: String,
    pub version: i32,
}

fn parse_connections(body: &serde_json::Map<String, Value>) -> Vec<Connection> {
    body.get("connectionSet")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .map(|c| Connection {
                    client_id: lenient_string(c.get("clientId")).unwrap_or_default(),
                    client_addr: lenient_string(c.get("clientAddr")).unwrap_or_default(),
                    language: lenient_string(c.get("language")).unwrap_or_default(),
                    version: lenient_i32(c.get("version")).unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A consumer group's connections and subscriptions (ConsumerConnection).
#[derive(Debug, Clone)]
pub struct ConsumerConnection {
    pub connections: Vec<Connection>,
    /// (topic, subscription expression), in the broker's order.
    pub subscriptions: Vec<(String, String)>,
    pub consume_type: String,
    pub message_model: String,
    pub consume_from_where: String,
}

/// Java's `examineConsumerConnectionInfo(group[, brokerAddr])`: GET_CONSUMER_CONNECTION_LIST
/// from `broker_addr`, or from a broker of the group's retry topic. A group with no connection
/// is CONSUMER_NOT_ONLINE.
pub async fn connection(admin: &Admin, group: &str, broker_addr: Option<&str>) -> AdminResult<ConsumerConnection> {
    let addr = match broker_addr {
        Some(addr) => addr.to_owned(),
        None => any_addr(&admin.route(&retry_topic(group)).await?, &format!("the consumer group {group}"))?,
    };
    let request = RemotingCommand::request(request_code::GET_CONSUMER_CONNECTION_LIST).with_ext("consumerGroup", group);
    let body = json_object(&admin.invoke_ok(&addr, request).await?.body)?;
    let connections = parse_connections(&body);
    if connections.is_empty() {
        return Err(AdminError::Refused {
            server: addr,
            code: response_code::CONSUMER_NOT_ONLINE,
            remark: "Not found the consumer group connection".to_owned(),
        });
    }
    let subscriptions = body
        .get("subscriptionTable")
        .and_then(Value::as_object)
        .map(|table| {
            table
                .iter()
                .map(|(topic, sub)| (lenient_string(sub.get("topic")).unwrap_or_else(|| topic.clone()), lenient_string(sub.get("subString")).unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let text = |name: &str| lenient_string(body.get(name)).unwrap_or_else(|| "null".to_owned());
    Ok(ConsumerConnection {
        connections,
        subscriptions,
        consume_type: text("consumeType"),
        message_model: text("messageModel"),
        consume_from_where: text("consumeFromWhere"),
    })
}

/// `consumerConnection`: the group's clients, its subscriptions and how it consumes.
pub async fn consumer_connection(admin: &Admin, group: &str, broker_addr: Option<&str>) -> AdminResult<()> {
    let cc = connection(admin, group, broker_addr).await?;
    println!("{:<36} {:<22} {:<10} #Version", "#ClientId", "#ClientAddr", "#Language");
    for c in &cc.connections {
        println!("{:<36} {:<22} {:<10} {}", c.client_id, c.client_addr, c.language, version_desc(c.version));
    }
    println!("\nBelow is subscription:");
    println!("{:<20} #SubExpression", "#Topic");
    for (topic, expression) in &cc.subscriptions {
        println!("{topic:<20} {expression}");
    }
    println!();
    println!("ConsumeType: {}", cc.consume_type);
    println!("MessageModel: {}", cc.message_model);
    println!("ConsumeFromWhere: {}", cc.consume_from_where);
    Ok(())
}

/// `producerConnection`: GET_PRODUCER_CONNECTION_LIST from a broker of the topic's route.
pub async fn producer_connection(admin: &Admin, group: &str, topic: &str) -> AdminResult<()> {
    let addr = any_addr(&admin.route(topic).await?, &format!("topic {topic}"))?;
    let request = RemotingCommand::request(request_code::GET_PRODUCER_CONNECTION_LIST).with_ext("producerGroup", group);
    let connections = parse_connections(&json_object(&admin.invoke_ok(&addr, request).await?.body)?);
    if connections.is_empty() {
        return Err(AdminError::Other(format!("Not found the producer group connection (group {group})")));
    }
    for (i, c) in connections.iter().enumerate() {
        println!("{:04}  {:<32} {:<22} {:<8} {}", i + 1, c.client_id, c.client_addr, c.language, version_desc(c.version));
    }
    Ok(())
}

// ---- consumerProgress --------------------------------------------------------------------------

/// `consumerProgress -g`: each queue's broker and consumer offsets, the lag (`#Diff`) and
/// what was pulled but not committed (`#Inflight`); with `-s true` the client each queue is
/// assigned to (from the consumers' running info).
pub async fn consumer_progress_of(admin: &Admin, group: &str, topic: Option<&str>, show_client_ip: bool) -> AdminResult<()> {
    let stats = consume_stats(admin, group, topic).await?;
    let assigned = if show_client_ip { queue_assignment(admin, group).await } else { BTreeMap::new() };
    if show_client_ip {
        println!(
            "{:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20} {:<20} {:<20}#LastTime",
            "#Topic", "#Broker Name", "#QID", "#Broker Offset", "#Consumer Offset", "#Client IP", "#Diff", "#Inflight"
        );
    } else {
        println!(
            "{:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20} {:<20}#LastTime",
            "#Topic", "#Broker Name", "#QID", "#Broker Offset", "#Consumer Offset", "#Diff", "#Inflight"
        );
    }
    let (mut diff_total, mut inflight_total) = (0i64, 0i64);
    for q in &stats.queues {
        let diff = q.broker_offset - q.consumer_offset;
        let inflight = q.pull_offset - q.consumer_offset;
        diff_total += diff;
        inflight_total += inflight;
        let last = if q.last_timestamp_ms == 0 { "N/A".to_owned() } else { date_time(q.last_timestamp_ms) };
        let (topic, broker) = (front(&q.topic, 64), front(&q.broker_name, 32));
        if show_client_ip {
            let ip = assigned.get(&(q.topic.clone(), q.broker_name.clone(), q.queue_id)).map_or("N/A", String::as_str);
            println!(
                "{topic:<64}  {broker:<32}  {:<4}  {:<20}  {:<20}  {ip:<20} {diff:<20} {inflight:<20} {last}",
                q.queue_id, q.broker_offset, q.consumer_offset
            );
        } else {
            println!("{topic:<64}  {broker:<32}  {:<4}  {:<20}  {:<20}  {diff:<20} {inflight:<20} {last}", q.queue_id, q.broker_offset, q.consumer_offset);
        }
    }
    println!();
    println!("Consume TPS: {:.2}", stats.consume_tps);
    println!("Consume Diff Total: {diff_total}");
    println!("Consume Inflight Total: {inflight_total}");
    Ok(())
}

/// Which client (its IP: the client id up to `@`) holds each queue, from each online
/// consumer's running info; empty when the group is offline (Java logs it and prints N/A).
async fn queue_assignment(admin: &Admin, group: &str) -> BTreeMap<Queue, String> {
    let mut out = BTreeMap::new();
    let Ok(cc) = connection(admin, group, None).await else { return out };
    for c in &cc.connections {
        let Ok(info) = running_info(admin, group, &c.client_id, false).await else { continue };
        let ip = c.client_id.split('@').next().unwrap_or_default().to_owned();
        for queue in info.mq_table.keys() {
            out.insert(queue.clone(), ip.clone());
        }
    }
    out
}

/// `consumerProgress` without `-g`: every group with a retry topic, its client count, lowest
/// client version, consume type and model, TPS and total lag.
pub async fn consumer_progress_all(admin: &Admin) -> AdminResult<()> {
    println!("{:<64}  {:<6}  {:<24} {:<5}  {:<14}  {:<7}  #Diff Total", "#Group", "#Count", "#Version", "#Type", "#Model", "#TPS");
    let response = admin.namesrv(RemotingCommand::request(request_code::GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).await?;
    let body = json_object(&response.body)?;
    let topics: BTreeSet<&str> = body.get("topicList").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    for group in topics.iter().filter_map(|t| t.strip_prefix("%RETRY%")) {
        // Java leaves out what it cannot learn (logged) and prints the rest of the line.
        let stats = consume_stats(admin, group, None).await.ok();
        let cc = connection(admin, group, None).await.ok();
        let count = cc.as_ref().map_or(0, |c| c.connections.len());
        let (version, kind, model) = match cc.as_ref().filter(|_| count > 0) {
            Some(c) => {
                let min_version = c.connections.iter().map(|c| c.version).min().unwrap_or(0);
                let push = c.consume_type != "CONSUME_ACTIVELY";
                (version_desc(min_version), if push { "PUSH" } else { "PULL" }, if push { c.message_model.clone() } else { String::new() })
            }
            None => ("OFFLINE".to_owned(), "", String::new()),
        };
        // Java keeps the TPS as an int (truncated).
        let tps = stats.as_ref().map_or(0, |s| s.consume_tps as i64);
        let diff: i64 = stats.as_ref().map_or(0, |s| s.queues.iter().map(|q| q.broker_offset - q.consumer_offset).sum());
        println!("{:<64}  {count:<6}  {version:<24} {kind:<5}  {model:<14}  {tps:<7}  {diff}", front(group, 64));
    }
    Ok(())
}

// ---- consumer running info and consumerStatus --------------------------------------------------

/// A consumer's own account of itself (ConsumerRunningInfo).
#[derive(Debug, Default)]
pub struct RunningInfo {
    /// Sorted by name (Java's `Properties`, a hash table, prints in its own order).
    pub properties: BTreeMap<String, String>,
    /// (topic, subString, classFilterMode), sorted as Java's TreeSet (by `topic@subString`).
    pub subscriptions: Vec<(String, String, bool)>,
    pub mq_table: BTreeMap<Queue, Value>,
    pub mq_pop_table: BTreeMap<Queue, Value>,
    pub status_table: BTreeMap<String, Value>,
    pub user_consumer_info: BTreeMap<String, String>,
    pub jstack: Option<String>,
}

/// GET_CONSUMER_RUNNING_INFO for `client_id` of `group`, through a broker of the group's
/// retry topic (the broker forwards it to the client).
pub async fn running_info(admin: &Admin, group: &str, client_id: &str, jstack: bool) -> AdminResult<RunningInfo> {
    let addr = any_addr(&admin.route(&retry_topic(group)).await?, &format!("the consumer group {group}"))?;
    let request = RemotingCommand::request(request_code::GET_CONSUMER_RUNNING_INFO)
        .with_ext("consumerGroup", group)
        .with_ext("clientId", client_id)
        .with_ext("jstackEnable", jstack);
    let body = admin.invoke_ok(&addr, request).await?.body;
    parse_running_info(&body)
}

fn parse_running_info(body: &[u8]) -> AdminResult<RunningInfo> {
    let value = |raw: &[u8]| serde_json::from_slice::<Value>(raw).map_err(|e| AdminError::BadAnswer(format!("ConsumerRunningInfo: {e}")));
    let strings = |v: Value| -> BTreeMap<String, String> {
        v.as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), lenient_string(Some(v)).unwrap_or_default())).collect()).unwrap_or_default()
    };
    let mut info = RunningInfo::default();
    if let Some(raw) = field(body, "properties")? {
        info.properties = strings(value(raw)?);
    }
    if let Some(raw) = field(body, "subscriptionSet")? {
        let mut subs: Vec<(String, String, bool)> = value(raw)?
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    lenient_string(s.get("topic")).unwrap_or_default(),
                    lenient_string(s.get("subString")).unwrap_or_default(),
                    lenient_bool(s.get("classFilterMode")).unwrap_or(false),
                )
            })
            .collect();
        subs.sort_by(|a, b| format!("{}@{}", a.0, a.1).cmp(&format!("{}@{}", b.0, b.1)));
        info.subscriptions = subs;
    }
    for (name, table) in [("mqTable", &mut info.mq_table), ("mqPopTable", &mut info.mq_pop_table)] {
        if let Some(raw) = field(body, name)? {
            for (queue, v) in queue_entries(raw)? {
                table.insert(queue, value(v)?);
            }
        }
    }
    if let Some(raw) = field(body, "statusTable")? {
        info.status_table = value(raw)?.as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    }
    if let Some(raw) = field(body, "userConsumerInfo")? {
        info.user_consumer_info = strings(value(raw)?);
    }
    if let Some(raw) = field(body, "jstack")? {
        info.jstack = value(raw)?.as_str().map(str::to_owned);
    }
    Ok(info)
}

impl RunningInfo {
    fn prop(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(String::as_str)
    }

    fn is_push(&self) -> bool {
        self.prop("PROP_CONSUME_TYPE") == Some("CONSUME_PASSIVELY")
    }

    /// `ConsumerRunningInfo.formatString()`.
    pub fn format(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::from("#Consumer Properties#\n");
        for (k, v) in &self.properties {
            let _ = writeln!(s, "{k:<40}: {v}");
        }
        s.push_str("\n\n#Consumer Subscription#\n");
        for (i, (topic, expression, class_filter)) in self.subscriptions.iter().enumerate() {
            let _ = writeln!(s, "{:03} Topic: {topic:<40} ClassFilter: {:<8} SubExpression: {expression}", i + 1, class_filter.to_string());
        }
        s.push_str("\n\n#Consumer Offset#\n");
        let _ = writeln!(s, "{:<64}  {:<32}  {:<4}  {:<20}", "#Topic", "#Broker Name", "#QID", "#Consumer Offset");
        for ((topic, broker, queue_id), pq) in &self.mq_table {
            let _ = writeln!(s, "{topic:<32}  {broker:<32}  {queue_id:<4}  {:<20}", lenient_i64(pq.get("commitOffset")).unwrap_or(0));
        }
        s.push_str("\n\n#Consumer MQ Detail#\n");
        let _ = writeln!(s, "{:<64}  {:<32}  {:<4}  {:<20}", "#Topic", "#Broker Name", "#QID", "#ProcessQueueInfo");
        for ((topic, broker, queue_id), pq) in &self.mq_table {
            let _ = writeln!(s, "{topic:<64}  {broker:<32}  {queue_id:<4}  {}", process_queue_text(pq));
        }
        s.push_str("\n\n#Consumer Pop Detail#\n");
        let _ = writeln!(s, "{:<32}  {:<32}  {:<4}  {:<20}", "#Topic", "#Broker Name", "#QID", "#ProcessQueueInfo");
        for ((topic, broker, queue_id), pq) in &self.mq_pop_table {
            let _ = writeln!(s, "{topic:<32}  {broker:<32}  {queue_id:<4}  {pq}");
        }
        s.push_str("\n\n#Consumer RT&TPS#\n");
        let _ = writeln!(
            s,
            "{:<64}  {:>14} {:>14} {:>14} {:>14} {:>18} {:>25}",
            "#Topic", "#Pull RT", "#Pull TPS", "#Consume RT", "#ConsumeOK TPS", "#ConsumeFailed TPS", "#ConsumeFailedMsgsInHour"
        );
        for (topic, st) in &self.status_table {
            let f = |name: &str| st.get(name).and_then(Value::as_f64).unwrap_or(0.0);
            let _ = writeln!(
                s,
                "{topic:<32}  {:>14.2} {:>14.2} {:>14.2} {:>14.2} {:>18.2} {:>25}",
                f("pullRT"),
                f("pullTPS"),
                f("consumeRT"),
                f("consumeOKTPS"),
                f("consumeFailedTPS"),
                lenient_i64(st.get("consumeFailedMsgs")).unwrap_or(0)
            );
        }
        s.push_str("\n\n#User Consume Info#\n");
        for (k, v) in &self.user_consumer_info {
            let _ = writeln!(s, "{k:<40}: {v}");
        }
        if let Some(jstack) = &self.jstack {
            s.push_str("\n\n#Consumer jstack#\n");
            s.push_str(jstack);
        }
        s
    }
}

/// `ProcessQueueInfo.toString()`.
fn process_queue_text(pq: &Value) -> String {
    let n = |name: &str| lenient_i64(pq.get(name)).unwrap_or(0);
    let b = |name: &str| lenient_bool(pq.get(name)).unwrap_or(false);
    format!(
        "ProcessQueueInfo [commitOffset={}, cachedMsgMinOffset={}, cachedMsgMaxOffset={}, cachedMsgCount={}, cachedMsgSizeInMiB={}, \
         transactionMsgMinOffset={}, transactionMsgMaxOffset={}, transactionMsgCount={}, locked={}, tryUnlockTimes={}, \
         lastLockTimestamp={}, droped={}, lastPullTimestamp={}, lastConsumeTimestamp={}]",
        n("commitOffset"),
        n("cachedMsgMinOffset"),
        n("cachedMsgMaxOffset"),
        n("cachedMsgCount"),
        n("cachedMsgSizeInMiB"),
        n("transactionMsgMinOffset"),
        n("transactionMsgMaxOffset"),
        n("transactionMsgCount"),
        b("locked"),
        n("tryUnlockTimes"),
        human_time(n("lastLockTimestamp")),
        b("droped"),
        human_time(n("lastPullTimestamp")),
        human_time(n("lastConsumeTimestamp")),
    )
}

/// How long a push consumer must have run before differing subscriptions count (Java: 2 min).
const SUBSCRIPTION_SETTLE_MS: i64 = 2 * 60 * 1000;
/// A push queue with cached messages and no consumption for this long looks blocked.
const BLOCKED_AFTER_MS: i64 = 60 * 1000;

/// `consumerStatus`: with `-i`, that client's running info; otherwise each client's running
/// info written to `<now ms>/<clientId>` (relative, as Java), listed, then checked: same
/// subscriptions on every client, and queues that look stuck.
pub async fn consumer_status(admin: &Admin, group: &str, client_id: Option<&str>, broker_addr: Option<&str>, jstack: bool) -> AdminResult<()> {
    let cc = connection(admin, group, broker_addr).await?;
    if let Some(client_id) = client_id {
        print!("{}", running_info(admin, group, client_id, jstack).await?.format());
        return Ok(());
    }
    let now = ferromq_store::store::now_ms();
    println!("{:<10} {:<40} {:<20} #ConsumerRunningInfoFile", "#Index", "#ClientId", "#Version");
    let mut infos: BTreeMap<String, RunningInfo> = BTreeMap::new();
    for c in &cc.connections {
        let info = match running_info(admin, group, &c.client_id, jstack).await {
            Ok(info) => info,
            // Java prints the exception and goes on to the next client.
            Err(e) => {
                eprintln!("{}: {e}", c.client_id);
                continue;
            }
        };
        let path = format!("{now}/{}", c.client_id);
        if let Err(e) = std::fs::create_dir_all(now.to_string()).and_then(|()| std::fs::write(&path, info.format())) {
            eprintln!("{path}: {e}");
            continue;
        }
        println!("{:<10} {:<40} {:<20} {path}", infos.len() + 1, c.client_id, version_desc(c.version));
        infos.insert(c.client_id.clone(), info);
    }
    let Some(first) = infos.values().next() else { return Ok(()) };
    let started_ms = first.prop("PROP_CONSUMER_START_TIMESTAMP").and_then(|t| t.parse::<i64>().ok()).unwrap_or(now);
    let compared = first.is_push() && now - started_ms > SUBSCRIPTION_SETTLE_MS;
    if compared && !infos.values().all(|i| i.subscriptions == first.subscriptions) {
        print!("\n\nWARN: Different subscription in the same group of consumer!!!");
        return Ok(());
    }
    print!("\n\nSame subscription in the same group of consumer");
    println!("\n\nRebalance OK");
    for (client, info) in &infos {
        if !info.is_push() {
            continue;
        }
        let orderly = info.prop("PROP_CONSUMEORDERLY") == Some("true");
        for ((topic, broker, queue_id), pq) in &info.mq_table {
            let n = |name: &str| lenient_i64(pq.get(name)).unwrap_or(0);
            let queue = queue_text(topic, broker, *queue_id as u32);
            if orderly {
                if !lenient_bool(pq.get("locked")).unwrap_or(false) {
                    println!("{client} {queue} can't lock for a while, {}ms", now - n("lastLockTimestamp"));
                } else if lenient_bool(pq.get("droped")).unwrap_or(false) && n("tryUnlockTimes") > 0 {
                    println!("{client} {queue} unlock {} times, still failed", n("tryUnlockTimes"));
                }
            } else {
                let idle_ms = now - n("lastConsumeTimestamp");
                if idle_ms > BLOCKED_AFTER_MS && n("cachedMsgCount") > 0 {
                    println!("{client} {queue} can't consume for a while, maybe blocked, {idle_ms}ms");
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_stats_with_bean_keys() {
        let body = br#"{"consumeTps":1.5,"offsetTable":{{"brokerName":"b","queueId":1,"topic":"T"}:{"brokerOffset":10,"consumerOffset":4,"lastTimestamp":0,"pullOffset":6},{"topic":"T","queueId":0,"brokerName":"b"}:{"brokerOffset":3,"consumerOffset":3,"lastTimestamp":17,"pullOffset":3}}}"#;
        let stats = parse_consume_stats(body).expect("parses");
        assert_eq!(stats.consume_tps, 1.5);
        assert_eq!(stats.queues.len(), 2);
        let first = QueueProgress { topic: "T".into(), broker_name: "b".into(), queue_id: 1, broker_offset: 10, consumer_offset: 4, pull_offset: 6, last_timestamp_ms: 0 };
        assert_eq!(stats.queues[0], first);
        assert_eq!(stats.queues[1].last_timestamp_ms, 17);
        assert!(parse_consume_stats(b"{\"offsetTable\":{{\"topic\":\"T\"}:{}}}").is_err(), "a key without queueId is refused");
    }

    #[test]
    fn running_info_reads_and_formats() {
        let body = br#"{"properties":{"PROP_CONSUME_TYPE":"CONSUME_PASSIVELY","PROP_CONSUMER_START_TIMESTAMP":"1"},"subscriptionSet":[{"classFilterMode":false,"topic":"T","subString":"*"}],"mqTable":{{"brokerName":"b","queueId":0,"topic":"T"}:{"commitOffset":5,"cachedMsgCount":0,"locked":false}},"mqPopTable":{},"statusTable":{"T":{"pullRT":1.0,"pullTPS":2.0,"consumeRT":3.0,"consumeOKTPS":4.0,"consumeFailedTPS":0.0,"consumeFailedMsgs":0}},"userConsumerInfo":{}}"#;
        let info = parse_running_info(body).expect("parses");
        assert!(info.is_push());
        let text = info.format();
        assert!(text.contains(&format!("001 Topic: {:<40} ClassFilter: {:<8} SubExpression: *\n", "T", "false")), "{text}");
        assert!(text.contains(&format!("{:<32}  {:<32}  {:<4}  {:<20}\n", "T", "b", 0, 5)), "{text}");
        assert!(text.contains("ProcessQueueInfo [commitOffset=5,"), "{text}");
        assert!(text.contains(&format!("{:<32}  {:>14.2} {:>14.2}", "T", 1.0, 2.0)), "{text}");
    }
}
