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

use ferromq_net::acl::plain::{Account, AccountSpec};
use ferromq_net::codes::response_code as code;

use crate::config::BrokerConfig;
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
pub fn check(acl: Option<&Arc<AclFile>>, peer: SocketAddr, request: &RemotingCommand) -> BrokerResult<()> {
    let Some(file) = acl else {
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

/// With ACL on, the account a checked request came from (its `AccessKey`): what the broker
/// auto-creates for it counts against its per-account limits. `None` with ACL off, and for
/// a globally white-listed peer that named no account.
pub fn account_of(acl: Option<&Arc<AclFile>>, request: &RemotingCommand) -> Option<Arc<str>> {
    acl?;
    request.ext_fields.get(ferromq_net::acl::ACCESS_KEY).map(Arc::from)
}

/// A change the ACL admin codes make to the rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclChange {
    /// UPDATE_AND_CREATE_ACL_CONFIG: creates the account, or updates the fields given (a field
    /// the request leaves out keeps its value, as Java's `updateAccessConfig`).
    Upsert(AccountUpdate),
    /// DELETE_ACL_CONFIG.
    Delete { access_key: String },
    /// UPDATE_GLOBAL_WHITE_ADDRS_CONFIG: the new global white list, whole.
    GlobalWhiteAddrs(Vec<String>),
}

/// The fields of an UPDATE_AND_CREATE_ACL_CONFIG request; `None`: not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountUpdate {
    pub access_key: String,
    pub secret_key: Option<String>,
    pub white_remote_address: Option<String>,
    pub admin: Option<bool>,
    pub default_topic_perm: Option<String>,
    pub default_group_perm: Option<String>,
    pub topic_perms: Option<Vec<String>>,
    pub group_perms: Option<Vec<String>>,
}

/// Applies `change` to the rules file and puts the result in force: the file is rewritten
/// (Java's format, its `dataVersion` bumped). Run on the control thread, which owns every
/// metadata file. Refusals carry Java's failure codes (209, 210, 211).
pub fn apply_change(file: &AclFile, change: AclChange, now_ms: u64) -> BrokerResult<()> {
    let current = file.rules();
    let mut global = current.global_white_addrs.clone();
    let mut accounts: Vec<Account> = current.accounts.clone();
    let failed_code = match &change {
        AclChange::Upsert(_) => code::UPDATE_AND_CREATE_ACL_CONFIG_FAILED,
        AclChange::Delete { .. } => code::DELETE_ACL_CONFIG_FAILED,
        AclChange::GlobalWhiteAddrs(_) => code::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED,
    };
    let fail = |why: String| BrokerError::new(failed_code, why);
    match change {
        AclChange::Upsert(update) => {
            let at = accounts.iter().position(|a| a.access_key == update.access_key);
            let mut spec = at.and_then(|i| accounts.get(i)).map(Account::spec).unwrap_or_else(|| AccountSpec {
                access_key: update.access_key.clone(),
                ..AccountSpec::default()
            });
            if let Some(v) = update.secret_key {
                spec.secret_key = v;
            }
            if let Some(v) = update.white_remote_address {
                spec.white_remote_address = v;
            }
            if let Some(v) = update.admin {
                spec.admin = v;
            }
            if update.default_topic_perm.is_some() {
                spec.default_topic_perm = update.default_topic_perm;
            }
            if update.default_group_perm.is_some() {
                spec.default_group_perm = update.default_group_perm;
            }
            if let Some(v) = update.topic_perms {
                spec.topic_perms = v;
            }
            if let Some(v) = update.group_perms {
                spec.group_perms = v;
            }
            let account = Account::build(spec).map_err(&fail)?;
            match at {
                Some(i) => {
                    if let Some(slot) = accounts.get_mut(i) {
                        *slot = account;
                    }
                }
                None => accounts.push(account),
            }
        }
        AclChange::Delete { access_key } => {
            let before = accounts.len();
            accounts.retain(|a| a.access_key != access_key);
            if accounts.len() == before {
                return Err(fail(format!("The accesskey[{access_key}] corresponding to accessConfig has been deleted failed: no such account")));
            }
        }
        AclChange::GlobalWhiteAddrs(addrs) => global = addrs,
    }
    let (counter, _) = current.data_version;
    let rules = ferromq_net::acl::AclRules::new(global, accounts, (counter + 1, now_ms)).map_err(&fail)?;
    file.replace(rules).map_err(|e| fail(format!("cannot write the ACL file {}: {e}", file.path().display())))?;
    tracing::info!(file = %file.path().display(), version = counter + 1, "ACL rules changed by an admin request");
    Ok(())
}

/// The answer to an ACL admin code on a broker without ACL (Java fails there too, with a
/// NullPointerException's SYSTEM_ERROR).
pub fn acl_disabled() -> BrokerError {
    BrokerError::system("ACL is off on this broker (aclEnable=false): there are no ACL rules to read or change")
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
