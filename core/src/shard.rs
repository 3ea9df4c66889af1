//! Shards: one OS thread per shard, pinned to a core, running one compio runtime, owning one
//! [`Store`] (its own commit log) and serving the connections its SO_REUSEPORT listener
//! accepts.
//!
//! Ownership: each message queue (topic, queueId) belongs to exactly one shard, chosen by
//! [`Router::owner`]; only the owner appends to, reads from, or holds pulls for that queue.
//! A request that lands on another shard is sent to the owner over a bounded mailbox
//! ([`Router::invoke_on`]) and the reply comes back to the connection's shard. A full mailbox
//! is answered SYSTEM_BUSY by the caller, never queued without bound.
//!
//! Shard-resident: a [`ShardCtx`] lives on its shard's thread (`!Send`, shared as `Rc`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_net::conn::Connection;
use ferromq_store::io::compio_fs::CompioStorage;
use ferromq_store::{ShardId, Store};
use futures_channel::oneshot;

use crate::broker::Control;

/// The store type every shard runs.
pub type ShardStore = Store<CompioStorage>;

/// Work sent to a shard: a closure run on that shard's thread with its context.
pub type ShardJob = Box<dyn FnOnce(Rc<ShardCtx>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// Why a cross-shard call did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("shard {0} is busy (its mailbox is full)")]
    Busy(u16),
    #[error("shard {0} has stopped")]
    Stopped(u16),
}

/// Finds the owner shard of a queue and runs work there. Cheap to clone; `Send`.
#[derive(Clone)]
pub struct Router {
    mailboxes: Arc<Vec<async_channel::Sender<ShardJob>>>,
}

impl Router {
    pub fn new(mailboxes: Vec<async_channel::Sender<ShardJob>>) -> Router {
        Router { mailboxes: Arc::new(mailboxes) }
    }

    pub fn shard_count(&self) -> u16 {
        self.mailboxes.len() as u16
    }

    /// The shard that owns (topic, queueId): a deterministic function of the names, the same on
    /// every shard and across restarts with the same shard count (the count is pinned by the
    /// store directory, see `broker::pin_shard_count`).
    pub fn owner(&self, topic: &str, queue_id: u32) -> ShardId {
        owner_of(topic, queue_id, self.shard_count())
    }

    /// Runs `job` on `shard` and returns its result. On the calling shard itself the job runs
    /// inline, without a mailbox hop.
    pub async fn invoke_on<T, F, Fut>(&self, here: &Rc<ShardCtx>, shard: ShardId, job: F) -> Result<T, RouteError>
    where
        T: Send + 'static,
        F: FnOnce(Rc<ShardCtx>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        if shard == here.id {
            return Ok(job(here.clone()).await);
        }
        let index = u16::from(shard.0);
        let mailbox = self.mailboxes.get(usize::from(index)).ok_or(RouteError::Stopped(index))?;
        let (done, result) = oneshot::channel();
        let boxed: ShardJob = Box::new(move |ctx| {
            Box::pin(async move {
                let _ = done.send(job(ctx).await);
            })
        });
        mailbox.try_send(boxed).map_err(|e| if e.is_full() { RouteError::Busy(index) } else { RouteError::Stopped(index) })?;
        result.await.map_err(|_| RouteError::Stopped(index))
    }

    /// Posts `job` to `shard` without waiting for it (e.g. notifying a client on its
    /// connection's shard).
    pub fn post(&self, shard: u16, job: ShardJob) -> Result<(), RouteError> {
        let mailbox = self.mailboxes.get(usize::from(shard)).ok_or(RouteError::Stopped(shard))?;
        mailbox.try_send(job).map_err(|e| if e.is_full() { RouteError::Busy(shard) } else { RouteError::Stopped(shard) })
    }

    /// Closes every mailbox: shards finish what they have and stop taking work.
    pub fn close(&self) {
        for mailbox in self.mailboxes.iter() {
            mailbox.close();
        }
    }
}

/// Owner shard of (topic, queueId): Java's `String.hashCode` of the topic (stable and
/// documented) mixed with the queue id, modulo the shard count, so that the queues of one
/// topic spread over the shards.
pub fn owner_of(topic: &str, queue_id: u32, shards: u16) -> ShardId {
    let shards = u64::from(shards.max(1));
    let topic_hash = u64::from(ferromq_store::record::java_string_hash(topic) as u32);
    let mixed = topic_hash.wrapping_mul(31).wrapping_add(u64::from(queue_id));
    ShardId((mixed % shards) as u8)
}

