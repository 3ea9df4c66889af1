//! Client bookkeeping: HEART_BEAT (34), UNREGISTER_CLIENT (35), GET_CONSUMER_LIST_BY_GROUP (38),
//! CHECK_CLIENT_CONFIG (46) (PROTOCOL.md §2.1, §2.2). The tables are the control plane's; membership changes make it send
//! NOTIFY_CONSUMER_IDS_CHANGED to every consumer of the group, on its connection's shard.

use std::rc::Rc;

use ferromq_net::RemotingCommand;

use super::reply::Origin;
use crate::clients::heartbeat::{HeartbeatData, SubscriptionData};
use crate::clients::{ChannelId, ClientInfo};
use crate::control::Command;
use crate::error::{BrokerError, BrokerResult};
use crate::header::Header;
use crate::shard::ShardCtx;

/// 34 HEART_BEAT. Answered once the control plane has registered the client and created its
/// groups and retry topics, so a pull right after it finds them. `IS_SUPPORT_HEART_BEAT_V2`
/// is not sent, so clients keep sending full heartbeats.
pub async fn heartbeat(ctx: &Rc<ShardCtx>, origin: Origin, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let data = HeartbeatData::parse(&request.body).map_err(|e| BrokerError::system(format!("bad heartbeat body: {e}")))?;
    let client = ClientInfo {
        channel: ChannelId::new(u16::from(ctx.id.0), origin.connection),
        client_id: data.client_id.clone(),
        client_addr: origin.peer.to_string(),
        language: request.language.name().to_owned(),
        version: request.version,
        last_update_ms: ferromq_store::store::now_ms(),
    };
    let account = crate::acl::account_of(ctx.control.acl(), request);
    ctx.control.call(|reply| Command::Heartbeat { client: Box::new(client), data: Box::new(data), account, reply }).await?;
    Ok(request.success_response())
}

/// 35 UNREGISTER_CLIENT.
pub async fn unregister_client(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let header = Header::of(request);
    let client_id = header.str("clientID")?.to_owned();
    let producer_group = header.opt_str("producerGroup").map(str::to_owned);
    let consumer_group = header.opt_str("consumerGroup").map(str::to_owned);
    ctx.control.call(|reply| Command::UnregisterClient { client_id, producer_group, consumer_group, reply }).await?;
    Ok(request.success_response())
}

/// 38 GET_CONSUMER_LIST_BY_GROUP: the live consumers' client ids, de-duplicated (a client may
/// hold several connections).
pub async fn consumer_list_by_group(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let group = Header::of(request).str("consumerGroup")?.to_owned();
    let ids = ctx.control.call(|reply| Command::ConsumerIds { group: group.clone(), reply }).await?;
    if ids.is_empty() {
        return Err(BrokerError::system(format!("no consumer for this group, {group}")));
    }
    let body = serde_json::json!({ "consumerIdList": ids });
    Ok(request.success_response().with_body(serde_json::to_vec(&body).unwrap_or_default()))
}

/// 46 CHECK_CLIENT_CONFIG: whether the broker serves a consumer's subscription — any TAG one;
/// an SQL92 one only with `enablePropertyFilter` (else SYSTEM_ERROR) and only if it compiles
/// (else SUBSCRIPTION_PARSE_FAILED), so a bad selector fails when it is subscribed, not on
/// every pull.
pub async fn check_client_config(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let body = crate::meta::json::parse_object_tolerant(&request.body).map_err(|e| BrokerError::system(format!("bad CHECK_CLIENT_CONFIG body: {e}")))?;
    let subscription = body.get("subscriptionData").ok_or_else(|| BrokerError::system("CHECK_CLIENT_CONFIG body has no subscriptionData"))?;
    let subscription = SubscriptionData::from_value(subscription).map_err(|e| BrokerError::system(format!("bad subscriptionData: {e}")))?;
    if !subscription.is_tag_type() {
        let enabled = ctx.control.config().consumer.enable_property_filter;
        crate::selector::expression_filter(&subscription.expression_type, &subscription.sub_string, enabled)?;
    }
    Ok(request.success_response())
}
