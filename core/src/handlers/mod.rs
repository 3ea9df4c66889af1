//! Request dispatch: one handler per request code, grouped by resource.
//!
//! - [`send`]: SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE
//! - [`send_reply`]: SEND_REPLY_MESSAGE(_V2) — request-reply, pushed to the requester
//! - [`send_back`]: CONSUMER_SEND_MSG_BACK — retry with a delay level, then dead letter
//! - [`end_transaction`]: END_TRANSACTION — commit or roll back a half message
//! - [`pull`]: PULL_MESSAGE, LITE_PULL_MESSAGE (long polling)
//! - [`offsets`]: consumer offsets and queue offset queries
//! - [`clients`]: HEART_BEAT, UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP, CHECK_CLIENT_CONFIG
//! - [`locks`]: LOCK_BATCH_MQ, UNLOCK_BATCH_MQ (orderly consumers)
//! - [`operator`]: offset resets, group offset clones and deletes, consumer status and running
//!   info (forwarded to the clients)
//! - [`admin`]: topics, subscription groups, runtime info, stats, message queries, and the
//!   whole tables a slave copies (topics, groups, consumer and delay offsets)
//! - [`metadata`]: who consumes a topic, what a group consumes, one topic's config, system
//!   topics, runtime configuration changes, orphaned consume queues, per-topic and per-group
//!   statistics
//! - [`acl_admin`]: the ACL admin codes (accounts, global white addresses, versions)
//! - [`slave`]: what a slave refuses (sends, transactions, send-backs, admin changes)
//!
//! With `aclEnable=true`, every request passes [`crate::acl::check`] first.
//!
//! Every handler reads its header through [`crate::header::Header`] and fails with a
//! [`BrokerError`], turned into the response here, at this boundary. Unknown codes get
//! REQUEST_CODE_NOT_SUPPORTED. [`dispatch`] needs no connection, so handlers are tested at the
//! protocol boundary without processes (`tests.rs`).

pub mod acl_admin;
pub mod admin;
pub mod clients;
pub mod end_transaction;
pub mod locks;
pub mod metadata;
pub mod offsets;
pub mod operator;
pub mod pull;
pub mod reply;
pub mod send;
pub mod send_back;
pub mod send_reply;
pub mod slave;
#[cfg(test)]
mod tests;

use std::rc::Rc;

use ferromq_net::RemotingCommand;
use ferromq_net::codes::request_code as rc;
use ferromq_net::conn::{Connection, RequestHandler, Response, not_supported};

pub use reply::{Origin, Reply};
use crate::clients::ChannelId;
use crate::control::Command;
use crate::error::BrokerResult;
use crate::shard::ShardCtx;

/// Serves one request on `ctx`'s shard.
pub async fn dispatch(ctx: &Rc<ShardCtx>, origin: Origin, request: RemotingCommand) -> Reply {
    match route(ctx, origin, &request).await {
        Ok(reply) => reply,
        Err(error) => Reply::Response(error.response_to(&request)),
    }
}

async fn route(ctx: &Rc<ShardCtx>, origin: Origin, request: &RemotingCommand) -> BrokerResult<Reply> {
    crate::acl::check(ctx.control.acl(), origin.peer, request)?;
    if let Some(refused) = slave::refusal(&ctx.control, request.code) {
        return Err(refused);
    }
    match request.code {
        rc::SEND_MESSAGE | rc::SEND_MESSAGE_V2 | rc::SEND_BATCH_MESSAGE => send::send(ctx, origin, request).await,
        rc::PULL_MESSAGE | rc::LITE_PULL_MESSAGE => pull::pull(ctx, request).await,
        // The other codes' futures are boxed. A request's future is as large as the largest
        // state it may reach, and it is copied whole on its way into its task (its copy into
        // the task's box alone was 0.8 % of the broker's samples at 4 × 64, perf 2026-12-08):
        // 2.8 KB with every handler inline (`send_reply` and admin handlers the largest),
        // 1.7 KB so (`size_of_val`, release build). Sends and pulls are nearly every request;
        // the rest can afford an allocation.
        _ => Box::pin(route_rare(ctx, origin, request)).await,
    }
}

