//! What a request needs (Java `PlainAccessResource.parse`) and whether an account has it
//! (Java `PlainPermissionManager.validate` and `PlainPermissionChecker`).
//!
//! The order of the checks is Java's: a peer in the global white list passes; otherwise the
//! request must name a known `AccessKey`; a peer in that account's white list passes; otherwise
//! the signature must match, then admin-only codes need an admin account, then each topic and
//! group the request touches needs the account's own entry for it, or (only when it has none)
//! its default.
//!
//! Per request on the passing path: one HMAC over the fields and body, one small `Vec` of what
//! the request needs, holding names borrowed from the request (a heartbeat's, parsed from its
//! body, are owned), and hash lookups in the account's tables; refusals format their remark.
//!
//! Beyond Java: SEND_BATCH_MESSAGE, the reply sends, LITE_PULL_MESSAGE and
//! QUERY_CONSUMER_OFFSET name their topic and group too (Java 4.9 lets any account do them),
//! and the set of admin-only codes is given by the server (Java has five).

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use serde_json::Value;

use super::plain::{Account, AclRules, Perm};
use super::sign::signature_matches;
use super::{ACCESS_KEY, SIGNATURE};
use crate::codec::RemotingCommand;
use crate::codes::request_code as rc;

/// The retry topic of a consumer group; a topic with it names the group.
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
/// The message-trace topic: Java lets any signed account publish to it.
pub const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";

/// One topic or group a request touches, and what it does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need<'a> {
    Topic(Cow<'a, str>, Perm),
    Group(Cow<'a, str>, Perm),
}

impl<'a> Need<'a> {
    /// A topic, or the group a retry topic stands for.
    fn topic(topic: &'a str, perm: Perm) -> Need<'a> {
        match topic.strip_prefix(RETRY_GROUP_TOPIC_PREFIX) {
            Some(group) => Need::Group(Cow::Borrowed(group), perm),
            None => Need::Topic(Cow::Borrowed(topic), perm),
        }
    }

    fn into_owned(self) -> Need<'static> {
        match self {
            Need::Topic(topic, perm) => Need::Topic(Cow::Owned(topic.into_owned()), perm),
            Need::Group(group, perm) => Need::Group(Cow::Owned(group.into_owned()), perm),
        }
    }
}

/// As Java's refusal remark names the resource: `topic=A`, `group=G`.
impl fmt::Display for Need<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Topic(topic, _) => write!(f, "topic={topic}"),
            Need::Group(group, _) => write!(f, "group={group}"),
        }
    }
}

/// The topics and groups `request` touches. A consumer group stands for its retry topic
/// (`%RETRY%<group>`), which Java checks as the group.
pub fn needs(request: &RemotingCommand) -> Vec<Need<'_>> {
    let field = |key: &str| request.ext_fields.get(key);
    let mut needs = Vec::new();
    match request.code {
        rc::SEND_MESSAGE | rc::SEND_REPLY_MESSAGE => push_topic(&mut needs, field("topic"), send_perm(field("topic"))),
        rc::SEND_MESSAGE_V2 | rc::SEND_REPLY_MESSAGE_V2 | rc::SEND_BATCH_MESSAGE => push_topic(&mut needs, field("b"), send_perm(field("b"))),
        rc::CONSUMER_SEND_MSG_BACK => {
            push_group(&mut needs, field("group"));
            push_topic(&mut needs, field("originTopic"), Perm::PUB);
        }
        rc::PULL_MESSAGE | rc::LITE_PULL_MESSAGE | rc::UPDATE_CONSUMER_OFFSET | rc::QUERY_CONSUMER_OFFSET => {
            push_topic(&mut needs, field("topic"), Perm::SUB);
            push_group(&mut needs, field("consumerGroup"));
        }
        rc::QUERY_MESSAGE => push_topic(&mut needs, field("topic"), Perm::SUB),
        rc::UNREGISTER_CLIENT | rc::GET_CONSUMER_LIST_BY_GROUP => push_group(&mut needs, field("consumerGroup")),
        rc::HEART_BEAT => heartbeat_needs(&request.body, &mut needs),
        _ => {}
    }
    needs
}

