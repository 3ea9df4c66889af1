//! Messages as the Java tool sees them: records decoded as its client decodes them
//! (`MessageDecoder.clientDecode`: body decompressed, msgId = UNIQ_KEY else the offset id), the
//! broker calls that find them (VIEW_MESSAGE_BY_ID, QUERY_MESSAGE, PULL_MESSAGE and the queue
//! offsets), and the two detail layouts (`queryMsgById` and `queryMsgByUniqueKey`) with their
//! body file and message track.

use std::io::Read as _;
use std::net::SocketAddr;

use ferromq_net::RemotingCommand;
use ferromq_net::codes::{request_code, response_code};
use ferromq_store::record::{Properties, RecordView, decode_body, decode_offset_msg_id, sysflag};

use super::format::{human_time2, java_bytes, java_hash_map_string};
use crate::common::{Admin, AdminError, AdminResult, BrokerGroup, TopicRoute};

/// Where the Java tool writes each body it shows (`QueryMsgByIdSubCommand.createBodyFile`).
pub const BODY_DIR: &str = "/tmp/rocketmq/msgbodys";

/// The consumer group the Java tool's pull consumer uses (`MixAll.TOOLS_CONSUMER_GROUP`).
pub const TOOLS_CONSUMER_GROUP: &str = "TOOLS_CONSUMER";

/// `KEYS` holds several keys separated by this (`MessageConst.KEY_SEPARATOR`).
const KEY_SEPARATOR: char = ' ';

/// The properties map Java's decoder fills: `new HashMap<>(128)`, whose size sets the order
/// `Properties:` prints in.
const JAVA_PROPERTIES_CAPACITY: usize = 128;

/// One message, decoded.
#[derive(Debug, Clone)]
pub struct Message {
    /// The broker group it was pulled from (Java sets it on pulled messages only).
    pub broker_name: Option<String>,
    pub topic: String,
    pub flag: i32,
    /// In the order the record holds them; a later duplicate wins, as in Java's map.
    pub properties: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub queue_id: u32,
    pub store_size: usize,
    pub queue_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp_ms: i64,
    pub born_host: SocketAddr,
    pub store_timestamp_ms: i64,
    pub store_host: SocketAddr,
    pub offset_msg_id: String,
    pub commit_log_offset: i64,
    pub body_crc: u32,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    /// `UNIQ_KEY` of a transactional message, as the Java client sets it on pulled messages.
    pub transaction_id: Option<String>,
}

impl Message {
    fn of(record: &RecordView<'_>) -> Message {
        Message {
            broker_name: None,
            topic: record.topic.to_owned(),
            flag: record.flag,
            properties: Properties::decode(record.properties).entries,
            body: decompressed(record.sys_flag, record.body),
            queue_id: record.queue_id.0,
            store_size: record.total_size,
            queue_offset: record.queue_offset,
            sys_flag: record.sys_flag,
            born_timestamp_ms: record.born_timestamp_ms,
            born_host: record.born_host,
            store_timestamp_ms: record.store_timestamp_ms,
            store_host: record.store_host,
            offset_msg_id: record.offset_msg_id(),
            commit_log_offset: record.physical_offset,
            body_crc: record.body_crc,
            reconsume_times: record.reconsume_times,
            prepared_transaction_offset: record.prepared_transaction_offset,
            transaction_id: None,
        }
    }

    /// The messages of a pull, query or view body, stopping at the first record that does not
    /// decode (as Java's client does).
    pub fn decode_all(body: &[u8]) -> Vec<Message> {
        decode_body(body).0.iter().map(Message::of).collect()
    }

    /// The value of property `key` (the last occurrence).
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `MessageClientExt.getMsgId()`: the producer's UNIQ_KEY, else the offset message id.
    pub fn msg_id(&self) -> &str {
        self.property("UNIQ_KEY").unwrap_or(&self.offset_msg_id)
    }

    /// `[tags]` as Java prints a possibly null string inside brackets.
    pub fn tags_text(&self) -> String {
        format!("[{}]", self.property("TAGS").unwrap_or("null"))
    }

    pub fn keys_text(&self) -> String {
        format!("[{}]", self.property("KEYS").unwrap_or("null"))
    }

    /// Java's `properties.toString()`.
    pub fn properties_text(&self) -> String {
        java_hash_map_string(&self.properties, JAVA_PROPERTIES_CAPACITY)
    }