/// The request codes other than sends and pulls (see [`route`]).
async fn route_rare(ctx: &Rc<ShardCtx>, origin: Origin, request: &RemotingCommand) -> BrokerResult<Reply> {
    let response = match request.code {
        rc::SEND_REPLY_MESSAGE | rc::SEND_REPLY_MESSAGE_V2 => return send_reply::send_reply(ctx, origin, request).await,
        rc::QUERY_CONSUMER_OFFSET => offsets::query_consumer_offset(ctx, request).await?,
        rc::UPDATE_CONSUMER_OFFSET => offsets::update_consumer_offset(ctx, request).await?,
        rc::GET_MAX_OFFSET => offsets::max_offset(ctx, request).await?,
        rc::GET_MIN_OFFSET => offsets::min_offset(ctx, request).await?,
        rc::GET_EARLIEST_MSG_STORETIME => offsets::earliest_store_time(ctx, request).await?,
        rc::SEARCH_OFFSET_BY_TIMESTAMP => offsets::search_offset_by_timestamp(ctx, request).await?,
        rc::HEART_BEAT => clients::heartbeat(ctx, origin, request).await?,
        rc::UNREGISTER_CLIENT => clients::unregister_client(ctx, request).await?,
        rc::CHECK_CLIENT_CONFIG => clients::check_client_config(ctx, request).await?,
        rc::GET_CONSUMER_LIST_BY_GROUP => clients::consumer_list_by_group(ctx, request).await?,
        rc::LOCK_BATCH_MQ => locks::lock_batch_mq(ctx, request).await?,
        rc::UNLOCK_BATCH_MQ => locks::unlock_batch_mq(ctx, request).await?,
        rc::UPDATE_AND_CREATE_TOPIC => admin::update_and_create_topic(ctx, request).await?,
        rc::DELETE_TOPIC_IN_BROKER => admin::delete_topic(ctx, request).await?,
        rc::GET_ALL_TOPIC_CONFIG => admin::all_topic_config(ctx, request).await?,
        rc::GET_BROKER_RUNTIME_INFO => admin::broker_runtime_info(ctx, request).await?,
        rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => admin::update_and_create_subscription_group(ctx, request).await?,
        rc::GET_CONSUMER_CONNECTION_LIST => admin::consumer_connection_list(ctx, request).await?,
        rc::GET_PRODUCER_CONNECTION_LIST => admin::producer_connection_list(ctx, request).await?,
        rc::GET_TOPIC_STATS_INFO => admin::topic_stats(ctx, request).await?,
        rc::GET_CONSUME_STATS => admin::consume_stats(ctx, request).await?,
        rc::VIEW_MESSAGE_BY_ID => admin::view_message_by_id(ctx, request).await?,
        rc::QUERY_MESSAGE => admin::query_message(ctx, request).await?,
        rc::GET_BROKER_CONFIG => admin::broker_config(ctx, request)?,
        rc::END_TRANSACTION => end_transaction::end_transaction(ctx, request).await?,
        rc::INVOKE_BROKER_TO_RESET_OFFSET => operator::reset_offset(ctx, request).await?,
        rc::INVOKE_BROKER_TO_GET_CONSUMER_STATUS => operator::consumer_status(ctx, request).await?,
        rc::CLONE_GROUP_OFFSET => operator::clone_group_offset(ctx, request).await?,
        rc::DELETE_SUBSCRIPTIONGROUP => operator::delete_subscription_group(ctx, request).await?,
        rc::GET_CONSUMER_RUNNING_INFO => operator::consumer_running_info(ctx, request).await?,
        rc::CONSUMER_SEND_MSG_BACK => send_back::consumer_send_msg_back(ctx, request).await?,
        rc::GET_ALL_DELAY_OFFSET => admin::all_delay_offset(ctx, request).await?,
        rc::GET_ALL_CONSUMER_OFFSET => admin::all_consumer_offset(ctx, request).await?,
        rc::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => admin::all_subscription_group_config(ctx, request).await?,
        rc::QUERY_TOPIC_CONSUME_BY_WHO => metadata::query_topic_consume_by_who(ctx, request).await?,
        rc::QUERY_TOPICS_BY_CONSUMER => metadata::query_topics_by_consumer(ctx, request).await?,
        rc::GET_TOPIC_CONFIG => metadata::topic_config(ctx, request).await?,
        rc::GET_SYSTEM_TOPIC_LIST_FROM_BROKER => metadata::system_topic_list(ctx, request).await?,
        rc::UPDATE_BROKER_CONFIG => metadata::update_broker_config(ctx, request).await?,
        rc::CLEAN_EXPIRED_CONSUMEQUEUE => metadata::clean_expired_consume_queue(ctx, request).await?,
        rc::VIEW_BROKER_STATS_DATA => metadata::view_broker_stats_data(ctx, request).await?,
        rc::UPDATE_AND_CREATE_ACL_CONFIG => acl_admin::update_and_create_acl_config(ctx, request).await?,
        rc::DELETE_ACL_CONFIG => acl_admin::delete_acl_config(ctx, request).await?,
        rc::GET_BROKER_CLUSTER_ACL_INFO => acl_admin::broker_cluster_acl_info(ctx, request).await?,
        rc::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG => acl_admin::update_global_white_addrs_config(ctx, request).await?,
        rc::GET_BROKER_CLUSTER_ACL_CONFIG => acl_admin::broker_cluster_acl_config(ctx, request).await?,
        _ => not_supported(request),
    };
    Ok(Reply::Response(response))
}

