//! `plain_acl.yml` (Java `PlainPermissionManager`): read into [`AclRules`], written back by
//! the ACL admin codes.
//!
//! ```yaml
//! globalWhiteRemoteAddresses:
//!   - 10.10.103.*
//! accounts:
//!   - accessKey: RocketMQ
//!     secretKey: 12345678
//!     whiteRemoteAddress:
//!     admin: false
//!     defaultTopicPerm: DENY
//!     defaultGroupPerm: SUB
//!     topicPerms:
//!       - topicA=DENY
//!       - topicB=PUB|SUB
//!     groupPerms:
//!       - groupA=SUB
//! dataVersion:
//!   - counter: 1
//!     timestamp: 1700000000000
//! ```
//!
//! A key this reader does not know (e.g. 5.x namespace permissions) refuses the whole file,
//! naming the key: rules half understood must not be enforced as if whole. Keys and secrets
//! shorter than 6 characters are refused, as in Java.

use std::collections::HashMap;
use std::fmt::Write as _;

use yaml_rust2::{Yaml, YamlLoader};

use super::addr::AddrPattern;

/// Java's `Permission` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm(pub u8);

impl Perm {
    pub const DENY: Perm = Perm(1);
    pub const ANY: Perm = Perm(1 << 1);
    pub const PUB: Perm = Perm(1 << 2);
    pub const SUB: Perm = Perm(1 << 3);
    pub const PUB_SUB: Perm = Perm((1 << 2) | (1 << 3));

    /// Whether an account owning `self` may do what needs `needed` (Java `checkPermission`).
    pub fn allows(self, needed: Perm) -> bool {
        if self.0 & Perm::DENY.0 != 0 {
            return false;
        }
        if needed.0 & Perm::ANY.0 != 0 {
            return self.0 & (Perm::PUB.0 | Perm::SUB.0) != 0;
        }
        needed.0 & self.0 != 0
    }

    /// `DENY`, `PUB`, `SUB`, `PUB|SUB` or `SUB|PUB`.
    pub fn parse(text: &str) -> Option<Perm> {
        match text.trim() {
            "DENY" => Some(Perm::DENY),
            "PUB" => Some(Perm::PUB),
            "SUB" => Some(Perm::SUB),
            "PUB|SUB" | "SUB|PUB" => Some(Perm::PUB_SUB),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Perm::PUB => "PUB",
            Perm::SUB => "SUB",
            Perm::PUB_SUB => "PUB|SUB",
            _ => "DENY",
        }
    }
}

/// One account of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub access_key: String,
    pub secret_key: String,
    /// As written (kept for writing the file back and for GET_BROKER_CLUSTER_ACL_CONFIG).
    pub white_remote_address: String,
    pub white: AddrPattern,
    pub admin: bool,
    pub default_topic_perm: Perm,
    pub default_group_perm: Perm,
    /// Topic → permission, in file order for writing back.
    pub topic_perms: Vec<(String, Perm)>,
    /// Group → permission (checked as the group's retry topic, `%RETRY%group`).
    pub group_perms: Vec<(String, Perm)>,
    topic_index: HashMap<String, Perm>,
    group_index: HashMap<String, Perm>,
}

impl Account {
    pub fn topic_perm(&self, topic: &str) -> Option<Perm> {
        self.topic_index.get(topic).copied()
    }

    pub fn group_perm(&self, group: &str) -> Option<Perm> {
        self.group_index.get(group).copied()
    }
}

/// What [`Account::build`] takes: the fields of an account as text, from the file or from an
/// UPDATE_AND_CREATE_ACL_CONFIG request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountSpec {
    pub access_key: String,
    pub secret_key: String,
    pub white_remote_address: String,
    pub admin: bool,
    pub default_topic_perm: Option<String>,
    pub default_group_perm: Option<String>,
    /// `name=PERM` entries.
    pub topic_perms: Vec<String>,
    pub group_perms: Vec<String>,
}

/// Java's minimum length of an access key and of a secret key.
pub const KEY_MIN_CHARS: usize = 6;

