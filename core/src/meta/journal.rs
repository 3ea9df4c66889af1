//! The append-only journal beside `topics.json` / `subscriptionGroup.json`
//! (`<file>.journal`): what makes an admin change durable without rewriting the whole file.
//!
//! Why: a whole-file rewrite per change costs O(table) per change (measured 41–67 ms per
//! UPDATE_AND_CREATE_TOPIC at 2,000 topics in a debug build, most of it serializing the file
//! body on the control thread; bench/RESULTS.md 2026-12-03). The journal takes only the
//! changed entries; the full file, still in the Java broker's format, is rewritten by
//! compaction when the journal outgrows the file ([`compaction_due`]) and at stop.
//!
//! Format: records `[len: u32 LE][crc32c: u32 LE][kind: u8][payload]`, `len` counting kind and
//! payload, the checksum over the same bytes. Kinds: `B` base (payload: crc32c of the file
//! body the journal applies to, u32 LE; always the first record), `U` upsert (name length u16
//! LE, name, the entry's JSON as in the file), `D` delete (name), `V` data version (JSON).
//!
//! Crash safety, step by step:
//! - an append is one `write` + `fdatasync`; an admin change is answered only after it. A
//!   crash mid-append leaves a torn last record: [`read_journal`] ignores it (that change was
//!   never answered) and the caller truncates it away before anything is appended after it;
//!   a record that fails its checksum with valid bytes after it is damage, reported with its
//!   offset, never applied or skipped silently;
//! - compaction writes the whole file atomically (tmp, fsync, rename, dir fsync) and *then*
//!   resets the journal to a single base record carrying the new file's checksum. A crash
//!   between the rename and the reset leaves an old journal whose base names the old file:
//!   at start it does not match the file on disk, so it is ignored — correctly, as the new
//!   file already holds every change the journal held (it was serialized after them). A
//!   crash before the rename leaves the old file and its matching journal, which replays;
//! - replay is idempotent (upserts and deletes by name, last one wins), so replaying a
//!   journal twice or over a file that already holds some of its changes is harmless.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::persist::PersistError;

/// The suffix of a metadata file's journal.
pub const JOURNAL_SUFFIX: &str = ".journal";
/// Header bytes of a record: length and checksum.
const HEADER_BYTES: usize = 8;
/// Bytes of the base record (header, kind, crc32c of the file).
pub const BASE_RECORD_BYTES: u64 = (HEADER_BYTES + 1 + 4) as u64;
/// Compaction starts once the journal holds this many bytes, or as many as the file itself if
/// that is more: one whole-file write per file-size of journal keeps the rewriting cost per
/// change constant (amortized O(1)) whatever the table's size, and replay at start bounded by
/// one more file's worth of reading.
pub const COMPACTION_MIN_JOURNAL_BYTES: u64 = 1 << 20;

const BASE: u8 = b'B';
const UPSERT: u8 = b'U';
const DELETE: u8 = b'D';
const VERSION: u8 = b'V';

/// `<file>.journal`.
pub fn journal_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(JOURNAL_SUFFIX);
    PathBuf::from(name)
}

/// Whether a journal of `journal_bytes` beside a file of `file_bytes` should be compacted.
pub fn compaction_due(journal_bytes: u64, file_bytes: u64) -> bool {
    journal_bytes >= COMPACTION_MIN_JOURNAL_BYTES.max(file_bytes)
}

/// What changed in a journaled table since its last write: the names of the changed entries
/// (each written to the journal as its current state, or as a delete), or `whole` when a
/// change is not expressible per entry (a slave's copy of its master, order flags from the name
/// server, a group's forbidden table) and the whole file must be rewritten.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChangeSet {
    pub names: std::collections::BTreeSet<String>,
    pub whole: bool,
}

impl ChangeSet {
    pub fn entry(&mut self, name: &str) {
        if !self.whole {
            self.names.insert(name.to_owned());
        }
    }

    pub fn whole(&mut self) {
        self.whole = true;
        self.names.clear();
    }
}

