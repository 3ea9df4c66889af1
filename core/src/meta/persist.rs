//! What the metadata tables share: the atomic file writer, the load/persist protocol
//! ([`PersistedTable`]), the config-file overlay of Java's `.bak` files, and name validation.
//! A leaf of `meta/`: it imports none of its siblings.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs;
use std::path::{Path, PathBuf};

/// Errors of loading and persisting a metadata file. Always names the file.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt config file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes `bytes` to `path` atomically: `<path>.tmp` is written and fsynced, renamed over
/// `path`, and the directory is fsynced so the rename itself is durable. A crash at any point
/// leaves either the old or the new file complete (plus possibly a stale `.tmp`, overwritten by
/// the next write). Creates the parent directory if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    ferromq_namesrv::kv::write_atomically(path, bytes).map_err(|source| PersistError::Write { path: path.to_path_buf(), source })
}

/// A control-plane table persisted as one JSON file (`topics.json`, `subscriptionGroup.json`,
/// `consumerOffset.json`) and written only when it changed, by the control thread; a failed
/// write marks the table dirty again so that the next batch or tick retries it.
pub trait PersistedTable {
    /// The whole file body, in the Java broker's format.
    fn file_json(&self) -> Vec<u8>;
    /// Whether a change has not been persisted yet (since the last snapshot or write).
    fn is_dirty(&self) -> bool;
    fn set_dirty(&mut self, dirty: bool);

    /// Marks the table dirty again, after a failed write of a snapshot.
    fn mark_dirty(&mut self) {
        self.set_dirty(true);
    }

    /// The file body if the table changed since the last snapshot, clearing the flag.
    fn snapshot_if_dirty(&mut self) -> Option<Vec<u8>> {
        if !self.is_dirty() {
            return None;
        }
        self.set_dirty(false);
        Some(self.file_json())
    }

    /// Writes the file atomically and clears the flag (it stays set if the write fails).
    fn persist(&mut self, path: &Path) -> Result<(), PersistError> {
        write_atomic(path, &self.file_json())?;
        self.set_dirty(false);
        Ok(())
    }

    /// [`PersistedTable::persist`] only if dirty; returns whether it wrote.
    fn persist_if_dirty(&mut self, path: &Path) -> Result<bool, PersistError> {
        if !self.is_dirty() {
            return Ok(false);
        }
        self.persist(path)?;
        Ok(true)
    }
}

/// Loads a metadata table: `table` (the defaults) overlaid with the file at `path` (or its
/// Java `.bak`) by `merge`, which returns one warning per entry it skipped; the warnings are
/// logged. Missing file = `table` as it is; corrupt file = error naming it.
pub fn overlay_config_file<T>(
    path: &Path,
    mut table: T,
    merge: impl FnOnce(&mut T, &[u8]) -> Result<Vec<String>, String>,
) -> Result<T, PersistError> {
    let Some((file, bytes)) = read_config_file(path)? else {
        return Ok(table);
    };
    let warnings = merge(&mut table, &bytes).map_err(|reason| PersistError::Corrupt { path: file.clone(), reason })?;
    for w in warnings {
        tracing::warn!(file = %file.display(), "{w}");
    }
    Ok(table)
}

/// Reads a config file. `Ok(None)` when neither `path` nor the Java broker's `<path>.bak` exists
/// (a fresh broker); a missing main file with a present `.bak` (a Java broker stopped between
/// its rename and its write) reads the backup. Any other read failure is an error naming the
/// file. An empty or all-whitespace file is reported as corrupt, not treated as empty.
pub fn read_config_file(path: &Path) -> Result<Option<(PathBuf, Vec<u8>)>, PersistError> {
    let mut bak_name = path.as_os_str().to_owned();
    bak_name.push(".bak");
    for candidate in [path.to_path_buf(), PathBuf::from(bak_name)] {
        match fs::read(&candidate) {
            Ok(bytes) => {
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    return Err(PersistError::Corrupt {
                        path: candidate,
                        reason: "file is empty".to_owned(),
                    });
                }
                if candidate != path {
                    tracing::warn!(file = %candidate.display(), "main config file missing; loading the Java broker's backup");
                }
                return Ok(Some((candidate, bytes)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(PersistError::Read {
                    path: candidate,
                    source,
                });
            }
        }
    }
    Ok(None)
}

/// Why a topic or group name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is {len} characters long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("name {0:?} contains characters outside [%|a-zA-Z0-9_-]")]
    BadChar(String),
}

/// Checks the topic/group charset `[%|a-zA-Z0-9_-]` and length (Appendix B). The length is
/// counted in characters, which for this charset equals bytes.
pub fn validate_name(name: &str, max_len: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')))
    {
        return Err(NameError::BadChar(name.to_owned()));
    }
    if name.len() > max_len {
        return Err(NameError::TooLong {
            len: name.len(),
            max: max_len,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
pub(crate) mod test_util {
    use std::path::PathBuf;

    /// A fresh, empty directory under the system temp dir, unique per test.
    pub fn temp_dir(tag: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ferromq-meta-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("TopicTest", 127).is_ok());
        assert!(validate_name("%RETRY%g-1|x_y", 127).is_ok());
        assert_eq!(validate_name("", 127), Err(NameError::Empty));
        assert!(matches!(
            validate_name("a b", 127),
            Err(NameError::BadChar(_))
        ));
        assert!(matches!(
            validate_name("a@b", 127),
            Err(NameError::BadChar(_))
        ));
        assert!(matches!(
            validate_name("é", 127),
            Err(NameError::BadChar(_))
        ));
        assert!(validate_name(&"a".repeat(127), 127).is_ok());
        assert_eq!(
            validate_name(&"a".repeat(128), 127),
            Err(NameError::TooLong { len: 128, max: 127 })
        );
    }

    #[test]
    fn atomic_write_and_read() {
        let dir = test_util::temp_dir("persist");
        let path = dir.join("sub").join("x.json");
        assert!(read_config_file(&path).unwrap().is_none());
        write_atomic(&path, b"{\"a\":1}").unwrap();
        let (p, bytes) = read_config_file(&path).unwrap().unwrap();
        assert_eq!(p, path);
        assert_eq!(bytes, b"{\"a\":1}");
        assert!(!dir.join("sub").join("x.json.tmp").exists());
        write_atomic(&path, b"{}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        // Empty file is corrupt, not empty.
        std::fs::write(&path, b"  \n").unwrap();
        assert!(matches!(
            read_config_file(&path),
            Err(PersistError::Corrupt { .. })
        ));
        // Missing main file falls back to a Java .bak.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(dir.join("sub").join("x.json.bak"), b"{\"b\":2}").unwrap();
        let (p, bytes) = read_config_file(&path).unwrap().unwrap();
        assert!(p.to_string_lossy().ends_with(".bak"));
        assert_eq!(bytes, b"{\"b\":2}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
