//! Transactional messages (PROTOCOL.md §10): how a half message is parked in
//! `RMQ_SYS_TRANS_HALF_TOPIC`, what a commit writes to the real topic, the op records that
//! mark a half message resolved, and the CHECK_TRANSACTION_STATE request. Pure functions over
//! records and properties; the END_TRANSACTION handler is `handlers/end_transaction.rs`, the
//! check-back task `shard/transaction.rs`.

use bytes::Bytes;
use ferromq_net::RemotingCommand;
use ferromq_net::codes::request_code;
use ferromq_store::{ClientPhysicalOffset, QueueId};
use ferromq_store::record::{MessageInput, PropertySummary, RecordView, StoreAssigned, encode_record, property_pairs, sysflag};

use crate::delay::{PROPERTY_REAL_QUEUE_ID, PROPERTY_REAL_TOPIC, PROPERTY_WAIT};
use crate::message::{copy_of, end_with_separator, push_property, rebuild_properties};
use crate::meta::topics::{TRANS_CHECK_MAX_TIME_TOPIC, TRANS_HALF_TOPIC, TRANS_OP_HALF_TOPIC};

/// `TRAN_MSG=true`: a half message.
pub const PROPERTY_TRANSACTION_PREPARED: &str = "TRAN_MSG";
/// The producer group that sent a half message (and answers its checks).
pub const PROPERTY_PRODUCER_GROUP: &str = "PGROUP";
/// `__transactionId__`: the half message's UNIQ_KEY.
pub const PROPERTY_TRANSACTION_ID: &str = "__transactionId__";
/// How often a half message was checked back.
pub const PROPERTY_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
/// A producer's own minimum age before the first check, in seconds.
pub const PROPERTY_CHECK_IMMUNITY_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
/// The tag of op records.
pub const OP_TAG: &str = "d";
/// The internal consumer group whose offsets on the half and op queues record the checker's
/// progress (as in Java).
pub const CHECKER_GROUP: &str = "CID_RMQ_SYS_TRANS";
/// The queue of the half and op topics (one each).
pub const HALF_QUEUE: QueueId = QueueId(0);

/// END_TRANSACTION's `commitOrRollback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// 0: the producer does not know yet; a check-back will ask again.
    Unknown,
    Commit,
    Rollback,
}

impl Resolution {
    pub fn from_code(code: i32) -> Option<Resolution> {
        match code {
            sysflag::TRANSACTION_NOT_TYPE => Some(Resolution::Unknown),
            sysflag::TRANSACTION_COMMIT => Some(Resolution::Commit),
            sysflag::TRANSACTION_ROLLBACK => Some(Resolution::Rollback),
            _ => None,
        }
    }
}

/// Parks a half message (§10.2 step 1): `RMQ_SYS_TRANS_HALF_TOPIC` queue 0, `REAL_TOPIC` /
/// `REAL_QID` / `__transactionId__` added, transaction type cleared so that the half queue
/// gets an entry.
pub fn to_half(msg: &mut MessageInput, uniq_key: &str) {
    let real_queue = msg.queue_id.to_string();
    let mut properties = std::mem::take(&mut msg.properties);
    end_with_separator(&mut properties);
    push_property(&mut properties, PROPERTY_REAL_TOPIC, &msg.topic);
    push_property(&mut properties, PROPERTY_REAL_QUEUE_ID, &real_queue);
    push_property(&mut properties, PROPERTY_TRANSACTION_ID, uniq_key);
    msg.summary = Some(PropertySummary::scan(&properties));
    msg.properties = properties;
    msg.topic = TRANS_HALF_TOPIC.into();
    msg.queue_id = HALF_QUEUE;
    msg.sys_flag &= !sysflag::TRANSACTION_MASK;
}

/// What a half record says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HalfInfo {
    pub real_topic: String,
    pub real_queue_id: QueueId,
    pub producer_group: String,
    pub uniq_key: String,
    pub check_times: u32,
    pub immunity_ms: Option<u64>,
}

