//! The name server's KV config (PROTOCOL.md §2.6 codes 100/101/102/219, §6.7): namespace → key →
//! value, the only persistent name-server state, kept in `kvConfig.json` as
//! `{"configTable":{"<ns>":{"<k>":"<v>"}}}`.
//!
//! Persistence contract: the file is read once by [`KvConfig::load`] (missing file = empty
//! table; unreadable or corrupt file = error naming the path, never a panic) and rewritten on
//! every change by writing `<path>.tmp`, fsyncing it, renaming it over `<path>` and fsyncing the
//! directory. A change is applied in memory only after its file write succeeded, so memory never
//! runs ahead of disk. Also the KV-table body helpers (`{"table":{..}}`) and the
//! ORDER_TOPIC_CONFIG look-ups used by REGISTER_BROKER responses and routes (§8.3).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::fastjson::{null_as_default, write_str};

/// KV namespace holding `topic → "brokerName:queueCount;..."` for order topics.
pub const ORDER_TOPIC_CONFIG_NAMESPACE: &str = "ORDER_TOPIC_CONFIG";

type Table = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("cannot read KV config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt KV config {path}: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write KV config {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct KvFile {
    #[serde(default, deserialize_with = "null_as_default")]
    config_table: BTreeMap<String, Option<BTreeMap<String, String>>>,
}

/// The KV store. Owned by the name server's route-owning task, like `RouteTable`.
#[derive(Debug)]
pub struct KvConfig {
    path: PathBuf,
    table: Table,
}

impl KvConfig {
    /// Loads `path` (`kvConfigPath`). A missing file is an empty store; a present but empty
    /// file is corrupt (Java would start empty and overwrite it — we prefer the operator to see
    /// it).
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, KvError> {
        let path = path.into();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(KvConfig {
                    path,
                    table: Table::new(),
                });
            }
            Err(source) => return Err(KvError::Read { path, source }),
        };
        let file: KvFile = match crate::fastjson::parse_tolerant_object(&bytes) {
            Ok(f) => f,
            Err(source) => return Err(KvError::Corrupt { path, source }),
        };
        let table = file
            .config_table
            .into_iter()
            .filter_map(|(ns, kv)| kv.filter(|kv| !kv.is_empty()).map(|kv| (ns, kv)))
            .collect();
        Ok(KvConfig { path, table })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// PUT_KV_CONFIG (100). Persists before returning.
    pub fn put(&mut self, namespace: &str, key: &str, value: &str) -> Result<(), KvError> {
        if self.get(namespace, key) == Some(value) {
            return Ok(());
        }
        let mut next = self.table.clone();
        next.entry(namespace.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
        self.commit(next)
    }

    /// GET_KV_CONFIG (101); `None` → 22 QUERY_NOT_FOUND.
    pub fn get(&self, namespace: &str, key: &str) -> Option<&str> {
        self.table.get(namespace)?.get(key).map(String::as_str)
    }

    /// DELETE_KV_CONFIG (102). Returns whether the key existed; nothing is written when it did
    /// not. A namespace whose last key goes is removed (Java keeps it empty, so GET_KVLIST of
    /// it answers `{"table":{}}` there and 22 here).
    pub fn delete(&mut self, namespace: &str, key: &str) -> Result<bool, KvError> {
        if self.get(namespace, key).is_none() {
            return Ok(false);
        }
        let mut next = self.table.clone();
        if let Some(kv) = next.get_mut(namespace) {
            kv.remove(key);
            if kv.is_empty() {
                next.remove(namespace);
            }
        }
        self.commit(next)?;
        Ok(true)
    }

    /// The keys and values of a namespace, `None` when it has none.
    pub fn namespace(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.table.get(namespace)
    }

    /// GET_KVLIST_BY_NAMESPACE (219) body `{"table":{..}}`; `None` → 22 QUERY_NOT_FOUND.
    pub fn namespace_table_json(&self, namespace: &str) -> Option<Vec<u8>> {
        self.namespace(namespace).map(kv_table_json)
    }

    /// REGISTER_BROKER response body: the ORDER_TOPIC_CONFIG namespace as a KV table, `None`
    /// (no body) when it does not exist. Only sent when `returnOrderTopicConfigToBroker=true`.
    pub fn order_topic_config_body(&self) -> Option<Vec<u8>> {
        self.namespace_table_json(ORDER_TOPIC_CONFIG_NAMESPACE)
    }

    /// A topic's `orderTopicConf` for its route (only when `orderMessageEnable=true`).
    pub fn order_topic_conf(&self, topic: &str) -> Option<&str> {
        self.get(ORDER_TOPIC_CONFIG_NAMESPACE, topic)
    }

    fn commit(&mut self, next: Table) -> Result<(), KvError> {
        write_atomically(&self.path, &render_file(&next)).map_err(|source| KvError::Write { path: self.path.clone(), source })?;
        self.table = next;
        Ok(())
    }
}

