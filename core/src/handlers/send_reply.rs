//! Request-reply (RocketMQ 4.6+, PROTOCOL.md §2.1): SEND_REPLY_MESSAGE (324) and
//! SEND_REPLY_MESSAGE_V2 (325), the replier's send of a reply (property `MSG_TYPE=reply`) to
//! `<cluster>_REPLY_TOPIC`.
//!
//! The reply is pushed at once to the requesting client's connection (the producer whose
//! client id is the reply's `REPLY_TO_CLIENT`) as PUSH_REPLY_MESSAGE_TO_CLIENT (326), then
//! stored in the reply topic like any send, which is what the replier's answer reports — as in
//! Java with `storeReplyMessageEnable` (its default). A requester that is not connected here,
//! or does not answer the push, is logged at WARN; it then gets the reply nowhere and its
//! `request()` times out, as with a Java broker.

use std::rc::Rc;
use std::time::Duration;

use ferromq_net::RemotingCommand;
use ferromq_net::codes::request_code;
use ferromq_store::record::property_pairs;
use tracing::warn;

use super::reply::{Origin, Reply};
use crate::control::Command;
use crate::error::{BrokerError, BrokerResult};
use crate::header::Header;
use crate::shard::ShardCtx;

/// The property naming the requesting client.
pub const PROPERTY_REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
/// How long the push to the requester may take (Java: 3 s).
const PUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// The header fields of a send, long names first then the V2 letters.
const FIELDS: [(&str, &str); 11] = [
    ("producerGroup", "a"),
    ("topic", "b"),
    ("defaultTopic", "c"),
    ("defaultTopicQueueNums", "d"),
    ("queueId", "e"),
    ("sysFlag", "f"),
    ("bornTimestamp", "g"),
    ("flag", "h"),
    ("properties", "i"),
    ("reconsumeTimes", "j"),
    ("unitMode", "k"),
];

/// 324 / 325.
pub async fn send_reply(ctx: &Rc<ShardCtx>, origin: Origin, request: &RemotingCommand) -> BrokerResult<Reply> {
    let h = Header::of(request);
    let field = |long: &'static str, short: &'static str| h.opt_str(long).or_else(|| h.opt_str(short));
    // Refused before the push, as Java's msgCheck does: the requester never sees a reply that
    // is not stored.
    if let Some(topic) = field("topic", "b").filter(|t| crate::meta::topics::is_not_allowed_send_topic(t)) {
        return Err(BrokerError::no_permission(format!("Sending message to topic[{topic}] is forbidden.")));
    }
    let properties = field("properties", "i").unwrap_or("");
    let requester = property_pairs(properties.as_bytes())
        .filter(|(name, _)| *name == PROPERTY_REPLY_TO_CLIENT)
        .map(|(_, value)| value.to_owned())
        .last()
        .ok_or_else(|| BrokerError::system(format!("the reply message has no {PROPERTY_REPLY_TO_CLIENT} property")))?;
    // The push carries the send's header in long names, plus where and when it was sent.
    let mut push = RemotingCommand::request(request_code::PUSH_REPLY_MESSAGE_TO_CLIENT);
    for (long, short) in FIELDS {
        if let Some(value) = field(long, short) {
            push = push.with_ext(long, value);
        }
    }
    let push = push
        .with_ext("bornHost", origin.peer)
        .with_ext("storeHost", &ctx.control.identity().broker_addr)
        .with_ext("storeTimestamp", ferromq_store::store::now_ms())
        .with_body(request.body.to_vec());
    let pushed = push_to_requester(ctx, &requester, push).await;
    if let Err(why) = &pushed {
        warn!(requester, "reply message not pushed to its requester: {why}");
    }
    super::send::send(ctx, origin, request).await
}

/// Pushes the reply on the requester's connection (on that connection's shard).
async fn push_to_requester(ctx: &Rc<ShardCtx>, client_id: &str, push: RemotingCommand) -> Result<(), String> {
    let channel = ctx
        .control
        .call(|reply| Command::ProducerChannel { client_id: client_id.to_owned(), reply })
        .await
        .map_err(|e| e.remark)?
        .ok_or("the requester is not connected to this broker")?;
    let answer = ctx.invoke_client(channel, push, PUSH_TIMEOUT).await.map_err(|e| e.remark)??;
    if answer.code != ferromq_net::codes::response_code::SUCCESS {
        return Err(format!("the requester answered {}: {}", answer.code, answer.remark.unwrap_or_default()));
    }
    Ok(())
}
