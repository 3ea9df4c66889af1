//! Pulls held by long polling (PROTOCOL.md §2.2): a pull that finds nothing new waits on its
//! queue's owner shard until new entries of the queue become visible or its suspension ends.
//!
//! Bounded by `maxHeldPullsPerShard`: beyond it a pull is not held (the caller answers at once
//! and the client pulls again). Shard-resident: one [`HeldPulls`] per shard, on its thread.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use ferromq_store::QueueId;
use futures_channel::oneshot;

/// What a held pull woke up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// New entries of the queue became visible.
    Arrived,
    /// The deadline passed.
    TimedOut,
    /// The limit of held pulls is reached, or the shard is stopping: not held at all.
    Refused,
}

/// topic → queue id → waiters. Two levels so that a lookup by `&str` allocates nothing: the
/// store reports every queue that got entries, on every dispatch round.
type Waiters = HashMap<String, HashMap<QueueId, Vec<oneshot::Sender<()>>>>;

/// Pulls waiting for messages, per queue.
pub struct HeldPulls {
    waiters: RefCell<Waiters>,
    held: Cell<usize>,
    max_held: usize,
    /// Set by [`HeldPulls::stop`] at shutdown: nothing is held any more.
    stopping: Cell<bool>,
}

impl HeldPulls {
    pub fn new(max_held: usize) -> HeldPulls {
        HeldPulls { waiters: RefCell::new(HashMap::new()), held: Cell::new(0), max_held, stopping: Cell::new(false) }
    }

    /// Waits until messages arrive for (topic, queueId) or `deadline` passes.
    pub async fn wait(&self, topic: &str, queue_id: QueueId, deadline: Instant) -> Wake {
        if self.stopping.get() || self.held.get() >= self.max_held {
            return Wake::Refused;
        }
        let (wake, woken) = oneshot::channel();
        {
            let mut waiters = self.waiters.borrow_mut();
            match waiters.get_mut(topic) {
                Some(queues) => queues.entry(queue_id).or_default().push(wake),
                None => {
                    waiters.entry(topic.to_owned()).or_default().entry(queue_id).or_default().push(wake);
                }
            }
        }
        self.held.set(self.held.get() + 1);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let outcome = match compio::time::timeout(remaining, woken).await {
            Ok(_) => Wake::Arrived,
            Err(_) => Wake::TimedOut,
        };
        self.held.set(self.held.get().saturating_sub(1));
        if outcome == Wake::TimedOut {
            // Drop our closed sender so the lists do not grow with dead waiters.
            let mut waiters = self.waiters.borrow_mut();
            if let Some(queues) = waiters.get_mut(topic) {
                if let Some(list) = queues.get_mut(&queue_id) {
                    list.retain(|w| !w.is_canceled());
                    if list.is_empty() {
                        queues.remove(&queue_id);
                    }
                }
                if queues.is_empty() {
                    waiters.remove(topic);
                }
            }
        }
        outcome
    }

    /// Wakes every pull held on (topic, queueId). Costs one empty-map check when nothing is held.
    pub fn notify(&self, topic: &str, queue_id: QueueId) {
        let woken = {
            let mut waiters = self.waiters.borrow_mut();
            if waiters.is_empty() {
                return;
            }
            let Some(queues) = waiters.get_mut(topic) else { return };
            let woken = queues.remove(&queue_id);
            if queues.is_empty() {
                waiters.remove(topic);
            }
            woken
        };
        for waiter in woken.into_iter().flatten() {
            let _ = waiter.send(());
        }
    }

    /// Shutdown: wakes every held pull and holds no new one, so that parked pulls answer at
    /// once instead of outliving the shutdown.
    pub fn stop(&self) {
        self.stopping.set(true);
        let woken: Vec<_> = self.waiters.borrow_mut().drain().collect();
        for waiter in woken.into_iter().flat_map(|(_, queues)| queues.into_values().flatten()) {
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
    use std::rc::Rc;

    use super::*;

    #[test]
    fn notify_wakes_only_its_queue_and_the_limit_refuses() {
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let held = Rc::new(HeldPulls::new(2));
            let deadline = Instant::now() + Duration::from_secs(5);
            let a = compio::runtime::spawn({
                let held = held.clone();
                async move { held.wait("T", QueueId(0), deadline).await }
            });
            let b = compio::runtime::spawn({
                let held = held.clone();
                async move { held.wait("T", QueueId(1), Instant::now() + Duration::from_millis(50)).await }
            });
            compio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(held.held(), 2);
            assert_eq!(held.wait("U", QueueId(0), deadline).await, Wake::Refused, "over the limit");
            held.notify("T", QueueId(0));
            assert_eq!(a.await.unwrap(), Wake::Arrived);
            assert_eq!(b.await.unwrap(), Wake::TimedOut);
            assert!(held.waiters.borrow().is_empty(), "timed-out waiters are cleaned up");
            held.stop();
            assert_eq!(held.wait("T", QueueId(0), deadline).await, Wake::Refused);
        });
    }
}
