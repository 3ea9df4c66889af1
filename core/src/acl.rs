//! The broker's side of RocketMQ's plain ACL (`aclEnable=true`): every request is checked
//! against `plain_acl.yml` ([`ferromq_net::acl`]) before its handler runs, as Java's broker
//! does in an RPC hook. A refusal answers SYSTEM_ERROR with Java's `AclException` remark and is
//! logged with the account and the peer, at most once a second per shard.
//!
//! The rules live in one [`AclFile`], shared by all shards through the control handle: a read
//! is one atomic load, the check one account lookup, one HMAC over the request and one lookup
//! per topic or group it names. The file's watcher
//! thread swaps new rules in when the file changes; the ACL admin codes
//! (`handlers/acl_admin.rs`) rewrite it on the control thread.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use ferromq_net::RemotingCommand;
use ferromq_net::acl::watch::RefusalLog;
use ferromq_net::acl::{AclFile, Granted};
use ferromq_net::codes::request_code as rc;

use crate::config::BrokerConfig;
use crate::control::ControlHandle;
use crate::error::{BrokerError, BrokerResult};

/// Reads the rules file when `aclEnable=true` and starts its watcher; a file that is missing
/// or does not parse stops the start, naming it.
pub fn load(config: &BrokerConfig) -> io::Result<Option<Arc<AclFile>>> {
    if !config.acl.enable {
        return Ok(None);
    }
    let file = AclFile::load(std::path::Path::new(&config.acl.plain_file))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("aclEnable=true: {e}")))?;
    let file = Arc::new(file);
    AclFile::watch(&file)?;
    Ok(Some(file))
}

/// Codes only an admin account may send. Java's five (topic and group creation and deletion,
/// broker config), and beyond Java the other codes that change what clients see or that read
/// or change the ACL itself (Java lets any signed account rewrite the ACL file).
pub fn admin_only(code: i32) -> bool {
    matches!(
        code,
        rc::UPDATE_AND_CREATE_TOPIC
            | rc::UPDATE_BROKER_CONFIG
            | rc::DELETE_TOPIC_IN_BROKER
            | rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
            | rc::DELETE_SUBSCRIPTIONGROUP
            | rc::INVOKE_BROKER_TO_RESET_OFFSET
            | rc::CLONE_GROUP_OFFSET
            | rc::CLEAN_EXPIRED_CONSUMEQUEUE
            | rc::UPDATE_AND_CREATE_ACL_CONFIG
            | rc::DELETE_ACL_CONFIG
            | rc::GET_BROKER_CLUSTER_ACL_INFO
            | rc::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG
            | rc::GET_BROKER_CLUSTER_ACL_CONFIG
    )
}

thread_local! {
    static REFUSALS: RefusalLog = RefusalLog::default();
}

/// Checks `request` from `peer` when ACL is on. A request that passes names its account in
/// its `AccessKey` field (none: a globally white-listed peer).
pub fn check(control: &ControlHandle, peer: SocketAddr, request: &RemotingCommand) -> BrokerResult<()> {
    let Some(file) = control.acl() else {
        return Ok(());
    };
    let rules = file.rules();
    match rules.authorize(request, peer.ip(), admin_only) {
        Ok(Granted::GlobalWhiteAddress | Granted::AccountWhiteAddress(_) | Granted::Signed(_)) => Ok(()),
        Err(denied) => {
            REFUSALS.with(|log| log.refused(request.code, peer, &denied));
            Err(BrokerError::system(denied.remark()))
        }
    }
}
