//! Tolerant parsing of the HEART_BEAT (34) body, `HeartbeatData` (PROTOCOL.md §4.5), and the
//! subscription types it carries (`SubscriptionData`, the consume-type, message-model and
//! consume-from-where enums) with their JSON writers.
//!
//! Owns no state. Parsing is total and per element: third-party clients omit fields, rename the
//! subscription list, and send numbers or booleans as strings (Appendix Q). Missing optional
//! fields take Java's defaults; an element that cannot be read (a consumer without `groupName`,
//! a subscription without `topic`, an element that is not an object) is skipped with a warning
//! and the others are kept. Only a body that is not a JSON object, or has no client id, is an
//! error. Tag code sets are always recomputed from the tags with Java's `String.hashCode`
//! (Appendix A): `rocketmq-client-rust` sends codes that are not Java hash codes.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::meta::json::{
    java_string_hash, lenient_bool, lenient_i64, lenient_string, parse_object_tolerant, write_bool,
    write_key, write_num, write_str,
};

/// The subscription expression meaning "all tags".
pub const SUB_ALL: &str = "*";
/// `ExpressionType.TAG`.
pub const EXPRESSION_TAG: &str = "TAG";
/// `ExpressionType.SQL92`.
pub const EXPRESSION_SQL92: &str = "SQL92";

/// Most consumer groups read from one heartbeat; later entries are skipped with a warning.
pub const MAX_GROUPS_PER_HEARTBEAT: usize = 1024;
/// Most subscriptions read per consumer group.
pub const MAX_SUBSCRIPTIONS_PER_GROUP: usize = 4096;
/// Most tags read per subscription.
pub const MAX_TAGS_PER_SUBSCRIPTION: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    #[error("heartbeat body is not a JSON object: {0}")]
    Malformed(String),
    #[error("heartbeat body has no clientID")]
    MissingClientId,
}

/// Java `ConsumeType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsumeType {
    /// Pull / lite pull.
    ConsumeActively,
    /// Push.
    ConsumePassively,
    /// 5.x pop.
    ConsumePop,
}

impl ConsumeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumeType::ConsumeActively => "CONSUME_ACTIVELY",
            ConsumeType::ConsumePassively => "CONSUME_PASSIVELY",
            ConsumeType::ConsumePop => "CONSUME_POP",
        }
    }

    /// The enum name (any case), the display names `PULL`/`PUSH`/`POP`, or the ordinal.
    pub fn parse(v: &Value) -> Option<Self> {
        if let Some(n) = v.as_i64() {
            return [
                ConsumeType::ConsumeActively,
                ConsumeType::ConsumePassively,
                ConsumeType::ConsumePop,
            ]
            .into_iter()
            .nth(usize::try_from(n).ok()?);
        }
        match v.as_str()?.trim().to_ascii_uppercase().as_str() {
            "CONSUME_ACTIVELY" | "PULL" => Some(ConsumeType::ConsumeActively),
            "CONSUME_PASSIVELY" | "PUSH" => Some(ConsumeType::ConsumePassively),
            "CONSUME_POP" | "POP" => Some(ConsumeType::ConsumePop),
            _ => None,
        }
    }
}

/// Java `MessageModel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageModel {
    Broadcasting,
    Clustering,
}

impl MessageModel {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageModel::Broadcasting => "BROADCASTING",
            MessageModel::Clustering => "CLUSTERING",
        }
    }

    /// The enum name (any case) or the ordinal (0 BROADCASTING, 1 CLUSTERING).
    pub fn parse(v: &Value) -> Option<Self> {
        match v.as_i64() {
            Some(0) => return Some(MessageModel::Broadcasting),
            Some(1) => return Some(MessageModel::Clustering),
            Some(_) => return None,
            None => {}
        }
        match v.as_str()?.trim().to_ascii_uppercase().as_str() {
            "BROADCASTING" => Some(MessageModel::Broadcasting),
            "CLUSTERING" => Some(MessageModel::Clustering),
            _ => None,
        }
    }
}

/// Java `ConsumeFromWhere` (declaration order = ordinals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsumeFromWhere {
    LastOffset,
    /// Deprecated.
    LastOffsetAndFromMinWhenBootFirst,
    /// Deprecated.
    MinOffset,
    /// Deprecated.
    MaxOffset,
    FirstOffset,
    Timestamp,
}

