//! Queue ownership and cross-shard calls.
//!
//! Each message queue (topic, queueId) belongs to exactly one shard, [`owner_of`]; only the
//! owner appends to, reads from, or holds pulls for it. Work for another shard travels as a
//! [`ShardJob`] through that shard's bounded mailbox ([`Router::invoke_on`]); the result comes
//! back over a oneshot to the calling shard. A full mailbox is [`RouteError::Busy`] at once
//! (the handler answers SYSTEM_BUSY), never a wait without bound. The mailbox's other end is the
//! shard's executor (`executor.rs`), which also caps how many jobs run at once.
//!
//! The router is generic over the shard context `C`, so this file does not depend on what a
//! shard holds.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use ferromq_store::{QueueId, ShardId};
use futures_channel::oneshot;

use super::executor::{JobSlot, ShardJob};


/// Why a cross-shard call did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("shard {0} is busy (its mailbox is full)")]
    Busy(u16),
    #[error("shard {0} has stopped")]
    Stopped(u16),
}

/// The mailboxes of every shard. Cheap to clone; `Send`.
pub struct Router<C> {
    mailboxes: Arc<Vec<async_channel::Sender<ShardJob<C>>>>,
}

impl<C> Clone for Router<C> {
    fn clone(&self) -> Self {
        Router { mailboxes: self.mailboxes.clone() }
    }
}

impl<C: 'static> Router<C> {
    pub fn new(mailboxes: Vec<async_channel::Sender<ShardJob<C>>>) -> Router<C> {
        Router { mailboxes: Arc::new(mailboxes) }
    }

    pub fn shard_count(&self) -> u16 {
        self.mailboxes.len() as u16
    }

    /// The shard that owns (topic, queueId).
    pub fn owner(&self, topic: &str, queue_id: QueueId) -> ShardId {
        owner_of(topic, queue_id, self.shard_count())
    }

    /// Runs `job` on `shard` and returns its result. On the calling shard itself (`here`) the
    /// job runs inline, without a mailbox hop and outside the executor's cap.
    pub async fn invoke_on<T, F, Fut>(&self, here: (ShardId, &Rc<C>), shard: ShardId, job: F) -> Result<T, RouteError>
    where
        T: Send + 'static,
        F: FnOnce(Rc<C>, JobSlot) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        if shard == here.0 {
            return Ok(job(here.1.clone(), JobSlot::inline()).await);
        }
        let index = u16::from(shard.0);
        let (done, result) = oneshot::channel();
        let boxed: ShardJob<C> = Box::new(move |ctx, slot| {
            Box::pin(async move {
                let _ = done.send(job(ctx, slot).await);
            })
        });
        self.post(index, boxed)?;
        result.await.map_err(|_| RouteError::Stopped(index))
    }

    /// Posts `job` to `shard` without waiting for it.
    pub fn post(&self, shard: u16, job: ShardJob<C>) -> Result<(), RouteError> {
        let mailbox = self.mailboxes.get(usize::from(shard)).ok_or(RouteError::Stopped(shard))?;
        mailbox.try_send(job).map_err(|e| if e.is_full() { RouteError::Busy(shard) } else { RouteError::Stopped(shard) })
    }

    /// Closes every mailbox: shards finish what they have and take no more work.
    pub fn close(&self) {
        for mailbox in self.mailboxes.iter() {
            mailbox.close();
        }
    }
}

/// Owner shard of (topic, queueId): Java's `String.hashCode` of the topic (stable and
/// documented) mixed with the queue id, modulo the shard count, so that the queues of one
/// topic spread over the shards. The shard count is pinned by the store directory
/// (`broker::pin_shard_count`), so owners never change under existing data.
pub fn owner_of(topic: &str, queue_id: QueueId, shards: u16) -> ShardId {
    let shards = u64::from(shards.max(1));
    let topic_hash = u64::from(ferromq_store::record::java_string_hash(topic) as u32);
    let mixed = topic_hash.wrapping_mul(31).wrapping_add(u64::from(queue_id.0));
    ShardId((mixed % shards) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_stable_and_spread() {
        assert_eq!(owner_of("TopicTest", QueueId(3), 1), ShardId(0));
        let owners: std::collections::BTreeSet<u8> = (0..16).map(|q| owner_of("TopicTest", QueueId(q), 4).0).collect();
        assert_eq!(owners.len(), 4, "16 queues of one topic use all 4 shards");
        assert_eq!(owner_of("TopicTest", QueueId(5), 4), owner_of("TopicTest", QueueId(5), 4));
    }
}