/// Codes whose answer may be large: whole tables (every topic, every connection of a group,
/// runtime info, stats) and query results (messages). A connection serves a few of these at a
/// time (`ConnLimits::max_large_answers_in_flight`), so a client that pipelines them and does
/// not read cannot make the broker build and hold hundreds of them. Sends, pulls (their bodies
/// stay in the files), heartbeats and offsets answer small.
fn answer_may_be_large(code: i32) -> bool {
    matches!(
        code,
        rc::GET_ALL_TOPIC_CONFIG
            | rc::GET_ALL_DELAY_OFFSET
            | rc::GET_ALL_CONSUMER_OFFSET
            | rc::GET_ALL_SUBSCRIPTIONGROUP_CONFIG
            | rc::GET_BROKER_RUNTIME_INFO
            | rc::GET_BROKER_CONFIG
            | rc::GET_CONSUMER_CONNECTION_LIST
            | rc::GET_PRODUCER_CONNECTION_LIST
            | rc::GET_CONSUMER_LIST_BY_GROUP
            | rc::GET_CONSUMER_RUNNING_INFO
            | rc::INVOKE_BROKER_TO_GET_CONSUMER_STATUS
            | rc::GET_TOPIC_STATS_INFO
            | rc::GET_CONSUME_STATS
            | rc::VIEW_MESSAGE_BY_ID
            | rc::QUERY_MESSAGE
    )
}

/// The broker's request handler on one shard's connections.
pub struct BrokerService {
    pub ctx: Rc<ShardCtx>,
}

impl RequestHandler for BrokerService {
    async fn handle(&self, conn: &Connection, request: RemotingCommand) -> Option<Response> {
        let ctx = &self.ctx;
        let _serving = ctx.requests.enter();
        if !ctx.connections.borrow().contains_key(&conn.id()) {
            ctx.connections.borrow_mut().insert(conn.id(), conn.clone());
        }
        let origin = Origin { connection: conn.id(), peer: conn.peer() };
        let (oneway, code) = (request.is_oneway(), request.code);
        let reply = dispatch(ctx, origin, request).await;
        if oneway && let Reply::Response(response) = &reply
            && response.code != ferromq_net::codes::response_code::SUCCESS
        {
            // Nobody reads a one-way request's answer: say here that it was not served.
            tracing::warn!(conn = conn.id(), peer = %conn.peer(), code, error = response.code, "one-way request not served: {}", response.remark.as_deref().unwrap_or(""));
        }
        match reply {
            Reply::Response(response) => Some(response.into()),
            Reply::Frame(frame) => Some(Response::Frame(frame)),
            Reply::Messages(response, segments) => Some(Response::FileBody(response, segments)),
        }
    }

    fn may_answer_large(&self, request: &RemotingCommand) -> bool {
        answer_may_be_large(request.code)
    }

    /// A client's connection closed: it leaves its groups at once, and the groups that changed
    /// are told (NOTIFY_CONSUMER_IDS_CHANGED) so that they rebalance.
    fn on_close(&self, conn: &Connection) {
        self.ctx.connections.borrow_mut().remove(&conn.id());
        let channel = ChannelId::new(u16::from(self.ctx.id.0), conn.id());
        if let Err(command) = self.ctx.control.try_tell(Command::ChannelClosed { channel }) {
            // The control queue is full: wait for room rather than lose the departure (the
            // group would keep a dead member until its heartbeat expires).
            let ctx = self.ctx.clone();
            compio::runtime::spawn(async move {
                let _ = ctx.control.tell(command).await;
            })
            .detach();
        }
    }
}
