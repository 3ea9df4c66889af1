//! Reading a queue's records in order, on the shard that owns it, for the broker's own
//! consumers of its internal topics: the delay-level deliverers (`delay.rs`) and the
//! transaction check-back (`transaction.rs`).

use ferromq_store::record::decode_record;
use ferromq_store::{PullStatus, QueueId, QueueOffset, TagFilter};

use super::ctx::ShardStore;

/// Consecutive records of one queue, read from [`read_queue`]'s `from`.
pub struct QueueRecords {
    /// Queue offset of the first record: `from`, or later when retention removed older ones.
    pub first: u64,
    /// Each record's bytes in queue order; `None` for one that does not decode, which ends the
    /// read (the caller skips it and reads again from the offset after it).
    pub records: Vec<Option<Vec<u8>>>,
}

/// Up to `max_entries` records of (`topic`, `queue_id`) from queue offset `from`; `None` when
/// there is nothing from there on.
pub async fn read_queue(store: &ShardStore, topic: &str, queue_id: QueueId, from: u64, max_entries: u32) -> Result<Option<QueueRecords>, String> {
    let (min, max) = store.queue_offsets(topic, queue_id);
    let from = from.max(min.0);
    if from >= max.0 {
        return Ok(None);
    }
    let pulled = store.get_message(topic, queue_id, QueueOffset(from), max_entries, &TagFilter::All).await.map_err(|e| format!("cannot read {topic}: {e}"))?;
    if pulled.status != PullStatus::Found {
        return Ok(None);
    }
    let mut records = Vec::with_capacity(pulled.message_count as usize);
    for range in pulled.ranges {
        let bytes = store.read_range(range).await.map_err(|e| format!("cannot read {topic} at {}: {e}", range.offset))?;
        let mut at = 0usize;
        while let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) {
            match decode_record(rest, false) {
                Ok(view) => {
                    records.push(rest.get(..view.total_size).map(<[u8]>::to_vec));
                    at += view.total_size;
                }
                Err(_) => {
                    // The records after it cannot be told apart: stop, so that the offsets of
                    // what is returned stay consecutive.
                    records.push(None);
                    return Ok(Some(QueueRecords { first: from, records }));
                }
            }
        }
    }
    Ok(Some(QueueRecords { first: from, records }))
}
