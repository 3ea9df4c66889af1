//! Orderly consumers' queue locks (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ, PROTOCOL.md §2.2, §4.4,
//! §8.5): which client of a group holds which queue.
//!
//! An orderly push consumer locks each queue it is assigned before it pulls from it, re-locks
//! every 20 s, and consumes a queue only while its lock is fresh; this is what keeps two members
//! of a group from consuming one queue at once during a rebalance.
//!
//! Rules (Java `RebalanceLockManager`): a queue is granted to `clientId` if nobody holds it, if
//! `clientId` already holds it (the lock is renewed), or if the holder has not renewed for more
//! than [`LOCK_MAX_LIVE_MS`]. Unlock releases only queues held by the requesting client. Locks
//! are not persisted and not released when a connection closes: an orderly client that goes
//! away unlocks on shutdown, and a crashed one's locks expire.
//!
//! Ownership: one [`LockTable`] per broker, owned by the control thread.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;

/// `rocketmq.broker.rebalance.lockMaxLiveTime`: a lock not renewed for longer may be taken.
pub const LOCK_MAX_LIVE_MS: i64 = 60_000;

/// A message queue as clients name it: `{"brokerName":..,"queueId":..,"topic":..}` (§4.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueue {
    pub topic: String,
    #[serde(default)]
    pub broker_name: String,
    pub queue_id: i32,
}

#[derive(Debug, Clone)]
struct LockEntry {
    client_id: String,
    last_update_ms: i64,
}

impl LockEntry {
    fn expired(&self, now_ms: i64) -> bool {
        now_ms.saturating_sub(self.last_update_ms) > LOCK_MAX_LIVE_MS
    }
}

/// group → queue → holder. `Send`; plain data.
#[derive(Debug, Default)]
pub struct LockTable {
    groups: HashMap<String, HashMap<MessageQueue, LockEntry>>,
}

impl LockTable {
    /// Locks (or renews) each queue for `client_id` where the rules allow; returns the queues
    /// `client_id` holds afterwards, among those asked for.
    pub fn try_lock_batch(&mut self, group: &str, client_id: &str, queues: &[MessageQueue], now_ms: i64) -> BTreeSet<MessageQueue> {
        let table = self.groups.entry(group.to_owned()).or_default();
        let mut locked = BTreeSet::new();
        for mq in queues {
            let entry = table.entry(mq.clone()).or_insert_with(|| LockEntry { client_id: client_id.to_owned(), last_update_ms: now_ms });
            if entry.client_id == client_id || entry.expired(now_ms) {
                entry.client_id = client_id.to_owned();
                entry.last_update_ms = now_ms;
                locked.insert(mq.clone());
            }
        }
        locked
    }

    /// Releases each queue held by `client_id`; queues held by others stay locked.
    pub fn unlock_batch(&mut self, group: &str, client_id: &str, queues: &[MessageQueue]) {
        let Some(table) = self.groups.get_mut(group) else { return };
        for mq in queues {
            if table.get(mq).is_some_and(|entry| entry.client_id == client_id) {
                table.remove(mq);
            }
        }
        if table.is_empty() {
            self.groups.remove(group);
        }
    }

    /// Whether no queue of `group` has an unexpired lock (Java `isLockAllExpired`): true for a
    /// group that never locked, or whose clients all unlocked or stopped renewing.
    pub fn all_expired(&self, group: &str, now_ms: i64) -> bool {
        self.groups.get(group).is_none_or(|table| table.values().all(|entry| entry.expired(now_ms)))
    }

    /// The holder of a queue's unexpired lock, if any.
    pub fn holder(&self, group: &str, mq: &MessageQueue, now_ms: i64) -> Option<&str> {
        let entry = self.groups.get(group)?.get(mq)?;
        (!entry.expired(now_ms)).then_some(entry.client_id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(queue_id: i32) -> MessageQueue {
        MessageQueue { topic: "T".into(), broker_name: "b".into(), queue_id }
    }

    #[test]
    fn grant_renew_refuse_expire_unlock() {
        let mut t = LockTable::default();
        let all = [mq(0), mq(1)];
        assert_eq!(t.try_lock_batch("g", "a", &all, 0).len(), 2, "unlocked queues are granted");
        assert_eq!(t.try_lock_batch("g", "a", &all[..1], 1_000).len(), 1, "the holder renews");
        assert!(t.try_lock_batch("g", "b", &all, 30_000).is_empty(), "a live lock is refused to others");
        assert!(t.try_lock_batch("other", "b", &all, 30_000).len() == 2, "groups are independent");
        // Queue 1 was last renewed at 0, queue 0 at 1 000: only queue 1 has expired at 60 500.
        let taken = t.try_lock_batch("g", "b", &all, 60_500);
        assert_eq!(taken.into_iter().collect::<Vec<_>>(), vec![mq(1)]);
        assert_eq!(t.holder("g", &mq(0), 60_500), Some("a"));
        t.unlock_batch("g", "b", &all);
        assert_eq!(t.holder("g", &mq(0), 60_500), Some("a"), "unlock by another client does nothing");
        assert_eq!(t.holder("g", &mq(1), 60_500), None);
        t.unlock_batch("g", "a", &all);
        assert_eq!(t.holder("g", &mq(0), 60_500), None);
    }

    #[test]
    fn a_group_holds_locks_until_all_expire_or_are_released() {
        let mut t = LockTable::default();
        assert!(t.all_expired("g", 0), "a group that never locked");
        t.try_lock_batch("g", "a", &[mq(0)], 0);
        t.try_lock_batch("g", "b", &[mq(1)], 30_000);
        assert!(!t.all_expired("g", 1_000));
        assert!(t.all_expired("other", 1_000), "groups are independent");
        assert!(!t.all_expired("g", 60_500), "queue 1's lock is still live");
        assert!(t.all_expired("g", 90_001), "both past LOCK_MAX_LIVE_MS");
        t.try_lock_batch("g", "b", &[mq(1)], 90_001);
        assert!(!t.all_expired("g", 90_002), "renewed");
        t.unlock_batch("g", "b", &[mq(1)]);
        assert!(t.all_expired("g", 90_002), "released (queue 0's lock expired long ago)");
    }

}
