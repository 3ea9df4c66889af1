//! The checkpoint file: where recovery may start. Our own binary format (not Java's 4 KiB
//! `checkpoint`): it also records, per consume queue, how many entries were durable, so recovery
//! can cut each queue exactly instead of guessing from file contents.
//!
//! ```text
//! magic u32 "FMQK" | version u32 | log_durable_offset u64 | dispatch_offset u64
//! | last_store_timestamp_ms i64 | log_min_offset u64
//! | index_file_name_len u16 | index_file_name | index_entry_count u32
//! | queue_count u32 | { topic_len u16 | topic | queue_id u32 | max_offset u64 | min_offset u64 }*
//! [version 2 and 3: | fence_count u32 | { topic_len u16 | topic | fence u64 }* ]
//! [version 3 only: | truncate_log_at u64 ]
//! [version 4 only: | truncate_log_at u64 (u64::MAX: none) | replay_from u64 ]
//! | crc32c u32 (of everything before it)
//! ```
//!
//! Version 2 adds the deleted-topic fences (see [`Checkpoint::deleted_topics`]); a checkpoint
//! without fences is still written as version 1, so a store that never deleted a topic stays
//! readable by builds that predate fences. Version 3 adds [`Checkpoint::truncate_log_at`], and
//! is written only by a replica's truncation, for the moment between its two checkpoints (the
//! second one no longer names it). Version 4 adds [`Checkpoint::replay_from`], and is written
//! only when a checkpoint leaves consume queues unsynced (between thorough ones).
//!
//! Written as `checkpoint.tmp`, fdatasync'ed, renamed over `checkpoint`, then the directory is
//! synced: a crash leaves either the old or the new checkpoint, never a mix.

use crate::error::{Result, StoreError};
use crate::types::QueueId;

pub const CHECKPOINT_MAGIC: u32 = 0x464D_514B;
pub const CHECKPOINT_VERSION: u32 = 1;
/// The version written when [`Checkpoint::deleted_topics`] is not empty.
pub const CHECKPOINT_VERSION_FENCES: u32 = 2;
/// The version written when [`Checkpoint::truncate_log_at`] is set.
pub const CHECKPOINT_VERSION_TRUNCATE: u32 = 3;
/// The version written when [`Checkpoint::replay_from`] is set.
pub const CHECKPOINT_VERSION_REPLAY_FROM: u32 = 4;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueCheckpoint {
    /// The queue's own topic name (shared, see `ConsumeQueue::topic`).
    pub topic: std::rc::Rc<str>,
    pub queue_id: QueueId,
    pub max_offset: u64,
    pub min_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Every commit-log byte below this was durable when the checkpoint was written.
    pub log_durable_offset: u64,
    /// Consume-queue and index entries for every record below this were durable.
    pub dispatch_offset: u64,
    pub last_store_timestamp_ms: i64,
    /// Lowest commit-log offset still present (after retention).
    pub log_min_offset: u64,
    /// Active index file and its durable entry count.
    pub index_file: String,
    pub index_entry_count: u32,
    pub queues: Vec<QueueCheckpoint>,
    /// Deleted topics and their fences: every record of the topic at a local commit-log offset
    /// below its fence belongs to the deleted incarnation and is never dispatched again (nor
    /// found by key). Sorted by topic.
    pub deleted_topics: Vec<(String, u64)>,
    /// Set by a replica's truncation ([`crate::Store::truncate_replica`]): the log ends at this
    /// local offset. Recovery wipes every byte at or past it (zeroes the rest of its segment,
    /// removes later segments) before it scans, without judging those bytes — they are valid
    /// batches this checkpoint says are gone, which the torn-tail rules would otherwise take
    /// for durable data after a tear.
    pub truncate_log_at: Option<u64>,
    /// Set when some consume queues are named below their entries for records under
    /// `dispatch_offset` (their last entries were held in memory, unsynced): recovery replays
    /// the log from here, below `dispatch_offset`, and a record already in its queue (its
    /// queue offset below the queue's named end) is skipped there, as is its index entry.
    pub replay_from: Option<u64>,
}

struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}
impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u16()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        // Sized up front: a checkpoint of 40,000 queues is ~1 MB, grown by doubling otherwise.
        let queue_bytes: usize = self.queues.iter().map(|q| 22 + q.topic.len()).sum();
        let deleted_bytes: usize = self.deleted_topics.iter().map(|(t, _)| 10 + t.len()).sum();
        let mut o = Vec::with_capacity(64 + self.index_file.len() + queue_bytes + deleted_bytes);
        o.extend_from_slice(&CHECKPOINT_MAGIC.to_be_bytes());
        let version = if self.replay_from.is_some() {
            CHECKPOINT_VERSION_REPLAY_FROM
        } else if self.truncate_log_at.is_some() {
            CHECKPOINT_VERSION_TRUNCATE
        } else if self.deleted_topics.is_empty() {
            CHECKPOINT_VERSION
        } else {
            CHECKPOINT_VERSION_FENCES
        };
        o.extend_from_slice(&version.to_be_bytes());
        o.extend_from_slice(&self.log_durable_offset.to_be_bytes());
        o.extend_from_slice(&self.dispatch_offset.to_be_bytes());
        o.extend_from_slice(&self.last_store_timestamp_ms.to_be_bytes());
        o.extend_from_slice(&self.log_min_offset.to_be_bytes());
        o.extend_from_slice(&(self.index_file.len() as u16).to_be_bytes());
        o.extend_from_slice(self.index_file.as_bytes());
        o.extend_from_slice(&self.index_entry_count.to_be_bytes());
        o.extend_from_slice(&(self.queues.len() as u32).to_be_bytes());
        for q in &self.queues {
            o.extend_from_slice(&(q.topic.len() as u16).to_be_bytes());
            o.extend_from_slice(q.topic.as_bytes());
            o.extend_from_slice(&q.queue_id.0.to_be_bytes());
            o.extend_from_slice(&q.max_offset.to_be_bytes());
            o.extend_from_slice(&q.min_offset.to_be_bytes());
        }
        if version != CHECKPOINT_VERSION {
            o.extend_from_slice(&(self.deleted_topics.len() as u32).to_be_bytes());
            for (topic, fence) in &self.deleted_topics {
                o.extend_from_slice(&(topic.len() as u16).to_be_bytes());
                o.extend_from_slice(topic.as_bytes());
                o.extend_from_slice(&fence.to_be_bytes());
            }
        }
        if let Some(from) = self.replay_from {
            o.extend_from_slice(&self.truncate_log_at.unwrap_or(u64::MAX).to_be_bytes());
            o.extend_from_slice(&from.to_be_bytes());
        } else if let Some(at) = self.truncate_log_at {
            o.extend_from_slice(&at.to_be_bytes());
        }
        let crc = crc32c::crc32c(&o);
        o.extend_from_slice(&crc.to_be_bytes());
        o
    }

    pub fn decode(b: &[u8], path: &std::path::Path) -> Result<Checkpoint> {
        let bad = |reason: &str| StoreError::CorruptFile {
            what: "checkpoint",
            path: path.to_path_buf(),
            reason: reason.to_owned(),
        };
        if b.len() < 4 {
            return Err(bad("too short"));
        }
        let (body, crc) = b.split_at(b.len() - 4);
        let crc = u32::from_be_bytes(crc.try_into().map_err(|_| bad("too short"))?);
        if crc32c::crc32c(body) != crc {
            return Err(bad("checksum mismatch"));
        }
        let mut c = Cur { b: body, pos: 0 };
        let parse = |c: &mut Cur<'_>| -> Option<Checkpoint> {
            if c.u32()? != CHECKPOINT_MAGIC {
                return None;
            }
            let version = c.u32()?;
            if !(CHECKPOINT_VERSION..=CHECKPOINT_VERSION_REPLAY_FROM).contains(&version) {
                return None;
            }
            let mut cp = Checkpoint {
                log_durable_offset: c.u64()?,
                dispatch_offset: c.u64()?,
                last_store_timestamp_ms: c.u64()? as i64,
                log_min_offset: c.u64()?,
                index_file: c.str()?,
                index_entry_count: c.u32()?,
                queues: Vec::new(),
                deleted_topics: Vec::new(),
                truncate_log_at: None,
                replay_from: None,
            };
            let n = c.u32()?;
            for _ in 0..n {
                cp.queues.push(QueueCheckpoint {
                    topic: c.str()?.into(),
                    queue_id: QueueId(c.u32()?),
                    max_offset: c.u64()?,
                    min_offset: c.u64()?,
                });
            }
            if version != CHECKPOINT_VERSION {
                let n = c.u32()?;
                for _ in 0..n {
                    cp.deleted_topics.push((c.str()?, c.u64()?));
                }
            }
            if version == CHECKPOINT_VERSION_TRUNCATE {
                cp.truncate_log_at = Some(c.u64()?);
            }
            if version == CHECKPOINT_VERSION_REPLAY_FROM {
                cp.truncate_log_at = Some(c.u64()?).filter(|at| *at != u64::MAX);
                let from = c.u64()?;
                if from > cp.dispatch_offset {
                    return None;
                }
                cp.replay_from = Some(from);
            }
            (c.pos == c.b.len()).then_some(cp)
        };
        parse(&mut c).ok_or_else(|| bad("malformed contents"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_detects_damage() {
        let cp = Checkpoint {
            log_durable_offset: 10,
            dispatch_offset: 9,
            last_store_timestamp_ms: 5,
            log_min_offset: 0,
            index_file: "20260101000000000".into(),
            index_entry_count: 3,
            queues: vec![QueueCheckpoint { topic: "T".into(), queue_id: QueueId(2), max_offset: 7, min_offset: 1 }],
            deleted_topics: Vec::new(),
            truncate_log_at: None,
            replay_from: None,
        };
        let b = cp.encode();
        let p = std::path::Path::new("cp");
        assert_eq!(Checkpoint::decode(&b, p).unwrap(), cp);
        assert_eq!(u32::from_be_bytes(b[4..8].try_into().unwrap()), CHECKPOINT_VERSION, "no fences: still version 1");
        let fenced = Checkpoint { deleted_topics: vec![("Gone".into(), 4096)], ..cp.clone() };
        let fb = fenced.encode();
        assert_eq!(u32::from_be_bytes(fb[4..8].try_into().unwrap()), CHECKPOINT_VERSION_FENCES);
        assert_eq!(Checkpoint::decode(&fb, p).unwrap(), fenced);
        for fences in [Vec::new(), vec![("Gone".to_owned(), 4096)]] {
            let truncating = Checkpoint { truncate_log_at: Some(8192), deleted_topics: fences, ..cp.clone() };
            let tb = truncating.encode();
            assert_eq!(u32::from_be_bytes(tb[4..8].try_into().unwrap()), CHECKPOINT_VERSION_TRUNCATE);
            assert_eq!(Checkpoint::decode(&tb, p).unwrap(), truncating);
            for at in [None, Some(8192)] {
                let partial = Checkpoint { replay_from: Some(4), truncate_log_at: at, ..truncating.clone() };
                let pb = partial.encode();
                assert_eq!(u32::from_be_bytes(pb[4..8].try_into().unwrap()), CHECKPOINT_VERSION_REPLAY_FROM);
                assert_eq!(Checkpoint::decode(&pb, p).unwrap(), partial);
            }
        }
        let beyond = Checkpoint { replay_from: Some(10), ..cp.clone() }.encode();
        assert!(Checkpoint::decode(&beyond, p).is_err(), "a replay start past the dispatch point is refused");
        let mut bad = b.clone();
        bad[9] ^= 1;
        assert!(Checkpoint::decode(&bad, p).is_err());
        assert!(Checkpoint::decode(&b[..3], p).is_err());
    }
}