/// A [`PersistedTable`](super::persist::PersistedTable) whose changes can go to a journal (`journal.rs`) instead of a
/// whole-file rewrite: `topics.json`, `subscriptionGroup.json`.
pub trait JournaledTable: super::persist::PersistedTable {
    fn changes_mut(&mut self) -> &mut ChangeSet;
    /// The entry `name` as it appears in the file (its JSON object), or `None` if absent.
    fn entry_json(&self, name: &str) -> Option<Vec<u8>>;
    /// The table's `dataVersion` object.
    fn version_json(&self) -> Vec<u8>;
    /// Applies a journal's changes at load; returns one warning per entry skipped.
    fn apply_journal(&mut self, changes: JournalChanges) -> Result<Vec<String>, String>;

    /// The changes since the last call, cleared.
    fn take_changes(&mut self) -> ChangeSet {
        std::mem::take(self.changes_mut())
    }
}

/// `{"dataVersion":V,"<table_key>":{name: json, ...}}` of a journal's upserts, for a table's
/// own wrapper parser.
pub fn journal_wrapper(table_key: &str, changes: &JournalChanges) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(b'{');
    if let Some(version) = &changes.version {
        out.extend_from_slice(b"\"dataVersion\":");
        out.extend_from_slice(version);
        out.push(b',');
    }
    ferromq_net::fastjson::write_key(&mut out, table_key);
    out.push(b'{');
    let mut first = true;
    for (name, json) in &changes.entries {
        let Some(json) = json else { continue };
        if !first {
            out.push(b',');
        }
        first = false;
        ferromq_net::fastjson::write_key(&mut out, name);
        out.extend_from_slice(json);
    }
    out.extend_from_slice(b"}}");
    out
}

/// The changes a journal holds, in order of application.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JournalChanges {
    /// Each changed entry's last state: its JSON, or `None` when deleted.
    pub entries: BTreeMap<String, Option<Vec<u8>>>,
    /// The last data version recorded (JSON).
    pub version: Option<Vec<u8>>,
    /// Records applied (upserts, deletes, versions).
    pub records: usize,
}

/// What [`read_journal`] found.
#[derive(Debug, Default)]
pub struct Replay {
    pub changes: JournalChanges,
    /// Length of the well-formed prefix (what stays after a torn tail is cut).
    pub valid_bytes: u64,
    /// Bytes of a torn last record (a crash mid-append), ignored.
    pub torn_bytes: u64,
    /// The journal is missing, empty, or its base names another file body: nothing to apply,
    /// and it must be reset before anything is appended.
    pub needs_reset: bool,
}

fn push_record(out: &mut Vec<u8>, kind: u8, parts: &[&[u8]]) {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let start = out.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    for part in parts {
        out.extend_from_slice(part);
    }
    let crc = out.get(start + HEADER_BYTES..).map_or(0, crc32c::crc32c);
    if let Some(slot) = out.get_mut(start + 4..start + HEADER_BYTES) {
        slot.copy_from_slice(&crc.to_le_bytes());
    }
}

/// Appends an upsert record of `name` with its entry `json` to `out`.
pub fn encode_upsert(out: &mut Vec<u8>, name: &str, json: &[u8]) {
    let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX).to_le_bytes();
    push_record(out, UPSERT, &[&name_len, name.as_bytes(), json]);
}

/// Appends a delete record of `name` to `out`.
pub fn encode_delete(out: &mut Vec<u8>, name: &str) {
    push_record(out, DELETE, &[name.as_bytes()]);
}

/// Appends a data-version record (`json`: the table's `dataVersion` object) to `out`.
pub fn encode_version(out: &mut Vec<u8>, json: &[u8]) {
    push_record(out, VERSION, &[json]);
}

fn encode_base(file_crc: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(BASE_RECORD_BYTES as usize);
    push_record(&mut out, BASE, &[&file_crc.to_le_bytes()]);
    out
}

/// The checksum a journal's base record carries for a file body.
pub fn body_crc(body: &[u8]) -> u32 {
    crc32c::crc32c(body)
}