impl ConsumeFromWhere {
    const ALL: [ConsumeFromWhere; 6] = [
        ConsumeFromWhere::LastOffset,
        ConsumeFromWhere::LastOffsetAndFromMinWhenBootFirst,
        ConsumeFromWhere::MinOffset,
        ConsumeFromWhere::MaxOffset,
        ConsumeFromWhere::FirstOffset,
        ConsumeFromWhere::Timestamp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsumeFromWhere::LastOffset => "CONSUME_FROM_LAST_OFFSET",
            ConsumeFromWhere::LastOffsetAndFromMinWhenBootFirst => {
                "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST"
            }
            ConsumeFromWhere::MinOffset => "CONSUME_FROM_MIN_OFFSET",
            ConsumeFromWhere::MaxOffset => "CONSUME_FROM_MAX_OFFSET",
            ConsumeFromWhere::FirstOffset => "CONSUME_FROM_FIRST_OFFSET",
            ConsumeFromWhere::Timestamp => "CONSUME_FROM_TIMESTAMP",
        }
    }

    /// The enum name (any case) or the ordinal.
    pub fn parse(v: &Value) -> Option<Self> {
        if let Some(n) = v.as_i64() {
            return Self::ALL.into_iter().nth(usize::try_from(n).ok()?);
        }
        let name = v.as_str()?.trim().to_ascii_uppercase();
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// One topic subscription of a consumer group (Java `SubscriptionData`), normalised: for TAG
/// expressions `sub_string` is `*` for "all" (also when sent empty or absent), `tags_set` holds
/// the trimmed non-empty tags and `code_set` their Java hash codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionData {
    pub topic: String,
    pub sub_string: String,
    pub tags_set: BTreeSet<String>,
    pub code_set: BTreeSet<i32>,
    pub sub_version: i64,
    /// `TAG` or `SQL92` (upper-cased); other values are kept as sent.
    pub expression_type: String,
    pub class_filter_mode: bool,
}

impl SubscriptionData {
    /// Java `FilterAPI.buildSubscriptionData(topic, subString)` for a TAG expression:
    /// empty or `*` means all; otherwise `||`-separated tags, trimmed, empty ones dropped.
    pub fn new_tag(topic: impl Into<String>, sub_string: &str, sub_version: i64) -> Self {
        let mut s = SubscriptionData {
            topic: topic.into(),
            sub_string: sub_string.to_owned(),
            tags_set: BTreeSet::new(),
            code_set: BTreeSet::new(),
            sub_version,
            expression_type: EXPRESSION_TAG.to_owned(),
            class_filter_mode: false,
        };
        s.normalise(None);
        s
    }

    /// Whether the expression is a TAG expression.
    pub fn is_tag_type(&self) -> bool {
        self.expression_type == EXPRESSION_TAG
    }

    /// Whether a TAG subscription accepts every message.
    pub fn is_all(&self) -> bool {
        self.is_tag_type() && self.sub_string == SUB_ALL
    }

    /// The consume-queue tag filter (Java `DefaultMessageFilter`/`ExpressionMessageFilter` for
    /// TAG): all → true; otherwise the low 32 bits of the stored tags code must be in the code
    /// set. Non-TAG expressions are not decided here (true).
    pub fn matches_tags_code(&self, tags_code: i64) -> bool {
        if !self.is_tag_type() || self.sub_string == SUB_ALL {
            return true;
        }
        // The consume queue stores the i32 hash sign-extended; compare the low 32 bits.
        self.code_set.contains(&(tags_code as i32))
    }

    /// Same topic, expression and tags (ignores `sub_version` and the derived codes).
    pub fn same_filter(&self, other: &SubscriptionData) -> bool {
        self.topic == other.topic
            && self.sub_string == other.sub_string
            && self.expression_type == other.expression_type
            && self.tags_set == other.tags_set
            && self.class_filter_mode == other.class_filter_mode
    }

