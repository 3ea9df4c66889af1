//! The rules of one `plain_acl.yml`, swapped in whole when the file changes.
//!
//! Readers (every request on every thread) load the current [`AclRules`] without a lock. A
//! watcher thread reads the file every [`RELOAD_CHECK_EVERY`] and, when its bytes differ from
//! the last ones read, parses them and swaps the rules in (Java polls its ACL files every
//! 500 ms too). A file that no longer parses keeps the rules in force and is logged once per
//! distinct content, naming the fault: a typo while editing must not open the broker, nor lock
//! every client out. A file that disappears likewise keeps the rules.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tracing::{error, info, warn};

use super::plain::AclRules;

/// How often the watcher reads the file.
pub const RELOAD_CHECK_EVERY: Duration = Duration::from_millis(500);

/// The file and its rules.
pub struct AclFile {
    path: PathBuf,
    rules: ArcSwap<AclRules>,
    /// Hash of the content last read (applied or refused), so each change is handled once.
    last_seen: Mutex<u64>,
}

fn hash_of(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

impl AclFile {
    /// Reads `path`: a file that is missing or does not parse is an error naming it (the
    /// server refuses to start rather than run with no rules or with half of them).
    pub fn load(path: &Path) -> Result<AclFile, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read ACL file {}: {e}", path.display()))?;
        let text = String::from_utf8(bytes.clone()).map_err(|_| format!("ACL file {}: not UTF-8", path.display()))?;
        let rules = AclRules::parse_yaml(&text).map_err(|e| format!("ACL file {}: {e}", path.display()))?;
        info!(file = %path.display(), accounts = rules.accounts.len(), "ACL rules loaded");
        Ok(AclFile { path: path.to_owned(), rules: ArcSwap::from_pointee(rules), last_seen: Mutex::new(hash_of(&bytes)) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<AclRules> {
        self.rules.load_full()
    }

    /// Reads the file again; swaps in its rules if its content changed and parses. Returns
    /// whether the rules changed.
    pub fn reload_if_changed(&self) -> bool {
        let Ok(bytes) = std::fs::read(&self.path) else {
            return false;
        };
        let hash = hash_of(&bytes);
        let mut last = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
        if *last == hash {
            return false;
        }
        *last = hash;
        let parsed = String::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned()).and_then(|t| AclRules::parse_yaml(&t));
        match parsed {
            Ok(rules) => {
                info!(file = %self.path.display(), accounts = rules.accounts.len(), "ACL file changed: new rules in force");
                self.rules.store(Arc::new(rules));
                true
            }
            Err(e) => {
                error!(file = %self.path.display(), "ACL file changed but is refused, the previous rules stay in force: {e}");
                false
            }
        }
    }

    /// Writes `rules` to the file (a temporary file, fsynced, renamed over it) and puts them in
    /// force. For the ACL admin codes; run it off the threads that serve requests.
    pub fn replace(&self, rules: AclRules) -> io::Result<()> {
        let text = rules.to_yaml();
        let tmp = self.path.with_extension("yml.tmp");
        {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        *self.last_seen.lock().unwrap_or_else(|p| p.into_inner()) = hash_of(text.as_bytes());
        self.rules.store(Arc::new(rules));
        Ok(())
    }

    /// Starts the watcher thread; it ends when the last `Arc` of `file` is dropped.
    pub fn watch(file: &Arc<AclFile>) -> io::Result<()> {
        let weak: Weak<AclFile> = Arc::downgrade(file);
        std::thread::Builder::new().name("acl-watch".into()).spawn(move || {
            loop {
                std::thread::sleep(RELOAD_CHECK_EVERY);
                let Some(file) = weak.upgrade() else { return };
                file.reload_if_changed();
            }
        })?;
        Ok(())
    }
}

impl std::fmt::Debug for AclFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclFile").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Logs refusals at most once per [`REFUSAL_LOG_EVERY`] per thread, with how many were not
/// logged in between: a client retrying with a wrong secret must not fill the disk.
pub struct RefusalLog {
    last: std::cell::Cell<Option<std::time::Instant>>,
    suppressed: std::cell::Cell<u64>,
}

/// The least time between two refusal lines of one thread.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);

impl Default for RefusalLog {
    fn default() -> RefusalLog {
        RefusalLog { last: std::cell::Cell::new(None), suppressed: std::cell::Cell::new(0) }
    }
}

impl RefusalLog {
    pub fn refused(&self, code: i32, peer: std::net::SocketAddr, denied: &super::Denied) {
        let now = std::time::Instant::now();
        if self.last.get().is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_EVERY) {
            self.suppressed.set(self.suppressed.get() + 1);
            return;
        }
        let suppressed = self.suppressed.replace(0);
        self.last.set(Some(now));
        warn!(
            code,
            %peer,
            access_key = denied.access_key.as_deref().unwrap_or("-"),
            not_logged_since_last = suppressed,
            "ACL refused a request: {}",
            denied.reason
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_put_in_force_and_a_broken_one_is_not() {
        let dir = std::env::temp_dir().join(format!("ferromq-acl-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plain_acl.yml");
        std::fs::write(&path, "accounts:\n  - accessKey: first-ak\n    secretKey: first-sk\n").unwrap();
        let file = AclFile::load(&path).unwrap();
        assert!(file.rules().account("first-ak").is_some());
        assert!(!file.reload_if_changed(), "unchanged");
        std::fs::write(&path, "accounts:\n  - accessKey: second-ak\n    secretKey: second-sk\n").unwrap();
        assert!(file.reload_if_changed());
        assert!(file.rules().account("first-ak").is_none());
        assert!(file.rules().account("second-ak").is_some());
        std::fs::write(&path, "accounts:\n  - accessKey: x\n").unwrap();
        assert!(!file.reload_if_changed());
        assert!(file.rules().account("second-ak").is_some(), "a broken file keeps the rules in force");
        let mut rules = (*file.rules()).clone();
        rules.data_version = (7, 1);
        file.replace(rules.clone()).unwrap();
        assert_eq!(*file.rules(), rules);
        assert_eq!(AclFile::load(&path).unwrap().rules().data_version, (7, 1));
        assert!(AclFile::load(&dir.join("missing.yml")).unwrap_err().contains("missing.yml"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
