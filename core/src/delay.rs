//! Delay levels (PROTOCOL.md §9.3): how a delayed message is parked in `SCHEDULE_TOPIC_XXXX`
//! and how it is rebuilt for its real topic when it is due. Pure functions over records and
//! encoded properties; the task that delivers due messages is `shard/delay.rs`, the progress
//! table `meta/delay_offsets.rs`.
//!
//! Timer messages (5.x, `TIMER_DELAY_SEC` / `TIMER_DELAY_MS` / `TIMER_DELIVER_MS`) are parked
//! the same way in `rmq_sys_wheel_timer` queue 0 with their due time in `TIMER_OUT_MS`
//! ([`to_timer`]); `shard/timer.rs` delivers them through the timer index
//! (`ferromq_store::timer`), and [`restored`] rebuilds them as it does delayed ones.
//!
//! A message sent with `DELAY = n > 0` (levels above the configured count are clamped to the
//! last) is stored in queue `n − 1` of `SCHEDULE_TOPIC_XXXX` with `REAL_TOPIC` / `REAL_QID`
//! naming where it belongs. Every record of one level has the same delay, so each level's queue
//! is due in order: the deliverer only ever waits for the head of its queue.

use ferromq_store::QueueId;
use ferromq_store::record::{MessageInput, PropertySummary, RecordView, property_pairs};

use crate::message::{copy_of, end_with_separator, push_property, rebuild_properties};
use crate::meta::topics::{SCHEDULE_TOPIC, TIMER_QUEUE, TIMER_TOPIC};

/// Delay level (1-based) of a scheduled message.
pub const PROPERTY_DELAY: &str = "DELAY";
/// The topic a scheduled message is delivered to.
pub const PROPERTY_REAL_TOPIC: &str = "REAL_TOPIC";
/// The queue a scheduled message is delivered to.
pub const PROPERTY_REAL_QUEUE_ID: &str = "REAL_QID";
/// `WAIT=false`: broker-internal writes do not wait for flush or replication (§7.1).
pub const PROPERTY_WAIT: &str = "WAIT";
/// The timer properties (arbitrary delays): 5.x's three, and the start-deliver time.
pub const TIMER_PROPERTIES: [&str; 4] =
    [PROPERTY_TIMER_DELIVER_MS, PROPERTY_TIMER_DELAY_SEC, PROPERTY_TIMER_DELAY_MS, PROPERTY_START_DELIVER_TIME];
/// Absolute due time in epoch ms set by OpenMessaging's RocketMQ adapter (`START_TIME`) and
/// Aliyun's clients (`setStartDeliverTime`). Apache's Java broker stores such a message without
/// delaying it (only its metrics call it a delay); FerroMQ delays it as `TIMER_DELIVER_MS`, so
/// that no producer believes a message is delayed when it is not.
pub const PROPERTY_START_DELIVER_TIME: &str = "__STARTDELIVERTIME";
/// Absolute due time in epoch ms.
pub const PROPERTY_TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
/// Delay in seconds from the broker's receipt.
pub const PROPERTY_TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
/// Delay in ms from the broker's receipt.
pub const PROPERTY_TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
/// 5.x: marks a send as the cancellation of the pending timer message with this unique key
/// (refused: FerroMQ cannot cancel one).
pub const PROPERTY_TIMER_DEL_UNIQKEY: &str = "TIMER_DEL_UNIQKEY";
/// The due time (epoch ms) the broker stamps on a parked timer message, as Java does; it stays
/// on the delivered message.
pub const PROPERTY_TIMER_OUT_MS: &str = "TIMER_OUT_MS";

/// A send's timer properties, as the send handler saw them (the last value of each).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TimerProperties<'a> {
    pub delay_sec: Option<&'a str>,
    pub delay_ms: Option<&'a str>,
    pub deliver_ms: Option<&'a str>,
    pub start_deliver_ms: Option<&'a str>,
}

impl<'a> TimerProperties<'a> {
    /// Records `name = value` if it is a timer property.
    pub fn note(&mut self, name: &str, value: &'a str) -> bool {
        match name {
            PROPERTY_TIMER_DELAY_SEC => self.delay_sec = Some(value),
            PROPERTY_TIMER_DELAY_MS => self.delay_ms = Some(value),
            PROPERTY_TIMER_DELIVER_MS => self.deliver_ms = Some(value),
            PROPERTY_START_DELIVER_TIME => self.start_deliver_ms = Some(value),
            _ => return false,
        }
        true
    }