/// KVTable body: `{"table":{"k":"v",...}}`, keys sorted, no whitespace.
pub fn kv_table_json(table: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + table.len() * 48);
    out.extend_from_slice(b"{\"table\":{");
    for (i, (k, v)) in table.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(&mut out, k, false);
        out.push(b':');
        write_str(&mut out, v, false);
    }
    out.extend_from_slice(b"}}");
    out
}

/// The file text: pretty-printed like Java's `toJson(true)` (Java uses tabs; any JSON parser,
/// Java's included, reads either), keys sorted.
fn render_file(table: &Table) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"{\n\t\"configTable\":{");
    for (i, (ns, kv)) in table.iter().enumerate() {
        out.extend_from_slice(if i > 0 { b",\n\t\t" } else { b"\n\t\t" });
        write_str(&mut out, ns, false);
        out.extend_from_slice(b":{");
        for (j, (k, v)) in kv.iter().enumerate() {
            out.extend_from_slice(if j > 0 { b",\n\t\t\t" } else { b"\n\t\t\t" });
            write_str(&mut out, k, false);
            out.push(b':');
            write_str(&mut out, v, false);
        }
        out.extend_from_slice(if kv.is_empty() { b"}" } else { b"\n\t\t}" });
    }
    out.extend_from_slice(if table.is_empty() {
        b"}\n}\n"
    } else {
        b"\n\t}\n}\n"
    });
    out
}