/// Adds the topic `name` (or the group a retry topic stands for), if the request has one.
fn push_topic<'a>(needs: &mut Vec<Need<'a>>, name: Option<&'a str>, perm: Perm) {
    needs.extend(name.map(|name| Need::topic(name, perm)));
}

/// Adds the consumer group `name` (SUB), if the request has one.
fn push_group<'a>(needs: &mut Vec<Need<'a>>, name: Option<&'a str>) {
    needs.extend(name.map(|name| Need::Group(Cow::Borrowed(name), Perm::SUB)));
}

/// A send into a retry topic is a consumer's (the group's SUB), any other a producer's (PUB).
fn send_perm(topic: Option<&str>) -> Perm {
    if topic.is_some_and(|t| t.starts_with(RETRY_GROUP_TOPIC_PREFIX)) { Perm::SUB } else { Perm::PUB }
}

/// Each consumer group of a heartbeat (SUB) and each topic it subscribes to (SUB). A body that
/// does not parse needs nothing here: the handler refuses it.
fn heartbeat_needs(body: &[u8], needs: &mut Vec<Need<'_>>) {
    let Ok(heartbeat) = crate::fastjson::parse_object_tolerant(body) else { return };
    let Some(Value::Array(consumers)) = heartbeat.get("consumerDataSet") else { return };
    for consumer in consumers {
        if let Some(group) = consumer.get("groupName").and_then(Value::as_str) {
            needs.push(Need::Group(Cow::Owned(group.to_owned()), Perm::SUB));
        }
        if let Some(Value::Array(subscriptions)) = consumer.get("subscriptionDataSet") {
            for topic in subscriptions.iter().filter_map(|s| s.get("topic").and_then(Value::as_str)) {
                needs.push(Need::topic(topic, Perm::SUB).into_owned());
            }
        }
    }
}

/// Why a request was refused, in Java's words (the response remark), and by whom it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub access_key: Option<String>,
    pub reason: String,
}

impl Denied {
    /// The remark of the SYSTEM_ERROR answer: what Java's server writes for an `AclException`.
    pub fn remark(&self) -> String {
        format!("org.apache.rocketmq.acl.common.AclException: {}", self.reason)
    }
}

