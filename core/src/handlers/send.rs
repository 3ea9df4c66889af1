//! Producer path: SEND_MESSAGE (10), SEND_MESSAGE_V2 (310), SEND_BATCH_MESSAGE (320)
//! (PROTOCOL.md §2.1).
//!
//! Runs on the connection's shard until the store append, which runs on the queue's owner
//! shard; the reply carries every field clients read (msgId, queueId, queueOffset,
//! transactionId, MSG_REGION, TRACE_ON).

use std::net::SocketAddr;
use std::ops::Range;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use ferromq_net::RemotingCommand;
use ferromq_net::codec::ResponseFrame;
use ferromq_net::codes::{request_code, response_code as code};
use ferromq_store::QueueId;
use ferromq_store::record::{MessageInput, PropertySummary, property_pairs, sysflag};

use super::reply::{Origin, Reply};
use crate::config::BrokerRole;
use ferromq_repl::acks::SlaveAck;
use crate::control::Command;
use crate::message::push_property;
use crate::error::{BrokerError, BrokerResult};
use crate::header::{Header, HeaderError};
use crate::meta::topics::{self, PERM_WRITE, TopicConfig};
use crate::shard::ShardCtx;
use crate::shard::metrics::MessageType;

/// Largest encoded properties string a record can hold (int16 length, §5.1).
pub const MAX_PROPERTIES_BYTES: usize = 32_767;

/// The send header in long names, whichever form (10's long keys or 310/320's `a`..`n`) it
/// arrived in.
#[derive(Debug)]
struct SendHeader<'a> {
    topic: &'a str,
    default_topic: &'a str,
    default_topic_queue_nums: u32,
    /// Negative: the broker picks a queue.
    queue_id: i32,
    sys_flag: i32,
    born_timestamp_ms: i64,
    flag: i32,
    properties: &'a str,
    reconsume_times: i32,
    /// The client's retry limit for sends to `%RETRY%` topics (`l`); the group's
    /// `retryMaxTimes` when absent.
    max_reconsume_times: Option<i32>,
}

/// The queue count a client asks for an auto-created topic when it names none (Java client
/// default `defaultTopicQueueNums`).
const DEFAULT_TOPIC_QUEUE_NUMS: u32 = 4;

impl<'a> SendHeader<'a> {
    fn parse(request: &'a RemotingCommand) -> BrokerResult<SendHeader<'a>> {
        let header = Header::of(request);
        // 310 and 320 use the short keys; be liberal and take long names when `b` is absent
        // (§2.1). Errors name the long field either way.
        let short = request.code != request_code::SEND_MESSAGE && request.ext("b").is_some();
        let key = |short_key: &'static str, long_key: &'static str| if short { short_key } else { long_key };
        let named = |long: &'static str| {
            move |e: HeaderError| match e {
                HeaderError::Missing { .. } => HeaderError::Missing { field: long },
                HeaderError::Invalid { expected, value, .. } => HeaderError::Invalid { field: long, expected, value },
            }
        };
        Ok(SendHeader {
            topic: header.str(key("b", "topic")).map_err(named("topic"))?,
            default_topic: header.opt_str(key("c", "defaultTopic")).unwrap_or(""),
            default_topic_queue_nums: header
                .opt_u31(key("d", "defaultTopicQueueNums"))
                .map_err(named("defaultTopicQueueNums"))?
                .unwrap_or(DEFAULT_TOPIC_QUEUE_NUMS),
            queue_id: header.i32(key("e", "queueId")).map_err(named("queueId"))?,
            sys_flag: header.i32(key("f", "sysFlag")).map_err(named("sysFlag"))?,
            born_timestamp_ms: header.i64(key("g", "bornTimestamp")).map_err(named("bornTimestamp"))?,
            flag: header.i32(key("h", "flag")).map_err(named("flag"))?,
            properties: header.opt_str(key("i", "properties")).unwrap_or(""),
            reconsume_times: header.opt_i32(key("j", "reconsumeTimes")).map_err(named("reconsumeTimes"))?.unwrap_or(0),
            max_reconsume_times: header.opt_i32(key("l", "maxReconsumeTimes")).map_err(named("maxReconsumeTimes"))?,
        })
    }
}

