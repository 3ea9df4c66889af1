//! Per-queue state keyed by topic, then queue id: the store's consume queues and the next queue
//! offset each queue hands out.
//!
//! Keyed by topic first so that a lookup borrows the caller's `&str`: with `(String, QueueId)`
//! keys, every append and pull built an owned key to look its queue up (3–4 allocations per
//! message, heaptrack 2026-12-06). A topic's name is stored once, as an `Rc<str>` that the
//! store shares with the records it dispatches and the queues it creates, and a topic's queues
//! come out in one step when it is deleted. Iteration runs in (topic, queue id) order, as the
//! tuple keys did.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::types::QueueId;

pub(crate) struct QueueMap<V> {
    topics: BTreeMap<Rc<str>, BTreeMap<QueueId, V>>,
}

impl<V> Default for QueueMap<V> {
    fn default() -> Self {
        QueueMap { topics: BTreeMap::new() }
    }
}

impl<V> QueueMap<V> {
    pub(crate) fn get(&self, topic: &str, queue_id: QueueId) -> Option<&V> {
        self.topics.get(topic)?.get(&queue_id)
    }

    pub(crate) fn get_mut(&mut self, topic: &str, queue_id: QueueId) -> Option<&mut V> {
        self.topics.get_mut(topic)?.get_mut(&queue_id)
    }

    /// The stored name of `topic`, to share instead of copying it, and the value of its queue
    /// `queue_id`, in one lookup (`None`: no queue of the topic).
    pub(crate) fn named(&self, topic: &str, queue_id: QueueId) -> Option<(&Rc<str>, Option<&V>)> {
        self.topics.get_key_value(topic).map(|(name, queues)| (name, queues.get(&queue_id)))
    }

    /// Sets the value of (topic, queue id); returns the one it replaced.
    pub(crate) fn insert(&mut self, topic: Rc<str>, queue_id: QueueId, value: V) -> Option<V> {
        self.topics.entry(topic).or_default().insert(queue_id, value)
    }

    /// Takes every queue of `topic` out, in queue-id order.
    pub(crate) fn remove_topic(&mut self, topic: &str) -> Vec<(QueueId, V)> {
        self.topics.remove(topic).map(|queues| queues.into_iter().collect()).unwrap_or_default()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    pub(crate) fn contains_topic(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Rc<str>, QueueId, &V)> {
        self.topics.iter().flat_map(|(topic, queues)| queues.iter().map(move |(queue_id, v)| (topic, *queue_id, v)))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.topics.values().flat_map(BTreeMap::values)
    }

    pub(crate) fn clear(&mut self) {
        self.topics.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_borrow_and_iteration_runs_in_topic_then_queue_order() {
        let mut m = QueueMap::default();
        let b: Rc<str> = Rc::from("B");
        assert_eq!(m.insert(b.clone(), QueueId(2), 20), None);
        assert_eq!(m.insert(Rc::from("A"), QueueId(1), 10), None);
        assert_eq!(m.insert(b.clone(), QueueId(0), 5), None);
        assert_eq!(m.insert(Rc::from("B"), QueueId(2), 21), Some(20), "a second insert replaces");
        assert_eq!(m.get("B", QueueId(2)), Some(&21));
        assert_eq!(m.get("B", QueueId(1)), None);
        let (name, value) = m.named("B", QueueId(0)).unwrap();
        assert!(Rc::ptr_eq(name, &b) && value == Some(&5), "the first name inserted is kept and shared");
        assert!(m.named("B", QueueId(7)).unwrap().1.is_none() && m.named("C", QueueId(0)).is_none());
        *m.get_mut("A", QueueId(1)).unwrap() += 1;
        let all: Vec<(String, u32, i32)> = m.iter().map(|(t, q, v)| (t.to_string(), q.0, *v)).collect();
        assert_eq!(all, [("A".into(), 1, 11), ("B".into(), 0, 5), ("B".into(), 2, 21)]);
        assert_eq!(m.values().sum::<i32>(), 37);
        assert_eq!(m.remove_topic("B"), [(QueueId(0), 5), (QueueId(2), 21)]);
        assert!(!m.contains_topic("B") && m.contains_topic("A"));
        assert!(m.remove_topic("B").is_empty());
        m.clear();
        assert_eq!(m.iter().count(), 0);
    }
}