    /// The first timer property present (for error messages).
    pub fn name(&self) -> Option<&'static str> {
        if self.delay_sec.is_some() {
            Some(PROPERTY_TIMER_DELAY_SEC)
        } else if self.delay_ms.is_some() {
            Some(PROPERTY_TIMER_DELAY_MS)
        } else if self.deliver_ms.is_some() {
            Some(PROPERTY_TIMER_DELIVER_MS)
        } else if self.start_deliver_ms.is_some() {
            Some(PROPERTY_START_DELIVER_TIME)
        } else {
            None
        }
    }

    /// The due time (epoch ms) they ask for at `now_ms`: `TIMER_DELAY_SEC` first, then
    /// `TIMER_DELAY_MS`, then `TIMER_DELIVER_MS` (Java reads the first and the last in that
    /// order), then `__STARTDELIVERTIME`. `Ok(None)` without any; `Err` names a value that is
    /// not an integer.
    pub fn due_ms(&self, now_ms: i64) -> Result<Option<i64>, String> {
        let parse = |name: &str, v: &str| v.trim().parse::<i64>().map_err(|_| format!("{name}={v:?} is not an integer"));
        if let Some(v) = self.delay_sec {
            return Ok(Some(now_ms.saturating_add(parse(PROPERTY_TIMER_DELAY_SEC, v)?.saturating_mul(1000))));
        }
        if let Some(v) = self.delay_ms {
            return Ok(Some(now_ms.saturating_add(parse(PROPERTY_TIMER_DELAY_MS, v)?)));
        }
        if let Some(v) = self.deliver_ms {
            return Ok(Some(parse(PROPERTY_TIMER_DELIVER_MS, v)?));
        }
        match self.start_deliver_ms {
            Some(v) => Ok(Some(parse(PROPERTY_START_DELIVER_TIME, v)?)),
            None => Ok(None),
        }
    }
}

/// Parks `msg` in the timer topic until `due_ms`: queue 0 of `rmq_sys_wheel_timer`, with
/// `TIMER_OUT_MS` = `due_ms` and `REAL_TOPIC` / `REAL_QID` naming its destination (appended:
/// the last duplicate wins for every reader).
pub fn to_timer(msg: &mut MessageInput, due_ms: i64) {
    let real_queue = msg.queue_id.to_string();
    let mut properties = std::mem::take(&mut msg.properties);
    end_with_separator(&mut properties);
    push_property(&mut properties, PROPERTY_TIMER_OUT_MS, &due_ms.to_string());
    push_property(&mut properties, PROPERTY_REAL_TOPIC, &msg.topic);
    push_property(&mut properties, PROPERTY_REAL_QUEUE_ID, &real_queue);
    msg.summary = Some(PropertySummary::scan(&properties));
    msg.properties = properties;
    msg.topic = TIMER_TOPIC.into();
    msg.queue_id = TIMER_QUEUE;
}

/// The due time a parked timer record carries (`TIMER_OUT_MS`), if readable.
pub fn timer_out_ms(view: &RecordView<'_>) -> Option<i64> {
    let mut out = None;
    for (name, value) in property_pairs(view.properties) {
        if name == PROPERTY_TIMER_OUT_MS {
            out = value.trim().parse::<i64>().ok();
        }
    }
    out
}

/// The queue of `SCHEDULE_TOPIC_XXXX` that holds `level`.
pub fn schedule_queue(level: u32) -> QueueId {
    QueueId(level.saturating_sub(1))
}

/// The delay level a `DELAY` property value asks for: `None` for absent, unparsable or ≤ 0
/// (not delayed, as Java reads it), else clamped to `max_level`.
pub fn requested_level(value: Option<&str>, max_level: u32) -> Option<u32> {
    let level = value?.trim().parse::<i64>().ok().filter(|l| *l > 0)?;
    Some(u32::try_from(level).unwrap_or(u32::MAX).min(max_level))
}