/// 10 / 310 / 320.
pub async fn send(ctx: &Rc<ShardCtx>, origin: Origin, request: &RemotingCommand) -> BrokerResult<Reply> {
    let header = SendHeader::parse(request)?;
    let control = &ctx.control;
    let config = control.config();
    let max_name_len = if header.topic.starts_with(topics::RETRY_GROUP_TOPIC_PREFIX) || header.topic.starts_with(topics::DLQ_GROUP_TOPIC_PREFIX) {
        topics::MAX_GROUP_TOPIC_NAME_LEN
    } else {
        topics::MAX_TOPIC_NAME_LEN
    };
    crate::meta::validate_name(header.topic, max_name_len).map_err(|reason| BrokerError::system(format!("topic {:?}: {reason}", header.topic)))?;
    if topics::is_not_allowed_send_topic(header.topic) {
        return Err(BrokerError::no_permission(format!("Sending message to topic[{}] is forbidden.", header.topic)));
    }
    let view = control.view();
    if view.broker_permission & PERM_WRITE == 0 {
        return Err(BrokerError::no_permission(format!("the broker[{}] sending message is forbidden", control.identity().broker_name)));
    }
    let known = view.topic(header.topic).cloned();
    drop(view);
    let topic = match known {
        Some(topic) => topic,
        None => {
            let (name, default_topic, queue_nums) = (header.topic.to_owned(), header.default_topic.to_owned(), header.default_topic_queue_nums);
            let account = crate::acl::account_of(control.acl(), request);
            control.call(|reply| Command::TopicForSend { topic: name, default_topic, queue_nums, account, reply }).await??
        }
    };
    if topic.perm & PERM_WRITE == 0 {
        return Err(BrokerError::no_permission(format!("the topic[{}] sending message is forbidden", topic.topic_name)));
    }
    let mut queue_id = pick_queue(&topic, header.queue_id)?;
    let batch = request.code == request_code::SEND_BATCH_MESSAGE;
    if batch && topic.topic_name.starts_with(topics::RETRY_GROUP_TOPIC_PREFIX) {
        return Err(BrokerError::illegal("batch request does not support retry group"));
    }
    // §2.1 step 4: a client's resend to `%RETRY%<group>` past the group's retry limit goes to
    // the group's dead-letter queue instead (5.x: `reconsumeTimes > max`), and so does every
    // such send while the group holds orderly queue locks: an orderly consumer resends a
    // message only once it has exhausted its retries locally (Java's client with reconsumeTimes
    // = max, not above it), and redelivering it through `%RETRY%` would start them over.
    let mut dead_lettered = false;
    let topic = match topic.topic_name.strip_prefix(topics::RETRY_GROUP_TOPIC_PREFIX) {
        Some(group) => {
            let group = group.to_owned();
            let account = crate::acl::account_of(control.acl(), request);
            let retry = control.call(|reply| Command::RetryGroup { group: group.clone(), account, reply }).await??;
            let max = header.max_reconsume_times.unwrap_or(retry.retry_max_times);
            if header.reconsume_times > max || retry.orderly_locked {
                let dlq = control.call(|reply| Command::InternalTopic { topic: topics::dlq_topic(&group), queue_nums: topics::DLQ_QUEUE_NUMS, reply }).await??;
                if dlq.perm & PERM_WRITE == 0 {
                    return Err(BrokerError::no_permission(format!("the topic[{}] sending message is forbidden", dlq.topic_name)));
                }
                queue_id = topics::DLQ_QUEUE;
                dead_lettered = true;
                ctx.metrics.count_dlq(&group, header.topic);
                dlq
            } else {
                topic
            }
        }
        None => topic,
    };

    let max_body = config.store.max_message_size_bytes;
    if request.body.len() > max_body {
        return Err(BrokerError::illegal(format!("the message body size over max value, MAX: {max_body}")));
    }
    let store_host = control.identity().store_host;
    let template = MessageInput {
        topic: topic.topic_name.as_str().into(),
        queue_id,
        flag: header.flag,
        body: Bytes::new(),
        properties: Vec::new(),
        summary: None,
        sys_flag: header.sys_flag,
        born_timestamp_ms: header.born_timestamp_ms,
        born_host: origin.peer,
        store_host,
        reconsume_times: header.reconsume_times,
        prepared_transaction_offset: 0,
    };
    let cluster = control.identity().cluster_name.as_str();
    // The response's transactionId: the request's UNIQ_KEY (borrowed from it), or one made here.
    let generated;
    let mut uniq_key = None;
    // `rocketmq_messages_in_total`'s message_type: read from the request header's properties,
    // as Java does (a batch's too); only with metrics on.
    let mut message_type = MessageType::Normal;
    let messages = if batch {
        if ctx.metrics.enabled() {
            message_type = MessageType::of(property_pairs(header.properties.as_bytes()));
        }
        let items = decode_batch(&request.body).map_err(BrokerError::illegal)?;
        if items.is_empty() {
            return Err(BrokerError::illegal("the batch is empty"));
        }
        let mut messages = Vec::with_capacity(items.len());
        for item in items {
            let original = request.body.get(item.properties.clone()).unwrap_or_default();
            let mut seen = SendProperties::default();
            for (name, value) in property_pairs(original) {
                seen.note(name, value);
            }
            if crate::delay::requested_level(seen.delay, u32::MAX).is_some() {
                return Err(BrokerError::illegal("TimeDelayLevel is not supported for batching"));
            }
            seen.timer_due_ms(TimerLimits::of(config), true, false, 0)?;
            if seen.is_half(header.sys_flag, header.reconsume_times) {
                return Err(BrokerError::illegal("transactional messages cannot be sent in a batch"));
            }
            let mut properties = Vec::with_capacity(original.len() + cluster.len() + 10);
            append_properties(&mut properties, original);
            push_property(&mut properties, "CLUSTER", cluster);
            // The scan above read what the store needs (the appended CLUSTER is not part of it).
            let summary = PropertySummary::of(seen.tags, seen.wait, seen.keys, seen.uniq_key);
            messages.push(MessageInput { flag: item.flag, body: request.body.slice(item.body), properties, summary: Some(summary), ..template.clone() });
        }
        messages
    } else {
        // The properties are read once, here: what this handler checks, and what the store
        // needs (tags code, index keys, WAIT). The broker's own properties are appended; a
        // later duplicate wins for every reader (Java's decoder included), so nothing needs
        // re-encoding.
        let original = header.properties.as_bytes();
        let mut seen = SendProperties::default();
        for (name, value) in property_pairs(original) {
            seen.note(name, value);
        }
        if config.transaction.reject_transaction_message && seen.is_transaction_message(header.reconsume_times) {
            return Err(BrokerError::no_permission(format!(
                "the broker[{}] sending transaction message is forbidden",
                control.identity().store_host.ip()
            )));
        }
        let half = seen.is_half(header.sys_flag, header.reconsume_times);
        if ctx.metrics.enabled() {
            message_type = seen.message_type();
        }
        let timer_due = seen.timer_due_ms(TimerLimits::of(config), false, half, ferromq_store::store::now_ms())?.filter(|_| !dead_lettered);
        if half && seen.producer_group.is_none_or(str::is_empty) {
            return Err(BrokerError::illegal("a transactional message needs its producer group in the PGROUP property (for check-backs)"));
        }
        let uniq = match seen.uniq_key {
            Some(uniq) => uniq,
            None => {
                generated = generate_uniq_key(store_host);
                &generated
            }
        };
        let mut properties = Vec::with_capacity(original.len() + 128);
        append_properties(&mut properties, original);
        if seen.uniq_key.is_none() {
            push_property(&mut properties, "UNIQ_KEY", uniq);
        }
        // Java's buildMsgContext stamps the region and trace switch on every single message.
        push_property(&mut properties, "MSG_REGION", &config.broker.region_id);
        push_property(&mut properties, "TRACE_ON", if config.broker.trace_on { "true" } else { "false" });
        push_property(&mut properties, "CLUSTER", cluster);
        if properties.len() > MAX_PROPERTIES_BYTES {
            return Err(BrokerError::illegal(format!("message properties length too long {}", properties.len())));
        }
        if dead_lettered {
            // 5.x marks a dead letter as never scheduled, whatever DELAY the resend carried.
            push_property(&mut properties, crate::delay::PROPERTY_DELAY, "-1");
        }
        let summary = PropertySummary::of(seen.tags, seen.wait, seen.keys, Some(uniq));
        uniq_key = Some(uniq);
        let mut message = MessageInput { body: request.body.clone(), properties, summary: Some(summary), ..template };
        // §2.1 step 6: a half message waits in RMQ_SYS_TRANS_HALF_TOPIC for its commit (§10);
        // a delayed message in SCHEDULE_TOPIC_XXXX for its time, a timer message in
        // rmq_sys_wheel_timer (§9.3).
        let max_level = ctx.delay_levels_ms.len() as u32;
        if half {
            crate::transaction::to_half(&mut message, uniq);
        } else if let Some(level) = crate::delay::requested_level(seen.delay, max_level).filter(|_| !dead_lettered) {
            crate::delay::to_scheduled(&mut message, level);
        } else if let Some(due) = timer_due {
            crate::delay::to_timer(&mut message, due);
        }
        vec![message]
    };
    // Whether the producer waits for durability (WAIT ≠ false): on a SYNC_MASTER that
    // includes a slave's acknowledgement (§7.4).
    let waits = messages.first().and_then(|m| m.summary.as_ref()).is_none_or(|s| !s.no_wait);
    let sync_master = waits && config.broker.role == BrokerRole::SyncMaster;

    // The queue the records go to (a delayed or half message's is the system topic's).
    let owner = messages.first().map_or(ctx.id, |m| ctx.owner(&m.topic, m.queue_id));
    let timeout = Duration::from_millis(config.flush.sync_flush_timeout_ms);
    let slave_timeout = Duration::from_millis(config.ha.slave_timeout_ms);
    let max_gap = config.ha.max_gap_not_in_sync_bytes;
    // The inputs come back with the result, to be freed on this thread, which allocated them
    // (see `Store::append_within`).
    let (result, acked, replicated, _inputs) = ctx
        .on(owner, move |owner_ctx, _slot| async move {
            let mut messages = messages;
            let (result, acked) = owner_ctx.store.append_within(&mut messages, timeout).await?;
            // Only once stored here by the flush policy does a send wait for a slave; the
            // slaves of the shard whose log holds it report offsets of that log.
            let replicated = if sync_master && acked {
                let end = result.offset.0 + u64::from(result.wrote_bytes);
                let log_end = owner_ctx.store.write_offset().0;
                Some(owner_ctx.slave_acks.wait(end, log_end, max_gap, slave_timeout).await)
            } else {
                None
            };
            Ok::<_, ferromq_store::StoreError>((result, acked, replicated, messages))
        })
        .await??;
    // Stored, whatever the flush or the slave answered (as Java counts a put).
    ctx.metrics.count_in(&topic.topic_name, message_type, u64::from(result.message_count), u64::from(result.wrote_bytes));
    let status = match (acked, replicated) {
        (false, _) => code::FLUSH_DISK_TIMEOUT,
        (true, None | Some(SlaveAck::Acked)) => code::SUCCESS,
        (true, Some(SlaveAck::Timeout)) => code::FLUSH_SLAVE_TIMEOUT,
        // No slave in sync: stored on this broker only (§7.4, 4.x).
        (true, Some(SlaveAck::NotAvailable)) => code::SLAVE_NOT_AVAILABLE,
    };
    // The response is written straight into its frame, keys in fastjson's order.
    let trace_on = if config.broker.trace_on { "true" } else { "false" };
    let (one, joined);
    let msg_ids = match result.offset_msg_ids.as_slice() {
        [id] => {
            one = id.hex();
            one.as_str()
        }
        ids => {
            joined = join_msg_ids(ids);
            joined.as_str()
        }
    };
    // A batch's ids (33 bytes each) would grow the default buffer.
    let capacity = ferromq_net::codec::RESPONSE_FRAME_DEFAULT_CAPACITY_BYTES + msg_ids.len();
    let mut frame = ResponseFrame::with_capacity(status, request.opaque, None, capacity)
        .ext_str("MSG_REGION", &config.broker.region_id)
        .ext_str("TRACE_ON", trace_on)
        .ext_str("msgId", msg_ids)
        .ext_int("queueId", queue_id.0)
        .ext_int("queueOffset", result.queue_offset.0);
    if let Some(uniq_key) = uniq_key {
        frame = frame.ext_str("transactionId", uniq_key);
    }
    let frame = frame.finish(b"").map_err(|e| BrokerError::system(format!("cannot encode the send response: {e}")))?;
    Ok(Reply::Frame(frame))
}

