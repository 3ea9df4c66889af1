//! CONSUMER_SEND_MSG_BACK (36): a consumer's "consume this again later" (PROTOCOL.md §9.2).
//!
//! The original record is read back from the log by its physical offset and stored again for
//! the group: in `%RETRY%<group>` with delay level `3 + reconsumeTimes` (or the level the
//! client asked for), so it comes back after that level's delay with `reconsumeTimes + 1`; or,
//! once `reconsumeTimes ≥ maxReconsumeTimes` (or for a negative level), in `%DLQ%<group>`,
//! where it stays for an operator. Body, flag, sysflag, born time and host are the original's;
//! `RETRY_TOPIC` keeps the topic it was first sent to and `ORIGIN_MESSAGE_ID` its first id.

use std::rc::Rc;

use ferromq_net::RemotingCommand;
use ferromq_store::QueueId;
use ferromq_store::record::{MessageInput, decode_record, property_pairs};

use crate::control::Command;
use crate::delay::{PROPERTY_DELAY, PROPERTY_WAIT, to_scheduled};
use crate::message::{copy_of, rebuild_properties};
use crate::error::{BrokerError, BrokerResult};
use crate::header::Header;
use crate::meta::topics::{self, PERM_WRITE, TopicConfig};
use crate::shard::ShardCtx;

/// The topic a retried message was first sent to.
pub const PROPERTY_RETRY_TOPIC: &str = "RETRY_TOPIC";
/// The message id of the first delivery of a retried message.
pub const PROPERTY_ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";

/// 36 CONSUMER_SEND_MSG_BACK.
pub async fn consumer_send_msg_back(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let h = Header::of(request);
    let offset = h.i64("offset")?;
    let group = h.str("group")?;
    let delay_level = h.i32("delayLevel")?;
    let max_from_client = h.opt_i32("maxReconsumeTimes")?;
    crate::meta::validate_name(group, topics::MAX_TOPIC_NAME_LEN).map_err(|reason| BrokerError::system(format!("group {group:?}: {reason}")))?;
    let control = &ctx.control;
    if control.view().broker_permission & PERM_WRITE == 0 {
        return Err(BrokerError::no_permission(format!("the broker[{}] sending message is forbidden", control.identity().broker_name)));
    }
    let account = crate::acl::account_of(control.acl(), request);
    let retry = control.call(|reply| Command::RetryGroup { group: group.to_owned(), account, reply }).await??;
    let Some(retry_topic) = retry.retry_topic else {
        // retryQueueNums ≤ 0: the group asked for no retries; Java drops the message.
        return Ok(request.success_response());
    };
    writable(&retry_topic)?;

    let record = ctx.record_at(offset).await?.map_err(|e| BrokerError::system(format!("look message by offset failed, {offset}: {e}")))?;
    let original = decode_record(&record, true).map_err(|e| BrokerError::system(format!("the message at offset {offset} is damaged: {e}")))?;

    let max = max_from_client.unwrap_or(retry.retry_max_times);
    let dead_letter = original.reconsume_times >= max || delay_level < 0;
    let (topic, queue_id, level) = if dead_letter {
        let dlq = control.call(|reply| Command::InternalTopic { topic: topics::dlq_topic(group), queue_nums: topics::DLQ_QUEUE_NUMS, reply }).await??;
        writable(&dlq)?;
        (dlq, topics::DLQ_QUEUE, None)
    } else {
        let level = if delay_level == 0 { original.reconsume_times.saturating_add(3) } else { delay_level };
        let queues = retry_topic.write_queue_nums.max(1) as u32;
        let queue_id = random_below(queues);
        (retry_topic, queue_id, Some(level))
    };

    let mut retry_topic_prop = None;
    let mut origin_id = None;
    for (name, value) in property_pairs(original.properties) {
        match name {
            PROPERTY_RETRY_TOPIC => retry_topic_prop = Some(value),
            PROPERTY_ORIGIN_MESSAGE_ID => origin_id = Some(value),
            _ => {}
        }
    }
    let first_topic = retry_topic_prop.unwrap_or(original.topic).to_owned();
    if dead_letter {
        // Java labels it with the request's originTopic (the topic the consumer read it from).
        let origin_topic = h.opt_str("originTopic").filter(|t| !t.is_empty()).unwrap_or(&first_topic);
        ctx.metrics.count_dlq(group, origin_topic);
    }
    let first_id = match origin_id.filter(|id| !id.is_empty()) {
        Some(id) => id.to_owned(),
        None => original.offset_msg_id(),
    };
    let level_text = level.map(|l| l.to_string());
    let mut add = vec![(PROPERTY_RETRY_TOPIC, first_topic.as_str()), (PROPERTY_ORIGIN_MESSAGE_ID, first_id.as_str()), (PROPERTY_WAIT, "false")];
    if let Some(level) = &level_text {
        add.push((PROPERTY_DELAY, level.as_str()));
    }
    let properties = rebuild_properties(
        original.properties,
        &[PROPERTY_RETRY_TOPIC, PROPERTY_ORIGIN_MESSAGE_ID, PROPERTY_WAIT, PROPERTY_DELAY],
        &add,
    );
    let mut message = MessageInput {
        store_host: control.identity().store_host,
        reconsume_times: original.reconsume_times.saturating_add(1),
        ..copy_of(&original, &topic.topic_name, queue_id, properties)
    };
    if let Some(level) = level {
        let max_level = ctx.delay_levels_ms.len() as u32;
        let level = u32::try_from(level).unwrap_or(1).clamp(1, max_level.max(1));
        to_scheduled(&mut message, level);
    }
    let owner = ctx.owner(&message.topic, message.queue_id);
    ctx.on(owner, move |owner_ctx, _| async move { owner_ctx.store.append(vec![message]).await })
        .await?
        .map_err(|e| BrokerError::system(format!("send message back failed: {e}")))?;
    Ok(request.success_response())
}

fn writable(topic: &TopicConfig) -> BrokerResult<()> {
    if topic.perm & PERM_WRITE == 0 {
        return Err(BrokerError::no_permission(format!("the topic[{}] sending message is forbidden", topic.topic_name)));
    }
    Ok(())
}

/// A queue id in `0..queues`, spread by the clock (as the send path picks a random queue).
fn random_below(queues: u32) -> QueueId {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    QueueId(nanos % queues.max(1))
}