    /// Recomputes `sub_string`, `tags_set` and `code_set` as described on the type.
    /// `sent_tags` are the client's `tagsSet`, used only when it sent no `subString`.
    fn normalise(&mut self, sent_tags: Option<Vec<String>>) {
        let upper = self.expression_type.trim().to_ascii_uppercase();
        self.expression_type = if upper.is_empty() {
            EXPRESSION_TAG.to_owned()
        } else {
            upper
        };
        if !self.is_tag_type() {
            self.tags_set.clear();
            self.code_set.clear();
            return;
        }
        let trimmed = self.sub_string.trim();
        let tags: Vec<String> = if trimmed.is_empty() || trimmed == SUB_ALL {
            match sent_tags {
                Some(t) if trimmed.is_empty() && !t.is_empty() => {
                    let t: Vec<String> = t
                        .iter()
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect();
                    self.sub_string = t.join(" || ");
                    if t.is_empty() {
                        self.sub_string = SUB_ALL.to_owned();
                    }
                    t
                }
                _ => {
                    self.sub_string = SUB_ALL.to_owned();
                    Vec::new()
                }
            }
        } else {
            self.sub_string
                .split("||")
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        self.tags_set = tags.into_iter().take(MAX_TAGS_PER_SUBSCRIPTION).collect();
        self.code_set = self.tags_set.iter().map(|t| java_string_hash(t)).collect();
    }

    /// Reads one element of `subscriptionDataSet` (or CHECK_CLIENT_CONFIG's
    /// `subscriptionData`) leniently. `Err` names what is wrong.
    pub fn from_value(v: &Value) -> Result<Self, String> {
        let obj = v.as_object().ok_or("subscription is not an object")?;
        let topic = lenient_string(obj.get("topic"))
            .filter(|t| !t.is_empty())
            .ok_or("subscription has no topic")?;
        let sent_tags = obj.get("tagsSet").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|t| lenient_string(Some(t)))
                .collect::<Vec<_>>()
        });
        let mut s = SubscriptionData {
            topic,
            sub_string: lenient_string(obj.get("subString")).unwrap_or_default(),
            tags_set: BTreeSet::new(),
            code_set: BTreeSet::new(),
            sub_version: lenient_i64(obj.get("subVersion")).unwrap_or(0),
            expression_type: lenient_string(obj.get("expressionType")).unwrap_or_default(),
            class_filter_mode: lenient_bool(obj.get("classFilterMode")).unwrap_or(false),
        };
        s.normalise(sent_tags);
        Ok(s)
    }

    /// fastjson form, keys sorted: `{"classFilterMode":false,"codeSet":[..],
    /// "expressionType":"TAG","subString":"*","subVersion":..,"tagsSet":[..],"topic":".."}`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"classFilterMode\":");
        write_bool(out, self.class_filter_mode);
        out.extend_from_slice(b",\"codeSet\":[");
        for (i, c) in self.code_set.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_num(out, c);
        }
        out.extend_from_slice(b"],");
        write_key(out, "expressionType");
        write_str(out, &self.expression_type);
        out.push(b',');
        write_key(out, "subString");
        write_str(out, &self.sub_string);
        out.extend_from_slice(b",\"subVersion\":");
        write_num(out, self.sub_version);
        out.extend_from_slice(b",\"tagsSet\":");
        crate::meta::json::write_str_array(out, &self.tags_set);
        out.push(b',');
        write_key(out, "topic");
        write_str(out, &self.topic);
        out.push(b'}');
    }
}

/// One element of `consumerDataSet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerData {
    pub group_name: String,
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
    /// In the order sent; a topic listed twice keeps its last entry.
    pub subscriptions: Vec<SubscriptionData>,
    pub unit_mode: bool,
}

/// A parsed HEART_BEAT body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatData {
    pub client_id: String,
    /// `producerDataSet[].groupName`, in the order sent, duplicates dropped.
    pub producer_groups: Vec<String>,
    pub consumers: Vec<ConsumerData>,
    /// 5.x heartbeat v2 fingerprint; 0 when absent.
    pub heartbeat_fingerprint: i64,
    /// 5.x: true when the client left subscriptions out (only after the broker advertised
    /// heartbeat v2, which FerroMQ does not). Registration must then keep the stored ones.
    pub without_sub: bool,
    /// One line per skipped element or defaulted value, already logged at warn level.
    pub warnings: Vec<String>,
}