/// Reads the journal at `path` for the file whose body has checksum `file_crc`. A missing
/// file, an empty one or one whose base names another body is `needs_reset` with nothing to
/// apply; a torn last record is reported in `torn_bytes` and not applied; a damaged record
/// followed by more bytes is an error naming the file and offset.
pub fn read_journal(path: &Path, file_crc: u32) -> Result<Replay, PersistError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Replay { needs_reset: true, ..Replay::default() }),
        Err(source) => return Err(PersistError::Read { path: path.to_path_buf(), source }),
    };
    let corrupt = |offset: usize, what: &str| PersistError::Corrupt { path: path.to_path_buf(), reason: format!("journal record at byte {offset}: {what}") };
    let mut replay = Replay::default();
    let mut offset = 0usize;
    let mut first = true;
    while offset < bytes.len() {
        let rest = bytes.get(offset..).unwrap_or_default();
        // A record cut short by the end of the file, or one whose bytes are all zeros up to it
        // (a crash after the file grew but before the data landed), is a torn tail.
        let torn = |end_checked: bool| end_checked || rest.iter().all(|b| *b == 0);
        // Limit: a length field damaged in the middle of the journal makes its record run past
        // the end, which reads as a torn tail; the bytes ignored are logged at WARN with the
        // journal's name (`load_journal`), so even that is not silent.
        let header = rest.get(..HEADER_BYTES);
        let len = header.and_then(|h| h.first_chunk::<4>()).map(|l| u32::from_le_bytes(*l) as usize);
        let body = len.and_then(|len| rest.get(HEADER_BYTES..HEADER_BYTES + len));
        let (Some(header), Some(body)) = (header, body) else {
            replay.torn_bytes = rest.len() as u64;
            break;
        };
        let stored = header.last_chunk::<4>().map_or(0, |c| u32::from_le_bytes(*c));
        let record_end = offset + HEADER_BYTES + body.len();
        if body.is_empty() || crc32c::crc32c(body) != stored {
            if torn(record_end == bytes.len()) {
                replay.torn_bytes = rest.len() as u64;
                break;
            }
            return Err(corrupt(offset, "checksum mismatch with records after it (damaged, not a torn tail)"));
        }
        let (kind, payload) = body.split_first().map_or((0, &[][..]), |(k, p)| (*k, p));
        match (first, kind) {
            (true, BASE) => {
                let Ok(crc) = <[u8; 4]>::try_from(payload) else { return Err(corrupt(offset, "base record of the wrong size")) };
                if u32::from_le_bytes(crc) != file_crc {
                    // Written for another body of the file: the file was compacted after it,
                    // and holds every change it held.
                    return Ok(Replay { needs_reset: true, ..Replay::default() });
                }
            }
            (true, _) => return Err(corrupt(offset, "the first record is not a base record")),
            (false, UPSERT) => {
                let Some((len, rest)) = payload.split_first_chunk::<2>() else { return Err(corrupt(offset, "upsert record too short")) };
                let name_len = usize::from(u16::from_le_bytes(*len));
                let (Some(name), Some(json)) = (rest.get(..name_len), rest.get(name_len..)) else { return Err(corrupt(offset, "upsert record too short")) };
                let name = std::str::from_utf8(name).map_err(|_| corrupt(offset, "name is not UTF-8"))?;
                replay.changes.entries.insert(name.to_owned(), Some(json.to_vec()));
                replay.changes.records += 1;
            }
            (false, DELETE) => {
                let name = std::str::from_utf8(payload).map_err(|_| corrupt(offset, "name is not UTF-8"))?;
                replay.changes.entries.insert(name.to_owned(), None);
                replay.changes.records += 1;
            }
            (false, VERSION) => {
                replay.changes.version = Some(payload.to_vec());
                replay.changes.records += 1;
            }
            (false, other) => return Err(corrupt(offset, &format!("unknown record kind {other}"))),
        }
        first = false;
        offset = record_end;
    }
    replay.valid_bytes = offset as u64;
    // A journal without even its base record says nothing.
    replay.needs_reset = first;
    Ok(replay)
}

/// Cuts a torn tail off (before anything is appended after it) and makes the cut durable.
pub fn truncate_journal(path: &Path, len: u64) -> std::io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_data()
}