/// A batch's offsetMsgIds, comma-joined. Each id went through the formatting machinery
/// before: ~300 instructions of a batched message (callgrind 2026-12-07).
fn join_msg_ids(ids: &[ferromq_store::record::OffsetMsgId]) -> String {
    let mut out = String::with_capacity(ids.len() * 33);
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(id.hex().as_str());
    }
    out
}

/// The properties of a single send that the broker looks at (the last value of each wins, as
/// in Java's decoder).
#[derive(Default)]
struct SendProperties<'a> {
    uniq_key: Option<&'a str>,
    tags: Option<&'a str>,
    keys: Option<&'a str>,
    wait: Option<&'a str>,
    transaction: Option<&'a str>,
    delay: Option<&'a str>,
    /// The 5.x timer properties.
    timer: crate::delay::TimerProperties<'a>,
    /// `PGROUP`: a transactional producer's group.
    producer_group: Option<&'a str>,
    /// `TIMER_DEL_UNIQKEY`: a 5.x request to cancel a pending timer message, which FerroMQ
    /// does not serve.
    timer_delete: bool,
    /// `__SHARDINGKEY` (a 5.x FIFO message), only for the metrics' message type.
    sharding_key: bool,
}

impl<'a> SendProperties<'a> {
    fn note(&mut self, name: &str, value: &'a str) {
        match name {
            "UNIQ_KEY" => self.uniq_key = Some(value),
            "TAGS" => self.tags = Some(value),
            "KEYS" => self.keys = Some(value),
            "WAIT" => self.wait = Some(value),
            "TRAN_MSG" => self.transaction = Some(value),
            "DELAY" => self.delay = Some(value),
            "PGROUP" => self.producer_group = Some(value),
            crate::delay::PROPERTY_TIMER_DEL_UNIQKEY => self.timer_delete = true,
            "__SHARDINGKEY" => self.sharding_key = true,
            _ => {
                self.timer.note(name, value);
            }
        }
    }