    /// `MessageExt.toString()` (which `printMsg` and `consumeMessage` print).
    pub fn java_to_string(&self) -> String {
        format!(
            "MessageExt [brokerName={}, queueId={}, storeSize={}, queueOffset={}, sysFlag={}, bornTimestamp={}, bornHost=/{}, \
             storeTimestamp={}, storeHost=/{}, msgId={}, commitLogOffset={}, bodyCRC={}, reconsumeTimes={}, \
             preparedTransactionOffset={}, toString()=Message{{topic='{}', flag={}, properties={}, body={}, transactionId='{}'}}]",
            self.broker_name.as_deref().unwrap_or("null"),
            self.queue_id,
            self.store_size,
            self.queue_offset,
            self.sys_flag,
            self.born_timestamp_ms,
            self.born_host,
            self.store_timestamp_ms,
            self.store_host,
            self.offset_msg_id,
            self.commit_log_offset,
            self.body_crc,
            self.reconsume_times,
            self.prepared_transaction_offset,
            self.topic,
            self.flag,
            self.properties_text(),
            java_bytes(&self.body),
            self.transaction_id.as_deref().unwrap_or("null"),
        )
    }
}

/// The body as the Java client hands it out: zlib bodies inflated (the compression type bits,
/// 0 for producers before 4.9.4, and 3 say zlib). LZ4 and ZSTD bodies, and bodies that do not
/// inflate, stay as stored.
fn decompressed(sys_flag: i32, body: &[u8]) -> Vec<u8> {
    const ZLIB: i32 = 3;
    let kind = (sys_flag >> 8) & 0x7;
    if sys_flag & sysflag::COMPRESSED == 0 || !(kind == 0 || kind == ZLIB) {
        return body.to_vec();
    }
    let mut out = Vec::new();
    match flate2::read::ZlibDecoder::new(body).read_to_end(&mut out) {
        Ok(_) => out,
        Err(_) => body.to_vec(),
    }
}

/// A body in the charset `-f`/`-c` names (Java's `new String(body, charset)`).
pub fn body_in_charset(body: &[u8], charset: &str) -> AdminResult<String> {
    match charset.to_ascii_uppercase().replace('_', "-").as_str() {
        "UTF-8" | "UTF8" => Ok(String::from_utf8_lossy(body).into_owned()),
        "ISO-8859-1" | "LATIN1" | "ISO8859-1" => Ok(body.iter().map(|b| char::from(*b)).collect()),
        "US-ASCII" | "ASCII" => Ok(body.iter().map(|b| if b.is_ascii() { char::from(*b) } else { '\u{FFFD}' }).collect()),
        _ => Err(AdminError::Usage(format!("charset '{charset}' is not supported (UTF-8, ISO-8859-1, US-ASCII)"))),
    }
}

/// The address serving `broker_name` in `route`.
pub fn addr_of(route: &TopicRoute, broker_name: &str) -> AdminResult<String> {
    route
        .brokers
        .iter()
        .find(|b| b.broker_name == broker_name)
        .and_then(BrokerGroup::serving_addr)
        .map(str::to_owned)
        .ok_or_else(|| AdminError::Other(format!("The broker[{broker_name}] not exist")))
}

/// The readable queues of `route`, sorted (Java's `fetchSubscribeMessageQueues`; its set has
/// no order, this one does).
pub fn readable_queues(route: &TopicRoute) -> Vec<(String, u32)> {
    const PERM_READ: i32 = 4;
    let mut queues: Vec<(String, u32)> = route
        .queues
        .iter()
        .filter(|q| q.perm & PERM_READ != 0)
        .flat_map(|q| (0..q.read_queue_nums.max(0) as u32).map(move |id| (q.broker_name.clone(), id)))
        .collect();
    queues.sort();
    queues
}

// ---- broker calls ------------------------------------------------------------------------------

/// GET_MIN_OFFSET / GET_MAX_OFFSET / SEARCH_OFFSET_BY_TIMESTAMP answer header `offset`.
async fn offset_answer(admin: &Admin, addr: &str, request: RemotingCommand) -> AdminResult<i64> {
    let response = admin.invoke_ok(addr, request).await?;
    response
        .ext("offset")
        .and_then(|o| o.parse().ok())
        .ok_or_else(|| AdminError::BadAnswer(format!("{addr} answered no offset")))
}