impl HeartbeatData {
    /// Parses a HEART_BEAT body; see the module doc for the tolerance rules.
    pub fn parse(body: &[u8]) -> Result<Self, HeartbeatError> {
        let root =
            parse_object_tolerant(body).map_err(|e| HeartbeatError::Malformed(e.to_string()))?;
        let client_id = ["clientID", "clientId"]
            .iter()
            .find_map(|k| lenient_string(root.get(*k)))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or(HeartbeatError::MissingClientId)?;
        let mut warnings = Vec::new();

        let mut producer_groups: Vec<String> = Vec::new();
        for (i, p) in list(
            &root,
            &["producerDataSet"],
            "producerDataSet",
            &mut warnings,
        )
        .into_iter()
        .enumerate()
        {
            let name = match p {
                Value::Object(o) => lenient_string(o.get("groupName")),
                Value::String(s) => Some(s.clone()),
                _ => None,
            }
            .filter(|g| !g.is_empty());
            match name {
                Some(g) if !producer_groups.contains(&g) => producer_groups.push(g),
                Some(_) => {}
                None => warnings.push(format!("producerDataSet[{i}] has no groupName; skipped")),
            }
        }

        let mut consumers = Vec::new();
        for (i, c) in list(
            &root,
            &["consumerDataSet"],
            "consumerDataSet",
            &mut warnings,
        )
        .into_iter()
        .enumerate()
        {
            if consumers.len() >= MAX_GROUPS_PER_HEARTBEAT {
                warnings.push(format!(
                    "more than {MAX_GROUPS_PER_HEARTBEAT} consumer groups; the rest skipped"
                ));
                break;
            }
            match parse_consumer(c, i, &mut warnings) {
                Ok(cd) => consumers.push(cd),
                Err(why) => warnings.push(format!("consumerDataSet[{i}] skipped: {why}")),
            }
        }

        let data = HeartbeatData {
            client_id,
            producer_groups,
            consumers,
            heartbeat_fingerprint: lenient_i64(root.get("heartbeatFingerprint")).unwrap_or(0),
            without_sub: lenient_bool(root.get("withoutSub")).unwrap_or(false),
            warnings,
        };
        for w in &data.warnings {
            tracing::warn!(client_id = %data.client_id, "heartbeat: {w}");
        }
        Ok(data)
    }
}

/// The elements of the first present, non-null key in `keys`: an array as is, a single object
/// as a one-element list; anything else is a warning and an empty list.
fn list<'a>(
    obj: &'a Map<String, Value>,
    keys: &[&str],
    what: &str,
    warnings: &mut Vec<String>,
) -> Vec<&'a Value> {
    match keys
        .iter()
        .find_map(|k| obj.get(*k).filter(|v| !v.is_null()))
    {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        Some(_) => {
            warnings.push(format!("{what} is not a list; ignored"));
            Vec::new()
        }
    }
}