impl Account {
    pub fn build(spec: AccountSpec) -> Result<Account, String> {
        let who = &spec.access_key;
        if spec.access_key.chars().count() < KEY_MIN_CHARS {
            return Err(format!("accessKey `{who}`: shorter than {KEY_MIN_CHARS} characters"));
        }
        if spec.secret_key.chars().count() < KEY_MIN_CHARS {
            return Err(format!("account {who}: secretKey shorter than {KEY_MIN_CHARS} characters"));
        }
        let perm = |field: &str, text: &Option<String>| match text.as_deref().map(str::trim) {
            // Java: an absent default permission is DENY.
            None | Some("") => Ok(Perm::DENY),
            Some(text) => Perm::parse(text).ok_or_else(|| format!("account {who}: {field} `{text}` is not DENY, PUB, SUB or PUB|SUB")),
        };
        let list = |field: &str, entries: &[String]| -> Result<Vec<(String, Perm)>, String> {
            entries
                .iter()
                .map(|entry| {
                    let parsed = entry.split_once('=').and_then(|(name, p)| Some((name.trim(), Perm::parse(p)?)));
                    match parsed {
                        Some((name, p)) if !name.is_empty() => Ok((name.to_owned(), p)),
                        _ => Err(format!("account {who}: {field} entry `{entry}` is not name=DENY|PUB|SUB|PUB|SUB")),
                    }
                })
                .collect()
        };
        let white = AddrPattern::parse(&spec.white_remote_address).map_err(|e| format!("account {who}: {e}"))?;
        let topic_perms = list("topicPerms", &spec.topic_perms)?;
        let group_perms = list("groupPerms", &spec.group_perms)?;
        Ok(Account {
            default_topic_perm: perm("defaultTopicPerm", &spec.default_topic_perm)?,
            default_group_perm: perm("defaultGroupPerm", &spec.default_group_perm)?,
            topic_index: topic_perms.iter().cloned().collect(),
            group_index: group_perms.iter().cloned().collect(),
            access_key: spec.access_key,
            secret_key: spec.secret_key,
            white_remote_address: spec.white_remote_address,
            white,
            admin: spec.admin,
            topic_perms,
            group_perms,
        })
    }

    pub fn spec(&self) -> AccountSpec {
        let entries = |perms: &[(String, Perm)]| perms.iter().map(|(n, p)| format!("{n}={}", p.name())).collect();
        AccountSpec {
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            white_remote_address: self.white_remote_address.clone(),
            admin: self.admin,
            default_topic_perm: Some(self.default_topic_perm.name().to_owned()),
            default_group_perm: Some(self.default_group_perm.name().to_owned()),
            topic_perms: entries(&self.topic_perms),
            group_perms: entries(&self.group_perms),
        }
    }
}

/// The rules of one `plain_acl.yml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclRules {
    /// As written, for writing back.
    pub global_white_addrs: Vec<String>,
    pub global_white: Vec<AddrPattern>,
    /// In file order.
    pub accounts: Vec<Account>,
    by_access_key: HashMap<String, usize>,
    /// The file's `dataVersion` (counter, timestamp in ms); bumped by each admin change.
    pub data_version: (u64, u64),
}

const FILE_KEYS: &[&str] = &["globalWhiteRemoteAddresses", "accounts", "dataVersion"];
const ACCOUNT_KEYS: &[&str] =
    &["accessKey", "secretKey", "whiteRemoteAddress", "admin", "defaultTopicPerm", "defaultGroupPerm", "topicPerms", "groupPerms"];

fn text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Null | Yaml::BadValue => None,
        _ => None,
    }
}

fn texts(value: &Yaml, what: &str) -> Result<Vec<String>, String> {
    match value {
        Yaml::Null | Yaml::BadValue => Ok(Vec::new()),
        Yaml::Array(items) => items.iter().map(|i| text(i).ok_or_else(|| format!("{what}: every entry must be text"))).collect(),
        // Java reads a single string as a one-element list too (fastjson's leniency).
        other => text(other).map(|t| vec![t]).ok_or_else(|| format!("{what}: expected a list")),
    }
}

impl AclRules {
    pub fn new(global_white_addrs: Vec<String>, accounts: Vec<Account>, data_version: (u64, u64)) -> Result<AclRules, String> {
        let global_white = global_white_addrs.iter().map(|p| AddrPattern::parse(p)).collect::<Result<_, _>>()?;
        let mut by_access_key = HashMap::new();
        for (i, account) in accounts.iter().enumerate() {
            if by_access_key.insert(account.access_key.clone(), i).is_some() {
                return Err(format!("accessKey `{}` appears twice", account.access_key));
            }
        }
        Ok(AclRules { global_white_addrs, global_white, accounts, by_access_key, data_version })
    }