pub async fn min_offset(admin: &Admin, addr: &str, topic: &str, queue_id: u32) -> AdminResult<i64> {
    offset_answer(admin, addr, RemotingCommand::request(request_code::GET_MIN_OFFSET).with_ext("topic", topic).with_ext("queueId", queue_id)).await
}

pub async fn max_offset(admin: &Admin, addr: &str, topic: &str, queue_id: u32) -> AdminResult<i64> {
    offset_answer(admin, addr, RemotingCommand::request(request_code::GET_MAX_OFFSET).with_ext("topic", topic).with_ext("queueId", queue_id)).await
}

/// The first offset stored at or after `timestamp_ms`.
pub async fn search_offset(admin: &Admin, addr: &str, topic: &str, queue_id: u32, timestamp_ms: i64) -> AdminResult<i64> {
    let request = RemotingCommand::request(request_code::SEARCH_OFFSET_BY_TIMESTAMP)
        .with_ext("topic", topic)
        .with_ext("queueId", queue_id)
        .with_ext("timestamp", timestamp_ms);
    offset_answer(admin, addr, request).await
}

/// What a pull found, as the Java client names it (`PullStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    Found,
    NoNewMsg,
    NoMatchedMsg,
    OffsetIllegal,
}

impl PullStatus {
    pub fn name(self) -> &'static str {
        match self {
            PullStatus::Found => "FOUND",
            PullStatus::NoNewMsg => "NO_NEW_MSG",
            PullStatus::NoMatchedMsg => "NO_MATCHED_MSG",
            PullStatus::OffsetIllegal => "OFFSET_ILLEGAL",
        }
    }
}

pub struct Pulled {
    pub status: PullStatus,
    pub next_begin_offset: i64,
    pub messages: Vec<Message>,
}

/// A pull as the Java tool's `DefaultMQPullConsumer.pull` sends it: subscription in the header,
/// no long polling (the broker answers at once), no offset commit. Messages get the client's
/// additions: broker name, `MIN_OFFSET`/`MAX_OFFSET`, and the transaction id of transactional
/// ones; those whose tag is not in the subscription are dropped (the broker filters by hash).
#[allow(clippy::too_many_arguments)]
pub async fn pull(
    admin: &Admin,
    addr: &str,
    group: &str,
    topic: &str,
    broker_name: &str,
    queue_id: u32,
    offset: i64,
    max_messages: i64,
    subscription: &str,
) -> AdminResult<Pulled> {
    const FLAG_SUBSCRIPTION: i32 = 4;
    let request = RemotingCommand::request(request_code::PULL_MESSAGE)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic)
        .with_ext("queueId", queue_id)
        .with_ext("queueOffset", offset)
        .with_ext("maxMsgNums", max_messages.clamp(1, i64::from(i32::MAX)))
        .with_ext("sysFlag", FLAG_SUBSCRIPTION)
        .with_ext("commitOffset", 0)
        .with_ext("suspendTimeoutMillis", 0)
        .with_ext("subscription", subscription)
        .with_ext("subVersion", 0)
        .with_ext("expressionType", "TAG");
    let response = admin.invoke(addr, request).await?;
    let status = match response.code {
        response_code::SUCCESS => PullStatus::Found,
        response_code::PULL_NOT_FOUND => PullStatus::NoNewMsg,
        response_code::PULL_RETRY_IMMEDIATELY => PullStatus::NoMatchedMsg,
        response_code::PULL_OFFSET_MOVED => PullStatus::OffsetIllegal,
        _ => return Err(crate::common::expect_success(addr, response).err().unwrap_or_else(|| AdminError::BadAnswer(format!("{addr}: pull")))),
    };
    let header = |key: &str| {
        response
            .ext(key)
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| AdminError::BadAnswer(format!("{addr}: pull answer without {key}")))
    };
    let next_begin_offset = header("nextBeginOffset")?;
    let (min, max) = (header("minOffset")?, header("maxOffset")?);
    let tags: Vec<&str> = subscription.split("||").map(str::trim).filter(|t| !t.is_empty()).collect();
    let every_tag = tags.is_empty() || tags.contains(&"*");
    let mut messages = Vec::new();
    if status == PullStatus::Found {
        for mut message in Message::decode_all(&response.body) {
            if !every_tag && !message.property("TAGS").is_some_and(|t| tags.contains(&t)) {
                continue;
            }
            if message.property("TRAN_MSG").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                message.transaction_id = message.property("UNIQ_KEY").map(str::to_owned);
            }
            message.properties.push(("MIN_OFFSET".to_owned(), min.to_string()));
            message.properties.push(("MAX_OFFSET".to_owned(), max.to_string()));
            message.broker_name = Some(broker_name.to_owned());
            messages.push(message);
        }
    }
    Ok(Pulled { status, next_begin_offset, messages })
}

