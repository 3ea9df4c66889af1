//! The 4.x ACL admin codes `mqadmin` sends (`updateAclConfig`, `deleteAclConfig`,
//! `updateGlobalWhiteAddr`, `clusterAclConfigVersion`, `getAclConfig`): 50, 51, 53 change the
//! rules file through the control thread (`crate::acl::apply_change`); 52 and 54 read the
//! rules in force. Only admin accounts get here (`crate::acl::admin_only`).

use std::rc::Rc;

use ferromq_net::RemotingCommand;
use serde_json::{Value, json};

use crate::acl::{AccountUpdate, AclChange, acl_disabled};
use crate::control::Command;
use crate::error::BrokerResult;
use crate::header::Header;
use crate::shard::ShardCtx;

/// Java's `UtilAll.split(text, ",")`: trimmed, empty entries dropped.
fn comma_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

async fn change(ctx: &Rc<ShardCtx>, request: &RemotingCommand, change: AclChange) -> BrokerResult<RemotingCommand> {
    ctx.control.call(|reply| Command::ChangeAcl { change: Box::new(change), reply }).await??;
    Ok(request.success_response())
}

/// 50 UPDATE_AND_CREATE_ACL_CONFIG (Java `CreateAccessConfigRequestHeader`).
pub async fn update_and_create_acl_config(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let header = Header::of(request);
    let update = AccountUpdate {
        access_key: header.str("accessKey")?.to_owned(),
        secret_key: header.opt_str("secretKey").map(str::to_owned),
        white_remote_address: header.opt_str("whiteRemoteAddress").map(str::to_owned),
        admin: header.opt_bool("admin")?,
        default_topic_perm: header.opt_str("defaultTopicPerm").map(str::to_owned),
        default_group_perm: header.opt_str("defaultGroupPerm").map(str::to_owned),
        topic_perms: header.opt_str("topicPerms").map(comma_list),
        group_perms: header.opt_str("groupPerms").map(comma_list),
    };
    change(ctx, request, AclChange::Upsert(update)).await
}

/// 51 DELETE_ACL_CONFIG.
pub async fn delete_acl_config(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let access_key = Header::of(request).str("accessKey")?.to_owned();
    change(ctx, request, AclChange::Delete { access_key }).await
}

/// 53 UPDATE_GLOBAL_WHITE_ADDRS_CONFIG. `aclFileFullPath` (4.9.3+, for Java's several files)
/// may only name this broker's one file.
pub async fn update_global_white_addrs_config(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let header = Header::of(request);
    let addrs = comma_list(header.opt_str("globalWhiteAddrs").unwrap_or_default());
    let file = ctx.control.acl().ok_or_else(acl_disabled)?;
    if let Some(path) = header.opt_str("aclFileFullPath").filter(|p| !p.is_empty())
        && std::path::Path::new(path) != file.path()
    {
        return Err(crate::error::BrokerError::new(
            ferromq_net::codes::response_code::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED,
            format!("aclFileFullPath {path}: this broker has one ACL file, {}", file.path().display()),
        ));
    }
    change(ctx, request, AclChange::GlobalWhiteAddrs(addrs)).await
}

fn data_version_json(version: (u64, u64)) -> String {
    json!({"counter": version.0, "stateVersion": 0, "timestamp": version.1}).to_string()
}

/// 52 GET_BROKER_CLUSTER_ACL_INFO (Java `GetBrokerAclConfigResponseHeader`): the rules'
/// version, with the broker's identity.
pub async fn broker_cluster_acl_info(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let file = ctx.control.acl().ok_or_else(acl_disabled)?;
    let rules = file.rules();
    let version = data_version_json(rules.data_version);
    let identity = ctx.control.identity();
    let all = json!({ file.path().display().to_string(): serde_json::from_str::<Value>(&version).unwrap_or(Value::Null) }).to_string();
    let mut response = request.success_response();
    response.ext_fields.insert("version", &version);
    response.ext_fields.insert("allAclFileVersion", &all);
    response.ext_fields.insert("brokerName", &identity.broker_name);
    response.ext_fields.insert("brokerAddr", &identity.broker_addr);
    response.ext_fields.insert("clusterName", &identity.cluster_name);
    Ok(response)
}

/// 54 GET_BROKER_CLUSTER_ACL_CONFIG (4.7–4.9.3): the whole configuration as Java's
/// `AclConfig` JSON, secrets included as Java sends them (admin accounts only).
pub async fn broker_cluster_acl_config(ctx: &Rc<ShardCtx>, request: &RemotingCommand) -> BrokerResult<RemotingCommand> {
    let file = ctx.control.acl().ok_or_else(acl_disabled)?;
    let rules = file.rules();
    let accounts: Vec<Value> = rules
        .accounts
        .iter()
        .map(|a| {
            let spec = a.spec();
            json!({
                "accessKey": spec.access_key,
                "secretKey": spec.secret_key,
                "whiteRemoteAddress": spec.white_remote_address,
                "admin": spec.admin,
                "defaultTopicPerm": spec.default_topic_perm,
                "defaultGroupPerm": spec.default_group_perm,
                "topicPerms": spec.topic_perms,
                "groupPerms": spec.group_perms,
            })
        })
        .collect();
    let body = json!({"globalWhiteAddrs": rules.global_white_addrs, "plainAccessConfigs": accounts});
    let mut response = request.success_response();
    response.ext_fields.insert("version", &data_version_json(rules.data_version));
    Ok(response.with_body(body.to_string().into_bytes()))
}