/// Reads a half record's properties; `Err` names what is missing.
pub fn half_info(view: &RecordView<'_>) -> Result<HalfInfo, String> {
    let (mut topic, mut queue, mut group, mut uniq, mut times, mut immunity) = (None, None, None, None, None, None);
    for (name, value) in property_pairs(view.properties) {
        match name {
            PROPERTY_REAL_TOPIC => topic = Some(value),
            PROPERTY_REAL_QUEUE_ID => queue = Some(value),
            PROPERTY_PRODUCER_GROUP => group = Some(value),
            "UNIQ_KEY" => uniq = Some(value),
            PROPERTY_CHECK_TIMES => times = Some(value),
            PROPERTY_CHECK_IMMUNITY_SECONDS => immunity = Some(value),
            _ => {}
        }
    }
    let real_topic = topic.filter(|t| !t.is_empty()).ok_or("the half message has no REAL_TOPIC")?.to_owned();
    let real_queue_id = queue.and_then(|q| q.trim().parse::<i32>().ok()).and_then(|q| QueueId::try_from(q).ok()).ok_or("the half message has no valid REAL_QID")?;
    Ok(HalfInfo {
        real_topic,
        real_queue_id,
        producer_group: group.unwrap_or("").to_owned(),
        uniq_key: uniq.unwrap_or("").to_owned(),
        check_times: times.and_then(|t| t.trim().parse().ok()).unwrap_or(0),
        immunity_ms: immunity.and_then(|s| s.trim().parse::<u64>().ok()).map(|s| s.saturating_mul(1000)),
    })
}

/// The message a commit writes (§10.2 step 4): the real topic and queue, `REAL_TOPIC`,
/// `REAL_QID` and `TRAN_MSG` removed, `WAIT=false`, transaction type COMMIT and the half's
/// physical offset as PREPARED_TRANSACTION_OFFSET.
pub fn committed(view: &RecordView<'_>, info: &HalfInfo) -> MessageInput {
    let properties = rebuild_properties(
        view.properties,
        &[PROPERTY_REAL_TOPIC, PROPERTY_REAL_QUEUE_ID, PROPERTY_TRANSACTION_PREPARED, PROPERTY_WAIT],
        &[(PROPERTY_WAIT, "false")],
    );
    MessageInput {
        sys_flag: (view.sys_flag & !sysflag::TRANSACTION_MASK) | sysflag::TRANSACTION_COMMIT,
        prepared_transaction_offset: view.physical_offset,
        ..copy_of(view, &info.real_topic, info.real_queue_id, properties)
    }
}