/// Starts the journal afresh for the file body with checksum `file_crc`: truncated to its base
/// record, fdatasynced (and the directory fsynced when the journal was created).
pub fn reset_journal(path: &Path, file_crc: u32) -> std::io::Result<()> {
    let existed = path.exists();
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
    file.write_all(&encode_base(file_crc))?;
    file.sync_data()?;
    if !existed {
        sync_parent(path)?;
    }
    Ok(())
}

/// Appends `records` and fdatasyncs: durable when it returns `Ok`. On failure the journal is
/// cut back to its previous length so that no partial record stays before later ones; if even
/// that fails the caller must reset the journal (a whole-file write) before appending again.
pub fn append_journal(path: &Path, records: &[u8]) -> std::io::Result<()> {
    let mut file: File = OpenOptions::new().append(true).open(path)?;
    let before = file.metadata()?.len();
    let written = file.write_all(records).and_then(|()| file.sync_data());
    if let Err(e) = written {
        let _ = file.set_len(before).and_then(|()| file.sync_data());
        return Err(e);
    }
    Ok(())
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// The sizes the control thread decides compaction by ([`compaction_due`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalSize {
    pub journal_bytes: u64,
    /// Of the file body the journal applies to.
    pub file_bytes: u64,
}

/// At start, after `table` was loaded from `file`: applies `file`'s journal on top (logged),
/// cuts a torn tail off, and resets a missing or stale journal, so that the writer can append
/// at once. A damaged journal is an error naming it (the broker does not start on a table it
/// cannot read completely). Returns the sizes.
pub fn load_journal<T: JournaledTable>(file: &Path, table: &mut T) -> Result<JournalSize, PersistError> {
    let body = super::persist::read_config_file(file)?.map(|(_, bytes)| bytes).unwrap_or_default();
    let (file_crc, file_bytes) = (body_crc(&body), body.len() as u64);
    drop(body);
    let path = journal_path(file);
    let write_error = |source: std::io::Error| PersistError::Write { path: path.clone(), source };
    let replay = read_journal(&path, file_crc)?;
    if replay.needs_reset {
        reset_journal(&path, file_crc).map_err(write_error)?;
        return Ok(JournalSize { journal_bytes: BASE_RECORD_BYTES, file_bytes });
    }
    if replay.torn_bytes > 0 {
        tracing::warn!(journal = %path.display(), ignored_bytes = replay.torn_bytes, "torn last journal record ignored (a crash during a write that was never acknowledged)");
        truncate_journal(&path, replay.valid_bytes).map_err(write_error)?;
    }
    let records = replay.changes.records;
    if records > 0 {
        let warnings = table.apply_journal(replay.changes).map_err(|reason| PersistError::Corrupt { path: path.clone(), reason })?;
        for w in warnings {
            tracing::warn!(journal = %path.display(), "{w}");
        }
        tracing::info!(journal = %path.display(), records, "metadata journal replayed");
    }
    Ok(JournalSize { journal_bytes: replay.valid_bytes, file_bytes })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::meta::test_util::temp_dir;

    fn journal_with(dir: &Path, file_body: &[u8], records: &[u8]) -> PathBuf {
        let path = journal_path(&dir.join("topics.json"));
        reset_journal(&path, body_crc(file_body)).unwrap();
        append_journal(&path, records).unwrap();
        path
    }

    #[test]
    fn replays_upserts_deletes_and_the_last_version_in_order() {
        let dir = temp_dir("journal-replay");
        let mut records = Vec::new();
        encode_upsert(&mut records, "A", b"{\"x\":1}");
        encode_upsert(&mut records, "B", b"{\"x\":2}");
        encode_version(&mut records, b"{\"counter\":1}");
        encode_delete(&mut records, "A");
        encode_upsert(&mut records, "B", b"{\"x\":3}");
        encode_version(&mut records, b"{\"counter\":2}");
        let path = journal_with(&dir, b"{}", &records);
        let replay = read_journal(&path, body_crc(b"{}")).unwrap();
        assert!(!replay.needs_reset);
        assert_eq!(replay.torn_bytes, 0);
        assert_eq!(replay.valid_bytes, BASE_RECORD_BYTES + records.len() as u64);
        assert_eq!(replay.changes.entries.get("A"), Some(&None));
        assert_eq!(replay.changes.entries.get("B"), Some(&Some(b"{\"x\":3}".to_vec())));
        assert_eq!(replay.changes.version.as_deref(), Some(&b"{\"counter\":2}"[..]));
        assert_eq!(replay.changes.records, 6);
        // Idempotent: reading again gives the same changes.
        assert_eq!(read_journal(&path, body_crc(b"{}")).unwrap().changes, replay.changes);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_cut_before_the_next_append() {
        let dir = temp_dir("journal-torn");
        let mut records = Vec::new();
        encode_upsert(&mut records, "A", b"{}");
        let good = records.len();
        encode_upsert(&mut records, "B", b"{\"long\":\"entry\"}");
        for cut in [good + 3, good + HEADER_BYTES + 2, records.len() - 1] {
            let path = journal_with(&dir, b"", &records[..cut]);
            let replay = read_journal(&path, body_crc(b"")).unwrap();
            assert_eq!(replay.changes.entries.keys().collect::<Vec<_>>(), ["A"], "cut at {cut}");
            assert_eq!(replay.torn_bytes, (cut - good) as u64);
            truncate_journal(&path, replay.valid_bytes).unwrap();
            let mut more = Vec::new();
            encode_delete(&mut more, "A");
            append_journal(&path, &more).unwrap();
            let again = read_journal(&path, body_crc(b"")).unwrap();
            assert_eq!((again.torn_bytes, again.changes.entries.get("A")), (0, Some(&None)));
        }
        // A tail of zeros (the file grew, its data never landed) is torn too.
        let mut zeros = records[..good].to_vec();
        zeros.extend_from_slice(&[0; 40]);
        let path = journal_with(&dir, b"", &zeros);
        assert_eq!(read_journal(&path, body_crc(b"")).unwrap().torn_bytes, 40);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_record_in_the_middle_is_an_error_naming_the_file_and_offset() {
        let dir = temp_dir("journal-damaged");
        let mut records = Vec::new();
        encode_upsert(&mut records, "A", b"{}");
        let second = records.len();
        encode_upsert(&mut records, "B", b"{}");
        encode_upsert(&mut records, "C", b"{}");
        records[second + HEADER_BYTES + 3] ^= 0x20;
        let path = journal_with(&dir, b"", &records);
        let err = read_journal(&path, body_crc(b"")).unwrap_err().to_string();
        let offset = BASE_RECORD_BYTES as usize + second;
        assert!(err.contains("topics.json.journal") && err.contains(&format!("byte {offset}")) && err.contains("damaged"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn topic_table() -> crate::meta::topics::TopicConfigTable {
        crate::meta::topics::TopicConfigTable::new(crate::meta::topics::TopicTableSettings {
            cluster_name: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            ..Default::default()
        })
    }

    /// The journal records of a table's changes, as the control thread makes them.
    fn records_of(table: &mut crate::meta::topics::TopicConfigTable) -> Vec<u8> {
        use crate::meta::journal::JournaledTable;
        let mut out = Vec::new();
        for name in table.take_changes().names {
            match table.entry_json(&name) {
                Some(json) => encode_upsert(&mut out, &name, &json),
                None => encode_delete(&mut out, &name),
            }
        }
        encode_version(&mut out, &table.version_json());
        out
    }

    #[test]
    fn a_table_is_its_file_plus_its_journal_and_compaction_makes_the_file_alone_hold_it() {
        use crate::meta::journal::JournaledTable;
        use crate::meta::persist::PersistedTable;
        use ferromq_net::wire::TopicConfig;
        let dir = temp_dir("journal-table");
        let file = dir.join("topics.json");
        let mut table = topic_table();
        table.create_or_update(TopicConfig::with_queues("Kept", 4, 4, 6)).unwrap();
        table.create_or_update(TopicConfig::with_queues("Gone", 1, 1, 6)).unwrap();
        crate::meta::write_atomic(&file, &table.file_json()).unwrap();
        let _ = table.take_changes();
        // A fresh start: no journal yet; it is created with its base.
        let mut loaded = crate::meta::topics::TopicConfigTable::load(&file, Default::default()).unwrap();
        assert_eq!(load_journal(&file, &mut loaded).unwrap().journal_bytes, BASE_RECORD_BYTES);
        // Changes after the file: appended, then replayed over the file at the next start.
        table.create_or_update(TopicConfig::with_queues("New", 2, 2, 6)).unwrap();
        table.delete("Gone");
        table.create_or_update(TopicConfig::with_queues("Kept", 8, 8, 6)).unwrap();
        append_journal(&journal_path(&file), &records_of(&mut table)).unwrap();
        for _ in 0..2 {
            let mut loaded = crate::meta::topics::TopicConfigTable::load(&file, Default::default()).unwrap();
            load_journal(&file, &mut loaded).unwrap();
            assert_eq!(loaded.get("New").map(|t| t.write_queue_nums), Some(2));
            assert_eq!(loaded.get("Kept").map(|t| t.write_queue_nums), Some(8));
            assert!(loaded.get("Gone").is_none());
        }
        // Compaction: the whole file, then the journal reset to it.
        let body = table.file_json();
        crate::meta::write_atomic(&file, &body).unwrap();
        reset_journal(&journal_path(&file), body_crc(&body)).unwrap();
        let mut loaded = crate::meta::topics::TopicConfigTable::load(&file, Default::default()).unwrap();
        assert_eq!(load_journal(&file, &mut loaded).unwrap(), JournalSize { journal_bytes: BASE_RECORD_BYTES, file_bytes: body.len() as u64 });
        assert!(loaded.get("New").is_some() && loaded.get("Gone").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_group_table_replays_its_journal_too() {
        use crate::meta::groups::SubscriptionGroupTable;
        use crate::meta::journal::JournaledTable;
        let dir = temp_dir("journal-groups");
        let file = dir.join("subscriptionGroup.json");
        let mut table = SubscriptionGroupTable::new(true);
        let mut loaded = SubscriptionGroupTable::load(&file, true).unwrap();
        load_journal(&file, &mut loaded).unwrap();
        table.create_or_update_from_json(br#"{"groupName":"g_kept","retryMaxTimes":3}"#).unwrap();
        table.create_or_update_from_json(br#"{"groupName":"g_gone"}"#).unwrap();
        table.delete("g_gone");
        let changes = table.take_changes();
        assert!(!changes.whole);
        let mut records = Vec::new();
        for name in changes.names {
            match table.entry_json(&name) {
                Some(json) => encode_upsert(&mut records, &name, &json),
                None => encode_delete(&mut records, &name),
            }
        }
        encode_version(&mut records, &table.version_json());
        append_journal(&journal_path(&file), &records).unwrap();
        let mut loaded = SubscriptionGroupTable::load(&file, true).unwrap();
        load_journal(&file, &mut loaded).unwrap();
        assert_eq!(loaded.get("g_kept").map(|g| g.retry_max_times), Some(3));
        assert!(loaded.get("g_gone").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_journal_for_another_file_body_is_stale_after_compaction() {
        let dir = temp_dir("journal-stale");
        let mut records = Vec::new();
        encode_upsert(&mut records, "A", b"{}");
        // Compaction wrote the new body but died before resetting the journal: ignored.
        let path = journal_with(&dir, b"old body", &records);
        let replay = read_journal(&path, body_crc(b"new body")).unwrap();
        assert!(replay.needs_reset && replay.changes.entries.is_empty());
        // The reset that completes compaction: nothing to replay afterwards.
        reset_journal(&path, body_crc(b"new body")).unwrap();
        let replay = read_journal(&path, body_crc(b"new body")).unwrap();
        assert!(!replay.needs_reset && replay.changes.records == 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), BASE_RECORD_BYTES);
        // Missing journal: reset needed, nothing applied.
        assert!(read_journal(&dir.join("none.journal"), 0).unwrap().needs_reset);
        assert!(!compaction_due(BASE_RECORD_BYTES, 10));
        assert!(compaction_due(COMPACTION_MIN_JOURNAL_BYTES, 10));
        assert!(!compaction_due(COMPACTION_MIN_JOURNAL_BYTES, 4 << 20));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
