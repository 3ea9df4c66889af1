//! Client bookkeeping: HEART_BEAT (34), UNREGISTER_CLIENT (35), GET_CONSUMER_LIST_BY_GROUP (38)
//! (PROTOCOL.md §2.1, §2.2). Membership changes make the control plane send
//! NOTIFY_CONSUMER_IDS_CHANGED to every consumer of the group, on its connection's shard.

use std::rc::Rc;

use ferromq_net::RemotingCommand;
use ferromq_net::codes::response_code as code;
use ferromq_net::conn::Connection;

use crate::clients::heartbeat::HeartbeatData;
use crate::shard::ShardCtx;

/// 34 HEART_BEAT. The response carries the broker's version ordinal (clients remember it);
/// `IS_SUPPORT_HEART_BEAT_V2` is not sent, so clients keep sending full heartbeats.
pub fn heartbeat(ctx: &Rc<ShardCtx>, conn: &Connection, request: RemotingCommand) -> RemotingCommand {
    let data = match HeartbeatData::parse(&request.body) {
        Ok(data) => data,
        Err(e) => return request.error_response(code::SYSTEM_ERROR, format!("bad heartbeat body: {e}")),
    };
    ctx.control.heartbeat(ctx.id, conn, &request, data);
    request.success_response()
}

/// 35 UNREGISTER_CLIENT.
pub fn unregister_client(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    let Some(client_id) = request.ext("clientID").filter(|c| !c.is_empty()) else {
        return request.error_response(code::SYSTEM_ERROR, "the request needs clientID");
    };
    ctx.control.unregister_client(client_id, request.ext("producerGroup"), request.ext("consumerGroup"));
    request.success_response()
}

/// 38 GET_CONSUMER_LIST_BY_GROUP: the live consumers' client ids, de-duplicated (a client may
/// hold several connections).
pub fn consumer_list_by_group(ctx: &Rc<ShardCtx>, request: RemotingCommand) -> RemotingCommand {
    let Some(group) = request.ext("consumerGroup").filter(|g| !g.is_empty()) else {
        return request.error_response(code::SYSTEM_ERROR, "the request needs consumerGroup");
    };
    let ids = ctx.control.consumer_ids(group);
    if ids.is_empty() {
        return request.error_response(code::SYSTEM_ERROR, format!("no consumer for this group, {group}"));
    }
    let body = serde_json::json!({ "consumerIdList": ids });
    request.success_response().with_body(serde_json::to_vec(&body).unwrap_or_default())
}