    /// The send's type as Java's metrics name it ([`MessageType::of`] over the same properties).
    fn message_type(&self) -> MessageType {
        if self.transaction.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            MessageType::Transaction
        } else if self.sharding_key {
            MessageType::Fifo
        } else if self.delay.is_some() || self.timer.name().is_some() {
            MessageType::Delay
        } else {
            MessageType::Normal
        }
    }

    /// Whether the send is a half message (§10): `TRAN_MSG=true` (the legacy reconsume case
    /// aside) or the prepared transaction type in the sysflag (which Java would store and never
    /// deliver).
    fn is_half(&self, sys_flag: i32, reconsume_times: i32) -> bool {
        self.is_transaction_message(reconsume_times) || sys_flag & sysflag::TRANSACTION_MASK == sysflag::TRANSACTION_PREPARED
    }

    /// The due time of a timer message (§9.3, 5.x), checked as Java checks it: `None` when the
    /// send asks for no timer, carries a delay level (which wins, as in Java), or asks for a
    /// time already past (stored at once, as in Java). Refused (never accepted and ignored):
    /// with the wheel off (SYSTEM_ERROR, as Java's WHEEL_TIMER_NOT_ENABLE), in a batch or on a
    /// half message (FerroMQ would not apply it there), a value that is not an integer or a
    /// delay over `timerMaxDelaySec` (MESSAGE_ILLEGAL, as Java's WHEEL_TIMER_MSG_ILLEGAL), and a
    /// cancellation (`TIMER_DEL_UNIQKEY`, SYSTEM_ERROR: not served).
    fn timer_due_ms(&self, timer: TimerLimits, batch: bool, half: bool, now_ms: i64) -> BrokerResult<Option<i64>> {
        if self.timer_delete {
            // Stored as a message it would be delivered, not cancel anything.
            return Err(BrokerError::system(format!(
                "{} refused: cancelling a timer message is not supported by this broker",
                crate::delay::PROPERTY_TIMER_DEL_UNIQKEY
            )));
        }
        let Some(name) = self.timer.name() else { return Ok(None) };
        if crate::delay::requested_level(self.delay, u32::MAX).is_some() {
            return Ok(None);
        }
        if !timer.wheel_enable {
            return Err(BrokerError::system(format!(
                "timer message ({name}) refused: accurate timer message is not enabled, timerWheelEnable is false; \
                 use a delay level (DELAY) instead"
            )));
        }
        if batch {
            return Err(BrokerError::illegal(format!("timer message ({name}) refused: timer messages cannot be sent in a batch")));
        }
        if half {
            return Err(BrokerError::system(format!("timer message ({name}) refused: a transactional message cannot be a timer message")));
        }
        let due = self.timer.due_ms(now_ms).map_err(|why| BrokerError::illegal(format!("timer message illegal: {why}")))?;
        let Some(due) = due.filter(|due| *due > now_ms) else { return Ok(None) };
        let max_ms = timer.max_delay_ms;
        if (due - now_ms) as u64 > max_ms {
            return Err(BrokerError::illegal(format!(
                "timer message illegal, the delay time should not be bigger than the max delay {max_ms}ms (timerMaxDelaySec)"
            )));
        }
        Ok(Some(due))
    }

    /// Whether the send is a transactional (half) message as `rejectTransactionMessage` means
    /// it: `TRAN_MSG=true`, except an old client's resend of a consumed message with a delay
    /// level (reconsumeTimes > 0 and DELAY > 0), which Java lets through.
    fn is_transaction_message(&self, reconsume_times: i32) -> bool {
        if self.transaction != Some("true") {
            return false;
        }
        let delayed = self.delay.and_then(|d| d.parse::<i32>().ok()).is_some_and(|d| d > 0);
        !(reconsume_times > 0 && delayed)
    }
}

