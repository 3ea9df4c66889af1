//! Orderly-consumer queue locks: LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42)
//! (PROTOCOL.md §2.2, §4.4). The lock table itself is the control plane's
//! (`clients/locks.rs`); these handlers parse the body and ask the control thread.

use std::rc::Rc;

use ferromq_net::RemotingCommand;
use serde::Deserialize;

use crate::clients::locks::MessageQueue;
use crate::control::Command;
use crate::error::{BrokerError, BrokerResult};
use crate::shard::ShardCtx;

/// LockBatchRequestBody / UnlockBatchRequestBody (§4.4). `onlyThisBroker` is accepted and
/// ignored: there are no other brokers of this broker group to forward to.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockBatchBody {
    #[serde(default)]
    consumer_group: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    mq_set: Vec<MessageQueue>,
}

fn parse_body(request: &RemotingCommand) -> BrokerResult<LockBatchBody> {
    let body: LockBatchBody = serde_json::from_slice(&request.body).map_err(|e| BrokerError::system(format!("bad lock batch body: {e}")))?;
    if body.consumer_group.is_empty() || body.client_id.is_empty() {
        return Err(BrokerError::system("the lock batch body needs consumerGroup and clientId"));
    }
    Ok(body)
}

/// 41 LOCK_BATCH_MQ: answers `{"lockOKMQSet":[MessageQueue..]}`, the queues now held by the
/// client.
pub async fn lock_batch_mq(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let body = parse_body(request)?;
    let locked = ctx
        .control
        .call(|reply| Command::LockBatch { group: body.consumer_group, client_id: body.client_id, queues: body.mq_set, reply })
        .await?;
    let queues: Vec<serde_json::Value> = locked
        .iter()
        .map(|mq| serde_json::json!({ "brokerName": mq.broker_name, "queueId": mq.queue_id, "topic": mq.topic }))
        .collect();
    let reply = serde_json::json!({ "lockOKMQSet": queues });
    Ok(request.success_response().with_body(serde_json::to_vec(&reply).unwrap_or_default()))
}

/// 42 UNLOCK_BATCH_MQ (usually one-way): success with no body.
pub async fn unlock_batch_mq(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let body = parse_body(request)?;
    ctx.control
        .call(|reply| Command::UnlockBatch { group: body.consumer_group, client_id: body.client_id, queues: body.mq_set, reply })
        .await?;
    Ok(request.success_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_client_body() {
        let json = br#"{"consumerGroup":"g","clientId":"c","onlyThisBroker":false,"mqSet":[{"topic":"t","brokerName":"b","queueId":3}]}"#;
        let body: LockBatchBody = serde_json::from_slice(json).unwrap();
        assert_eq!(body.mq_set, vec![MessageQueue { topic: "t".into(), broker_name: "b".into(), queue_id: 3 }]);
    }
}