/// Parks `msg` in `SCHEDULE_TOPIC_XXXX`: queue `level − 1`, with `REAL_TOPIC` / `REAL_QID`
/// naming its destination (appended, so a client-sent value of either is overridden for every
/// reader — the last duplicate wins).
pub fn to_scheduled(msg: &mut MessageInput, level: u32) {
    let real_queue = msg.queue_id.to_string();
    let mut properties = std::mem::take(&mut msg.properties);
    end_with_separator(&mut properties);
    push_property(&mut properties, PROPERTY_REAL_TOPIC, &msg.topic);
    push_property(&mut properties, PROPERTY_REAL_QUEUE_ID, &real_queue);
    msg.summary = Some(PropertySummary::scan(&properties));
    msg.properties = properties;
    msg.topic = SCHEDULE_TOPIC.into();
    msg.queue_id = schedule_queue(level);
}

/// When a scheduled record stored at `store_timestamp_ms` is due: its store time plus the
/// level's delay, but never later than `now_ms + delay_ms` (a clock set back must not hold a
/// message for longer than its delay, as Java clamps it).
pub fn due_ms(store_timestamp_ms: i64, delay_ms: u64, now_ms: i64) -> i64 {
    let delay = i64::try_from(delay_ms).unwrap_or(i64::MAX);
    store_timestamp_ms.saturating_add(delay).min(now_ms.saturating_add(delay))
}

/// Why a scheduled record cannot be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("it has no {PROPERTY_REAL_TOPIC} property")]
    NoRealTopic,
    #[error("its {PROPERTY_REAL_QUEUE_ID} property {0:?} is not a queue id")]
    BadRealQueue(String),
}