/// What the send path checks a timer message against (`[timer]`).
#[derive(Debug, Clone, Copy)]
struct TimerLimits {
    wheel_enable: bool,
    max_delay_ms: u64,
}

impl TimerLimits {
    fn of(config: &crate::config::BrokerConfig) -> TimerLimits {
        TimerLimits { wheel_enable: config.timer.wheel_enable, max_delay_ms: config.timer.max_delay_secs.saturating_mul(1000) }
    }
}

/// Copies an encoded properties string, ending it with a separator if the client did not, so
/// that more pairs can follow.
fn append_properties(out: &mut Vec<u8>, original: &[u8]) {
    out.extend_from_slice(original);
    crate::message::end_with_separator(out);
}

/// Queue to write: the requested one, or a random writable one for a negative id (§2.1 step 3).
fn pick_queue(topic: &TopicConfig, requested: i32) -> BrokerResult<QueueId> {
    let queues = topic.write_queue_nums.max(0) as u32;
    if queues == 0 {
        return Err(BrokerError::system(format!("topic {} has no writable queue", topic.topic_name)));
    }
    if requested < 0 {
        let random = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        return Ok(QueueId(random % queues));
    }
    let limit = topic.write_queue_nums.max(topic.read_queue_nums).max(0) as u32;
    let requested = requested as u32;
    if requested >= limit {
        return Err(BrokerError::system(format!("request queueId[{requested}] is illegal, topic {} has {limit} queues", topic.topic_name)));
    }
    Ok(QueueId(requested))
}

