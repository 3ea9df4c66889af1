//! Consumer-offset commits on their way to the control thread, coalesced per shard.
//!
//! Every pull with the commit flag and every UPDATE_CONSUMER_OFFSET commits an offset; sending
//! each as its own command would wake the control thread once per pull. Instead a shard keeps
//! the latest offset per (group, topic, queue) — a later commit of the same queue replaces an
//! earlier one, as it would in the table — and a flusher task sends what has accumulated as one
//! command whenever the control channel takes it. The buffer is bounded by
//! `maxPendingOffsetCommits` distinct queues; beyond it a commit waits for the flusher.
//!
//! A QUERY_CONSUMER_OFFSET served by the same shard reads a pending commit first, so a client
//! never sees its own commit go backwards.
//!
//! Shard-resident: one [`OffsetCommits`] per shard.

use std::cell::RefCell;
use std::collections::HashMap;

use event_listener::Event;

use crate::control::{Command, ControlHandle, OffsetKey};

pub struct OffsetCommits {
    pending: RefCell<HashMap<OffsetKey, i64>>,
    max_pending: usize,
    /// Signalled when the buffer goes from empty to non-empty.
    filled: Event,
    /// Signalled when the flusher has taken the buffer.
    drained: Event,
}

impl OffsetCommits {
    pub fn new(max_pending: usize) -> OffsetCommits {
        OffsetCommits { pending: RefCell::default(), max_pending: max_pending.max(1), filled: Event::new(), drained: Event::new() }
    }

    /// Records a commit; waits only while the buffer is full of other queues.
    pub async fn commit(&self, key: OffsetKey, offset: i64) {
        loop {
            {
                let mut pending = self.pending.borrow_mut();
                if pending.len() < self.max_pending || pending.contains_key(&key) {
                    let was_empty = pending.is_empty();
                    pending.insert(key, offset);
                    if was_empty {
                        self.filled.notify(1);
                    }
                    return;
                }
            }
            let listener = self.drained.listen();
            if self.pending.borrow().len() < self.max_pending {
                continue;
            }
            listener.await;
        }
    }

    /// The commit of `key` not yet handed to the control thread, if any.
    pub fn pending(&self, key: &OffsetKey) -> Option<i64> {
        self.pending.borrow().get(key).copied()
    }

    /// Drops the pending commits of a deleted topic (DELETE_TOPIC_IN_BROKER), so they cannot
    /// bring its offsets back after the control thread dropped them.
    pub fn forget_topic(&self, topic: &str) {
        self.pending.borrow_mut().retain(|key, _| key.topic != topic);
        self.drained.notify(usize::MAX);
    }

    fn take(&self) -> Vec<(OffsetKey, i64)> {
        let taken: Vec<_> = self.pending.borrow_mut().drain().collect();
        self.drained.notify(usize::MAX);
        taken
    }

    /// The flusher: sends the buffer as one command each time it fills, until the control plane
    /// stops.
    pub async fn run_flusher(&self, control: &ControlHandle) {
        loop {
            while self.pending.borrow().is_empty() {
                let listener = self.filled.listen();
                if !self.pending.borrow().is_empty() {
                    break;
                }
                listener.await;
            }
            let commits = self.take();
            if control.tell(Command::CommitOffsets { commits }).await.is_err() {
                return;
            }
        }
    }

    /// Sends whatever is pending now (at shutdown).
    pub async fn flush(&self, control: &ControlHandle) {
        let commits = self.take();
        if !commits.is_empty() {
            let _ = control.tell(Command::CommitOffsets { commits }).await;
        }
    }
}