/// How a request passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granted<'a> {
    /// The peer's address is in the global white list.
    GlobalWhiteAddress,
    /// The peer's address is in this account's white list (no signature checked).
    AccountWhiteAddress(&'a Account),
    /// Signed by this account, which has every permission the request needs.
    Signed(&'a Account),
}

impl AclRules {
    /// Checks `request` from `peer`. `admin_only` says which codes need an admin account.
    pub fn authorize(&self, request: &RemotingCommand, peer: IpAddr, admin_only: impl Fn(i32) -> bool) -> Result<Granted<'_>, Denied> {
        if self.global_white.iter().any(|p| p.matches(peer)) {
            return Ok(Granted::GlobalWhiteAddress);
        }
        let deny = |access_key: Option<&str>, reason: String| Denied { access_key: access_key.map(str::to_owned), reason };
        let Some(access_key) = request.ext_fields.get(ACCESS_KEY) else {
            return Err(deny(None, "No accessKey is configured".to_owned()));
        };
        let Some(account) = self.account(access_key) else {
            return Err(deny(Some(access_key), format!("No acl config for {access_key}")));
        };
        if account.white.matches(peer) {
            return Ok(Granted::AccountWhiteAddress(account));
        }
        let claimed = request.ext_fields.get(SIGNATURE).unwrap_or_default();
        if !signature_matches(&request.ext_fields, &request.body, &account.secret_key, claimed) {
            return Err(deny(Some(access_key), format!("Check signature failed for accessKey={access_key}")));
        }
        if admin_only(request.code) && !account.admin {
            return Err(deny(
                Some(access_key),
                format!("Need admin permission for request code={}, but accessKey={access_key} is not", request.code),
            ));
        }
        let needs = needs(request);
        if needs.iter().any(|n| matches!(n, Need::Topic(t, p) if t == TRACE_TOPIC && *p == Perm::PUB)) {
            return Ok(Granted::Signed(account));
        }
        // Java: an admin without any per-resource rules may touch everything.
        if account.admin && account.topic_perms.is_empty() && account.group_perms.is_empty() {
            return Ok(Granted::Signed(account));
        }
        for need in &needs {
            let (owned, default, needed) = match need {
                Need::Topic(topic, p) => (account.topic_perm(topic), account.default_topic_perm, *p),
                Need::Group(group, p) => (account.group_perm(group), account.default_group_perm, *p),
            };
            // Java's `checkPerm`: the account's own entry for the resource decides when there
            // is one (a `B=DENY` is not overridden by `defaultTopicPerm: PUB`); the default only
            // when there is none.
            if owned.unwrap_or(default).allows(needed) {
                continue;
            }
            return Err(deny(Some(access_key), format!("No default permission for {need}")));
        }
        Ok(Granted::Signed(account))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::Credentials;

    const RULES: &str = "globalWhiteRemoteAddresses:\n  - 10.9.9.*\naccounts:\n  - accessKey: admin-ak\n    secretKey: admin-sk\n    admin: true\n  - accessKey: producer\n    secretKey: producer-sk\n    topicPerms:\n      - A=PUB\n  - accessKey: consumer\n    secretKey: consumer-sk\n    whiteRemoteAddress: 10.1.1.1\n    topicPerms:\n      - A=SUB\n    groupPerms:\n      - G=SUB\n";

    fn signed(code: i32, fields: &[(&str, &str)], body: &'static [u8], ak: &str, sk: &str) -> RemotingCommand {
        let mut request = RemotingCommand::request(code);
        for (k, v) in fields {
            request.ext_fields.insert(k, v);
        }
        request.body = bytes::Bytes::from_static(body);
        Credentials::new(ak, sk).sign(&mut request);
        request
    }

    fn never(_: i32) -> bool {
        false
    }

    #[test]
    fn accounts_get_what_the_file_gives_them() {
        let rules = AclRules::parse_yaml(RULES).unwrap();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let send = |topic: &str, ak: &str, sk: &str| signed(rc::SEND_MESSAGE_V2, &[("a", "pg"), ("b", topic)], b"hello", ak, sk);
        assert!(matches!(rules.authorize(&send("A", "producer", "producer-sk"), peer, never), Ok(Granted::Signed(_))));
        let refused = rules.authorize(&send("B", "producer", "producer-sk"), peer, never).unwrap_err();
        assert_eq!(refused.reason, "No default permission for topic=B");
        assert!(rules.authorize(&send("A", "consumer", "consumer-sk"), peer, never).is_err());
        let pull = |group: &str| signed(rc::PULL_MESSAGE, &[("consumerGroup", group), ("topic", "A")], b"", "consumer", "consumer-sk");
        assert!(rules.authorize(&pull("G"), peer, never).is_ok());
        assert_eq!(rules.authorize(&pull("H"), peer, never).unwrap_err().reason, "No default permission for group=H");
        // The retry topic of G is G's.
        let retry = signed(rc::PULL_MESSAGE, &[("consumerGroup", "G"), ("topic", "%RETRY%G")], b"", "consumer", "consumer-sk");
        assert!(rules.authorize(&retry, peer, never).is_ok());
        // An admin with no per-resource rules touches anything; admin codes need an admin.
        let create = |ak: &str, sk: &str| signed(rc::UPDATE_AND_CREATE_TOPIC, &[("topic", "Z")], b"", ak, sk);
        let admin_only = |code: i32| code == rc::UPDATE_AND_CREATE_TOPIC;
        assert!(rules.authorize(&create("admin-ak", "admin-sk"), peer, admin_only).is_ok());
        let refused = rules.authorize(&create("producer", "producer-sk"), peer, admin_only).unwrap_err();
        assert!(refused.reason.starts_with("Need admin permission for request code=17"), "{}", refused.reason);
        assert!(rules.authorize(&send("B", "admin-ak", "admin-sk"), peer, never).is_ok());
        // Anyone may publish traces.
        assert!(rules.authorize(&send(TRACE_TOPIC, "consumer", "consumer-sk"), peer, never).is_ok());
    }

    #[test]
    fn an_accounts_own_entry_overrides_its_default() {
        let rules = AclRules::parse_yaml(
            "accounts:\n  - accessKey: pubber\n    secretKey: pubber-sk\n    defaultTopicPerm: PUB\n    topicPerms:\n      - B=DENY\n      - C=SUB\n",
        )
        .unwrap();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let send = |topic: &str| signed(rc::SEND_MESSAGE_V2, &[("a", "pg"), ("b", topic)], b"x", "pubber", "pubber-sk");
        assert!(rules.authorize(&send("A"), peer, never).is_ok(), "the default lets it publish to A");
        assert_eq!(rules.authorize(&send("B"), peer, never).unwrap_err().reason, "No default permission for topic=B");
        assert_eq!(rules.authorize(&send("C"), peer, never).unwrap_err().reason, "No default permission for topic=C");
    }

    #[test]
    fn wrong_missing_and_replayed_signatures_are_refused() {
        let rules = AclRules::parse_yaml(RULES).unwrap();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let good = signed(rc::SEND_MESSAGE_V2, &[("a", "pg"), ("b", "A")], b"hello", "producer", "producer-sk");
        let wrong = signed(rc::SEND_MESSAGE_V2, &[("a", "pg"), ("b", "A")], b"hello", "producer", "guessed-sk");
        assert_eq!(rules.authorize(&wrong, peer, never).unwrap_err().reason, "Check signature failed for accessKey=producer");
        let mut missing = good.clone();
        missing.ext_fields.retain(|k, _| k != SIGNATURE);
        assert!(rules.authorize(&missing, peer, never).is_err());
        let mut unsigned = good.clone();
        unsigned.ext_fields.retain(|k, _| k != SIGNATURE && k != ACCESS_KEY);
        assert_eq!(rules.authorize(&unsigned, peer, never).unwrap_err().reason, "No accessKey is configured");
        // A captured request replayed with a field changed (to a topic the account may use).
        let mut altered = good.clone();
        altered.ext_fields.insert("a", "other-group");
        assert!(rules.authorize(&altered, peer, never).is_err());
        let mut other_body = good.clone();
        other_body.body = bytes::Bytes::from_static(b"hellO");
        assert!(rules.authorize(&other_body, peer, never).is_err());
        let stranger = signed(rc::SEND_MESSAGE_V2, &[("b", "A")], b"", "stranger", "whatever");
        assert_eq!(rules.authorize(&stranger, peer, never).unwrap_err().reason, "No acl config for stranger");
    }

    #[test]
    fn white_addresses_pass_as_in_java() {
        let rules = AclRules::parse_yaml(RULES).unwrap();
        let unsigned = RemotingCommand::request(rc::SEND_MESSAGE);
        assert_eq!(rules.authorize(&unsigned, "10.9.9.7".parse().unwrap(), never), Ok(Granted::GlobalWhiteAddress));
        // The account's white address skips the signature (Java), not the account lookup.
        let mut request = signed(rc::SEND_MESSAGE_V2, &[("b", "Z")], b"", "consumer", "bad-secret");
        assert!(matches!(rules.authorize(&request, "10.1.1.1".parse().unwrap(), never), Ok(Granted::AccountWhiteAddress(_))));
        request.ext_fields.retain(|k, _| k != ACCESS_KEY);
        assert!(rules.authorize(&request, "10.1.1.1".parse().unwrap(), never).is_err());
    }

    #[test]
    fn a_heartbeat_needs_its_groups_and_their_topics() {
        let body = br#"{"clientID":"c","consumerDataSet":[{"groupName":"G","subscriptionDataSet":[{"topic":"A"},{"topic":"%RETRY%G"}]}],"producerDataSet":[{"groupName":"P"}]}"#;
        let mut request = RemotingCommand::request(rc::HEART_BEAT);
        request.body = bytes::Bytes::from_static(body);
        assert_eq!(
            needs(&request),
            vec![Need::Group("G".into(), Perm::SUB), Need::Topic("A".into(), Perm::SUB), Need::Group("G".into(), Perm::SUB)]
        );
    }
}