/// The message a due scheduled or timer record becomes (§9.3): its real topic and queue, the
/// original body, flag, sysflag, born and store hosts, born time and reconsume count; its
/// properties without `DELAY` and the timer request properties and with `WAIT=false`.
/// `REAL_TOPIC`, `REAL_QID` and `TIMER_OUT_MS` stay, as Java keeps them.
pub fn restored(view: &RecordView<'_>) -> Result<MessageInput, RestoreError> {
    let mut real_topic = None;
    let mut real_queue = None;
    for (name, value) in property_pairs(view.properties) {
        match name {
            PROPERTY_REAL_TOPIC => real_topic = Some(value),
            PROPERTY_REAL_QUEUE_ID => real_queue = Some(value),
            _ => {}
        }
    }
    let topic = real_topic.filter(|t| !t.is_empty()).ok_or(RestoreError::NoRealTopic)?;
    let queue = real_queue.unwrap_or("");
    let queue_id = queue.trim().parse::<i32>().ok().and_then(|q| QueueId::try_from(q).ok()).ok_or_else(|| RestoreError::BadRealQueue(queue.to_owned()))?;
    let drop = [PROPERTY_DELAY, PROPERTY_WAIT, TIMER_PROPERTIES[0], TIMER_PROPERTIES[1], TIMER_PROPERTIES[2], TIMER_PROPERTIES[3]];
    let properties = rebuild_properties(view.properties, &drop, &[(PROPERTY_WAIT, "false")]);
    Ok(copy_of(view, topic, queue_id, properties))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use ferromq_store::ClientPhysicalOffset;
    use ferromq_store::record::{Properties, StoreAssigned, decode_record, encode_record};

    fn assigned() -> StoreAssigned {
        StoreAssigned { queue_offset: 0, physical_offset: ClientPhysicalOffset(0), store_timestamp_ms: 5 }
    }

    #[test]
    fn levels_are_read_as_java_reads_them() {
        assert_eq!(requested_level(None, 18), None);
        assert_eq!(requested_level(Some("0"), 18), None);
        assert_eq!(requested_level(Some("-1"), 18), None);
        assert_eq!(requested_level(Some("x"), 18), None);
        assert_eq!(requested_level(Some("3"), 18), Some(3));
        assert_eq!(requested_level(Some("40"), 18), Some(18));
        assert_eq!(schedule_queue(1), QueueId(0));
    }

    #[test]
    fn due_time_is_store_time_plus_delay_clamped_to_now_plus_delay() {
        assert_eq!(due_ms(1_000, 500, 1_100), 1_500);
        // The clock went back: due no later than now + delay.
        assert_eq!(due_ms(10_000, 500, 2_000), 2_500);
    }

    #[test]
    fn a_scheduled_message_is_restored_to_its_real_queue() {
        let mut props = Properties::new();
        props.insert("TAGS", "t");
        props.insert(PROPERTY_DELAY, "2");
        props.insert("KEYS", "k1");
        let mut msg = MessageInput::simple("Real", QueueId(3), &b"body"[..], &props);
        msg.reconsume_times = 2;
        to_scheduled(&mut msg, 2);
        assert_eq!((&*msg.topic, msg.queue_id), (SCHEDULE_TOPIC, QueueId(1)));
        let mut bytes = Vec::new();
        encode_record(&msg, assigned(), &mut bytes).unwrap();
        let view = decode_record(&bytes, true).unwrap();
        let back = restored(&view).unwrap();
        assert_eq!((&*back.topic, back.queue_id, back.reconsume_times), ("Real", QueueId(3), 2));
        assert_eq!(&back.body[..], b"body");
        let p = Properties::decode(&back.properties);
        assert_eq!(p.get("TAGS"), Some("t"));
        assert_eq!(p.get("KEYS"), Some("k1"));
        assert_eq!(p.get(PROPERTY_DELAY), None);
        assert_eq!(p.get(PROPERTY_WAIT), Some("false"));
        assert_eq!(p.get(PROPERTY_REAL_TOPIC), Some("Real"));
        assert_eq!(p.get(PROPERTY_REAL_QUEUE_ID), Some("3"));
        assert_eq!(back.summary.as_ref().map(|s| s.no_wait), Some(true));
    }

    #[test]
    fn timer_properties_are_read_as_java_reads_them() {
        let t = |sec, ms, at| TimerProperties { delay_sec: sec, delay_ms: ms, deliver_ms: at, start_deliver_ms: None };
        assert_eq!(t(None, None, None).due_ms(1_000), Ok(None));
        // The start-deliver time comes last, and is an absolute time as TIMER_DELIVER_MS.
        let start = |at| TimerProperties { start_deliver_ms: Some(at), ..TimerProperties::default() };
        assert_eq!(start("88").due_ms(1_000), Ok(Some(88)));
        assert_eq!(start("88").name(), Some(PROPERTY_START_DELIVER_TIME));
        assert_eq!(TimerProperties { deliver_ms: Some("77"), ..start("88") }.due_ms(1_000), Ok(Some(77)));
        assert!(start("soon").due_ms(0).unwrap_err().contains("__STARTDELIVERTIME"));
        assert_eq!(t(Some("5"), Some("1"), Some("9")).due_ms(1_000), Ok(Some(6_000)));
        assert_eq!(t(None, Some("250"), Some("9")).due_ms(1_000), Ok(Some(1_250)));
        assert_eq!(t(None, None, Some("77")).due_ms(1_000), Ok(Some(77)));
        assert!(t(Some("x"), None, None).due_ms(0).unwrap_err().contains("TIMER_DELAY_SEC"));
        assert_eq!(t(None, None, Some("1")).name(), Some("TIMER_DELIVER_MS"));
    }

    #[test]
    fn a_timer_message_is_parked_with_its_due_time_and_restored_without_its_request() {
        let mut props = Properties::new();
        props.insert("TAGS", "t");
        props.insert(PROPERTY_TIMER_DELAY_SEC, "3");
        let mut msg = MessageInput::simple("Real", QueueId(2), &b"body"[..], &props);
        to_timer(&mut msg, 123_456);
        assert_eq!((&*msg.topic, msg.queue_id), (TIMER_TOPIC, TIMER_QUEUE));
        let mut bytes = Vec::new();
        encode_record(&msg, assigned(), &mut bytes).unwrap();
        let view = decode_record(&bytes, true).unwrap();
        assert_eq!(timer_out_ms(&view), Some(123_456));
        let back = restored(&view).unwrap();
        assert_eq!((&*back.topic, back.queue_id), ("Real", QueueId(2)));
        let p = Properties::decode(&back.properties);
        assert_eq!(p.get(PROPERTY_TIMER_DELAY_SEC), None, "delivered once, not parked again");
        assert_eq!(p.get(PROPERTY_TIMER_OUT_MS), Some("123456"));
        assert_eq!(p.get("TAGS"), Some("t"));
    }

    #[test]
    fn records_without_a_destination_are_refused() {
        let msg = MessageInput::simple(SCHEDULE_TOPIC, QueueId(0), &b"b"[..], &Properties::new());
        let mut bytes = Vec::new();
        encode_record(&msg, assigned(), &mut bytes).unwrap();
        assert_eq!(restored(&decode_record(&bytes, true).unwrap()), Err(RestoreError::NoRealTopic));
    }
}