fn parse_consumer(
    v: &Value,
    index: usize,
    warnings: &mut Vec<String>,
) -> Result<ConsumerData, String> {
    let obj = v.as_object().ok_or("not an object")?;
    let group_name = lenient_string(obj.get("groupName"))
        .filter(|g| !g.is_empty())
        .ok_or("no groupName")?;
    let mut enum_field = |key: &str, parsed: Option<()>| {
        if parsed.is_none() && obj.get(key).is_some_and(|v| !v.is_null()) {
            warnings.push(format!(
                "consumer group {group_name}: unknown {key} {}; default used",
                obj.get(key).map(Value::to_string).unwrap_or_default()
            ));
        }
    };
    let consume_type = obj.get("consumeType").and_then(ConsumeType::parse);
    enum_field("consumeType", consume_type.map(|_| ()));
    let message_model = obj.get("messageModel").and_then(MessageModel::parse);
    enum_field("messageModel", message_model.map(|_| ()));
    let consume_from_where = obj
        .get("consumeFromWhere")
        .and_then(ConsumeFromWhere::parse);
    enum_field("consumeFromWhere", consume_from_where.map(|_| ()));

    let mut subscriptions: Vec<SubscriptionData> = Vec::new();
    let subs = list(
        obj,
        &["subscriptionDataSet", "subscriptionData"],
        "subscriptionDataSet",
        warnings,
    );
    for (j, s) in subs.into_iter().enumerate() {
        if subscriptions.len() >= MAX_SUBSCRIPTIONS_PER_GROUP {
            warnings.push(format!(
                "consumerDataSet[{index}]: more than {MAX_SUBSCRIPTIONS_PER_GROUP} subscriptions; the rest skipped"
            ));
            break;
        }
        match SubscriptionData::from_value(s) {
            Ok(sd) => {
                subscriptions.retain(|old| old.topic != sd.topic);
                subscriptions.push(sd);
            }
            Err(why) => warnings.push(format!(
                "consumerDataSet[{index}] ({group_name}) subscription[{j}] skipped: {why}"
            )),
        }
    }
    Ok(ConsumerData {
        consume_type: consume_type.unwrap_or(ConsumeType::ConsumePassively),
        message_model: message_model.unwrap_or(MessageModel::Clustering),
        consume_from_where: consume_from_where.unwrap_or(ConsumeFromWhere::LastOffset),
        subscriptions,
        unit_mode: lenient_bool(obj.get("unitMode")).unwrap_or(false),
        group_name,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::clients::table::test_util::golden_body;

    #[test]
    fn golden_producer_heartbeat() {
        let hb = HeartbeatData::parse(&golden_body("04_34_heartbeat-producer.bin")).unwrap();
        assert_eq!(hb.client_id, "192.0.2.2@27637#1795252268748469141");
        assert_eq!(
            hb.producer_groups,
            vec!["golden_producer_group", "CLIENT_INNER_PRODUCER"]
        );
        assert!(hb.consumers.is_empty());
        assert_eq!(hb.heartbeat_fingerprint, 0);
        assert!(!hb.without_sub);
        assert!(hb.warnings.is_empty());
    }

    #[test]
    fn golden_consumer_heartbeats() {
        for name in [
            "10_34_heartbeat-push-consumer.bin",
            "18_34_heartbeat-push-consumer-binary.bin",
        ] {
            let hb = HeartbeatData::parse(&golden_body(name)).unwrap();
            assert!(hb.client_id.starts_with("192.0.2.2@"), "{name}");
            assert_eq!(hb.producer_groups, vec!["CLIENT_INNER_PRODUCER"]);
            assert!(hb.warnings.is_empty(), "{:?}", hb.warnings);
            let [c] = hb.consumers.as_slice() else {
                panic!("{name}: one consumer expected");
            };
            assert_eq!(c.group_name, "golden_consumer_group");
            assert_eq!(c.consume_type, ConsumeType::ConsumePassively);
            assert_eq!(c.message_model, MessageModel::Clustering);
            assert_eq!(c.consume_from_where, ConsumeFromWhere::LastOffset);
            assert!(!c.unit_mode);
            let retry = &c.subscriptions[0];
            assert_eq!(retry.topic, "%RETRY%golden_consumer_group");
            assert!(retry.is_all());
            let sub = &c.subscriptions[1];
            assert_eq!(sub.topic, "TopicTest");
            assert_eq!(sub.sub_string, "TagA || TagB");
            assert_eq!(sub.tags_set, BTreeSet::from(["TagA".into(), "TagB".into()]));
            // The client sent [32151592,80566521]; the broker uses Java hash codes.
            assert_eq!(sub.code_set, BTreeSet::from([2_598_919, 2_598_920]));
            assert!(sub.matches_tags_code(2_598_919));
            assert!(!sub.matches_tags_code(32_151_592));
            assert_eq!(sub.sub_version, 0);
        }
    }

    #[test]
    fn appendix_q_odd_bodies() {
        // No expressionType/classFilterMode/codeSet/unitMode, `subscriptionData` as the list
        // name, numbers as strings, unknown fields, no heartbeatFingerprint/withoutSub (4.x).
        let body = br#"{"clientID":"10.0.0.9@node#1","extra":{"x":[1]},
            "producerDataSet":null,
            "consumerDataSet":[{"groupName":"g","consumeType":"CONSUME_ACTIVELY",
              "messageModel":"BROADCASTING","consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET",
              "subscriptionData":[{"topic":"T","subString":"a|| b ||","tagsSet":["a","b"],
                "subVersion":"1700000000000"},
                {"topic":"U","subString":""},{"topic":"V"}]}]}"#;
        let hb = HeartbeatData::parse(body).unwrap();
        assert!(hb.producer_groups.is_empty());
        assert_eq!(hb.heartbeat_fingerprint, 0);
        let c = &hb.consumers[0];
        assert_eq!(c.consume_type, ConsumeType::ConsumeActively);
        assert_eq!(c.message_model, MessageModel::Broadcasting);
        assert_eq!(c.consume_from_where, ConsumeFromWhere::FirstOffset);
        assert!(!c.unit_mode);
        let t = &c.subscriptions[0];
        assert_eq!(t.expression_type, "TAG");
        assert!(!t.class_filter_mode);
        assert_eq!(t.sub_version, 1_700_000_000_000);
        assert_eq!(t.tags_set.len(), 2);
        assert_eq!(
            t.code_set,
            BTreeSet::from([java_string_hash("a"), java_string_hash("b")])
        );
        assert!(c.subscriptions[1].is_all());
        assert!(c.subscriptions[2].is_all());
        assert_eq!(c.subscriptions[2].sub_string, "*");
        assert!(hb.warnings.is_empty(), "{:?}", hb.warnings);

        // Enums by display name, ordinal, lower case; missing enums take defaults.
        let body = br#"{"clientId":"c","consumerDataSet":[
            {"groupName":"a","consumeType":"push","messageModel":1,"consumeFromWhere":5},
            {"groupName":"b"},
            {"groupName":"c","consumeType":"WEIRD","subscriptionDataSet":{"topic":"T","subString":"x"}}]}"#;
        let hb = HeartbeatData::parse(body).unwrap();
        assert_eq!(hb.client_id, "c");
        let [a, b, c] = hb.consumers.as_slice() else {
            panic!()
        };
        assert_eq!(a.consume_type, ConsumeType::ConsumePassively);
        assert_eq!(a.message_model, MessageModel::Clustering);
        assert_eq!(a.consume_from_where, ConsumeFromWhere::Timestamp);
        assert_eq!(
            (b.consume_type, b.message_model, b.consume_from_where),
            (
                ConsumeType::ConsumePassively,
                MessageModel::Clustering,
                ConsumeFromWhere::LastOffset
            )
        );
        assert_eq!(c.subscriptions.len(), 1);
        assert_eq!(hb.warnings.len(), 1, "{:?}", hb.warnings);

        // Tags only (no subString), SQL92.
        let body = br#"{"clientID":"c","consumerDataSet":[{"groupName":"g","subscriptionDataSet":[
            {"topic":"T","tagsSet":[" x ","y",""]},
            {"topic":"S","subString":"a > 1","expressionType":"sql92","tagsSet":["zz"]}]}]}"#;
        let hb = HeartbeatData::parse(body).unwrap();
        let subs = &hb.consumers[0].subscriptions;
        assert_eq!(subs[0].sub_string, "x || y");
        assert_eq!(subs[0].tags_set, BTreeSet::from(["x".into(), "y".into()]));
        assert_eq!(subs[1].expression_type, "SQL92");
        assert!(subs[1].tags_set.is_empty() && subs[1].code_set.is_empty());
        assert!(subs[1].matches_tags_code(12345));
    }

    #[test]
    fn one_bad_element_does_not_break_the_others() {
        let body = br#"{"clientID":"c",
            "producerDataSet":[{"groupName":"p1"},{"nope":1},7,"p2",{"groupName":"p1"}],
            "consumerDataSet":[
              {"groupName":"ok1","subscriptionDataSet":[{"topic":"A","subString":"*"},
                 {"subString":"*"},[1],{"topic":"B","subString":"t1","subVersion":{"x":1}}]},
              {"consumeType":"CONSUME_PASSIVELY"},
              "garbage",
              null,
              {"groupName":"ok2","subscriptionDataSet":"oops"}]}"#;
        let hb = HeartbeatData::parse(body).unwrap();
        assert_eq!(hb.producer_groups, vec!["p1", "p2"]);
        let groups: Vec<&str> = hb.consumers.iter().map(|c| c.group_name.as_str()).collect();
        assert_eq!(groups, vec!["ok1", "ok2"]);
        let topics: Vec<&str> = hb.consumers[0]
            .subscriptions
            .iter()
            .map(|s| s.topic.as_str())
            .collect();
        assert_eq!(topics, vec!["A", "B"]);
        assert_eq!(hb.consumers[0].subscriptions[1].sub_version, 0);
        assert!(hb.consumers[1].subscriptions.is_empty());
        // 2 producers, 2 subscriptions, 3 consumers, 1 list.
        assert_eq!(hb.warnings.len(), 8, "{:#?}", hb.warnings);
    }

    #[test]
    fn errors_never_panics() {
        assert!(matches!(
            HeartbeatData::parse(b""),
            Err(HeartbeatError::Malformed(_))
        ));
        assert!(matches!(
            HeartbeatData::parse(b"[]"),
            Err(HeartbeatError::Malformed(_))
        ));
        assert!(matches!(
            HeartbeatData::parse(b"{\"clientID\""),
            Err(HeartbeatError::Malformed(_))
        ));
        assert_eq!(
            HeartbeatData::parse(b"{}"),
            Err(HeartbeatError::MissingClientId)
        );
        assert_eq!(
            HeartbeatData::parse(br#"{"clientID":" "}"#),
            Err(HeartbeatError::MissingClientId)
        );
        // Truncations of a real body never panic.
        let body = golden_body("10_34_heartbeat-push-consumer.bin");
        for n in 0..body.len() {
            let _ = HeartbeatData::parse(&body[..n]);
        }
        // Every field replaced by odd values never panics.
        let odd = [
            "null",
            "1",
            "-1",
            "1e99",
            "\"\"",
            "[]",
            "{}",
            "[null]",
            "[{}]",
            "true",
            "\"\\u0000\"",
            "18446744073709551616",
        ];
        let keys = [
            "clientID",
            "producerDataSet",
            "consumerDataSet",
            "groupName",
            "consumeType",
            "messageModel",
            "consumeFromWhere",
            "subscriptionDataSet",
            "topic",
            "subString",
            "tagsSet",
            "codeSet",
            "subVersion",
            "expressionType",
            "classFilterMode",
            "unitMode",
            "heartbeatFingerprint",
            "withoutSub",
        ];
        let text = String::from_utf8(body).unwrap();
        for key in keys {
            for v in odd {
                let pattern = format!("\"{key}\":");
                if let Some(pos) = text.find(&pattern) {
                    let start = pos + pattern.len();
                    // Replace the value up to the next `,"` or `}` at depth 0 (rough but total).
                    let rest = &text[start..];
                    let mut depth = 0i32;
                    let mut end = rest.len();
                    let mut in_str = false;
                    for (i, ch) in rest.char_indices() {
                        match ch {
                            '"' => in_str = !in_str,
                            '[' | '{' if !in_str => depth += 1,
                            ']' | '}' if !in_str => {
                                if depth == 0 {
                                    end = i;
                                    break;
                                }
                                depth -= 1;
                            }
                            ',' if !in_str && depth == 0 => {
                                end = i;
                                break;
                            }
                            _ => {}
                        }
                    }
                    let mutated = format!("{}{v}{}", &text[..start], &rest[end..]);
                    let _ = HeartbeatData::parse(mutated.as_bytes());
                }
            }
        }
    }

    #[test]
    fn subscription_json_and_new_tag() {
        let s = SubscriptionData::new_tag("T", "TagA || TagB", 7);
        let mut out = Vec::new();
        s.write_json(&mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            r#"{"classFilterMode":false,"codeSet":[2598919,2598920],"expressionType":"TAG","subString":"TagA || TagB","subVersion":7,"tagsSet":["TagA","TagB"],"topic":"T"}"#
        );
        // Our own output parses back to the same value.
        let hb = HeartbeatData::parse(
            format!(
                r#"{{"clientID":"c","consumerDataSet":[{{"groupName":"g","subscriptionDataSet":[{}]}}]}}"#,
                String::from_utf8(out).unwrap()
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(hb.consumers[0].subscriptions[0], s);
        assert!(SubscriptionData::new_tag("T", "", 0).is_all());
        assert!(SubscriptionData::new_tag("T", " * ", 0).is_all());
        assert!(SubscriptionData::new_tag("T", "*", 0).matches_tags_code(99));
        // Sign-extended negative codes compare on the low 32 bits.
        let neg = SubscriptionData::new_tag("T", "polygenelubricants", 0);
        assert!(neg.matches_tags_code(i64::from(i32::MIN)));
    }
}