/// VIEW_MESSAGE_BY_ID to the broker an offset message id names (Java's `viewMessage`).
pub async fn view_by_offset_id(admin: &Admin, topic: &str, id: &str) -> AdminResult<Message> {
    let (host, offset) = decode_offset_msg_id(id).ok_or_else(|| AdminError::Usage(format!("'{id}' is not an offset message id")))?;
    let addr = host.to_string();
    let request = RemotingCommand::request(request_code::VIEW_MESSAGE_BY_ID).with_ext("offset", offset.0).with_ext("topic", topic);
    let response = admin.invoke_ok(&addr, request).await?;
    Message::decode_all(&response.body)
        .into_iter()
        .next()
        .ok_or_else(|| AdminError::BadAnswer(format!("{addr} answered no message for offset {}", offset.0)))
}

/// QUERY_MESSAGE to every broker group of the topic's route, the results kept as Java's
/// `MQAdminImpl.queryMessage` keeps them: by unique key, the messages whose msgId is `key`;
/// by key, those of `topic` with `key` among their KEYS. None found is an error, as in Java.
pub async fn query(admin: &Admin, topic: &str, key: &str, max_num: i32, begin_ms: i64, end_ms: i64, unique: bool) -> AdminResult<Vec<Message>> {
    let route = admin.route(topic).await?;
    let mut found = Vec::new();
    for group in &route.brokers {
        let Some(addr) = group.serving_addr() else { continue };
        let mut request = RemotingCommand::request(request_code::QUERY_MESSAGE)
            .with_ext("topic", topic)
            .with_ext("key", key)
            .with_ext("maxNum", max_num)
            .with_ext("beginTimestamp", begin_ms)
            .with_ext("endTimestamp", end_ms);
        if unique {
            request = request.with_ext("_UNIQUE_KEY_QUERY", "true");
        }
        // Java skips a broker that fails or finds nothing (QUERY_NOT_FOUND) and goes on.
        let response = match admin.invoke(addr, request).await {
            Ok(response) if response.code == response_code::SUCCESS => response,
            Ok(_) | Err(_) => continue,
        };
        for message in Message::decode_all(&response.body) {
            let matches = if unique {
                message.msg_id() == key
            } else {
                message.topic == topic && message.property("KEYS").is_some_and(|keys| keys.split(KEY_SEPARATOR).any(|k| k == key))
            };
            if matches {
                found.push(message);
            }
        }
    }
    if found.is_empty() {
        return Err(AdminError::Other(format!("query message by key finished, but no message (topic {topic}, key {key})")));
    }
    Ok(found)
}

/// Java's `DefaultMQAdminExt.queryMessage(cluster, topic, msgId)`: an offset message id is
/// viewed on the broker it names; anything else, or an id whose view fails, is looked up as a
/// unique key over the last three days.
pub async fn by_id(admin: &Admin, topic: &str, id: &str) -> AdminResult<Message> {
    if decode_offset_msg_id(id).is_some()
        && let Ok(message) = view_by_offset_id(admin, topic, id).await
    {
        return Ok(message);
    }
    const THREE_DAYS_MS: i64 = 3 * 24 * 60 * 60 * 1000;
    let begin = ferromq_store::store::now_ms() - THREE_DAYS_MS;
    let mut found = query(admin, topic, id, 32, begin, i64::MAX, true).await?;
    Ok(found.swap_remove(0))
}

// ---- the detail layouts ------------------------------------------------------------------------

/// Which of Java's two detail printers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// `QueryMsgByIdSubCommand.printMsg` (queryMsgById, queryMsgByOffset): starts with the
    /// offset id, ends each track line with a newline.
    ById,
    /// `QueryMsgByUniqueKeySubCommand.showMessage`: no offset id line, the `index`-th message's
    /// body file suffixed `_index`, track lines run together.
    ByUniqueKey { index: usize },
}

