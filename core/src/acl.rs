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
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use ferromq_net::RemotingCommand;
use ferromq_net::acl::watch::RefusalLog;
use ferromq_net::acl::{AclFile, Credentials, Granted};
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

/// With `aclEnable=true` and the embedded name server (no `namesrvAddr`), the name server
/// checks its change codes against the same file (`ferromq_namesrv::service::ChangeGuard`):
/// the broker's own registrations, sent from 127.0.0.1, must pass as an admin's. Refuses the
/// start, saying why, when they would not (no `accessKey`, or not an admin account's).
pub fn check_embedded_namesrv_access(file: &AclFile, credentials: Option<Credentials>) -> io::Result<()> {
    let mut probe = RemotingCommand::request(rc::REGISTER_BROKER);
    if let Some(credentials) = &credentials {
        credentials.sign(&mut probe);
    }
    match file.rules().authorize(&probe, IpAddr::V4(Ipv4Addr::LOCALHOST), |_| true) {
        Ok(_) => Ok(()),
        Err(denied) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "aclEnable=true with the embedded name server (no namesrvAddr): it would refuse this broker's registrations ({}); \
                 set accessKey and secretKey to an admin account of {}",
                denied.reason,
                file.path().display()
            ),
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_name_server_must_accept_the_brokers_own_registrations() {
        let dir = std::env::temp_dir().join(format!("ferromq-core-acl-embedded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plain_acl.yml");
        let accounts = "accounts:\n  - accessKey: broker-admin\n    secretKey: broker-secret\n    admin: true\n  - accessKey: producer\n    secretKey: producer-secret\n";
        std::fs::write(&path, accounts).unwrap();
        let file = AclFile::load(&path).unwrap();
        let err = check_embedded_namesrv_access(&file, None).unwrap_err().to_string();
        assert!(err.contains("No accessKey") && err.contains("set accessKey and secretKey"), "{err}");
        let err = check_embedded_namesrv_access(&file, Some(Credentials::new("producer", "producer-secret"))).unwrap_err().to_string();
        assert!(err.contains("Need admin permission"), "{err}");
        let err = check_embedded_namesrv_access(&file, Some(Credentials::new("broker-admin", "wrong-secret"))).unwrap_err().to_string();
        assert!(err.contains("Check signature failed"), "{err}");
        check_embedded_namesrv_access(&file, Some(Credentials::new("broker-admin", "broker-secret"))).unwrap();
        // Java's white list admits the loopback peer without a signature.
        std::fs::write(&path, format!("globalWhiteRemoteAddresses:\n  - 127.0.0.1\n{accounts}")).unwrap();
        let file = AclFile::load(&path).unwrap();
        check_embedded_namesrv_access(&file, None).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