/// The op record that marks half queue offset `half_queue_offset` resolved (§10.2 step 5).
pub fn op_record(half_queue_offset: u64, store_host: std::net::SocketAddr) -> MessageInput {
    let mut properties = Vec::new();
    push_property(&mut properties, "TAGS", OP_TAG);
    push_property(&mut properties, PROPERTY_WAIT, "false");
    MessageInput {
        topic: TRANS_OP_HALF_TOPIC.into(),
        queue_id: HALF_QUEUE,
        flag: 0,
        body: Bytes::from(format!("{half_queue_offset},")),
        summary: Some(PropertySummary::scan(&properties)),
        properties,
        sys_flag: 0,
        born_timestamp_ms: ferromq_store::store::now_ms(),
        born_host: store_host,
        store_host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

/// The half queue offsets an op record's body names (`"12,"`, or 5.x `"12,13,"`).
pub fn op_offsets(body: &[u8]) -> impl Iterator<Item = u64> + '_ {
    body.split(|b| *b == b',').filter_map(|piece| std::str::from_utf8(piece).ok()?.trim().parse().ok())
}

/// The half message again, for a check (its `TRANSACTION_CHECK_TIMES` incremented, `WAIT=false`),
/// or for the discard topic.
pub fn half_copy(view: &RecordView<'_>, topic: &str, check_times: u32) -> MessageInput {
    let times = check_times.to_string();
    let properties = rebuild_properties(view.properties, &[PROPERTY_CHECK_TIMES, PROPERTY_WAIT], &[(PROPERTY_CHECK_TIMES, &times), (PROPERTY_WAIT, "false")]);
    copy_of(view, topic, HALF_QUEUE, properties)
}

/// A discarded half message's copy for `TRANS_CHECK_MAX_TIME_TOPIC`.
pub fn discarded(view: &RecordView<'_>, check_times: u32) -> MessageInput {
    half_copy(view, TRANS_CHECK_MAX_TIME_TOPIC, check_times)
}

/// CHECK_TRANSACTION_STATE (39, one-way) for the half message `copy` stored at `queue_offset` /
/// `physical_offset` (§2.4): the body is the message in the stored-record layout with its real
/// topic and queue, which the client decodes to find PGROUP and UNIQ_KEY.
pub fn check_request(copy: &MessageInput, info: &HalfInfo, queue_offset: u64, physical_offset: ClientPhysicalOffset, store_timestamp_ms: i64) -> RemotingCommand {
    let real = MessageInput { topic: info.real_topic.as_str().into(), queue_id: info.real_queue_id, ..copy.clone() };
    let mut body = Vec::new();
    let assigned = StoreAssigned { queue_offset, physical_offset, store_timestamp_ms };
    // A record that encoded once (the copy was just stored) encodes again; an error leaves the
    // body empty, which the client logs.
    let _ = encode_record(&real, assigned, &mut body);
    let offset_msg_id = ferromq_store::record::offset_msg_id(&copy.store_host, physical_offset);
    RemotingCommand::request(request_code::CHECK_TRANSACTION_STATE)
        .with_ext("topic", &info.real_topic)
        .with_ext("tranStateTableOffset", queue_offset)
        .with_ext("commitLogOffset", physical_offset.0)
        .with_ext("msgId", &info.uniq_key)
        .with_ext("transactionId", &info.uniq_key)
        .with_ext("offsetMsgId", &offset_msg_id)
        .with_body(body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use ferromq_store::record::{Properties, decode_record};

    fn stored(msg: &MessageInput, physical: i64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(msg, StoreAssigned { queue_offset: 4, physical_offset: ClientPhysicalOffset(physical), store_timestamp_ms: 9 }, &mut out).unwrap();
        out
    }

    #[test]
    fn a_half_message_commits_to_its_real_queue() {
        let mut props = Properties::new();
        props.insert(PROPERTY_TRANSACTION_PREPARED, "true");
        props.insert(PROPERTY_PRODUCER_GROUP, "pg");
        props.insert("UNIQ_KEY", "U1");
        props.insert("TAGS", "t");
        let mut msg = MessageInput::simple("Pay", QueueId(2), &b"x"[..], &props);
        msg.sys_flag = sysflag::TRANSACTION_PREPARED;
        to_half(&mut msg, "U1");
        assert_eq!((&*msg.topic, msg.queue_id, msg.sys_flag), (TRANS_HALF_TOPIC, HALF_QUEUE, 0));
        let bytes = stored(&msg, 777);
        let view = decode_record(&bytes, true).unwrap();
        let info = half_info(&view).unwrap();
        assert_eq!((info.real_topic.as_str(), info.real_queue_id, info.producer_group.as_str(), info.check_times), ("Pay", QueueId(2), "pg", 0));
        let done = committed(&view, &info);
        assert_eq!((&*done.topic, done.queue_id, done.prepared_transaction_offset), ("Pay", QueueId(2), 777));
        assert_eq!(done.sys_flag & sysflag::TRANSACTION_MASK, sysflag::TRANSACTION_COMMIT);
        let p = Properties::decode(&done.properties);
        assert_eq!((p.get(PROPERTY_TRANSACTION_PREPARED), p.get(PROPERTY_REAL_TOPIC), p.get("TAGS")), (None, None, Some("t")));
        assert!(done.is_dispatched());
        // A check copy counts its checks; the check carries the real topic.
        let copy = half_copy(&view, TRANS_HALF_TOPIC, 1);
        let check = check_request(&copy, &info, 5, ClientPhysicalOffset(900), 10);
        assert_eq!(check.ext("tranStateTableOffset"), Some("5"));
        let body = decode_record(&check.body, false).unwrap();
        assert_eq!((body.topic, body.queue_id), ("Pay", QueueId(2)));
        assert_eq!(body.properties().get(PROPERTY_CHECK_TIMES), Some("1"));
    }

    #[test]
    fn op_bodies_name_half_offsets() {
        let op = op_record(12, "127.0.0.1:1".parse().unwrap());
        assert_eq!(&op.body[..], b"12,");
        assert_eq!(op_offsets(b"12,13,,x,").collect::<Vec<_>>(), vec![12, 13]);
        assert_eq!(Resolution::from_code(8), Some(Resolution::Commit));
        assert_eq!(Resolution::from_code(5), None);
    }
}