/// Prints `message` as the Java tool does, writes its body to [`BODY_DIR`], and prints its
/// track (which groups consumed it).
pub async fn print_detail(admin: &Admin, message: &Message, charset: Option<&str>, detail: Detail) -> AdminResult<()> {
    let body_text = charset.map(|c| body_in_charset(&message.body, c)).transpose()?;
    let body_path = write_body_file(message, detail)?;
    let line = |name: &str, value: &dyn std::fmt::Display| println!("{name:<20} {value}");
    if detail == Detail::ById {
        line("OffsetID:", &message.offset_msg_id);
    }
    line("Topic:", &message.topic);
    line("Tags:", &message.tags_text());
    line("Keys:", &message.keys_text());
    line("Queue ID:", &message.queue_id);
    line("Queue Offset:", &message.queue_offset);
    line("CommitLog Offset:", &message.commit_log_offset);
    line("Reconsume Times:", &message.reconsume_times);
    line("Born Timestamp:", &human_time2(message.born_timestamp_ms));
    line("Store Timestamp:", &human_time2(message.store_timestamp_ms));
    line("Born Host:", &message.born_host);
    line("Store Host:", &message.store_host);
    line("System Flag:", &message.sys_flag);
    line("Properties:", &message.properties_text());
    line("Message Body Path:", &body_path);
    if let Some(body) = body_text {
        line("Message Body:", &body);
    }
    match track(admin, message).await {
        Ok(tracks) if tracks.is_empty() => print!("\n\nWARN: No Consumer"),
        Ok(tracks) => {
            print!("\n\n");
            for t in tracks {
                match detail {
                    Detail::ById => println!("{t}"),
                    Detail::ByUniqueKey { .. } => print!("{t}"),
                }
            }
        }
        // Java prints the exception and goes on: the message was found and shown.
        Err(e) => eprintln!("message track: {e}"),
    }
    Ok(())
}

fn write_body_file(message: &Message, detail: Detail) -> AdminResult<String> {
    let mut path = format!("{BODY_DIR}/{}", message.msg_id());
    if let Detail::ByUniqueKey { index } = detail
        && index > 0
    {
        path.push_str(&format!("_{index}"));
    }
    std::fs::create_dir_all(BODY_DIR)
        .and_then(|()| std::fs::write(&path, &message.body))
        .map_err(|e| AdminError::Other(format!("cannot write the body to {path}: {e}")))?;
    Ok(path)
}

/// One line of the message track (`MessageTrack.toString()`).
struct Track {
    group: String,
    kind: &'static str,
    exception: Option<String>,
}

impl std::fmt::Display for Track {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageTrack [consumerGroup={}, trackType={}, exceptionDesc={}]", self.group, self.kind, self.exception.as_deref().unwrap_or("null"))
    }
}

/// Java's `messageTrackDetail`: for each group that consumes the topic
/// (QUERY_TOPIC_CONSUME_BY_WHO), NOT_ONLINE without a connection; a pull consumer is PULL; a
/// push consumer CONSUMED when its committed offset of the message's queue (on the broker that
/// stored it) is past the message — CONSUMED_BUT_FILTERED if its subscription excludes the
/// message's tag — else NOT_CONSUME_YET.
async fn track(admin: &Admin, message: &Message) -> AdminResult<Vec<Track>> {
    let route = admin.route(&message.topic).await?;
    let mut groups = std::collections::BTreeSet::new();
    for broker in &route.brokers {
        let Some(addr) = broker.serving_addr() else { continue };
        let request = RemotingCommand::request(ferromq_net::codes::request_code::QUERY_TOPIC_CONSUME_BY_WHO).with_ext("topic", &message.topic);
        let response = admin.invoke_ok(addr, request).await?;
        let body = crate::common::json_object(&response.body)?;
        for g in body.get("groupList").and_then(serde_json::Value::as_array).into_iter().flatten() {
            if let Some(g) = g.as_str() {
                groups.insert(g.to_owned());
            }
        }
    }
    let mut tracks = Vec::new();
    let mut cluster = None;
    for group in groups {
        let connection = match super::consumers::connection(admin, &group, None).await {
            Ok(c) => c,
            Err(AdminError::Refused { code, remark, .. }) => {
                let kind = if code == response_code::CONSUMER_NOT_ONLINE { "NOT_ONLINE" } else { "UNKNOWN" };
                tracks.push(Track { group, kind, exception: Some(format!("CODE:{code} DESC:{remark}")) });
                continue;
            }
            Err(e) => {
                tracks.push(Track { group, kind: "UNKNOWN", exception: Some(e.to_string()) });
                continue;
            }
        };
        if connection.consume_type == "CONSUME_ACTIVELY" {
            tracks.push(Track { group, kind: "PULL", exception: None });
            continue;
        }
        let stats = match super::consumers::consume_stats(admin, &group, None).await {
            Ok(stats) => stats,
            Err(e) => {
                tracks.push(Track { group, kind: "UNKNOWN", exception: Some(e.to_string()) });
                continue;
            }
        };
        let cluster = match &cluster {
            Some(cluster) => cluster,
            None => cluster.insert(admin.cluster().await?),
        };
        let store_host = message.store_host.to_string();
        let consumed = stats.queues.iter().any(|q| {
            q.topic == message.topic
                && q.queue_id == message.queue_id as i32
                && cluster.brokers.get(&q.broker_name).and_then(BrokerGroup::master) == Some(store_host.as_str())
                && q.consumer_offset > message.queue_offset
        });
        let kind = if !consumed {
            "NOT_CONSUME_YET"
        } else {
            let tag = message.property("TAGS").unwrap_or("");
            let filtered = connection
                .subscriptions
                .iter()
                .any(|(topic, expression)| *topic == message.topic && !tag_matches(expression, tag));
            if filtered { "CONSUMED_BUT_FILTERED" } else { "CONSUMED" }
        };
        tracks.push(Track { group, kind, exception: None });
    }
    Ok(tracks)
}

