//! Offset and identity newtypes, and the legacy encoding of shard-qualified physical offsets.
//!
//! Each shard owns one commit log whose *local* offsets ([`CommitLogOffset`]) start at 0; consume
//! queues, the index and the checkpoint hold local offsets. The offset clients see
//! ([`ClientPhysicalOffset`]: PHYSICALOFFSET @28 of a record, offsetMsgId, VIEW_MESSAGE_BY_ID,
//! the `offset` of CONSUMER_SEND_MSG_BACK, END_TRANSACTION's `commitLogOffset`) is a position in
//! one offset space shared by all shards of a broker, translated per commit-log segment
//! ([`crate::offset_space`]): it stays below 2^53 (exact in a JavaScript client) for as long as a
//! Java broker's single commit log would, and [`crate::OffsetSpace::locate`] maps it back to
//! (shard, local offset).
//!
//! **Legacy encoding.** Stores written before the shared space put the shard id in the top bits:
//!
//! ```text
//! bit 63      : 0 (the value stays positive: Java treats offsets as signed longs)
//! bits 62..55 : shard id (8 bits, up to 256 shards)
//! bits 54..0  : offset inside that shard's commit log (55 bits = 32 PiB per shard)
//! ```
//!
//! Their records keep these offsets (so clients holding them still find the records), but no
//! new record is written with them. [`encode_client_offset`] and [`decode_client_offset`]
//! implement that encoding; they no longer describe offsets the store hands out, and stay only
//! for callers outside the store that have not moved to `OffsetSpace::locate` yet.

use std::fmt;

/// Legacy encoding: bits of a client-visible physical offset that held the shard-local
/// commit-log offset.
pub const LOCAL_OFFSET_BITS: u32 = 55;
/// Legacy encoding: bits that held the shard id (above the local offset, below the sign bit).
pub const SHARD_BITS: u32 = 63 - LOCAL_OFFSET_BITS;
/// Largest shard-local commit-log offset the legacy encoding can carry.
pub const MAX_LOCAL_OFFSET: u64 = (1u64 << LOCAL_OFFSET_BITS) - 1;
/// Number of distinct shard ids.
pub const MAX_SHARDS: u32 = 1 << SHARD_BITS;
const _: () = assert!(SHARD_BITS == 8, "shard field is one byte wide");

/// A shard (one pinned thread with its own commit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ShardId(pub u8);

/// A queue id within a topic (QUEUEID of a record; `queueId` on the wire).
///
/// The protocol carries queue ids as Java ints; a negative one names no queue (SEND_MESSAGE's
/// -1 asks the broker to pick one, which the handler resolves before it has a `QueueId`). Ids
/// enter as wire ints through [`QueueId::try_from`] (the broker's header reader uses it) or
/// from a topic's queue count, so they stay in `0..=i32::MAX`; a record's QUEUEID field reads
/// back as the value it was written from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct QueueId(pub u32);

impl TryFrom<i32> for QueueId {
    type Error = std::num::TryFromIntError;
    /// A queue id from a wire int: negative values name no queue.
    fn try_from(v: i32) -> Result<Self, Self::Error> {
        u32::try_from(v).map(QueueId)
    }
}

/// A byte offset inside one shard's commit log (not shard-qualified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CommitLogOffset(pub u64);

/// A logical offset in a consume queue (entry index; QUEUEOFFSET of a record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct QueueOffset(pub u64);

/// A physical offset as clients see it (always positive): a position in the broker-wide offset
/// space ([`crate::OffsetSpace`]), or, for records of stores written before it, the legacy
/// shard-qualified encoding (module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientPhysicalOffset(pub i64);

impl fmt::Display for CommitLogOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl fmt::Display for QueueOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard-{}", self.0)
    }
}

/// Error returned when a client-supplied physical offset cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("physical offset {0} is negative and cannot name a shard")]
pub struct BadClientOffset(pub i64);

/// **Deprecated (legacy encoding):** the store no longer hands out such offsets; resolve a
/// client offset with [`crate::OffsetSpace::locate`] and get one with `Store::client_offset` or
/// `AppendResult::client_offset`. Kept until callers outside the store have moved.
///
/// Encodes a shard and a local commit-log offset into the legacy shard-qualified form.
///
/// Panics if the local offset exceeds [`MAX_LOCAL_OFFSET`]: a commit log cannot grow past
/// 32 PiB, so reaching it means our own offset bookkeeping is broken.
pub fn encode_client_offset(shard: ShardId, local: CommitLogOffset) -> ClientPhysicalOffset {
    assert!(
        local.0 <= MAX_LOCAL_OFFSET,
        "commit-log offset {} exceeds the {LOCAL_OFFSET_BITS}-bit local range",
        local.0
    );
    let raw = (u64::from(shard.0) << LOCAL_OFFSET_BITS) | local.0;
    // The top bit is never set: shard uses bits 55..62.
    ClientPhysicalOffset(raw as i64)
}

/// **Deprecated (legacy encoding):** wrong for every offset the store hands out now (they all
/// decode as shard 0); use [`crate::OffsetSpace::locate`]. Kept until callers outside the store
/// have moved.
///
/// Splits a legacy shard-qualified physical offset into shard and local offset.
pub fn decode_client_offset(
    offset: ClientPhysicalOffset,
) -> Result<(ShardId, CommitLogOffset), BadClientOffset> {
    if offset.0 < 0 {
        return Err(BadClientOffset(offset.0));
    }
    let raw = offset.0 as u64;
    let shard = (raw >> LOCAL_OFFSET_BITS) as u8;
    Ok((ShardId(shard), CommitLogOffset(raw & MAX_LOCAL_OFFSET)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ids_come_from_non_negative_wire_ints() {
        assert_eq!(QueueId::try_from(0), Ok(QueueId(0)));
        assert_eq!(QueueId::try_from(i32::MAX), Ok(QueueId(i32::MAX as u32)));
        assert!(QueueId::try_from(-1).is_err());
        assert_eq!(QueueId(7).to_string(), "7");
    }

    #[test]
    fn legacy_client_offset_round_trips_and_stays_positive() {
        for shard in [0u8, 1, 7, 255] {
            for local in [0u64, 1, 1 << 30, MAX_LOCAL_OFFSET] {
                let enc = encode_client_offset(ShardId(shard), CommitLogOffset(local));
                assert!(enc.0 >= 0);
                assert_eq!(
                    decode_client_offset(enc),
                    Ok((ShardId(shard), CommitLogOffset(local)))
                );
            }
        }
        assert_eq!(encode_client_offset(ShardId(0), CommitLogOffset(42)).0, 42);
        assert!(decode_client_offset(ClientPhysicalOffset(-1)).is_err());
    }
}