    pub fn account(&self, access_key: &str) -> Option<&Account> {
        self.by_access_key.get(access_key).and_then(|&i| self.accounts.get(i))
    }

    /// Reads a `plain_acl.yml`. An empty file has no accounts and no white addresses.
    pub fn parse_yaml(source: &str) -> Result<AclRules, String> {
        let docs = YamlLoader::load_from_str(source).map_err(|e| format!("not YAML: {e}"))?;
        let Some(doc) = docs.first() else {
            return AclRules::new(Vec::new(), Vec::new(), (0, 0));
        };
        let map = match doc {
            Yaml::Hash(map) => map,
            Yaml::Null => return AclRules::new(Vec::new(), Vec::new(), (0, 0)),
            _ => return Err("expected a mapping at the top".to_owned()),
        };
        for key in map.keys() {
            let name = text(key).unwrap_or_default();
            if !FILE_KEYS.contains(&name.as_str()) {
                return Err(format!("unknown key `{name}` (FerroMQ reads {})", FILE_KEYS.join(", ")));
            }
        }
        let get = |key: &str| map.get(&Yaml::String(key.to_owned())).unwrap_or(&Yaml::Null);
        let global = texts(get("globalWhiteRemoteAddresses"), "globalWhiteRemoteAddresses")?;
        let mut accounts = Vec::new();
        match get("accounts") {
            Yaml::Null | Yaml::BadValue => {}
            Yaml::Array(items) => {
                for item in items {
                    let Yaml::Hash(fields) = item else { return Err("accounts: every entry must be a mapping".to_owned()) };
                    for key in fields.keys() {
                        let name = text(key).unwrap_or_default();
                        if !ACCOUNT_KEYS.contains(&name.as_str()) {
                            return Err(format!("accounts: unknown key `{name}` (FerroMQ reads {})", ACCOUNT_KEYS.join(", ")));
                        }
                    }
                    let field = |key: &str| fields.get(&Yaml::String(key.to_owned())).unwrap_or(&Yaml::Null);
                    let admin = match field("admin") {
                        Yaml::Boolean(b) => *b,
                        Yaml::Null => false,
                        Yaml::String(s) if s.eq_ignore_ascii_case("true") => true,
                        Yaml::String(s) if s.eq_ignore_ascii_case("false") => false,
                        _ => return Err("accounts: admin must be true or false".to_owned()),
                    };
                    let spec = AccountSpec {
                        access_key: text(field("accessKey")).unwrap_or_default(),
                        secret_key: text(field("secretKey")).unwrap_or_default(),
                        white_remote_address: text(field("whiteRemoteAddress")).unwrap_or_default(),
                        admin,
                        default_topic_perm: text(field("defaultTopicPerm")),
                        default_group_perm: text(field("defaultGroupPerm")),
                        topic_perms: texts(field("topicPerms"), "topicPerms")?,
                        group_perms: texts(field("groupPerms"), "groupPerms")?,
                    };
                    accounts.push(Account::build(spec)?);
                }
            }
            _ => return Err("accounts: expected a list".to_owned()),
        }
        let mut data_version = (0, 0);
        if let Yaml::Array(versions) = get("dataVersion")
            && let Some(Yaml::Hash(first)) = versions.first()
        {
            let number = |key: &str| match first.get(&Yaml::String(key.to_owned())) {
                Some(Yaml::Integer(i)) => u64::try_from(*i).unwrap_or(0),
                _ => 0,
            };
            data_version = (number("counter"), number("timestamp"));
        }
        AclRules::new(global, accounts, data_version)
    }