/// One message of a client-encoded batch: its flag, and where its body and encoded properties
/// lie in the batch body (so the body is shared, not copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    pub flag: i32,
    pub body: Range<usize>,
    pub properties: Range<usize>,
}

/// Decodes a client-encoded batch body (§2.1, 320): entries of
/// `totalSize i32 | magic i32 | bodyCRC i32 | flag i32 | bodyLength i32 | body | propertiesLength i16 | properties`.
pub fn decode_batch(batch: &[u8]) -> Result<Vec<BatchEntry>, String> {
    let mut body = batch;
    // Where a slice taken from `batch` starts in it.
    let at = |slice: &[u8]| slice.as_ptr() as usize - batch.as_ptr() as usize;
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if rest.len() < n {
            return Err(format!("batch entry truncated: need {n} bytes, {} left", rest.len()));
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head)
    }
    fn int(rest: &mut &[u8]) -> Result<i32, String> {
        let bytes = take(rest, 4)?;
        Ok(i32::from_be_bytes(bytes.try_into().map_err(|_| "batch entry truncated")?))
    }
    // Sized by a first pass over the entries' length words: grown a push at a time, the vector
    // was reallocated three times per batch of 16. A length below the smallest entry's counts
    // as that (the decoder refuses it), so no body gets more room than whole entries could use.
    const MIN_ENTRY_BYTES: usize = 4 + 4 + 4 + 4 + 4 + 2;
    let mut count = 0usize;
    let mut rest = batch;
    while let Some(word) = rest.first_chunk::<4>() {
        count += 1;
        let total = usize::try_from(i32::from_be_bytes(*word)).unwrap_or(0).max(MIN_ENTRY_BYTES);
        rest = rest.get(total..).unwrap_or_default();
    }
    let mut messages = Vec::with_capacity(count);
    while !body.is_empty() {
        let total = int(&mut body)?;
        let total = usize::try_from(total).map_err(|_| format!("negative batch entry size {total}"))?;
        let mut entry = take(&mut body, total.checked_sub(4).ok_or("batch entry size below 4")?)?;
        let _magic = int(&mut entry)?;
        let _crc = int(&mut entry)?;
        let flag = int(&mut entry)?;
        let body_len = int(&mut entry)?;
        let body_len = usize::try_from(body_len).map_err(|_| format!("negative body length {body_len}"))?;
        let message_body = take(&mut entry, body_len)?;
        let body_range = at(message_body)..at(message_body) + message_body.len();
        let props_len = take(&mut entry, 2)?;
        let props_len = u16::from_be_bytes(props_len.try_into().map_err(|_| "batch entry truncated")?) as usize;
        let properties = take(&mut entry, props_len)?;
        let properties_range = at(properties)..at(properties) + properties.len();
        if !entry.is_empty() {
            return Err(format!("batch entry has {} unexpected trailing bytes", entry.len()));
        }
        messages.push(BatchEntry { flag, body: body_range, properties: properties_range });
    }
    Ok(messages)
}