/// Whether a TAG subscription expression takes `tag` (`*`, empty, or `tag` among `a || b`).
fn tag_matches(expression: &str, tag: &str) -> bool {
    let tags: Vec<&str> = expression.split("||").map(str::trim).filter(|t| !t.is_empty()).collect();
    tags.is_empty() || tags.contains(&"*") || tags.contains(&tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferromq_store::QueueId;
    use ferromq_store::record::{MessageInput, StoreAssigned, encode_record};

    fn record(properties: &Properties, body: &[u8], sys_flag: i32) -> Vec<u8> {
        let mut input = MessageInput::simple("T", QueueId(1), body.to_vec(), properties);
        input.sys_flag = sys_flag;
        let mut out = Vec::new();
        let assigned = StoreAssigned { queue_offset: 7, physical_offset: ferromq_store::ClientPhysicalOffset(4096), store_timestamp_ms: 1_700_000_000_000 };
        encode_record(&input, assigned, &mut out).expect("encode");
        out
    }

    #[test]
    fn decodes_like_the_java_client() {
        let mut props = Properties::new();
        props.insert("KEYS", "k1 k2");
        props.insert("UNIQ_KEY", "AC11000100002A9F0000000000000001");
        let mut bytes = record(&props, b"hello", 0);
        let mut zipped = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut zipped, b"big body").unwrap();
        bytes.extend(record(&Properties::new(), &zipped.finish().unwrap(), sysflag::COMPRESSED | (3 << 8)));
        bytes.extend_from_slice(b"garbage");
        let all = Message::decode_all(&bytes);
        assert_eq!(all.len(), 2, "stops at what does not decode");
        assert_eq!(all[0].body, b"hello");
        assert_eq!(all[0].msg_id(), "AC11000100002A9F0000000000000001");
        assert_eq!(all[0].keys_text(), "[k1 k2]");
        assert_eq!(all[0].tags_text(), "[null]");
        assert_eq!((all[0].queue_id, all[0].queue_offset, all[0].commit_log_offset), (1, 7, 4096));
        assert_eq!(all[1].body, b"big body", "zlib bodies are inflated");
        assert_eq!(all[1].msg_id(), all[1].offset_msg_id, "without UNIQ_KEY the offset id");
        assert!(all[0].java_to_string().contains("body=[104, 101, 108, 108, 111], transactionId='null'}]"), "{}", all[0].java_to_string());
    }

    #[test]
    fn tag_expressions() {
        assert!(tag_matches("*", "a"));
        assert!(tag_matches("", "a"));
        assert!(tag_matches("a || b", "b"));
        assert!(!tag_matches("a || b", "c"));
        assert!(body_in_charset(b"x", "GBK").is_err());
        assert_eq!(body_in_charset(b"\xe9", "ISO-8859-1").unwrap(), "é");
    }
}