    /// The file text for these rules (what the admin codes write).
    pub fn to_yaml(&self) -> String {
        let mut out = String::from("# Written by FerroMQ (ACL admin request); comments are not kept.\n");
        let quoted = |s: &str| format!("'{}'", s.replace('\'', "''"));
        out.push_str("globalWhiteRemoteAddresses:\n");
        for addr in &self.global_white_addrs {
            let _ = writeln!(out, "  - {}", quoted(addr));
        }
        out.push_str("accounts:\n");
        for a in &self.accounts {
            let _ = writeln!(out, "  - accessKey: {}", quoted(&a.access_key));
            let _ = writeln!(out, "    secretKey: {}", quoted(&a.secret_key));
            let _ = writeln!(out, "    whiteRemoteAddress: {}", quoted(&a.white_remote_address));
            let _ = writeln!(out, "    admin: {}", a.admin);
            let _ = writeln!(out, "    defaultTopicPerm: {}", quoted(a.default_topic_perm.name()));
            let _ = writeln!(out, "    defaultGroupPerm: {}", quoted(a.default_group_perm.name()));
            for (field, perms) in [("topicPerms", &a.topic_perms), ("groupPerms", &a.group_perms)] {
                let _ = writeln!(out, "    {field}:");
                for (name, p) in perms {
                    let _ = writeln!(out, "      - {}", quoted(&format!("{name}={}", p.name())));
                }
            }
        }
        let _ = writeln!(out, "dataVersion:\n  - counter: {}\n    timestamp: {}", self.data_version.0, self.data_version.1);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAVA_SAMPLE: &str = "globalWhiteRemoteAddresses:\n  - 10.10.103.*\n  - 192.168.0.*\n\naccounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    whiteRemoteAddress:\n    admin: false\n    defaultTopicPerm: DENY\n    defaultGroupPerm: SUB\n    topicPerms:\n      - topicA=DENY\n      - topicB=PUB|SUB\n      - topicC=SUB\n    groupPerms:\n      # the group should convert to retry topic\n      - groupA=DENY\n      - groupB=PUB|SUB\n      - groupC=SUB\n\n  - accessKey: rocketmq2\n    secretKey: 12345678\n    whiteRemoteAddress: 192.168.1.*\n    # if it is admin, it could access all resources\n    admin: true\n";

    #[test]
    fn javas_sample_file_reads_and_round_trips() {
        let rules = AclRules::parse_yaml(JAVA_SAMPLE).unwrap();
        assert_eq!(rules.global_white.len(), 2);
        let a = rules.account("RocketMQ").unwrap();
        assert!(!a.admin);
        assert_eq!(a.secret_key, "12345678");
        assert_eq!(a.default_topic_perm, Perm::DENY);
        assert_eq!(a.default_group_perm, Perm::SUB);
        assert_eq!(a.topic_perm("topicB"), Some(Perm::PUB_SUB));
        assert_eq!(a.group_perm("groupA"), Some(Perm::DENY));
        assert_eq!(a.white, AddrPattern::Nothing);
        let admin = rules.account("rocketmq2").unwrap();
        assert!(admin.admin);
        assert_eq!(admin.default_topic_perm, Perm::DENY, "absent means DENY");
        assert!(rules.account("nobody").is_none());
        let again = AclRules::parse_yaml(&rules.to_yaml()).unwrap();
        assert_eq!(again, rules);
    }

    #[test]
    fn what_java_refuses_or_ferromq_does_not_read_is_refused_by_name() {
        let cases = [
            ("accounts:\n  - accessKey: abc\n    secretKey: 12345678\n", "shorter than 6"),
            ("accounts:\n  - accessKey: abcdefg\n    secretKey: 123\n", "secretKey shorter"),
            ("accounts:\n  - accessKey: abcdefg\n    secretKey: 12345678\n    topicPerms:\n      - topicA=ALL\n", "topicA=ALL"),
            ("accounts:\n  - accessKey: abcdefg\n    secretKey: 12345678\n    namespacePerms:\n      - ns=PUB\n", "namespacePerms"),
            ("aclFileVersion: 3\n", "aclFileVersion"),
            ("accounts:\n  - accessKey: abcdefg\n    secretKey: 12345678\n  - accessKey: abcdefg\n    secretKey: 87654321\n", "twice"),
            ("globalWhiteRemoteAddresses:\n  - 10.0.0.300\n", "10.0.0.300"),
            ("accounts: [\n", "not YAML"),
        ];
        for (source, needle) in cases {
            let err = AclRules::parse_yaml(source).unwrap_err();
            assert!(err.contains(needle), "{source:?}: {err}");
        }
    }

    #[test]
    fn permissions_check_as_java_does() {
        assert!(Perm::PUB_SUB.allows(Perm::PUB));
        assert!(Perm::SUB.allows(Perm::SUB));
        assert!(!Perm::SUB.allows(Perm::PUB));
        assert!(!Perm::DENY.allows(Perm::SUB));
        assert!(Perm::SUB.allows(Perm::ANY));
        assert!(!Perm(Perm::DENY.0 | Perm::PUB.0).allows(Perm::PUB));
    }
}
