//! Delayed-delivery progress: per delay level, the next queue offset of `SCHEDULE_TOPIC_XXXX`
//! queue `level − 1` to deliver (PROTOCOL.md §9.3), persisted in the Java broker's
//! `delayOffset.json` (§6.6) and served as the GET_ALL_DELAY_OFFSET (45) body.
//!
//! Ownership: one table per broker, in the control plane. The shards that deliver delayed
//! messages (`crate::delay`) read their start offsets from it once and report progress to it;
//! it is written with the consumer offsets (every `flushConsumerOffsetInterval` and at stop).
//! A restart resumes each level from its last persisted offset, so messages delivered after
//! the last write are delivered again after a crash (at least once, as in Java).
//!
//! File format, as fastjson writes a `Map<Integer,Long>` (compact, integer keys unquoted):
//! `{"offsetTable":{1:0,2:13}}`. The loader accepts quoted keys, string values and 5.x's
//! `dataVersion`, and skips (with a warning) entries it cannot read.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::json::{lenient_i64, parse_object_tolerant, write_num};
use super::persist::{PersistError, PersistedTable, overlay_config_file};

/// delay level (1-based) → next queue offset to deliver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelayOffsets {
    table: BTreeMap<u32, i64>,
    dirty: bool,
}

impl DelayOffsets {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next offset to deliver of `level`; 0 when the level has none yet.
    pub fn get(&self, level: u32) -> i64 {
        self.table.get(&level).copied().unwrap_or(0)
    }

    /// Every level's offset.
    pub fn all(&self) -> BTreeMap<u32, i64> {
        self.table.clone()
    }

    /// Records `level`'s progress. Level 0 and negative offsets are ignored (not levels).
    pub fn set(&mut self, level: u32, offset: i64) {
        if level == 0 || offset < 0 || self.table.get(&level) == Some(&offset) {
            return;
        }
        self.table.insert(level, offset);
        self.dirty = true;
    }

    /// A slave's copy of its master's delay offsets (§7.5: `delayOffset.json` overwritten).
    /// Marks the table dirty if it changed; returns whether it did.
    pub fn replace_with_master(&mut self, master: DelayOffsets) -> bool {
        if self.table == master.table {
            return false;
        }
        self.table = master.table;
        self.dirty = true;
        true
    }

    /// The `delayOffset.json` body: `{"offsetTable":{1:0,2:13}}`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.table.len() * 16);
        out.extend_from_slice(b"{\"offsetTable\":{");
        for (i, (level, offset)) in self.table.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_num(&mut out, level);
            out.push(b':');
            write_num(&mut out, offset);
        }
        out.extend_from_slice(b"}}");
        out
    }

    /// Parses a `delayOffset.json` body (Java's or ours): the table and one warning per
    /// skipped entry.
    pub fn from_json(body: &[u8]) -> Result<(Self, Vec<String>), String> {
        let root = parse_object_tolerant(body).map_err(|e| e.to_string())?;
        let mut out = DelayOffsets::new();
        let mut warnings = Vec::new();
        let entries = match root.get("offsetTable") {
            None | Some(Value::Null) => return Ok((out, warnings)),
            Some(Value::Object(entries)) => entries,
            Some(_) => return Err("offsetTable is not an object".to_owned()),
        };
        for (level, offset) in entries {
            match (level.trim().parse::<u32>().ok().filter(|l| *l > 0), lenient_i64(Some(offset)).filter(|o| *o >= 0)) {
                (Some(level), Some(offset)) => {
                    out.table.insert(level, offset);
                }
                _ => warnings.push(format!("delay offset {level:?}: {offset} is not <level>:<offset>; skipped")),
            }
        }
        Ok((out, warnings))
    }

    /// Loads `path` (missing file = empty table; corrupt file = error naming it).
    pub fn load(path: &Path) -> Result<Self, PersistError> {
        overlay_config_file(path, Self::new(), |table, bytes| {
            let (parsed, warnings) = Self::from_json(bytes)?;
            *table = parsed;
            Ok(warnings)
        })
    }
}

impl PersistedTable for DelayOffsets {
    fn file_json(&self) -> Vec<u8> {
        self.to_json()
    }
    fn is_dirty(&self) -> bool {
        self.dirty
    }
    fn set_dirty(&mut self, dirty: bool) {
        self.dirty = dirty;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::meta::test_util::temp_dir;

    #[test]
    fn java_file_round_trips_and_bad_entries_are_skipped() {
        let (table, warnings) = DelayOffsets::from_json(br#"{"offsetTable":{1:5,"2":"13",3:-1,"x":4},"dataVersion":{"counter":1}}"#).unwrap();
        assert_eq!(table.get(1), 5);
        assert_eq!(table.get(2), 13);
        assert_eq!(table.get(3), 0);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(table.to_json(), b"{\"offsetTable\":{1:5,2:13}}");
        assert!(DelayOffsets::from_json(b"[1]").is_err());
    }

    #[test]
    fn set_marks_dirty_only_on_change_and_persists() {
        let mut t = DelayOffsets::new();
        t.set(2, 0);
        assert!(t.is_dirty());
        t.set_dirty(false);
        t.set(2, 0);
        t.set(0, 9);
        assert!(!t.is_dirty());
        t.set(2, 7);
        let dir = temp_dir("delay-offsets");
        let path = dir.join("delayOffset.json");
        t.persist(&path).unwrap();
        assert!(!t.is_dirty());
        assert_eq!(DelayOffsets::load(&path).unwrap().get(2), 7);
        let _ = std::fs::remove_dir_all(dir);
    }
}