/// Replaces `path` with `contents` so that a crash leaves either the old or the new file:
/// write `<path>.tmp`, fsync it, rename over `path`, fsync the directory. Creates the parent
/// directory if needed. Shared with the broker's metadata files (`ferromq-core`).
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(&dir).and_then(|d| d.sync_all())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static SEQ: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "kvtest-{tag}-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn missing_file_is_empty_and_first_write_creates_dirs() {
        let dir = TempDir::new("missing");
        let path = dir.0.join("namesrv").join("kvConfig.json");
        let mut kv = KvConfig::load(&path).unwrap();
        assert_eq!(kv.get("ns", "k"), None);
        assert!(!path.exists());
        kv.put("ns", "k", "v").unwrap();
        assert!(path.exists());
        assert!(!dir.0.join("namesrv").join("kvConfig.json.tmp").exists());
    }

    #[test]
    fn persistence_round_trip_and_atomic_rewrite() {
        let dir = TempDir::new("roundtrip");
        let path = dir.0.join("kvConfig.json");
        let mut kv = KvConfig::load(&path).unwrap();
        kv.put(
            ORDER_TOPIC_CONFIG_NAMESPACE,
            "TopicA",
            "broker-a:4;broker-b:4",
        )
        .unwrap();
        kv.put("ns", "quote\"key", "line\nvalue é").unwrap();
        kv.put("ns", "k2", "v2").unwrap();
        kv.put("ns", "k2", "v3").unwrap();

        let reloaded = KvConfig::load(&path).unwrap();
        assert_eq!(reloaded.table, kv.table);
        assert_eq!(reloaded.get("ns", "quote\"key"), Some("line\nvalue é"));
        assert_eq!(reloaded.get("ns", "k2"), Some("v3"));

        // Each change rewrites the whole file through a temp file that is renamed away.
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"configTable\""));
        assert!(!path.with_file_name("kvConfig.json.tmp").exists());
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["configTable"]["ns"]["k2"], "v3");

        assert!(kv.delete("ns", "k2").unwrap());
        assert!(!kv.delete("ns", "k2").unwrap());
        assert!(kv.delete("ns", "quote\"key").unwrap());
        let reloaded = KvConfig::load(&path).unwrap();
        assert_eq!(reloaded.namespace("ns"), None);
        assert_eq!(
            reloaded.order_topic_conf("TopicA"),
            Some("broker-a:4;broker-b:4")
        );
        assert_eq!(
            reloaded.order_topic_config_body().unwrap(),
            br#"{"table":{"TopicA":"broker-a:4;broker-b:4"}}"#
        );

        // A stale temp file from a crash mid-write does not disturb loading or the next write.
        fs::write(path.with_file_name("kvConfig.json.tmp"), b"{garbage").unwrap();
        let mut kv = KvConfig::load(&path).unwrap();
        kv.put("ns2", "a", "b").unwrap();
        assert_eq!(KvConfig::load(&path).unwrap().get("ns2", "a"), Some("b"));
    }

    #[test]
    fn reads_java_written_file() {
        let dir = TempDir::new("java");
        fs::create_dir_all(&dir.0).unwrap();
        let path = dir.0.join("kvConfig.json");
        fs::write(
            &path,
            "{\n\t\"configTable\":{\n\t\t\"ORDER_TOPIC_CONFIG\":{\n\t\t\t\"T\":\"broker-a:8\"\n\t\t},\"empty\":{},\"nul\":null\n\t}\n}",
        )
        .unwrap();
        let kv = KvConfig::load(&path).unwrap();
        assert_eq!(kv.order_topic_conf("T"), Some("broker-a:8"));
        assert_eq!(kv.namespace("empty"), None);
        assert_eq!(kv.namespace_table_json("nope"), None);
    }

    #[test]
    fn corrupt_file_is_an_error_with_the_path() {
        let dir = TempDir::new("corrupt");
        fs::create_dir_all(&dir.0).unwrap();
        let path = dir.0.join("kvConfig.json");
        for bad in [
            &b""[..],
            b"{",
            b"null",
            b"[]",
            b"[1]",
            b"{\"configTable\":{\"ns\":{\"k\":1}}}",
            b"\xff\x00",
        ] {
            fs::write(&path, bad).unwrap();
            match KvConfig::load(&path) {
                Err(e @ KvError::Corrupt { .. }) => {
                    assert!(e.to_string().contains("kvConfig.json"), "{e}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // A directory where the file should be: a read error, not a panic.
        let as_dir = dir.0.join("dir.json");
        fs::create_dir_all(&as_dir).unwrap();
        assert!(matches!(KvConfig::load(&as_dir), Err(KvError::Read { .. })));
    }

    #[test]
    fn failed_write_leaves_memory_unchanged() {
        let dir = TempDir::new("fail");
        fs::create_dir_all(&dir.0).unwrap();
        // The target path is a non-empty directory: the final rename fails.
        let path = dir.0.join("kvConfig.json");
        fs::create_dir_all(path.join("occupied")).unwrap();
        let mut kv = KvConfig {
            path: path.clone(),
            table: Table::new(),
        };
        assert!(matches!(kv.put("ns", "k", "v"), Err(KvError::Write { .. })));
        assert_eq!(kv.get("ns", "k"), None);
    }

    #[test]
    fn kv_table_json_shape() {
        let table = BTreeMap::from([
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]);
        assert_eq!(kv_table_json(&table), br#"{"table":{"a":"1","b":"2"}}"#);
        assert_eq!(kv_table_json(&BTreeMap::new()), br#"{"table":{}}"#);
    }
}
