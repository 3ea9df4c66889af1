//! resetOffsetByTime and cloneGroupOffset: moving a group's committed offsets
//! (INVOKE_BROKER_TO_RESET_OFFSET, UPDATE_CONSUMER_OFFSET, CLONE_GROUP_OFFSET).

use ferromq_net::RemotingCommand;
use ferromq_net::codes::request_code;

use super::consumers::Queue;
use super::format::{front, parse_timestamp};
use super::message::search_offset;
use crate::common::{Admin, AdminError, AdminResult};

/// `-s`: `now`, milliseconds, or `yyyy-MM-dd#HH:mm:ss:SSS` (local time).
pub fn reset_timestamp(text: &str) -> AdminResult<i64> {
    if text.trim() == "now" {
        return Ok(ferromq_store::store::now_ms());
    }
    parse_timestamp("-s", text)
}

/// Java's `Boolean.parseBoolean`: `true` in any case is true, anything else false.
pub fn java_bool(text: &str) -> bool {
    text.trim().eq_ignore_ascii_case("true")
}

/// ResetOffsetBody `{"offsetTable":{<MessageQueue>:<offset>,…}}`.
fn reset_table(body: &[u8]) -> AdminResult<Vec<(Queue, i64)>> {
    let entries = ferromq_net::fastjson::object_entries(body).map_err(|e| AdminError::BadAnswer(e.to_string()))?;
    let Some((_, table)) = entries.into_iter().find(|(k, _)| *k == b"\"offsetTable\"") else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (key, value) in ferromq_net::fastjson::object_entries(table).map_err(|e| AdminError::BadAnswer(e.to_string()))? {
        let key: serde_json::Value = serde_json::from_slice(key).map_err(|e| AdminError::BadAnswer(format!("a MessageQueue key: {e}")))?;
        let text = |f: &str| ferromq_net::fastjson::lenient_string(key.get(f)).unwrap_or_default();
        let queue_id = ferromq_net::fastjson::lenient_i32(key.get("queueId")).ok_or_else(|| AdminError::BadAnswer(format!("MessageQueue {key} without queueId")))?;
        let offset = std::str::from_utf8(value).ok().and_then(|v| v.trim().parse().ok()).ok_or_else(|| AdminError::BadAnswer(format!("offset of {key}")))?;
        out.push(((text("topic"), text("brokerName"), queue_id), offset));
    }
    Ok(out)
}

/// `resetOffsetByTime`. With `-b` and `-q`, one queue: its offset at the time (or `-o`) is
/// committed (UPDATE_CONSUMER_OFFSET) and pushed to the online consumers
/// (INVOKE_BROKER_TO_RESET_OFFSET for that queue). Otherwise every broker group of the topic
/// resets every queue to the first message stored at or after the time
/// (INVOKE_BROKER_TO_RESET_OFFSET; the broker commits the offsets and tells the consumers), and
/// the new offsets are listed.
#[allow(clippy::too_many_arguments)]
pub async fn reset_offset_by_time(
    admin: &Admin,
    group: &str,
    topic: &str,
    timestamp_text: &str,
    force: bool,
    broker_addr: Option<&str>,
    queue_id: Option<i32>,
    offset: Option<i64>,
) -> AdminResult<()> {
    let timestamp_ms = reset_timestamp(timestamp_text)?;
    if let (Some(addr), Some(queue_id)) = (broker_addr, queue_id.filter(|q| *q >= 0)) {
        println!(
            "start reset consumer offset by specified, group[{group}], topic[{topic}], queueId[{queue_id}], broker[{addr}], timestamp(string)[{timestamp_text}], timestamp(long)[{timestamp_ms}]"
        );
        let reset_to = match offset {
            Some(offset) => offset,
            None => search_offset(admin, addr, topic, queue_id as u32, timestamp_ms).await?,
        };
        println!("reset consumer offset to {reset_to}");
        // Java skips a reset to offset 0 here (`resetOffset > 0`), which leaves a group that
        // should start over where it is; a reset to 0 is done like any other.
        if reset_to >= 0 {
            let commit = RemotingCommand::request(request_code::UPDATE_CONSUMER_OFFSET)
                .with_ext("consumerGroup", group)
                .with_ext("topic", topic)
                .with_ext("queueId", queue_id)
                .with_ext("commitOffset", reset_to);
            admin.invoke_ok(addr, commit).await?;
            let notify = RemotingCommand::request(request_code::INVOKE_BROKER_TO_RESET_OFFSET)
                .with_ext("topic", topic)
                .with_ext("group", group)
                .with_ext("timestamp", 0)
                .with_ext("isForce", true)
                .with_ext("queueId", queue_id)
                .with_ext("offset", reset_to);
            admin.invoke_ok(addr, notify).await?;
        }
        return Ok(());
    }
    let route = admin.route(topic).await?;
    let mut table = Vec::new();
    for broker in &route.brokers {
        let Some(addr) = broker.serving_addr() else { continue };
        let request = RemotingCommand::request(request_code::INVOKE_BROKER_TO_RESET_OFFSET)
            .with_ext("topic", topic)
            .with_ext("group", group)
            .with_ext("timestamp", timestamp_ms)
            .with_ext("isForce", force);
        table.extend(reset_table(&admin.invoke_ok(addr, request).await?.body)?);
    }
    table.sort();
    println!(
        "start reset consumer offset by specified, group[{group}], topic[{topic}], force[{force}], timestamp(string)[{timestamp_text}], timestamp(long)[{timestamp_ms}]"
    );
    println!("{:<40}  {:<40}  {:<40}", "#brokerName", "#queueId", "#offset");
    for ((_, broker_name, queue_id), offset) in table {
        println!("{:<40}  {queue_id:<40}  {offset:<40}", front(&broker_name, 32));
    }
    Ok(())
}

/// `cloneGroupOffset`: every broker group of the topic copies `src`'s committed offsets of the
/// topic to `dest` (CLONE_GROUP_OFFSET).
pub async fn clone_group_offset(admin: &Admin, src: &str, dest: &str, topic: &str, offline: bool) -> AdminResult<()> {
    let route = admin.route(topic).await?;
    for broker in &route.brokers {
        let Some(addr) = broker.serving_addr() else { continue };
        let request = RemotingCommand::request(request_code::CLONE_GROUP_OFFSET)
            .with_ext("srcGroup", src)
            .with_ext("destGroup", dest)
            .with_ext("topic", topic)
            .with_ext("offline", offline);
        admin.invoke_ok(addr, request).await?;
    }
    // No newline: the Java tool prints none.
    print!("clone group offset success. srcGroup[{src}], destGroup=[{dest}], topic[{topic}]");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_reset_body_and_flags() {
        let body = br#"{"offsetTable":{{"brokerName":"b","queueId":1,"topic":"T"}:7,{"brokerName":"b","queueId":0,"topic":"T"}:3}}"#;
        let table = reset_table(body).expect("parses");
        assert_eq!(table, vec![(("T".to_owned(), "b".to_owned(), 1), 7), (("T".to_owned(), "b".to_owned(), 0), 3)]);
        assert!(reset_table(br#"{"offsetTable":{{"topic":"T"}:1}}"#).is_err());
        assert!(java_bool("TRUE") && !java_bool("yes"));
        assert_eq!(reset_timestamp("1700000000000").ok(), Some(1_700_000_000_000));
        assert!(reset_timestamp("yesterday").is_err());
    }
}
