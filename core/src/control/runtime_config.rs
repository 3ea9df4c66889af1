//! UPDATE_BROKER_CONFIG's rules: which keys change while the broker runs, how a change is
//! checked, and the file that keeps applied changes across restarts.
//!
//! "Never accept and ignore": a key is applied only if every reader of it sees the change at
//! once ([`RUNTIME_KEYS`], each with the reason). Every other key — known but read only at
//! start, or unknown — refuses the whole request with a message naming it, and nothing is
//! applied.
//!
//! Java persists an update by rewriting the broker's `-c` file with every key. FerroMQ keeps
//! the operator's file as written (it may be TOML, with comments) and writes the changed keys
//! to `<storePathRootDir>/config/brokerRuntime.properties` instead, applied over the
//! configuration at the next start (`broker::start`), where they win as Java's rewritten file
//! would; the start logs each one that overrides the configured value.

use std::path::{Path, PathBuf};

use crate::config::{BrokerConfig, FIXED_VALUE_KEYS, JAVA_ALIASES, KEYS, NO_EFFECT_KEYS};

/// The file under `<storePathRootDir>/config` that keeps runtime changes.
pub const RUNTIME_CONFIG_FILE: &str = "brokerRuntime.properties";

/// The keys UPDATE_BROKER_CONFIG applies, with where the change takes effect.
pub const RUNTIME_KEYS: &[(&str, &str)] = &[
    (
        "brokerPermission",
        "published in the view every send, pull, send-back and end-transaction checks, and registered with the name servers at once (as Java does)",
    ),
    ("maxAutoCreatedTopics", "read by the control thread at each auto-creation, and published in the view pulls check"),
    ("maxAutoCreatedSubscriptionGroups", "read by the control thread at each auto-creation, and published in the view pulls check"),
    ("notifyConsumerIdsChangedEnable", "read by the control thread each time a group's members change"),
    ("channelExpiredTimeout", "read by the control thread at each scan for silent clients (every 10 s)"),
];

/// The changes a properties body asks for, each checked: a runtime key with a valid value.
/// The first key that cannot be applied fails the whole request, naming the key.
pub fn parse_changes(current: &BrokerConfig, body: &[u8]) -> Result<(BrokerConfig, Vec<(String, String)>), String> {
    let map = java_properties::read(body).map_err(|e| format!("the body is not a properties text: {e}"))?;
    let mut changes: Vec<(String, String)> = map.into_iter().map(|(k, v)| (k, v.trim().to_owned())).collect();
    changes.sort();
    if changes.is_empty() {
        return Err("no key to update: the body holds no key=value line".to_owned());
    }
    let mut changed = current.clone();
    for (key, value) in &changes {
        if black_listed(current, key) {
            return Err(format!("configuration key {key:?} is in configBlackList: it cannot be changed remotely"));
        }
        if !RUNTIME_KEYS.iter().any(|(k, _)| k == key) {
            return Err(refusal(key));
        }
        changed.apply_override(key, value).map_err(|e| e.to_string())?;
    }
    changed.validate().map_err(|e| e.to_string())?;
    Ok((changed, changes))
}

/// Keys UPDATE_BROKER_CONFIG never changes whatever `configBlackList` says (Java's
/// `AdminBrokerProcessor` adds them to it).
const ALWAYS_BLACK_LISTED: &[&str] = &["brokerConfigPath", "rocketmqHome", "configBlackList"];

/// Whether `configBlackList` (or [`ALWAYS_BLACK_LISTED`]) forbids changing `key` remotely.
fn black_listed(config: &BrokerConfig, key: &str) -> bool {
    ALWAYS_BLACK_LISTED.contains(&key) || config.broker.config_black_list.split(';').any(|listed| listed.trim() == key)
}

/// Why `key` cannot be changed while the broker runs.
fn refusal(key: &str) -> String {
    let known = KEYS.iter().any(|k| k.java == key)
        || JAVA_ALIASES.iter().any(|(alias, _)| *alias == key)
        || FIXED_VALUE_KEYS.iter().any(|(k, ..)| *k == key)
        || NO_EFFECT_KEYS.iter().any(|(k, _)| *k == key);
    let runtime: Vec<&str> = RUNTIME_KEYS.iter().map(|(k, _)| *k).collect();
    if known {
        format!(
            "configuration key {key:?} cannot be changed while the broker runs: set it in the broker's config file and restart (keys changed at runtime: {})",
            runtime.join(", ")
        )
    } else {
        format!("unknown configuration key {key:?} (keys changed at runtime: {})", runtime.join(", "))
    }
}

/// Where the runtime changes of a broker whose metadata lives in `config_dir` are kept.
pub fn runtime_file(config_dir: &Path) -> PathBuf {
    config_dir.join(RUNTIME_CONFIG_FILE)
}

/// The runtime keys' values in `config`, as the properties text [`RUNTIME_CONFIG_FILE`] holds.
pub fn runtime_text(config: &BrokerConfig) -> String {
    let mut out = String::from("# Written by FerroMQ on UPDATE_BROKER_CONFIG (mqadmin updateBrokerConfig); applied over the\n# broker's configuration at start. Delete this file to use the configured values again.\n");
    for (key, _) in RUNTIME_KEYS {
        if let Some(entry) = KEYS.iter().find(|k| k.java == *key) {
            out.push_str(&format!("{key}={}\n", entry.value(config)));
        }
    }
    out
}

/// Applies the saved runtime changes, if any, over `config` at start; returns the keys whose
/// value they changed. A file that names a key that is not a runtime key, or a bad value,
/// stops the start (it was edited by hand, or written by another version).
pub fn apply_saved(config: &mut BrokerConfig, config_dir: &Path) -> Result<Vec<(String, String)>, String> {
    let path = runtime_file(config_dir);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let map = java_properties::read(text.as_slice()).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut overridden = Vec::new();
    let mut keys: Vec<(String, String)> = map.into_iter().collect();
    keys.sort();
    for (key, value) in keys {
        if !RUNTIME_KEYS.iter().any(|(k, _)| *k == key) {
            return Err(format!("{}: {}", path.display(), refusal(&key)));
        }
        let before = KEYS.iter().find(|k| k.java == key).map(|k| k.value(config));
        config.apply_override(&key, value.trim()).map_err(|e| format!("{}: {e}", path.display()))?;
        if before.as_deref() != Some(value.trim()) {
            overridden.push((key, value.trim().to_owned()));
        }
    }
    Ok(overridden)
}