/// Everything a shard owns.
pub struct ShardCtx {
    pub id: ShardId,
    pub store: ShardStore,
    pub control: Arc<Control>,
    pub router: Router,
    /// Pulls parked by long polling, by queue; woken by the store when new entries of their
    /// queue become visible.
    pub held: Rc<HeldPulls>,
    /// Open client connections on this shard, by connection id (to send them requests).
    pub connections: RefCell<HashMap<u64, Connection>>,
}

/// (topic, queueId).
type QueueKey = (String, u32);

/// Pulls waiting for messages, per queue; woken when the owner appends to the queue.
/// Bounded by `max_held`: beyond it a pull is not held (the caller answers at once).
pub struct HeldPulls {
    waiters: RefCell<HashMap<QueueKey, Vec<oneshot::Sender<()>>>>,
    held: Cell<usize>,
    max_held: usize,
    /// Set by [`HeldPulls::stop`] at shutdown: nothing is held any more.
    stopping: Cell<bool>,
}

/// What a held pull woke up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Messages were appended to the queue.
    Arrived,
    /// The deadline passed.
    TimedOut,
    /// The limit of held pulls is reached: not held at all.
    Refused,
}

impl HeldPulls {
    pub fn new(max_held: usize) -> HeldPulls {
        HeldPulls { waiters: RefCell::new(HashMap::new()), held: Cell::new(0), max_held, stopping: Cell::new(false) }
    }

    /// Waits until messages arrive for (topic, queueId) or `deadline` passes.
    pub async fn wait(&self, topic: &str, queue_id: u32, deadline: Instant) -> Wake {
        if self.stopping.get() || self.held.get() >= self.max_held {
            return Wake::Refused;
        }
        let (wake, woken) = oneshot::channel();
        self.waiters.borrow_mut().entry((topic.to_owned(), queue_id)).or_default().push(wake);
        self.held.set(self.held.get() + 1);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let outcome = match compio::time::timeout(remaining, woken).await {
            Ok(_) => Wake::Arrived,
            Err(_) => Wake::TimedOut,
        };
        self.held.set(self.held.get().saturating_sub(1));
        if outcome == Wake::TimedOut {
            // Drop our closed sender so the list does not grow with dead waiters.
            if let Some(list) = self.waiters.borrow_mut().get_mut(&(topic.to_owned(), queue_id)) {
                list.retain(|w| !w.is_canceled());
            }
        }
        outcome
    }

    /// Wakes every pull held on (topic, queueId).
    pub fn notify(&self, topic: &str, queue_id: u32) {
        let woken = self.waiters.borrow_mut().remove(&(topic.to_owned(), queue_id));
        for waiter in woken.into_iter().flatten() {
            let _ = waiter.send(());
        }
    }

    /// Shutdown: wakes every held pull and holds no new one, so that parked pulls (up to
    /// [`MAX_PULL_SUSPEND`]) answer at once instead of outliving the shutdown grace period and
    /// keeping the store from being closed cleanly.
    pub fn stop(&self) {
        self.stopping.set(true);
        let woken: Vec<_> = self.waiters.borrow_mut().drain().collect();
        for waiter in woken.into_iter().flat_map(|(_, list)| list) {
            let _ = waiter.send(());
        }
    }

    pub fn held(&self) -> usize {
        self.held.get()
    }
}

/// How long a parked pull may wait at most, whatever the client asks: the client's own RPC
/// timeout for suspended pulls is 30 s, so the broker must answer before that.
pub const MAX_PULL_SUSPEND: Duration = Duration::from_secs(25);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_stable_and_spread() {
        assert_eq!(owner_of("TopicTest", 3, 1), ShardId(0));
        let owners: std::collections::BTreeSet<u8> = (0..16).map(|q| owner_of("TopicTest", q, 4).0).collect();
        assert_eq!(owners.len(), 4, "16 queues of one topic use all 4 shards");
        assert_eq!(owner_of("TopicTest", 5, 4), owner_of("TopicTest", 5, 4));
    }
}
