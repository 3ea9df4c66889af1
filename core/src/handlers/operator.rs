//! What operators do to consumer groups (mqadmin, the dashboard; PROTOCOL.md §2.5, §2.7):
//! INVOKE_BROKER_TO_RESET_OFFSET (222), CLONE_GROUP_OFFSET (314), DELETE_SUBSCRIPTIONGROUP
//! (207) and GET_CONSUMER_RUNNING_INFO (307, forwarded to the client).
//!
//! A reset by time moves each queue's committed offset to the first message stored at or
//! after the time (`-1`: the end), unless the group is already behind that and `isForce` is
//! false (as Java). The new offsets are committed here — so a group that is offline resumes
//! from them — and sent to every online consumer of the group in RESET_CONSUMER_CLIENT_OFFSET
//! (220), which replaces the offsets the client holds in memory.

use std::rc::Rc;
use std::time::Duration;

use ferromq_net::RemotingCommand;
use ferromq_net::codes::request_code;

use crate::control::{Command, OffsetKey};
use crate::error::{BrokerError, BrokerResult};
use crate::header::Header;
use crate::shard::ShardCtx;

/// How long a forwarded request waits for the client (Java: 10 s for running info).
const CLIENT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// 222 INVOKE_BROKER_TO_RESET_OFFSET.
pub async fn reset_offset(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let h = Header::of(request);
    let topic = h.str("topic")?;
    let group = h.str("group")?;
    let timestamp_ms = h.i64("timestamp")?;
    let force = h.opt_bool("isForce")?.unwrap_or(true);
    let config = ctx.control.topic(topic).ok_or_else(|| BrokerError::topic_not_exist(topic))?;
    let queues = config.read_queue_nums.max(0) as u32;
    let broker_name = ctx.control.identity().broker_name.clone();
    let mut table = Vec::with_capacity(queues as usize);
    for queue_id in 0..queues {
        let owner = ctx.owner(topic, queue_id);
        let name = topic.to_owned();
        let by_time = ctx
            .on(owner, move |owner_ctx, _| async move {
                if timestamp_ms < 0 {
                    return Ok(owner_ctx.store.queue_offsets(&name, queue_id).1);
                }
                owner_ctx.store.search_offset_by_timestamp(&name, queue_id, timestamp_ms, false).await
            })
            .await??
            .0 as i64;
        let key = OffsetKey { group: group.to_owned(), topic: topic.to_owned(), queue_id };
        let committed = ctx.control.call(|reply| Command::QueryOffset { key, reply }).await?;
        let offset = match committed {
            Some(committed) if !force && committed <= by_time => committed,
            _ => by_time,
        };
        table.push((queue_id, offset));
    }
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
fn reset_offset_body(broker_name: &str, topic: &str, table: &[(u32, i64)]) -> String {
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