/// A message unique id in the Java client's layout (§5.6): 16 bytes = IPv4 (4), pid (2),
/// class-loader hash (4, a process constant here), time since the start of the month (4,
/// ms), counter (2), rendered as 32 upper-case hex digits. Used only when the producer sent none.
fn generate_uniq_key(store_host: SocketAddr) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let ip = match store_host.ip() {
        std::net::IpAddr::V4(v4) => v4.octets(),
        std::net::IpAddr::V6(v6) => {
            let o = v6.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    let pid = std::process::id() as u16;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed) as u16;
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&ip);
    id[4..6].copy_from_slice(&pid.to_be_bytes());
    id[6..10].copy_from_slice(&0x4645_5252u32.to_be_bytes());
    id[10..14].copy_from_slice(&((now_ms & 0xFFFF_FFFF) as u32).to_be_bytes());
    id[14..].copy_from_slice(&counter.to_be_bytes());
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut text = String::with_capacity(32);
    for byte in id {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xF)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(flag: i32, body: &[u8], props: &[u8]) -> Vec<u8> {
        let total = 4 + 4 + 4 + 4 + 4 + body.len() + 2 + props.len();
        let mut out = Vec::new();
        out.extend((total as i32).to_be_bytes());
        out.extend(0i32.to_be_bytes());
        out.extend(0i32.to_be_bytes());
        out.extend(flag.to_be_bytes());
        out.extend((body.len() as i32).to_be_bytes());
        out.extend(body);
        out.extend((props.len() as u16).to_be_bytes());
        out.extend(props);
        out
    }

    #[test]
    fn batch_bodies_decode_and_garbage_is_refused() {
        let body = [entry(1, b"one", b"TAGS\x01a\x02"), entry(2, b"", b"")].concat();
        let messages = decode_batch(&body).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!((messages[0].flag, &body[messages[0].body.clone()], &body[messages[0].properties.clone()]), (1, &b"one"[..], &b"TAGS\x01a\x02"[..]));
        assert_eq!((messages[1].flag, messages[1].body.len(), messages[1].properties.len()), (2, 0, 0));
        for cut in 1..body.len() {
            let _ = decode_batch(&body[..cut]);
        }
        assert!(decode_batch(&body[..body.len() - 1]).is_err());
        assert!(decode_batch(&[0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(decode_batch(&[0, 0, 0, 2]).is_err());
    }

    #[test]
    fn uniq_keys_are_32_hex_digits_and_distinct() {
        let host: SocketAddr = "127.0.0.1:10911".parse().unwrap();
        let a = generate_uniq_key(host);
        let b = generate_uniq_key(host);
        assert_eq!(a.len(), 32);
        assert!(a.starts_with("7F000001"));
        assert_ne!(a, b);
    }
}
