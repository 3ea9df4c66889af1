//! Rewriting stored messages: what the broker's own writes (delayed delivery, retries, dead
//! letters, transaction commits and checks) share — a record copied into a new message, and
//! encoded properties edited without decoding them into a map.

use bytes::Bytes;
use ferromq_store::QueueId;
use ferromq_store::record::{MessageInput, NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR, PropertySummary, RecordView, property_pairs};

/// A new message for `topic` / `queue_id` carrying `view`'s body, flag, sysflag, born time and
/// host, store host, reconsume count and prepared offset, with `properties`. Callers change
/// what differs (the reconsume count of a retry, the sysflag of a commit).
pub fn copy_of(view: &RecordView<'_>, topic: &str, queue_id: QueueId, properties: Vec<u8>) -> MessageInput {
    MessageInput {
        topic: topic.into(),
        queue_id,
        flag: view.flag,
        body: Bytes::copy_from_slice(view.body),
        summary: Some(PropertySummary::scan(&properties)),
        properties,
        sys_flag: view.sys_flag,
        born_timestamp_ms: view.born_timestamp_ms,
        born_host: view.born_host,
        store_host: view.store_host,
        reconsume_times: view.reconsume_times,
        prepared_transaction_offset: view.prepared_transaction_offset,
    }
}

/// `original` without the properties named in `drop` (every occurrence), then `add` appended.
pub fn rebuild_properties(original: &[u8], drop: &[&str], add: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(original.len() + 64);
    for (name, value) in property_pairs(original) {
        if !drop.contains(&name) {
            push_property(&mut out, name, value);
        }
    }
    for (name, value) in add {
        push_property(&mut out, name, value);
    }
    out
}

/// Ends an encoded properties string with a separator (if it has content), so that more pairs
/// can follow.
pub fn end_with_separator(out: &mut Vec<u8>) {
    if out.last().is_some_and(|b| *b != PROPERTY_SEPARATOR) {
        out.push(PROPERTY_SEPARATOR);
    }
}

/// Appends `name \u0001 value \u0002`.
pub fn push_property(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.push(NAME_VALUE_SEPARATOR);
    out.extend_from_slice(value.as_bytes());
    out.push(PROPERTY_SEPARATOR);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ferromq_store::record::Properties;

    #[test]
    fn properties_are_edited_in_place_of_their_encoding() {
        let mut props = Properties::new();
        props.insert("A", "1");
        props.insert("B", "2");
        let edited = rebuild_properties(&props.encode(), &["A"], &[("C", "3")]);
        let back = Properties::decode(&edited);
        assert_eq!((back.get("A"), back.get("B"), back.get("C")), (None, Some("2"), Some("3")));
        let mut open = b"X\x01y".to_vec();
        end_with_separator(&mut open);
        push_property(&mut open, "Z", "w");
        assert_eq!(Properties::decode(&open).get("Z"), Some("w"));
    }
}
